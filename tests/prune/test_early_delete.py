"""Early deletion in prune (issue 12, item 2): a pack in Cool, Cold or Archive inside its tier's
minimum retention is neither swept nor repacked unless ``allow_early_delete``; the report names it
with the date its minimum ends and the charge (checked here by independent arithmetic). Real
repositories written through the real writer on a MemoryBackend whose store times (and tier-change
times, through ``set_tier_many``) follow a FakeClock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import tiervault
from tests.prune.helpers import (
    after_grace,
    memory_vault,
    noise,
    reopen,
    restore_matches,
    tail_changed,
    write_files,
)
from tests.support import FakeClock, FaultyBackend, MemoryBackend
from tests.support.trees import Snapshot, snapshot_tree
from tiervault.backend.base import Tier
from tiervault.core.format.gcobjects import GoneRecord, PlanRecord
from tiervault.costs import default_prices
from tiervault.repo.gcstate import load_gc_state
from tiervault.repo.repository import Repository

DAY = 86400.0
#: the shipped table's Cool and Cold storage prices per GB-month and the 128 KiB minimum
#: (docs/costs.md); the charges below are computed from these, not by the code under test
COOL_PRICE, COLD_PRICE, MIN_BILLABLE = 0.01, 0.0036, 128 << 10


def _data_packs(backend: MemoryBackend) -> set[str]:
    return {n for n in backend.objects if n.startswith("data/")}


def _pid(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _charge(size: int, price: float, min_days: int, days_in_tier: float) -> float:
    return max(size, MIN_BILLABLE) / (1 << 30) * price * (min_days - days_in_tier) / 30


async def _points(
    vault: tiervault.Vault, backend: MemoryBackend, src: Path
) -> list[tuple[str, Snapshot, set[str]]]:
    """Four points; each adds one 300 KB file of its own (the first also a shared one): the data
    packs each point's snapshot stored."""
    write_files(src, {"shared.bin": noise(999, 200_000)})
    await vault.protect(src, name="src")
    out = []
    for i in range(4):
        write_files(src, {f"gen{i}.bin": noise(i, 300_000)}, remove="gen*.bin")
        before = _data_packs(backend)
        res = await vault.snapshot("src")
        out.append((res.point.id, snapshot_tree(src), _data_packs(backend) - before))
    return out


async def _gc(backend: MemoryBackend, repo: Repository) -> tuple[list[PlanRecord], list[GoneRecord]]:
    state = await load_gc_state(backend, repo.objects)
    return [p.record for p in state.plans.values()], [g.record for g in state.gones.values()]


async def _all_restore(
    vault: tiervault.Vault, points: list[tuple[str, Snapshot, set[str]]], out: Path
) -> None:
    kept = {p.id for p in await vault.points()}
    assert (await vault.check()).ok
    for i, (pid, expected, _) in enumerate(points):
        if pid in kept:
            await restore_matches(vault, pid, expected, out / f"r{i}")


async def _setup(
    tmp_path: Path, faulty: FaultyBackend | None = None, clock: FakeClock | None = None
) -> tuple[FakeClock, MemoryBackend, Repository, list[tuple[str, Snapshot, set[str]]]]:
    """Point 1's data packs go to Cool at t0; points 0-2 are forgotten; 10 days later a prune
    condemns them (point 0's packs, which hold the shared file, are repacked)."""
    clock = clock or FakeClock()
    vault, repo = await memory_vault(clock, faulty)
    backend = repo.backend if faulty is None else faulty.inner
    assert isinstance(backend, MemoryBackend)
    points = await _points(vault, backend, tmp_path / "src")
    await backend.set_tier_many(sorted(points[1][2]), Tier.COOL)
    await vault.forget(policy=tiervault.Policy(keep_last=1))
    clock.advance(10 * DAY)
    first = await vault.prune()
    condemned = {p for p, _ in first.condemned}
    assert {_pid(n) for n in points[1][2] | points[2][2]} <= condemned
    return clock, backend, repo, points


