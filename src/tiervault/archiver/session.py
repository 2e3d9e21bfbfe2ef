"""One snapshot run of a folder: ``FolderArchiver`` builds the walker, the reader pool and the run's
``Packer``, runs them in the calling thread, and returns the root tree with the run's stats."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from tiervault.archiver.outcome import ArchiveOutcome, Findings, Progress, SnapshotStats
from tiervault.archiver.readers import ReaderPool
from tiervault.archiver.walker import FolderWalker
from tiervault.clock import SYSTEM_CLOCK, Clock
from tiervault.core.format.pack import PackKind
from tiervault.errors import UsageError
from tiervault.repo.packer import Packer
from tiervault.repo.repository import Repository
from tiervault.sources.folder import stat_json
from tiervault.sources.reuse import ParentReuse
from tiervault.sources.stopping import Cancelled, Stopper


class FolderArchiver:
    """Runs in its own thread (``run``); talks to the event loop only through futures."""

    def __init__(
        self,
        repo: Repository,
        loop: asyncio.AbstractEventLoop,
        source: bytes,
        *,
        parent_tree: bytes | None = None,
        parent_incomplete: bool = False,
        force_rehash: bool = False,
        workers: int | None = None,
        max_inflight: int = 2,
        progress: Progress | None = None,
        stop_at: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.repo, self.loop, self.source = repo, loop, source
        self.parent_tree = parent_tree
        self.force_rehash = force_rehash
        self._clock = clock
        #: ``clock.monotonic()`` after which no new file is started and long reads stop (a deadline)
        self._stop = Stopper(stop_at, clock)
        self.workers = max(1, workers or os.cpu_count() or 2)
        self.stats = SnapshotStats()
        self.progress = progress or Progress()
        self._findings = Findings(source)
        self.errors: list[dict[str, str]] = self._findings.errors
        self.warnings: list[dict[str, str]] = self._findings.warnings
        #: this session's claims, shared by its readers and its walker
        self._claims: set[bytes] = set()
        self._packer = Packer(repo, loop=loop, max_inflight=max(1, max_inflight), claims=self._claims)
        self._readers = ReaderPool(repo, self._packer, self._claims, self._stop, self.progress, self.workers)
        self._walker = FolderWalker(
            repo,
            loop,
            self._readers,
            self._packer.sink(PackKind.META),
            reuse=ParentReuse(repo.index, force_rehash=force_rehash),
            stop=self._stop,
            stats=self.stats,
            progress=self.progress,
            findings=self._findings,
            resume=parent_incomplete,
        )

    @property
    def incomplete(self) -> bool:
        return self._stop.incomplete

    def cancel(self) -> None:
        """Stop the run from any thread: ``run`` then ends its threads and raises ``Cancelled``."""
        self._stop.cancel()

    def _root(self) -> dict[str, Any]:
        try:
            root_st = os.stat(self.source)
        except OSError as exc:
            raise UsageError(f"cannot read source {os.fsdecode(self.source)!r}: {exc.strerror}") from exc
        root = stat_json(self.source, b"root", root_st)
        if root is None or root["type"] != "dir":
            raise UsageError(f"source {os.fsdecode(self.source)!r} is not a directory")
        return root

    def run(self) -> ArchiveOutcome:
        """The whole run, in the calling thread; ``Cancelled`` once its threads have stopped if
        ``cancel`` was called."""
        started = self._clock.monotonic()
        root = self._root()
        self._readers.start()
        try:
            top = self._walker.walk(self.source, self.parent_tree, (root["inode"], root["device"]))
            if not self._stop.cancelled:
                self._walker.drain(block=True)
        finally:
            self._readers.shutdown()
        if self._stop.cancelled:
            self._packer.wait_all(check=False)  # nothing is stored after the cancellation completes
            raise Cancelled
        self._packer.finish()
        packed = self._packer.stats()
        stats = self.stats
        stats.chunks_new, stats.bytes_new = packed.chunks, packed.bytes
        stats.packs_new, stats.stored_new = packed.packs, packed.stored
        assert top.tree_id is not None
        root["subtree"] = top.tree_id.hex()
        self.stats.duration_s = self._clock.monotonic() - started
        return ArchiveOutcome(top.tree_id, root, self.stats, self.errors, self.incomplete, self.warnings)
