"""Listing a local store: one directory at a time, in batches of entries (each batch one blocking
call a caller runs in a worker thread), descending only into directories that can match the prefix.
Temp files and the backend's own metadata directories are never listed."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from tiervault.backend.base import RESERVED_PREFIX, TEMP_PREFIX, ObjectInfo
from tiervault.backend.local.files import JSON, Disk
from tiervault.backend.local.tiers import TIERS_DIR, Tiers

__all__ = ["DirScan", "Lister"]

_LIST_BATCH = 1000  # directory entries examined per call of ``Lister.batch``


@dataclass(slots=True)
class DirScan:
    """One directory being listed: its entries, and the names in it that have a tier sidecar."""

    rel: str
    entries: Iterator[os.DirEntry[str]]
    close: Callable[[], None]
    sidecars: frozenset[str]


class Lister:
    """Lists the objects under ``disk``, their tiers read from ``tiers``."""

    __slots__ = ("_disk", "_tiers")

    def __init__(self, disk: Disk, tiers: Tiers) -> None:
        self._disk = disk
        self._tiers = tiers

    def open(self, rel: str) -> DirScan | None:
        """Start listing directory ``rel`` (relative to the root); None if there is none."""
        try:
            it = os.scandir(self._disk.path(rel))
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            sidecars: set[str] = set()
            with (
                contextlib.suppress(FileNotFoundError, NotADirectoryError),
                os.scandir(self._disk.path(TIERS_DIR, rel)) as tiers,
            ):
                for entry in tiers:
                    if entry.name.endswith(JSON) and not entry.name.startswith(TEMP_PREFIX):
                        sidecars.add(entry.name[: -len(JSON)])
        except BaseException:
            it.close()
            raise
        return DirScan(rel, it, it.close, frozenset(sidecars))

    def batch(self, scan: DirScan, prefix: str) -> tuple[list[ObjectInfo], list[str], bool]:
        """Examine up to ``_LIST_BATCH`` entries: (matching objects, subdirs to descend, exhausted)."""
        infos: list[ObjectInfo] = []
        subdirs: list[str] = []
        for _ in range(_LIST_BATCH):
            entry = next(scan.entries, None)
            if entry is None:
                return infos, subdirs, True
            base = entry.name
            if base.startswith(TEMP_PREFIX) or (not scan.rel and base.startswith(RESERVED_PREFIX)):
                continue
            full = f"{scan.rel}/{base}" if scan.rel else base
            try:
                if entry.is_dir(follow_symlinks=False):
                    sub = full + "/"
                    if sub.startswith(prefix) or prefix.startswith(sub):
                        subdirs.append(full)
                elif full.startswith(prefix) and entry.is_file():
                    st = entry.stat()
                    rec = self._tiers.read(full) if base in scan.sidecars else None
                    infos.append(self._tiers.info(full, st, rec))
            except FileNotFoundError:  # deleted while we listed
                continue
        return infos, subdirs, False
