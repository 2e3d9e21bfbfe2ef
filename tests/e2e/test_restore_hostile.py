"""Restore never changes anything outside its target: crafted points (duplicate names, names with
``/`` or ``..``, hard links) and hostile targets (symlinks or FIFOs where the point has something
else), and a file whose stored size does not match its content.

The crafted points are built through the real writer (``tests.support.hostile.Planter``), so every
object authenticates. If the tree decoder rejects one of them, the restore must fail cleanly; either
way, an lstat listing of a directory outside the target (modes and mtimes included) must not change.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import os
import random
import stat
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

import tiervault
from tests.e2e import leftovers
from tests.support.hostile import Planter, node
from tests.support.trees import File, HardLink, Symlink, assert_trees_equal, build_tree, snapshot_tree
from tiervault.restore import Restorer
from tiervault.restore.dirfd import DirectoryFS

OUTSIDE_MTIME_NS = 1_234_567_890_123_456_789
HANG_GUARD_S = 60.0  # only a guard against a hang: the outcome is asserted, never the time taken

Listing = dict[str, tuple[Any, ...]]


def outside_listing(root: Path) -> Listing:
    """Everything about ``root`` and below (lstat, never following): what must not change."""
    out: Listing = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            extra: Any = None
            if stat.S_ISLNK(st.st_mode):
                extra = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                extra = hashlib.sha256(Path(p).read_bytes()).hexdigest()
            out[os.path.relpath(p, root)] = (
                st.st_mode,
                st.st_uid,
                st.st_gid,
                st.st_size if not stat.S_ISDIR(st.st_mode) else 0,
                st.st_mtime_ns,
                st.st_ino,
                st.st_nlink,
                extra,
            )
    return out


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the target that a hostile point tries to reach."""
    d = tmp_path / "outside"
    (d / "subdir").mkdir(parents=True)
    (d / "victim").write_bytes(b"victim's data")
    (d / "subdir" / "x").write_bytes(b"x")
    for p in (d / "victim", d / "subdir" / "x", d / "subdir", d):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
        os.utime(p, ns=(OUTSIDE_MTIME_NS, OUTSIDE_MTIME_NS))
    return d


async def _restore_or_refuse(vault: tiervault.Vault, point: str, target: Path, **kw: Any) -> None:
    """Restore; a clean refusal (any tiervault error) is as good as a restore that stays inside."""
    try:
        await vault.restore(point, target, **kw)
    except tiervault.TiervaultError:
        pass


# ------------------------------------------------------------------ crafted points

Case = Callable[[Planter, str], Awaitable[str]]


async def _symlink_then_full_dir(p: Planter, out: str) -> str:
    """The probe: symlink ``l -> outside`` and a directory ``l`` with children (setuid mode)."""
    sub = await p.tree([p.file("victim", b"evil"), p.file("new", b"x")])
    return await p.tree([p.symlink("l", out), p.dir("l", sub, mode=0o4777)])


async def _symlink_then_empty_dir(p: Planter, out: str) -> str:
    """The symlink replaces the empty directory; directory metadata must not follow it."""
    return await p.tree([p.symlink("l", out), p.dir("l", await p.tree([]), mode=0o4777)])


async def _dir_then_symlink(p: Planter, out: str) -> str:
    sub = await p.tree([p.file("victim", b"evil")])
    return await p.tree([p.dir("l", sub, mode=0o777), p.symlink("l", out)])


async def _symlink_then_dir_of_specials(p: Planter, out: str) -> str:
    """Children created after the symlink replaced the (then empty) directory: a FIFO and links."""
    null = node("dev", "chardev", 0o4666, rdev=os.makedev(1, 3))  # restored only as root
    sub = await p.tree([null, p.fifo("f", mode=0o4777), p.symlink("s", "anywhere"), p.symlink("victim", "x")])
    return await p.tree([p.symlink("l", out), p.dir("l", sub, mode=0o4777)])


async def _nested_duplicates(p: Planter, out: str) -> str:
    inner = await p.tree([p.file("victim", b"evil"), p.fifo("fifo")])
    mid = await p.tree([p.dir("subdir", inner, mode=0o777), p.file("victim", b"evil")])
    a = await p.tree([p.symlink("l", out), p.dir("l", mid, mode=0o4777), p.symlink("l", out)])
    return await p.tree([p.dir("a", a)])


async def _symlink_to_file_then_file(p: Planter, out: str) -> str:
    return await p.tree([p.symlink("v", out + "/victim"), p.file("v", b"evil", mode=0o4777)])


