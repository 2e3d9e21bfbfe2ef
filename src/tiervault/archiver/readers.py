"""The reader and saver pools of a snapshot run (docs/architecture.md, "Snapshot pipeline").

The walker hands regular files to ``ReaderPool.add``: small ones travel in batches (``Job``), large
ones alone, and at most ``8 x workers`` jobs wait. A reader opens its file safely
(``sources/reading.py``), cuts its data extents with FastCDC, hashes every chunk with the keyed BLAKE3
and claims the chunks neither the index nor this session has; new chunks go in groups of a few MiB
to the saver pool under a shared byte budget (``Budget``). A saver compresses and seals each chunk
into its own open data pack (a ``PackSink`` of the run's ``Packer``, ``repo/packer.py``).
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from tiervault.archiver.outcome import Progress
from tiervault.core.chunker import Chunker
from tiervault.core.crypto import chunk_id
from tiervault.core.format.pack import PackKind
from tiervault.core.format.tree import ContentItem
from tiervault.repo.packer import Packer, PackSink
from tiervault.repo.repository import Repository
from tiervault.sources.folder import RangeReader, data_extents
from tiervault.sources.reading import FileChanged, FileState, open_regular
from tiervault.sources.stopping import Stopper

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


class Stopped(Exception):
    """The time budget ran out while this file was being read: it is left for the next run."""


class Budget:
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
FileResult = tuple[list[ContentItem], int, bool] | BaseException


@dataclass(slots=True)
class Group:
    """New chunks on their way from one reader task to the saver pool."""

    chunks: list[tuple[bytes, bytes | memoryview]] = field(default_factory=list)
    nbytes: int = 0

    def add(self, cid: bytes, data: bytes | memoryview) -> int:
        self.chunks.append((cid, data))
        self.nbytes += len(data)
        return self.nbytes


@dataclass(slots=True)
class Job:
    """Files read by one reader-pool task: one large file, or a batch of small ones."""

    #: (path, inode, device, new): a file replaced between the walk and the read is not read; a
    #: new one (absent from the parent point) is progress under a deadline (``sources/stopping.py``)
    files: list[tuple[bytes, int, int, bool]] = field(default_factory=list)
    nbytes: int = 0
    future: cf.Future[list[FileResult]] | None = None

    def done(self) -> bool:
        return self.future is not None and self.future.done()


class ReaderPool:
    """Reads the files of one run into chunks and stores the new ones: ``workers`` reader threads
    ("tiervault-read") and ``workers`` saver threads ("tiervault-pack"), between ``start`` and
    ``shutdown``. ``claims`` is the run's claim set (docs/architecture.md, "Deduplication and claims")."""

    def __init__(
        self,
        repo: Repository,
        packer: Packer,
        claims: set[bytes],
        stop: Stopper,
        progress: Progress,
        workers: int,
    ) -> None:
        self.repo, self._packer, self._claims = repo, packer, claims
        self._stop, self.progress, self.workers = stop, progress, workers
        self._local = threading.local()
        self._queue_slots = threading.Semaphore(workers * 8)
        self._batch = Job()
        self._budget = Budget(READ_BUDGET)

    def start(self) -> None:
        self._pool = cf.ThreadPoolExecutor(self.workers, thread_name_prefix="tiervault-read")
        self._savers = cf.ThreadPoolExecutor(self.workers, thread_name_prefix="tiervault-pack")

    def shutdown(self) -> None:
        """Wait for the readers (dropping the jobs not started) and then for the savers."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._savers.shutdown(wait=True)

    # ---------------------------------------------------------------- submitting (walker thread)

    def add(self, path: bytes, st: os.stat_result, new: bool) -> tuple[Job, int]:
        """Queue the listed regular file ``path`` (``new``: absent from the parent point): its job and
        its place in the job's results. A
        small file joins the open batch, sent once full (or by ``send_batch``); a large one is sent
        alone. Blocks while ``8 x workers`` jobs wait; raises the run's first store error."""
        size = st.st_size
        if size <= BATCH_FILE_MAX:
            batch = self._batch
            slot = (batch, len(batch.files))
            batch.files.append((path, st.st_ino, st.st_dev, new))
            batch.nbytes += size
            if len(batch.files) >= BATCH_FILES or batch.nbytes >= BATCH_BYTES:
                self.send_batch()
            return slot
        job = Job([(path, st.st_ino, st.st_dev, new)], size)
        self._submit(job)
        return job, 0

    def _submit(self, job: Job) -> None:
        self._queue_slots.acquire()
        self._packer.check()
        job.future = self._pool.submit(self._read_job, job)

    def send_batch(self) -> None:
        """Send the open batch of small files now (its results are needed)."""
        if self._batch.files:
            self._submit(self._batch)
            self._batch = Job()

    # ---------------------------------------------------------------- file content (reader threads)

    def _chunker(self) -> Chunker:
        chunker: Chunker | None = getattr(self._local, "chunker", None)
        if chunker is None:
            chunker = self._local.chunker = Chunker(self.repo.chunker_params, self.repo.keys.chunker_seed)
        return chunker

    def _stopping(self) -> bool:
        return self._stop.stopping()

    def _read_job(self, job: Job) -> list[FileResult]:
        """A reader-pool task. Per-file read errors become results; store failures propagate."""
        group = Group()
        results: list[FileResult] = []
        try:
            for path, inode, device, new in job.files:
                try:
                    if self._stopping():
                        raise Stopped
                    results.append(self._chunk_file(path, inode, device, group))
                    self._stop.file_done(new)
                except (OSError, FileChanged, Stopped) as exc:
                    results.append(exc)
            self._submit_saves(group)
            return results
        finally:
            self._queue_slots.release()

    def _chunk_file(
        self, path: bytes, inode: int, device: int, group: Group
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

    def _chunk_content(self, fd: int, st: os.stat_result, group: Group) -> tuple[list[ContentItem], int]:
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
                    raise Stopped  # its chunks so far are stored: the next run re-reads, uploads none
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

    # ---------------------------------------------------------------- new chunks (saver threads)

    def _sink(self) -> PackSink:
        sink: PackSink | None = getattr(self._local, "sink", None)
        if sink is None:
            sink = self._local.sink = self._packer.sink(PackKind.DATA)
        return sink

    def _submit_saves(self, group: Group) -> None:
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
