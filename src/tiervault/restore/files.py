"""Writing restored files into the target, from the worker threads of a restore.

The first write to a file creates it: a destination that did not exist is written in place (there is
nothing to replace atomically, and a rename saved per file counts for many small files); an existing
one gets a temporary sibling ``.tiervault-restore-<12 hex>-<n>`` that replaces it at the end (one a
killed restore left is removed by a later one: ``leftovers``). A file
with holes is truncated to its size first, so holes stay holes. The last write finishes the file at
once: metadata through the descriptor, close, rename over the destination. At most ``max_open``
(``MAX_OPEN_FILES``) descriptors stay open between writes; a file reopened later must be the same
inode. Every name is reached through the target's directory descriptors (``dirfd``).
"""

from __future__ import annotations

import errno
import os
import secrets
import threading
from dataclasses import dataclass, field

from tiervault.core.format.tree import ContentItem, Node
from tiervault.repo.index import Location
from tiervault.restore.dirfd import CREATE_FLAGS, DirectoryFS
from tiervault.restore.leftovers import temp_name
from tiervault.restore.meta import apply_meta_fd

MAX_OPEN_FILES = 256
_REOPEN_FLAGS = (CREATE_FLAGS & ~(os.O_CREAT | os.O_EXCL)) | getattr(os, "O_NONBLOCK", 0)


@dataclass(slots=True)
class RestoreFile:
    """One file of the plan, and the state of its writing (guarded by ``lock``)."""

    rel: bytes
    parent: bytes  # the directory (relative to the target) and the name in it
    name: bytes
    node: Node
    #: every content item with its length and, for a chunk, where it is stored (the planner's)
    layout: list[tuple[ContentItem, int, Location | None]] = field(default_factory=list)
    write: bool = False  # content must be written (else: unchanged, or a hard link to ``link_to``)
    existed: bool = False  # the destination existed when the restore was planned
    link_to: RestoreFile | None = None
    remaining: int = 0  # chunk writes still to come; the file is finished when it reaches 0
    temp: bytes | None = None  # the name being written, in ``parent``: ``name`` itself or a temporary one
    fd: int = -1
    ino: int | None = None  # of the file being written, once its descriptor was closed between writes
    done: bool = False
    failed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class FileWriter:
    """Creates, writes, finishes and discards the files of one restore (thread-safe per file)."""

    def __init__(self, fs: DirectoryFS, *, max_open: int = MAX_OPEN_FILES) -> None:
        self.fs = fs
        self.max_open = max(1, max_open)
        #: files whose content was written and put in place
        self.files_written = 0
        self._lock = threading.Lock()
        self._open_files = 0
        self._temp_prefix = secrets.token_hex(6).encode()
        self._temp_counter = 0

    def temp_name(self) -> bytes:
        """A fresh temporary name (created with ``O_EXCL`` in the directory it is used in)."""
        with self._lock:
            self._temp_counter += 1
            n = self._temp_counter
        return temp_name(self._temp_prefix, n)

    def create(self, f: RestoreFile) -> int:
        """Open the file being written: in place if it did not exist, else a temporary sibling."""
        fd = -1
        if not f.existed:
            try:
                fd = self.fs.create(f.parent, f.name)
                f.temp = f.name
            except FileExistsError:
                f.existed = True  # appeared meanwhile: replace it atomically after all
        if fd < 0:
            f.temp = self.temp_name()
            fd = self.fs.create(f.parent, f.temp)
        if any(isinstance(c, int) for c in f.node.content):
            try:
                os.ftruncate(fd, f.node.size)  # holes stay holes: only data is written
            except BaseException:
                os.close(fd)
                raise
        return fd

    def write(self, f: RestoreFile, plain: bytes, off: int) -> int:
        """Write one chunk into ``f`` (its lock held); the last write finishes the file at once."""
        fd = f.fd if f.fd >= 0 else (self._reopen(f) if f.temp else self.create(f))
        try:
            view = memoryview(plain)
            while view:
                n = os.pwrite(fd, view, off)
                view, off = view[n:], off + n
            f.remaining -= 1
            if f.remaining == 0:
                owned, fd = fd, -1  # finish closes it, also when it fails
                self.finish(f, owned)
        finally:
            if fd >= 0:
                with self._lock:
                    keep = f.fd == fd or self._open_files < self.max_open
                    if keep and f.fd != fd:
                        self._open_files += 1
                if keep:
                    f.fd = fd
                else:
                    f.ino = os.fstat(fd).st_ino  # a reopen must find this very file
                    os.close(fd)
        return len(plain)

    def _reopen(self, f: RestoreFile) -> int:
        assert f.temp is not None
        rel = f.parent + b"/" + f.temp if f.parent else f.temp
        fd = self.fs.open_regular(rel, _REOPEN_FLAGS, ino=f.ino)
        if fd is None:
            raise OSError(errno.ESTALE, "the file being restored was replaced meanwhile")
        return fd

    def finish(self, f: RestoreFile, fd: int) -> None:
        """Metadata through the open descriptor, close, then atomically replace the destination."""
        try:
            apply_meta_fd(fd, f.node)
        finally:
            os.close(fd)
            if f.fd == fd:
                f.fd = -1
                with self._lock:
                    self._open_files -= 1
        assert f.temp is not None
        if f.temp != f.name:
            self.fs.replace(f.parent, f.temp, f.name)
        f.temp = None
        f.done = True
        with self._lock:
            self.files_written += 1

    def leave_unfinished(self, f: RestoreFile) -> None:
        """A file the deadline cut short: a temporary sibling is removed (the old file stays); a new
        file written in place stays as it is, and the next restore into the same target rewrites it
        (it does not hash to the point's content)."""
        if f.temp is not None and f.temp != f.name:
            self.discard(f)
        elif f.fd >= 0:
            self._close(f)

    def discard(self, f: RestoreFile) -> None:
        """Close ``f`` and remove what was written of it."""
        if f.fd >= 0:
            self._close(f)
        if f.temp is not None:
            self.fs.unlink(f.parent, f.temp)
            f.temp = None

    def _close(self, f: RestoreFile) -> None:
        os.close(f.fd)
        f.fd = -1
        with self._lock:
            self._open_files -= 1


__all__ = ["MAX_OPEN_FILES", "FileWriter", "RestoreFile"]
