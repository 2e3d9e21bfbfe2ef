"""The entries on disk: ``root/<object name>``, verified before they are trusted, shared safely.

An entry is written to a temporary file in its final directory and ``os.replace``d into place;
readers open final names only, so processes sharing the directory never see a partial file (no
fsync: a file lost in a crash is only a miss, and a torn one fails its hash). Every entry is hashed
and compared with its name the first time this process reads it (``verified.py`` remembers it
then); a damaged one is deleted, unless another process already replaced it with a good one.
Methods run in worker threads and raise ``OSError``: the caller decides what that means.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Iterable, Sequence

from tiervault.cache import files
from tiervault.cache.bounds import Bounds
from tiervault.cache.policy import CachePolicy, entry_kind
from tiervault.cache.reports import Tally
from tiervault.cache.verified import Memo, hash_fd, memo_key
from tiervault.core.crypto import object_hash

log = logging.getLogger("tiervault.cache")


def _digest(name: str) -> str:
    return name.rsplit("/", 1)[-1]


class EntryStore:
    """The entries of one repository's folder, ``root``; room for new ones comes from ``bounds``."""

    def __init__(self, root: str, policy: CachePolicy, tally: Tally, memo: Memo, bounds: Bounds) -> None:
        self.root = root
        self._policy = policy
        self._tally = tally
        self._memo = memo
        self._bounds = bounds
        self._ready = False
        self._touch_lock = threading.Lock()
        self._last_touch = 0

    def path(self, name: str) -> str:
        return os.path.join(self.root, *name.split("/"))

    def _setup(self) -> None:
        if not self._ready:
            files.make_root(self.root)
            self._ready = True

    def touch(self, target: int | str, mtime_ns: int) -> None:
        """Mark an entry as used now (its access time), keeping its mtime."""
        with self._touch_lock:
            now = self._last_touch = max(time.time_ns(), self._last_touch + 1)
        os.utime(target, ns=(now, mtime_ns))

    def touch_names(self, names: Iterable[str]) -> None:
        """Mark the entries of ``names`` that exist as used now."""
        for name in names:
            try:
                self.touch(self.path(name), os.stat(self.path(name)).st_mtime_ns)
            except FileNotFoundError:
                continue

    # ------------------------------------------------------------------ verification

    def _used_verified(self, name: str, fd: int, st: os.stat_result) -> None:
        """Touch a verified entry, and remember it as verified in the state the touch left it in."""
        self.touch(fd, st.st_mtime_ns)
        self._memo.remember(name, memo_key(os.fstat(fd)))

    def _verify(self, name: str, fd: int, st: os.stat_result, data: bytes | None) -> bool:
        """Is the open entry the object its name says? Hashes it unless this process already did."""
        key = memo_key(st)
        if self._memo.trusted(name, key):
            return True
        digest = object_hash(data) if data is not None else hash_fd(fd, st.st_size)
        if digest != _digest(name):
            self._drop(name, st, "its content does not match its name")
            return False
        self._memo.remember(name, key)
        return True

    def _drop(self, name: str, st: os.stat_result, why: str) -> None:
        log.warning(
            "disk cache entry %s is damaged (%s): deleted, reading the object from the store", name, why
        )
        path = self.path(name)
        try:
            if os.stat(path).st_ino == st.st_ino:  # not a good copy another process just put in place
                os.unlink(path)
        except FileNotFoundError:
            pass
        self._memo.forget(name)
        self._tally.add(dropped=1)
        self._bounds.shrank(st.st_size)

    # ------------------------------------------------------------------ reads

    def _open_entry(self, name: str) -> tuple[int, os.stat_result] | None:
        try:
            fd = os.open(self.path(name), os.O_RDONLY | os.O_CLOEXEC)
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

    def read(self, name: str, offset: int, length: int | None) -> bytes | None:
        """The bytes ``get`` would return, from a verified entry; None on a miss."""
        opened = self._open_entry(name)
        if opened is None:
            return None
        fd, st = opened
        try:
            whole = offset == 0 and length is None
            data = files.pread_all(fd, 0, st.st_size) if whole else None
            if data is not None and len(data) != st.st_size:
                data = None  # shrank under us: the hash check below reads it again
            if not self._verify(name, fd, st, data):
                return None
            if data is None:
                end = st.st_size if length is None else min(st.st_size, offset + length)
                data = files.pread_all(fd, offset, max(0, end - offset))
                if len(data) != max(0, end - offset):  # truncated after it was verified
                    self._drop(name, st, "it is shorter than when it was checked")
                    return None
            self._used_verified(name, fd, st)
            return data
        finally:
            os.close(fd)

    def open_verified(self, name: str) -> tuple[int, int] | None:
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

    # ------------------------------------------------------------------ writes

    def store(self, name: str, data: bytes | memoryview, verify: bool) -> None:
        """Put ``data`` in place as the entry for ``name`` (atomically), if the bound allows."""
        kind = entry_kind(self._policy, name)
        if kind is None:
            return
        n = memoryview(data).nbytes
        if n > self._bounds.max_bytes:
            self._tally.add(skipped=1)
            return
        if verify and object_hash(data) != _digest(name):
            return  # the store returned damaged bytes: the caller's own check reports them
        self._setup()
        path = self.path(name)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            pass
        else:
            if stat.S_ISREG(st.st_mode) and st.st_size == n:  # already there (maybe from another process)
                self.touch(path, st.st_mtime_ns)
                if self._memo.trusted(name, memo_key(st)):  # still trusted in the state the touch left
                    self._memo.refresh(name, memo_key(st), memo_key(os.stat(path)))
                return
        if not self._bounds.admit(n, kind):
            return
        parent = os.path.dirname(path)
        tmp = files.temp_name(parent)
        try:
            try:
                files.write_file(tmp, data)
            except FileNotFoundError:
                files.check_root(self.root)  # only the folders below the root are made again
                os.makedirs(parent, mode=0o700, exist_ok=True)
                files.write_file(tmp, data)
            self.touch(tmp, time.time_ns())
            os.replace(tmp, path)
        except FileNotFoundError:
            files.check_root(self.root)
            return  # a concurrent clear removed our folder: skip this entry
        finally:
            self._bounds.release(n)
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        self._bounds.grew(n)
        self._tally.add(cache_writes=1, cache_write_bytes=n)

    def remove(self, names: Sequence[str]) -> None:
        for name in names:
            try:
                st = os.stat(self.path(name))
                os.unlink(self.path(name))
            except (FileNotFoundError, NotADirectoryError):
                continue
            self._memo.forget(name)
            self._bounds.shrank(st.st_size)
