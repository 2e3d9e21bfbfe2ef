"""Interleavings found in review of the garbage collection (docs/format.md, "Garbage collection:
forget and prune"), each on a real repository written through the real writer, store times from a
``FakeClock``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import tiervault
from tests.e2e import PASSWORD
from tests.prune.helpers import (
    after_grace,
    datetime_iso,
    fake_writer_heartbeat,
    memory_vault,
    noise,
    reopen,
    restore_matches,
    write_files,
)
from tests.support import FakeClock, MemoryBackend
from tests.support.recording import RecordingBackend
from tests.support.statlisting import StatAfterListing
from tests.support.trees import snapshot_tree
from tiervault.errors import TransientBackendError
from tiervault.prune import prune
from tiervault.repo.gcstate import load_gc_state
from tiervault.repo.repository import Repository

HOUR = 3600.0


async def _fail(name: str) -> None:
    raise TransientBackendError(f"injected: {name}")


async def test_packs_of_a_failed_session_pruned_since_are_not_deduped_against_by_the_next_session(
    tmp_path: Path,
) -> None:
    """A session of a long-lived process stores packs, then fails before its index file: their
    records stay in memory, pending. Another process's prunes condemn those orphans, sweep them and
    retire the GONE, so ``gc/`` is what it was. The process's next session must not dedup against
    the deleted packs (nor list them in its index file)."""
    clock = FakeClock()
    store = MemoryBackend(clock=clock)
    rec = RecordingBackend(store)
    long_lived, repo = await memory_vault(clock, rec)
    src = tmp_path / "src"
    write_files(src, {"a.bin": noise(1, 300_000)})
    await long_lived.protect(src, name="src")
    rec.on("put_if_absent", "index/", _fail)  # the session's only index file: it fails
    try:
        await long_lived.snapshot("src")
    except TransientBackendError:
        pass
    else:
        raise AssertionError("the injected failure did not stop the session")

    other = tiervault.Vault(await Repository.open(store, PASSWORD.encode()), clock=clock)
    swept = 0
    for _ in range(8):  # condemn the orphans, sweep them, unlist and retire the GONE
        clock.advance(2 * HOUR)
        swept += len((await other.prune()).swept)
        state = await load_gc_state(store, other._repo.objects)
        if swept and not (state.plans or state.gones):
            break
    assert swept and not (state.plans or state.gones), "the test needs a fully retired GC cycle"

    point = (await long_lived.snapshot("src")).point  # the same content again
    fresh, _ = await reopen(repo, clock)
    report = await fresh.check()
    assert report.ok, report.errors
    await restore_matches(fresh, point.id, snapshot_tree(src), tmp_path / "out")


async def test_a_heartbeat_renewed_between_the_listing_and_its_read_still_holds_the_sweep(
    tmp_path: Path,
) -> None:
    """A writer on another host started before the mark renews (``seq 1`` stored, then ``seq 0``
    deleted) just after the sweeping prune listed ``locks/`` and before it read ``seq 0``: that
    read finds nothing, but the writer still runs, so its plan must not be swept."""
    clock = FakeClock()
    store = MemoryBackend(clock=clock)
    rec = RecordingBackend(store)
    vault, repo = await memory_vault(clock, rec)
    src = tmp_path / "src"
    write_files(src, {"a.bin": noise(1, 300_000)})
    await vault.protect(src, name="src")
    await vault.snapshot("src")
    write_files(src, {"b.bin": noise(2, 300_000)}, remove="*.bin")
    await vault.snapshot("src")
    await vault.forget("src", policy=tiervault.Policy(keep_last=1))
    beat0 = await fake_writer_heartbeat(repo)  # a session on another host, started before the mark
    started = datetime_iso((await store.stat(beat0)).modified)
    first = await prune(repo, clock=clock)
    assert first.condemned
    after_grace(clock)
    renewed: list[str] = []

    async def renew(name: str) -> None:
        if name == beat0 and not renewed:
            renewed.append(await fake_writer_heartbeat(repo, seq=1, started=started))
            await store.delete(beat0)

    rec.on("get", "locks/", renew, once=False)
    held = await prune(repo, clock=clock)
    assert renewed, "the renewal did not come between the listing and the read"
    assert not held.swept and [d.heartbeat for d in held.deferred] == renewed
    assert {p for p, _ in first.condemned} <= {n.rsplit("/", 1)[-1] for n in store.objects}


async def test_a_joining_session_that_reads_a_plan_being_swept_still_sees_its_gone(tmp_path: Path) -> None:
    """A process runs one session (its view: the plan's packs condemned) and starts a second one,
    which reads ``gc/`` again. Between that listing and its read of the PLAN, a prune in another
    process sweeps it (GONE stored after the listing, packs deleted, then the PLAN). The second
    session must still treat the packs as gone, not dedup against them."""
    clock = FakeClock()
    store = MemoryBackend(clock=clock)
    rec = RecordingBackend(store)
    vault, repo = await memory_vault(clock, rec)
    src, other_src = tmp_path / "src", tmp_path / "other"
    write_files(src, {"a.bin": noise(1, 300_000)})
    write_files(other_src, {"a.bin": noise(1, 300_000)})  # what only the forgotten point holds
    await vault.protect(src, name="src")
    await vault.protect(other_src, name="other")
    await vault.snapshot("src")
    write_files(src, {"b.bin": noise(2, 300_000)}, remove="*.bin")
    await vault.snapshot("src")
    await vault.forget("src", policy=tiervault.Policy(keep_last=1))
    pruner = tiervault.Vault(await Repository.open(store, PASSWORD.encode()), clock=clock)
    assert (await pruner.prune()).condemned
    after_grace(clock)

    reached, release = asyncio.Event(), asyncio.Event()

    async def pause(name: str) -> None:
        reached.set()
        await release.wait()

    rec.on("put_if_absent", "snapshots/", pause)
    first = asyncio.create_task(vault.snapshot("src"))  # its series starts after the plan's mark
    await reached.wait()
    swept: list[str] = []

    async def sweep_now(name: str) -> None:
        swept.extend((await pruner.prune()).swept)

    rec.on("get", "gc/", sweep_now)
    point = (await vault.snapshot("other")).point
    assert swept, "the sweep did not come between the session's gc/ listing and its read"
    release.set()
    await first
    fresh, _ = await reopen(repo, clock)
    report = await fresh.check()
    assert report.ok, report.errors
    await restore_matches(fresh, point.id, snapshot_tree(other_src), tmp_path / "out")


async def test_a_heartbeat_renewed_while_locks_is_listed_still_holds_the_sweep(tmp_path: Path) -> None:
    """The same renewal, during the listing itself: a directory listing took the old heartbeat's
    name, the renewal stored the new one and deleted the old, and the listing's ``stat`` of the old
    name found nothing (as ``LocalBackend``'s does). The writer still runs: no sweep."""
    clock = FakeClock()
    store = MemoryBackend(clock=clock)
    lister = StatAfterListing(store)
    vault, repo = await memory_vault(clock, lister)
    src = tmp_path / "src"
    write_files(src, {"a.bin": noise(1, 300_000)})
    await vault.protect(src, name="src")
    await vault.snapshot("src")
    write_files(src, {"b.bin": noise(2, 300_000)}, remove="*.bin")
    await vault.snapshot("src")
    await vault.forget("src", policy=tiervault.Policy(keep_last=1))
    beat0 = await fake_writer_heartbeat(repo)  # a session on another host, started before the mark
    started = datetime_iso((await store.stat(beat0)).modified)
    first = await prune(repo, clock=clock)
    assert first.condemned
    after_grace(clock)
    renewed: list[str] = []

    async def renew(prefix: str) -> None:
        renewed.append(await fake_writer_heartbeat(repo, seq=1, started=started))
        await store.delete(beat0)

    lister.between("locks/", renew)
    held = await prune(repo, clock=clock)
    assert renewed, "the renewal did not come during the listing"
    assert not held.swept and [d.heartbeat for d in held.deferred] == renewed
