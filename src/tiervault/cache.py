"""The local disk tier: a ``Backend`` decorator that keeps objects on local disk in front of the store.

``CacheBackend(inner, cache_dir, max_bytes=..., repository_key=...)`` keeps entries under
``cache_dir/<repository_key>/<object name>`` (docs/architecture.md, "Disk tier"):

* **What.** Every content-addressed metadata object (``keys/``, ``items/``, ``snapshots/``,
  ``index/``, ``meta/``) and data packs (``data/``): an object is stored when ``put_if_absent``
  succeeded on the inner backend (write-through: restoring the point just taken reads nothing from
  the store) and when a whole-object ``get`` fetched it. A ranged ``get`` of an object that is not
  cached reads only that range from the inner backend and caches nothing. ``config`` (the one name
  that is not the hash of its bytes) and anything else that is not content-addressed always goes to
  the inner backend, so a stale copy can never be served.
* **Verified.** Every name ends with the BLAKE3 of the object's bytes. An entry is hashed and
  compared with its name before it is first trusted in this process; its (inode, size, mtime,
  ctime) then is remembered, so any later change to the file (a rewrite, a truncation) makes it be
  checked again. A damaged entry is deleted, logged at WARNING and read from the inner backend.
* **Bounded, LRU.** The entries of one repository take at most ``max_bytes``. Each use sets the
  entry's access time; to make room, data packs are evicted first, least recently used first, and
  metadata only when no data is left; a data pack that would need metadata evicted is not cached.
* **Shared, disposable.** Several processes may share a cache directory: an entry is written to a
  temporary file in its final directory and renamed into place, readers only open final names, so
  nobody sees a torn file. Deleting entries, or the whole directory, at any moment loses nothing: a
  missing entry is a miss.
* **Never fatal.** Any unexpected ``OSError`` of the disk tier (read-only or full file system, the
  directory deleted or its mount gone) turns the tier off for the rest of the run with one warning
  (logger ``tiervault.cache``); reads and writes then go to the inner backend only. The disk tier
  never fails a backup or a restore.

All file work runs in worker threads (``asyncio.to_thread``), at most ``IO_THREADS`` at a time.
Counters (:meth:`CacheBackend.stats`) say how many read requests and bytes each tier served.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import secrets
import stat
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final, TypeVar

import blake3

from tiervault.backend.base import TEMP_PREFIX, Backend, Lease, ObjectInfo, RehydratePriority, Tier
from tiervault.core.crypto import object_hash
from tiervault.errors import BackendError, UsageError
from tiervault.reads import count_reads

log = logging.getLogger("tiervault.cache")

#: the default bound of one repository's entries
DEFAULT_MAX_BYTES: Final = 2 << 30
#: the environment variable that names the cache directory
ENV_CACHE_DIR: Final = "TIERVAULT_CACHE_DIR"
#: set in Azure Functions: the cache then goes to the temp dir (the home directory is not writable)
ENV_FUNCTIONS: Final = "FUNCTIONS_WORKER_RUNTIME"
#: cache file operations running at once in worker threads
IO_THREADS: Final = 8
#: a temporary file older than this was left by a process that died: eviction removes it
STALE_TEMP_SECONDS: Final = 3600
#: top-level folders of content-addressed objects; ``data`` is the one evicted first
_METADATA: Final = frozenset({"keys", "items", "snapshots", "index", "meta"})
_DATA: Final = "data"
_HEX: Final = frozenset("0123456789abcdef")
_BLOCK: Final = 1 << 20
_TAG_NAME: Final = "CACHEDIR.TAG"
_TAG: Final = (
    b"Signature: 8a477f597d28d172789f06886806bc55\n"
    b"# This file is a cache directory tag created by tiervault.\n"
    b"# For information about cache directory tags, see https://bford.info/cachedir/\n"
)
_T = TypeVar("_T")


def default_cache_dir() -> Path:
    """``$TIERVAULT_CACHE_DIR``; in Azure Functions (``$FUNCTIONS_WORKER_RUNTIME`` set) the temp dir;
    else ``$XDG_CACHE_HOME/tiervault`` or ``~/.cache/tiervault``."""
    if explicit := os.environ.get(ENV_CACHE_DIR):
        return Path(explicit).expanduser()
    if os.environ.get(ENV_FUNCTIONS):
        return Path(tempfile.gettempdir()) / "tiervault-cache"
    if xdg := os.environ.get("XDG_CACHE_HOME"):
        return Path(xdg).expanduser() / "tiervault"
    return Path.home() / ".cache" / "tiervault"


def cache_key(location: str) -> str:
    """The folder of one repository inside a cache directory: a hash of its address."""
    return object_hash(location.encode("utf-8"))[:32]


def cacheable(name: str) -> bool:
    """Whether the disk tier may hold ``name``: a content-addressed object name (see the module doc)."""
    parts = name.split("/")
    if len(parts) < 2 or (parts[0] not in _METADATA and parts[0] != _DATA):
        return False
    if any(p in ("", ".", "..") or p.startswith(TEMP_PREFIX) or "\\" in p or "\x00" in p for p in parts):
        return False
    last = parts[-1]
    return len(last) == 64 and set(last) <= _HEX


def is_data(name: str) -> bool:
    return name.startswith(_DATA + "/")


def _write_file(path: str, data: bytes | memoryview) -> None:
    """Create ``path`` (it must not exist) holding ``data``. The one function that writes entries."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data).cast("B")
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _pread_all(fd: int, offset: int, length: int) -> bytes:
    """``length`` bytes from ``offset``, fewer only at the end of the file."""
    first = os.pread(fd, length, offset)
    if len(first) == length or not first:
        return first
    parts, got = [first], len(first)
    while got < length:
        block = os.pread(fd, length - got, offset + got)
        if not block:
            break
        parts.append(block)
        got += len(block)
    return b"".join(parts)


