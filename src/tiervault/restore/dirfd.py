"""A restore's target directory on the local file system, reached only through directory descriptors.

The safety rules of a restore (docs/architecture.md, "Restore"):

- The target directory is opened once; the caller named it, so a symlink *to* it is followed. Every
  path below it is reached one component at a time from an open directory descriptor, each component
  opened with ``O_NOFOLLOW | O_DIRECTORY``: a symlink inside the target is never followed, whoever
  planted it (a crafted point, another process) and whenever. A name that is empty, ``.``, ``..`` or
  holds ``/`` or NUL is refused.
- An existing entry is opened only with ``O_NOFOLLOW | O_NONBLOCK`` (a FIFO or a device cannot block
  or be followed), and only used when ``fstat`` says it is a regular file; anything else is in the way
  and replaced atomically by ``rename`` within one directory descriptor. An empty directory in the way
  is removed first; a non-empty one is an error, and the temporary name is removed.
- Metadata goes through descriptors (``fchown``, ``fchmod``, ``fsetxattr``, ``futimens``); a symlink,
  FIFO or device node gets it on the node itself, never following (``AT_SYMLINK_NOFOLLOW``, or an
  ``O_PATH`` descriptor named through ``/proc/self/fd``). Hard links never follow a symlink.

Open directories are cached (least recently used first out, ``max_dirs``), with a use count so that
one thread never closes a descriptor another one is using; ``forget`` drops a directory that was
removed, so that nothing is written into it later.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections import OrderedDict

from tiervault.core.format.tree import Node
from tiervault.errors import TiervaultError, UsageError
from tiervault.restore.meta import IS_ROOT, apply_meta_fd, node_meta

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _NONBLOCK | _CLOEXEC
READ_FLAGS = os.O_RDONLY | _NOFOLLOW | _NONBLOCK | getattr(os, "O_NOCTTY", 0) | _CLOEXEC
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
MAX_OPEN_DIRS = 128  # directory descriptors kept open (beyond those in use at the moment)


def split(rel: bytes) -> tuple[bytes, bytes]:
    """``a/b/c`` -> (``a/b``, ``c``); ``c`` -> (``b""``, ``c``)."""
    parent, _, name = rel.rpartition(b"/")
    return parent, name


_NOT_NAMES = frozenset((b"", b".", b".."))


def check_name(name: bytes) -> bytes:
    """``name``, if it is one plain path component; else ``OSError(EINVAL)``: a name that is empty,
    ``.``, ``..`` or holds ``/`` or NUL could address something else. The one test of a name in a
    restore: the planner (an error for that entry) and every call below (nothing resolved) use it."""
    if name in _NOT_NAMES or b"/" in name or b"\0" in name:
        raise OSError(errno.EINVAL, f"invalid name {name!r}")
    return name


def in_the_way() -> OSError:
    return OSError(errno.EEXIST, "a non-empty directory is in the way")


class _Dir:
    __slots__ = ("fd", "stale", "users")

    def __init__(self, fd: int) -> None:
        self.fd, self.users, self.stale = fd, 0, False


class _Held:
    """A cached directory in use (a class, not a generator: this is on every file's path)."""

    __slots__ = ("_d", "_target")

    def __init__(self, target: DirectoryFS, d: _Dir) -> None:
        self._target, self._d = target, d

    def __enter__(self) -> int:
        return self._d.fd

    def __exit__(self, *exc: object) -> None:
        self._target._release(self._d)


class DirectoryFS:
    """The target directory and the descriptors of directories below it (thread-safe)."""

    def __init__(self, path: bytes, *, max_dirs: int = MAX_OPEN_DIRS) -> None:
        self.path = path
        self.max_dirs = max(1, max_dirs)
        self._lock = threading.Lock()
        self._dirs: OrderedDict[bytes, _Dir] = OrderedDict()
        #: ``open`` created the target (it was absent): nothing in it predates this restore
        self.created = False

    # ------------------------------------------------------------------ the target itself

    def open(self) -> None:
        """Open (create if absent) the target directory; refuse one that is not a writable directory."""
        shown = os.fsdecode(self.path)
        try:
            fd = os.open(self.path, DIR_FLAGS & ~_NOFOLLOW)
        except FileNotFoundError:
            try:
                os.makedirs(self.path, 0o700, exist_ok=True)
            except FileExistsError:  # a dangling symlink
                raise UsageError(f"restore target {shown!r} exists and is not a directory") from None
            except OSError as exc:
                raise TiervaultError(f"cannot create restore target {shown!r}: {exc.strerror}") from exc
            fd = os.open(self.path, DIR_FLAGS & ~_NOFOLLOW)
            self.created = True
        except NotADirectoryError:
            raise UsageError(f"restore target {shown!r} exists and is not a directory") from None
        try:
            if os.fstatvfs(fd).f_flag & getattr(os, "ST_RDONLY", 0):
                raise TiervaultError(f"restore target {shown!r} is on a read-only file system")
            if not os.access(self.path, os.W_OK | os.X_OK):
                raise TiervaultError(f"restore target {shown!r} is not writable")
        except BaseException:
            os.close(fd)
            raise
        root = _Dir(fd)
        root.users = 1  # pinned: never evicted
        with self._lock:
            self._dirs[b""] = root

    def close(self) -> None:
        """Close every cached directory. One still in use (a worker thread that outlived a failed
        run) is closed when released: a descriptor number is never reused under a running thread."""
        with self._lock:
            dirs, self._dirs = list(self._dirs.items()), OrderedDict()
            for rel, d in dirs:
                if not rel:
                    d.users -= 1  # the target's pin
                if d.users == 0:
                    os.close(d.fd)
                else:
                    d.stale = True

    # ------------------------------------------------------------------ directory descriptors

    def dir(self, rel: bytes) -> _Held:
        """``with target.dir(rel) as fd``: the descriptor of directory ``rel`` (``b""``: the target),
        valid inside the block."""
        return _Held(self, self._acquire(rel))

    def _acquire(self, rel: bytes) -> _Dir:
        """Directory ``rel`` in use: from the cache, or opened from its nearest cached ancestor one
        component at a time (a loop, not a recursion: a tree may be deeper than the stack)."""
        with self._lock:
            d = self._dirs.get(rel)
            if d is not None:  # the common case: one lookup
                self._dirs.move_to_end(rel)
                d.users += 1
                return d
        parts = rel.split(b"/")
        with self._lock:
            for depth in range(len(parts) - 1, -1, -1):
                key = b"/".join(parts[:depth])
                d = self._dirs.get(key)
                if d is not None:
                    self._dirs.move_to_end(key)
                    d.users += 1
                    break
            else:
                raise OSError(errno.EBADF, "the restore target is closed")
        for i in range(depth, len(parts)):
            try:
                fd = os.open(check_name(parts[i]), DIR_FLAGS, dir_fd=d.fd)
            finally:
                self._release(d)
            d = self._insert(b"/".join(parts[: i + 1]), fd)
        return d

    def _insert(self, rel: bytes, fd: int) -> _Dir:
        """Cache ``fd`` as directory ``rel`` (in use once); it replaces an older descriptor."""
        d = _Dir(fd)
        d.users = 1
        with self._lock:
            old = self._dirs.pop(rel, None)
            if old is not None:
                if old.users == 0:
                    os.close(old.fd)
                else:
                    old.stale = True
            self._dirs[rel] = d
            while len(self._dirs) > self.max_dirs:
                unused = next((k for k, v in self._dirs.items() if v.users == 0), None)
                if unused is None:
                    break  # every cached directory is in use: over the bound until released
                os.close(self._dirs.pop(unused).fd)
        return d

    def _release(self, d: _Dir) -> None:
        with self._lock:
            d.users -= 1
            if d.stale and d.users == 0:
                os.close(d.fd)

    def forget(self, rel: bytes) -> None:
        """Directory ``rel`` was removed or replaced: drop it and everything below it."""
        prefix = rel + b"/"
        with self._lock:
            for key in [k for k in self._dirs if k and (k == rel or k.startswith(prefix))]:
                d = self._dirs.pop(key)
                if d.users == 0:
                    os.close(d.fd)
                else:
                    d.stale = True

    def make_dir(self, rel: bytes) -> bool:
        """Make ``rel`` a directory: keep one, create a missing one (mode 0700), replace anything else
        (a symlink is removed, never followed). It stays open in the cache. True if it kept one that
        was there already."""
        parent, name = split(rel)
        check_name(name)
        with self.dir(parent) as pfd:
            try:
                os.mkdir(name, 0o700, dir_fd=pfd)
            except FileExistsError:
                try:
                    fd = os.open(name, DIR_FLAGS, dir_fd=pfd)
                except OSError as exc:
                    if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                        raise
                    os.unlink(name, dir_fd=pfd)
                    self.forget(rel)
                    os.mkdir(name, 0o700, dir_fd=pfd)
                else:
                    self._release(self._insert(rel, fd))
                    return True
            fd = os.open(name, DIR_FLAGS, dir_fd=pfd)
        self._release(self._insert(rel, fd))
        return False

    # ------------------------------------------------------------------ entries

    def lstat(self, rel: bytes) -> os.stat_result | None:
        parent, _, name = rel.rpartition(b"/")
        check_name(name)
        d = self._acquire(parent)  # not ``with self.dir``: this and ``create`` run once per file
        try:
            return os.stat(name, dir_fd=d.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        finally:
            self._release(d)

    def open_regular(self, rel: bytes, flags: int = READ_FLAGS, ino: int | None = None) -> int | None:
        """A descriptor of the regular file ``rel``, or None if it is something else (or ``ino``
        differs); never follows a symlink, never blocks on a FIFO, never opens a directory."""
        parent, name = split(rel)
        with self.dir(parent) as pfd:
            try:
                fd = os.open(check_name(name), flags, dir_fd=pfd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO, errno.ENOENT):
                    return None
                raise
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and (ino is None or st.st_ino == ino):
            return fd
        os.close(fd)
        return None

    def create(self, parent: bytes, name: bytes) -> int:
        """Create ``parent/name`` (it must not exist), mode 0600, open for writing."""
        check_name(name)
        d = self._acquire(parent)
        try:
            return os.open(name, CREATE_FLAGS, 0o600, dir_fd=d.fd)
        finally:
            self._release(d)

    def unlink(self, parent: bytes, name: bytes) -> None:
        """Remove a name quietly (a temporary file that is no longer needed)."""
        try:
            with self.dir(parent) as pfd:
                os.unlink(check_name(name), dir_fd=pfd)
        except OSError:
            pass

    def replace(self, parent: bytes, tmp: bytes, name: bytes) -> None:
        """Rename ``tmp`` over ``name`` in directory ``parent``. An empty directory in the way is
        removed first; on any failure (a non-empty directory: ``in_the_way``) ``tmp`` is removed."""
        try:
            with self.dir(parent) as pfd:
                try:
                    os.rename(tmp, check_name(name), src_dir_fd=pfd, dst_dir_fd=pfd)
                except IsADirectoryError:
                    try:
                        os.rmdir(name, dir_fd=pfd)
                    except OSError as exc:
                        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                            raise in_the_way() from exc
                        raise
                    self.forget(parent + b"/" + name if parent else name)
                    os.rename(tmp, name, src_dir_fd=pfd, dst_dir_fd=pfd)
        except BaseException:
            self.unlink(parent, tmp)
            raise

    def link(self, first: bytes, parent: bytes, tmp: bytes) -> None:
        """Hard-link the regular file ``first`` as ``parent/tmp`` (a symlink is never followed)."""
        fparent, fname = split(first)
        with self.dir(fparent) as ffd, self.dir(parent) as pfd:
            st = os.stat(check_name(fname), dir_fd=ffd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(errno.EEXIST, "the first name of this hard link is not a regular file")
            os.link(fname, check_name(tmp), src_dir_fd=ffd, dst_dir_fd=pfd, follow_symlinks=False)

    def same_inode(self, a: bytes, b: bytes) -> bool:
        sa, sb = self.lstat(a), self.lstat(b)
        return sa is not None and sb is not None and os.path.samestat(sa, sb)

    def make_node(self, parent: bytes, tmp: bytes, node: Node) -> int:
        """Create a symlink, FIFO or device node ``parent/tmp`` with ``node``'s metadata; its type."""
        check_name(tmp)
        with self.dir(parent) as pfd:
            if node.type == "symlink" and node.target is not None:
                os.symlink(node.target, tmp, dir_fd=pfd)
                fmt = stat.S_IFLNK
            elif node.type == "fifo":
                os.mkfifo(tmp, 0o600, dir_fd=pfd)
                fmt = stat.S_IFIFO
            elif node.type in ("chardev", "blockdev"):
                if not IS_ROOT:
                    raise PermissionError(errno.EPERM, "device files can only be restored by root")
                fmt = stat.S_IFCHR if node.type == "chardev" else stat.S_IFBLK
                os.mknod(tmp, 0o600 | fmt, node.rdev, dir_fd=pfd)
            else:
                raise OSError(errno.EINVAL, f"cannot restore an entry of type {node.type!r}")
            try:
                node_meta(pfd, tmp, node, fmt)
            except BaseException:
                os.unlink(tmp, dir_fd=pfd)
                raise
        return fmt

    def dir_meta(self, rel: bytes, node: Node) -> None:
        """Directory metadata, through the descriptor of the directory this restore made or kept."""
        with self.dir(rel) as fd:
            apply_meta_fd(fd, node)


__all__ = ["CREATE_FLAGS", "MAX_OPEN_DIRS", "DirectoryFS", "check_name", "in_the_way", "split"]
