"""``LocalBackend``: the storage contract over a local (or mounted) file system. Each operation checks
its arguments here and runs its blocking part (``objects``, ``listing``, ``tiers``, ``leases``) in a
worker thread, one ``to_thread`` per operation (one per block for ``open_read``, one per batch of
entries for ``list``), translating ``OSError`` on the way (``errors``)."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Final, Self

from tiervault.backend.base import (
    Capabilities,
    ObjectInfo,
    RehydratePriority,
    Tier,
    validate_age,
    validate_name,
    validate_prefix,
)
from tiervault.backend.local.errors import run_blocking
from tiervault.backend.local.files import Disk, range_end
from tiervault.backend.local.leases import Leases, LocalLease
from tiervault.backend.local.listing import Lister
from tiervault.backend.local.objects import Objects
from tiervault.backend.local.tiers import Tiers
from tiervault.backend.tempfiles import delete_old_temp_files, leftover_info, temp_files
from tiervault.clock import SYSTEM_CLOCK, Clock
from tiervault.errors import UsageError

__all__ = ["CAPABILITIES", "LocalBackend"]

_log = logging.getLogger("tiervault.backend.local")

#: emulated tiers and leases; one call per name in the ``*_many`` calls; no container
CAPABILITIES: Final = Capabilities(tiers=True, leases=True)


def _check_range(offset: int, length: int | None) -> None:
    if offset < 0:
        raise UsageError(f"offset must be >= 0, not {offset}")
    if length is not None and length < 0:
        raise UsageError(f"length must be >= 0 or None, not {length}")


class LocalBackend:
    """Objects as files under ``root``; tiers and leases emulated with sidecar files.

    ``clock`` drives tier rehydration and lease expiry (a fake clock makes both testable);
    ``rehydrate_seconds`` is how long an emulated Archive rehydration takes (0: at once);
    ``fsync=False`` skips every fsync (tests and benchmarks only: a crash may then lose objects).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        clock: Clock = SYSTEM_CLOCK,
        rehydrate_seconds: float = 0.0,
        fsync: bool = True,
    ) -> None:
        if not (rehydrate_seconds >= 0 and math.isfinite(rehydrate_seconds)):
            raise UsageError(f"rehydrate_seconds must be a finite number >= 0, not {rehydrate_seconds!r}")
        self._root = os.path.abspath(os.path.expanduser(os.fspath(root)))
        self._clock = clock
        disk = Disk(self._root, fsync=fsync)
        self._tiers = Tiers(disk, clock, float(rehydrate_seconds))
        self._objects = Objects(disk, self._tiers)
        self._lister = Lister(disk, self._tiers)
        self._leases = Leases(disk, self._objects, clock)
        self._closed = False

    def __repr__(self) -> str:
        return f"LocalBackend({self._root!r})"

    @property
    def location(self) -> str:
        """The absolute path of the root directory."""
        return self._root

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    async def create_container(self) -> bool:
        """No container: the root directory is made by the first write."""
        self._check_open()
        return False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Mark the backend closed (there are no pooled resources). Idempotent."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError(f"{self!r} is closed")

    # -------------------------------------------------------------------------- objects

    async def put_if_absent(self, name: str, data: bytes | memoryview) -> bool:
        """Atomically create ``name``; False (and nothing changed) if it already exists."""
        self._check_open()
        validate_name(name)
        created = await run_blocking("put", name, self._objects.put, name, data)
        _log.debug("put %s: %s", name, "created" if created else "already present")
        return created

    async def get(self, name: str, *, offset: int = 0, length: int | None = None) -> bytes:
        """``length`` bytes from ``offset`` (to the end if None); a range past the end is cut short."""
        self._check_open()
        validate_name(name)
        _check_range(offset, length)
        return await run_blocking("get", name, self._objects.get, name, offset, length)

    async def open_read(
        self, name: str, *, offset: int = 0, length: int | None = None, block_size: int = 4 << 20
    ) -> AsyncIterator[bytes]:
        """The bytes of ``get``, as blocks of at most ``block_size``, each read in a worker thread."""
        self._check_open()
        validate_name(name)
        _check_range(offset, length)
        if block_size <= 0:
            raise UsageError(f"block_size must be > 0, not {block_size}")
        fd, size = await run_blocking("get", name, self._objects.open_readable, name)
        try:
            pos, end = offset, range_end(size, offset, length)
            while pos < end:
                block = await run_blocking("get", name, os.pread, fd, min(block_size, end - pos), pos)
                if not block:
                    break
                pos += len(block)
                yield block
        finally:
            os.close(fd)

    async def stat(self, name: str) -> ObjectInfo:
        """Size, tier, mtime and rehydration state of ``name``."""
        self._check_open()
        validate_name(name)
        return await run_blocking("stat", name, self._objects.stat, name)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object whose name starts with ``prefix``; walks only directories that can match."""
        self._check_open()
        validate_prefix(prefix)
        stack = [prefix.rpartition("/")[0]]
        while stack:
            rel = stack.pop()
            scan = await run_blocking("list", prefix, self._lister.open, rel)
            if scan is None:
                continue
            try:
                done = False
                while not done:
                    batch = await run_blocking("list", prefix, self._lister.batch, scan, prefix)
                    infos, subdirs, done = batch
                    stack.extend(subdirs)
                    for info in infos:
                        yield info
            finally:
                scan.close()

    async def delete(self, name: str) -> None:
        """Remove ``name`` and its tier sidecar; absent is fine."""
        self._check_open()
        validate_name(name)
        await run_blocking("delete", name, self._objects.delete, name)
        _log.debug("deleted %s", name)

    async def delete_many(self, names: Sequence[str]) -> None:
        for name in names:
            await self.delete(name)

    async def set_tier_many(self, names: Sequence[str], tier: Tier) -> None:
        for name in names:
            await self.set_tier(name, tier)

    # ------------------------------------------------------------------------ leftovers

    async def list_incomplete(self) -> AsyncIterator[ObjectInfo]:
        """The ``.tmp-*`` files of writes that never finished (see ``Backend.list_incomplete``)."""
        self._check_open()
        for rel, st in await run_blocking("list", ".tmp-*", temp_files, self._root):
            yield leftover_info(rel, st)

    async def delete_incomplete(self, *, older_than: float) -> Sequence[ObjectInfo]:
        """Remove temp files whose last write (mtime) is more than ``older_than`` seconds before
        this backend's clock's ``now()``; return them. A live ``put_if_absent`` writes its temp file
        and links it in one worker-thread call, so its mtime is at most one write old; were it
        removed anyway, its ``link(2)`` fails and the put raises: no object is ever damaged."""
        self._check_open()
        age = validate_age(older_than)
        removed = await run_blocking(
            "delete", ".tmp-*", delete_old_temp_files, self._root, self._clock.now, age
        )
        if removed:
            _log.debug(
                "removed %d temp file(s) of unfinished writes (%d bytes)",
                len(removed),
                sum(r.size for r in removed),
            )
        return removed

    # ---------------------------------------------------------------------------- tiers

    async def set_tier(self, name: str, tier: Tier) -> None:
        """Move ``name`` to ``tier``; leaving Archive is refused (``UsageError``: use ``rehydrate``)."""
        self._check_open()
        validate_name(name)
        try:
            tier = Tier(tier)
        except ValueError:
            raise UsageError(f"unknown tier {tier!r}") from None
        await run_blocking("set_tier", name, self._tiers.set_tier, name, tier)
        _log.debug("tier of %s set to %s", name, tier.value)

    async def rehydrate(self, name: str, *, priority: RehydratePriority = RehydratePriority.STANDARD) -> None:
        """Start rehydrating an archived object; readable (Hot) after ``rehydrate_seconds``.

        ``priority`` is accepted for interface parity; the emulation takes the same time for both.
        A no-op for an object that is not archived or already rehydrating.
        """
        self._check_open()
        validate_name(name)
        try:
            priority = RehydratePriority(priority)
        except ValueError:
            raise UsageError(f"unknown rehydrate priority {priority!r}") from None
        started = await run_blocking("rehydrate", name, self._tiers.rehydrate, name)
        if started:
            _log.info(
                "rehydrating %s (%s priority, %.0f s)", name, priority.value, self._tiers.rehydrate_seconds
            )

    async def copy_rehydrate(
        self, src: str, dst: str, *, priority: RehydratePriority = RehydratePriority.STANDARD
    ) -> bool:
        """Copy ``src`` to a new Hot object ``dst``; from an archived ``src`` the copy reads as
        rehydrating for ``rehydrate_seconds`` (either ``priority``), ``src`` stays archived."""
        self._check_open()
        validate_name(src)
        validate_name(dst)
        try:
            priority = RehydratePriority(priority)
        except ValueError:
            raise UsageError(f"unknown rehydrate priority {priority!r}") from None
        started = await run_blocking("copy", src, self._objects.copy, src, dst)
        if started:
            _log.info("copying %s to %s (%s priority)", src, dst, priority.value)
        return started

    # --------------------------------------------------------------------------- leases

    async def acquire_lease(self, name: str, *, duration: float) -> LocalLease:
        """Take an exclusive lease on ``name`` (created empty if absent) for ``duration`` seconds."""
        self._check_open()
        validate_name(name)
        if not (duration > 0 and math.isfinite(duration)):
            raise UsageError(f"lease duration must be a finite number of seconds > 0, not {duration!r}")
        lease_id, expires = await run_blocking("acquire_lease", name, self._leases.acquire, name, duration)
        _log.info("lease %s on %s acquired for %.1f s", lease_id, name, duration)
        return LocalLease(self._leases, name, lease_id, float(duration), expires)
