"""A restore that finds a pack gone (a prune swept it after the restore was planned) reloads the
index once and reads the blobs from their new location (docs/format.md, "Restores and other
readers"); with no other copy it fails naming the pack and the chunk. The sweep is interleaved
deterministically: it runs just before the restore's first read of a data pack."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import tiervault
from tests.e2e import KDF, PASSWORD, KiB, MiB, repo_objects
from tests.support.interleave import BeforeGet, repack_and_delete
from tests.support.trees import File, assert_trees_equal, build_tree, snapshot_tree
from tiervault.backend.local import LocalBackend
from tiervault.core.format.envelope import ObjectType
from tiervault.core.format.gcobjects import CondemnedPack, PlanRecord
from tiervault.repo.locations import index_records, locations_of
from tiervault.repo.repository import Repository


def _id(name: str) -> str:
    return name.rsplit("/", 1)[-1]


@pytest.fixture
async def point(repo_path: Path, tmp_path: Path) -> tiervault.RecoveryPoint:
    """A point whose content spans several data packs (1 MiB packs, 3 MiB of random files)."""
    rnd = random.Random(7)
    build_tree(tmp_path / "src", {f"f{i}.bin": File(rnd.randbytes(300 * KiB)) for i in range(10)})
    repo = await Repository.init(LocalBackend(repo_path), PASSWORD.encode(), pack_size=1 * MiB, kdf=KDF)
    async with tiervault.Vault(repo) as vault:
        await vault.protect(tmp_path / "src", name="src")
        p: tiervault.RecoveryPoint = (await vault.snapshot("src")).point
    assert len(repo_objects(repo_path, "data")) >= 2
    return p


async def _vault(
    repo_path: Path,
    action: Callable[[LocalBackend], Awaitable[None]],
    method: str = "get",
    prefix: str = "data/",
) -> tuple[tiervault.Vault, BeforeGet]:
    """The repository through a ``BeforeGet`` that runs ``action`` (on the store itself, as another
    process would) before the first read of a data pack."""
    inner = LocalBackend(repo_path)
    wrapped = BeforeGet(inner, lambda name: name.startswith(prefix), lambda: action(inner), method=method)
    return tiervault.Vault(await Repository.open(wrapped, PASSWORD.encode())), wrapped


async def test_a_restore_reads_swept_packs_from_their_repacked_copies(
    point: tiervault.RecoveryPoint, repo_path: Path, tmp_path: Path
) -> None:
    old = repo_objects(repo_path, "data")
    moved: list[str] = []

    async def sweep_all(store: LocalBackend) -> None:  # a repack, then a sweep of every data pack
        moved.extend(await repack_and_delete(await Repository.open(store, PASSWORD.encode()), old))

    vault, wrapped = await _vault(repo_path, sweep_all)
    async with vault:
        out = tmp_path / "out"
        result = await vault.restore(point, out)
        assert wrapped.fired and moved
        assert set(repo_objects(repo_path, "data")) == set(moved)  # every pack it planned is gone
        assert not result.errors and result.stats.files_written == 10
        assert_trees_equal(snapshot_tree(tmp_path / "src"), snapshot_tree(out))
        assert wrapped.lists_after.get("index/") == 1  # the index was reloaded once, for every pack


async def test_a_restore_fails_naming_the_pack_and_chunk_when_no_other_pack_holds_it(
    point: tiervault.RecoveryPoint, repo_path: Path, tmp_path: Path
) -> None:
    victim = repo_objects(repo_path, "data")[0]

    async def delete(store: LocalBackend) -> None:
        await store.delete(victim)

    vault, _wrapped = await _vault(repo_path, delete)
    async with vault:
        with pytest.raises(tiervault.ObjectNotFoundError) as info:
            await vault.restore(point, tmp_path / "out")
        message = str(info.value)
        assert (
            victim in message
            and "deleted during the restore" in message
            and "no other pack holds chunk" in message
        )


async def test_packs_swept_before_the_plan_checks_them_are_planned_from_their_copies(
    point: tiervault.RecoveryPoint, repo_path: Path, tmp_path: Path
) -> None:
    """The sweep lands between loading the index and the plan's look at the packs (its ``stat``):
    the plan moves to the repacked copies instead of refusing the restore."""
    old = repo_objects(repo_path, "data")
    moved: list[str] = []

    async def sweep_all(store: LocalBackend) -> None:
        moved.extend(await repack_and_delete(await Repository.open(store, PASSWORD.encode()), old))

    vault, wrapped = await _vault(repo_path, sweep_all, method="stat")
    async with vault:
        summary = await vault.plan_restore(point)  # planning alone only says what is there now
        assert wrapped.fired and summary.packs.get("missing") == len(old)
        out = tmp_path / "out"
        result = await vault.restore(point, out)
        assert not result.errors and result.stats.files_written == 10
        assert result.stats.packs_read == len(moved)  # only the copies were read
        assert_trees_equal(snapshot_tree(tmp_path / "src"), snapshot_tree(out))


async def test_a_restore_prefers_a_copy_no_plan_condemns(
    point: tiervault.RecoveryPoint, repo_path: Path, tmp_path: Path
) -> None:
    """Each swept pack has two copies, one condemned by a pending plan (version 2), and the index
    files list a condemned copy first for some chunk: the blobs are still read from the other copy
    (a condemned pack is a worse location), not from the first one listed."""
    old = repo_objects(repo_path, "data")
    condemned: list[str] = []
    usable: list[str] = []

    async def sweep_all(store: LocalBackend) -> None:
        other = await Repository.open(store, PASSWORD.encode())
        assert other.gc_enabled
        ids = {_id(n) for n in old}
        chunks = {e.id for r in await index_records(other) if r.pack_id in ids for e in r.entries}
        # two copies of every pack, each set in its own index file; the set the listing gives first
        # is the one condemned, so a reader taking the first location listed would read it
        copies = [await repack_and_delete(other, old, delete=False) for _ in range(2)]
        found = await locations_of(other, chunks, exclude=ids)
        first = {locs[0].pack.name for locs in found.values()}
        listed_first = 0 if first <= set(copies[0]) else 1
        assert first <= set(copies[listed_first])
        condemned.extend(copies[listed_first])
        usable.extend(copies[1 - listed_first])
        packs = tuple(CondemnedPack(_id(n), "data", "repacked") for n in sorted(condemned, key=_id))
        await other.objects.save_plain("gc/", ObjectType.PLAN, PlanRecord(packs, (), "h", 1).to_bytes())
        for name in old:
            await store.delete(name)

    vault, wrapped = await _vault(repo_path, sweep_all)
    async with vault:
        out = tmp_path / "out"
        result = await vault.restore(point, out)
        assert not result.errors
        assert_trees_equal(snapshot_tree(tmp_path / "src"), snapshot_tree(out))
        read = {n for n in wrapped.gets_after if n.startswith("data/")}
        assert read - set(old) == set(usable)  # none of the condemned copies


async def test_trees_of_a_swept_metadata_pack_are_read_from_their_copy(
    point: tiervault.RecoveryPoint, repo_path: Path, tmp_path: Path
) -> None:
    """The sweep lands just before the first read of a metadata pack (the plan's walk of the trees):
    the trees are read from the repacked copy, after one reload of the index files."""
    old = repo_objects(repo_path, "meta")
    moved: list[str] = []

    async def sweep_meta(store: LocalBackend) -> None:
        moved.extend(await repack_and_delete(await Repository.open(store, PASSWORD.encode()), old))

    vault, wrapped = await _vault(repo_path, sweep_meta, prefix="meta/")
    async with vault:
        out = tmp_path / "out"
        result = await vault.restore(point, out)
        assert wrapped.fired and set(repo_objects(repo_path, "meta")) == set(moved)
        assert not result.errors and result.stats.files_written == 10
        assert_trees_equal(snapshot_tree(tmp_path / "src"), snapshot_tree(out))
        assert wrapped.lists_after.get("index/") == 1
        assert {n for n in wrapped.gets_after if n.startswith("meta/")} == set(old) | set(moved)


async def test_a_tree_no_other_pack_holds_fails_naming_its_pack(
    point: tiervault.RecoveryPoint, repo_path: Path
) -> None:
    (victim,) = repo_objects(repo_path, "meta")

    async def delete(store: LocalBackend) -> None:
        await store.delete(victim)

    vault, _wrapped = await _vault(repo_path, delete, prefix="meta/")
    async with vault:
        with pytest.raises(tiervault.ObjectNotFoundError) as info:
            await vault.ls(point)
        assert victim in str(info.value) and "no other pack holds tree" in str(info.value)
