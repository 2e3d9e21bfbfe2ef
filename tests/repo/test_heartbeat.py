"""The heartbeat series of a writer (docs/format.md, writer rules 1 and 5, invariant 10), driven by a
``FakeClock`` that is both the store's clock and the host's."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import pytest

from tests.support import FakeClock, MemoryBackend
from tests.support.recording import RecordingBackend
from tiervault.core.format.envelope import ObjectType
from tiervault.core.format.gcobjects import HeartbeatRecord
from tiervault.errors import TransientBackendError
from tiervault.repo.gcstate import HEARTBEAT_INTERVAL, LAPSE, load_heartbeats
from tiervault.repo.heartbeat import HeartbeatSeries, WriterSessions
from tiervault.repo.objects import SealedObjects
from tiervault.repo.snapshots import datetime_iso

INTERVAL = HEARTBEAT_INTERVAL.total_seconds()


async def until(cond: Callable[[], bool], what: str) -> None:
    """Let the event loop run (no real time passes) until ``cond`` holds."""
    for _ in range(10_000):
        if cond():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


def setup(clock: FakeClock, store_clock: FakeClock | None = None) -> tuple[RecordingBackend, SealedObjects]:
    backend = RecordingBackend(MemoryBackend(clock=store_clock or clock))
    return backend, SealedObjects(backend, os.urandom(32))


def record(backend: RecordingBackend, objects: SealedObjects, name: str) -> HeartbeatRecord:
    return HeartbeatRecord.from_bytes(objects.open_bytes(name, backend.stored[name], ObjectType.HEARTBEAT))


def locks(backend: RecordingBackend) -> list[str]:
    inner = backend.inner
    assert isinstance(inner, MemoryBackend)
    return sorted(n for n in inner.objects if n.startswith("locks/"))


async def test_seq0_then_renewed_each_interval_new_before_old_deleted() -> None:
    clock = FakeClock()
    backend, objects = setup(clock)
    series = HeartbeatSeries(backend, objects, clock)
    await series.start()
    [first] = locks(backend)
    rec0 = record(backend, objects, first)
    assert (rec0.seq, rec0.started, rec0.kind, rec0.pid) == (0, None, "snapshot", os.getpid())
    assert len(rec0.session) == 32
    assert series.started == (await backend.inner.stat(first)).modified

    clock.advance(INTERVAL - 1)
    for _ in range(100):
        await asyncio.sleep(0)
    assert locks(backend) == [first], "renewed before HEARTBEAT_INTERVAL"

    clock.advance(1)
    await until(lambda: series.seq == 1 and len(locks(backend)) == 1, "a renewal")
    [second] = locks(backend)
    rec1 = record(backend, objects, second)
    assert (rec1.seq, rec1.session) == (1, rec0.session)
    assert rec1.started == datetime_iso(series.started)
    # seq 1 stored and stat-ed before seq 0 is deleted (invariant 10)
    assert (
        backend.calls.index(("put_if_absent", second))
        < backend.calls.index(("stat", second))
        < backend.calls.index(("delete", first))
    )
    assert not series.lapsed

    clock.advance(INTERVAL)
    await until(lambda: series.seq == 2 and len(locks(backend)) == 1, "a second renewal")
    assert record(backend, objects, locks(backend)[0]).seq == 2
    beats = await load_heartbeats(backend, objects)
    assert [b.started for b in beats.beats] == [series.started]

    await series.end()
    assert locks(backend) == []
    clock.advance(10 * INTERVAL)
    for _ in range(100):
        await asyncio.sleep(0)
    assert locks(backend) == [], "the renewal task outlived the end of the series"


async def test_host_suspended_past_lapse_is_lapsed() -> None:
    clock = FakeClock()
    backend, objects = setup(clock)
    series = HeartbeatSeries(backend, objects, clock)
    await series.start()
    clock.advance(LAPSE.total_seconds() - 1)  # long, but less than LAPSE: not lapsed
    await until(lambda: series.seq == 1, "a renewal")
    assert not series.lapsed
    clock.advance(LAPSE.total_seconds())  # a suspension: the next renewal comes LAPSE later
    await until(lambda: series.seq == 2, "a renewal after the suspension")
    assert series.lapsed
    await series.end()


async def test_store_time_gap_alone_is_a_lapse() -> None:
    """Two consecutive heartbeats LAPSE apart in store time (a host clock that did not see it)."""
    host, store = FakeClock(), FakeClock()
    backend, objects = setup(host, store)
    series = HeartbeatSeries(backend, objects, host)
    await series.start()
    store.advance(LAPSE.total_seconds())
    await series.renew()
    assert series.lapsed
    await series.end()
    assert locks(backend) == []


async def test_failed_renewal_is_retried_and_old_heartbeat_stays_until_a_new_one_is_stored() -> None:
    clock = FakeClock()
    backend, objects = setup(clock)
    series = HeartbeatSeries(backend, objects, clock)
    await series.start()
    [first] = locks(backend)

    async def fail(name: str) -> None:
        raise TransientBackendError("injected: store unavailable")

    backend.on("put_if_absent", "locks/", fail)
    clock.advance(INTERVAL)
    await until(lambda: backend.names("put_if_absent", "locks/")[1:] != [], "a renewal attempt")
    for _ in range(100):
        await asyncio.sleep(0)
    assert locks(backend) == [first], "the live heartbeat was deleted although no new one was stored"
    clock.advance(30)
    await until(lambda: series.seq == 1 and len(locks(backend)) == 1, "the retried renewal")
    assert locks(backend) != [first] and len(locks(backend)) == 1
    await series.end()
    assert locks(backend) == []


async def test_sessions_share_one_series_and_the_last_one_ends_it() -> None:
    clock = FakeClock()
    backend, objects = setup(clock)
    sessions = WriterSessions(backend, objects)
    views: list[bool] = []

    async def view(first: bool) -> None:
        views.append(first)

    a = await sessions.begin(clock, view)
    b = await sessions.begin(clock, view)
    assert a is b and views == [True, False] and len(locks(backend)) == 1
    await sessions.end()
    assert len(locks(backend)) == 1, "ended while a session still runs"
    await sessions.end()
    assert locks(backend) == []
    c = await sessions.begin(clock, view)
    assert c is not a and c.session != a.session, "a new session after the end starts a new series"
    await sessions.end()
    assert len(backend.names("put_if_absent", "locks/")) == 2


async def test_a_failed_view_ends_the_series_it_started() -> None:
    clock = FakeClock()
    backend, objects = setup(clock)
    sessions = WriterSessions(backend, objects)

    async def view(first: bool) -> None:
        raise TransientBackendError("injected: gc/ unreadable")

    with pytest.raises(TransientBackendError):
        await sessions.begin(clock, view)
    assert locks(backend) == [] and sessions.running == 0


async def test_end_completes_when_the_caller_is_cancelled() -> None:
    clock = FakeClock()
    backend, objects = setup(clock)
    sessions = WriterSessions(backend, objects)

    async def view(first: bool) -> None:
        return None

    await sessions.begin(clock, view)
    gate = asyncio.Event()

    async def slow(name: str) -> None:
        await gate.wait()

    backend.on("delete", "locks/", slow)
    ending = asyncio.ensure_future(sessions.end())
    await until(lambda: ("delete", locks(backend)[0]) in backend.calls, "the delete")
    ending.cancel()
    await asyncio.sleep(0)
    assert not ending.done(), "the cancellation abandoned the heartbeat's delete"
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await ending
    assert locks(backend) == []
