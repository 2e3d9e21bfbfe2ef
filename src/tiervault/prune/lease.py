"""Step 1 and the lease discipline of a prune (docs/format.md, "prune, step by step"): the exclusive
lease on ``locks/prune``, renewed in the background; the prune's own heartbeat series (renewed with
the lease), whose first store time is the run's "now" ``T``; the lease check that precedes every
mutating request; and the ``LeaseHeldError`` that names another holder."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from datetime import datetime

from tiervault.backend.base import Lease
from tiervault.clock import SYSTEM_CLOCK, Clock
from tiervault.core.format.envelope import ObjectType
from tiervault.core.format.gcobjects import HeartbeatRecord
from tiervault.errors import BackendError, LeaseHeldError, ObjectNotFoundError
from tiervault.prune.requests import PruneBackend
from tiervault.repo.gcstate import LEASE_NAME, PRUNE_LEASE, PRUNE_LEASE_RENEW, load_heartbeats
from tiervault.repo.objects import SealedObjects
from tiervault.repo.provenance import host_name, user_name
from tiervault.repo.snapshots import datetime_iso
from tiervault.version import __version__

log = logging.getLogger("tiervault.prune")


def suspension_counting(clock: Clock) -> Callable[[], float]:
    """Seconds that keep counting while the host is suspended (docs/format.md, "Time"):
    ``CLOCK_BOOTTIME`` on Linux, the wall clock elsewhere; a test's clock as it is."""
    if clock is not SYSTEM_CLOCK:
        return clock.monotonic
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    if boottime is not None:
        return lambda: time.clock_gettime(boottime)
    return time.time


async def holder_error(backend: PruneBackend, objects: SealedObjects, cause: Exception) -> LeaseHeldError:
    """The error for a lease another prune holds, naming it from its newest prune heartbeat."""
    beats = await load_heartbeats(backend, objects)
    prunes = [b for b in beats.beats if b.record.kind == "prune"]
    if not prunes:
        return LeaseHeldError(
            f"another prune holds {LEASE_NAME} (holder unknown: no prune heartbeat yet; {cause})"
        )
    newest = max(prunes, key=lambda b: (b.stored, b.name))
    r = newest.record
    expires = r.lease_expires or "unknown"
    return LeaseHeldError(
        f"another prune holds {LEASE_NAME}: host {r.host}, pid {r.pid}, lease expires {expires} "
        f"(its clock; {cause})"
    )


class PruneLease:
    """The lease and heartbeat series of one prune run."""

    def __init__(self, backend: PruneBackend, objects: SealedObjects, clock: Clock) -> None:
        self.backend, self.objects, self.clock = backend, objects, clock
        self._elapsed = suspension_counting(clock)
        self.session = os.urandom(16).hex()
        self._lease: Lease | None = None
        self._renewed = 0.0  #: ``_elapsed()`` at the last successful renewal
        self._seq = 0
        self._beat: str | None = None
        self._started: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost: BaseException | None = None
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        try:
            self._lease = await self.backend.acquire_lease(LEASE_NAME, duration=PRUNE_LEASE)
        except LeaseHeldError as exc:
            raise await holder_error(self.backend, self.objects, exc) from None
        self._renewed = self._elapsed()

    def _record(self) -> HeartbeatRecord:
        expires = datetime.fromtimestamp(self.clock.now() + PRUNE_LEASE).astimezone()
        return HeartbeatRecord(
            self.session,
            self._seq,
            "prune",
            host_name(),
            os.getpid(),
            user_name(),
            f"tiervault {__version__}",
            self._started,
            datetime_iso(expires),
        )

    async def _put_beat(self) -> str:
        self.backend.own_objects(True)
        try:
            return await self.objects.save_plain("locks/", ObjectType.HEARTBEAT, self._record().to_bytes())
        finally:
            self.backend.own_objects(False)

    async def first_heartbeat(self) -> datetime:
        """Store heartbeat ``seq`` 0 and return its store time: the run's ``T``."""
        self._beat = await self._put_beat()
        t = (await self.backend.stat(self._beat)).modified
        self._started = datetime_iso(t)
        return t

    async def renew(self) -> None:
        """Renew the lease, then the heartbeat (next ``seq`` stored before the previous is deleted)."""
        async with self._lock:
            if self._lease is None:
                raise LeaseHeldError(f"this prune does not hold {LEASE_NAME}")
            try:
                await self._lease.renew()
            except BackendError as exc:
                self._lost = exc
                raise LeaseHeldError(f"the prune lease on {LEASE_NAME} was lost: {exc}") from exc
            self._renewed = self._elapsed()
            if self._beat is not None:
                self._seq += 1
                old, self._beat = self._beat, await self._put_beat()
                await self._delete_own(old)

    async def check(self) -> None:
        """Before every mutating request: the last renewal is recent enough, or renew now."""
        if self._lost is not None:
            raise LeaseHeldError(f"the prune lease on {LEASE_NAME} was lost: {self._lost}")
        if self._elapsed() - self._renewed >= PRUNE_LEASE / 3:
            await self.renew()

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_LEASE_RENEW)
            try:
                await self.renew()
            except (LeaseHeldError, BackendError) as exc:
                log.error("prune lease renewal failed: %s", exc)
                self._lost = self._lost or exc
                return

    def start(self) -> None:
        self._task = asyncio.create_task(self._renew_loop())

    async def _delete_own(self, name: str) -> None:
        self.backend.own_objects(True)
        try:
            await self.backend.delete(name)
        except ObjectNotFoundError:
            pass
        finally:
            self.backend.own_objects(False)

    async def close(self) -> None:
        """Step 9: stop renewing, delete the heartbeat, release the lease (best effort: a lease not
        released lapses by itself within ``PRUNE_LEASE``)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._beat is not None and self._lost is None:
            with contextlib.suppress(BackendError):
                await self._delete_own(self._beat)
        if self._lease is not None:
            with contextlib.suppress(BackendError):
                await self._lease.release()
