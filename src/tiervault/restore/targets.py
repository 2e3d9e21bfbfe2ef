"""Where a restore puts what it fetched: the :class:`RestoreTarget` protocol, and the directory target.

The executor and the restorer only use the protocol; :class:`DirectoryTarget` is the local directory
reached through descriptors (``dirfd.DirectoryFS``, the safety rules in docs/architecture.md,
"Restore") with files written by ``files.FileWriter``. A file, device, stream or memory target
implements the same methods.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import Protocol

from tiervault.clock import SYSTEM_CLOCK, Clock
from tiervault.core.format.tree import Node
from tiervault.restore.dirfd import MAX_OPEN_DIRS, DirectoryFS, split
from tiervault.restore.files import MAX_OPEN_FILES, FileWriter, RestoreFile
from tiervault.restore.leftovers import remove_stale
from tiervault.restore.meta import apply_meta_fd, is_zero


class RestoreTarget(Protocol):
    """What a restore needs of its target. ``open`` and ``close`` are called once, from a worker
    thread; every other method from worker threads: ``write`` and ``discard`` under the file's lock,
    the others from one thread at a time. An ``OSError`` is an error of that entry only. A target
    that removes what killed restores left in it may count that in ``leftovers_removed`` (an int;
    optional, 0 without it)."""

    @property
    def name(self) -> str:
        """The target as shown in messages."""

    @property
    def files_written(self) -> int:
        """Files whose content was written and put in place so far."""

    def open(self) -> None:
        """Make the target ready (a ``UsageError`` or ``TiervaultError`` if it cannot be used); an
        existing one is cleared of what killed restores left at its top."""

    def close(self) -> None: ...

    def make_dir(self, rel: bytes) -> None:
        """Directory ``rel`` exists afterwards (its metadata comes with ``dir_meta``); one that
        existed is cleared of what killed restores left in it."""

    def unchanged(self, f: RestoreFile) -> bool:
        """``f`` is there already with exactly its content: it then got its metadata."""

    def write(self, f: RestoreFile, data: bytes, offset: int) -> int:
        """Write one chunk of ``f`` at ``offset`` and count it (``f.remaining -= 1``); the last one
        (``f.remaining`` reaches 0) puts the file in place and sets ``f.done``. Returns bytes written."""

    def discard(self, f: RestoreFile) -> None:
        """Forget what was written of ``f`` (it failed, or the restore did)."""

    def leave_unfinished(self, f: RestoreFile) -> None:
        """The deadline came before ``f`` was complete: keep what resumes best."""

    def finish_empty(self, f: RestoreFile) -> None:
        """Put in place ``f`` that has no data chunks (empty, or only holes), with its metadata."""

    def link(self, f: RestoreFile, first: RestoreFile) -> None:
        """Make ``f`` a hard link to ``first`` (restored already)."""

    def make_other(self, rel: bytes, node: Node) -> None:
        """Create the symlink, FIFO or device ``rel`` with its metadata."""

    def dir_meta(self, rel: bytes, node: Node) -> None:
        """Directory metadata (``b""``: the target itself), after everything below it."""

    def verify(self, f: RestoreFile) -> bool:
        """Does ``f`` hold exactly its content now (read back)?"""


class DirectoryTarget:
    """A directory on the local file system (created if absent), never left through a symlink."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        chunk_id: Callable[[bytes], bytes],
        *,
        max_open_files: int = MAX_OPEN_FILES,
        max_open_dirs: int = MAX_OPEN_DIRS,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.path = os.fsencode(os.path.abspath(os.fspath(path)))
        self.fs = DirectoryFS(self.path, max_dirs=max_open_dirs)
        self.files = FileWriter(self.fs, max_open=max_open_files)
        self._chunk_id = chunk_id
        #: the age of a leftover temporary name is measured with ``clock.now()``
        self.clock = clock
        self.leftovers_removed = 0
        #: directories this restore listed for leftovers (only those that existed before it)
        self.dirs_listed = 0

    @property
    def name(self) -> str:
        return os.fsdecode(self.path)

    @property
    def files_written(self) -> int:
        return self.files.files_written

    def open(self) -> None:
        self.fs.open()
        if not self.fs.created:
            self._remove_leftovers(b"")

    def close(self) -> None:
        self.fs.close()

    def make_dir(self, rel: bytes) -> None:
        if self.fs.make_dir(rel):  # kept one that was there: it may hold what a killed restore left
            self._remove_leftovers(rel)

    def _remove_leftovers(self, rel: bytes) -> None:
        with self.fs.dir(rel) as fd:
            self.dirs_listed += 1
            self.leftovers_removed += remove_stale(fd, self.clock.now())

    def unchanged(self, f: RestoreFile) -> bool:
        st = self.fs.lstat(f.rel)
        f.existed = st is not None
        return self._same_content(f, st, apply_meta=True)

    def verify(self, f: RestoreFile) -> bool:
        try:
            st = self.fs.lstat(f.rel)
        except OSError:  # its directory is no longer one: what it held is out of reach
            return False
        return self._same_content(f, st)

    def _same_content(self, f: RestoreFile, st: os.stat_result | None, *, apply_meta: bool = False) -> bool:
        """Does the regular file ``f.rel`` (``st``: its lstat) hold exactly ``f``'s content? Reads
        and re-hashes it; anything that is not a regular file of the right size is not opened. With
        ``apply_meta``, a file found identical gets its metadata through the same descriptor."""
        node = f.node
        if st is None or not stat.S_ISREG(st.st_mode) or st.st_size != node.size:
            return False
        try:
            fd = self.fs.open_regular(f.rel, ino=st.st_ino)
        except OSError:
            return False
        if fd is None:
            return False
        try:
            off = 0
            for item, length, _loc in f.layout:
                if isinstance(item, int):
                    if not is_zero(fd, off, length):
                        return False
                elif self._chunk_id(os.pread(fd, length, off)) != item:
                    return False
                off += length
            if off != node.size:
                return False
            if apply_meta:
                apply_meta_fd(fd, node)
            return True
        finally:
            os.close(fd)

    def write(self, f: RestoreFile, data: bytes, offset: int) -> int:
        return self.files.write(f, data, offset)

    def discard(self, f: RestoreFile) -> None:
        self.files.discard(f)

    def leave_unfinished(self, f: RestoreFile) -> None:
        self.files.leave_unfinished(f)

    def finish_empty(self, f: RestoreFile) -> None:
        self.files.finish(f, self.files.create(f))

    def link(self, f: RestoreFile, first: RestoreFile) -> None:
        if not self.fs.same_inode(f.rel, first.rel):  # else already this link
            tmp = self.files.temp_name()
            self.fs.link(first.rel, f.parent, tmp)
            self.fs.replace(f.parent, tmp, f.name)

    def make_other(self, rel: bytes, node: Node) -> None:
        parent, name = split(rel)
        tmp = self.files.temp_name()
        self.fs.make_node(parent, tmp, node)
        self.fs.replace(parent, tmp, name)

    def dir_meta(self, rel: bytes, node: Node) -> None:
        self.fs.dir_meta(rel, node)


__all__ = ["DirectoryTarget", "RestoreTarget"]
