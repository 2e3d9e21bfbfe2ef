"""The local backend's objects: create (temp file, fsync, ``link(2)``, directory fsync), read, stat
and delete, each one blocking call (callers run them in a worker thread)."""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat as stat_mod

from tiervault.backend.base import TEMP_PREFIX, ObjectInfo, Tier
from tiervault.backend.local.files import O_CLOEXEC, Disk, pread_all, range_end, unlink_quiet
from tiervault.backend.local.tiers import Tiers
from tiervault.errors import ObjectArchivedError

__all__ = ["Objects"]


class Objects:
    """Objects as regular files under ``disk``, with their tiers read from ``tiers``."""

    __slots__ = ("_disk", "_tiers")

    def __init__(self, disk: Disk, tiers: Tiers) -> None:
        self._disk = disk
        self._tiers = tiers

    def put(self, name: str, data: bytes | memoryview) -> bool:
        """Atomically create ``name``; False (and nothing changed) if it already exists."""
        final = self._disk.path(name)
        directory = os.path.dirname(final)
        # A tier sidecar without its object is left over from an interrupted delete: it must not
        # describe the new object.
        sidecar = self._tiers.sidecar(name)
        if os.path.lexists(sidecar) and not os.path.lexists(final):
            unlink_quiet(sidecar)
        tmp = self._disk.write_temp(directory, data)
        try:
            os.link(tmp, final)
        except FileExistsError:
            if os.path.isdir(final):
                raise IsADirectoryError(errno.EISDIR, "a directory has that name", final) from None
            created = False
        else:
            created = True
        finally:
            unlink_quiet(tmp)
        if created:
            self._disk.sync_dir(directory)
        return created

    def open_readable(self, name: str) -> tuple[int, int]:
        """Open ``name`` for reading: (fd, size); raises if absent or archived."""
        path = self._disk.path(name)
        fd = os.open(path, os.O_RDONLY | O_CLOEXEC)
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
        tier, rehydrating = self._tiers.effective(self._tiers.read(name))
        if tier is Tier.ARCHIVE:
            state = "is being rehydrated" if rehydrating else "must be rehydrated first"
            raise ObjectArchivedError(f"{name!r} is in the Archive tier and {state}")

    def get(self, name: str, offset: int, length: int | None) -> bytes:
        """``length`` bytes of ``name`` from ``offset`` (to the end if None), cut short at the end."""
        fd, size = self.open_readable(name)
        try:
            return pread_all(fd, offset, range_end(size, offset, length))
        finally:
            os.close(fd)

    def copy(self, src: str, dst: str) -> bool:
        """Copy object ``src`` to a new object ``dst`` (Hot; rehydrating for the emulated time when
        ``src`` is archived); False, changing nothing, if ``dst`` exists. The sidecar is written
        before the copy is linked in, so ``dst`` never reads as Hot too early."""
        src_path = self._disk.path(src)
        self._disk.stat_object(src)
        if self._disk.is_object(dst):
            return False
        tier, _ = self._tiers.effective(self._tiers.read(src))
        self._tiers.start_copy(dst, archived=tier is Tier.ARCHIVE)
        final = self._disk.path(dst)
        directory = os.path.dirname(final)
        self._disk.ensure_dir(directory)
        tmp = os.path.join(directory, TEMP_PREFIX + secrets.token_hex(8))
        try:
            shutil.copyfile(src_path, tmp)
            if self._disk.fsync:
                fd = os.open(tmp, os.O_RDONLY | O_CLOEXEC)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            os.link(tmp, final)
        except FileExistsError:
            return False
        finally:
            unlink_quiet(tmp)
        self._disk.sync_dir(directory)
        return True

    def stat(self, name: str) -> ObjectInfo:
        st = self._disk.stat_object(name)
        return self._tiers.info(name, st, self._tiers.read(name))

    def delete(self, name: str) -> None:
        """Remove ``name`` and its tier sidecar; absent is fine."""
        # Sidecar first: a crash in between leaves a Hot object, never a stale tier for a future one.
        self._tiers.forget(name)
        path = self._disk.path(name)
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        self._disk.sync_dir(os.path.dirname(path))