async def _hard_links_through_a_symlink(p: Planter, out: str) -> str:
    """Two names of one inode, the first also a symlink to an outside file."""
    content = [p.chunk(b"evil")]
    first = node("h", "file", 0o4777, size=4, links=2, inode=7, device=1, content=content)
    second = node("g", "file", 0o4777, size=4, links=2, inode=7, device=1, content=content)
    return await p.tree([p.symlink("h", out + "/victim"), first, second, p.symlink("g", out + "/victim")])


async def _names_that_leave_the_directory(p: Planter, out: str) -> str:
    # the target is a sibling of ``outside``: ../outside/victim from the target is the victim
    sub = await p.tree([p.file("victim", b"evil")])
    return await p.tree(
        [
            p.file("../outside/victim", b"evil"),
            p.file("..", b"evil"),
            p.file(".", b"evil"),
            p.file("", b"evil"),
            p.dir("..", sub),
            p.dir("../outside", sub, mode=0o4777),
            p.symlink("../outside/new-link", "x"),
        ]
    )


CASES: dict[str, Case] = {
    "symlink-then-full-dir": _symlink_then_full_dir,
    "symlink-then-empty-dir": _symlink_then_empty_dir,
    "dir-then-symlink": _dir_then_symlink,
    "symlink-then-dir-of-specials": _symlink_then_dir_of_specials,
    "nested-duplicates": _nested_duplicates,
    "symlink-to-file-then-file": _symlink_to_file_then_file,
    "hard-links-through-a-symlink": _hard_links_through_a_symlink,
    "names-that-leave-the-directory": _names_that_leave_the_directory,
}


@pytest.mark.parametrize("verify", [False, True], ids=["plain", "verify"])
@pytest.mark.parametrize("case", list(CASES))
async def test_crafted_point_never_changes_anything_outside_the_target(
    vault: tiervault.Vault, tmp_path: Path, outside: Path, case: str, verify: bool
) -> None:
    plant = Planter(vault)
    point = await plant.commit(await CASES[case](plant, str(outside)))
    target = tmp_path / "target"
    before = outside_listing(outside)
    await _restore_or_refuse(vault, point, target, verify=verify)
    assert outside_listing(outside) == before, "the restore changed something outside its target"
    # a second restore into the same target meets what the first one left there
    await _restore_or_refuse(vault, point, target, verify=verify)
    assert outside_listing(outside) == before, "the second restore changed something outside its target"
    if target.exists():
        assert leftovers(target) == []


# ------------------------------------------------------------------ hostile targets, honest points


async def _honest_point(vault: tiervault.Vault, tmp_path: Path) -> str:
    src = tmp_path / "src"
    build_tree(
        src,
        {
            "top.txt": File(b"top"),
            "sub/deeper/c.txt": File(b"deep c", mode=0o4755),
            "sub/hard.txt": HardLink("sub/deeper/c.txt"),
            "links/l": Symlink(b"../top.txt"),
        },
    )
    await vault.protect(src, name="honest")
    return (await vault.snapshot("honest")).point.id


IN_THE_TARGET: dict[str, tuple[dict[str, str], list[str] | None]] = {
    # what the target holds (path -> what the symlink points to below ``outside``), what is restored
    "symlinked-dir": ({"sub": "."}, None),
    "symlinked-dir-selected-path": ({"sub": "."}, ["sub/deeper/c.txt"]),
    "symlinked-parent-of-a-selected-path": ({"sub/deeper": "subdir"}, ["sub/deeper/c.txt"]),
    "symlinked-files": ({"top.txt": "victim", "sub/hard.txt": "victim", "links/l": "victim"}, None),
    "symlinked-first-name-of-a-hard-link": ({"sub/deeper/c.txt": "victim"}, ["sub"]),
}


@pytest.mark.parametrize("case", list(IN_THE_TARGET))
async def test_symlinks_in_the_target_are_replaced_never_followed(
    vault: tiervault.Vault, tmp_path: Path, outside: Path, case: str
) -> None:
    point = await _honest_point(vault, tmp_path)
    links, paths = IN_THE_TARGET[case]
    target = tmp_path / "target"
    for rel, to in links.items():
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        (target / rel).symlink_to(outside / to)
    before = outside_listing(outside)
    result = await vault.restore(point, target, paths=paths, verify=True)
    assert outside_listing(outside) == before, "the restore wrote through a symlink in its target"
    assert result.ok, result.errors
    assert (target / "sub" / "deeper" / "c.txt").read_bytes() == b"deep c"
    assert not (target / "sub").is_symlink() and not (target / "sub" / "deeper").is_symlink()
    assert leftovers(target) == []


# ------------------------------------------------------------------ FIFOs in the target (defect 3)


