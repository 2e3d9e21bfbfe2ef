"""Restoring a recovery point (or part of it) into a target: plan, refuse or fetch, finish, verify.

``Restorer.run`` (docs/architecture.md, "Restore"), in the spirit of restic's ``internal/restorer``:

1. **Plan** (``planner.plan_restore``): walk the point, select, resolve every chunk to its pack, and
   find every needed pack's state. A pack that is archived, being rehydrated or missing refuses the
   restore here (``ObjectArchivedError`` / ``ObjectNotFoundError``), before the target is touched.
2. **Prepare**: open the target, make the directories (removing, in those that existed, the
   temporary names killed restores left: ``leftovers``), skip files it already holds unchanged, and
   file every chunk write of the others under its pack (``executor.assign``).
3. **Fetch by pack** (``executor.Executor``): coalesced ranged reads, bounded concurrency, each blob
   opened once and written at every offset that uses it; the last write finishes a file.
4. **Finish**: files without data, hard links, symlinks and special files; directory metadata last,
   deepest first. 5. **Verify** (optional): every restored file read back and its chunks re-hashed.

The target is a :class:`~tiervault.restore.targets.RestoreTarget`: a directory by default
(``DirectoryTarget``: descriptors, ``O_NOFOLLOW`` on every component, never a FIFO opened).
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tiervault.clock import SYSTEM_CLOCK, Clock
from tiervault.core.crypto import chunk_id
from tiervault.core.format.tree import Node
from tiervault.errors import TiervaultError, first_error
from tiervault.reads import ReadTally, counting_reads
from tiervault.repo.repository import Repository
from tiervault.repo.snapshots import SnapshotRecord
from tiervault.repo.treewalk import DEFAULT_MAX_DEPTH, DEFAULT_MAX_ENTRIES
from tiervault.restore.dirfd import MAX_OPEN_DIRS
from tiervault.restore.executor import Executor, assign
from tiervault.restore.files import MAX_OPEN_FILES, RestoreFile
from tiervault.restore.planner import DiskTier, PackState, RestorePlan, plan_restore, relocate_missing
from tiervault.restore.selection import Selection
from tiervault.restore.targets import DirectoryTarget, RestoreTarget

log = logging.getLogger("tiervault.restorer")


@dataclass(slots=True)
class RestoreStats:
    """Counters of one restore: entries by kind, what was written or left unchanged, bytes fetched."""

    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    others: int = 0
    files_written: int = 0
    files_unchanged: int = 0
    hardlinks: int = 0
    bytes_total: int = 0
    bytes_written: int = 0
    packs_read: int = 0
    bytes_fetched: int = 0
    read_requests: int = 0
    files_verified: int = 0
    #: temporary names that earlier, killed restores left in the target, removed by this one
    leftovers_removed: int = 0
    duration_s: float = 0.0
    # read requests and bytes served per tier during the restore (metadata included): the local disk
    # tier, and the repository's store; counted by the restore (``reads.counting_reads``)
    cache_hits: int = 0
    cache_bytes: int = 0
    remote_reads: int = 0
    remote_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


class Restorer:
    #: paths deeper than this are refused before planning (repo/treewalk.py); ``max_entries`` is a
    #: constructor argument
    max_depth = DEFAULT_MAX_DEPTH

    def __init__(
        self,
        repo: Repository,
        snapshot: SnapshotRecord,
        target: str | os.PathLike[str] | RestoreTarget,
        *,
        paths: Sequence[str] | None = None,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        verify: bool = False,
        concurrency: int = 4,
        stop_at: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
        max_open_files: int = MAX_OPEN_FILES,
        max_open_dirs: int = MAX_OPEN_DIRS,
        local: DiskTier | None = None,
        reads: ReadTally | None = None,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self.repo, self.snapshot = repo, snapshot
        #: a restore that would plan more entries is refused before planning (``LimitError``)
        self.max_entries = max_entries
        if isinstance(target, str | bytes | os.PathLike):
            target = DirectoryTarget(
                target,
                functools.partial(chunk_id, repo.keys.chunk_id),
                max_open_files=max_open_files,
                max_open_dirs=max_open_dirs,
                clock=clock,
            )
        self.target: RestoreTarget = target
        self.selection = Selection(paths, include, exclude)
        self.verify = verify
        self.concurrency = max(1, concurrency)
        #: ``clock.monotonic()`` after which no new range is fetched (a deadline); see ``incomplete``
        self.stop_at = stop_at
        self.clock = clock
        #: the disk tier: packs it holds are readable without asking the store
        self.local = local
        #: where this restore's reads per tier are counted (one is opened around ``run`` if None)
        self.reads = reads
        self.stats = RestoreStats()
        self.errors: list[dict[str, str]] = []
        self.executor = Executor(
            repo, self.target, self._error, concurrency=self.concurrency, clock=clock, stop_at=stop_at
        )
        self._dirs_done = 0  # directories below the target whose metadata was applied

    @property
    def incomplete(self) -> bool:
        """The deadline came first: run the same restore into the same target again to finish it."""
        return self.executor.incomplete

    async def plan(self) -> RestorePlan:
        """What this restore needs (nothing is written): see ``planner.plan_restore``."""
        return await plan_restore(
            self.repo,
            self.snapshot,
            self.selection,
            local=self.local,
            max_entries=self.max_entries,
            max_depth=self.max_depth,
        )

    # ------------------------------------------------------------------ the run

    async def prepared_plan(self) -> RestorePlan:
        """``plan``, with the packs swept since the index was loaded planned from their chunks' other
        locations: what ``run`` executes (a rehydrating restore inspects it first)."""
        plan = await self.plan()
        await relocate_missing(self.repo, plan, self.executor.relocator, local=self.local)
        return plan

    async def run(self, plan: RestorePlan | None = None) -> tuple[RestoreStats, list[dict[str, str]]]:
        """Restore; ``plan`` is one from ``prepared_plan`` (planned now when None). A pack the plan
        gives a staging copy for (``PackNeed.staging``, readable) is read from that copy."""
        if self.reads is not None:
            return await self._run(self.reads, plan)
        with counting_reads() as reads:
            return await self._run(reads, plan)

    async def _run(
        self, reads: ReadTally, plan: RestorePlan | None
    ) -> tuple[RestoreStats, list[dict[str, str]]]:
        started = self.clock.monotonic()
        if plan is None:
            plan = await self.prepared_plan()
        plan.refuse_unreadable()  # archived, rehydrating or missing packs: before anything is written
        self.executor.sources = {
            name: need.staging
            for name, need in plan.packs.items()
            if need.staging is not None and need.state is PackState.READABLE
        }
        for e in plan.errors:
            log.warning("restore of %r failed: %s", e["path"], e["error"])
        self.errors.extend(plan.errors)
        self.stats.files = len(plan.files)
        self.stats.bytes_total = sum(f.node.size for f in plan.files)
        await asyncio.to_thread(self.target.open)
        try:
            await asyncio.to_thread(self._make_dirs, plan)
            by_pack, self.stats.files_unchanged = await asyncio.to_thread(
                assign, plan.files, self.target, self._error
            )
            try:
                await self.executor.fetch(by_pack)
            except BaseException:
                await asyncio.to_thread(self.executor.discard_all, plan.files)
                raise
            await asyncio.to_thread(self._finish, plan, plan.root)
            if self.verify:
                await self._verify(plan)
        finally:
            self.target.close()
        self._account(reads)
        self.stats.duration_s = self.clock.monotonic() - started
        self._refuse_if_nothing_restored()
        return self.stats, self.errors

    def _account(self, reads: ReadTally) -> None:
        s, ex = self.stats, self.executor
        s.files_written = self.target.files_written
        s.leftovers_removed = int(getattr(self.target, "leftovers_removed", 0))  # optional
        s.packs_read, s.read_requests = ex.packs_read, ex.read_requests
        s.bytes_fetched, s.bytes_written = ex.bytes_fetched, ex.bytes_written
        if reads.reported:
            s.cache_hits, s.cache_bytes = reads.cache_hits, reads.cache_bytes
            s.remote_reads, s.remote_bytes = reads.remote_reads, reads.remote_bytes
        else:  # no tier reports reads (a backend without the disk tier): all data came from the store
            s.remote_reads, s.remote_bytes = s.read_requests, s.bytes_fetched

    def _refuse_if_nothing_restored(self) -> None:
        """Errors and not a single entry in place: the restore failed as a whole, not partly."""
        s = self.stats
        done = s.files_written + s.files_unchanged + s.hardlinks + s.symlinks + s.others + self._dirs_done
        if self.errors and not done and not self.incomplete:
            first, n = self.errors[0], len(self.errors)
            raise TiervaultError(
                f"nothing could be restored into {self.target.name!r}: "
                f"{n} {'entry' if n == 1 else 'entries'} failed, "
                f"the first {first['path']!r}: {first['error']}"
            )

    def _error(self, rel: bytes, exc: BaseException) -> None:
        msg = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        log.warning("restore of %r failed: %s", rel, msg)
        self.errors.append({"path": os.fsdecode(rel), "error": msg})

    def _make_dirs(self, plan: RestorePlan) -> None:
        for rel, _node in plan.dirs:
            try:
                self.target.make_dir(rel)
                self.stats.dirs += 1
            except OSError as exc:
                self._error(rel, exc)

    def _finish_file(self, f: RestoreFile) -> None:
        """Files not finished by their last chunk write: hard links and files without data (empty,
        or nothing but holes). Unchanged files got their metadata when they were planned."""
        if f.failed or f.done:
            return
        if f.write and f.remaining:  # the deadline came first: left for the next run
            self.target.leave_unfinished(f)
            return
        if f.link_to is not None:
            if not f.link_to.done and self.incomplete:
                return
            if not f.link_to.done:
                raise OSError(errno.ENOENT, "the first name of this hard link was not restored")
            self.target.link(f, f.link_to)
            self.stats.hardlinks += 1
        else:
            assert f.remaining == 0, "a file with pending chunks after the fetch phase"
            self.target.finish_empty(f)
        f.done = True

    def _finish(self, plan: RestorePlan, root: Node) -> None:
        for f in plan.files:
            try:
                self._finish_file(f)
            except OSError as exc:
                self._error(f.rel, exc)
        for rel, node in plan.others:
            try:
                self.target.make_other(rel, node)
            except OSError as exc:
                self._error(rel, exc)
                continue
            if node.type == "symlink":
                self.stats.symlinks += 1
            else:
                self.stats.others += 1
        if self.incomplete:
            # left to the run that completes the restore: a directory made read-only now would keep
            # the next run (as a user other than root) from writing what is still missing into it
            return
        for rel, dnode in reversed(plan.dirs):
            try:
                self.target.dir_meta(rel, dnode)
                self._dirs_done += 1
            except OSError as exc:
                self._error(rel, exc)
        if plan.whole:
            try:
                self.target.dir_meta(b"", root)
            except OSError as exc:
                self._error(b".", exc)

    async def _verify(self, plan: RestorePlan) -> None:
        sem = asyncio.Semaphore(self.concurrency)

        async def one(f: RestoreFile) -> None:
            async with sem:
                ok = await asyncio.to_thread(self.target.verify, f)
            if ok:
                self.stats.files_verified += 1
            else:
                self._error(
                    f.rel, TiervaultError("verification failed: content differs from the recovery point")
                )

        failed = {e["path"] for e in self.errors}
        try:
            async with asyncio.TaskGroup() as tg:
                for f in plan.files:
                    # only what is in place: not a file the deadline cut short, nor a hard link whose
                    # first name it cut short (both are for the next run)
                    if f.done and not f.failed and os.fsdecode(f.rel) not in failed:
                        tg.create_task(one(f))
        except BaseExceptionGroup as group:
            raise first_error(group) from None


__all__ = ["RestoreStats", "Restorer"]
