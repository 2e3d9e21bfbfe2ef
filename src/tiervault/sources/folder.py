"""Reading a folder tree from the local file system: metadata, xattrs and sparse data extents.

Paths are bytes throughout, so names that are not valid UTF-8 survive unchanged.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from typing import Any

from tiervault.core.format.tree import entry_json, put_bytes, xattrs_to_json

_HAS_XATTR = hasattr(os, "listxattr")
_NO_XATTR_ERRNOS = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA, errno.EPERM, errno.EACCES}
SEEK_DATA = getattr(os, "SEEK_DATA", None)
SEEK_HOLE = getattr(os, "SEEK_HOLE", None)


def node_type(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISCHR(mode):
        return "chardev"
    if stat.S_ISBLK(mode):
        return "blockdev"
    return None  # sockets and the like are not backed up


def read_xattrs(path: bytes) -> list[tuple[bytes, bytes]]:
    if not _HAS_XATTR:
        return []
    try:
        names = os.listxattr(path, follow_symlinks=False)
        out = []
        for name in sorted(names):
            try:
                out.append((os.fsencode(name), os.getxattr(path, name, follow_symlinks=False)))
            except OSError as exc:
                if exc.errno not in _NO_XATTR_ERRNOS:
                    raise
        return out
    except OSError as exc:
        if exc.errno in _NO_XATTR_ERRNOS:
            return []
        raise


def stat_json(path: bytes, name: bytes, st: os.stat_result, *, xattrs: bool = True) -> dict[str, Any] | None:
    """One entry's metadata as its tree JSON object (``node_to_json``'s format), less what only the
    archiver knows (a file's ``content``, a directory's ``subtree``). None for types that are not
    backed up. ``xattrs=False`` skips reading them (the caller keeps the parent's)."""
    ntype = node_type(st.st_mode)
    if ntype is None:
        return None
    out = entry_json(
        name,
        ntype,
        stat.S_IMODE(st.st_mode),
        st.st_uid,
        st.st_gid,
        st.st_mtime_ns,
        st.st_ctime_ns,
        st.st_ino,
        st.st_dev,
    )
    if ntype == "file":
        out["size"] = st.st_size
        out["links"] = st.st_nlink
    elif ntype == "symlink":
        put_bytes(out, "target", os.readlink(path))
    elif ntype in ("chardev", "blockdev"):
        out["rdev"] = st.st_rdev
    if xattrs:
        attrs = read_xattrs(path)
        if attrs:
            out["xattrs"] = xattrs_to_json(attrs)
    return out


class FileChanged(Exception):
    """The path no longer is the regular file that was listed (or it changed while being read), or
    no longer the directory that was listed."""


#: a directory is opened, never through a symlink, and never blocks (a FIFO put in its place)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def list_dir(
    path: bytes, ident: tuple[int, int] | None = None
) -> list[tuple[bytes, os.stat_result | OSError]]:
    """Entries of a directory with their lstat (or the error lstat gave), sorted by name bytes.

    The directory is opened without following a symlink and listed through that descriptor. With
    ``ident`` (the ``(st_ino, st_dev)`` its parent's listing recorded) it must still be that
    directory: a directory swapped for a symlink, another directory or anything else between the
    listing and now raises ``FileChanged`` (so nothing outside the source is ever listed). Costs one
    open and one fstat more than a listing by path."""
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError as exc:
        if ident is not None and exc.errno in (errno.ELOOP, errno.ENOTDIR):
            try:  # O_DIRECTORY|O_NOFOLLOW on a symlink gives ENOTDIR: say what is there now
                what = node_type(os.lstat(path).st_mode) or "socket"
            except OSError:
                what = "something else"
            raise FileChanged(f"directory replaced by a {what} while being backed up") from exc
        raise
    out: list[tuple[bytes, os.stat_result | OSError]] = []
    try:
        if ident is not None:
            st = os.fstat(fd)
            if (st.st_ino, st.st_dev) != ident:
                raise FileChanged("directory was replaced while being backed up")
        with os.scandir(fd) as it:
            for entry in it:
                try:
                    out.append((os.fsencode(entry.name), entry.stat(follow_symlinks=False)))
                except OSError as exc:  # e.g. vanished between readdir and stat
                    out.append((os.fsencode(entry.name), exc))
    finally:
        os.close(fd)
    out.sort(key=lambda e: e[0])
    return out


def data_extents(fd: int, size: int, blocks: int) -> Iterator[tuple[int, int]]:
    """Yield the [start, end) ranges of a file that hold data; holes are skipped.

    Only files that look sparse (fewer allocated blocks than their size) are probed with
    SEEK_DATA/SEEK_HOLE; everything else is one extent.
    """
    if size == 0:
        return
    if SEEK_DATA is None or SEEK_HOLE is None or blocks * 512 >= size:
        yield 0, size
        return
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole remains
                return
            if exc.errno == errno.EINVAL:  # file system without SEEK_DATA
                yield pos, size
                return
            raise
        if start >= size:
            return
        end = min(os.lseek(fd, start, SEEK_HOLE), size)
        yield start, end
        pos = end


class RangeReader:
    """A ``readinto`` reader over ``[start, end)`` of an open file descriptor (for one data extent)."""

    __slots__ = ("_end", "_fd", "_pos")

    def __init__(self, fd: int, start: int, end: int) -> None:
        self._fd, self._pos, self._end = fd, start, end

    def readinto(self, buf: memoryview) -> int:
        want = min(len(buf), self._end - self._pos)
        if want <= 0:
            return 0
        got = os.preadv(self._fd, [buf[:want]], self._pos)
        self._pos += got
        return got
