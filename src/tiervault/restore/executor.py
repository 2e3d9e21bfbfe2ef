"""The restore executor: fetch by pack, open each blob once, write it wherever the plan uses it.

``assign`` files the chunk writes of every file that must be written under its pack and blob entry
(a file the target already holds unchanged is skipped). ``Executor.fetch`` then processes the packs
concurrently (at most ``concurrency`` at a time); within a pack the needed blobs are sorted by
offset and coalesced into runs (a gap of at most ``COALESCE_GAP``, a run of at most ``MAX_RANGE``),
each run one ranged ``get``. In a worker thread every blob of the run is authenticated, decompressed
and checked against its keyed id once, then written at every ``(file, offset)`` that uses it through
the :class:`~tiervault.restore.targets.RestoreTarget`. No new range starts after ``stop_at`` (on the
``Clock``) once this run has finished a file: like a snapshot (``sources/stopping.py``), a run never
stops before it has made progress, so a budget within the reserve (a stop time of "now") or a slow
first file still converges over repeated runs instead of writing nothing each time. A pack deleted
since the plan (a prune's sweep) is read from its chunks' other locations (``relocate.py``).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable

from tiervault.clock import Clock
from tiervault.core.format.pack import PackEntry
from tiervault.errors import IntegrityError, ObjectNotFoundError, first_error
from tiervault.repo.index import PackInfo
from tiervault.repo.repository import Repository
from tiervault.restore.files import RestoreFile
from tiervault.restore.relocate import Relocator
from tiervault.restore.targets import RestoreTarget

COALESCE_GAP = 256 * 1024
MAX_RANGE = 8 << 20

Uses = dict[PackEntry, list[tuple[RestoreFile, int]]]
#: pack name -> (the pack, each needed blob -> every (file, offset) it is written at)
ByPack = dict[str, tuple[PackInfo, Uses]]
ErrorHook = Callable[[bytes, BaseException], None]


def assign(files: list[RestoreFile], target: RestoreTarget, on_error: ErrorHook) -> tuple[ByPack, int]:
    """File every chunk write under its pack (a worker thread: it reads the target). Returns the
    packs and how many files were found unchanged (those got their metadata)."""
    by_pack: ByPack = {}
    unchanged = 0
    for f in files:
        if f.failed or f.link_to is not None:
            continue
        try:
            if target.unchanged(f):
                unchanged += 1
                f.done = True
                continue
        except OSError as exc:
            on_error(f.rel, exc)
            f.failed = True
            continue
        f.write = True
        off = 0
        for _item, length, loc in f.layout:
            if loc is not None:
                slot = by_pack.get(loc.pack.name)
                if slot is None:
                    slot = by_pack[loc.pack.name] = (loc.pack, defaultdict(list))
                slot[1][loc.entry].append((f, off))
                f.remaining += 1
            off += length
    return by_pack, unchanged


def coalesce(entries: list[PackEntry]) -> list[list[PackEntry]]:
    """Blobs sorted by offset, as runs to read with one request each."""
    runs: list[list[PackEntry]] = []
    for e in entries:
        if runs:
            last = runs[-1]
            end = last[-1].offset + last[-1].length
            if e.offset - end <= COALESCE_GAP and e.offset + e.length - last[0].offset <= MAX_RANGE:
                last.append(e)
                continue
        runs.append([e])
    return runs


class Executor:
    """Fetches the packs of a plan and writes their blobs to ``target``; counts what it did."""

    def __init__(
        self,
        repo: Repository,
        target: RestoreTarget,
        on_error: ErrorHook,
        *,
        concurrency: int,
        clock: Clock,
        stop_at: float | None = None,
    ) -> None:
        self.repo, self.target, self.on_error = repo, target, on_error
        self.concurrency = max(1, concurrency)
        self.clock, self.stop_at = clock, stop_at
        self.incomplete = False
        #: a file was finished by a chunk write of this run: from now on a passed deadline stops it
        self.progressed = False
        self.packs_read = self.read_requests = self.bytes_fetched = self.bytes_written = 0
        self.relocator = Relocator(repo)
        #: pack name -> the object its blobs are read from instead (a staging copy out of Archive)
        self.sources: dict[str, str] = {}

    def deadline_passed(self) -> bool:
        """Stop taking new reads? Only once the stop time has come *and* this run has finished a file
        (files found unchanged do not count: they were finished by an earlier run)."""
        if (
            not self.incomplete
            and self.stop_at is not None
            and self.progressed
            and self.clock.monotonic() >= self.stop_at
        ):
            self.incomplete = True
        return self.incomplete

    def _write_blob(
        self, pack: PackInfo, entry: PackEntry, sealed: memoryview, uses: list[tuple[RestoreFile, int]]
    ) -> int:
        plain = self.repo.open_pack_blob(pack, entry, sealed)
        written = 0
        target = self.target
        for f, off in uses:
            with f.lock:
                if f.failed:
                    continue
                try:
                    written += target.write(f, plain, off)
                    if f.done:
                        self.progressed = True
                except OSError as exc:
                    f.failed = True
                    target.discard(f)
                    self.on_error(f.rel, exc)
        return written

    def _write_run(self, pack: PackInfo, run: list[PackEntry], start: int, data: bytes, uses: Uses) -> int:
        """Open and write every blob of one coalesced range (a worker thread)."""
        view = memoryview(data)
        return sum(
            self._write_blob(pack, e, view[e.offset - start : e.offset - start + e.length], uses[e])
            for e in run
        )

    async def fetch(self, by_pack: ByPack) -> None:
        sem = asyncio.Semaphore(self.concurrency)

        def chunks() -> set[bytes]:  # what the restore reads, for a reload after a pack vanished
            return {e.id for _pack, uses in by_pack.values() for e in uses}

        async def one(pack: PackInfo, uses: Uses) -> None:
            async with sem:
                await self._read_pack(pack, uses, chunks)

        try:
            async with asyncio.TaskGroup() as tg:
                for pack, uses in by_pack.values():
                    tg.create_task(one(pack, uses))
        except BaseExceptionGroup as group:
            raise first_error(group) from None

    async def _read_pack(self, pack: PackInfo, uses: Uses, chunks: Callable[[], set[bytes]]) -> None:
        runs = coalesce(sorted(uses, key=lambda e: e.offset))
        for i, run in enumerate(runs):
            if self.deadline_passed():
                return  # the rest is for the next run, into the same target
            if i == 0:
                self.packs_read += 1  # a pack counts once a read of it starts
            start = run[0].offset
            end = run[-1].offset + run[-1].length
            try:
                source = self.sources.get(pack.name, pack.name)
                data = await self.repo.backend.get(source, offset=start, length=end - start)
            except ObjectNotFoundError:  # deleted since the plan: read the rest from elsewhere
                await self._read_elsewhere(pack, [e for r in runs[i:] for e in r], uses, chunks)
                return
            self.read_requests += 1
            self.bytes_fetched += len(data)
            if len(data) != end - start:
                raise IntegrityError(pack.name, "pack is shorter than its index says")
            # awaited first, then added: ``+= await`` would read the counter before the
            # await and lose what the other tasks added meanwhile
            written = await asyncio.to_thread(self._write_run, pack, run, start, data, uses)
            self.bytes_written += written

    async def _read_elsewhere(
        self, pack: PackInfo, left: list[PackEntry], uses: Uses, chunks: Callable[[], set[bytes]]
    ) -> None:
        moved: ByPack = {}
        for old, loc in (await self.relocator.relocate(pack, left, chunks)).items():
            slot = moved.get(loc.pack.name)
            if slot is None:
                slot = moved[loc.pack.name] = (loc.pack, defaultdict(list))
            slot[1][loc.entry].extend(uses[old])
        for new_pack, new_uses in moved.values():
            await self._read_pack(new_pack, new_uses, chunks)

    def discard_all(self, files: list[RestoreFile]) -> None:
        """The fetch failed: remove every unfinished file. Each under its lock, and marked failed, as
        a worker thread of a cancelled task may still be writing (threads cannot be cancelled)."""
        for f in files:
            with f.lock:
                if not f.done:
                    f.failed = True
                    self.target.discard(f)


__all__ = ["COALESCE_GAP", "MAX_RANGE", "ByPack", "Executor", "assign", "coalesce"]
