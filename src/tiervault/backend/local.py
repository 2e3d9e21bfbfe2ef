"""A backend on a local (or mounted) file system, with emulated tiers and leases.

Layout under ``root``::

    <name>                        the object itself (names are slash-separated paths)
    .tv-tiers/<name>.json         tier sidecar {"tier": ..., "rehydrate_until": epoch|null}; absent = Hot
    .tv-leases/<name>.json        lease state {"lease_id": ..., "expires": epoch}
    .tv-leases/<name>.lock        flock(2) target guarding that state's check-and-set
    **/.tmp-<random>              in-flight writes (a crash may leave some; they are never listed,
                                  ``list_incomplete`` reports them and ``delete_incomplete`` removes
                                  those older than a safe age)

Objects are created by writing a temp file in the target directory, fsyncing it and hard-linking it
to its final name (``link(2)`` fails if the name exists, so creation is atomic and exclusive), then
fsyncing the directory. Every blocking call runs in a worker thread, one ``to_thread`` per operation
(one per block for ``open_read``, one per batch of entries for ``list``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import math
import os
import secrets
import stat as stat_mod
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Final, Self, TypeVar, TypeVarTuple

from tiervault.backend.base import (
    RESERVED_PREFIX,
    TEMP_PREFIX,
    Capabilities,
    ObjectInfo,
    RehydratePriority,
    Tier,
    validate_age,
    validate_name,
    validate_prefix,
)
from tiervault.backend.tempfiles import delete_old_temp_files, leftover_info, temp_files
from tiervault.clock import SYSTEM_CLOCK, Clock
from tiervault.errors import (
    BackendError,
    LeaseHeldError,
    ObjectArchivedError,
    ObjectNotFoundError,
    PermissionDeniedError,
    TransientBackendError,
    UsageError,
)

__all__ = ["RESERVED_PREFIX", "TEMP_PREFIX", "LocalBackend", "LocalLease", "validate_name", "validate_prefix"]

_log = logging.getLogger("tiervault.backend.local")

#: Top-level names starting with this are the backend's own metadata: never listed, never valid names.

#: Path components starting with this are in-flight (or crash-orphaned) writes: never listed.

_TIERS_DIR: Final = ".tv-tiers"
_LEASES_DIR: Final = ".tv-leases"
_JSON: Final = ".json"
_LOCK: Final = ".lock"
_LIST_BATCH = 1000  # directory entries examined per worker-thread call in ``list``

_O_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)
_TRANSIENT_ERRNOS: Final = frozenset(
    {errno.EAGAIN, errno.EBUSY, errno.EINTR, errno.ETIMEDOUT, errno.ESTALE, errno.ECONNRESET}
)
_NO_SPACE_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT})
_CREATING_OPS: Final = frozenset({"put", "acquire_lease"})
_TIER_VALUES: Final = frozenset(t.value for t in Tier)
#: emulated tiers and leases; one call per name in the ``*_many`` calls; no container
CAPABILITIES: Final = Capabilities(tiers=True, leases=True)

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")


# --------------------------------------------------------------------------------------------- names


def _check_range(offset: int, length: int | None) -> None:
    if offset < 0:
        raise UsageError(f"offset must be >= 0, not {offset}")
    if length is not None and length < 0:
        raise UsageError(f"length must be >= 0 or None, not {length}")


# ------------------------------------------------------------------------------------------- errors


def _translate(exc: OSError, name: str, *, op: str = "access") -> BackendError:
    """Map an ``OSError`` from operation ``op`` on object ``name`` to tiervault's error tree.

    The only place the local backend translates OS errors; callers ``raise _translate(...) from exc``.
    """
    code = exc.errno
    code_name = errno.errorcode.get(code, str(code)) if code is not None else "?"
    where = f" ({exc.filename})" if exc.filename else ""
    what = f"cannot {op} {name!r}"
    if isinstance(exc, FileNotFoundError):
        return ObjectNotFoundError(name)
    if isinstance(exc, NotADirectoryError | IsADirectoryError):
        if op in _CREATING_OPS:
            return BackendError(
                f"{what}: the name clashes with an existing object or directory on disk [{code_name}]{where}"
            )
        return ObjectNotFoundError(name)
    if isinstance(exc, PermissionError):
        return PermissionDeniedError(f"{what}: permission denied [{code_name}]{where}")
    if code in _NO_SPACE_ERRNOS:
        return BackendError(f"{what}: no space left on device (or quota exceeded) [{code_name}]{where}")
    if code == errno.EROFS:
        return BackendError(f"{what}: read-only file system [{code_name}]{where}")
    if code == errno.EIO:
        return BackendError(f"{what}: I/O error from the storage device [{code_name}]{where}")
    if code in _TRANSIENT_ERRNOS:
        return TransientBackendError(f"{what}: {exc.strerror or exc} [{code_name}]{where}")
    return BackendError(f"{what}: {exc.strerror or exc} [{code_name}]{where}")


# -------------------------------------------------------------------------------------- file helpers


def _unlink_quiet(path: str) -> None:
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        os.unlink(path)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | _O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime, tz=UTC)


def _pread_all(fd: int, offset: int, end: int) -> bytes:
    """Read ``[offset, end)``; fewer bytes if the file ends first."""
    parts: list[bytes] = []
    pos = offset
    while pos < end:
        block = os.pread(fd, end - pos, pos)
        if not block:
            break
        parts.append(block)
        pos += len(block)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _range_end(size: int, offset: int, length: int | None) -> int:
    return size if length is None else min(size, offset + length)


@dataclass(frozen=True, slots=True)
class _TierRecord:
    tier: Tier
    rehydrate_until: float | None = None


@dataclass(slots=True)
class _DirScan:
    rel: str
    entries: Iterator[os.DirEntry[str]]
    close: Callable[[], None]
    sidecars: frozenset[str]


# ------------------------------------------------------------------------------------------- backend


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
        self._rehydrate_seconds = float(rehydrate_seconds)
        self._fsync = fsync
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

    # ---------------------------------------------------------------------------- plumbing

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError(f"{self!r} is closed")

    async def _run(self, op: str, name: str, fn: Callable[[*_Ts], _T], *args: *_Ts) -> _T:
        """Run blocking ``fn(*args)`` in a worker thread, translating its ``OSError``."""
        try:
            return await asyncio.to_thread(fn, *args)
        except OSError as exc:
            raise _translate(exc, name, op=op) from exc

    def _path(self, name: str) -> str:
        return os.path.join(self._root, name)

    def _tier_path(self, name: str) -> str:
        return os.path.join(self._root, _TIERS_DIR, name + _JSON)

    def _lease_path(self, name: str, suffix: str) -> str:
        return os.path.join(self._root, _LEASES_DIR, name + suffix)

    def _ensure_dir(self, path: str) -> None:
        """Create ``path`` and missing ancestors, fsyncing each new entry's parent directory."""
        if os.path.isdir(path):
            return
        parent = os.path.dirname(path)
        if parent != path:
            self._ensure_dir(parent)
        try:
            os.mkdir(path)
        except FileExistsError:
            if not os.path.isdir(path):
                raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory", path) from None
            return
        if self._fsync:
            _fsync_dir(parent)

    def _write_temp(self, directory: str, data: bytes | memoryview) -> str:
        """Write ``data`` to a new temp file in ``directory`` (created if needed); return its path."""
        tmp = os.path.join(directory, TEMP_PREFIX + secrets.token_hex(8))
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileNotFoundError:
            self._ensure_dir(directory)
            fd = os.open(tmp, flags, 0o666)
        try:
            view = memoryview(data)
            if view.ndim != 1 or view.itemsize != 1:
                view = view.cast("B")
            while view:
                view = view[os.write(fd, view) :]
            if self._fsync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            _unlink_quiet(tmp)
            raise
        os.close(fd)
        return tmp

    def _write_json_atomic(self, path: str, record: dict[str, object]) -> None:
        directory = os.path.dirname(path)
        tmp = self._write_temp(directory, json.dumps(record, separators=(",", ":")).encode())
        try:
            os.replace(tmp, path)
        except BaseException:
            _unlink_quiet(tmp)
            raise
        if self._fsync:
            _fsync_dir(directory)

    @staticmethod
    def _read_json(path: str) -> dict[str, object] | None:
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise BackendError(f"corrupt backend metadata file {path}")
        return value

    def _is_object(self, path: str) -> bool:
        try:
            return stat_mod.S_ISREG(os.stat(path).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return False

    def _stat_object(self, name: str) -> os.stat_result:
        path = self._path(name)
        st = os.stat(path)
        if not stat_mod.S_ISREG(st.st_mode):
            raise FileNotFoundError(errno.ENOENT, "not an object", path)
        return st

    # ------------------------------------------------------------------------------- tiers

    def _read_tier(self, name: str) -> _TierRecord | None:
        path = self._tier_path(name)
        rec = self._read_json(path)
        if rec is None:
            return None
        tier, until = rec.get("tier"), rec.get("rehydrate_until")
        if tier not in _TIER_VALUES or not (until is None or isinstance(until, int | float)):
            raise BackendError(f"corrupt tier metadata {path}: {rec!r}")
        return _TierRecord(Tier(tier), None if until is None else float(until))

    def _effective_tier(self, rec: _TierRecord | None) -> tuple[Tier, bool]:
        """(tier, rehydrating) now: a finished rehydration reads as Hot."""
        if rec is None:
            return Tier.HOT, False
        if rec.tier is Tier.ARCHIVE and rec.rehydrate_until is not None:
            if self._clock.now() >= rec.rehydrate_until:
                return Tier.HOT, False
            return Tier.ARCHIVE, True
        return rec.tier, False

    def _info(self, name: str, st: os.stat_result, rec: _TierRecord | None) -> ObjectInfo:
        tier, rehydrating = self._effective_tier(rec)
        return ObjectInfo(name, st.st_size, tier, _mtime(st), rehydrating)

    # ------------------------------------------------------------------------------ create

    def _put_sync(self, name: str, data: bytes | memoryview) -> bool:
        final = self._path(name)
        directory = os.path.dirname(final)
        # A tier sidecar without its object is left over from an interrupted delete: it must not
        # describe the new object.
        sidecar = self._tier_path(name)
        if os.path.lexists(sidecar) and not os.path.lexists(final):
            _unlink_quiet(sidecar)
        tmp = self._write_temp(directory, data)
        try:
            os.link(tmp, final)
        except FileExistsError:
            if os.path.isdir(final):
                raise IsADirectoryError(errno.EISDIR, "a directory has that name", final) from None
            created = False
        else:
            created = True
        finally:
            _unlink_quiet(tmp)
        if created and self._fsync:
            _fsync_dir(directory)
        return created

    async def put_if_absent(self, name: str, data: bytes | memoryview) -> bool:
        """Atomically create ``name``; False (and nothing changed) if it already exists."""
        self._check_open()
        validate_name(name)
        created = await self._run("put", name, self._put_sync, name, data)
        _log.debug("put %s: %s", name, "created" if created else "already present")
        return created

    # -------------------------------------------------------------------------------- read

    def _open_readable(self, name: str) -> tuple[int, int]:
        """Open ``name`` for reading: (fd, size); raises if absent or archived."""
        path = self._path(name)
        fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
        try:
            st = os.fstat(fd)
            self._check_readable(name, path, st)
        except BaseException:
            os.close(fd)
            raise
        return fd, st.st_size

    def _check_readable(self, name: str, path: str, st: os.stat_result) -> None:
        if not stat_mod.S_ISREG(st.st_mode):
            raise FileNotFoundError(errno.ENOENT, "not an object", path)
        tier, rehydrating = self._effective_tier(self._read_tier(name))
        if tier is Tier.ARCHIVE:
            state = "is being rehydrated" if rehydrating else "must be rehydrated first"
            raise ObjectArchivedError(f"{name!r} is in the Archive tier and {state}")

    def _get_sync(self, name: str, offset: int, length: int | None) -> bytes:
        fd, size = self._open_readable(name)
        try:
            return _pread_all(fd, offset, _range_end(size, offset, length))
        finally:
            os.close(fd)

    async def get(self, name: str, *, offset: int = 0, length: int | None = None) -> bytes:
        """``length`` bytes from ``offset`` (to the end if None); a range past the end is cut short."""
        self._check_open()
        validate_name(name)
        _check_range(offset, length)
        return await self._run("get", name, self._get_sync, name, offset, length)

    async def open_read(
        self, name: str, *, offset: int = 0, length: int | None = None, block_size: int = 4 << 20
    ) -> AsyncIterator[bytes]:
        """The bytes of ``get``, as blocks of at most ``block_size``, each read in a worker thread."""
        self._check_open()
        validate_name(name)
        _check_range(offset, length)
        if block_size <= 0:
            raise UsageError(f"block_size must be > 0, not {block_size}")
        fd, size = await self._run("get", name, self._open_readable, name)
        try:
            pos, end = offset, _range_end(size, offset, length)
            while pos < end:
                block = await self._run("get", name, os.pread, fd, min(block_size, end - pos), pos)
                if not block:
                    break
                pos += len(block)
                yield block
        finally:
            os.close(fd)

    def _stat_sync(self, name: str) -> ObjectInfo:
        st = self._stat_object(name)
        return self._info(name, st, self._read_tier(name))

    async def stat(self, name: str) -> ObjectInfo:
        """Size, tier, mtime and rehydration state of ``name``."""
        self._check_open()
        validate_name(name)
        return await self._run("stat", name, self._stat_sync, name)

    # -------------------------------------------------------------------------------- list

    def _open_scan(self, rel: str) -> _DirScan | None:
        try:
            it = os.scandir(os.path.join(self._root, rel))
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            sidecars: set[str] = set()
            with (
                contextlib.suppress(FileNotFoundError, NotADirectoryError),
                os.scandir(os.path.join(self._root, _TIERS_DIR, rel)) as tiers,
            ):
                for entry in tiers:
                    if entry.name.endswith(_JSON) and not entry.name.startswith(TEMP_PREFIX):
                        sidecars.add(entry.name[: -len(_JSON)])
        except BaseException:
            it.close()
            raise
        return _DirScan(rel, it, it.close, frozenset(sidecars))

    def _scan_batch(self, scan: _DirScan, prefix: str) -> tuple[list[ObjectInfo], list[str], bool]:
        """Examine up to ``_LIST_BATCH`` entries: (matching objects, subdirs to descend, exhausted)."""
        infos: list[ObjectInfo] = []
        subdirs: list[str] = []
        for _ in range(_LIST_BATCH):
            entry = next(scan.entries, None)
            if entry is None:
                return infos, subdirs, True
            base = entry.name
            if base.startswith(TEMP_PREFIX) or (not scan.rel and base.startswith(RESERVED_PREFIX)):
                continue
            full = f"{scan.rel}/{base}" if scan.rel else base
            try:
                if entry.is_dir(follow_symlinks=False):
                    sub = full + "/"
                    if sub.startswith(prefix) or prefix.startswith(sub):
                        subdirs.append(full)
                elif full.startswith(prefix) and entry.is_file():
                    st = entry.stat()
                    rec = self._read_tier(full) if base in scan.sidecars else None
                    infos.append(self._info(full, st, rec))
            except FileNotFoundError:  # deleted while we listed
                continue
        return infos, subdirs, False

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object whose name starts with ``prefix``; walks only directories that can match."""
        self._check_open()
        validate_prefix(prefix)
        stack = [prefix.rpartition("/")[0]]
        while stack:
            rel = stack.pop()
            scan = await self._run("list", prefix, self._open_scan, rel)
            if scan is None:
                continue
            try:
                done = False
                while not done:
                    infos, subdirs, done = await self._run("list", prefix, self._scan_batch, scan, prefix)
                    stack.extend(subdirs)
                    for info in infos:
                        yield info
            finally:
                scan.close()

    # ------------------------------------------------------------------------------ delete

    def _delete_sync(self, name: str) -> None:
        # Sidecar first: a crash in between leaves a Hot object, never a stale tier for a future one.
        _unlink_quiet(self._tier_path(name))
        path = self._path(name)
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        if self._fsync:
            _fsync_dir(os.path.dirname(path))

    async def delete_many(self, names: Sequence[str]) -> None:
        for name in names:
            await self.delete(name)

    async def set_tier_many(self, names: Sequence[str], tier: Tier) -> None:
        for name in names:
            await self.set_tier(name, tier)

    async def delete(self, name: str) -> None:
        """Remove ``name`` and its tier sidecar; absent is fine."""
        self._check_open()
        validate_name(name)
        await self._run("delete", name, self._delete_sync, name)
        _log.debug("deleted %s", name)

    # -------------------------------------------------------------------------- leftovers

    async def list_incomplete(self) -> AsyncIterator[ObjectInfo]:
        """The ``.tmp-*`` files of writes that never finished (see ``Backend.list_incomplete``)."""
        self._check_open()
        for rel, st in await self._run("list", ".tmp-*", temp_files, self._root):
            yield leftover_info(rel, st)

    async def delete_incomplete(self, *, older_than: float) -> Sequence[ObjectInfo]:
        """Remove temp files whose last write (mtime) is more than ``older_than`` seconds before
        this backend's clock's ``now()``; return them. A live ``put_if_absent`` writes its temp file
        and links it in one worker-thread call, so its mtime is at most one write old; were it
        removed anyway, its ``link(2)`` fails and the put raises: no object is ever damaged."""
        self._check_open()
        age = validate_age(older_than)
        removed = await self._run("delete", ".tmp-*", delete_old_temp_files, self._root, self._clock.now, age)
        if removed:
            _log.debug(
                "removed %d temp file(s) of unfinished writes (%d bytes)",
                len(removed),
                sum(r.size for r in removed),
            )
        return removed

    # ------------------------------------------------------------------------------- tiers

    def _set_tier_sync(self, name: str, tier: Tier) -> None:
        self._stat_object(name)
        current, _ = self._effective_tier(self._read_tier(name))
        if current is Tier.ARCHIVE:
            if tier is Tier.ARCHIVE:
                return
            raise UsageError(f"{name!r} is in the Archive tier: use rehydrate to move it out")
        if tier is Tier.HOT:
            _unlink_quiet(self._tier_path(name))
            return
        self._write_json_atomic(self._tier_path(name), {"tier": tier.value, "rehydrate_until": None})

    async def set_tier(self, name: str, tier: Tier) -> None:
        """Move ``name`` to ``tier``; leaving Archive is refused (``UsageError``: use ``rehydrate``)."""
        self._check_open()
        validate_name(name)
        try:
            tier = Tier(tier)
        except ValueError:
            raise UsageError(f"unknown tier {tier!r}") from None
        await self._run("set_tier", name, self._set_tier_sync, name, tier)
        _log.debug("tier of %s set to %s", name, tier.value)

    def _rehydrate_sync(self, name: str) -> bool:
        self._stat_object(name)
        rec = self._read_tier(name)
        tier, rehydrating = self._effective_tier(rec)
        if tier is not Tier.ARCHIVE or rehydrating:
            return False
        until = self._clock.now() + self._rehydrate_seconds
        self._write_json_atomic(self._tier_path(name), {"tier": Tier.ARCHIVE.value, "rehydrate_until": until})
        return True

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
        started = await self._run("rehydrate", name, self._rehydrate_sync, name)
        if started:
            _log.info("rehydrating %s (%s priority, %.0f s)", name, priority.value, self._rehydrate_seconds)

    # ------------------------------------------------------------------------------ leases

    @contextlib.contextmanager
    def _lease_lock(self, name: str) -> Iterator[None]:
        """Hold an exclusive ``flock`` on the name's lock file (across threads and processes)."""
        path = self._lease_path(name, _LOCK)
        flags = os.O_RDWR | os.O_CREAT | _O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o666)
        except FileNotFoundError:
            self._ensure_dir(os.path.dirname(path))
            fd = os.open(path, flags, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock

    def _read_lease(self, name: str) -> tuple[str, float] | None:
        path = self._lease_path(name, _JSON)
        rec = self._read_json(path)
        if rec is None:
            return None
        lease_id, expires = rec.get("lease_id"), rec.get("expires")
        if not isinstance(lease_id, str) or not isinstance(expires, int | float):
            raise BackendError(f"corrupt lease metadata {path}")
        return lease_id, float(expires)

    def _acquire_sync(self, name: str, duration: float) -> tuple[str, float]:
        if not self._is_object(self._path(name)):
            self._put_sync(name, b"")
        with self._lease_lock(name):
            now = self._clock.now()
            current = self._read_lease(name)
            if current is not None and current[1] > now:
                raise LeaseHeldError(f"{name!r} is leased by another holder for {current[1] - now:.1f}s more")
            lease_id = uuid.uuid4().hex
            expires = now + duration
            self._write_json_atomic(self._lease_path(name, _JSON), {"lease_id": lease_id, "expires": expires})
        return lease_id, expires

    def _renew_sync(self, name: str, lease_id: str, duration: float) -> float:
        with self._lease_lock(name):
            current = self._read_lease(name)
            if current is None or current[0] != lease_id:
                raise LeaseHeldError(f"the lease on {name!r} was lost (released, or expired and taken)")
            expires = self._clock.now() + duration
            self._write_json_atomic(self._lease_path(name, _JSON), {"lease_id": lease_id, "expires": expires})
        return expires

    def _release_sync(self, name: str, lease_id: str) -> bool:
        with self._lease_lock(name):
            current = self._read_lease(name)
            if current is None or current[0] != lease_id:
                return False
            path = self._lease_path(name, _JSON)
            os.unlink(path)
            if self._fsync:
                _fsync_dir(os.path.dirname(path))
        return True

    async def acquire_lease(self, name: str, *, duration: float) -> LocalLease:
        """Take an exclusive lease on ``name`` (created empty if absent) for ``duration`` seconds."""
        self._check_open()
        validate_name(name)
        if not (duration > 0 and math.isfinite(duration)):
            raise UsageError(f"lease duration must be a finite number of seconds > 0, not {duration!r}")
        lease_id, expires = await self._run("acquire_lease", name, self._acquire_sync, name, duration)
        _log.info("lease %s on %s acquired for %.1f s", lease_id, name, duration)
        return LocalLease(self, name, lease_id, float(duration), expires)


class LocalLease:
    """A lease taken by :meth:`LocalBackend.acquire_lease`. ``async with lease:`` releases it on exit."""

    __slots__ = ("_backend", "_duration", "_expires", "_lease_id", "_name")

    def __init__(
        self, backend: LocalBackend, name: str, lease_id: str, duration: float, expires: float
    ) -> None:
        self._backend = backend
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
        b = self._backend
        self._expires = await b._run(
            "renew_lease", self._name, b._renew_sync, self._name, self._lease_id, self._duration
        )

    async def release(self) -> None:
        """Give the lease up if it is still ours. Idempotent."""
        b = self._backend
        if await b._run("release_lease", self._name, b._release_sync, self._name, self._lease_id):
            _log.info("lease %s on %s released", self._lease_id, self._name)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()
