"""Taking a recovery point of a folder: walk, chunk, dedup, pack, upload, then commit the snapshot.

Threads and bounds (docs/architecture.md, "Snapshot pipeline"):

* one walker thread lists directories in depth-first order and hands regular files to a reader pool
  of ``workers`` threads (one per core): small files in batches, large ones alone; at most
  ``8 x workers`` tasks wait;
* a reader reads its file in bounded blocks (FastCDC streaming), hashes every chunk with the keyed
  BLAKE3, claims the chunks neither the index nor this session has, and passes them in groups of a
  few MiB to a saver pool (``workers`` threads) under a shared byte budget;
* a saver compresses and seals each chunk into its own open pack (a ``PackSink`` of the run's
  ``Packer``, ``repo/packer.py``); a full pack is handed to the event loop for upload, at most
  ``max_inflight`` at a time, so memory stays bounded whatever the data size (docs/architecture.md,
  "Bounds");
* directories are finalized in post-order as soon as all their files are done: the tree is serialized,
  hashed and added to a metadata pack;
* the caller writes the index, then the snapshot object — last, so a crash leaves no dangling point.

A file that vanishes, cannot be read or is no longer a regular file when opened is recorded in the
point's error list and left out; one that changes while it is read is read again, and stored with a
warning if it changed again (``sources/reading.py``). A deadline or a cancellation stops the walker and
the readers (``sources/stopping.py``); a cancelled run ends its threads and commits nothing.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures as cf
import logging
import operator
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tiervault.clock import SYSTEM_CLOCK, Clock
from tiervault.core.chunker import Chunker
from tiervault.core.crypto import chunk_id
from tiervault.core.format import FormatError
from tiervault.core.format.pack import PackKind
from tiervault.core.format.tree import (
    ContentItem,
    content_to_json,
    decode_tree_json,
    encode_tree_json,
    json_name,
)
from tiervault.errors import TiervaultError, UsageError
from tiervault.repo.packer import Packer, PackSink
from tiervault.repo.repository import Repository
from tiervault.sources.folder import RangeReader, data_extents, list_dir, stat_json
from tiervault.sources.reading import CHANGED_WHILE_READ, FileChanged, FileState, open_regular
from tiervault.sources.reuse import ParentReuse, tree_ref
from tiervault.sources.stopping import Cancelled, Stopper

log = logging.getLogger("tiervault.archiver")

SMALL_FILE = 1 << 20
#: small files travel to the reader pool in batches: per-job overhead is paid per batch, not per file
BATCH_FILE_MAX = 256 * 1024
BATCH_FILES = 64
BATCH_BYTES = 8 << 20
#: new chunks travel to the saver pool in groups of about this many bytes
SAVE_GROUP = 4 << 20
#: bytes of new chunks read but not yet packed, across all readers (a chunk larger than this still
#: passes, alone): 16 MiB keeps both savers busy; 32 MiB bought no throughput and cost peak memory
READ_BUDGET = 16 << 20


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


class _Stopped(Exception):
    """The time budget ran out while this file was being read: it is left for the next run."""


class _Budget:
    """A byte budget shared by threads: ``acquire(n)`` blocks while the budget is spent (one
    oversized request is let through alone, so a chunk larger than the budget cannot deadlock)."""

    def __init__(self, limit: int) -> None:
        self._limit, self._used = limit, 0
        self._cond = threading.Condition()

    def acquire(self, n: int) -> None:
        with self._cond:
            while self._used and self._used + n > self._limit:
                self._cond.wait()
            self._used += n

    def release(self, n: int) -> None:
        with self._cond:
            self._used -= n
            self._cond.notify_all()


#: a file's content, its size as read and whether it kept changing while read; or why it is left out
_FileResult = tuple[list[ContentItem], int, bool] | BaseException


@dataclass(slots=True)
class _Group:
    """New chunks on their way from one reader task to the saver pool."""

    chunks: list[tuple[bytes, bytes | memoryview]] = field(default_factory=list)
    nbytes: int = 0

    def add(self, cid: bytes, data: bytes | memoryview) -> int:
        self.chunks.append((cid, data))
        self.nbytes += len(data)
        return self.nbytes


@dataclass(slots=True)
class _Job:
    """Files read by one reader-pool task: one large file, or a batch of small ones."""

    #: (path, inode, device): a file replaced between the walk and the read is not read
    files: list[tuple[bytes, int, int]] = field(default_factory=list)
    nbytes: int = 0
    future: cf.Future[list[_FileResult]] | None = None

    def done(self) -> bool:
        return self.future is not None and self.future.done()


_Obj = dict[str, Any]  # a node as its tree JSON object (core/format/tree.py)
_by_name = operator.itemgetter(0)


@dataclass(slots=True)
class _PendingDir:
    """A directory being backed up. Its entries are kept as (raw name, tree JSON object): an
    unchanged directory is then recognised by comparing its objects with the parent tree's, and
    a changed one is encoded as is, with no ``Node`` built per entry."""

    path: bytes
    #: the same directory in the parent point, to reuse its tree when nothing changed
    parent_tree: bytes | None = None
    parent_nodes: list[_Obj] | None = None
    nodes: list[tuple[bytes, _Obj]] = field(default_factory=list)
    jobs: list[tuple[bytes, _Obj, _Job, int]] = field(default_factory=list)
    subdirs: list[tuple[bytes, _Obj, _PendingDir]] = field(default_factory=list)
    tree_id: bytes | None = None

    def ready(self) -> bool:
        return all(job.done() for _, _, job, _ in self.jobs)


@dataclass(slots=True)
class ArchiveOutcome:
    tree: bytes
    root: dict[str, Any]
    stats: SnapshotStats
    errors: list[dict[str, str]]
    incomplete: bool = False
    #: files stored although they changed while they were read (``{"path", "warning"}``)
    warnings: list[dict[str, str]] = field(default_factory=list)


class FolderArchiver:
    """Runs in its own thread (``run``); talks to the event loop only through futures."""

    def __init__(
        self,
        repo: Repository,
        loop: asyncio.AbstractEventLoop,
        source: bytes,
        *,
        parent_tree: bytes | None = None,
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
        self._reuse = ParentReuse(repo.index, force_rehash=force_rehash)
        self._clock = clock
        #: ``clock.monotonic()`` after which no new file is started and long reads stop (a deadline)
        self._stop = Stopper(stop_at, clock)
        self.workers = max(1, workers or os.cpu_count() or 2)
        self.stats = SnapshotStats()
        self.progress = progress or Progress()
        self.errors: list[dict[str, str]] = []
        self.warnings: list[dict[str, str]] = []
        self._stats_lock = threading.Lock()
        self._claims: set[bytes] = set()
        self._packer = Packer(repo, loop=loop, max_inflight=max(1, max_inflight), claims=self._claims)
        self._local = threading.local()
        self._queue_slots = threading.Semaphore(self.workers * 8)
        self._ready: collections.deque[_PendingDir] = collections.deque()
        self._batch = _Job()
        self._budget = _Budget(READ_BUDGET)
        self._meta = self._packer.sink(PackKind.META)  # the walker's

    # ---------------------------------------------------------------- helpers

    @property
    def incomplete(self) -> bool:
        return self._stop.incomplete

    def cancel(self) -> None:
        """Stop the run from any thread: ``run`` then ends its threads and raises ``Cancelled``."""
        self._stop.cancel()

    def _call(self, coro_factory: Callable[[], Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro_factory(), self.loop).result()

    def _error(self, path: bytes, exc: BaseException) -> None:
        rel = os.path.relpath(path, self.source) if path != self.source else "."
        msg = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        log.warning("skipped %r: %s", rel, msg)
        with self._stats_lock:
            self.errors.append({"path": os.fsdecode(rel), "error": msg})

    def _warn(self, path: bytes, msg: str) -> None:
        rel = os.path.relpath(path, self.source)
        log.warning("%r: %s", rel, msg)
        with self._stats_lock:
            self.warnings.append({"path": os.fsdecode(rel), "warning": msg})

    def _chunker(self) -> Chunker:
        chunker: Chunker | None = getattr(self._local, "chunker", None)
        if chunker is None:
            chunker = self._local.chunker = Chunker(self.repo.chunker_params, self.repo.keys.chunker_seed)
        return chunker

    def _sink(self) -> PackSink:
        sink: PackSink | None = getattr(self._local, "sink", None)
        if sink is None:
            sink = self._local.sink = self._packer.sink(PackKind.DATA)
        return sink

    def _submit_saves(self, group: _Group) -> None:
        """Hand new chunks to the saver pool (compress, seal, pack, upload), within the byte budget."""
        if not group.chunks:
            return
        chunks, size = group.chunks, group.nbytes
        group.chunks, group.nbytes = [], 0
        self._packer.check()
        self._budget.acquire(size)
        try:
            self._savers.submit(self._save_job, chunks, size)
        except BaseException:
            self._budget.release(size)
            raise

    def _save_job(self, chunks: list[tuple[bytes, bytes | memoryview]], size: int) -> None:
        packer = self._packer
        try:
            sink = self._sink()
            for cid, data in chunks:
                if packer.error is not None or self._stop.cancelled:
                    break
                sink.store(cid, data)
        except BaseException as exc:
            packer.fail(exc)
        finally:
            self._budget.release(size)

    # ---------------------------------------------------------------- file content (worker threads)

    def _stopping(self) -> bool:
        return self._stop.stopping()

    def _read_job(self, job: _Job) -> list[_FileResult]:
        """A reader-pool task. Per-file read errors become results; store failures propagate."""
        group = _Group()
        results: list[_FileResult] = []
        try:
            for path, inode, device in job.files:
                try:
                    if self._stopping():
                        raise _Stopped
                    results.append(self._chunk_file(path, inode, device, group))
                    self._stop.file_done()
                except (OSError, FileChanged, _Stopped) as exc:
                    results.append(exc)
            self._submit_saves(group)
            return results
        finally:
            self._queue_slots.release()

    def _chunk_file(
        self, path: bytes, inode: int, device: int, group: _Group
    ) -> tuple[list[ContentItem], int, bool]:
        """Read the listed regular file: (content, size read, whether it kept changing). A file whose
        size or times moved during the read is read once more; if they move again, what the second
        read got is kept (and the caller records a warning)."""
        fd, st = open_regular(path, inode, device)
        try:
            for _ in range(2):
                content, size = self._chunk_content(fd, st, group)
                after = os.fstat(fd)
                if FileState.of(after) == FileState.of(st):
                    return content, size, False
                st = after
            return content, size, True
        finally:
            os.close(fd)

    def _chunk_content(self, fd: int, st: os.stat_result, group: _Group) -> tuple[list[ContentItem], int]:
        chunker = self._chunker()
        key = self.repo.keys.chunk_id
        content: list[ContentItem] = []
        pos = 0
        shrank = False
        for start, end in data_extents(fd, st.st_size, st.st_blocks):
            if start > pos:
                content.append(start - pos)
                pos = start
            # small extents: one read, and the chunks are views of that immutable buffer;
            # streamed extents: a chunk's view is reused by the next one, so it is copied
            small = end - start <= SMALL_FILE
            if end - start <= self.repo.chunker_params.min_size:
                pieces: Any = (os.pread(fd, end - start, start),)  # one chunk: no need to cut
            elif small:
                pieces = chunker.cut(os.pread(fd, end - start, start))
            else:
                pieces = chunker.chunks(RangeReader(fd, start, end))
            for piece in pieces:
                if not small and self._stopping():
                    raise _Stopped  # its chunks so far are stored: the next run re-reads, uploads none
                cid = chunk_id(key, piece)
                if (
                    cid not in self._claims
                    and cid not in self.repo.index
                    and self.repo.index.claim(cid, self._claims)
                    and group.add(cid, piece if small else bytes(piece)) >= SAVE_GROUP
                ):
                    self._submit_saves(group)
                content.append(cid)
                pos += len(piece)
                self.progress.add(0, len(piece))
            if pos < end:
                shrank = True  # the file was truncated while we read it: keep what we got
                break
        if not shrank and pos < st.st_size:
            content.append(st.st_size - pos)  # a trailing hole
            pos = st.st_size
        return content, pos

    # ---------------------------------------------------------------- walking (walker thread)

    def _parent_entries(self, pending: _PendingDir) -> dict[bytes, _Obj]:
        """The parent point's entries of this directory by raw name ({} when unreadable: read all)."""
        tid = pending.parent_tree
        if tid is None:
            return {}
        try:
            data = self.repo.cached_tree_data(tid)
            if data is None:
                data = self._call(lambda: self.repo.load_tree_data(tid))
            try:
                nodes = decode_tree_json(data)
                parent = {json_name(o): o for o in nodes}
            except (FormatError, ValueError, TypeError) as exc:
                raise self.repo.tree_error(tid, exc) from exc
        except TiervaultError as exc:
            log.warning("parent tree unreadable, reading everything below %r: %s", pending.path, exc)
            return {}
        pending.parent_nodes = nodes
        return parent

    def _walk(self, path: bytes, parent_tree: bytes | None) -> _PendingDir:
        pending = _PendingDir(path, parent_tree)
        try:
            entries = list_dir(path)
        except OSError as exc:
            self._error(path, exc)
            entries = []
        parent = self._parent_entries(pending)
        stats = self.stats
        prefix = path if path.endswith(b"/") else path + b"/"
        reused_files = reused_bytes = 0
        for i, (name, st) in enumerate(entries):
            if self._stopping():
                # the rest of this directory is left for the next run; what the parent point holds
                # of it stays in this checkpoint, so finished work is never lost (runs converge)
                kept, files, nbytes = self._reuse.keep_unvisited(entries[i:], parent)
                pending.nodes += kept
                stats.files += files
                stats.bytes_total += nbytes
                reused_files += files
                reused_bytes += nbytes
                break
            child = prefix + name
            try:
                if isinstance(st, OSError):
                    raise st
                old = parent.get(name)
                if old is not None and self._reuse.unchanged_file(old, st):
                    # the parent's object is exactly what stat_json + reusable would rebuild: take it
                    stats.files += 1
                    stats.bytes_total += st.st_size
                    reused_files += 1
                    reused_bytes += st.st_size
                    pending.nodes.append((name, old))
                    continue
                # xattrs change ctime: an entry whose ctime and inode match the parent's keeps its xattrs
                key = (st.st_ctime_ns, st.st_ino)
                same = old is not None and (old.get("ctime_ns"), old.get("inode")) == key
                obj = stat_json(child, name, st, xattrs=not same)
                if same and obj is not None and old is not None and isinstance(old.get("xattrs"), list):
                    obj["xattrs"] = old["xattrs"]
            except OSError as exc:
                self._error(child, exc)  # vanished or unreadable: recorded, the rest goes on
                continue
            if obj is None:
                continue
            ntype = obj["type"]
            if ntype == "dir":
                stats.dirs += 1
                was_dir = old is not None and old.get("type") == "dir"
                sub_parent = tree_ref(old.get("subtree")) if old is not None and was_dir else None
                pending.subdirs.append((name, obj, self._walk(child, sub_parent)))
            elif ntype == "file":
                size = st.st_size
                stats.files += 1
                stats.bytes_total += size
                content = self._reuse.reusable(obj, old)
                if content is not None:
                    obj["content"] = content
                    reused_files += 1
                    reused_bytes += size
                    pending.nodes.append((name, obj))
                elif size <= BATCH_FILE_MAX:
                    batch = self._batch
                    pending.jobs.append((name, obj, batch, len(batch.files)))
                    batch.files.append((child, st.st_ino, st.st_dev))
                    batch.nbytes += size
                    if len(batch.files) >= BATCH_FILES or batch.nbytes >= BATCH_BYTES:
                        self._submit_batch()
                else:
                    job = _Job([(child, st.st_ino, st.st_dev)], size)
                    self._submit(job)
                    pending.jobs.append((name, obj, job, 0))
            else:
                stats.others += 1
                pending.nodes.append((name, obj))
        stats.files_reused += reused_files
        stats.bytes_reused += reused_bytes
        self.progress.add(reused_files, reused_bytes)
        self._ready.append(pending)
        self._drain(block=False)
        return pending

    def _submit(self, job: _Job) -> None:
        self._queue_slots.acquire()
        self._packer.check()
        job.future = self._pool.submit(self._read_job, job)

    def _submit_batch(self) -> None:
        if self._batch.files:
            self._submit(self._batch)
            self._batch = _Job()

    def _drain(self, *, block: bool) -> None:
        while self._ready and (block or self._ready[0].ready()):
            self._finalize(self._ready.popleft())

    def _finalize(self, pending: _PendingDir) -> None:
        nodes = pending.nodes
        for name, obj, job, i in pending.jobs:
            if job.future is None:
                self._submit_batch()  # the open batch holds files of this directory: send it now
            assert job.future is not None
            result = job.future.result()[i]
            if isinstance(result, _Stopped):
                continue
            if isinstance(result, BaseException):
                self._error(os.path.join(pending.path, name), result)
                continue
            content, size, changed = result
            if changed:
                self._warn(os.path.join(pending.path, name), CHANGED_WHILE_READ)
            obj["content"] = content_to_json(content)
            obj["size"] = size
            with self._stats_lock:
                self.stats.files_read += 1
                self.stats.bytes_read += size
            self.progress.add(1, 0)
            nodes.append((name, obj))
        for name, obj, sub in pending.subdirs:
            assert sub.tree_id is not None, "post-order: children are finalized first"
            obj["subtree"] = sub.tree_id.hex()
            nodes.append((name, obj))
        nodes.sort(key=_by_name)
        objs = [obj for _, obj in nodes]
        if pending.parent_nodes is not None and objs == pending.parent_nodes:
            pending.tree_id = pending.parent_tree  # unchanged directory: its tree is already stored
        else:
            data = encode_tree_json(objs)
            tid = chunk_id(self.repo.tree_key, data)
            self._meta.add(tid, data)
            pending.tree_id = tid
        pending.parent_nodes = None
        pending.nodes, pending.jobs, pending.subdirs = [], [], []

    def run(self) -> ArchiveOutcome:
        """The whole run, in the calling thread; ``Cancelled`` once its threads have stopped if
        ``cancel`` was called."""
        started = self._clock.monotonic()
        try:
            root_st = os.stat(self.source)
        except OSError as exc:
            raise UsageError(f"cannot read source {os.fsdecode(self.source)!r}: {exc.strerror}") from exc
        root = stat_json(self.source, b"root", root_st)
        if root is None or root["type"] != "dir":
            raise UsageError(f"source {os.fsdecode(self.source)!r} is not a directory")
        self._pool = cf.ThreadPoolExecutor(self.workers, thread_name_prefix="tiervault-read")
        self._savers = cf.ThreadPoolExecutor(self.workers, thread_name_prefix="tiervault-pack")
        try:
            top = self._walk(self.source, self.parent_tree)
            if not self._stop.cancelled:
                self._drain(block=True)
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._savers.shutdown(wait=True)
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
