"""The bound of one repository's folder: room reserved before a write, LRU eviction, pins, scans.

Every use of an entry sets its access time (``entries.py``), so eviction is least-recently-used
whatever the mount's atime option. Before a new entry is written, :meth:`Bounds.admit` reserves room
for it: when this process's account of the folder (a scan, plus its own writes since, plus room
promised to writes in progress) would exceed the bound, or after a tenth of the bound written since
the last scan (other processes write too), the folder is scanned again and entries are deleted,
least recently used first: ``DATA`` first (pinned names last of all), ``METADATA`` only when no data
is left and only to make room for metadata. The policy (``policy.py``) says which is which.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from tiervault.backend.base import TEMP_PREFIX
from tiervault.cache.files import check_root
from tiervault.cache.policy import CachePolicy, EntryKind, entry_kind
from tiervault.cache.reports import CacheUsage, Tally
from tiervault.cache.verified import Memo

log = logging.getLogger("tiervault.cache")

#: a temporary file older than this was left by a process that died: eviction removes it
STALE_TEMP_SECONDS: Final = 3600


@dataclass(slots=True)
class Entry:
    name: str
    path: str
    size: int
    atime_ns: int
    kind: EntryKind


class Bounds:
    """The account of one repository's folder (``root``) and the eviction that keeps it within
    ``max_bytes``. Methods run in worker threads; the account is guarded by a lock."""

    def __init__(self, root: str, max_bytes: int, policy: CachePolicy, tally: Tally, memo: Memo) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._policy = policy
        self._tally = tally
        self._memo = memo
        self._slack = max(1, max_bytes // 10)  # eviction goes this far below the bound: fewer scans
        self._lock = threading.Lock()  # the account and the pins
        self._evict_lock = threading.Lock()  # one admission / scan at a time
        self._used: int | None = None  # bytes on disk at the last scan, plus our writes since
        self._pending = 0  # bytes admitted, not yet written
        self._since_scan = 0
        #: pinned names, by key: evicted only after every unpinned entry of their kind
        self._pins: dict[str, frozenset[str]] = {}

    # ------------------------------------------------------------------ the account

    def admit(self, n: int, kind: EntryKind) -> bool:
        """Reserve room for an entry of ``n`` bytes, evicting if needed; False: do not cache it.
        A True must be followed by :meth:`release` once the write is over (done or not)."""
        with self._evict_lock:
            with self._lock:
                used = self._used
                need = used is None or used + self._pending + n > self.max_bytes
                need = need or self._since_scan >= self._slack  # other processes write too
            if need:
                try:
                    self._evict(self.max_bytes - n - self._slack, metadata_too=kind is EntryKind.METADATA)
                except FileNotFoundError:
                    check_root(self.root)
                    raise
            with self._lock:
                assert self._used is not None
                if self._used + self._pending + n > self.max_bytes:
                    self._tally.add(skipped=1)
                    return False
                self._pending += n
                self._since_scan += n
                return True

    def release(self, n: int) -> None:
        """The write ``admit`` reserved ``n`` bytes for is over."""
        with self._lock:
            self._pending -= n

    def grew(self, n: int) -> None:
        """An entry of ``n`` bytes was written."""
        with self._lock:
            if self._used is not None:
                self._used += n

    def shrank(self, n: int) -> None:
        """An entry of ``n`` bytes was removed."""
        with self._lock:
            if self._used is not None:
                self._used = max(0, self._used - n)

    # ------------------------------------------------------------------ pins

    def pin(self, key: str, names: Iterable[str]) -> frozenset[str]:
        """Pin ``names`` under ``key`` (replacing what ``key`` pinned before); returns those kept
        (names the tier may hold)."""
        wanted = frozenset(n for n in names if entry_kind(self._policy, n) is not None)
        with self._lock:
            self._pins[key] = wanted
        return wanted

    def pinned(self, key: str) -> frozenset[str]:
        with self._lock:
            return self._pins.get(key, frozenset())

    # ------------------------------------------------------------------ scans and eviction

    def scan(self) -> tuple[list[Entry], int]:
        """Every entry of the folder, and the bytes of temporary files (stale ones are removed)."""
        entries: list[Entry] = []
        temp_bytes = 0
        stale = time.time() - STALE_TEMP_SECONDS
        stack = [("", self.root)]
        while stack:
            prefix, folder = stack.pop()
            try:
                it = os.scandir(folder)
            except FileNotFoundError:
                if folder == self.root:
                    raise
                continue
            with it:
                for e in it:
                    try:
                        if e.is_dir(follow_symlinks=False):
                            stack.append((prefix + e.name + "/", e.path))
                            continue
                        st = e.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    if not stat.S_ISREG(st.st_mode):
                        continue
                    if e.name.startswith(TEMP_PREFIX):
                        if st.st_mtime < stale:
                            try:
                                os.unlink(e.path)
                            except FileNotFoundError:
                                pass
                        else:
                            temp_bytes += st.st_size
                        continue
                    name = prefix + e.name
                    kind = entry_kind(self._policy, name)
                    if kind is None:
                        continue  # CACHEDIR.TAG, or a file that is none of ours
                    entries.append(Entry(name, e.path, st.st_size, st.st_atime_ns, kind))
        return entries, temp_bytes

    def _evict(self, goal: int, *, metadata_too: bool) -> tuple[int, int]:
        """Rescan, then evict least recently used entries, data first (metadata only if
        ``metadata_too``), until at most ``goal`` bytes are used. Returns (entries, bytes) removed."""
        entries, used = self.scan()
        used += sum(e.size for e in entries)
        with self._lock:
            goal -= self._pending  # room promised to writes in progress
            pinned = frozenset().union(*self._pins.values())

        def order(kind: EntryKind) -> list[Entry]:
            # least recently used first; pinned names only when nothing else of the kind is left
            chosen = (e for e in entries if e.kind is kind)
            return sorted(chosen, key=lambda e: (e.name in pinned, e.atime_ns))

        candidates = order(EntryKind.DATA) + (order(EntryKind.METADATA) if metadata_too else [])
        removed = freed = 0
        for e in candidates:
            if used <= goal:
                break
            try:
                os.unlink(e.path)
            except FileNotFoundError:
                pass
            used -= e.size
            removed += 1
            freed += e.size
            self._memo.forget(e.name)
        with self._lock:
            self._used = used
            self._since_scan = 0
        self._tally.add(evicted=removed, evicted_bytes=freed)
        if removed:
            log.debug("disk cache: evicted %d entries (%d bytes)", removed, freed)
        return removed, freed

    def prune(self) -> tuple[int, int]:
        """Evict (data first) down to the bound; remove stale temporary files."""
        with self._evict_lock:
            try:
                return self._evict(self.max_bytes, metadata_too=True)
            except FileNotFoundError:
                return 0, 0  # no folder: nothing to prune

    def usage(self) -> CacheUsage:
        try:
            entries, _ = self.scan()
        except FileNotFoundError:
            return CacheUsage()
        data = [e for e in entries if e.kind is EntryKind.DATA]
        meta = [e for e in entries if e.kind is EntryKind.METADATA]
        return CacheUsage(
            entries=len(entries),
            bytes=sum(e.size for e in entries),
            data_entries=len(data),
            data_bytes=sum(e.size for e in data),
            metadata_entries=len(meta),
            metadata_bytes=sum(e.size for e in meta),
        )

    def clear(self) -> tuple[int, int]:
        """Remove every entry (and empty folders below the root; the root stays, so that processes
        using it carry on)."""
        with self._evict_lock:
            try:
                entries, _ = self.scan()
            except FileNotFoundError:
                return 0, 0
            removed = freed = 0
            for e in entries:
                try:
                    os.unlink(e.path)
                except FileNotFoundError:
                    continue
                removed += 1
                freed += e.size
            for folder, _dirs, _files in os.walk(self.root, topdown=False):
                if folder != self.root:
                    try:
                        os.rmdir(folder)
                    except OSError:
                        pass  # not empty: another process is writing into it
            self._memo.clear()
            with self._lock:
                self._used = None
            return removed, freed
