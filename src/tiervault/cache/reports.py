"""What the disk tier reports: counters of what each tier served, usage, cleanup results."""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from typing import Any

from tiervault.reads import count_reads


@dataclass(frozen=True, slots=True)
class CacheCounters:
    """What the tiers served since the backend was created (subtract two to get one operation's).

    ``cache_hits``/``cache_bytes``: read requests (``get``, ``open_read``) answered by the disk tier
    and their bytes; ``remote_reads``/``remote_bytes``: those answered by the inner backend (the
    store). The others count the disk tier's own housekeeping.
    """

    cache_hits: int = 0
    cache_bytes: int = 0
    remote_reads: int = 0
    remote_bytes: int = 0
    cache_writes: int = 0
    cache_write_bytes: int = 0
    dropped: int = 0  # damaged entries deleted
    evicted: int = 0
    evicted_bytes: int = 0
    skipped: int = 0  # objects not cached: no room without evicting metadata, or larger than the bound

    def __sub__(self, other: CacheCounters) -> CacheCounters:
        return CacheCounters(**{f.name: getattr(self, f.name) - getattr(other, f.name) for f in fields(self)})

    def to_json(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Tally:
    """The running :class:`CacheCounters` of one ``CacheBackend``; safe to bump from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = dict.fromkeys(CacheCounters.__slots__, 0)

    def add(self, **deltas: int) -> None:
        with self._lock:
            for k, v in deltas.items():
                self._counts[k] += v
        count_reads(deltas)  # and for the operation that made the read (``reads.counting_reads``)

    def snapshot(self) -> CacheCounters:
        with self._lock:
            return CacheCounters(**self._counts)


@dataclass(frozen=True, slots=True)
class CacheUsage:
    """What one repository's cache folder holds on disk right now."""

    entries: int = 0
    bytes: int = 0
    data_entries: int = 0
    data_bytes: int = 0
    metadata_entries: int = 0
    metadata_bytes: int = 0

    def to_json(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class CacheStats:
    """``Vault.cache_stats()``: the disk tier's state, what it holds, and what it served."""

    enabled: bool
    directory: str | None
    max_bytes: int
    usage: CacheUsage
    counters: CacheCounters
    disabled_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "directory": self.directory,
            "max_bytes": self.max_bytes,
            "disabled_reason": self.disabled_reason,
            "usage": self.usage.to_json(),
            "counters": self.counters.to_json(),
        }


@dataclass(frozen=True, slots=True)
class CacheCleanup:
    """What ``prune`` or ``clear`` removed, and what is left."""

    removed_entries: int
    removed_bytes: int
    usage: CacheUsage

    def to_json(self) -> dict[str, Any]:
        return {
            "removed_entries": self.removed_entries,
            "removed_bytes": self.removed_bytes,
            "usage": self.usage.to_json(),
        }
