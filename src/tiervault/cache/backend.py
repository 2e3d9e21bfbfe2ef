"""``CacheBackend``: the disk tier as a ``Backend`` decorator (docs/architecture.md, "Disk tier").

The same contract as the backend it wraps, with a verified, bounded disk tier in front of reads:

* **What.** Objects the :class:`~tiervault.cache.policy.CachePolicy` calls ``METADATA`` or ``DATA``
  (immutable, named by the BLAKE3 of their bytes): one is kept when ``put_if_absent`` succeeded on
  the inner backend (write-through) and when a whole-object ``get`` fetched it. A ranged ``get`` of
  an object that is not cached reads only that range from the inner backend and keeps nothing.
  Anything else always goes to the inner backend, so a stale copy can never be served.
* **Verified** before it is trusted, **bounded** (LRU; data first, pinned names last), **shared**
  by processes and **disposable**: ``entries.py`` and ``bounds.py``.
* **Never fatal.** Any unexpected ``OSError`` of the disk tier (read-only or full file system, the
  directory deleted or its mount gone) turns the tier off for the rest of the run with one warning
  (logger ``tiervault.cache``); reads and writes then go to the inner backend only.

All file work runs in worker threads (``asyncio.to_thread``), at most ``IO_THREADS`` at a time.
Counters (:meth:`CacheBackend.stats`) say how many read requests and bytes each tier served.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

from tiervault.backend.base import Backend, Capabilities, Lease, ObjectInfo, RehydratePriority, Tier
from tiervault.cache.bounds import Bounds
from tiervault.cache.entries import EntryStore
from tiervault.cache.files import pread_all
from tiervault.cache.policy import CachePolicy, entry_kind
from tiervault.cache.reports import CacheCleanup, CacheCounters, CacheStats, CacheUsage, Tally
from tiervault.cache.verified import Memo
from tiervault.errors import BackendError, UsageError

log = logging.getLogger("tiervault.cache")

#: the default bound of one repository's entries
DEFAULT_MAX_BYTES: Final = 2 << 30
#: cache file operations running at once in worker threads
IO_THREADS: Final = 8
_T = TypeVar("_T")


class CacheBackend:
    """A ``Backend`` decorator: the same contract, with a verified, bounded disk tier in front.

    Entries live in ``cache_dir/<repository_key>/<object name>``; ``policy`` says which names are
    metadata (kept) and which are data (bounded). ``cache_dir=None`` turns the disk tier off: every
    call goes to ``inner`` and is only counted (so a restore can report its reads per tier whether
    or not there is a cache).
    """

    def __init__(
        self,
        inner: Backend,
        cache_dir: Path | None,
        *,
        policy: CachePolicy,
        max_bytes: int = DEFAULT_MAX_BYTES,
        repository_key: str,
    ) -> None:
        if max_bytes <= 0:
            raise UsageError(f"the cache bound must be > 0 bytes, not {max_bytes}")
        if not repository_key or "/" in repository_key or repository_key in (".", ".."):
            raise UsageError(f"invalid cache repository key {repository_key!r}")
        self.inner = inner
        self.max_bytes = max_bytes
        self.directory: Path | None = None if cache_dir is None else Path(cache_dir) / repository_key
        self._root = os.fspath(self.directory) if self.directory is not None else ""
        self._policy = policy
        self._off = cache_dir is None  # by choice
        self._failure: str | None = None  # why an error turned the tier off
        self._tally = Tally()
        memo = Memo()
        self._bounds = Bounds(self._root, max_bytes, policy, self._tally, memo)
        self._entries = EntryStore(self._root, policy, self._tally, memo, self._bounds)
        self._sem = asyncio.Semaphore(IO_THREADS)

    def __repr__(self) -> str:
        return f"CacheBackend({self.inner!r}, {self._root or None!r})"

    # ------------------------------------------------------------------ state and counters

    @property
    def enabled(self) -> bool:
        """True while the disk tier is in use (configured, and no error has turned it off)."""
        return not self._off and self._failure is None

    @property
    def disabled_reason(self) -> str | None:
        """The error that turned the tier off for this session (None if it is on, or off by choice)."""
        return self._failure

    def stats(self) -> CacheCounters:
        return self._tally.snapshot()

    def _disable(self, exc: OSError) -> None:
        if self._failure is not None:
            return
        what = exc.strerror or str(exc) or type(exc).__name__
        self._failure = f"{what} ({type(exc).__name__})"
        log.warning(
            "disk cache %s is unusable (%s): carrying on without it, reading from %s",
            self._root,
            what,
            self.inner.location,
        )

    def _usable(self, name: str) -> bool:
        return self.enabled and entry_kind(self._policy, name) is not None

    async def _io(self, fn: Callable[..., _T], *args: Any) -> _T | None:
        """Run one file operation of the disk tier in a worker thread; an ``OSError`` turns the tier
        off (warning once) and gives None."""
        if not self.enabled:
            return None
        async with self._sem:
            try:
                return await asyncio.to_thread(fn, *args)
            except OSError as exc:
                self._disable(exc)
                return None

    async def _manage(self, fn: Callable[[], _T], what: str) -> _T:
        try:
            async with self._sem:
                return await asyncio.to_thread(fn)
        except OSError as exc:
            raise BackendError(f"cannot {what} the disk cache {self._root}: {exc.strerror or exc}") from exc

    # ------------------------------------------------------------------ management

    async def pin(self, key: str, names: Iterable[str]) -> None:
        """Pin ``names`` under ``key``, replacing what ``key`` pinned before: eviction takes them
        after every unpinned entry of their kind, while the bound allows. They are also marked as
        used now, so other processes sharing the directory see them as recent. What a key stands
        for is the caller's business (the API pins the data packs of each item's newest point)."""
        wanted = self._bounds.pin(key, names)
        if self.enabled and wanted:
            await self._io(self._entries.touch_names, wanted)

    def pinned(self, key: str) -> frozenset[str]:
        """The names pinned under ``key`` (those the tier may hold)."""
        return self._bounds.pinned(key)

    async def usage(self) -> CacheUsage:
        """What this repository's cache folder holds now (nothing if the tier is off)."""
        if not self._root:
            return CacheUsage()
        return await self._manage(self._bounds.usage, "read")

    async def report(self) -> CacheStats:
        """State, usage and counters (usage is empty if the folder cannot be read)."""
        try:
            usage = await self.usage()
        except BackendError:
            usage = CacheUsage()
        return CacheStats(
            enabled=self.enabled,
            directory=self._root or None,
            max_bytes=self.max_bytes,
            usage=usage,
            counters=self.stats(),
            disabled_reason=self._failure,
        )

    async def prune(self) -> CacheCleanup:
        """Evict least recently used entries (data first) down to the bound; remove stale temp files."""
        if not self._root:
            return CacheCleanup(0, 0, CacheUsage())
        removed, freed = await self._manage(self._bounds.prune, "prune")
        return CacheCleanup(removed, freed, await self.usage())

    async def clear(self) -> CacheCleanup:
        """Remove every entry of this repository (the tier stays usable)."""
        if not self._root:
            return CacheCleanup(0, 0, CacheUsage())
        removed, freed = await self._manage(self._bounds.clear, "clear")
        return CacheCleanup(removed, freed, await self.usage())

    async def holds(self, names: Iterable[str]) -> set[str]:
        """Which of ``names`` the disk tier has an entry for now, without a request to the store (a
        restore plans these as readable whatever their tier in the store). Not verified here: a
        damaged entry is found when it is read, dropped, and read from the store instead."""
        wanted = [n for n in names if self._usable(n)]
        if not wanted:
            return set()

        def run() -> set[str]:
            return {n for n in wanted if os.path.isfile(self._entries.path(n))}

        return await self._io(run) or set()

    # ------------------------------------------------------------------ the Backend contract

    @property
    def location(self) -> str:
        return self.inner.location

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    async def create_container(self) -> bool:
        return await self.inner.create_container()

    async def put_if_absent(self, name: str, data: bytes | memoryview) -> bool:
        """Create on the inner backend; once that succeeded, keep a copy (write-through)."""
        created = await self.inner.put_if_absent(name, data)
        if self._usable(name):
            await self._io(self._entries.store, name, data, False)
        return created

    async def get(self, name: str, *, offset: int = 0, length: int | None = None) -> bytes:
        """From a verified entry if there is one, else from the inner backend (a whole object is then
        kept; a range is not)."""
        in_range = offset >= 0 and (length is None or length >= 0)
        if in_range and self._usable(name):
            data = await self._io(self._entries.read, name, offset, length)
            if data is not None:
                self._tally.add(cache_hits=1, cache_bytes=len(data))
                return data
        data = await self.inner.get(name, offset=offset, length=length)
        self._tally.add(remote_reads=1, remote_bytes=len(data))
        if offset == 0 and length is None and self._usable(name):
            await self._io(self._entries.store, name, data, True)
        return data

    async def open_read(
        self, name: str, *, offset: int = 0, length: int | None = None, block_size: int = 4 << 20
    ) -> AsyncIterator[bytes]:
        opened = None
        if offset >= 0 and (length is None or length >= 0) and block_size > 0 and self._usable(name):
            opened = await self._io(self._entries.open_verified, name)
        if opened is None:
            self._tally.add(remote_reads=1)
            async for block in self.inner.open_read(
                name, offset=offset, length=length, block_size=block_size
            ):
                self._tally.add(remote_bytes=len(block))
                yield block
            return
        fd, size = opened
        self._tally.add(cache_hits=1)
        try:
            pos, end = offset, size if length is None else min(size, offset + length)
            while pos < end:
                block = await asyncio.to_thread(pread_all, fd, pos, min(block_size, end - pos))
                if not block:
                    break
                pos += len(block)
                self._tally.add(cache_bytes=len(block))
                yield block
        finally:
            os.close(fd)

    async def stat(self, name: str) -> ObjectInfo:
        return await self.inner.stat(name)

    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        return self.inner.list(prefix)

    async def delete(self, name: str) -> None:
        await self.inner.delete(name)
        if self._usable(name):
            await self._io(self._entries.remove, [name])

    async def delete_many(self, names: Sequence[str]) -> None:
        await self.inner.delete_many(names)
        if self.enabled:
            await self._io(
                self._entries.remove, [n for n in names if entry_kind(self._policy, n) is not None]
            )

    async def set_tier(self, name: str, tier: Tier) -> None:
        await self.inner.set_tier(name, tier)

    async def set_tier_many(self, names: Sequence[str], tier: Tier) -> None:
        await self.inner.set_tier_many(names, tier)

    async def rehydrate(self, name: str, *, priority: RehydratePriority = RehydratePriority.STANDARD) -> None:
        await self.inner.rehydrate(name, priority=priority)

    async def copy_rehydrate(
        self, src: str, dst: str, *, priority: RehydratePriority = RehydratePriority.STANDARD
    ) -> bool:
        return await self.inner.copy_rehydrate(src, dst, priority=priority)

    async def acquire_lease(self, name: str, *, duration: float) -> Lease:
        return await self.inner.acquire_lease(name, duration=duration)

    def list_incomplete(self) -> AsyncIterator[ObjectInfo]:
        return self.inner.list_incomplete()  # the store's leftovers: nothing of them is cached

    async def delete_incomplete(self, *, older_than: float) -> Sequence[ObjectInfo]:
        return await self.inner.delete_incomplete(older_than=older_than)

    async def aclose(self) -> None:
        await self.inner.aclose()
