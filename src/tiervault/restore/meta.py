"""Metadata of restored entries, applied without following a symlink, and zero checks of holes.

Files and directories get theirs through the descriptor the restore created or verified (``fchown``
as root, ``fchmod``, ``fsetxattr``, ``futimens``); a symlink, FIFO or device node on the node itself
(``AT_SYMLINK_NOFOLLOW``, or an ``O_PATH`` descriptor named through ``/proc/self/fd``).
"""

from __future__ import annotations

import errno
import os
import stat

from tiervault.core.format.tree import Node

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_PATH = getattr(os, "O_PATH", 0)
_XATTR_IGNORED = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM)


def apply_meta_fd(fd: int, node: Node) -> None:
    """Owner (as root), mode, xattrs and mtime through an open descriptor."""
    if IS_ROOT:
        os.fchown(fd, node.uid, node.gid)
    os.fchmod(fd, node.mode)
    _set_xattrs(fd, node)
    os.utime(fd, ns=(node.mtime_ns, node.mtime_ns))


def _set_xattrs(where: int | bytes, node: Node) -> None:
    """``node``'s xattrs on a descriptor or a ``/proc/self/fd`` path; unsupported ones are skipped."""
    for name, value in node.xattrs:
        try:
            os.setxattr(where, name, value)
        except OSError as exc:
            if exc.errno not in _XATTR_IGNORED:
                raise


def node_meta(pfd: int, name: bytes, node: Node, fmt: int) -> None:
    """Metadata of a symlink, FIFO or device node on the node itself, never following it."""
    if IS_ROOT:
        os.chown(name, node.uid, node.gid, dir_fd=pfd, follow_symlinks=False)
    if fmt != stat.S_IFLNK or node.xattrs:
        if _O_PATH:
            # an O_PATH descriptor of the node itself; /proc/self/fd/N leads to that inode and no
            # further, so chmod and setxattr through it cannot follow a symlink
            fd = os.open(name, _O_PATH | _NOFOLLOW | _CLOEXEC, dir_fd=pfd)
            try:
                if stat.S_IFMT(os.fstat(fd).st_mode) != fmt:
                    raise OSError(errno.EEXIST, "replaced while it was being restored")
                proc = b"/proc/self/fd/%d" % fd
                if fmt != stat.S_IFLNK:
                    os.chmod(proc, node.mode)
                _set_xattrs(proc, node)
            finally:
                os.close(fd)
        elif fmt != stat.S_IFLNK:  # BSD and macOS: fchmodat(AT_SYMLINK_NOFOLLOW); no xattrs in os
            os.chmod(name, node.mode, dir_fd=pfd, follow_symlinks=False)
    os.utime(name, ns=(node.mtime_ns, node.mtime_ns), dir_fd=pfd, follow_symlinks=False)


def is_zero(fd: int, off: int, length: int) -> bool:
    """Are ``length`` bytes at ``off`` all zero (a hole, or written zeros)?"""
    end = off + length
    seek_data = getattr(os, "SEEK_DATA", None)
    while off < end:
        if seek_data is not None:
            try:
                nxt = os.lseek(fd, off, seek_data)
            except OSError:
                return True  # ENXIO: nothing but hole until EOF
            if nxt >= end:
                return True
            off = nxt
        block = os.pread(fd, min(1 << 20, end - off), off)
        if not block or block.count(0) != len(block):
            return False
        off += len(block)
    return True


__all__ = ["IS_ROOT", "apply_meta_fd", "is_zero", "node_meta"]
