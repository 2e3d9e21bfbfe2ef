"""File operations of the disk tier (run in worker threads): the one function that writes entries,
full reads, and the repository folder with its ``CACHEDIR.TAG``."""

from __future__ import annotations

import errno
import os
import secrets
from typing import Final

from tiervault.backend.base import TEMP_PREFIX

TAG_NAME: Final = "CACHEDIR.TAG"
_TAG: Final = (
    b"Signature: 8a477f597d28d172789f06886806bc55\n"
    b"# This file is a cache directory tag created by tiervault.\n"
    b"# For information about cache directory tags, see https://bford.info/cachedir/\n"
)


class Vanished(OSError):
    """The repository's cache folder is gone (deleted, or its mount is)."""


def write_file(path: str, data: bytes | memoryview) -> None:
    """Create ``path`` (it must not exist) holding ``data``. The one function that writes entries."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data).cast("B")
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def pread_all(fd: int, offset: int, length: int) -> bytes:
    """``length`` bytes from ``offset``, fewer only at the end of the file."""
    first = os.pread(fd, length, offset)
    if len(first) == length or not first:
        return first
    parts, got = [first], len(first)
    while got < length:
        block = os.pread(fd, length - got, offset + got)
        if not block:
            break
        parts.append(block)
        got += len(block)
    return b"".join(parts)


def temp_name(parent: str) -> str:
    """A temporary file in ``parent`` for an entry being written (``.tmp-<pid>-<random>``)."""
    return os.path.join(parent, f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}")


def make_root(root: str) -> None:
    """Make the repository's folder (and the cache directory above it), tagged ``CACHEDIR.TAG``."""
    os.makedirs(os.path.dirname(root), mode=0o700, exist_ok=True)
    os.makedirs(root, mode=0o700, exist_ok=True)
    tag = os.path.join(root, TAG_NAME)  # only our own folder: cache_dir may be anything
    if not os.path.exists(tag):
        try:
            write_file(tag, _TAG)
        except FileExistsError:
            pass


def check_root(root: str) -> None:
    """Raise :class:`Vanished` if the repository's folder is gone."""
    if not os.path.isdir(root):
        raise Vanished(errno.ENOENT, "the cache directory vanished", root)
