"""The pack writer: chunks in, sealed packs stored, their entries in the index (docs/architecture.md,
"Snapshot pipeline" and "Repository").

Every writer of packs uses a :class:`Packer`: the archiver today; repack, copy and stream sources
later. It has two faces over the same machinery:

* **thread side** (the archiver's worker threads): each thread owns a :class:`PackSink` per pack
  kind (``PackWriter`` is not thread-safe) and calls ``sink.add``/``sink.store`` per chunk, with no
  lock and no copy; a full pack (``pack_size`` or ``MAX_ENTRIES``) is finished by the thread that
  filled it and handed to the event loop for ``save_pack``, at most ``max_inflight`` at a time (the
  thread waits for a slot). ``finish()`` stores the open packs and waits for every upload.
* **async side** (code on the event loop)::

      async with Packer(repo) as packer:
          await packer.add(PackKind.DATA, cid, data)   # False: the index or this packer has it
      await repo.flush_index()                          # the caller writes the index file

  compression and sealing run in the packer's own pool of ``workers`` threads (one by default),
  one chunk per worker at a time, so memory stays bounded by ``workers`` chunks, an open pack per
  kind and worker, and ``max_inflight`` packs being uploaded. ``flush()`` stores the open packs and
  waits for their uploads; leaving the ``async with`` block does the same (or, on an exception,
  waits for the uploads in flight and drops the open packs).

Dedup: a chunk is stored only if ``Index.claim`` says so: not in the index, and not claimed before
in this packer's claim set (the archiver's readers claim with the same set). The first error of an
upload or of a store is kept: ``check()`` raises it (the thread side), ``add``/``flush`` raise it
(the async side).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

from tiervault.core.chunker import ChunkerParams
from tiervault.core.crypto import MasterKeys
from tiervault.core.format.pack import PackEntry, PackKind, PackWriter
from tiervault.repo.index import Index


class PackTarget(Protocol):
    """What a packer writes into (``Repository`` is one)."""

    @property
    def index(self) -> Index: ...
    @property
    def keys(self) -> MasterKeys: ...
    @property
    def pack_size(self) -> int: ...
    @property
    def chunker_params(self) -> ChunkerParams: ...
    @property
    def put_needs_bytes(self) -> bool: ...

    async def save_pack(
        self, kind: PackKind, salt: bytes, data: bytes | memoryview, entries: list[PackEntry]
    ) -> str: ...


@dataclass(slots=True)
class PackStats:
    """What a packer stored: new chunks and their plain bytes, packs and their stored bytes."""

    chunks: int = 0
    bytes: int = 0
    packs: int = 0
    stored: int = 0


class PackSink:
    """One open pack of one kind, used by one thread at a time (``Packer.sink``)."""

    __slots__ = (
        "_capacity",
        "_claims",
        "_index",
        "_key",
        "_pack_size",
        "_packer",
        "chunks",
        "kind",
        "nbytes",
        "writer",
    )

    def __init__(self, packer: Packer, kind: PackKind) -> None:
        repo = packer.repo
        self._packer, self.kind = packer, kind
        self._index, self._claims = repo.index, packer.claims
        self._key = repo.keys.encryption
        self._pack_size = repo.pack_size
        # a pack never exceeds pack_size + one chunk; twice that leaves room for incompressible data
        self._capacity = 2 * repo.pack_size + repo.chunker_params.max_size
        self.writer: PackWriter | None = None
        self.chunks = self.nbytes = 0

    def add(self, cid: bytes, data: bytes | memoryview) -> bool:
        """Store ``data`` unless the index or this packer already has it; True if it is stored."""
        if self._index.claim(cid, self._claims):
            self.store(cid, data)
            return True
        return False

    def store(self, cid: bytes, data: bytes | memoryview) -> None:
        """Store a chunk the caller has claimed (compressed and sealed now; ``data`` is not kept)."""
        writer = self.writer
        if writer is None:
            writer = self.writer = PackWriter(self._key, self.kind, capacity=self._capacity)
        writer.add(cid, data)
        self.chunks += 1
        self.nbytes += len(data)
        if writer.size >= self._pack_size or writer.full:
            self.flush()

    def flush(self) -> None:
        """Hand the open pack, if it holds anything, to the upload (waits for a slot)."""
        if self.writer is not None and len(self.writer):
            writer, self.writer = self.writer, None
            self._packer.submit(writer)


class Packer:
    """Writes packs into ``repo``; see the module docstring for the two sides."""

    def __init__(
        self,
        repo: PackTarget,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        max_inflight: int = 2,
        claims: set[bytes] | None = None,
        workers: int = 1,
    ) -> None:
        self.repo = repo
        self.loop = loop or asyncio.get_running_loop()
        #: chunk ids this packer (and whoever shares the set) has promised to store
        self.claims: set[bytes] = set() if claims is None else claims
        #: the first upload or store failure; see ``check``
        self.error: BaseException | None = None
        self._to_bytes = repo.put_needs_bytes
        self._slots = threading.BoundedSemaphore(max(1, max_inflight))
        self._lock = threading.Lock()
        self._futures: list[cf.Future[Any]] = []
        self._sinks: list[PackSink] = []
        self._packs = self._stored = 0
        self._workers = max(1, workers)
        self._pool: cf.ThreadPoolExecutor | None = None
        self._pool_local = threading.local()
        self._pool_sinks: list[PackSink] = []
        self._dropped = PackStats()  # what the pool's sinks stored before a flush let them go
        self._admit = asyncio.Semaphore(self._workers)

    # ------------------------------------------------------------------ thread side

    def sink(self, kind: PackKind) -> PackSink:
        """A new sink of ``kind`` for the calling thread; ``finish`` flushes it."""
        sink = PackSink(self, kind)
        with self._lock:
            self._sinks.append(sink)
        return sink

    def check(self) -> None:
        """Raise the first failure, if any."""
        if self.error is not None:
            raise self.error

    def fail(self, exc: BaseException) -> None:
        """Record a failure of the caller's own (a store that raised): the first one is kept."""
        with self._lock:
            if self.error is None:
                self.error = exc

    def submit(self, writer: PackWriter) -> None:
        """Finish ``writer``'s pack in this thread and schedule its upload on the loop (at most
        ``max_inflight`` in flight: waits for a slot). Never call it on the event loop."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            raise RuntimeError("Packer.submit blocks: call it from a worker thread (or use await add)")
        self.check()
        entries = list(writer.entries)
        view = writer.finish()
        # a store that needs bytes would copy the pack during the upload, with the writer's buffer
        # still alive: copy here, off the event loop, and free the buffer now (half the memory)
        data: bytes | memoryview = bytes(view) if self._to_bytes else view
        del view
        self._slots.acquire()
        with self._lock:
            self._packs += 1
            self._stored += len(data)
        fut = asyncio.run_coroutine_threadsafe(
            self.repo.save_pack(writer.kind, writer.salt, data, entries), self.loop
        )

        def done(f: cf.Future[Any]) -> None:
            self._slots.release()
            exc = None if f.cancelled() else f.exception()
            if f.cancelled() or exc is not None:
                self.fail(exc or asyncio.CancelledError())

        fut.add_done_callback(done)
        with self._lock:
            self._futures = [f for f in self._futures if not f.done()]
            self._futures.append(fut)

    def _pending_uploads(self) -> list[cf.Future[Any]]:
        with self._lock:
            return list(self._futures)

    def wait_all(self, *, check: bool = True) -> None:
        """Wait for every upload submitted so far; then raise the first failure (``check``)."""
        for f in self._pending_uploads():
            try:
                f.result()
            except BaseException:
                pass
        if check:
            self.check()

    def _flush_sinks(self, *, threads: bool) -> None:
        with self._lock:
            sinks = self._pool_sinks + (self._sinks if threads else [])
        for sink in sorted(sinks, key=lambda s: s.kind):  # data before trees
            sink.flush()

    def finish(self) -> None:
        """Thread side: store every open pack, wait for all uploads, raise the first failure. Call
        it once no thread adds any more."""
        self.check()
        self._flush_sinks(threads=True)
        self.wait_all()

    def stats(self) -> PackStats:
        """Counters so far (exact once no thread adds any more)."""
        with self._lock:
            sinks = self._sinks + self._pool_sinks
            packs, stored = self._packs, self._stored
        chunks = self._dropped.chunks + sum(s.chunks for s in sinks)
        return PackStats(chunks, self._dropped.bytes + sum(s.nbytes for s in sinks), packs, stored)

    # ------------------------------------------------------------------ async side

    def _add_here(self, kind: PackKind, cid: bytes, data: bytes | memoryview) -> bool:
        sinks: dict[PackKind, PackSink] | None = getattr(self._pool_local, "sinks", None)
        if sinks is None:
            sinks = self._pool_local.sinks = {}
        sink = sinks.get(kind)
        if sink is None:
            sink = sinks[kind] = PackSink(self, kind)
            with self._lock:
                self._pool_sinks.append(sink)
        try:
            return sink.add(cid, data)
        except BaseException as exc:  # the sink may be half-written: nothing more is stored
            self.fail(exc)
            raise

    async def add(self, kind: PackKind, cid: bytes, data: bytes | memoryview) -> bool:
        """Store one chunk of ``kind`` (``cid`` keyed by the caller: ``keys.chunk_id`` for data,
        ``tree_key`` for trees) unless the index or this packer has it; True if it is stored.
        ``data`` is compressed and sealed before this returns; it may wait for an upload slot."""
        self.check()
        async with self._admit:
            if self._pool is None:
                self._pool = cf.ThreadPoolExecutor(self._workers, thread_name_prefix="tiervault-pack")
            return await self.loop.run_in_executor(self._pool, self._add_here, kind, cid, data)

    async def _stop_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:  # an add whose caller was cancelled may still run: wait for it
            await asyncio.to_thread(pool.shutdown, wait=True)
        self._pool_local = threading.local()

    async def _await_uploads(self) -> None:
        futures = self._pending_uploads()
        await asyncio.gather(*(asyncio.wrap_future(f) for f in futures), return_exceptions=True)

    def _let_pool_sinks_go(self) -> None:
        with self._lock:
            for sink in self._pool_sinks:
                self._dropped.chunks += sink.chunks
                self._dropped.bytes += sink.nbytes
            self._pool_sinks = []

    async def flush(self) -> None:
        """Store the packs opened by ``add`` and wait for all uploads; raise the first failure. The
        packer can be used again afterwards. The index file is the caller's (``flush_index``); the
        thread side's sinks are ``finish``'s."""
        await self._stop_pool()
        try:
            await asyncio.to_thread(self._flush_sinks, threads=False)
        finally:
            await self._await_uploads()
        self._let_pool_sinks_go()
        self.check()

    async def aclose(self, *, store: bool = True) -> None:
        """``flush`` (``store``), or wait for the uploads in flight and drop the open packs."""
        if store:
            await self.flush()
            return
        await self._stop_pool()
        await self._await_uploads()
        self._let_pool_sinks_go()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose(store=exc_type is None)
