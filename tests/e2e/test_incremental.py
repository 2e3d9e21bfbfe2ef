"""Incremental snapshots: each recovery point restores to exactly the tree it was taken of."""

from __future__ import annotations

import os
import random
import shutil
import stat
from pathlib import Path

import tiervault
from tests.e2e import KiB, MiB
from tests.support.trees import (
    Dir,
    Entry,
    File,
    Snapshot,
    Sparse,
    Symlink,
    assert_trees_equal,
    build_tree,
    snapshot_tree,
)


def _rand(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _ctimes(*paths: Path) -> dict[Path, int]:
    return {p: os.lstat(p).st_ctime_ns for p in paths}


def _ctime_moved_on(before: dict[Path, int]) -> None:
    """Make sure each file's ctime differs from ``before``, whatever the file system's timestamp
    granularity: a change within the same clock tick keeps the old ctime, so chmod (to the same mode,
    which changes nothing else) until the tick has passed. No fixed sleep, no margin."""
    for path, old in before.items():
        while (st := os.lstat(path)).st_ctime_ns == old:
            os.chmod(path, stat.S_IMODE(st.st_mode))


async def test_each_point_restores_its_own_tree(vault: tiervault.Vault, tmp_path: Path) -> None:
    src = tmp_path / "src"
    spec: dict[str, Entry] = {
        "a.bin": File(_rand(1, 900 * KiB)),
        "b.txt": File(b"version one, same size\n" * 50),
        "c.txt": File(b"to be deleted"),
        "big.bin": File(_rand(2, 3 * MiB)),
        "sub": Dir(mode=0o750),
        "sub/d.txt": File(b"d", mode=0o600),
        "sub/e": File(b"becomes a directory"),
        "sub/link": Symlink(b"d.txt"),
        "gone": Dir(),
        "gone/x": File(b"x"),
        "sparse": Sparse(2 * MiB, ((4096, b"one"),)),
    }
    build_tree(src, spec)
    await vault.protect(src, name="inc")
    trees: list[Snapshot] = []
    points: list[tiervault.RecoveryPoint] = []

    async def take(expect_read: int) -> None:
        trees.append(snapshot_tree(src))
        result = await vault.snapshot("inc")
        assert result.errors == ()
        assert result.stats.files_read == expect_read, result.stats
        assert result.stats.files_reused == result.stats.files - expect_read
        if points:
            assert result.point.parent == points[-1].id
        points.append(result.point)

    await take(expect_read=8)

    # v2: content and size change; same size and mtime (only ctime tells); delete; add; chmod;
    # retarget a symlink; a file turns into a directory; a whole directory goes; a sparse file grows
    ctime_only = _ctimes(src / "b.txt", src / "sub" / "d.txt")  # changes that only ctime tells
    (src / "a.bin").write_bytes(_rand(3, 1000 * KiB))
    b_stat = (src / "b.txt").stat()
    (src / "b.txt").write_bytes(b"version two, same size\n" * 50)
    os.utime(src / "b.txt", ns=(b_stat.st_atime_ns, b_stat.st_mtime_ns))
    assert (src / "b.txt").stat().st_size == b_stat.st_size
    (src / "c.txt").unlink()
    (src / "new.txt").write_bytes(b"new file")
    os.chmod(src / "sub" / "d.txt", 0o644)
    (src / "sub" / "link").unlink()
    (src / "sub" / "link").symlink_to("e/inside")
    (src / "sub" / "e").unlink()
    (src / "sub" / "e").mkdir()
    (src / "sub" / "e" / "inside").write_bytes(b"inside")
    shutil.rmtree(src / "gone")
    os.truncate(src / "sparse", 5 * MiB)
    fd = os.open(src / "sparse", os.O_WRONLY)
    os.pwrite(fd, b"two", 4 * MiB)
    os.close(fd)
    _ctime_moved_on(ctime_only)
    # read: a.bin, b.txt, new.txt, sub/e/inside, sparse (size and mtime changed); d.txt only chmod-ed
    # (ctime changed, so it is read again too); big.bin reused
    await take(expect_read=6)

    # v3: back to v1 content for a.bin (dedup finds the old chunks), hard link, an empty tree below
    linked = _ctimes(src / "big.bin")  # a new link only moves its ctime (and link count)
    (src / "a.bin").write_bytes(_rand(1, 900 * KiB))
    shutil.rmtree(src / "sub")
    os.link(src / "big.bin", src / "big-link.bin")
    (src / "empty").mkdir()
    (src / "b.txt").write_bytes(b"")
    _ctime_moved_on(linked)
    await take(expect_read=4)  # a.bin, b.txt, big.bin and big-link.bin (new ctime / new name)

    versions = await vault.points("inc")
    assert [p.id for p in versions] == [p.id for p in points]
    for i, point in enumerate(points):
        out = tmp_path / f"restore-{i}"
        result = await vault.restore(point, out, verify=True)
        assert result.ok, result.errors
        assert_trees_equal(trees[i], snapshot_tree(out))

    # v1 and v3 share a.bin's content: the third point added no data for it
    assert points[2].stats["bytes_new"] < 64 * KiB + 1, points[2].stats


async def test_unchanged_tree_is_reused_and_an_xattr_change_is_seen(
    vault: tiervault.Vault, tmp_path: Path
) -> None:
    """A no-change snapshot reuses every tree of its parent (same root tree, nothing stored), and a
    change that only moves ctime (an xattr) is still picked up although the file's data is reused."""
    src = tmp_path / "src"
    build_tree(src, {"a/b/c.txt": File(b"c" * 100), "a/d.txt": File(b"d"), "e.txt": File(b"e")})
    await vault.protect(src, name="src")
    first = await vault.snapshot("src")
    second = await vault.snapshot("src")
    stats = second.stats
    assert (stats.files_reused, stats.bytes_read, stats.chunks_new, stats.packs_new) == (3, 0, 0, 0)
    assert (await vault._repo.load_snapshot(second.point.id)).tree == (
        await vault._repo.load_snapshot(first.point.id)
    ).tree
    try:
        os.setxattr(src / "a/b/c.txt", "user.tag", b"v1")
    except OSError:
        return  # no user xattrs on this file system: nothing more to check
    third = await vault.snapshot("src")
    # ctime moved: the file is read again (its data dedups), the other two are reused
    assert (third.stats.files_reused, third.stats.files_read) == (2, 1)
    out = tmp_path / "out"
    await vault.restore(third.point, out)
    assert os.getxattr(out / "a/b/c.txt", "user.tag") == b"v1"
    assert_trees_equal(snapshot_tree(src), snapshot_tree(out))
