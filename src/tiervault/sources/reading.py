"""Opening a listed file for reading, safely, and telling whether it changed while it was read.

Between the listing (``lstat``) and the read, anything may happen to a path: the file may be replaced
by a FIFO (an open without ``O_NONBLOCK`` would wait for a writer forever), a symlink (it is never
followed), a directory or another file. ``open_regular`` opens without blocking and without following,
and accepts only the regular file that was listed. ``FileState`` is what is compared before and after
a read to notice a file that changed meanwhile.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import NamedTuple

from tiervault.sources.folder import FileChanged, node_type

_O_NOATIME = getattr(os, "O_NOATIME", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
#: non-blocking: opening a FIFO or a device that replaced the file returns at once (regular files
#: ignore the flag); never through a symlink
_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _O_CLOEXEC


class FileState(NamedTuple):
    """What identifies a file's content for change detection: identity, size and both times."""

    inode: int
    device: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileState:
        return cls(st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _kind(mode: int) -> str:
    kind = node_type(mode)
    if kind == "dir":
        return "directory"
    return kind or "socket"


def open_regular(path: bytes, inode: int, device: int) -> tuple[int, os.stat_result]:
    """Open the listed regular file ``path`` (identified by ``inode`` and ``device``) for reading:
    ``(fd, fstat)``. Raises ``FileChanged`` when the path is now something else, ``OSError`` when it
    cannot be opened. Never blocks on a FIFO or device, never follows a symlink."""
    try:
        try:
            fd = os.open(path, _FLAGS | _O_NOATIME)
        except PermissionError:
            fd = os.open(path, _FLAGS)  # O_NOATIME needs ownership
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink
            raise FileChanged("replaced by a symlink while being backed up") from exc
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileChanged(f"replaced by a {_kind(st.st_mode)} while being backed up")
        if st.st_ino != inode or st.st_dev != device:
            raise FileChanged("file was replaced while being backed up")
    except BaseException:
        os.close(fd)
        raise
    return fd, st


__all__ = ["CHANGED_WHILE_READ", "FileChanged", "FileState", "open_regular"]

#: the warning a point records for a file that kept changing while it was read
CHANGED_WHILE_READ = "file changed while it was read (stored as last read; the next snapshot reads it again)"
