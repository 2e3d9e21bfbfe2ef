"""What this process has verified: an entry is hashed once, then trusted while its file is unchanged."""

from __future__ import annotations

import os
import threading
from typing import Final

import blake3

_BLOCK: Final = 1 << 20


def memo_key(st: os.stat_result) -> tuple[int, ...]:
    """What must not change for a verified entry to stay trusted: any write, truncation or replacement
    changes the inode, size or ctime (and ctime cannot be set back, unlike mtime)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def hash_fd(fd: int, size: int) -> str:
    """The BLAKE3 (hex) of the first ``size`` bytes of an open file, read in 1 MiB blocks."""
    hasher = blake3.blake3(max_threads=1)
    pos = 0
    while pos < size:
        block = os.pread(fd, min(_BLOCK, size - pos), pos)
        if not block:
            break
        hasher.update(block)
        pos += len(block)
    digest: str = hasher.hexdigest()
    return digest


class Memo:
    """Entry name -> :func:`memo_key` of its file when it was verified (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[int, ...]] = {}

    def trusted(self, name: str, key: tuple[int, ...]) -> bool:
        with self._lock:
            return self._keys.get(name) == key

    def remember(self, name: str, key: tuple[int, ...]) -> None:
        with self._lock:
            self._keys[name] = key

    def refresh(self, name: str, old: tuple[int, ...], new: tuple[int, ...]) -> None:
        """Keep trusting an entry touched by this process: ``old`` becomes ``new`` if still current."""
        with self._lock:
            if self._keys.get(name) == old:
                self._keys[name] = new

    def forget(self, name: str) -> None:
        with self._lock:
            self._keys.pop(name, None)

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()