async def test_a_condemned_cool_pack_is_deferred_until_day_30_then_swept(tmp_path: Path) -> None:
    clock, backend, repo, points = await _setup(tmp_path)
    t0 = datetime.fromtimestamp(FakeClock().now(), UTC)
    cool = {_pid(n) for n in points[1][2]}
    hot = {_pid(n) for n in points[2][2]}
    after_grace(clock)
    vault, _ = await reopen(repo, clock)
    now = clock.now()
    second = await vault.prune()
    assert second.ok
    assert hot <= set(second.swept) and not cool & set(second.swept)
    assert {e.pack for e in second.early_deferred} == cool
    for e in second.early_deferred:
        assert e.step == "sweep" and e.info.tier is Tier.COOL
        assert e.info.until == t0 + timedelta(days=30)
        size = len(backend.objects[f"data/{e.pack[:2]}/{e.pack}"].data)
        days = (now - t0.timestamp()) / DAY
        assert e.info.charge == pytest.approx(_charge(size, COOL_PRICE, 30, days))
        assert e.info.charge > 0
    assert second.charge_avoided == pytest.approx(sum(e.info.charge for e in second.early_deferred))
    assert not second.early_deleted and second.charge_incurred == 0
    assert all(n in backend.objects for n in points[1][2])  # still stored
    # the plan's swept packs are in its GONE; the Cool ones were carried into a new PLAN, stored
    # before the GONE, so they stayed condemned throughout
    plans, gones = await _gc(backend, repo)
    assert [{p.id for p in pl.packs} for pl in plans] == [cool]
    assert all(not {p.id for p in g.packs} & cool for g in gones)
    got = second.to_json()["early_deletion"]
    assert got["allowed"] is False and got["currency"] == "USD" and got["estimate"] is True
    assert {d["pack"] for d in got["deferred"]} == cool
    ends = (t0 + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S")
    assert got["deferred"][0]["minimum_ends"].startswith(ends)
    await _all_restore(vault, points, tmp_path / "a")
    notes = {c["object"].rsplit("/", 1)[-1]: c for c in (await vault.check()).condemned}
    for pid in cool:  # check names the end of the minimum as when a prune deletes it
        assert notes[pid]["after"].startswith(ends) and "cool minimum retention" in notes[pid]["note"]

    clock.advance(10 * DAY)  # day 20: still inside; nothing written for a plan that only waits
    plans_before = set((await load_gc_state(backend, repo.objects)).plans)
    waiting = await vault.prune()
    assert {e.pack for e in waiting.early_deferred} == cool and not cool & set(waiting.swept)
    assert set((await load_gc_state(backend, repo.objects)).plans) == plans_before

    clock.advance(10 * DAY + 1)  # past day 30
    third = await vault.prune()
    assert cool <= set(third.swept) and not third.early_deferred and not third.early_deleted
    assert not any(n in backend.objects for n in points[1][2])
    await _all_restore(vault, points, tmp_path / "b")


async def test_allow_early_delete_sweeps_it_and_reports_the_charge(tmp_path: Path) -> None:
    clock, backend, repo, points = await _setup(tmp_path)
    t0 = FakeClock().now()
    cool = {_pid(n) for n in points[1][2]}
    sizes = {_pid(n): len(backend.objects[n].data) for n in points[1][2]}
    after_grace(clock)
    vault, _ = await reopen(repo, clock)
    dry = await vault.prune(dry_run=True, allow_early_delete=True)
    assert cool <= set(dry.swept) and {e.pack for e in dry.early_deleted} == cool
    now = clock.now()
    second = await vault.prune(allow_early_delete=True)
    assert cool <= set(second.swept) and not second.early_deferred
    assert {e.pack for e in second.early_deleted} == cool
    days = (now - t0) / DAY
    expected = sum(_charge(n, COOL_PRICE, 30, days) for n in sizes.values())
    assert second.charge_incurred == pytest.approx(expected) and expected > 0
    got = second.to_json()["early_deletion"]
    assert got["allowed"] is True
    assert got["estimated_charge_incurred"] == pytest.approx(expected)
    assert not any(n in backend.objects for n in points[1][2])
    await _all_restore(vault, points, tmp_path / "a")


async def test_a_prune_stopped_between_the_carried_plan_and_the_gone(tmp_path: Path) -> None:
    """The carried PLAN is stored, the GONE is not (the run fails there): the next prune sweeps the
    old plan again without carrying its waiting packs twice; nothing is lost, check passes."""
    clock = FakeClock()
    faulty = FaultyBackend(MemoryBackend(clock=clock))
    clock, backend, repo, points = await _setup(tmp_path, faulty, clock)
    cool = {_pid(n) for n in points[1][2]}
    after_grace(clock)
    vault, _ = await reopen(repo, clock)
    faulty.fail_call("put_if_absent", nth=3)  # the heartbeat, the carried PLAN, then the GONE
    with pytest.raises(tiervault.BackendError):
        await vault.prune()
    assert faulty.injected and faulty.injected[0].startswith("put_if_absent gc/")
    plans, gones = await _gc(backend, repo)
    assert len(plans) == 2 and not gones
    assert [{p.id for p in pl.packs} & cool for pl in plans] == [cool, cool]
    await _all_restore(vault, points, tmp_path / "a")

    again = await vault.prune()
    assert again.ok and not cool & set(again.swept) and {e.pack for e in again.early_deferred} == cool
    plans, gones = await _gc(backend, repo)
    assert [{p.id for p in pl.packs} for pl in plans] == [cool]
    await _all_restore(vault, points, tmp_path / "b")
    clock.advance(21 * DAY)
    done = await vault.prune()
    assert cool <= set(done.swept) and not done.early_deleted
    await _all_restore(vault, points, tmp_path / "c")


async def test_repack_skips_a_partly_live_cold_pack_inside_its_minimum(tmp_path: Path) -> None:
    clock = FakeClock()
    t0 = datetime.fromtimestamp(clock.now(), UTC)
    vault, repo = await memory_vault(clock)
    backend = repo.backend
    assert isinstance(backend, MemoryBackend)
    src = tmp_path / "src"
    write_files(src, {"big.bin": tail_changed(0)})
    await vault.protect(src, name="src")
    await vault.snapshot("src")
    old = _data_packs(backend)
    await backend.set_tier_many(sorted(old), Tier.COLD)
    write_files(src, {"big.bin": tail_changed(1)})
    kept = await vault.snapshot("src")
    expected = snapshot_tree(src)
    await vault.forget(policy=tiervault.Policy(keep_last=1))
    clock.advance(10 * DAY)
    now = clock.now()

    first = await vault.prune()
    assert first.ok and not set(first.repacked) & {_pid(n) for n in old}  # Hot ones may be
    deferred = [e for e in first.early_deferred if e.step == "repack"]
    assert {e.pack for e in deferred} == {_pid(n) for n in old}
    for e in deferred:
        assert e.plan is None and e.info.tier is Tier.COLD
        assert e.info.until == t0 + timedelta(days=90)
        size = len(backend.objects[f"data/{e.pack[:2]}/{e.pack}"].data)
        days = (now - t0.timestamp()) / DAY
        assert e.info.charge == pytest.approx(_charge(size, COLD_PRICE, 90, days))
    assert old <= _data_packs(backend)
    await restore_matches(vault, kept.point.id, expected, tmp_path / "a")

    clock.advance(81 * DAY)  # day 91: the minimum has passed
    later = await vault.prune()
    assert {_pid(n) for n in old} <= set(later.repacked) and not later.early_deferred
    after_grace(clock)
    swept = await vault.prune()
    assert {_pid(n) for n in old} <= set(swept.swept)
    fresh, _ = await reopen(repo, clock)
    assert (await fresh.check()).ok
    await restore_matches(fresh, kept.point.id, expected, tmp_path / "b")


async def test_a_bad_price_file_is_a_usage_error_before_anything(tmp_path: Path) -> None:
    clock = FakeClock()
    vault, repo = await memory_vault(clock)
    bad = tmp_path / "prices.json"
    bad.write_text('{"region": "x"}')
    with pytest.raises(tiervault.UsageError, match=r"prices\.json"):
        await vault.prune(prices=bad)
    assert not any(n.startswith(("locks/", "gc/")) and n != "locks/prune" for n in repo.backend.objects)  # type: ignore[attr-defined]
    # a table object is taken as it is: its minimum days decide
    table = default_prices()
    report = await vault.prune(prices=table)
    assert report.ok and report.currency == table.currency