async def _guarded(coro: Coroutine[Any, Any, tiervault.RestoreResult], fifo: Path) -> tiervault.RestoreResult:
    """Run a restore; if it hangs, release the thread blocked on ``fifo`` and fail."""
    try:
        return await asyncio.wait_for(coro, HANG_GUARD_S)
    except TimeoutError:
        if stat.S_ISFIFO(os.lstat(fifo).st_mode):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # a writer unblocks a blocked reader
        pytest.fail(f"the restore hung on the FIFO {fifo}")


@pytest.mark.parametrize(
    "where, paths",
    [("top.txt", ["top.txt"]), ("top.txt", None), ("sub/deeper/c.txt", ["sub"]), ("links/l", None)],
)
async def test_fifo_in_the_target_is_replaced_without_hanging(
    vault: tiervault.Vault, tmp_path: Path, where: str, paths: list[str] | None
) -> None:
    point = await _honest_point(vault, tmp_path)
    target = tmp_path / "target"
    fifo = target / where
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    result = await _guarded(vault.restore(point, target, paths=paths, verify=True), fifo)
    assert result.ok, result.errors
    assert not fifo.is_fifo()
    assert leftovers(target) == []
    again = await _guarded(vault.restore(point, target, paths=paths, verify=True), fifo)
    assert again.ok and again.stats.files_written == 0


async def test_fifo_where_a_directory_belongs_is_replaced(vault: tiervault.Vault, tmp_path: Path) -> None:
    point = await _honest_point(vault, tmp_path)
    target = tmp_path / "target"
    target.mkdir()
    os.mkfifo(target / "sub")
    result = await _guarded(vault.restore(point, target), target / "sub")
    assert result.ok, result.errors
    assert (target / "sub" / "deeper" / "c.txt").read_bytes() == b"deep c"


# ------------------------------------------------------------------ sizes against content (defect 8)


@pytest.mark.parametrize("verify", [False, True], ids=["plain", "verify"])
@pytest.mark.parametrize("holes", [False, True], ids=["data", "data-and-a-hole"])
async def test_file_whose_size_disagrees_with_its_content_is_refused(
    vault: tiervault.Vault, tmp_path: Path, verify: bool, holes: bool
) -> None:
    plant = Planter(vault)
    content: list[Any] = [plant.chunk(b"6bytes")] + ([4096] if holes else [])
    root = await plant.tree(
        [
            node("big", "file", 0o644, size=10**12, links=1, content=content),
            plant.file("fine", b"fine"),
            node("short", "file", 0o644, size=3, links=1, content=content),
        ]
    )
    point = await plant.commit(root)
    target = tmp_path / "target"
    result = await vault.restore(point, target, verify=verify)
    assert sorted(e["path"] for e in result.errors) == ["big", "short"]
    assert all("size" in e["error"] for e in result.errors), result.errors
    assert (target / "fine").read_bytes() == b"fine"
    assert not (target / "big").exists() and not (target / "short").exists()
    assert result.stats.files_written == 1
    assert leftovers(target) == []


# ------------------------------------------------------------------ the descriptor bounds


async def test_tight_descriptor_bounds_restore_the_same_tree(vault: tiervault.Vault, tmp_path: Path) -> None:
    """Directories evicted from the cache and files closed between writes are reopened (each file
    checked to be the same inode): one directory and one file descriptor at a time are enough."""
    rnd = random.Random(4)
    shared = rnd.randbytes(6 << 20)  # several chunks, each written into both copies in turn
    spec: dict[str, Any] = {f"d{i % 7}/e{i % 3}/f{i:03d}": File(rnd.randbytes(300)) for i in range(120)}
    spec |= {"a/copy1.bin": File(shared), "b/c/copy2.bin": File(shared)}
    spec["/".join(f"n{i}" for i in range(20)) + "/leaf"] = File(b"deep")
    src = tmp_path / "src"
    build_tree(src, spec)
    await vault.protect(src, name="tight")
    point = (await vault.snapshot("tight")).point
    record = await vault._record(point)
    for target in (tmp_path / "fresh", tmp_path / "fresh"):  # the second run finds it all unchanged
        restorer = Restorer(vault._repo, record, target, verify=True, max_open_files=1, max_open_dirs=1)
        stats, errors = await restorer.run()
        assert errors == []
        assert stats.files_verified == stats.files == len(spec)
    assert stats.files_unchanged == len(spec)
    assert_trees_equal(snapshot_tree(src), snapshot_tree(tmp_path / "fresh"))
    assert leftovers(tmp_path / "fresh") == []


# ------------------------------------------------------------------ names


