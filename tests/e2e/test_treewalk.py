"""The one tree walker (repo/treewalk.py): ``walk`` yields every path of a point in the order a
restore plans it, agrees with the file system it was taken from and with ``TreeCounter``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import tiervault
from tests.e2e import repo_objects
from tests.support.hostile import Planter
from tiervault.repo.treewalk import TreeCounter, data_packs_of, walk


def fs_preorder(root: bytes, rel: bytes = b"") -> list[bytes]:
    """Every path below ``root``: depth first, entries by raw name, a directory before its entries."""
    out = []
    for name in sorted(os.listdir(os.path.join(root, rel) if rel else root)):
        path = rel + b"/" + name if rel else name
        out.append(path)
        if os.path.isdir(os.path.join(root, path)) and not os.path.islink(os.path.join(root, path)):
            out += fs_preorder(root, path)
    return out


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    for d in ("a", "a/b", "a/b/c", "z", "é", "empty"):
        (src / d).mkdir(parents=True)
    for f in ("a/1", "a/b/2", "a/b/c/3", "z/4", "é/5", "top"):
        (src / f).write_bytes(f.encode() * 1000)
    os.symlink("a/1", src / "link")
    os.mkfifo(src / "a" / "fifo")
    (src / os.fsdecode(b"raw\xff")).write_bytes(b"non-utf-8 name")
    return src


async def test_walk_yields_every_path_in_plan_order(
    vault: tiervault.Vault, source: Path, repo_path: Path
) -> None:
    await vault.protect(source, name="src")
    point = (await vault.snapshot("src")).point
    tree = bytes.fromhex((await vault._repo.load_snapshot(point.id)).tree)
    paths = [p async for p, _node in walk(vault._repo, tree)]
    assert paths == fs_preorder(os.fsencode(source))
    assert len(paths) == await TreeCounter(vault._repo).entries(tree)
    # only the top level, or one directory below a prefix
    assert [p async for p, _ in walk(vault._repo, tree, descend=lambda _p, _n: False)] == sorted(
        os.listdir(os.fsencode(source))
    )
    entered = [p async for p, _ in walk(vault._repo, tree, prefix=b"x", descend=lambda p, _n: p == b"x/a")]
    assert b"x/a/b" in entered and b"x/a/b/2" not in entered and b"x/z/4" not in entered
    # the data packs of the point are the repository's data packs
    assert await data_packs_of(vault._repo, tree) == set(repo_objects(repo_path, "data"))


async def test_walk_refuses_paths_deeper_than_its_limit(vault: tiervault.Vault) -> None:
    plant = Planter(vault)
    tid = await plant.tree([plant.file("leaf", b"x")])
    for i in range(8):
        tid = await plant.tree([plant.dir(f"d{i}", tid)])
    await plant.flush()
    root = bytes.fromhex(tid)
    assert len([p async for p, _ in walk(vault._repo, root, max_depth=9)]) == 9
    with pytest.raises(tiervault.IntegrityError, match="deeper than 8 names"):
        [p async for p, _ in walk(vault._repo, root, max_depth=8)]
