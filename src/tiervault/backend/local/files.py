"""The local backend's file primitives: the root directory and its fsync policy (``Disk``), atomic
temp-file writes, directory fsyncs, JSON metadata files and positional reads. All blocking: callers
run them in a worker thread."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import stat as stat_mod
from datetime import UTC, datetime
from typing import Final

from tiervault.backend.base import TEMP_PREFIX
from tiervault.errors import BackendError

__all__ = ["JSON", "O_CLOEXEC", "Disk", "fsync_dir", "mtime", "pread_all", "range_end", "unlink_quiet"]

O_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)
#: the suffix of the backend's JSON metadata files (tier sidecars, lease state)
JSON: Final = ".json"


def unlink_quiet(path: str) -> None:
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        os.unlink(path)


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime, tz=UTC)


def pread_all(fd: int, offset: int, end: int) -> bytes:
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


def range_end(size: int, offset: int, length: int | None) -> int:
    return size if length is None else min(size, offset + length)


class Disk:
    """The root directory of a local store and whether to fsync (``fsync=False``: tests and
    benchmarks only), with the writes every part of the backend makes under it."""

    __slots__ = ("fsync", "root")

    def __init__(self, root: str, *, fsync: bool) -> None:
        self.root = root
        self.fsync = fsync

    def path(self, *parts: str) -> str:
        """The path of ``parts`` (slash-separated names) under the root."""
        return os.path.join(self.root, *parts)

    def sync_dir(self, path: str) -> None:
        """fsync directory ``path``, unless fsyncs are off."""
        if self.fsync:
            fsync_dir(path)

    def ensure_dir(self, path: str) -> None:
        """Create ``path`` and missing ancestors, fsyncing each new entry's parent directory."""
        if os.path.isdir(path):
            return
        parent = os.path.dirname(path)
        if parent != path:
            self.ensure_dir(parent)
        try:
            os.mkdir(path)
        except FileExistsError:
            if not os.path.isdir(path):
                raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory", path) from None
            return
        self.sync_dir(parent)

    def write_temp(self, directory: str, data: bytes | memoryview) -> str:
        """Write ``data`` to a new temp file in ``directory`` (created if needed); return its path."""
        tmp = os.path.join(directory, TEMP_PREFIX + secrets.token_hex(8))
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_CLOEXEC
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileNotFoundError:
            self.ensure_dir(directory)
            fd = os.open(tmp, flags, 0o666)
        try:
            view = memoryview(data)
            if view.ndim != 1 or view.itemsize != 1:
                view = view.cast("B")
            while view:
                view = view[os.write(fd, view) :]
            if self.fsync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            unlink_quiet(tmp)
            raise
        os.close(fd)
        return tmp

    def write_json_atomic(self, path: str, record: dict[str, object]) -> None:
        """Replace ``path`` with ``record`` as JSON: a temp file renamed over it, then the directory
        fsynced."""
        directory = os.path.dirname(path)
        tmp = self.write_temp(directory, json.dumps(record, separators=(",", ":")).encode())
        try:
            os.replace(tmp, path)
        except BaseException:
            unlink_quiet(tmp)
            raise
        self.sync_dir(directory)

    @staticmethod
    def read_json(path: str) -> dict[str, object] | None:
        """The JSON object in ``path``; None if there is no such file; ``BackendError`` if it holds
        anything but a JSON object."""
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

    def is_object(self, name: str) -> bool:
        """Whether object ``name`` exists (a regular file under the root)."""
        try:
            return stat_mod.S_ISREG(os.stat(self.path(name)).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return False

    def stat_object(self, name: str) -> os.stat_result:
        """``os.stat`` of object ``name``; ``FileNotFoundError`` if it is not a regular file."""
        path = self.path(name)
        st = os.stat(path)
        if not stat_mod.S_ISREG(st.st_mode):
            raise FileNotFoundError(errno.ENOENT, "not an object", path)
        return st
