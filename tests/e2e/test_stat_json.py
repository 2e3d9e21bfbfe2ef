"""The archiver builds tree JSON objects straight from ``lstat`` (``stat_json``) and keeps the parent's
objects for unchanged entries: both must be exactly what ``node_to_json`` writes for the same node,
or a no-change snapshot would write new trees (or, worse, trees that decode differently)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import tiervault
from tiervault.core.format.tree import (
    decode_tree,
    decode_tree_json,
    encode_tree,
    encode_tree_json,
    node_from_json,
    node_to_json,
)
from tiervault.sources.folder import list_dir, stat_json


def _entries(root: Path) -> list[tuple[bytes, bytes, os.stat_result]]:
    out = []
    for name, st in list_dir(os.fsencode(root)):
        assert not isinstance(st, OSError)
        out.append((os.path.join(os.fsencode(root), name), name, st))
    return out


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    (root / "plain.txt").write_bytes(b"hello")
    (root / "sub").mkdir()
    os.symlink("plain.txt", root / "link")
    os.symlink(b"\xff\xfe-target", os.path.join(os.fsencode(root), b"bad-\xff-name"))
    os.mkfifo(root / "fifo")
    hard = root / "hard"
    os.link(root / "plain.txt", hard)
    tagged = root / "tagged"
    tagged.write_bytes(b"x")
    try:
        os.setxattr(tagged, "user.tiervault", b"\x00\x01value")
    except OSError:
        pass  # a file system without user xattrs: the object then simply has none
    os.chmod(root / "plain.txt", 0o640)
    os.utime(root / "plain.txt", ns=(1, 1_700_000_000_123_456_789))
    return root


def _completed(obj: dict[str, object]) -> dict[str, object]:
    """What the archiver adds: a file's content, a directory's subtree."""
    if obj["type"] == "file":
        obj["content"] = ["02" * 32, 4096]
    if obj["type"] == "dir":
        obj["subtree"] = "03" * 32
    return obj


def test_stat_json_records_lstat_and_is_canonical(tree: Path) -> None:
    """Every field comes from lstat (or readlink / the xattrs), and the object is exactly what
    node_to_json writes for the node it decodes to: the archiver's objects and trees written from
    Nodes never differ for the same entry."""
    seen = set()
    for path, name, st in _entries(tree):
        obj = stat_json(path, name, st)
        assert obj is not None
        node = node_from_json(_completed(obj))
        seen.add(node.type)
        assert (node.name, node.mode, node.uid, node.gid) == (
            name,
            stat.S_IMODE(st.st_mode),
            st.st_uid,
            st.st_gid,
        )
        assert (node.mtime_ns, node.ctime_ns, node.inode, node.device) == (
            st.st_mtime_ns,
            st.st_ctime_ns,
            st.st_ino,
            st.st_dev,
        )
        if node.type == "file":
            assert (node.size, node.links) == (st.st_size, st.st_nlink)
        if node.type == "symlink":
            assert node.target == os.readlink(path)
        if name == b"tagged" and os.listxattr(path):
            assert node.xattrs == [(b"user.tiervault", b"\x00\x01value")]
        assert node_to_json(node) == obj, name
    assert stat_json(path, name, st, xattrs=False) is not None
    assert {"file", "dir", "symlink", "fifo"} <= seen


def test_a_tree_of_objects_encodes_like_a_tree_of_nodes(tree: Path) -> None:
    objs = [_completed(stat_json(path, name, st) or {}) for path, name, st in _entries(tree)]
    nodes = [node_from_json(o) for o in objs]
    data = encode_tree(nodes)
    assert encode_tree_json(objs) == data
    assert decode_tree_json(data) == objs  # what the archiver compares a directory with
    assert decode_tree(data) == nodes


async def test_unchanged_files_take_the_fast_path_and_give_the_same_tree(
    vault: tiervault.Vault, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An incremental run reuses the parent's object of an unchanged file without rebuilding it
    (no stat_json call), and the directory's tree id stays the same; a touched file is rebuilt."""
    await vault.protect(tree, name="src")
    first = await vault.snapshot("src")
    built: list[bytes] = []

    def counting(path: bytes, name: bytes, st: os.stat_result, **kw: bool) -> dict[str, object] | None:
        built.append(name)
        return stat_json(path, name, st, **kw)

    monkeypatch.setattr("tiervault.archiver.walker.stat_json", counting)
    second = await vault.snapshot("src")
    files = {n for _, n, st in _entries(tree) if stat.S_ISREG(st.st_mode)}
    assert files and not files & set(built), "unchanged files were rebuilt"
    assert second.stats.files_reused == len(files) and second.stats.files_read == 0
    repo = vault._repo
    assert (await repo.load_snapshot(second.point.id)).tree == (await repo.load_snapshot(first.point.id)).tree

    os.utime(tree / "tagged", ns=(1, 2))  # xattrs kept, mtime changed: rebuilt, read again
    built.clear()
    third = await vault.snapshot("src")
    assert b"tagged" in built and third.stats.files_read == 1
    out = tree.parent / "out"
    assert (await vault.restore(third.point, out)).ok
    assert os.stat(out / "tagged").st_mtime_ns == 2