def _hash_fd(fd: int, size: int) -> str:
    hasher = blake3.blake3(max_threads=1)
    pos = 0
    while pos < size:
        block = os.pread(fd, min(_BLOCK, size - pos), pos)
        if not block:
            break
        hasher.update(block)
        pos += len(block)
    digest: str = hasher.hexdigest()
    return digest


def _memo_key(st: os.stat_result) -> tuple[int, ...]:
    """What must not change for a verified entry to stay trusted: any write, truncation or replacement
    changes the inode, size or ctime (and ctime cannot be set back, unlike mtime)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class _Vanished(OSError):
    """The repository's cache folder is gone (deleted, or its mount is)."""


# ---------------------------------------------------------------------------------------- reports


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


@dataclass(slots=True)
class _Entry:
    name: str
    path: str
    size: int
    atime_ns: int
    data: bool


# ---------------------------------------------------------------------------------------- the tier


class CacheBackend:
    """A ``Backend`` decorator: the same contract, with a verified, bounded disk tier in front.

    ``cache_dir=None`` turns the disk tier off: every call goes to ``inner`` and is only counted
    (so a restore can report its reads per tier whether or not there is a cache).
    """

    def __init__(
        self,
        inner: Backend,
        cache_dir: Path | None,
        *,
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
        self._off = cache_dir is None  # by choice
        self._failure: str | None = None  # why an error turned the tier off
        self._ready = False
        self._slack = max(1, max_bytes // 10)  # eviction goes this far below the bound: fewer scans
        self._lock = threading.Lock()  # counters, accounting, memo
        self._evict_lock = threading.Lock()  # one admission / scan at a time
        self._memo: dict[str, tuple[int, ...]] = {}  # name -> _memo_key of the entry when verified
        self._used: int | None = None  # bytes on disk at the last scan, plus our writes since
        self._pending = 0  # bytes admitted, not yet written
        self._since_scan = 0
        self._last_touch = 0
        self._counts: dict[str, int] = dict.fromkeys(CacheCounters.__slots__, 0)
        self._sem = asyncio.Semaphore(IO_THREADS)
        #: data packs the newest point of each item needs: evicted only after every other data pack
        self._protected: dict[str, frozenset[str]] = {}

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
        with self._lock:
            return CacheCounters(**self._counts)

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for k, v in deltas.items():
                self._counts[k] += v
        count_reads(deltas)  # and for the operation that made the read (``reads.counting_reads``)

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
        return self.enabled and cacheable(name)

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

    # ------------------------------------------------------------------ file operations (threads)

    def _path(self, name: str) -> str:
        return os.path.join(self._root, *name.split("/"))

    def _setup(self) -> None:
        if self._ready:
            return
        os.makedirs(os.path.dirname(self._root), mode=0o700, exist_ok=True)
        os.makedirs(self._root, mode=0o700, exist_ok=True)
        tag = os.path.join(self._root, _TAG_NAME)  # only our own folder: cache_dir may be anything
        if not os.path.exists(tag):
            try:
                _write_file(tag, _TAG)
            except FileExistsError:
                pass
        self._ready = True

    def _check_root(self) -> None:
        if not os.path.isdir(self._root):
            raise _Vanished(errno.ENOENT, "the cache directory vanished", self._root)

    def _touch(self, target: int | str, mtime_ns: int) -> None:
        """Mark an entry as used now (its access time), keeping its mtime."""
        with self._lock:
            now = self._last_touch = max(time.time_ns(), self._last_touch + 1)
        os.utime(target, ns=(now, mtime_ns))

    def _used_verified(self, name: str, fd: int, st: os.stat_result) -> None:
        """Touch a verified entry, and remember it as verified in the state the touch left it in."""
        self._touch(fd, st.st_mtime_ns)
        after = os.fstat(fd)
        with self._lock:
            self._memo[name] = _memo_key(after)

    def _verify(self, name: str, fd: int, st: os.stat_result, data: bytes | None) -> bool:
        """Is the open entry the object its name says? Hashes it unless this process already did."""
        key = _memo_key(st)
        with self._lock:
            if self._memo.get(name) == key:
                return True
        digest = object_hash(data) if data is not None else _hash_fd(fd, st.st_size)
        if digest != name.rsplit("/", 1)[-1]:
            self._drop(name, st, "its content does not match its name")
            return False
        with self._lock:
            self._memo[name] = key
        return True

    def _drop(self, name: str, st: os.stat_result, why: str) -> None:
        log.warning(
            "disk cache entry %s is damaged (%s): deleted, reading the object from the store", name, why
        )
        path = self._path(name)
        try:
            if os.stat(path).st_ino == st.st_ino:  # not a good copy another process just put in place
                os.unlink(path)
        except FileNotFoundError:
            pass
        with self._lock:
            self._memo.pop(name, None)
            self._counts["dropped"] += 1
            if self._used is not None:
                self._used = max(0, self._used - st.st_size)

    def _open_entry(self, name: str) -> tuple[int, os.stat_result] | None:
        try:
            fd = os.open(self._path(name), os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        try:
            st = os.fstat(fd)
        except BaseException:
            os.close(fd)
            raise
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return None
        return fd, st

    def _read(self, name: str, offset: int, length: int | None) -> bytes | None:
        """The bytes ``get`` would return, from a verified entry; None on a miss."""
        opened = self._open_entry(name)
        if opened is None:
            return None
        fd, st = opened
        try:
            whole = offset == 0 and length is None
            data = _pread_all(fd, 0, st.st_size) if whole else None
            if data is not None and len(data) != st.st_size:
                data = None  # shrank under us: the hash check below reads it again
            if not self._verify(name, fd, st, data):
                return None
            if data is None:
                end = st.st_size if length is None else min(st.st_size, offset + length)
                data = _pread_all(fd, offset, max(0, end - offset))
                if len(data) != max(0, end - offset):  # truncated after it was verified
                    self._drop(name, st, "it is shorter than when it was checked")
                    return None
            self._used_verified(name, fd, st)
            return data
        finally:
            os.close(fd)

    def _open_verified(self, name: str) -> tuple[int, int] | None:
        """An open descriptor and size of a verified entry (for streaming), or None."""
        opened = self._open_entry(name)
        if opened is None:
            return None
        fd, st = opened
        try:
            if not self._verify(name, fd, st, None):
                os.close(fd)
                return None
            self._used_verified(name, fd, st)
        except BaseException:
            os.close(fd)
            raise
        return fd, st.st_size

    def _store(self, name: str, data: bytes | memoryview, verify: bool) -> None:
        """Put ``data`` in place as the entry for ``name`` (atomically), if the bound allows."""
        n = memoryview(data).nbytes
        if n > self.max_bytes:
            self._count(skipped=1)
            return
        if verify and object_hash(data) != name.rsplit("/", 1)[-1]:
            return  # the store returned damaged bytes: the caller's own check reports them
        self._setup()
        path = self._path(name)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            pass
        else:
            if stat.S_ISREG(st.st_mode) and st.st_size == n:  # already there (maybe from another process)
                self._touch(path, st.st_mtime_ns)
                with self._lock:
                    if self._memo.get(name) == _memo_key(st):
                        self._memo[name] = _memo_key(os.stat(path))
                return
        if not self._admit(n, data=is_data(name)):
            return
        parent = os.path.dirname(path)
        tmp = os.path.join(parent, f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}")
        try:
            try:
                _write_file(tmp, data)
            except FileNotFoundError:
                self._check_root()  # only the folders below the root are made again
                os.makedirs(parent, mode=0o700, exist_ok=True)
                _write_file(tmp, data)
            self._touch(tmp, time.time_ns())
            os.replace(tmp, path)
        except FileNotFoundError:
            self._check_root()
            return  # a concurrent clear removed our folder: skip this entry
        finally:
            with self._lock:
                self._pending -= n
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        with self._lock:
            if self._used is not None:
                self._used += n
            self._counts["cache_writes"] += 1
            self._counts["cache_write_bytes"] += n

    def _admit(self, n: int, *, data: bool) -> bool:
        """Reserve room for an entry of ``n`` bytes, evicting if needed; False: do not cache it."""
        with self._evict_lock:
            with self._lock:
                used = self._used
                need = used is None or used + self._pending + n > self.max_bytes
                need = need or self._since_scan >= self._slack  # other processes write too
            if need:
                try:
                    self._evict(self.max_bytes - n - self._slack, metadata_too=not data)
                except FileNotFoundError:
                    self._check_root()
                    raise
            with self._lock:
                assert self._used is not None
                if self._used + self._pending + n > self.max_bytes:
                    self._counts["skipped"] += 1
                    return False
                self._pending += n
                self._since_scan += n
                return True

    def _scan(self) -> tuple[list[_Entry], int]:
        """Every entry of this repository's folder, and the bytes of temporary files (stale ones are
        removed)."""
        entries: list[_Entry] = []
        temp_bytes = 0
        stale = time.time() - STALE_TEMP_SECONDS
        stack = [("", self._root)]
        while stack:
            prefix, folder = stack.pop()
            try:
                it = os.scandir(folder)
            except FileNotFoundError:
                if folder == self._root:
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
                    if not cacheable(name):
                        continue  # CACHEDIR.TAG, or a file that is none of ours
                    entries.append(_Entry(name, e.path, st.st_size, st.st_atime_ns, is_data(name)))
        return entries, temp_bytes

    def _evict(self, goal: int, *, metadata_too: bool) -> tuple[int, int]:
        """Rescan, then evict least recently used entries, data first (metadata only if
        ``metadata_too``), until at most ``goal`` bytes are used. Returns (entries, bytes) removed."""
        entries, used = self._scan()
        used += sum(e.size for e in entries)
        with self._lock:
            goal -= self._pending  # room promised to writes in progress
        with self._lock:
            protected = frozenset().union(*self._protected.values())
        # least recently used first; the newest points' packs only when nothing else is left
        candidates = sorted((e for e in entries if e.data), key=lambda e: (e.name in protected, e.atime_ns))
        if metadata_too:
            candidates += sorted((e for e in entries if not e.data), key=lambda e: e.atime_ns)
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
            with self._lock:
                self._memo.pop(e.name, None)
        with self._lock:
            self._used = used
            self._since_scan = 0
            self._counts["evicted"] += removed
            self._counts["evicted_bytes"] += freed
        if removed:
            log.debug("disk cache: evicted %d entries (%d bytes)", removed, freed)
        return removed, freed

    def _remove(self, names: Sequence[str]) -> None:
        for name in names:
            try:
                st = os.stat(self._path(name))
                os.unlink(self._path(name))
            except (FileNotFoundError, NotADirectoryError):
                continue
            with self._lock:
                self._memo.pop(name, None)
                if self._used is not None:
                    self._used = max(0, self._used - st.st_size)

    def _usage(self) -> CacheUsage:
        try:
            entries, _ = self._scan()
        except FileNotFoundError:
            return CacheUsage()
        data = [e for e in entries if e.data]
        meta = [e for e in entries if not e.data]
        return CacheUsage(
            entries=len(entries),
            bytes=sum(e.size for e in entries),
            data_entries=len(data),
            data_bytes=sum(e.size for e in data),
            metadata_entries=len(meta),
            metadata_bytes=sum(e.size for e in meta),
        )

    def _clear(self) -> tuple[int, int]:
        """Remove every entry (and empty folders below the root; the root stays, so that processes
        using it carry on)."""
        try:
            entries, _ = self._scan()
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
        for folder, _dirs, _files in os.walk(self._root, topdown=False):
            if folder != self._root:
                try:
                    os.rmdir(folder)
                except OSError:
                    pass  # not empty: another process is writing into it
        with self._lock:
            self._memo.clear()
            self._used = None
        return removed, freed

    # ------------------------------------------------------------------ management

    async def _manage(self, fn: Callable[[], _T], what: str) -> _T:
        try:
            async with self._sem:
                return await asyncio.to_thread(fn)
        except OSError as exc:
            raise BackendError(f"cannot {what} the disk cache {self._root}: {exc.strerror or exc}") from exc

    async def protect(self, item: str, names: Iterable[str]) -> None:
        """Record the data packs the newest point of ``item`` needs (replacing that item's previous
        set): eviction takes them last, while the bound allows. They are also marked as used now,
        so other processes sharing the directory see them as recent."""
        wanted = frozenset(n for n in names if is_data(n))
        with self._lock:
            self._protected[item] = wanted
        if not self.enabled or not wanted:
            return

        def touch() -> None:
            for name in wanted:
                try:
                    self._touch(self._path(name), os.stat(self._path(name)).st_mtime_ns)
                except FileNotFoundError:
                    continue

        await self._io(touch)

    async def usage(self) -> CacheUsage:
        """What this repository's cache folder holds now (nothing if the tier is off)."""
        if not self._root:
            return CacheUsage()
        return await self._manage(self._usage, "read")

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

        def run() -> tuple[int, int]:
            with self._evict_lock:
                try:
                    return self._evict(self.max_bytes, metadata_too=True)
                except FileNotFoundError:
                    return 0, 0  # no folder: nothing to prune

        removed, freed = await self._manage(run, "prune")
        return CacheCleanup(removed, freed, await self.usage())

    async def clear(self) -> CacheCleanup:
        """Remove every entry of this repository (the tier stays usable)."""
        if not self._root:
            return CacheCleanup(0, 0, CacheUsage())

        def run() -> tuple[int, int]:
            with self._evict_lock:
                return self._clear()

        removed, freed = await self._manage(run, "clear")
        return CacheCleanup(removed, freed, await self.usage())

    async def holds(self, names: Iterable[str]) -> set[str]:
        """Which of ``names`` the disk tier has an entry for now, without a request to the store (a
        restore plans these as readable whatever their tier in the store). Not verified here: a
        damaged entry is found when it is read, dropped, and read from the store instead."""
        wanted = [n for n in names if self._usable(n)]
        if not wanted:
            return set()

        def run() -> set[str]:
            return {n for n in wanted if os.path.isfile(self._path(n))}

        return await self._io(run) or set()

    # ------------------------------------------------------------------ the Backend contract

    @property
    def location(self) -> str:
        return self.inner.location

    async def put_if_absent(self, name: str, data: bytes | memoryview) -> bool:
        """Create on the inner backend; once that succeeded, keep a copy (write-through)."""
        created = await self.inner.put_if_absent(name, data)
        if self._usable(name):
            await self._io(self._store, name, data, False)
        return created

    async def get(self, name: str, *, offset: int = 0, length: int | None = None) -> bytes:
        """From a verified entry if there is one, else from the inner backend (a whole object is then
        kept; a range is not)."""
        in_range = offset >= 0 and (length is None or length >= 0)
        if in_range and self._usable(name):
            data = await self._io(self._read, name, offset, length)
            if data is not None:
                self._count(cache_hits=1, cache_bytes=len(data))
                return data
        data = await self.inner.get(name, offset=offset, length=length)
        self._count(remote_reads=1, remote_bytes=len(data))
        if offset == 0 and length is None and self._usable(name):
            await self._io(self._store, name, data, True)
        return data

    async def open_read(
        self, name: str, *, offset: int = 0, length: int | None = None, block_size: int = 4 << 20
    ) -> AsyncIterator[bytes]:
        opened = None
        if offset >= 0 and (length is None or length >= 0) and block_size > 0 and self._usable(name):
            opened = await self._io(self._open_verified, name)
        if opened is None:
            self._count(remote_reads=1)
            async for block in self.inner.open_read(
                name, offset=offset, length=length, block_size=block_size
            ):
                self._count(remote_bytes=len(block))
                yield block
            return
        fd, size = opened
        self._count(cache_hits=1)
        try:
            pos, end = offset, size if length is None else min(size, offset + length)
            while pos < end:
                block = await asyncio.to_thread(_pread_all, fd, pos, min(block_size, end - pos))
                if not block:
                    break
                pos += len(block)
                self._count(cache_bytes=len(block))
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
            await self._io(self._remove, [name])

    async def delete_many(self, names: Sequence[str]) -> None:
        await self.inner.delete_many(names)
        if self.enabled:
            await self._io(self._remove, [n for n in names if cacheable(n)])

    async def set_tier(self, name: str, tier: Tier) -> None:
        await self.inner.set_tier(name, tier)

    async def set_tier_many(self, names: Sequence[str], tier: Tier) -> None:
        await self.inner.set_tier_many(names, tier)

    async def rehydrate(self, name: str, *, priority: RehydratePriority = RehydratePriority.STANDARD) -> None:
        await self.inner.rehydrate(name, priority=priority)

    async def acquire_lease(self, name: str, *, duration: float) -> Lease:
        return await self.inner.acquire_lease(name, duration=duration)

    def list_incomplete(self) -> AsyncIterator[ObjectInfo]:
        return self.inner.list_incomplete()  # the store's leftovers: nothing of them is cached

    async def delete_incomplete(self, *, older_than: float) -> Sequence[ObjectInfo]:
        return await self.inner.delete_incomplete(older_than=older_than)

    async def aclose(self) -> None:
        await self.inner.aclose()
