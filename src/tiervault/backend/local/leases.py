"""Emulated leases for the local backend.

The state of a lease on ``name`` is ``.tv-leases/<name>.json`` (``{"lease_id": ..., "expires":
epoch}``, by the backend's clock); its check-and-set is guarded by an exclusive ``flock(2)`` on
``.tv-leases/<name>.lock``, which excludes other threads and other processes alike.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import uuid
from collections.abc import Iterator
from types import TracebackType
from typing import Final, Self

from tiervault.backend.local.errors import run_blocking
from tiervault.backend.local.files import JSON, O_CLOEXEC, Disk
from tiervault.backend.local.objects import Objects
from tiervault.clock import Clock
from tiervault.errors import BackendError, LeaseHeldError

__all__ = ["LEASES_DIR", "Leases", "LocalLease"]

_log = logging.getLogger("tiervault.backend.local")

LEASES_DIR: Final = ".tv-leases"
_LOCK: Final = ".lock"


class Leases:
    """The lease files under ``disk``; an absent object is created empty (through ``objects``) when
    leased; ``clock`` times expiry. Every method is blocking."""

    __slots__ = ("_clock", "_disk", "_objects")

    def __init__(self, disk: Disk, objects: Objects, clock: Clock) -> None:
        self._disk = disk
        self._objects = objects
        self._clock = clock

    def _path(self, name: str, suffix: str) -> str:
        return self._disk.path(LEASES_DIR, name + suffix)

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        """Hold an exclusive ``flock`` on the name's lock file (across threads and processes)."""
        path = self._path(name, _LOCK)
        flags = os.O_RDWR | os.O_CREAT | O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o666)
        except FileNotFoundError:
            self._disk.ensure_dir(os.path.dirname(path))
            fd = os.open(path, flags, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock

    def _read(self, name: str) -> tuple[str, float] | None:
        path = self._path(name, JSON)
        rec = self._disk.read_json(path)
        if rec is None:
            return None
        lease_id, expires = rec.get("lease_id"), rec.get("expires")
        if not isinstance(lease_id, str) or not isinstance(expires, int | float):
            raise BackendError(f"corrupt lease metadata {path}")
        return lease_id, float(expires)

    def acquire(self, name: str, duration: float) -> tuple[str, float]:
        """Take the lease on ``name`` for ``duration`` seconds: (lease id, expiry);
        ``LeaseHeldError`` if another holder's has not expired."""
        if not self._disk.is_object(name):
            self._objects.put(name, b"")
        with self._lock(name):
            now = self._clock.now()
            current = self._read(name)
            if current is not None and current[1] > now:
                raise LeaseHeldError(f"{name!r} is leased by another holder for {current[1] - now:.1f}s more")
            lease_id = uuid.uuid4().hex
            expires = now + duration
            self._disk.write_json_atomic(self._path(name, JSON), {"lease_id": lease_id, "expires": expires})
        return lease_id, expires

    def renew(self, name: str, lease_id: str, duration: float) -> float:
        """Extend lease ``lease_id`` to ``now + duration``: the new expiry; ``LeaseHeldError`` if it
        is no longer held."""
        with self._lock(name):
            current = self._read(name)
            if current is None or current[0] != lease_id:
                raise LeaseHeldError(f"the lease on {name!r} was lost (released, or expired and taken)")
            expires = self._clock.now() + duration
            self._disk.write_json_atomic(self._path(name, JSON), {"lease_id": lease_id, "expires": expires})
        return expires

    def release(self, name: str, lease_id: str) -> bool:
        """Give lease ``lease_id`` up; False if it was no longer held."""
        with self._lock(name):
            current = self._read(name)
            if current is None or current[0] != lease_id:
                return False
            path = self._path(name, JSON)
            os.unlink(path)
            self._disk.sync_dir(os.path.dirname(path))
        return True


class LocalLease:
    """A lease taken by ``LocalBackend.acquire_lease``. ``async with lease:`` releases it on exit."""

    __slots__ = ("_duration", "_expires", "_lease_id", "_leases", "_name")

    def __init__(self, leases: Leases, name: str, lease_id: str, duration: float, expires: float) -> None:
        self._leases = leases
        self._name = name
        self._lease_id = lease_id
        self._duration = duration
        self._expires = expires

    def __repr__(self) -> str:
        return f"LocalLease({self._name!r}, lease_id={self._lease_id!r})"

    @property
    def name(self) -> str:
        return self._name

    @property
    def lease_id(self) -> str:
        return self._lease_id

    @property
    def duration(self) -> float:
        return self._duration

    @property
    def expires(self) -> float:
        """Epoch seconds (by the backend's clock) at which the lease lapses unless renewed."""
        return self._expires

    async def renew(self) -> None:
        """Extend to ``now + duration``; ``LeaseHeldError`` if the lease is no longer ours."""
        self._expires = await run_blocking(
            "renew_lease", self._name, self._leases.renew, self._name, self._lease_id, self._duration
        )

    async def release(self) -> None:
        """Give the lease up if it is still ours. Idempotent."""
        if await run_blocking("release_lease", self._name, self._leases.release, self._name, self._lease_id):
            _log.info("lease %s on %s released", self._lease_id, self._name)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()
