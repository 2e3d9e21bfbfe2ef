"""Restores from Archive (docs/restore-archive.md), on the local backend (tiers as sidecars,
rehydration timed by an injected clock) and the memory backend, written through the real writer:
plan, fail fast, start, still waiting, finish in another vault (another process, in effect), byte
for byte, staging copies and records cleaned up; the same for some paths; ``wait``; a lost copy;
what ``check``, a snapshot's orphan-pack recovery and ``prune`` make of staging copies. The
multi-process run (a real subprocess killed, another resuming, a third finishing) is at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tiervault
from tests.e2e import KDF, KiB, repo_listing
from tests.e2e.rehydrate_worker import PASSWORD, REHYDRATE_SECONDS
from tests.support import FakeClock, MemoryBackend
from tests.support.fileclock import FileClock
from tests.support.trees import File, assert_trees_equal, build_tree, snapshot_tree
from tiervault.backend.base import Backend, Tier
from tiervault.backend.local import LocalBackend
from tiervault.costs import default_prices
from tiervault.repo.repository import Repository
from tiervault.restore.rehydration import HIGH_WAIT_S, STANDARD_WAIT_S

MiB = 1 << 20
ROOT = Path(__file__).resolve().parents[2]
Store = Callable[[], Backend]  # a fresh handle on the same store: another process, in effect


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path, fake_clock: FakeClock) -> Store:
    if request.param == "local":
        root = tmp_path / "repo"
        return lambda: LocalBackend(root, clock=fake_clock, rehydrate_seconds=REHYDRATE_SECONDS, fsync=False)
    memory = MemoryBackend(clock=fake_clock, rehydrate_seconds=REHYDRATE_SECONDS)
    return lambda: memory


def files_of(d: int) -> dict[str, Any]:
    rnd = random.Random(12 + d)
    return {f"d{d}/f{i}.bin": File(rnd.randbytes(700 * KiB)) for i in range(4)}


async def make_point(store: Store, clock: Any, src: Path) -> str:
    """Two points: ``d0`` (and an empty file), then ``d1`` added, so that ``d1``'s chunks are in
    packs of their own (one snapshot's saver threads share files out among packs at random)."""
    build_tree(src, files_of(0) | {"empty": File(b"")})
    repo = await Repository.init(store(), PASSWORD.encode(), pack_size=MiB, kdf=KDF)
    vault = tiervault.Vault(repo, clock=clock)
    await vault.protect(src, name="src")
    await vault.snapshot("src")
    build_tree(src, files_of(1))
    return (await vault.snapshot("src")).point.id


async def vault_on(store: Store, clock: Any) -> tiervault.Vault:
    return tiervault.Vault(await Repository.open(store(), PASSWORD.encode()), clock=clock)


async def names(store: Store, prefix: str) -> dict[str, tiervault.backend.base.ObjectInfo]:
    return {i.name: i async for i in store().list(prefix)}


async def archive_all(store: Store) -> dict[str, int]:
    """Every data pack to Archive; their sizes."""
    packs = await names(store, "data/")
    await store().set_tier_many(sorted(packs), Tier.ARCHIVE)
    return {n: i.size for n, i in packs.items()}


async def test_plan_names_the_archived_packs_their_bytes_the_wait_and_what_is_restorable_now(
    store: Store, fake_clock: FakeClock, tmp_path: Path
) -> None:
    point = await make_point(store, fake_clock, tmp_path / "src")
    vault = await vault_on(store, fake_clock)
    hot = await vault.plan_restore(point)
    assert hot.readable and hot.rehydration is None and hot.now_files == hot.files == 9
    sizes = await archive_all(store)
    plan = await vault.plan_restore(point)
    assert plan.packs == {"archived": len(sizes)} and plan.rehydrate_packs == len(sizes)
    assert plan.rehydrate_bytes == sum(sizes.values())  # whole packs: what a rehydration copies
    assert (plan.now_files, plan.now_bytes) == (1, 0)  # only the empty file needs no pack
    assert plan.rehydration is not None and plan.rehydration["in_progress"] is None
    assert plan.rehydration["expected_wait_s"] == STANDARD_WAIT_S
    assert plan.rehydration["expected_wait"] == "estimate: up to 15 h"
    high = await vault.plan_restore(point, priority="high")
    assert high.rehydration is not None and high.rehydration["expected_wait_s"] == HIGH_WAIT_S
    assert json.loads(json.dumps(plan.to_json()))["blocked_files"] == 8
    with pytest.raises(tiervault.UsageError, match="priority"):
        await vault.plan_restore(point, priority="urgent")
    assert await names(store, "restore/") == {} and await names(store, "staging/") == {}


async def test_the_plan_estimates_the_rehydration_cost_from_the_price_table(
    store: Store, fake_clock: FakeClock, tmp_path: Path
) -> None:
    """GB of archived packs times the rehydration price, plus one read per pack, by priority; a
    user's price file replaces the shipped table."""
    point = await make_point(store, fake_clock, tmp_path / "src")
    vault = await vault_on(store, fake_clock)
    assert "estimated_cost" not in ((await vault.plan_restore(point)).rehydration or {})  # all Hot
    sizes = await archive_all(store)
    table = default_prices()
    archive = table.tier(Tier.ARCHIVE)
    gb = sum(sizes.values()) / (1 << 30)
    for prio, per_gb, per_10k in [
        ("standard", archive.rehydrate_standard_per_gb, archive.read_per_10k),
        ("high", archive.rehydrate_high_per_gb, archive.read_high_per_10k),
    ]:
        assert per_gb is not None and per_10k is not None
        plan = await vault.plan_restore(point, priority=prio)
        assert plan.rehydration is not None
        assert plan.rehydration["currency"] == table.currency
        assert plan.rehydration["estimated_cost"] == pytest.approx(
            gb * per_gb + len(sizes) / 10_000 * per_10k
        )
    doubled = table.to_json()
    doubled["tiers"]["archive"]["rehydrate_standard_per_gb"] = 2 * archive.rehydrate_standard_per_gb
    doubled["tiers"]["archive"]["read_per_10k"] = 2 * archive.read_per_10k
    (tmp_path / "prices.json").write_text(json.dumps(doubled))
    own = await vault.plan_restore(point, prices=tmp_path / "prices.json")
    assert own.rehydration is not None
    base = (await vault.plan_restore(point)).rehydration
    assert base is not None
    assert own.rehydration["estimated_cost"] == pytest.approx(2 * base["estimated_cost"])


async def test_without_rehydrate_a_restore_of_archived_packs_fails_fast_writing_nothing(
    store: Store, fake_clock: FakeClock, tmp_path: Path
) -> None:
    point = await make_point(store, fake_clock, tmp_path / "src")
    sizes = await archive_all(store)
    vault = await vault_on(store, fake_clock)
    out = tmp_path / "out"
    before = repo_listing(tmp_path / "repo") if (tmp_path / "repo").exists() else None
    objects = {n: (i.size, i.modified) for n, i in (await names(store, "")).items()}
    with pytest.raises(tiervault.RehydrationNeededError, match="--rehydrate") as info:
        await vault.restore(point, out)
    assert {n: (i.size, i.modified) for n, i in (await names(store, "")).items()} == objects
    if before is not None:  # the local store, hidden files (tier sidecars, leases) included
        assert repo_listing(tmp_path / "repo") == before
    assert isinstance(info.value, tiervault.ObjectArchivedError)
    assert info.value.plan is not None and info.value.plan["rehydrate_packs"] == len(sizes)
    assert not out.exists()
    assert await names(store, "restore/") == {} and await names(store, "staging/") == {}


async def test_rehydrate_starts_copies_waits_and_finishes_in_another_vault(
    store: Store, fake_clock: FakeClock, tmp_path: Path
) -> None:
    point = await make_point(store, fake_clock, tmp_path / "src")
    sizes = await archive_all(store)
    out = tmp_path / "out"

    first = await (await vault_on(store, fake_clock)).restore(point, out, rehydrate=True)
    assert first.awaiting_rehydration and not out.exists()  # nothing written
    assert first.rehydration is not None
    assert (first.rehydration.packs, first.rehydration.ready) == (len(sizes), 0)
    assert first.rehydration.bytes == sum(sizes.values())
    assert first.plan is not None and first.plan.rehydration is not None
    records = await names(store, "restore/")
    copies = await names(store, "staging/")
    assert len(records) == 1 and len(copies) == len(sizes)
    (rid,) = (n.removeprefix("restore/") for n in records)
    assert {n.rsplit("/", 1)[1] for n in copies} == {n.rsplit("/", 1)[1] for n in sizes}
    assert all(n.startswith(f"staging/{rid}/") and i.rehydrating for n, i in copies.items())
    assert all(i.tier is Tier.ARCHIVE and not i.rehydrating for i in (await names(store, "data/")).values())

    fake_clock.advance(REHYDRATE_SECONDS - 1)  # not yet: the same restore says so again
    vault = await vault_on(store, fake_clock)
    plan = await vault.plan_restore(point)
    assert plan.rehydration is not None and plan.rehydration["in_progress"]["records"] == [rid]
    # the estimate is Azure's (15 h at Standard), whatever this emulation takes
    assert plan.rehydration["in_progress"]["wait_s"] == STANDARD_WAIT_S - (REHYDRATE_SECONDS - 1)
    again = await vault.restore(point, out, rehydrate=True)
    assert again.awaiting_rehydration and not out.exists()
    assert await names(store, "restore/") == records and set(await names(store, "staging/")) == set(copies)

    fake_clock.advance(1)
    vault = await vault_on(store, fake_clock)
    assert (await vault.plan_restore(point)).readable  # the copies are ready: readable now
    done = await vault.restore(point, out, rehydrate=True, verify=True)
    assert done.ok and not done.awaiting_rehydration and done.stats.files_verified == 9
    assert done.staging_removed == len(sizes)
    assert_trees_equal(snapshot_tree(tmp_path / "src"), snapshot_tree(out))
    assert await names(store, "restore/") == {} and await names(store, "staging/") == {}
    assert all(i.tier is Tier.ARCHIVE for i in (await names(store, "data/")).values())  # left in place


async def test_rehydrate_only_some_paths(store: Store, fake_clock: FakeClock, tmp_path: Path) -> None:
    point = await make_point(store, fake_clock, tmp_path / "src")
    await archive_all(store)
    vault = await vault_on(store, fake_clock)
    partial = await vault.plan_restore(point, paths=["d1"])
    whole = await vault.plan_restore(point)
    assert 0 < partial.rehydrate_packs < whole.rehydrate_packs
    out = tmp_path / "out"
    started = await vault.restore(point, out, paths=["d1"], rehydrate=True, priority="high")
    assert started.awaiting_rehydration
    assert len(await names(store, "staging/")) == partial.rehydrate_packs
    # the whole point is another restore: its plan shows no rehydration in progress
    assert (await vault.plan_restore(point)).rehydration["in_progress"] is None  # type: ignore[index]

    # resumed without a priority: the estimate is the High one it was started with
    plan = await vault.plan_restore(point, paths=["d1"])
    assert plan.rehydration is not None and plan.rehydration["in_progress"]["priority"] == "high"
    assert plan.rehydration["in_progress"]["wait_s"] == HIGH_WAIT_S
    fake_clock.advance(REHYDRATE_SECONDS)
    done = await (await vault_on(store, fake_clock)).restore(point, out, paths=["d1"], rehydrate=True)
    assert done.ok and done.staging_removed == partial.rehydrate_packs
    assert sorted(os.listdir(out)) == ["d1"]
    assert_trees_equal(snapshot_tree(tmp_path / "src" / "d1"), snapshot_tree(out / "d1"), ignore_root=["."])
    assert await names(store, "restore/") == {} and await names(store, "staging/") == {}


async def test_wait_polls_on_the_vault_clock_then_restores(
    store: Store, fake_clock: FakeClock, tmp_path: Path
) -> None:
    point = await make_point(store, fake_clock, tmp_path / "src")
    await archive_all(store)
    polls: list[tiervault.RehydrationProgress] = []
    loop = asyncio.get_running_loop()

    def progress(p: tiervault.RehydrationProgress) -> None:
        polls.append(p)
        loop.call_soon(fake_clock.advance, 600)  # once the restore sleeps, time passes

    out = tmp_path / "out"
    vault = await vault_on(store, fake_clock)
    done = await vault.restore(point, out, rehydrate=True, wait=True, poll_seconds=600, progress=progress)
    assert done.ok and not done.awaiting_rehydration
    assert [p.ready for p in polls] == [0] * 6 + [polls[-1].packs]  # 6 polls of 600 s, then ready
    assert [p.wait_s for p in polls[:6]] == [3600.0 * 15 - 600 * i for i in range(6)]
    assert_trees_equal(snapshot_tree(tmp_path / "src"), snapshot_tree(out))
    assert await names(store, "staging/") == {}


async def test_a_lost_staging_copy_is_copied_again_under_its_record(
    store: Store, fake_clock: FakeClock, tmp_path: Path
) -> None:
    point = await make_point(store, fake_clock, tmp_path / "src")
    await archive_all(store)
    out = tmp_path / "out"
    await (await vault_on(store, fake_clock)).restore(point, out, rehydrate=True)
    records, copies = await names(store, "restore/"), sorted(await names(store, "staging/"))
    await store().delete(copies[0])
    fake_clock.advance(REHYDRATE_SECONDS)
    again = await (await vault_on(store, fake_clock)).restore(point, out, rehydrate=True)
    assert again.awaiting_rehydration  # the lost one started again, the others are ready
    assert again.rehydration is not None and again.rehydration.ready == len(copies) - 1
    assert await names(store, "restore/") == records and sorted(await names(store, "staging/")) == copies
    fake_clock.advance(REHYDRATE_SECONDS)
    done = await (await vault_on(store, fake_clock)).restore(point, out, rehydrate=True)
    assert done.ok and await names(store, "staging/") == {}


async def test_check_snapshot_and_prune_never_take_staging_copies_for_packs(
    store: Store, fake_clock: FakeClock, tmp_path: Path
) -> None:
    point = await make_point(store, fake_clock, tmp_path / "src")
    await archive_all(store)
    vault = await vault_on(store, fake_clock)
    await vault.restore(point, tmp_path / "out", rehydrate=True)
    fake_clock.advance(REHYDRATE_SECONDS)
    copies = await names(store, "staging/")
    await store().put_if_absent("staging/" + "f" * 64 + "/" + "e" * 64, b"orphan")  # no record

    checked = await vault.check()
    assert checked.ok, checked.errors
    said = {w["object"]: w["warning"] for w in checked.warnings}
    (record,) = await names(store, "restore/")
    assert "in progress" in said[record] and f"{len(copies)} staging copies" in said[record]
    assert "without its rehydration record" in said["staging/" + "f" * 64 + "/" + "e" * 64]
    assert checked.unused == []  # the copies are not packs: nothing unused, nothing unindexed

    (tmp_path / "src" / "new.bin").write_bytes(random.Random(3).randbytes(300 * KiB))
    index_before = set(await names(store, "index/"))
    await vault.snapshot("src")  # its orphan-pack recovery lists data/ and meta/ only
    for name in set(await names(store, "index/")) - index_before:
        assert "staging" not in name
    report = await vault.prune()
    assert not report.refused
    assert set(copies) <= set(await names(store, "staging/"))  # prune deleted none of them

    done = await vault.restore(point, tmp_path / "out", rehydrate=True)
    assert done.ok and await names(store, "staging/") == {}  # the orphan went with them


# ------------------------------------------------------------------------------------ processes


def run_worker(args: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.e2e.rehydrate_worker", json.dumps(args)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("paths", [None, ["d1"]])
async def test_interrupted_resumed_in_another_process_and_finished_in_a_third(
    tmp_path: Path, paths: list[str] | None
) -> None:
    """Process 1 is SIGKILLed just before its first staging copy starts (its record stored: the
    copies are started concurrently, so which of them got out before a later kill would be luck);
    process 2 continues the same restore (no new record: the missing copies start under
    the first one) and exits awaiting; the shared file clock passes the rehydration time; process 3
    restores byte for byte and removes every staging copy and the record."""
    repo, clock_file, out = tmp_path / "repo", tmp_path / "clock", tmp_path / "out"
    clock = FileClock(clock_file)
    store: Store = lambda: LocalBackend(repo, clock=clock, rehydrate_seconds=REHYDRATE_SECONDS)  # noqa: E731
    await make_point(store, clock, tmp_path / "src")
    sizes = await archive_all(store)
    job = {"repo": str(repo), "clock": str(clock_file), "target": str(out), "paths": paths}

    killed = run_worker({**job, "kill_at_copy": 1})
    assert killed.returncode == -9, killed.stderr
    records = await names(store, "restore/")
    assert len(records) == 1 and await names(store, "staging/") == {} and not out.exists()

    resumed = run_worker(job)
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)["result"]
    assert result["awaiting_rehydration"] and result["rehydration"]["ready"] == 0
    wanted = result["rehydration"]["packs"]
    assert (wanted == len(sizes)) if paths is None else (0 < wanted < len(sizes))
    assert await names(store, "restore/") == records and len(await names(store, "staging/")) == wanted
    assert not out.exists()

    clock.advance(REHYDRATE_SECONDS)
    finished = run_worker(job)
    assert finished.returncode == 0, finished.stderr
    result = json.loads(finished.stdout)["result"]
    assert result["ok"] and not result["awaiting_rehydration"] and result["staging_removed"] == wanted
    src = tmp_path / "src" if paths is None else tmp_path / "src" / "d1"
    restored = out if paths is None else out / "d1"
    assert_trees_equal(snapshot_tree(src), snapshot_tree(restored), ignore_root=["."] if paths else ())
    assert await names(store, "restore/") == {} and await names(store, "staging/") == {}


def test_wait_in_a_process_polls_its_clock(tmp_path: Path) -> None:
    """``wait`` in a separate process: each poll moves the shared clock (``FileClock.sleep``)."""
    repo, clock_file, out = tmp_path / "repo", tmp_path / "clock", tmp_path / "out"
    clock = FileClock(clock_file)
    store: Store = lambda: LocalBackend(repo, clock=clock, rehydrate_seconds=REHYDRATE_SECONDS)  # noqa: E731

    async def setup() -> None:
        await make_point(store, clock, tmp_path / "src")
        await archive_all(store)

    asyncio.run(setup())
    done = run_worker({"repo": str(repo), "clock": str(clock_file), "target": str(out), "wait": True})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["result"]["ok"] and len(report["polls"]) == 7  # 6 x 600 s, then the ready line
    assert_trees_equal(snapshot_tree(tmp_path / "src"), snapshot_tree(out))


async def test_a_deadline_ends_the_wait_awaiting(store: Store, fake_clock: FakeClock, tmp_path: Path) -> None:
    point = await make_point(store, fake_clock, tmp_path / "src")
    await archive_all(store)
    polls: list[tiervault.RehydrationProgress] = []
    loop = asyncio.get_running_loop()

    def progress(p: tiervault.RehydrationProgress) -> None:
        polls.append(p)
        loop.call_soon(fake_clock.advance, 600)

    vault = await vault_on(store, fake_clock)
    out = tmp_path / "out"
    result = await vault.restore(
        point, out, rehydrate=True, wait=True, poll_seconds=600, progress=progress, deadline=1900
    )
    assert result.awaiting_rehydration and not out.exists()
    # polls at 0, 600, 1200 and 1800 s; one more would end past the stop time (1900 s less its
    # 30 s reserve, deadline.py)
    assert len(polls) == 4


async def test_a_copy_lost_while_waiting_is_started_again(
    store: Store, fake_clock: FakeClock, tmp_path: Path
) -> None:
    point = await make_point(store, fake_clock, tmp_path / "src")
    await archive_all(store)
    loop = asyncio.get_running_loop()
    lost: list[str] = []
    tasks: list[asyncio.Task[None]] = []

    async def lose_one() -> None:  # between two polls, a copy disappears (deleted behind our back)
        if not lost:
            lost.append(sorted(await names(store, "staging/"))[0])
            await store().delete(lost[0])
        fake_clock.advance(1800)

    def progress(p: tiervault.RehydrationProgress) -> None:
        if len(tasks) > 20:  # 15 h of polls: the lost copy was never started again
            raise AssertionError(f"still waiting after {len(tasks)} polls: {p}")
        tasks.append(loop.create_task(lose_one()))

    vault = await vault_on(store, fake_clock)
    done = await vault.restore(
        point, tmp_path / "out", rehydrate=True, wait=True, poll_seconds=1800, progress=progress
    )
    assert done.ok and lost
    assert_trees_equal(snapshot_tree(tmp_path / "src"), snapshot_tree(tmp_path / "out"))
    assert await names(store, "staging/") == {} and await names(store, "restore/") == {}
