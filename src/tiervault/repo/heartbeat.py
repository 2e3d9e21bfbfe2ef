"""A writer's heartbeat series in ``locks/`` (format version 2; docs/format.md, "Garbage collection:
forget and prune", writer rules 1 and 5, ordering invariant 10).

One :class:`HeartbeatSeries` covers every snapshot session a ``Repository`` runs at the same time
(:class:`WriterSessions` counts them): ``seq`` 0 is stored and ``stat``-ed when the first session
starts (its store time is the series' ``started``), a background task renews it every
``HEARTBEAT_INTERVAL`` (``seq k+1`` stored and ``stat``-ed before ``seq k`` is deleted), and the last
heartbeat is deleted when the last session ends. Each name is known before its put, so a cancelled
put is still deleted at the end.

The series is *lapsed* once a renewal succeeded ``LAPSE`` or more after the previous successful one,
by the host's suspension-counting clock (``Clock.elapsed``), or once two consecutive heartbeats are
``LAPSE`` or more apart in store time. A lapse is never forgotten while the series runs: every
session committing in it runs the lapsed-writer check.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from datetime import datetime

from tiervault.backend.base import Backend
from tiervault.clock import Clock
from tiervault.core.format.envelope import ObjectType
from tiervault.core.format.gcobjects import HeartbeatRecord
from tiervault.errors import BackendError
from tiervault.repo.gcstate import HEARTBEAT_INTERVAL, LAPSE
from tiervault.repo.objects import SealedObjects
from tiervault.repo.provenance import host_name, user_name
from tiervault.repo.snapshots import datetime_iso
from tiervault.version import __version__

log = logging.getLogger("tiervault.repo")

#: after a failed renewal, the next attempt comes this much later (seconds)
RENEW_RETRY = 30.0


class HeartbeatSeries:
    """The heartbeats of one writer series (see the module docstring)."""

    def __init__(
        self, backend: Backend, objects: SealedObjects, clock: Clock, *, kind: str = "snapshot"
    ) -> None:
        self.backend, self.objects, self.clock, self.kind = backend, objects, clock, kind
        self.session = os.urandom(16).hex()
        self.seq = -1
        #: store time of ``seq`` 0 (``started``) and of the newest heartbeat stored
        self.started: datetime | None = None
        self.stored: datetime | None = None
        self.lapsed = False
        self._last_ok = 0.0  # clock.elapsed() when the newest heartbeat was stored and stat-ed
        self._names: list[str] = []  # put (or being put) and not deleted yet, oldest first
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def _record(self, seq: int) -> HeartbeatRecord:
        return HeartbeatRecord(
            session=self.session,
            seq=seq,
            kind=self.kind,
            host=host_name(),
            pid=os.getpid(),
            user=user_name(),
            program=f"tiervault {__version__}",
            started=None if self.started is None else datetime_iso(self.started),
        )

    async def _put(self, seq: int) -> tuple[str, datetime]:
        name, data = self.objects.seal("locks/", ObjectType.HEARTBEAT, self._record(seq).to_bytes())
        if name not in self._names:
            self._names.append(name)  # before the put: a put cut short is still deleted at the end
        await self.backend.put_if_absent(name, data)
        return name, (await self.backend.stat(name)).modified

    async def start(self) -> None:
        """Store ``seq`` 0 and learn ``started``; then renew in the background. On failure (or
        cancellation) nothing is left behind, as far as a delete can."""
        try:
            _, stored = await self._put(0)
        except BaseException:
            await self._delete_all()
            raise
        self.seq, self.started, self.stored, self._last_ok = 0, stored, stored, self.clock.elapsed()
        self._task = asyncio.create_task(self._run(), name=f"tiervault heartbeat {self.session[:8]}")

    async def renew(self) -> datetime:
        """Store the next heartbeat, ``stat`` it, then delete the previous one; measure the lapse.
        Returns the new heartbeat's store time."""
        async with self._lock:
            assert self.stored is not None, "renew before start"
            seq = self.seq + 1
            name, stored = await self._put(seq)
            now = self.clock.elapsed()
            host_gap, store_gap = now - self._last_ok, stored - self.stored
            if not self.lapsed and (host_gap >= LAPSE.total_seconds() or store_gap >= LAPSE):
                self.lapsed = True
                log.warning(
                    "snapshot writer lapsed: %.0f s on this host and %s in store time since its last "
                    "heartbeat (a prune may have swept packs meanwhile; its commit checks them)",
                    host_gap,
                    store_gap,
                )
            self.seq, self.stored, self._last_ok = seq, stored, now
            for old in [n for n in self._names if n != name]:
                try:
                    await self.backend.delete(old)
                except BackendError as exc:  # tried again after the next renewal, and at the end
                    log.warning("could not delete heartbeat %s yet: %s", old, exc)
                    continue
                self._names.remove(old)
            return stored

    async def _run(self) -> None:
        interval = HEARTBEAT_INTERVAL.total_seconds()
        while True:
            await self.clock.sleep(interval - (self.clock.elapsed() - self._last_ok))
            if self.clock.elapsed() - self._last_ok < interval:
                continue  # renewed by a commit meanwhile
            try:
                await self.renew()
            except BackendError as exc:
                log.warning("heartbeat renewal failed (retrying in %.0f s): %s", RENEW_RETRY, exc)
                await self.clock.sleep(RENEW_RETRY)

    async def _delete_all(self) -> None:
        for name in list(self._names):
            try:
                await self.backend.delete(name)
            except BackendError as exc:  # best effort: a dead heartbeat is deleted by a prune
                log.warning("could not delete heartbeat %s (a prune removes it once dead): %s", name, exc)
                continue
            self._names.remove(name)

    async def end(self) -> None:
        """Stop renewing (after a renewal in progress) and delete every heartbeat of the series."""
        async with self._lock:
            task, self._task = self._task, None
            if task is not None:
                task.cancel()
                for result in await asyncio.gather(task, return_exceptions=True):
                    if isinstance(result, Exception):
                        log.warning("heartbeat renewal stopped: %r", result)
            await self._delete_all()