async def test_name_with_a_nul_byte_is_an_error_for_that_entry(
    vault: tiervault.Vault, tmp_path: Path
) -> None:
    plant = Planter(vault)
    sub = await plant.tree([plant.file("inner", b"x")])
    root = await plant.tree([plant.file("a\0b", b"evil"), plant.dir("d\0", sub), plant.file("ok", b"ok")])
    target = tmp_path / "target"
    try:
        result = await vault.restore(await plant.commit(root), target, verify=True)
    except tiervault.TiervaultError:  # a decoder that refuses such a tree is as good
        assert not target.exists()
        return
    assert sorted(e["path"] for e in result.errors) == ["a\0b", "d\0"]
    assert all("invalid name" in e["error"] for e in result.errors)
    assert os.listdir(target) == ["ok"]


@pytest.mark.parametrize("rel", [b"..", b".", b"", b"a/../../x", b"../x", b"a//b", b"a/./b", b"x\0"])
def test_the_target_refuses_names_that_are_not_one_component(tmp_path: Path, rel: bytes) -> None:
    """Below the decoder's checks: the target itself never resolves ``..`` or an empty component."""
    (tmp_path / "t" / "a").mkdir(parents=True)
    target = DirectoryFS(os.fsencode(tmp_path / "t"))
    target.open()
    try:
        ops: list[Callable[[bytes], object]] = [target.lstat, target.make_dir, target.open_regular]
        if rel:  # dir(b"") is the target itself
            ops.append(lambda r: target.dir(r).__enter__())
        for op in ops:
            with pytest.raises(OSError, match="invalid name"):
                op(rel)
    finally:
        target.close()
    assert sorted(os.listdir(tmp_path)) == ["t"] and os.listdir(tmp_path / "t") == ["a"]


def test_a_name_is_tested_in_one_place() -> None:
    """What a name may be is decided by one function of the restore package (``dirfd.check_name``):
    the planner and the target used to test it twice (``bad_name``, ``_check_name``), two rules
    that could drift apart."""
    package = Path(tiervault.restore.__file__).parent
    testing_nul = sorted(
        f"{py.stem}.{fn.name}"
        for py in package.glob("*.py")
        for fn in ast.walk(ast.parse(py.read_text()))
        if isinstance(fn, ast.FunctionDef)
        and any(isinstance(c, ast.Constant) and c.value == b"\0" for c in ast.walk(fn))
    )
    assert testing_nul == ["dirfd.check_name"]


# ------------------------------------------------------------------ chunks and records


async def test_content_that_names_a_tree_is_an_error_for_that_file(
    vault: tiervault.Vault, tmp_path: Path
) -> None:
    """A file whose content is a tree's id: the tree's plaintext is never written as its data."""
    plant = Planter(vault)
    leaf = await plant.tree([])
    size = len(b'{"nodes":[],"v":1}')
    root = await plant.tree(
        [node("f", "file", 0o644, size=size, links=1, content=[leaf]), plant.file("ok", b"fine")]
    )
    target = tmp_path / "target"
    result = await vault.restore(await plant.commit(root), target, verify=True)
    assert [(e["path"], "is a tree, not data" in e["error"]) for e in result.errors] == [("f", True)]
    assert os.listdir(target) == ["ok"] and (target / "ok").read_bytes() == b"fine"


async def test_a_chunk_larger_than_the_chunker_cuts_is_an_error_for_that_file(
    vault: tiervault.Vault, tmp_path: Path
) -> None:
    """No chunk the repository's chunker cut exceeds its ``max_size``; a crafted one (up to 4 GiB of
    zeros compressed to almost nothing) would be decompressed in memory by every fetch task."""
    plant = Planter(vault)
    largest = vault._repo.chunker_params.max_size
    root = await plant.tree([plant.file("bomb", bytes(largest + 1)), plant.file("ok", b"fine")])
    target = tmp_path / "target"
    result = await vault.restore(await plant.commit(root), target)
    assert [e["path"] for e in result.errors] == ["bomb"]
    assert f"more than the repository's chunks can ({largest:,})" in result.errors[0]["error"]
    assert os.listdir(target) == ["ok"]


@pytest.mark.parametrize("source", ["/hostile\0source", "."])
async def test_a_source_that_is_no_absolute_path_guards_nothing(
    vault: tiervault.Vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    """The restore-target guard resolves the point's ``source``: a crafted one with a NUL byte
    crashed it (ValueError), a relative one made it refuse targets below the current directory."""
    plant = Planter(vault)
    point = await plant.commit(await plant.tree([plant.file("f", b"data")]), source=source)
    monkeypatch.chdir(tmp_path)
    result = await vault.restore(point, tmp_path / "target")
    assert result.ok and (tmp_path / "target" / "f").read_bytes() == b"data"
