"""``Vault.stats``: real repositories written through the real writer, some packs moved to colder
tiers (LocalBackend and MemoryBackend emulate tiers), every figure checked against an independent
computation here: the tiers from the repository directory and the tiers this test set, the points'
and items' bytes from a plain recursive walk of their trees, the costs from the table's prices."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import tiervault
from tests.e2e import KDF, PASSWORD, repo_objects
from tests.prune.helpers import SMALL_CHUNKS, memory_vault, noise, write_files
from tests.support import FakeClock, MemoryBackend, hostile
from tiervault.backend.base import Tier
from tiervault.backend.local import LocalBackend
from tiervault.costs import default_prices
from tiervault.errors import UsageError
from tiervault.repo.repository import Repository

T = default_prices()
MINIMUM = 128 << 10


def price(tier: Tier) -> float:
    return T.tier(tier).storage_per_gb_month / 2**30


async def chunks_of(repo: Repository, tree: bytes) -> set[bytes]:
    """The trees and content chunks below ``tree``: a plain recursion, independent of treewalk."""
    out = {tree}
    for node in await repo.load_tree(tree):
        out.update(c for c in node.content if isinstance(c, bytes))
        if node.subtree is not None:
            out |= await chunks_of(repo, node.subtree)
    return out


def objects_on_disk(repo: Path) -> dict[str, int]:
    """Every object in the repository directory (not the backend's hidden files) and its size."""
    out: dict[str, int] = {}
    for dirpath, dirnames, filenames in os.walk(repo):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith("."):
                p = Path(dirpath, name)
                out[p.relative_to(repo).as_posix()] = p.stat().st_size
    return out


async def _history(repo: Path, src: Path) -> None:
    """Two items; three points of ``app`` whose big file changes its tail, one of ``etc``."""
    async with tiervault.init(repo, password=PASSWORD, kdf=KDF, pack_size=1 << 20, chunker=SMALL_CHUNKS) as v:
        write_files(src / "etc", {"a.conf": b"x = 1\n", "b.bin": noise(9, 300_000)})
        await v.protect(src / "etc", name="etc")
        await v.snapshot("etc")
        for i in range(3):
            write_files(src / "app", {"big.bin": noise(1, 1_500_000) + noise(100 + i, 400_000), "same": b"s"})
            await v.protect(src / "app", name="app")
            await v.snapshot("app")


async def test_stats_per_tier_item_and_point_match_an_independent_count(tmp_path: Path) -> None:
    repo, src = tmp_path / "repo", tmp_path / "src"
    await _history(repo, src)
    packs = repo_objects(repo, "data")
    assert len(packs) >= 4
    moved = {packs[0]: Tier.ARCHIVE, packs[1]: Tier.COLD, packs[2]: Tier.COOL}
    async with LocalBackend(repo) as store:
        for name, tier in moved.items():
            await store.set_tier(name, tier)

    async with tiervault.open(repo, password=PASSWORD) as v:
        report = await v.stats(cost=True)
        plain = await v.stats()

    # tiers: every object on disk, in the tier this test put it in
    disk = objects_on_disk(repo)
    tier_of = {name: moved.get(name, Tier.HOT) for name in disk}
    got = {t.tier: t for t in report.tiers}
    for tier in Tier:
        mine = [size for name, size in disk.items() if tier_of[name] is tier]
        assert (got[tier].objects, got[tier].bytes) == (len(mine), sum(mine)), tier
        billable = sum(max(s, T.tier(tier).min_billable_bytes) for s in mine)
        assert got[tier].billable_bytes == billable
        assert got[tier].estimated_monthly_cost == pytest.approx(billable * price(tier))
    assert (report.objects, report.bytes) == (len(disk), sum(disk.values()))
    all_hot = sum(disk.values()) * price(Tier.HOT)
    now = sum(
        max(s, MINIMUM if tier_of[n] is not Tier.HOT else 0) * price(tier_of[n]) for n, s in disk.items()
    )
    assert report.estimated_all_hot_monthly_cost == pytest.approx(all_hot)
    assert report.estimated_monthly_cost == pytest.approx(now)
    assert report.estimated_saving == pytest.approx(all_hot - now) and all_hot > now
    assert report.estimated_saving_percent == pytest.approx(100 * (all_hot - now) / all_hot)

    # points and items: chunks by a plain walk, lengths from the index, prices by their pack's tier
    fresh = await Repository.open(LocalBackend(repo), PASSWORD.encode())
    try:
        snaps = await fresh.list_snapshots()
        sets = {s.id: await chunks_of(fresh, bytes.fromhex(s.tree)) for s in snaps}
        item_of = {s.id: s.item for s in snaps}

        def size_cost(chunks: set[bytes]) -> tuple[int, float]:
            locs = [fresh.index.lookup(c) for c in chunks]
            assert all(loc is not None for loc in locs)
            return (
                sum(loc.entry.length for loc in locs if loc),
                sum(loc.entry.length * price(tier_of[loc.pack.name]) for loc in locs if loc),
            )

        assert [p.id for p in report.points] == [s.id for s in sorted(snaps, key=lambda s: (s.time, s.id))]
        for p in report.points:
            others = set().union(*(c for sid, c in sets.items() if sid != p.id))
            n, cost = size_cost(sets[p.id])
            un, ucost = size_cost(sets[p.id] - others)
            assert (p.item, p.chunks, p.bytes, p.unique_bytes) == (item_of[p.id], len(sets[p.id]), n, un)
            assert p.estimated_monthly_cost == pytest.approx(cost)
            assert p.estimated_unique_monthly_cost == pytest.approx(ucost)
        assert {i.name: i.points for i in report.items} == {"app": 3, "etc": 1}
        for it in report.items:
            mine = set().union(*(c for sid, c in sets.items() if item_of[sid] == it.name))
            theirs = set().union(*(c for sid, c in sets.items() if item_of[sid] != it.name))
            n, cost = size_cost(mine)
            un, ucost = size_cost(mine - theirs)
            assert (it.chunks, it.bytes, it.unique_bytes) == (len(mine), n, un)
            assert it.estimated_monthly_cost == pytest.approx(cost)
            assert it.estimated_unique_monthly_cost == pytest.approx(ucost)
    finally:
        await fresh.backend.aclose()
    # the changed tail makes each app point own some bytes; they share the unchanged head
    app = [p for p in report.points if p.item == "app"]
    assert all(0 < p.unique_bytes < p.bytes for p in app)
    assert report.warnings == []

    # without cost: the same counts, no figure priced
    assert [(t.tier, t.objects, t.bytes) for t in plain.tiers] == [
        (t.tier, t.objects, t.bytes) for t in report.tiers
    ]
    assert plain.prices is None and plain.estimated_monthly_cost is None and plain.estimated_saving is None
    assert all(t.estimated_monthly_cost is None for t in plain.tiers)
    assert all(p.estimated_monthly_cost is None for p in plain.points)
    assert [(p.id, p.bytes, p.unique_bytes) for p in plain.points] == [
        (p.id, p.bytes, p.unique_bytes) for p in report.points
    ]
    js = report.to_json()
    assert js["cost"]["estimate"] is True and js["cost"]["currency"] == "USD"
    assert js["cost"]["prices"] == T.to_json()
    assert "cost" not in plain.to_json()
    assert all("estimated_monthly_cost" not in t for t in plain.to_json()["tiers"])


async def test_stats_on_a_memory_store_with_a_user_price_table(tmp_path: Path, fake_clock: FakeClock) -> None:
    backend = MemoryBackend(clock=fake_clock)
    v, _repo = await memory_vault(fake_clock, backend)
    write_files(tmp_path / "s", {"f": noise(3, 900_000)})
    await v.protect(tmp_path / "s", name="s")
    await v.snapshot("s")
    await v.snapshot("s")  # the same content: two points sharing every chunk but their records
    names = [o.name async for o in backend.list("")]
    data = [n for n in names if n.startswith("data/")]
    await backend.set_tier_many(data, Tier.ARCHIVE)

    raw = T.to_json()
    raw["currency"], raw["region"] = "EUR", "westeurope"
    raw["tiers"]["archive"]["storage_per_gb_month"] = 0.5
    f = tmp_path / "mine.json"
    f.write_text(json.dumps(raw))
    report = await v.stats(cost=True, prices=f)
    assert report.prices is not None and report.prices.currency == "EUR"
    archive = next(t for t in report.tiers if t.tier is Tier.ARCHIVE)
    sizes = [o.size async for o in backend.list("data/")]
    assert archive.objects == len(data) == len(sizes)
    assert archive.estimated_monthly_cost == pytest.approx(sum(max(s, MINIMUM) for s in sizes) * 0.5 / 2**30)
    first, second = report.points
    assert first.bytes == second.bytes > 0
    assert first.unique_bytes == second.unique_bytes == 0  # same trees, same chunks
    assert report.items[0].unique_bytes == report.items[0].bytes == first.bytes
    assert report.to_json()["cost"]["region"] == "westeurope"

    same = await v.stats(cost=True, prices=report.prices)  # a PriceTable is taken as it is
    assert same.estimated_monthly_cost == report.estimated_monthly_cost

    with pytest.raises(UsageError, match="needs cost=True"):
        await v.stats(prices=f)
    raw["tiers"]["hot"]["surcharge"] = 1
    f.write_text(json.dumps(raw))
    with pytest.raises(UsageError, match=r"unknown field tiers\.hot\.surcharge"):
        await v.stats(cost=True, prices=f)
    await v.aclose()


async def test_stats_of_an_empty_repository(tmp_path: Path) -> None:
    async with tiervault.init(tmp_path / "r", password=PASSWORD, kdf=KDF) as v:
        report = await v.stats(cost=True)
    assert report.points == [] and report.items == []
    assert report.objects == len(objects_on_disk(tmp_path / "r")) > 0  # config, keys
    assert report.estimated_saving == pytest.approx(0.0)


async def test_a_pack_gone_from_the_store_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    repo, src = tmp_path / "repo", tmp_path / "src"
    await _history(repo, src)
    async with tiervault.open(repo, password=PASSWORD) as v:
        before = await v.stats(cost=True)
    gone = repo_objects(repo, "data")[0]
    size = (repo / gone).stat().st_size
    (repo / gone).unlink()
    async with tiervault.open(repo, password=PASSWORD) as v:
        after = await v.stats(cost=True)
    assert after.bytes == before.bytes - size
    assert [p.bytes for p in after.points] == [p.bytes for p in before.points]  # the index still lists it
    assert after.warnings == [
        "1 pack(s) holding referenced chunks are not in the store listing: their chunks are priced as Hot "
        "(run check)"
    ]


async def test_hostile_points_are_counted_by_distinct_trees_and_missing_trees_are_warnings(
    tmp_path: Path,
) -> None:
    """A point of 40 trees each referencing the next twice expands to 2^40 paths: stats visits each
    tree once. A point referencing a tree or a chunk stored nowhere is counted without them, with
    warnings."""
    async with tiervault.init(tmp_path / "r", password=PASSWORD, kdf=KDF) as v:
        plant = hostile.Planter(v)
        tid = await plant.tree([plant.file("leaf", b"payload")])
        trees = [tid]
        for i in range(40):
            tid = await plant.tree([plant.dir(f"a{i}", tid), plant.dir(f"b{i}", tid)])
            trees.append(tid)
        doubling = await plant.commit(tid, item="dag")
        nowhere = "ab" * 32
        ghost = hostile.node(
            "ghost", "file", 0o644, size=5, links=1, content=["cd" * 32]
        )  # a chunk stored nowhere
        broken_root = await plant.tree([ghost, plant.file("kept", b"kept bytes"), plant.dir("lost", nowhere)])
        broken = await plant.commit(broken_root, item="broken")
        report = await v.stats()
    by_id = {p.id: p for p in report.points}
    assert by_id[doubling].chunks == len(trees) + 1  # the 41 trees and the leaf's one chunk
    assert by_id[broken].chunks == 3  # its root tree and its files' two chunks (the lost tree: unread)
    assert any(f"point {broken[:8]}: tree {'ab' * 8} unreadable" in w for w in report.warnings)
    assert any("1 referenced chunk(s) are in no index" in w for w in report.warnings)
