"""What a snapshot run reports: its counters, live progress, the entries it left out or warned about,
and the outcome ``FolderArchiver.run`` returns."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("tiervault.archiver")


@dataclass(slots=True)
class SnapshotStats:
    """Counters of one snapshot: entries, what was read or reused, what was new, and how long it took."""

    files: int = 0
    dirs: int = 0
    others: int = 0
    bytes_total: int = 0
    files_read: int = 0
    bytes_read: int = 0
    files_reused: int = 0
    bytes_reused: int = 0
    chunks_new: int = 0
    bytes_new: int = 0
    stored_new: int = 0
    packs_new: int = 0
    duration_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(slots=True)
class Progress:
    """Live counters, updated from worker threads; read them from anywhere (e.g. a progress bar)."""

    files_done: int = 0
    bytes_done: int = 0
    current: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, files: int, nbytes: int) -> None:
        with self.lock:
            self.files_done += files
            self.bytes_done += nbytes


class Findings:
    """The point's ``errors`` (entries left out) and ``warnings`` (files stored although they kept
    changing), by path relative to the ``source``; each is also logged as a warning."""

    __slots__ = ("errors", "lock", "source", "warnings")

    def __init__(self, source: bytes) -> None:
        self.source = source
        self.errors: list[dict[str, str]] = []
        self.warnings: list[dict[str, str]] = []
        #: also guards the run's stats where more than one thread could update them
        self.lock = threading.Lock()

    def error(self, path: bytes, exc: BaseException) -> None:
        rel = os.path.relpath(path, self.source) if path != self.source else "."
        msg = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        log.warning("skipped %r: %s", rel, msg)
        with self.lock:
            self.errors.append({"path": os.fsdecode(rel), "error": msg})

    def warn(self, path: bytes, msg: str) -> None:
        rel = os.path.relpath(path, self.source)
        log.warning("%r: %s", rel, msg)
        with self.lock:
            self.warnings.append({"path": os.fsdecode(rel), "warning": msg})


@dataclass(slots=True)
class ArchiveOutcome:
    tree: bytes
    root: dict[str, Any]
    stats: SnapshotStats
    errors: list[dict[str, str]]
    incomplete: bool = False
    #: files stored although they changed while they were read (``{"path", "warning"}``)
    warnings: list[dict[str, str]] = field(default_factory=list)
