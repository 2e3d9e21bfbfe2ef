"""Restoring a recovery point (or part of it) into a directory.

The algorithm (docs/architecture.md, "Restore"), in the spirit of restic's ``internal/restorer``:

1. **Plan.** Walk the point's trees from the root, keeping what ``paths`` / ``include`` / ``exclude``
   select (and the directories above it); create the directories. Every chunk of every selected file
   is located and the file's size checked against its chunks and holes (before anything is written).
   A file already present in the target with the same content (every chunk re-hashed and compared)
   is not written again, only given its metadata; a hard-link group is written once and linked.
   Each chunk of every other file is filed under the pack that holds it.
2. **Fetch by pack.** Packs are processed concurrently (bounded). For each pack the needed blobs are
   read with as few ranged requests as possible (neighbouring blobs are coalesced), each blob is
   authenticated, decompressed and checked against its keyed id once, then written at every offset
   that uses it (``restore_files``: the first write creates the file, the last one finishes it and
   puts it in place). Memory holds at most a few coalesced ranges.
3. **Finish.** Files without data, hard links, symlinks and special files; directory metadata last,
   deepest first.
4. **Verify** (optional): every restored file is read back and its chunks re-hashed.

Everything below the target is reached through ``restore_target.RestoreTarget``: directory
descriptors, ``O_NOFOLLOW`` on every component, never a symlink followed, never a FIFO opened
(the safety rules are in that module and in docs/architecture.md, "Restore").
"""

from __future__ import annotations

import asyncio
import errno
import fnmatch
import logging
import os
import stat
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tiervault.clock import SYSTEM_CLOCK, Clock
from tiervault.core.crypto import chunk_id
from tiervault.core.format.pack import PackEntry
from tiervault.core.format.tree import ContentItem, Node, node_from_json
from tiervault.errors import IntegrityError, NotFoundError, TiervaultError, UsageError, first_error
from tiervault.repo.index import PackInfo
from tiervault.repo.repository import Repository
from tiervault.repo.snapshots import SnapshotRecord
from tiervault.repo.treewalk import DEFAULT_MAX_DEPTH, DEFAULT_MAX_ENTRIES, check_point
from tiervault.restore_files import MAX_OPEN_FILES, FileWriter, RestoreFile
from tiervault.restore_target import MAX_OPEN_DIRS, RestoreTarget, apply_meta_fd, bad_name, is_zero, split

log = logging.getLogger("tiervault.restorer")

COALESCE_GAP = 256 * 1024
MAX_RANGE = 8 << 20


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
    duration_s: float = 0.0
    # read requests and bytes served per tier during the restore (metadata included): the local disk
    # tier, and the repository's store; set by ``Vault.restore``
    cache_hits: int = 0
    cache_bytes: int = 0
    remote_reads: int = 0
    remote_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(slots=True)
class _Plan:
    dirs: list[tuple[bytes, Node | None]] = field(default_factory=list)
    files: list[RestoreFile] = field(default_factory=list)
    others: list[tuple[bytes, Node]] = field(default_factory=list)


def _matches(rel: bytes, patterns: Sequence[str]) -> bool:
    path = os.fsdecode(rel)
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatchcase(p, pat) or fnmatch.fnmatchcase(parts[i], pat)
        for pat in patterns
        for i, p in enumerate(prefixes)
    )


def normalize_paths(paths: Sequence[str] | None) -> list[bytes] | None:
    if paths is None:
        return None
    out = []
    for p in paths:
        parts = [x for x in os.fsencode(p).split(b"/") if x not in (b"", b".")]
        if b".." in parts:
            raise UsageError(f"path {p!r} must not contain '..'")
        out.append(b"/".join(parts))
    return out


