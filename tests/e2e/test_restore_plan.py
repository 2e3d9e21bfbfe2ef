"""The restore plan: every pack a restore needs, and whether it can be read, known before any write.

A pack in the Archive tier (LocalBackend emulates tiers with sidecars), one being rehydrated, or one
missing from the store refuses the restore before the target is even created; ``plan_restore``
reports the same without writing anything.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

import tiervault
from tests.e2e import KDF, PASSWORD, KiB, open_vault, repo_objects
from tests.support.trees import File, assert_trees_equal, build_tree, snapshot_tree
from tiervault.backend.base import Tier
from tiervault.backend.local import LocalBackend
from tiervault.restore import PackState, Selection
from tiervault.restore.planner import find_pack_states, plan_restore

PACK_SIZE = 1 << 20  # the smallest pack size: several data packs from a few MiB


async def _point(repo: Path, src: Path, *, cache_dir: Path | bool = False) -> tiervault.RecoveryPoint:
    rnd = random.Random(7)
    build_tree(
        src, {f"d{i % 2}/f{i}.bin": File(rnd.randbytes(700 * KiB)) for i in range(8)} | {"e": File(b"")}
    )
    async with tiervault.init(
        repo, password=PASSWORD, kdf=KDF, pack_size=PACK_SIZE, cache_dir=cache_dir
    ) as v:
        await v.protect(src, name="src")
        return (await v.snapshot("src")).point


async def _set_tier(repo: Path, names: list[str], tier: Tier) -> None:
    async with LocalBackend(repo) as store:
        await store.set_tier_many(names, tier)


async def _rehydrate(repo: Path, names: list[str], *, seconds: float) -> None:
    async with LocalBackend(repo, rehydrate_seconds=seconds) as store:
        for name in names:
            await store.rehydrate(name)


@pytest.fixture
async def point(tmp_path: Path) -> tiervault.RecoveryPoint:
    return await _point(tmp_path / "repo", tmp_path / "src")


async def test_an_archived_pack_refuses_the_restore_before_anything_is_written(
    point: tiervault.RecoveryPoint, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    packs = repo_objects(repo, "data")
    assert len(packs) >= 3
    await _set_tier(repo, packs[:2], Tier.ARCHIVE)
    out = tmp_path / "out"
    async with open_vault(repo) as vault:
        with pytest.raises(
            tiervault.ObjectArchivedError, match=r"2 packs \([\d,]+ bytes\) in the Archive tier"
        ):
            await vault.restore(point, out)
        assert not out.exists()  # not even the target directory
        plan = await vault.plan_restore(point)
    assert not plan.readable
    assert plan.packs == {"readable": len(packs) - 2, "archived": 2}
    assert plan.bytes_by_tier["archive"] == plan.bytes_by_state["archived"] > 0
    assert plan.bytes_by_tier["hot"] == plan.bytes_by_state["readable"] > 0
    assert plan.files == 9 and plan.bytes == 8 * 700 * KiB and plan.fetch_bytes > plan.bytes // 2

    await _rehydrate(repo, packs[:2], seconds=0)  # readable again: the same restore now works
    async with open_vault(repo) as vault:
        assert (await vault.plan_restore(point)).readable
        result = await vault.restore(point, out, verify=True)
    assert result.ok and result.stats.files_written == 9
    assert result.stats.bytes_written == result.stats.bytes_total == plan.bytes  # no holes here
    assert_trees_equal(snapshot_tree(tmp_path / "src"), snapshot_tree(out))


async def test_a_pack_being_rehydrated_refuses_the_restore(
    point: tiervault.RecoveryPoint, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    packs = repo_objects(repo, "data")
    await _set_tier(repo, packs[:1], Tier.ARCHIVE)
    await _rehydrate(repo, packs[:1], seconds=1e9)  # a rehydration that does not end during the test
    out = tmp_path / "out"
    async with open_vault(repo) as vault:
        with pytest.raises(tiervault.ObjectArchivedError, match=r"1 pack .* still being rehydrated.*wait"):
            await vault.restore(point, out)
        assert (await vault.plan_restore(point)).packs == {"readable": len(packs) - 1, "rehydrating": 1}
    assert not out.exists()


async def test_a_missing_pack_refuses_the_restore_before_anything_is_written(
    point: tiervault.RecoveryPoint, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    victim = repo_objects(repo, "data")[0]
    (repo / victim).unlink()
    out = tmp_path / "out"
    async with open_vault(repo) as vault:
        with pytest.raises(
            tiervault.ObjectNotFoundError, match=f"1 pack .* missing .*{victim}.*nothing was written"
        ):
            await vault.restore(point, out)
        assert (await vault.plan_restore(point)).packs["missing"] == 1
    assert not out.exists()


async def test_a_selection_needs_only_its_own_packs(point: tiervault.RecoveryPoint, tmp_path: Path) -> None:
    """Archived packs the selection does not read do not stop it."""
    repo = tmp_path / "repo"
    async with open_vault(repo) as vault:
        rec = await vault._record(point)
        one = await plan_restore(vault._repo, rec, Selection(paths=["d0/f0.bin"]))
        every = await plan_restore(vault._repo, rec)
    assert [f.rel for f in one.files] == [b"d0/f0.bin"] and [d for d, _ in one.dirs] == [b"d0"]
    others = sorted(set(every.packs) - set(one.packs))
    assert others
    await _set_tier(repo, others, Tier.ARCHIVE)
    async with open_vault(repo) as vault:
        result = await vault.restore(point, tmp_path / "out", paths=["d0/f0.bin"])
        with pytest.raises(tiervault.ObjectArchivedError):
            await vault.restore(point, tmp_path / "all")
    assert result.ok and result.stats.files_written == 1
    assert (tmp_path / "out" / "d0" / "f0.bin").read_bytes() == (
        tmp_path / "src" / "d0" / "f0.bin"
    ).read_bytes()
    assert not (tmp_path / "all").exists()


@pytest.mark.parametrize("list_above", [0, 1000])  # one list of data/, or one stat per pack
async def test_pack_states_by_list_and_by_stat_agree(
    point: tiervault.RecoveryPoint, tmp_path: Path, list_above: int
) -> None:
    repo = tmp_path / "repo"
    packs = repo_objects(repo, "data")
    await _set_tier(repo, packs[:1], Tier.ARCHIVE)
    await _set_tier(repo, packs[1:2], Tier.COLD)
    (repo / packs[2]).unlink()
    async with open_vault(repo) as vault:
        plan = await plan_restore(vault._repo, await vault._record(point))
        await find_pack_states(vault._repo, plan.packs, list_above=list_above)
    states = {name: (need.state, need.tier) for name, need in plan.packs.items()}
    assert states[packs[0]] == (PackState.ARCHIVED, "archive")
    assert states[packs[1]] == (PackState.READABLE, "cold")
    assert states[packs[2]] == (PackState.MISSING, None)
    assert len(packs) > 3 and {states[p] for p in packs[3:]} == {(PackState.READABLE, "hot")}


async def test_packs_on_the_disk_tier_are_readable_whatever_their_store_tier(tmp_path: Path) -> None:
    """Right after a snapshot the disk tier holds every pack (write-through): archiving them in the
    store does not stop a restore that reads them from local disk, and nothing asks the store."""
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    point = await _point(repo, tmp_path / "src", cache_dir=cache)
    await _set_tier(repo, repo_objects(repo, "data"), Tier.ARCHIVE)
    async with tiervault.open(repo, password=PASSWORD, cache_dir=cache) as vault:
        plan = await vault.plan_restore(point)
        result = await vault.restore(point, tmp_path / "out")
    assert plan.readable and set(plan.bytes_by_tier) == {"disk"}
    assert result.ok and result.stats.remote_reads == 0
    assert_trees_equal(snapshot_tree(tmp_path / "src"), snapshot_tree(tmp_path / "out"))


async def test_plan_restore_writes_nothing_and_selects_like_restore(
    point: tiervault.RecoveryPoint, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    before = sorted(os.listdir(tmp_path))
    async with open_vault(repo) as vault:
        plan = await vault.plan_restore(point, include=["f1.bin", "f3.bin"])
        with pytest.raises(tiervault.NotFoundError):
            await vault.plan_restore(point, paths=["nope"])
    assert sorted(os.listdir(tmp_path)) == before
    assert (plan.files, plan.dirs, plan.bytes) == (2, 1, 2 * 700 * KiB)
    assert plan.to_json()["readable"] is True and plan.errors == ()
