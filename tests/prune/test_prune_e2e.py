"""prune end to end on real repositories (written through the real writer) on a MemoryBackend whose
store times follow a FakeClock: condemn, sweep after GRACE, bytes reclaimed, every remaining point
restores exactly and check passes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

import tiervault
from tests.e2e import PASSWORD
from tests.prune.helpers import (
    after_grace,
    datetime_iso,
    fake_writer_heartbeat,
    memory_vault,
    noise,
    restore_matches,
    stored_bytes,
    tail_changed,
    write_files,
)
from tests.support import FakeClock, MemoryBackend
from tests.support.memory import StoredObject
from tests.support.trees import Snapshot, snapshot_tree
from tiervault.core.format.envelope import ObjectType
from tiervault.core.format.gcobjects import CondemnedPack, GoneRecord, HeartbeatRecord, PlanRecord
from tiervault.errors import LeaseHeldError
from tiervault.prune import prune
from tiervault.repo.gcstate import LEASE_NAME
from tiervault.repo.repository import Repository


async def _history(vault: tiervault.Vault, src: Path, n: int) -> list[tuple[str, Snapshot]]:
    """``n`` points, each replacing one 300 KiB file and keeping a shared one."""
    write_files(src, {"shared.bin": noise(999, 200_000)})
    await vault.protect(src, name="src")
    out = []
    for i in range(n):
        files = {f"gen{i}.bin": noise(i, 300_000), "sub/note.txt": f"note {i}\n".encode()}
        write_files(src, files, remove="gen*.bin")
        res = await vault.snapshot("src")
        out.append((res.point.id, snapshot_tree(src)))
    return out


async def test_forget_then_prune_condemns_then_sweeps_after_grace(tmp_path: Path) -> None:
    clock = FakeClock()
    vault, repo = await memory_vault(clock)
    backend = repo.backend
    assert isinstance(backend, MemoryBackend)
    points = await _history(vault, tmp_path / "src", 5)
    await vault.forget(policy=tiervault.Policy(keep_last=2))
    before = stored_bytes(backend)

    first = await prune(repo, clock=clock)
    assert first.ok and first.condemned and not first.swept
    assert stored_bytes(backend) >= before  # nothing deleted by the first run
    assert first.bytes_next > 0

    clock.advance(60)
    early = await prune(repo, clock=clock)  # too early: the plan waits for GRACE
    assert not early.swept and early.deferred and early.deferred[0].until is not None

    after_grace(clock)
    second = await prune(repo, clock=clock)
    assert second.ok and second.swept
    assert second.bytes_freed > 0
    assert stored_bytes(backend) < before
    assert not any(n.startswith("locks/") and n != "locks/prune" for n in backend.objects)

    fresh = await _reopen(backend, clock)
    assert (await fresh.check()).ok
    for i, (pid, expected) in enumerate(points[-2:]):
        await restore_matches(fresh, pid, expected, tmp_path / f"out{i}")
    assert {p.id for p in await fresh.points()} == {p for p, _ in points[-2:]}


def _objects(backend: MemoryBackend) -> dict[str, bytes]:
    return {n: o.data for n, o in backend.objects.items()}


async def _reopen(backend: MemoryBackend, clock: FakeClock) -> tiervault.Vault:
    return tiervault.Vault(await Repository.open(backend, PASSWORD.encode()), clock=clock)


async def test_a_writer_heartbeat_from_before_the_mark_holds_the_sweep(tmp_path: Path) -> None:
    clock = FakeClock()
    vault, repo = await memory_vault(clock)
    backend = repo.backend
    assert isinstance(backend, MemoryBackend)
    await _history(vault, tmp_path / "src", 3)
    await vault.forget(policy=tiervault.Policy(keep_last=1))
    beat0 = await fake_writer_heartbeat(repo)  # a session on another host, started before the mark
    started = datetime_iso((await backend.stat(beat0)).modified)
    first = await prune(repo, clock=clock)
    assert first.condemned
    after_grace(clock)
    beat1 = await fake_writer_heartbeat(repo, seq=1, started=started)  # it renews: still live
    await backend.delete(beat0)

    dry = await prune(repo, clock=clock, dry_run=True)
    assert not dry.swept and [d.heartbeat for d in dry.deferred] == [beat1]
    assert dry.requests["load"] > 0 and "sweep" not in dry.would_request
    assert dry.deferred[0].host == "otherhost" and dry.deferred[0].pid == 4242
    held = await prune(repo, clock=clock)
    assert not held.swept and held.deferred[0].heartbeat == beat1
    assert {p for p, _ in first.condemned} <= {n.rsplit("/", 1)[-1] for n in backend.objects}

    await backend.delete(beat1)  # the session ended
    before = _objects(backend)
    free = await prune(repo, clock=clock, dry_run=True)
    assert free.dry_run and free.swept and free.bytes_freed > 0 and free.would_request["sweep"] >= 3
    assert _objects(backend) == before  # a dry run changes nothing
    done = await prune(repo, clock=clock)
    assert done.swept == free.swept
    assert {p for p, _ in first.condemned} <= set(done.swept)


async def test_a_new_snapshot_using_a_condemned_pack_reinstates_it(tmp_path: Path) -> None:
    clock = FakeClock()
    vault, repo = await memory_vault(clock)
    src = tmp_path / "src"
    points = await _history(vault, src, 3)
    old = await repo.load_snapshot(points[0][0])
    await vault.forget(policy=tiervault.Policy(keep_last=1))
    first = await prune(repo, clock=clock)
    assert first.condemned
    # a writer whose view is older than the plan (it loaded the index before the mark; today's
    # writers avoid condemned packs, so its commit is written here) commits a point referencing
    # the forgotten point's trees and chunks, which only condemned packs hold
    old.id = ""
    stale = await repo.save_snapshot(old)
    after_grace(clock)
    second = await prune(repo, clock=clock)
    assert second.ok and second.reinstated and second.swept
    assert not set(second.reinstated) & set(second.swept)
    fresh = await _reopen(repo.backend, clock)  # type: ignore[arg-type]
    assert (await fresh.check()).ok
    await restore_matches(fresh, stale, points[0][1], tmp_path / "out")
    await restore_matches(fresh, points[-1][0], points[-1][1], tmp_path / "out2")


async def test_a_partly_live_pack_is_repacked_and_the_index_consolidated(tmp_path: Path) -> None:
    clock = FakeClock()
    vault, repo = await memory_vault(clock)
    backend = repo.backend
    assert isinstance(backend, MemoryBackend)
    src = tmp_path / "src"
    # one file's chunks share a pack: its changed tail leaves the old pack partly live
    write_files(src, {"big.bin": tail_changed(0)})
    await vault.protect(src, name="src")
    await vault.snapshot("src")
    write_files(src, {"big.bin": tail_changed(1)})
    kept = await vault.snapshot("src")
    expected = snapshot_tree(src)
    await vault.forget(policy=tiervault.Policy(keep_last=1))
    index_before = sum(n.startswith("index/") for n in backend.objects)
    assert index_before >= 2

    first = await prune(repo, clock=clock)
    assert first.repacked and first.repack_new_packs
    assert set(first.repacked) <= {p for p, r in first.condemned if r == "repacked"}
    assert first.index_files_after == 1
    assert sum(n.startswith("index/") for n in backend.objects) == 1
    after_grace(clock)
    second = await prune(repo, clock=clock)
    assert set(first.repacked) <= set(second.swept)
    fresh = await _reopen(backend, clock)
    assert (await fresh.check()).ok
    await restore_matches(fresh, kept.point.id, expected, tmp_path / "out")


async def test_a_second_prune_while_the_lease_is_held_names_the_holder(tmp_path: Path) -> None:
    clock = FakeClock()
    _vault, repo = await memory_vault(clock)
    lease = await repo.backend.acquire_lease(LEASE_NAME, duration=60)
    with pytest.raises(LeaseHeldError, match="holder unknown"):
        await prune(repo, clock=clock)
    rec = HeartbeatRecord(
        "ab" * 16, 0, "prune", "hostA", 777, "u", "tiervault 0", None, "2026-12-01T11:00:00.000000000Z"
    )
    await repo.objects.save_plain("locks/", ObjectType.HEARTBEAT, rec.to_bytes())
    with pytest.raises(LeaseHeldError, match=r"host hostA, pid 777, lease expires 2026-12-01T11:00:00"):
        await prune(repo, clock=clock)
    await lease.release()
    assert (await prune(repo, clock=clock)).ok


async def test_a_damaged_snapshot_or_tree_refuses_and_deletes_nothing(tmp_path: Path) -> None:
    clock = FakeClock()
    vault, repo = await memory_vault(clock)
    backend = repo.backend
    assert isinstance(backend, MemoryBackend)
    await _history(vault, tmp_path / "src", 3)
    await vault.forget(policy=tiervault.Policy(keep_last=1))
    first = await prune(repo, clock=clock)
    assert first.condemned
    after_grace(clock)
    snap = next(n for n in backend.objects if n.startswith("snapshots/"))
    good = backend.objects[snap].data
    backend.objects[snap].data = good[:-1] + bytes([good[-1] ^ 1])
    before = _objects(backend)
    refused = await prune(repo, clock=clock)
    assert not refused.ok and snap in refused.refused[0] and "does not decode" in refused.refused[0]
    assert not refused.swept and not refused.condemned
    after = _objects(backend)
    assert after == before
    backend.objects[snap].data = good

    # a damaged tree: flip a byte inside every meta pack's blobs
    for n, o in list(backend.objects.items()):
        if n.startswith("meta/"):
            d = bytearray(o.data)
            d[30] ^= 1
            o.data = bytes(d)
    before = _objects(backend)
    refused = await prune(repo, clock=clock)
    assert not refused.ok and "tree" in refused.refused[0]
    assert _objects(backend) == before


async def test_a_damaged_index_file_is_worked_around_through_pack_headers(tmp_path: Path) -> None:
    clock = FakeClock()
    vault, repo = await memory_vault(clock)
    backend = repo.backend
    assert isinstance(backend, MemoryBackend)
    points = await _history(vault, tmp_path / "src", 3)
    await vault.forget(policy=tiervault.Policy(keep_last=1))
    damaged = sorted(n for n in backend.objects if n.startswith("index/"))[-1]
    data = backend.objects[damaged].data
    backend.objects[damaged].data = data[:-1] + bytes([data[-1] ^ 0xFF])  # always a change
    # and one unindexed pack whose header does not authenticate: unprovable, never condemned
    bad = "data/ff/" + "f" * 64
    backend.objects[bad] = StoredObject(b"TVPK" + b"\0" * 100, clock.now())
    clock.advance(2 * 3600)

    first = await prune(repo, clock=clock)
    assert first.ok and damaged in first.damaged_index
    assert [u[0] for u in first.unprovable] == ["f" * 64]
    assert "f" * 64 not in {p for p, _ in first.condemned}
    assert damaged in backend.objects  # damaged ones stay, for check
    after_grace(clock)
    second = await prune(repo, clock=clock)
    assert second.ok and second.swept and bad in backend.objects
    fresh = await _reopen(backend, clock)
    await restore_matches(fresh, points[-1][0], points[-1][1], tmp_path / "out")


class _LeaseThief(MemoryBackend):
    """When the prune stores its PLAN, 2 minutes pass (a suspended host) and another prune takes
    the lapsed lease: the next mutating request must not happen."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.clock = clock
        self.armed = False
        self.after_theft: list[str] = []

    async def put_if_absent(self, name: str, data: bytes | memoryview) -> bool:
        if self.armed and self.after_theft == [] and name.startswith("gc/"):
            created = await super().put_if_absent(name, data)
            self.clock.advance(120)
            await self.acquire_lease(LEASE_NAME, duration=60)  # the other prune
            self.after_theft.append("theft")
            return created
        if self.after_theft:
            self.after_theft.append("put " + name)
        return await super().put_if_absent(name, data)

    async def delete(self, name: str) -> None:
        if self.after_theft:
            self.after_theft.append("delete " + name)
        await super().delete(name)

    async def delete_many(self, names: Sequence[str]) -> None:
        if self.after_theft:
            self.after_theft.append(f"delete_many {len(names)}")
        await super().delete_many(names)


