"""prune end to end on real repositories (written through the real writer) on a MemoryBackend whose
store times follow a FakeClock: condemn, sweep after GRACE, bytes reclaimed, every remaining point
restores exactly and check passes."""

from __future__ import annotations

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
from tiervault.core.format.gcobjects import HeartbeatRecord
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
    assert dry.deferred[0].host == "otherhost" and dry.deferred[0].pid == 4242
    held = await prune(repo, clock=clock)
    assert not held.swept and held.deferred[0].heartbeat == beat1
    assert {p for p, _ in first.condemned} <= {n.rsplit("/", 1)[-1] for n in backend.objects}

    await backend.delete(beat1)  # the session ended
    done = await prune(repo, clock=clock)
    assert {p for p, _ in first.condemned} <= set(done.swept)


async def test_a_new_snapshot_using_a_condemned_pack_reinstates_it(tmp_path: Path) -> None:
    clock = FakeClock()
    vault, repo = await memory_vault(clock)
    src = tmp_path / "src"
    points = await _history(vault, src, 3)
    await vault.forget(policy=tiervault.Policy(keep_last=1))
    first = await prune(repo, clock=clock)
    assert first.condemned
    # a writer that still knows the condemned packs (a view older than the plan) stores gen0 again:
    # it dedups against the condemned pack holding it
    write_files(src, {"gen0.bin": noise(0, 300_000)})
    res = await vault.snapshot("src")
    assert res.stats.chunks_new < 3
    expected = snapshot_tree(src)
    after_grace(clock)
    second = await prune(repo, clock=clock)
    assert second.reinstated and second.swept
    assert not set(second.reinstated) & set(second.swept)
    fresh = await _reopen(repo.backend, clock)  # type: ignore[arg-type]
    assert (await fresh.check()).ok
    await restore_matches(fresh, res.point.id, expected, tmp_path / "out")
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
    backend.objects[damaged].data = backend.objects[damaged].data[:-1] + b"\0"
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
