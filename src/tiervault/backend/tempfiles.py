"""The local backend's leftovers: ``.tmp-*`` files of writes that never finished (a writer killed
between writing its temp file and linking it), found and removed by age (docs/format.md, ordering
invariant 8). Blocking functions, run in a worker thread by ``LocalBackend``."""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Callable
from datetime import UTC, datetime

from tiervault.backend.base import TEMP_PREFIX, ObjectInfo, Tier


def temp_files(root: str) -> list[tuple[str, os.stat_result]]:
    """Every temp file under ``root`` (objects' directories and the sidecar trees alike), as
    (name relative to ``root``, lstat)."""

    def fail(exc: OSError) -> None:
        if not isinstance(exc, FileNotFoundError | NotADirectoryError):
            raise exc

    found: list[tuple[str, os.stat_result]] = []
    for dirpath, _dirs, files in os.walk(root, onerror=fail):
        for base in files:
            if not base.startswith(TEMP_PREFIX):
                continue
            path = os.path.join(dirpath, base)
            try:
                st = os.lstat(path)
            except FileNotFoundError:  # finished (or removed) while we walked
                continue
            if stat_mod.S_ISREG(st.st_mode):
                found.append((os.path.relpath(path, root).replace(os.sep, "/"), st))
    return found


def leftover_info(rel: str, st: os.stat_result) -> ObjectInfo:
    return ObjectInfo(rel, st.st_size, Tier.HOT, datetime.fromtimestamp(st.st_mtime, tz=UTC))


def delete_old_temp_files(root: str, now: Callable[[], float], older_than: float) -> list[ObjectInfo]:
    """Unlink the temp files under ``root`` whose mtime is more than ``older_than`` s before ``now()``."""
    removed: list[ObjectInfo] = []
    for rel, _ in temp_files(root):
        path = os.path.join(root, rel)
        try:
            st = os.lstat(path)  # again, just before removing it: the newest write time counts
        except FileNotFoundError:
            continue
        if not stat_mod.S_ISREG(st.st_mode) or now() - st.st_mtime <= older_than:
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        removed.append(leftover_info(rel, st))
    return removed