class WriterSessions:
    """The snapshot sessions of one ``Repository``, sharing one heartbeat series."""

    def __init__(self, backend: Backend, objects: SealedObjects) -> None:
        self.backend, self.objects = backend, objects
        self.series: HeartbeatSeries | None = None
        self._count = 0
        self._lock = asyncio.Lock()

    @property
    def running(self) -> int:
        return self._count

    async def begin(self, clock: Clock, view: Callable[[bool], Awaitable[object]]) -> HeartbeatSeries:
        """Join the series (starting it if no session runs), then ``view(first)``: read the GC state
        and (``first``) every index file. A failure leaves the count as it was."""
        async with self._lock:
            first = self._count == 0
            if first:
                series = HeartbeatSeries(self.backend, self.objects, clock)
                await series.start()
                self.series = series
            assert self.series is not None
            try:
                await view(first)
            except BaseException:
                if first:
                    await _finish(self.series.end())
                    self.series = None
                raise
            self._count += 1
            return self.series

    async def end(self) -> None:
        """Leave the series; the last session ends it (its heartbeat is deleted). Completes even if
        the caller is cancelled meanwhile (then the cancellation propagates afterwards)."""
        await _finish(self._end())

    async def _end(self) -> None:
        async with self._lock:
            self._count -= 1
            if self._count == 0 and self.series is not None:
                series, self.series = self.series, None
                await series.end()


async def _finish(work: Awaitable[None]) -> None:
    """Await ``work`` to its end even if cancelled meanwhile; a cancellation is re-raised after."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                break
            cancelled = True
    if cancelled:
        task.exception()
        raise asyncio.CancelledError
    task.result()