async def test_a_lost_lease_stops_the_prune_before_its_next_request(tmp_path: Path) -> None:
    clock = FakeClock()
    backend = _LeaseThief(clock)
    vault, repo = await memory_vault(clock, backend)
    await _history(vault, tmp_path / "src", 3)
    await vault.forget(policy=tiervault.Policy(keep_last=1))
    backend.armed = True
    index_before = {n for n in backend.objects if n.startswith("index/")}
    with pytest.raises(LeaseHeldError, match="lost"):
        await prune(repo, clock=clock)
    assert backend.after_theft == ["theft"]  # no store, no delete after the lease was lost
    assert index_before <= {n for n in backend.objects if n.startswith("index/")}  # none deleted


async def test_a_crafted_gone_cannot_delete_a_live_pack(tmp_path: Path) -> None:
    clock = FakeClock()
    vault, repo = await memory_vault(clock)
    backend = repo.backend
    assert isinstance(backend, MemoryBackend)
    points = await _history(vault, tmp_path / "src", 2)
    packs = sorted(n for n in backend.objects if n.startswith(("data/", "meta/")))
    named = tuple(CondemnedPack(n.rsplit("/", 1)[-1], n.split("/")[0], "unreferenced") for n in packs)
    named = tuple(sorted(named, key=lambda p: p.id))
    plan = await repo.objects.save_plain("gc/", ObjectType.PLAN, PlanRecord(named, (), "evil", 1).to_bytes())
    gone = GoneRecord(plan.removeprefix("gc/"), named, False, None)
    await repo.objects.save_plain("gc/", ObjectType.GONE, gone.to_bytes())
    report = await prune(repo, clock=clock)
    assert report.ok and report.reinstated  # every pack a point needs is kept
    fresh = await _reopen(backend, clock)
    for i, (pid, expected) in enumerate(points):
        await restore_matches(fresh, pid, expected, tmp_path / f"out{i}")


async def test_a_snapshot_running_beside_a_sweep_loses_nothing(tmp_path: Path) -> None:
    """The real writer (heartbeats, condemned packs avoided) and a sweeping prune at once, in one
    event loop: both succeed; the new point holds content only condemned packs had, and restores."""
    clock = FakeClock()
    vault, repo = await memory_vault(clock)
    src = tmp_path / "src"
    points = await _history(vault, src, 3)
    await vault.forget(policy=tiervault.Policy(keep_last=1))
    assert (await prune(repo, clock=clock)).condemned
    after_grace(clock)
    files = {"gen0.bin": noise(0, 300_000), "more.bin": noise(77, 400_000)}  # gen0: condemned only
    write_files(src, files)
    other = await Repository.open(repo.backend, PASSWORD.encode())  # another process, in effect
    snap, report = await asyncio.gather(vault.snapshot("src"), prune(other, clock=clock))
    assert report.ok and report.swept
    expected = snapshot_tree(src)
    fresh = await _reopen(repo.backend, clock)  # type: ignore[arg-type]
    assert (await fresh.check()).ok
    await restore_matches(fresh, snap.point.id, expected, tmp_path / "out")
    await restore_matches(fresh, points[-1][0], points[-1][1], tmp_path / "out2")