class Restorer:
    #: a point that expands to more entries, or deeper paths, is refused before planning (repo/treewalk.py)
    max_entries, max_depth = DEFAULT_MAX_ENTRIES, DEFAULT_MAX_DEPTH

    def __init__(
        self,
        repo: Repository,
        snapshot: SnapshotRecord,
        target: str | os.PathLike[str],
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
    ) -> None:
        self.repo, self.snapshot = repo, snapshot
        self.target = os.fsencode(os.path.abspath(os.fspath(target)))
        self.paths = normalize_paths(paths)
        self.include = list(include or [])
        self.exclude = list(exclude or [])
        self.verify = verify
        self.concurrency = max(1, concurrency)
        #: ``clock.monotonic()`` after which no new range is fetched (a deadline); see ``incomplete``
        self.stop_at = stop_at
        self.clock = clock
        self.fs = RestoreTarget(self.target, max_dirs=max_open_dirs)
        self.files = FileWriter(self.fs, max_open=max_open_files)
        self.incomplete = False
        self.stats = RestoreStats()
        self.errors: list[dict[str, str]] = []
        self._whole = self.paths is None and not self.include and not self.exclude
        self._dirs_done = 0  # directories below the target whose metadata was applied

    # ------------------------------------------------------------------ selection

    def _selected(self, rel: bytes) -> bool:
        if self.paths is not None and not any(
            rel == p or rel.startswith(p + b"/") or not p for p in self.paths
        ):
            return False
        if self.include and not _matches(rel, self.include):
            return False
        return not (self.exclude and _matches(rel, self.exclude))

    def _may_contain(self, rel: bytes) -> bool:
        """Could a selected path lie below directory ``rel``?"""
        if self.exclude and _matches(rel, self.exclude):
            return False
        if self.paths is None:
            return True
        return any(
            not p or p == rel or p.startswith(rel + b"/") or rel.startswith(p + b"/") for p in self.paths
        )

    async def _walk(self, tree: bytes, rel: bytes, plan: _Plan) -> bool:
        """Add the selected entries below ``rel`` to the plan; True if anything was selected."""
        any_selected = False
        for node in await self.repo.load_tree(tree):
            child = rel + b"/" + node.name if rel else node.name
            if bad_name(node.name):  # the decoder refuses these; a restore never relies on it
                self._error(child, TiervaultError(f"invalid name {node.name!r} in the recovery point"))
                continue
            if node.type == "dir":
                if not self._may_contain(child):
                    continue
                mark = len(plan.dirs)
                plan.dirs.append((child, node))
                assert node.subtree is not None
                below = await self._walk(node.subtree, child, plan)
                if below or self._selected(child):
                    any_selected = True
                else:
                    del plan.dirs[mark]
                continue
            if not self._selected(child):
                continue
            any_selected = True
            if node.type == "file":
                plan.files.append(RestoreFile(child, rel, node.name, node))
            else:
                plan.others.append((child, node))
        return any_selected

    # ------------------------------------------------------------------ file helpers (threads)

    def _lengths(self, content: list[ContentItem]) -> list[tuple[ContentItem, int]]:
        out: list[tuple[ContentItem, int]] = []
        for item in content:
            if isinstance(item, int):
                out.append((item, item))
                continue
            out.append((item, self.repo.locate(item).entry.raw_length))
        return out

    def _same_content(
        self,
        rel: bytes,
        node: Node,
        lengths: list[tuple[ContentItem, int]],
        st: os.stat_result | None,
        *,
        apply_meta: bool = False,
    ) -> bool:
        """Does the regular file ``rel`` (``st``: its lstat) hold exactly ``node``'s content? Reads
        and re-hashes it; anything that is not a regular file of the right size is not opened. With
        ``apply_meta``, a file found identical gets ``node``'s metadata through the same descriptor."""
        if st is None or not stat.S_ISREG(st.st_mode) or st.st_size != node.size:
            return False
        try:
            fd = self.fs.open_regular(rel, ino=st.st_ino)
        except OSError:
            return False
        if fd is None:
            return False
        try:
            off = 0
            key = self.repo.keys.chunk_id
            for item, length in lengths:
                if isinstance(item, int):
                    if not is_zero(fd, off, length):
                        return False
                elif chunk_id(key, os.pread(fd, length, off)) != item:
                    return False
                off += length
            if off != node.size:
                return False
            if apply_meta:
                apply_meta_fd(fd, node)
            return True
        finally:
            os.close(fd)

    def _write_blob(
        self,
        pack: PackInfo,
        entry: PackEntry,
        sealed: memoryview,
        targets: list[tuple[RestoreFile, int]],
    ) -> int:
        plain = self.repo.open_pack_blob(pack, entry, sealed)
        written = 0
        for f, off in targets:
            with f.lock:
                if f.failed:
                    continue
                try:
                    written += self.files.write(f, plain, off)
                except OSError as exc:
                    f.failed = True
                    self.files.discard(f)
                    self._error(f.rel, exc)
        return written

    def _write_run(
        self,
        pack: PackInfo,
        run: list[PackEntry],
        start: int,
        data: bytes,
        blobs: dict[PackEntry, list[tuple[RestoreFile, int]]],
    ) -> int:
        """Open and write every blob of one coalesced range (a worker thread)."""
        view = memoryview(data)
        return sum(
            self._write_blob(pack, e, view[e.offset - start : e.offset - start + e.length], blobs[e])
            for e in run
        )

    def _deadline_passed(self) -> bool:
        if self.stop_at is not None and self.clock.monotonic() >= self.stop_at:
            self.incomplete = True
        return self.incomplete

    def _discard_all(self, plan: _Plan) -> None:
        """The fetch failed: remove every unfinished file. Each under its lock, and marked failed, as
        a worker thread of a cancelled task may still be writing (threads cannot be cancelled)."""
        for f in plan.files:
            with f.lock:
                if not f.done:
                    f.failed = True
                    self.files.discard(f)

    def _finish_file(self, f: RestoreFile) -> None:
        """Files not finished by their last chunk write: hard links and files without data (empty,
        or nothing but holes). Unchanged files got their metadata when they were planned."""
        if f.failed or f.done:
            return
        if f.write and f.remaining:  # the deadline came first: left for the next run
            self.files.leave_unfinished(f)
            return
        if f.link_to is not None:
            if not f.link_to.done and self.incomplete:
                return
            if not f.link_to.done:
                raise OSError(errno.ENOENT, "the first name of this hard link was not restored")
            if not self.fs.same_inode(f.rel, f.link_to.rel):  # else already this link
                tmp = self.files.temp_name()
                self.fs.link(f.link_to.rel, f.parent, tmp)
                self.fs.replace(f.parent, tmp, f.name)
            self.stats.hardlinks += 1
        else:
            assert f.remaining == 0, "a file with pending chunks after the fetch phase"
            self.files.finish(f, self.files.create(f))
        f.done = True

    def _make_other(self, rel: bytes, node: Node) -> None:
        parent, name = split(rel)
        tmp = self.files.temp_name()
        fmt = self.fs.make_node(parent, tmp, node)
        self.fs.replace(parent, tmp, name)
        if fmt == stat.S_IFLNK:
            self.stats.symlinks += 1
        else:
            self.stats.others += 1

    # ------------------------------------------------------------------ the run

    async def run(self) -> tuple[RestoreStats, list[dict[str, str]]]:
        started = self.clock.monotonic()
        # a bad root, or a point whose shared subtrees expand beyond what can be planned: refuse now
        await check_point(self.repo, self.snapshot, max_entries=self.max_entries, max_depth=self.max_depth)
        plan = _Plan()
        root = node_from_json(self.snapshot.root)
        await self._walk(bytes.fromhex(self.snapshot.tree), b"", plan)
        if not self._whole and not plan.files and not plan.others and not plan.dirs:
            raise NotFoundError("nothing in the recovery point matches the given paths/patterns")
        await asyncio.to_thread(self.fs.open)
        try:
            await asyncio.to_thread(self._make_dirs, plan)
            by_pack = await asyncio.to_thread(self._plan_files, plan)
            try:
                await self._fetch(by_pack)
            except BaseException:
                await asyncio.to_thread(self._discard_all, plan)
                raise
            await asyncio.to_thread(self._finish, plan, root)
            if self.verify:
                await self._verify(plan)
        finally:
            self.fs.close()
        self.stats.files_written = self.files.files_written
        self.stats.duration_s = self.clock.monotonic() - started
        self._refuse_if_nothing_restored()
        return self.stats, self.errors

    def _refuse_if_nothing_restored(self) -> None:
        """Errors and not a single entry in place: the restore failed as a whole, not partly."""
        s = self.stats
        done = s.files_written + s.files_unchanged + s.hardlinks + s.symlinks + s.others + self._dirs_done
        if self.errors and not done and not self.incomplete:
            first, n = self.errors[0], len(self.errors)
            raise TiervaultError(
                f"nothing could be restored into {os.fsdecode(self.target)!r}: "
                f"{n} {'entry' if n == 1 else 'entries'} failed, "
                f"the first {first['path']!r}: {first['error']}"
            )

    def _error(self, rel: bytes, exc: BaseException) -> None:
        msg = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        log.warning("restore of %r failed: %s", rel, msg)
        self.errors.append({"path": os.fsdecode(rel), "error": msg})

    def _make_dirs(self, plan: _Plan) -> None:
        for rel, _node in plan.dirs:
            try:
                self.fs.make_dir(rel)
                self.stats.dirs += 1
            except OSError as exc:
                self._error(rel, exc)

    def _plan_files(
        self, plan: _Plan
    ) -> dict[str, tuple[PackInfo, dict[PackEntry, list[tuple[RestoreFile, int]]]]]:
        by_pack: dict[str, tuple[PackInfo, dict[PackEntry, list[tuple[RestoreFile, int]]]]] = {}
        links: dict[tuple[int, int], RestoreFile] = {}
        todo: list[tuple[RestoreFile, list[tuple[ContentItem, int]]]] = []
        for f in plan.files:  # nothing touches the target yet: a chunk no index has aborts here
            node = f.node
            self.stats.files += 1
            self.stats.bytes_total += node.size
            if node.links > 1:
                first = links.get((node.device, node.inode))
                if first is not None:
                    f.link_to = first
                    continue
                links[(node.device, node.inode)] = f
            lengths = self._lengths(node.content)
            stored, negative = 0, False
            for _, n in lengths:
                stored += n
                negative = negative or n < 0
            if stored != node.size or negative:
                # a crafted size (10**12 for 6 bytes) must not become a huge sparse file
                why = f"stored size {node.size} does not match its content ({stored} bytes)"
                self._error(f.rel, TiervaultError(why))
                f.failed = True
                continue
            todo.append((f, lengths))
        for f, lengths in todo:
            try:
                st = self.fs.lstat(f.rel)
                f.existed = st is not None
                if self._same_content(f.rel, f.node, lengths, st, apply_meta=True):
                    self.stats.files_unchanged += 1
                    f.done = True
                    continue
            except OSError as exc:
                self._error(f.rel, exc)
                f.failed = True
                continue
            f.write = True
            off = 0
            for item, length in lengths:
                if not isinstance(item, int):
                    loc = self.repo.locate(item)
                    slot = by_pack.setdefault(loc.pack.id, (loc.pack, defaultdict(list)))
                    slot[1][loc.entry].append((f, off))
                    f.remaining += 1
                off += length
        return by_pack

    async def _fetch(
        self, by_pack: dict[str, tuple[PackInfo, dict[PackEntry, list[tuple[RestoreFile, int]]]]]
    ) -> None:
        sem = asyncio.Semaphore(self.concurrency)

        async def one(pack: PackInfo, blobs: dict[PackEntry, list[tuple[RestoreFile, int]]]) -> None:
            entries = sorted(blobs, key=lambda e: e.offset)
            async with sem:
                self.stats.packs_read += 1
                for run in _coalesce(entries):
                    if self._deadline_passed():
                        return  # the rest is for the next run, into the same target
                    start = run[0].offset
                    end = run[-1].offset + run[-1].length
                    data = await self.repo.backend.get(pack.name, offset=start, length=end - start)
                    self.stats.read_requests += 1
                    self.stats.bytes_fetched += len(data)
                    if len(data) != end - start:
                        raise IntegrityError(pack.name, "pack is shorter than its index says")
                    written = await asyncio.to_thread(self._write_run, pack, run, start, data, blobs)
                    self.stats.bytes_written += written

        try:
            async with asyncio.TaskGroup() as tg:
                for pack, blobs in by_pack.values():
                    tg.create_task(one(pack, blobs))
        except BaseExceptionGroup as group:
            raise first_error(group) from None

    def _finish(self, plan: _Plan, root: Node) -> None:
        for f in plan.files:
            try:
                self._finish_file(f)
            except OSError as exc:
                self._error(f.rel, exc)
        for rel, node in plan.others:
            try:
                self._make_other(rel, node)
            except OSError as exc:
                self._error(rel, exc)
        for rel, dnode in reversed(plan.dirs):
            assert dnode is not None
            try:
                self.fs.dir_meta(rel, dnode)
                self._dirs_done += 1
            except OSError as exc:
                self._error(rel, exc)
        if self._whole:
            try:
                self.fs.dir_meta(b"", root)
            except OSError as exc:
                self._error(b".", exc)

    async def _verify(self, plan: _Plan) -> None:
        def check(f: RestoreFile) -> bool:
            lengths = self._lengths(f.node.content)
            try:
                st = self.fs.lstat(f.rel)
            except OSError:  # its directory is no longer one: what it held is out of reach
                return False
            return self._same_content(f.rel, f.node, lengths, st)

        sem = asyncio.Semaphore(self.concurrency)

        async def one(f: RestoreFile) -> None:
            async with sem:
                ok = await asyncio.to_thread(check, f)
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
                    if os.fsdecode(f.rel) not in failed and not f.failed and not (f.write and f.remaining):
                        tg.create_task(one(f))
        except BaseExceptionGroup as group:
            raise first_error(group) from None


def _coalesce(entries: list[PackEntry]) -> list[list[PackEntry]]:
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
