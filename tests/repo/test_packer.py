"""The pack writer (``repo/packer.py``), on a real repository over the in-memory backend: both its
sides store packs that land, are indexed and read back; claims deduplicate; upload failures surface;
uploads in flight stay within their bound."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

from tests.support.memory import FaultyBackend, MemoryBackend
from tiervault.backend.base import Backend
from tiervault.core.crypto import ScryptParams, chunk_id
from tiervault.core.format.pack import MAX_ENTRIES, PackKind
from tiervault.errors import BackendError
from tiervault.repo.packer import Packer
from tiervault.repo.repository import Repository

PASSWORD = b"packer tests"
MiB = 1 << 20


async def _repo(backend: Backend) -> Repository:
    return await Repository.init(backend, PASSWORD, pack_size=1 * MiB, kdf=ScryptParams(log_n=10))


@pytest.fixture
async def faulty() -> AsyncIterator[FaultyBackend]:
    async with MemoryBackend() as inner:
        yield FaultyBackend(inner)


def _chunks(repo: Repository, n: int, size: int = 300 * 1024) -> list[tuple[bytes, bytes]]:
    out = []
    for _ in range(n):
        data = os.urandom(size)  # incompressible: a pack holds about pack_size / size of them
        out.append((chunk_id(repo.keys.chunk_id, data), data))
    return out


def _names(backend: FaultyBackend, prefix: str) -> list[str]:
    assert isinstance(backend.inner, MemoryBackend)
    return sorted(n for n in backend.inner.objects if n.startswith(prefix))


async def test_async_side_packs_land_and_are_indexed(faulty: FaultyBackend) -> None:
    repo = await _repo(faulty)
    chunks = _chunks(repo, 10)
    tree = b'{"nodes":[],"v":1}'
    tid = chunk_id(repo.tree_key, tree)
    async with Packer(repo) as packer:
        assert all([await packer.add(PackKind.DATA, cid, data) for cid, data in chunks])
        assert await packer.add(PackKind.META, tid, tree)
    assert await repo.flush_index() is not None  # the caller's part
    data_packs = _names(faulty, "data/")
    assert len(data_packs) >= 3 and len(_names(faulty, "meta/")) == 1  # 3 MiB in packs of 1 MiB
    stats = packer.stats()
    assert (stats.chunks, stats.bytes) == (11, 10 * 300 * 1024 + len(tree))
    assert stats.packs == len(data_packs) + 1
    again = await Repository.open(faulty, PASSWORD)  # what the index file says
    for cid, data in chunks:
        loc = again.locate(cid)
        assert loc.pack.kind is PackKind.DATA and loc.pack.name in data_packs
        assert loc.entry.raw_length == len(data)
        assert await again.read_blob(cid) == data
    assert again.locate(tid).pack.kind is PackKind.META
    assert await again.load_tree_data(tid) == tree


async def test_thread_side_sinks_share_one_upload_bound(faulty: FaultyBackend) -> None:
    repo = await _repo(faulty)
    chunks = _chunks(repo, 8)
    packer = Packer(repo, max_inflight=1)

    def work() -> None:  # two sinks of one kind, as two saver threads would own them
        first, second = packer.sink(PackKind.DATA), packer.sink(PackKind.DATA)
        for i, (cid, data) in enumerate(chunks):
            assert (first if i % 2 else second).add(cid, data)
        packer.finish()

    await asyncio.to_thread(work)
    for cid, data in chunks:
        assert await repo.read_blob(cid) == data
    assert packer.stats().chunks == 8 and packer.stats().packs == len(_names(faulty, "data/"))


async def test_a_pack_is_finished_at_max_entries(faulty: FaultyBackend) -> None:
    repo = await _repo(faulty)
    packer = Packer(repo)

    def work() -> None:
        sink = packer.sink(PackKind.DATA)
        for i in range(MAX_ENTRIES + 1):
            sink.store(i.to_bytes(32, "little"), b"")  # claimed by the caller; tiny, so not pack_size
        packer.finish()

    await asyncio.to_thread(work)
    assert packer.stats().packs == 2
    assert repo.locate((MAX_ENTRIES).to_bytes(32, "little")).pack != repo.locate(bytes(32)).pack


async def test_claims_deduplicate(faulty: FaultyBackend) -> None:
    repo = await _repo(faulty)
    (cid, data), (other, more) = _chunks(repo, 2, size=1000)
    claims: set[bytes] = set()
    async with Packer(repo, claims=claims) as packer:
        assert await packer.add(PackKind.DATA, cid, data)
        assert not await packer.add(PackKind.DATA, cid, data)  # claimed by this packer
        assert claims == {cid}
    assert packer.stats().chunks == 1
    async with Packer(repo) as later:
        assert not await later.add(PackKind.DATA, cid, data)  # now in the index
        claims_of_a_reader = later.claims
        claims_of_a_reader.add(other)  # a reader of the same session claimed it: it stores it
        assert not await later.add(PackKind.DATA, other, more)
    assert later.stats().chunks == 0 and later.stats().packs == 0
    assert len(_names(faulty, "data/")) == 1


async def test_an_upload_failure_surfaces_on_the_async_side(faulty: FaultyBackend) -> None:
    repo = await _repo(faulty)
    faulty.fail_call("put_if_absent", error=BackendError("disk full"))
    packer = Packer(repo)
    with pytest.raises(BackendError, match="disk full"):
        async with packer:
            for cid, data in _chunks(repo, 12):
                await packer.add(PackKind.DATA, cid, data)
    assert faulty.injected and faulty.injected[0].startswith("put_if_absent data/")
    with pytest.raises(BackendError, match="disk full"):  # and it stays failed
        await packer.add(PackKind.DATA, *_chunks(repo, 1)[0])


async def test_an_upload_failure_surfaces_on_the_thread_side(faulty: FaultyBackend) -> None:
    repo = await _repo(faulty)
    chunks = _chunks(repo, 2)
    faulty.fail_call("put_if_absent", error=BackendError("disk full"))
    packer = Packer(repo)

    def work() -> None:
        sink = packer.sink(PackKind.DATA)
        for cid, data in chunks:
            sink.add(cid, data)
        packer.finish()

    with pytest.raises(BackendError, match="disk full"):
        await asyncio.to_thread(work)
    assert isinstance(packer.error, BackendError)
    with pytest.raises(BackendError):
        packer.check()


class _Gated(FaultyBackend):
    """Holds every pack upload until ``limit`` of them are in flight (or all that are left), so the
    bound is reached; records the most in flight at once."""

    def __init__(self, inner: Backend, limit: int, total: int) -> None:
        super().__init__(inner)
        self.limit, self.total, self.in_flight, self.done, self.most = limit, total, 0, 0, 0
        self._cond = asyncio.Condition()

    async def put_if_absent(self, name: str, data: bytes | memoryview) -> bool:
        if not name.startswith(("data/", "meta/")):
            return await super().put_if_absent(name, data)
        async with self._cond:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            self._cond.notify_all()
            await self._cond.wait_for(lambda: self.in_flight >= min(self.limit, self.total - self.done))
        try:
            return await super().put_if_absent(name, data)
        finally:
            async with self._cond:
                self.in_flight -= 1
                self.done += 1
                self._cond.notify_all()


@pytest.mark.parametrize("limit", [1, 2])
async def test_uploads_in_flight_stay_within_the_bound(limit: int) -> None:
    async with MemoryBackend() as inner:
        gated = _Gated(inner, limit, total=12)
        repo = await _repo(gated)
        chunks = _chunks(repo, 12, size=MiB)  # every chunk fills a pack
        packer = Packer(repo, max_inflight=limit)

        def saver(mine: list[tuple[bytes, bytes]]) -> None:  # four savers, each with its own sink
            sink = packer.sink(PackKind.DATA)
            for cid, data in mine:
                sink.store(cid, data)

        await asyncio.gather(*(asyncio.to_thread(saver, chunks[i::4]) for i in range(4)))
        await asyncio.to_thread(packer.finish)
        assert gated.most == limit
        assert packer.stats().packs == 12
        # and the async side keeps the same bound
        more = _chunks(repo, 6, size=MiB)
        gated.total += 6
        async with Packer(repo, max_inflight=limit) as second:
            for cid, data in more:
                await second.add(PackKind.DATA, cid, data)
        assert gated.most == limit
        for cid, data in chunks + more:
            assert await repo.read_blob(cid) == data


async def test_the_thread_side_refuses_the_event_loop(faulty: FaultyBackend) -> None:
    repo = await _repo(faulty)
    packer = Packer(repo)
    sink = packer.sink(PackKind.DATA)
    cid, data = _chunks(repo, 1, size=MiB)[0]
    with pytest.raises(RuntimeError, match="worker thread"):
        sink.store(cid, data)  # it would wait on the loop for a slot that only the loop frees
