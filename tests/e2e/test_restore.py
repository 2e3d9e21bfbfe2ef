"""Restore: selecting by paths / include / exclude, into existing directories, verification, errors."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tiervault
import tiervault.restore.restorer
from tests.e2e import KiB, MiB, leftovers
from tests.support.trees import (
    Dir,
    Entry,
    File,
    HardLink,
    Snapshot,
    Symlink,
    assert_trees_equal,
    build_tree,
    filter_tree,
    snapshot_tree,
)

SPEC: dict[str, Entry] = {
    "top.txt": File(b"top"),
    "top.bin": File(random.Random(1).randbytes(1 * MiB + 5)),
    "data.csv": File(b"a,b\n1,2\n"),
    "sub": Dir(mode=0o750, mtime_ns=1_111_111_111_111_111_111),
    "sub/a.txt": File(b"sub a"),
    "sub/b.bin": File(random.Random(2).randbytes(200 * KiB)),
    "sub/deeper": Dir(mode=0o700, mtime_ns=1_222_222_222_222_222_222),
    "sub/deeper/c.txt": File(b"deep c"),
    "sub/deeper/d.dat": File(b"deep d"),
    "other/e.txt": File(b"other e"),
    "other/f.log": File(b"other f"),
    "other/hard.txt": HardLink("sub/a.txt"),
    "links/l": Symlink(b"../top.txt"),
}


Point = tuple[tiervault.RecoveryPoint, Snapshot]


@pytest.fixture
async def point(vault: tiervault.Vault, tmp_path: Path) -> Point:
    src = tmp_path / "src"
    build_tree(src, SPEC)
    await vault.protect(src, name="src")
    result = await vault.snapshot("src")
    assert not result.partial
    return result.point, snapshot_tree(src)


def _ancestors(p: bytes) -> set[bytes]:
    parts = p.split(b"/")
    return {b"/".join(parts[:i]) for i in range(1, len(parts))}


def _under(prefix: bytes) -> Callable[[bytes], bool]:
    return lambda p: p == prefix or p.startswith(prefix + b"/")


def _no_root(p: bytes) -> bool:
    return p != b"."


async def test_restore_subtree_by_path(vault: tiervault.Vault, point: Point, tmp_path: Path) -> None:
    pt, before = point
    out = tmp_path / "out"
    result = await vault.restore(pt, out, paths=["sub"], verify=True)
    assert result.ok
    assert result.stats.files == result.stats.files_verified == 4
    assert_trees_equal(filter_tree(before, _under(b"sub")), filter_tree(snapshot_tree(out), _no_root))


async def test_restore_single_files_creates_their_directories(
    vault: tiervault.Vault, point: Point, tmp_path: Path
) -> None:
    pt, before = point
    out = tmp_path / "out"
    await vault.restore(pt, out, paths=["sub/deeper/c.txt", "./top.txt", "other/hard.txt"])
    want = {b"sub/deeper/c.txt", b"top.txt", b"other/hard.txt"}
    keep = want | {a for p in want for a in _ancestors(p)}
    # the hard link's partner (sub/a.txt) is not selected: hard.txt is a plain file with a.txt's content
    assert_trees_equal(filter_tree(before, lambda p: p in keep), filter_tree(snapshot_tree(out), _no_root))


async def test_restore_include_pattern(vault: tiervault.Vault, point: Point, tmp_path: Path) -> None:
    pt, before = point
    out = tmp_path / "out"
    result = await vault.restore(pt, out, include=["*.txt"])
    txt = {p for p, i in before.items() if i["type"] == "file" and p.endswith(b".txt")}
    assert txt == {b"top.txt", b"sub/a.txt", b"sub/deeper/c.txt", b"other/e.txt", b"other/hard.txt"}
    keep = txt | {a for p in txt for a in _ancestors(p)}
    assert_trees_equal(filter_tree(before, lambda p: p in keep), filter_tree(snapshot_tree(out), _no_root))
    assert result.stats.files == len(txt)


async def test_restore_exclude_pattern(vault: tiervault.Vault, point: Point, tmp_path: Path) -> None:
    pt, before = point
    out = tmp_path / "out"
    await vault.restore(pt, out, exclude=["sub/*"])
    expected = filter_tree(before, lambda p: _no_root(p) and not p.startswith(b"sub/"))
    assert b"sub" in expected  # the directory itself stays, empty
    assert_trees_equal(expected, filter_tree(snapshot_tree(out), _no_root))


async def test_restore_into_existing_directory(vault: tiervault.Vault, point: Point, tmp_path: Path) -> None:
    pt, before = point
    out = tmp_path / "out"
    existing: dict[str, Entry] = {
        "top.txt": File(b"top"),  # identical
        "data.csv": File(b"a,b\n1,2\n", mode=0o600, mtime_ns=5),  # identical content, other metadata
        "top.bin": File(random.Random(99).randbytes(1 * MiB + 5)),  # same size, different content
        "sub/a.txt": File(b"a different length"),  # different
        "sub/deeper/c.txt": Dir(),  # an empty directory where a file belongs
        "extra.txt": File(b"not in the point", mode=0o640, mtime_ns=7),
        "sub/extra-dir/x": File(b"x"),
    }
    build_tree(out, existing)
    inode = {
        p: os.lstat(out / p).st_ino for p in ("top.txt", "data.csv", "top.bin", "sub/a.txt", "extra.txt")
    }
    extra_before = filter_tree(
        snapshot_tree(out), lambda p: p in (b"extra.txt", b"sub/extra-dir", b"sub/extra-dir/x")
    )

    result = await vault.restore(pt, out, verify=True)

    assert result.ok, result.errors
    n_files = sum(1 for i in before.values() if i["type"] == "file")
    assert result.stats.files_verified == n_files
    assert result.stats.files_unchanged == 2
    # identical content is not rewritten (same inode), its metadata is set
    assert os.lstat(out / "top.txt").st_ino == inode["top.txt"]
    assert os.lstat(out / "data.csv").st_ino == inode["data.csv"]
    # different content is replaced
    assert os.lstat(out / "top.bin").st_ino != inode["top.bin"]
    assert (out / "sub" / "a.txt").read_bytes() == b"sub a"
    # unrelated entries are left alone, exactly
    after = snapshot_tree(out)
    assert os.lstat(out / "extra.txt").st_ino == inode["extra.txt"]
    assert_trees_equal(extra_before, filter_tree(after, lambda p: p in extra_before))
    # and everything of the point is exactly there (sub's mtime changed: it has an extra entry)
    assert_trees_equal(before, filter_tree(after, lambda p: p not in extra_before))
    assert leftovers(out) == []


async def _restore_twice(vault: tiervault.Vault, spec: dict[str, Entry], tmp_path: Path) -> None:
    src, out = tmp_path / "src2", tmp_path / "out"
    build_tree(src, spec)
    before = snapshot_tree(src)
    await vault.protect(src, name="twice")
    pt = (await vault.snapshot("twice")).point
    await vault.restore(pt, out)
    inodes = {
        p: os.lstat(os.path.join(bytes(out), p)).st_ino for p, i in before.items() if i["type"] == "file"
    }
    second = await vault.restore(pt, out, verify=True)
    assert second.ok, second.errors
    # nothing is rewritten: every file is found identical (hard-link partners are re-linked)
    assert second.stats.files_written == 0
    assert {p: os.lstat(os.path.join(bytes(out), p)).st_ino for p in inodes} == inodes
    assert_trees_equal(before, snapshot_tree(out))
    assert leftovers(out) == []


async def test_restore_twice_is_idempotent(vault: tiervault.Vault, tmp_path: Path) -> None:
    await _restore_twice(vault, {k: v for k, v in SPEC.items() if not isinstance(v, HardLink)}, tmp_path)


async def test_restore_twice_with_hard_links_leaves_no_temp_files(
    vault: tiervault.Vault, tmp_path: Path
) -> None:
    await _restore_twice(vault, {"a.txt": File(b"a"), "b/link.txt": HardLink("a.txt")}, tmp_path)


async def test_verify_detects_a_damaged_restored_file(
    vault: tiervault.Vault, point: Point, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pt, _before = point
    out = tmp_path / "out"
    real_finish = tiervault.restore.restorer.Restorer._finish

    def finish_then_damage(self, plan, root):  # type: ignore[no-untyped-def]
        real_finish(self, plan, root)
        with open(out / "sub" / "b.bin", "r+b") as fh:
            fh.seek(1000)
            fh.write(b"\x00garbage\x00")

    monkeypatch.setattr(tiervault.restore.restorer.Restorer, "_finish", finish_then_damage)
    result = await vault.restore(pt, out, verify=True)
    assert not result.ok
    assert [e["path"] for e in result.errors] == ["sub/b.bin"]
    assert result.stats.files_verified == result.stats.files - 1


@pytest.mark.parametrize(
    "selection",
    [
        {"paths": ["nope"]},
        {"paths": ["sub/nope.txt"]},
        {"paths": ["top.txt/below"]},
        {"include": ["*.nomatch"]},
    ],
)
async def test_restore_of_something_not_in_the_point(
    vault: tiervault.Vault, point: Point, tmp_path: Path, selection: dict[str, Any]
) -> None:
    pt, _ = point
    out = tmp_path / "out"
    with pytest.raises(tiervault.NotFoundError):
        await vault.restore(pt, out, **selection)
    assert not out.exists(), "a failed selection must not create the target"


async def test_unknown_point_and_path_in_ls(vault: tiervault.Vault, point: Point) -> None:
    pt, _ = point
    with pytest.raises(tiervault.NotFoundError):
        await vault.restore("ffffffffffff", "/nonexistent-target")
    with pytest.raises(tiervault.NotFoundError):
        await vault.ls(pt, "sub/missing")
    with pytest.raises(tiervault.NotFoundError):
        await vault.point("latest:no-such-item")
    assert (await vault.point("latest")).id == pt.id
    assert (await vault.point(pt.id[:8])).id == pt.id


async def test_non_empty_directory_in_the_way_is_an_error_for_that_file_only(
    vault: tiervault.Vault, point: Point, tmp_path: Path
) -> None:
    pt, before = point
    out = tmp_path / "out"
    build_tree(out, {"sub/b.bin/keep.txt": File(b"mine"), "top.txt/keep.txt": File(b"mine too")})
    result = await vault.restore(pt, out, verify=True)
    assert sorted(e["path"] for e in result.errors) == ["sub/b.bin", "top.txt"]
    assert (out / "sub" / "b.bin" / "keep.txt").read_bytes() == b"mine"
    assert (out / "top.txt" / "keep.txt").read_bytes() == b"mine too"
    assert leftovers(out) == []
    after = snapshot_tree(out)
    others = lambda p: p not in (b".", b"sub") and not p.startswith((b"sub/b.bin", b"top.txt"))  # noqa: E731
    assert_trees_equal(filter_tree(before, others), filter_tree(after, others))


async def test_symlinked_directory_in_the_target_is_not_followed(
    vault: tiervault.Vault, point: Point, tmp_path: Path
) -> None:
    """A symlink where the point has a directory must be replaced, never written through."""
    pt, before = point
    out, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    out.mkdir()
    (out / "sub").symlink_to(outside)
    result = await vault.restore(pt, out)
    assert list(outside.iterdir()) == [], "the restore wrote outside its target"
    assert result.ok, result.errors
    assert_trees_equal(before, snapshot_tree(out))


async def test_target_that_is_a_file_is_refused(vault: tiervault.Vault, point: Point, tmp_path: Path) -> None:
    pt, _ = point
    target = tmp_path / "precious.txt"
    target.write_bytes(b"do not delete me")
    with pytest.raises(tiervault.TiervaultError):
        await vault.restore(pt, target)
    assert target.read_bytes() == b"do not delete me"
