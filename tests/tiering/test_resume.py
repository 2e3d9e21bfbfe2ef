"""A ``tier`` run that fails or is interrupted midway: the next run plans what is left, exactly."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import tiervault
from tests.prune.helpers import memory_vault, write_files
from tests.support import FakeClock, FaultyBackend, MemoryBackend
from tests.support.recording import RecordingBackend
from tiervault.backend.base import Tier
from tiervault.backend.local import LocalBackend

POLICY = tiervault.Policy(cool_after_days=30, cold_after_days=90, archive_after_days=180)


async def _three_ages(vault: tiervault.Vault, clock: FakeClock, src: Path) -> None:
    """Three points 200, 100 and 40 days old, each holding only its own 200 KiB file."""
    write_files(src, {})
    await vault.protect(src, name="src", policy=POLICY)
    now = datetime.fromtimestamp(clock.now(), UTC)
    for age in (200, 100, 40):
        write_files(src, {f"{age}.bin": random.Random(age).randbytes(200 << 10)}, remove="*.bin")
        await vault.snapshot("src", time=now - timedelta(days=age))


async def test_a_refused_move_is_reported_and_the_next_run_does_only_it(tmp_path: Path) -> None:
    clock = FakeClock()
    faulty = FaultyBackend(MemoryBackend(clock=clock))
    vault, _repo = await memory_vault(clock, faulty)
    await _three_ages(vault, clock, tmp_path / "src")
    plan = await vault.tier(dry_run=True)
    cold = next(m.pack for m in plan.moves if m.target is Tier.COLD)
    faulty.fail_call("set_tier", name=cold, count=2)  # in the batch, then alone
    report = await vault.tier()
    assert [p for p, _ in report.failed] == [cold]
    assert sorted(m.target.value for m in report.moves) == ["archive", "cool"]
    faulty.heal()
    again = await vault.tier()
    assert [(m.pack, m.target) for m in again.moves] == [(cold, Tier.COLD)] and not again.failed
    assert (await vault.tier()).moves == []


async def test_an_interrupted_run_resumes_with_the_same_plan_minus_what_was_done(tmp_path: Path) -> None:
    clock = FakeClock()
    rec = RecordingBackend(MemoryBackend(clock=clock))
    vault, _repo = await memory_vault(clock, rec)
    await _three_ages(vault, clock, tmp_path / "src")
    plan = {(m.pack, m.target) for m in (await vault.tier(dry_run=True)).moves}
    assert len(plan) == 3
    calls = 0

    async def killed(_name: str) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt  # the process stops between two batches (later calls pass)

    rec.on("set_tier", "data/", killed, once=False)
    with pytest.raises(KeyboardInterrupt):
        await vault.tier()
    infos = {i.name: i.tier async for i in rec.list("data/")}
    done = {(p, t) for p, t in plan if infos[p] is t}
    assert len(done) == 1  # the first batch (Cool) went through
    resumed = await vault.tier()
    assert {(m.pack, m.target) for m in resumed.moves} == plan - done


async def test_tier_on_the_local_backend_records_the_move_in_the_sidecar(tmp_path: Path) -> None:
    clock = FakeClock()
    store = LocalBackend(tmp_path / "store", clock=clock)
    vault, _repo = await memory_vault(clock, store)
    await _three_ages(vault, clock, tmp_path / "src")
    clock.advance(3600)
    report = await vault.tier()
    assert sorted(m.target.value for m in report.moves) == ["archive", "cold", "cool"]
    for move in report.moves:
        sidecar = json.loads((tmp_path / "store" / ".tv-tiers" / f"{move.pack}.json").read_text())
        assert sidecar == {"tier": move.target.value, "rehydrate_until": None, "changed": clock.now()}
        info = await store.stat(move.pack)
        assert (info.tier, info.tier_changed) == (move.target, datetime.fromtimestamp(clock.now(), UTC))
    assert not list((tmp_path / "store" / ".tv-tiers").glob("meta/**/*.json"))  # metadata stays Hot
    await store.aclose()


async def test_moves_go_in_batches_of_at_most_256(tmp_path: Path) -> None:
    clock = FakeClock()
    rec = RecordingBackend(MemoryBackend(clock=clock))
    vault, _repo = await memory_vault(clock, rec)
    src = tmp_path / "src"
    write_files(src, {})
    await vault.protect(src, name="src", policy=tiervault.Policy(cool_after_days=30))
    start = datetime.fromtimestamp(clock.now(), UTC) - timedelta(days=40)
    for i in range(257):  # a pack each: every point holds only its own 130 KiB file
        write_files(src, {f"{i}.bin": random.Random(i).randbytes(130 << 10)}, remove="*.bin")
        await vault.snapshot("src", time=start + timedelta(minutes=i))
    report = await vault.tier()
    assert len(report.moves) == 257 and report.batches == 2
    assert [n for m, n in rec.batches if m == "set_tier_many"] == [256, 1]
    assert report.tiers[Tier.COOL].objects == 257
