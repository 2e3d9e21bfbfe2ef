"""Crafted points (issue 9, defects 1 and 8): trees a compromised host holding the key could write,
planted through the real writer (tests/support/hostile.py). ``check`` reports each, naming the tree
and the point; a restore refuses them with an IntegrityError before it writes anything."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest

import tiervault
from tests.support.hostile import Planter, node
from tests.support.trees import Dir, File, HardLink, build_tree
from tiervault.maintenance import check
from tiervault.repo.treewalk import DEFAULT_MAX_ENTRIES, TreeCounter, check_point


def errors_about(result: tiervault.CheckResult, *words: str) -> list[dict[str, str]]:
    return [e for e in result.errors if all(w in e["error"] or w in e["object"] for w in words)]


def warnings_about(result: tiervault.CheckResult, *words: str) -> list[dict[str, str]]:
    return [w for w in result.warnings if all(x in w["warning"] or x in w["object"] for x in words)]


async def check_both(vault: tiervault.Vault) -> list[tiervault.CheckResult]:
    return [await vault.check(), await vault.check(read_data=True)]


# ------------------------------------------------------------------ duplicate and unsorted names


async def test_duplicate_names_are_reported_and_never_restored(
    vault: tiervault.Vault, tmp_path: Path
) -> None:
    """Defect 1: a symlink ``l`` to a directory outside the target, then a directory ``l`` with
    children. The decoder refuses the tree, check names it and the point, the restore writes nothing."""
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o755)
    (outside / "victim").write_bytes(b"precious")
    before = sorted(os.listdir(outside)), outside.stat().st_mode
    plant = Planter(vault)
    sub = await plant.tree([plant.file("victim", b"evil"), plant.file("new", b"planted")])
    root = await plant.tree([plant.symlink("l", str(outside)), plant.dir("l", sub, mode=0o4777)])
    point = await plant.commit(root)

    for result in await check_both(vault):
        assert not result.ok
        (err,) = errors_about(result, "duplicate name in tree: 'l'", root[:16], f"snapshots/{point}")
        assert err["object"].startswith("meta/"), err  # the pack that holds the tree
    target = tmp_path / "target"
    with pytest.raises(tiervault.IntegrityError, match="duplicate name"):
        await vault.restore(point, target)
    assert (outside / "victim").read_bytes() == b"precious"
    assert (sorted(os.listdir(outside)), outside.stat().st_mode) == before
    assert not target.exists() or os.listdir(target) == []


async def test_unsorted_names_are_reported(vault: tiervault.Vault, tmp_path: Path) -> None:
    plant = Planter(vault)
    root = await plant.tree([plant.file("b", b"2"), plant.file("a", b"1")])
    point = await plant.commit(root)
    for result in await check_both(vault):
        assert errors_about(result, "not sorted by raw bytes", root[:16], f"snapshots/{point}")
    with pytest.raises(tiervault.IntegrityError, match="not sorted"):
        await vault.restore(point, tmp_path / "target")


# ------------------------------------------------------------------ bad fields

BAD_NODES: list[tuple[str, dict[str, Any]]] = [
    ("NUL in a name", node(b"a\x00b", "fifo", 0o644)),
    ("mode 2^40", node("f", "fifo", 2**40)),
    ("negative uid", {**node("f", "fifo", 0o644), "uid": -1}),
    ("huge gid", {**node("f", "fifo", 0o644), "gid": 2**64}),
    ("bool mode", {**node("f", "fifo", 0o644), "mode": True}),
    ("mtime beyond int64", {**node("f", "fifo", 0o644), "mtime_ns": 2**63}),
    ("hole of 0", node("f", "file", 0o644, size=0, links=1, content=[0])),
    ("subtree not hex", node("d", "dir", 0o755, subtree="zz" * 32)),
    ("empty symlink target", node("l", "symlink", 0o777, target="")),
    ("unknown type", node("s", "socket", 0o644)),
    ("xattr value not base64", {**node("f", "fifo", 0o644), "xattrs": [{"name": "user.x", "value": "!"}]}),
]


@pytest.mark.parametrize(("why", "bad"), BAD_NODES, ids=[w for w, _ in BAD_NODES])
async def test_bad_fields_are_integrity_errors(
    vault: tiervault.Vault, tmp_path: Path, why: str, bad: dict[str, Any]
) -> None:
    """Defect 8: "unexpected ValueError" (NUL), "unexpected OverflowError" (mode 2^40) before."""
    plant = Planter(vault)
    root = await plant.tree([bad])
    point = await plant.commit(root)
    for result in await check_both(vault):
        assert errors_about(result, "tree node", root[:16], f"snapshots/{point}"), (why, result.errors)
    with pytest.raises(tiervault.IntegrityError, match="tree node"):
        await vault.restore(point, tmp_path / "target")


async def test_a_bad_root_node_is_refused(vault: tiervault.Vault, tmp_path: Path) -> None:
    plant = Planter(vault)
    tree = await plant.tree([plant.file("a", b"1")])
    point = await plant.commit(tree, root=node("root", "dir", 2**40, subtree=tree))
    other = await plant.commit(tree, root=node("root", "dir", 0o755, subtree="00" * 32))
    result = await vault.check()
    assert errors_about(result, "bad root", "'mode'", f"snapshots/{point}"), result.errors
    assert errors_about(result, "root node is not the directory", f"snapshots/{other}"), result.errors
    for p in (point, other):
        with pytest.raises(tiervault.IntegrityError, match="root"):
            await vault.restore(p, tmp_path / "target")


# ------------------------------------------------------------------ sizes against the chunk list


async def test_a_size_that_disagrees_with_the_chunks_is_reported(vault: tiervault.Vault) -> None:
    """Defect 8: a stored size of 10^12 for 6 bytes of content passed check."""
    plant = Planter(vault)
    hole = node("holes", "file", 0o644, size=4096 + 6, links=1, content=[4096, plant.chunk(b"sixsix")])
    root = await plant.tree(
        [plant.file("big", b"sixsix", size=10**12), hole, plant.file("small", b"sixsix", size=2)]
    )
    point = await plant.commit(root)
    for result in await check_both(vault):
        assert errors_about(result, "'big'", "claims 1,000,000,000,000 bytes", "hold 6", f"snapshots/{point}")
        assert errors_about(result, "'small'", "claims 2 bytes", "hold 6")
        assert not errors_about(result, "'holes'"), result.errors  # 4096 + 6: right


async def test_content_that_names_a_tree_is_reported(vault: tiervault.Vault) -> None:
    plant = Planter(vault)
    leaf = await plant.tree([])
    root = await plant.tree(
        [node("f", "file", 0o644, size=len(b'{"nodes":[],"v":1}'), links=1, content=[leaf])]
    )
    await plant.commit(root)
    assert errors_about(await vault.check(), "'f'", "is a tree, not data")


# ------------------------------------------------------------------ expansion


async def doubling(plant: Planter, levels: int) -> str:
    """``levels`` trees, each holding two directories that are the next tree; one file at the bottom."""
    tree = await plant.tree([plant.file("x", b"bottom")])
    for _ in range(levels - 1):
        tree = await plant.tree([plant.dir("a", tree), plant.dir("b", tree)])
    return tree


async def test_an_exponential_point_is_reported_and_refused_up_front(
    vault: tiervault.Vault, tmp_path: Path
) -> None:
    """Defect 8: 25 trees, each referencing the next one twice, killed restore with a MemoryError
    while check accepted it. Check now counts its 2^25 paths (one pass over 25 trees) and reports
    them (a warning: a legitimately huge point looks the same, and restores with a larger
    max_entries); the restore refuses it before planning anything, naming the option; a restore of
    one path counts only that path; ``ls --recursive`` is bounded the same way."""
    plant = Planter(vault)
    root = await doubling(plant, 25)
    point = await plant.commit(root)
    expanded = 2**25 - 2 + 2**24  # the directories of 24 levels, and the file under each bottom one
    assert expanded > DEFAULT_MAX_ENTRIES
    for result in await check_both(vault):
        (warn,) = warnings_about(result, f"snapshots/{point}", f"expands to {expanded:,} entries")
        assert "from 25 distinct trees" in warn["warning"], warn
        assert "--max-entries" in warn["warning"]
        assert result.ok and result.trees == 25 and result.entries == expanded
    target = tmp_path / "target"
    with pytest.raises(tiervault.LimitError, match=r"expands to .* limit of 10,000,000.*max_entries="):
        await vault.restore(point, target)
    with pytest.raises(tiervault.LimitError, match="max_entries"):
        await vault.plan_restore(point)
    with pytest.raises(tiervault.LimitError, match="ls --max-entries"):
        await vault.ls(point, recursive=True)
    assert not target.exists()
    # one file deep inside: only its path is counted, and it restores
    deep_file = "/".join(["a"] * 24 + ["x"])
    one = await vault.restore(point, target, paths=[deep_file])
    assert one.ok and one.stats.files == 1 and (target / deep_file).read_bytes() == b"bottom"
    # a thousand levels: the counts saturate rather than grow without end, and nothing recurses
    deep = await plant.commit(await doubling(plant, 1000))
    (err,) = errors_about(await vault.check(), f"snapshots/{deep}")
    assert "paths of 1,000 names, more than the limit of 512" in err["error"]


async def test_the_limit_is_configurable(vault: tiervault.Vault, tmp_path: Path) -> None:
    plant = Planter(vault)
    point = await plant.commit(await doubling(plant, 4))  # 2 + 4 + 8 dirs, 8 files: 22 entries
    assert not (await check(vault._repo, max_entries=22)).warnings
    result = await check(vault._repo, max_entries=21)
    assert result.ok and warnings_about(result, "expands to 22 entries from 4 distinct trees", "limit of 21")
    with pytest.raises(tiervault.LimitError, match="limit of 21"):
        await vault.restore(point, tmp_path / "t", max_entries=21)
    assert not (tmp_path / "t").exists()
    restored = await vault.restore(point, tmp_path / "t", max_entries=22)
    assert restored.ok and restored.stats.files == 8 and restored.stats.dirs == 14
    assert (tmp_path / "t" / "a" / "b" / "a" / "x").read_bytes() == b"bottom"
    # a selection counts only itself: a/ holds 1 + 2 + 4 dirs and 4 files
    part = await vault.restore(point, tmp_path / "p", paths=["a"], max_entries=11)
    assert part.ok and part.stats.files == 4
    with pytest.raises(tiervault.LimitError, match="the selection expands to 11 entries"):
        await vault.restore(point, tmp_path / "q", paths=["a"], max_entries=10)
    assert len(await vault.ls(point, recursive=True, max_entries=22)) == 22
    with pytest.raises(tiervault.LimitError):
        await vault.ls(point, recursive=True, max_entries=21)
    assert len(await vault.ls(point, "a", max_entries=1)) == 2  # not recursive: one directory's entries


async def test_too_deep_a_point_is_reported_and_refused(vault: tiervault.Vault, tmp_path: Path) -> None:
    """1500 nested directories: the restore's recursive walk ran out of stack mid-plan (and blamed a
    tree for it); check and restore now refuse paths of more than 512 names up front."""
    plant = Planter(vault)
    tree = await plant.tree([plant.file("x", b"deep")])
    for _ in range(1499):
        tree = await plant.tree([plant.dir("d", tree)])
    point = await plant.commit(tree)
    result = await vault.check()
    assert len(errors_about(result, f"snapshots/{point}", "paths of 1,500 names", "limit of 512")) == 1
    assert result.trees == 1500 and result.entries == 1500
    with pytest.raises(tiervault.IntegrityError, match="paths of 1,500 names"):
        await vault.restore(point, tmp_path / "target")
    assert not (tmp_path / "target").exists()
    # within the limit: restored
    shallow = await plant.tree([plant.file("x", b"deep")])
    for _ in range(511):
        shallow = await plant.tree([plant.dir("d", shallow)])
    restored = await vault.restore(await plant.commit(shallow), tmp_path / "ok")
    assert restored.ok and (tmp_path / "ok" / os.path.join(*["d"] * 511) / "x").read_bytes() == b"deep"


async def test_shared_subtrees_restore_and_check_clean(vault: tiervault.Vault, tmp_path: Path) -> None:
    """Identical directories are one tree referenced twice (dedup): legitimate, restored in full,
    and counted honestly (distinct trees, and entries per path)."""
    src = tmp_path / "src"
    # a hard-linked copy of a directory (cp -al, rsnapshot): equal entries, so one tree
    build_tree(
        src,
        {
            "one/f.txt": File(b"same"),
            "one/g.bin": File(random.Random(3).randbytes(5000)),
            "two/f.txt": HardLink("one/f.txt"),
            "two/g.bin": HardLink("one/g.bin"),
            "empty1": Dir(),
            "empty2": Dir(mode=0o700),
            "top": File(b"t"),
        },
    )
    await vault.protect(src, name="src")
    point = (await vault.snapshot("src")).point
    result = await vault.check(read_data=True)
    assert result.ok, result.errors
    # root, one == two, empty1 == empty2: 3 distinct trees; 9 entries: 5 at the top, 2 + 2 below
    assert (result.trees, result.entries) == (3, 9)
    restored = await vault.restore(point, tmp_path / "out")
    assert restored.ok and restored.stats.files == 5
    for d in ("one", "two"):
        assert (tmp_path / "out" / d / "f.txt").read_bytes() == b"same"
    record = await vault._repo.find_snapshot(point.id)
    assert (await check_point(vault._repo, record, max_entries=9)).entries == 9


async def test_the_counter_agrees_with_a_full_walk(vault: tiervault.Vault) -> None:
    """TreeCounter's one pass over distinct trees gives what expanding every path gives, on random
    DAGs of shared subtrees."""
    rnd = random.Random(9)
    plant = Planter(vault)
    for _ in range(5):
        trees: list[str] = []
        for _ in range(30):
            nodes = [plant.file(f"f{j}", bytes([j])) for j in range(rnd.randrange(3))]
            picks = sorted({rnd.randrange(len(trees)) for _ in range(rnd.randrange(4))}) if trees else []
            nodes += [plant.dir(f"d{k}", trees[k]) for k in picks]
            trees.append(await plant.tree(sorted(nodes, key=lambda n: n["name"])))
        await plant.flush()

        async def walk(tid: bytes) -> int:
            total = 0
            for n in await vault._repo.load_tree(tid):
                total += 1 + (await walk(n.subtree) if n.subtree is not None else 0)
            return total

        counter = TreeCounter(vault._repo)
        for t in trees:
            assert await counter.entries(bytes.fromhex(t)) == await walk(bytes.fromhex(t))
        assert counter.distinct_trees == len(set(trees))
