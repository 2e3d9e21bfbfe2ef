"""The storage contract of ``tiervault.backend.base``, checked against every backend.

Add a backend by adding an entry to ``BACKENDS`` (an async context manager factory keyed by name).
Factories receive a ``BackendEnv``; those that cannot honour its fake clock list themselves in
``REAL_TIME_BACKENDS`` and the tests that need to move time are skipped for them.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from tests.support import FakeClock
from tests.support.azurite import Azurite, unique_container_name
from tests.support.memory import FaultyBackend, MemoryBackend

import tiervault
import tiervault.backend.local.listing as listing_mod
from tiervault.backend.azure import AzureBackend
from tiervault.backend.base import Backend, Capabilities, Lease, ObjectInfo, RehydratePriority, Tier
from tiervault.backend.local import LocalBackend, LocalLease, _translate
from tiervault.backend.retry import RetryingBackend
from tiervault.cache import CacheBackend
from tiervault.errors import (
    BackendError,
    LeaseHeldError,
    ObjectArchivedError,
    ObjectNotFoundError,
    PermissionDeniedError,
    TransientBackendError,
    UsageError,
)
from tiervault.repo.cachepolicy import REPOSITORY_CACHE_POLICY

# ------------------------------------------------------------------------------------ backends


@dataclass(frozen=True)
class BackendEnv:
    """What a factory may use: a private scratch directory, the test's fake clock, options, and the
    session's Azurite (only for the backends in ``AZURITE_BACKENDS``)."""

    scratch: Path
    clock: FakeClock
    rehydrate_seconds: float = 0.0
    azurite: Azurite | None = None


BackendFactory = Callable[[BackendEnv], AbstractAsyncContextManager[Backend]]


@asynccontextmanager
async def _local(env: BackendEnv) -> AsyncIterator[Backend]:
    async with LocalBackend(
        env.scratch / "store", clock=env.clock, rehydrate_seconds=env.rehydrate_seconds, fsync=True
    ) as backend:
        yield backend


@asynccontextmanager
async def _memory(env: BackendEnv) -> AsyncIterator[Backend]:
    async with MemoryBackend(clock=env.clock, rehydrate_seconds=env.rehydrate_seconds) as backend:
        yield backend


@asynccontextmanager
async def _faulty(env: BackendEnv) -> AsyncIterator[Backend]:
    """A ``FaultyBackend`` with no fault armed must be a transparent wrapper."""
    async with FaultyBackend(MemoryBackend(clock=env.clock, rehydrate_seconds=env.rehydrate_seconds)) as b:
        yield b


@asynccontextmanager
async def _retrying(env: BackendEnv) -> AsyncIterator[Backend]:
    """The retry decorator over a local store must keep the whole contract."""
    inner = LocalBackend(env.scratch / "store", clock=env.clock, rehydrate_seconds=env.rehydrate_seconds)
    async with inner:
        yield RetryingBackend(inner)


@asynccontextmanager
async def _cached(env: BackendEnv) -> AsyncIterator[Backend]:
    """The stack ``api._backend_for`` builds, disk tier on, over a local store: the same contract."""
    inner = LocalBackend(env.scratch / "store", clock=env.clock, rehydrate_seconds=env.rehydrate_seconds)
    async with inner:
        yield CacheBackend(
            RetryingBackend(inner), env.scratch / "cache", policy=REPOSITORY_CACHE_POLICY, repository_key="k"
        )


#: what the "azurite-prefix" store holds outside its prefix: it must stay invisible and untouched
DECOYS = ("some/prefix", "some/prefixed/x", "some/other/prefix/x", "outside")


@asynccontextmanager
async def _azurite_store(env: BackendEnv, prefix: str) -> AsyncIterator[Backend]:
    """An ``AzureBackend`` on a fresh container of the session's Azurite, built from its address.

    No SDK retries (``retry_total=0``, as ``tests/support/azurite.py`` advises): a failure shows at
    once. Azurite rehydrates instantly, which is what ``rehydrate_seconds=0`` asks for; its clock is
    real, so the tests that move time skip it (``REAL_TIME_BACKENDS``), and ``tests/azure`` checks
    leases on real time. With a ``prefix``, blobs outside it (``DECOYS``) must stay out of sight.
    """
    assert env.azurite is not None
    if env.rehydrate_seconds:
        pytest.skip("Azurite rehydrates instantly: a rehydration delay cannot be emulated")
    container = unique_container_name(f"conformance-{env.scratch.name}")
    whole_url = f"azurite://127.0.0.1:{env.azurite.port}/{container}"
    url = f"{whole_url}/{prefix}" if prefix else whole_url
    async with AzureBackend.from_url(url, retry_total=0) as backend:
        assert await backend.create_container() is True
        try:
            if prefix:
                async with AzureBackend.from_url(whole_url, retry_total=0) as whole:
                    for decoy in DECOYS:
                        assert await whole.put_if_absent(decoy, decoy.encode())
            yield backend
            if prefix:
                async with AzureBackend.from_url(whole_url, retry_total=0) as whole:
                    for decoy in DECOYS:  # nothing done through the prefix reached them
                        assert await whole.get(decoy) == decoy.encode()
        finally:
            await asyncio.to_thread(env.azurite.delete_container, container)


def _azurite(env: BackendEnv) -> AbstractAsyncContextManager[Backend]:
    return _azurite_store(env, "")


def _azurite_prefix(env: BackendEnv) -> AbstractAsyncContextManager[Backend]:
    """The same under ``some/prefix/`` (``azurite://HOST:PORT/CONTAINER/some/prefix``)."""
    return _azurite_store(env, "some/prefix")


BACKENDS: dict[str, BackendFactory] = {
    "local": _local,
    "memory": _memory,
    "faulty": _faulty,
    "retrying": _retrying,
    "cached": _cached,
    "azurite": _azurite,
    "azurite-prefix": _azurite_prefix,
}
#: Whether each backend is a network store (``capabilities.remote``): what it is, not what it says.
REMOTE: dict[str, bool] = {
    "local": False,
    "memory": False,
    "faulty": False,
    "retrying": False,
    "cached": False,
    "azurite": True,
    "azurite-prefix": True,
}
#: Backends whose time cannot be faked (a real service): clock-driven tests skip them.
REAL_TIME_BACKENDS: set[str] = {"azurite", "azurite-prefix"}
#: Backends that need the session's Azurite (``tests/conftest.py``): started only when one runs.
AZURITE_BACKENDS: set[str] = {"azurite", "azurite-prefix"}

MakeBackend = Callable[..., Awaitable[Backend]]


@pytest.fixture(params=list(BACKENDS))
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_backend(
    backend_kind: str, tmp_path: Path, fake_clock: FakeClock, request: pytest.FixtureRequest
) -> AsyncIterator[MakeBackend]:
    """``await make_backend(rehydrate_seconds=...)``: a fresh, empty store of the current kind."""
    azurite = request.getfixturevalue("azurite") if backend_kind in AZURITE_BACKENDS else None
    counter = 0
    async with AsyncExitStack() as stack:

        async def make(*, rehydrate_seconds: float = 0.0) -> Backend:
            nonlocal counter
            counter += 1
            scratch = tmp_path / f"b{counter}"
            scratch.mkdir()
            env = BackendEnv(scratch, fake_clock, rehydrate_seconds, azurite)
            return await stack.enter_async_context(BACKENDS[backend_kind](env))

        yield make


@pytest.fixture
async def backend(make_backend: MakeBackend) -> Backend:
    return await make_backend()


@pytest.fixture
def clock(backend_kind: str, fake_clock: FakeClock) -> FakeClock:
    """The fake clock, for tests that move time (skipped where time cannot be faked)."""
    if backend_kind in REAL_TIME_BACKENDS:
        pytest.skip(f"{backend_kind} runs on real time: this test moves a fake clock")
    return fake_clock


async def names(backend: Backend, prefix: str = "") -> set[str]:
    return {info.name async for info in backend.list(prefix)}


async def incomplete(backend: Backend) -> list[str]:
    return [info.name async for info in backend.list_incomplete()]


async def read_stream(backend: Backend, name: str, **kwargs: int | None) -> list[bytes]:
    return [block async for block in backend.open_read(name, **kwargs)]  # type: ignore[arg-type]


#: a lease duration every backend accepts (Azure's leases last 15 to 60 s)
LEASE = 15.0
DATA = bytes(range(256)) * 40 + b"tail"  # 10 244 bytes, every offset distinguishable enough

# -------------------------------------------------------------------------------- the contract


def test_is_a_backend(backend: Backend) -> None:
    assert isinstance(backend, Backend)
    assert isinstance(backend.location, str)
    assert backend.location


# ---------------------------------------------------------------------------- capabilities


def test_declares_its_capabilities(backend: Backend, backend_kind: str) -> None:
    can = backend.capabilities
    assert isinstance(can, Capabilities)
    assert backend.capabilities == can  # constant
    assert can.remote is REMOTE[backend_kind]


async def test_declared_tiers_are_real(backend: Backend) -> None:
    """A backend declaring tiers keeps what ``set_tier`` sets; one without reports ``HOT``."""
    await backend.put_if_absent("data/t", b"tiered")
    await backend.set_tier("data/t", Tier.COOL)
    expected = Tier.COOL if backend.capabilities.tiers else Tier.HOT
    assert (await backend.stat("data/t")).tier is expected
    assert [i.tier async for i in backend.list("data/")] == [expected]
    assert await backend.get("data/t") == b"tiered"


async def test_declared_leases_are_exclusive(backend: Backend) -> None:
    if not backend.capabilities.leases:
        with pytest.raises(BackendError):
            await backend.acquire_lease("locks/cap", duration=LEASE)
        return
    lease = await backend.acquire_lease("locks/cap", duration=LEASE)
    with pytest.raises(LeaseHeldError):
        await backend.acquire_lease("locks/cap", duration=LEASE)
    await lease.release()
    again = await backend.acquire_lease("locks/cap", duration=LEASE)
    await again.release()


async def test_create_container_is_idempotent(backend: Backend) -> None:
    """The store exists already (an Azure container was created by the factory): False, and the
    objects in it are untouched; a store without a container always answers False."""
    await backend.put_if_absent("kept", b"x")
    assert await backend.create_container() is False
    assert await backend.create_container() is False
    assert await backend.get("kept") == b"x"


async def test_decorators_report_the_capabilities_they_wrap(backend: Backend, tmp_path: Path) -> None:
    """The stack ``api._backend_for`` builds says what the store below it can do."""
    for cache_dir in (None, tmp_path / "cache"):
        stacked = CacheBackend(
            RetryingBackend(backend), cache_dir, policy=REPOSITORY_CACHE_POLICY, repository_key="k"
        )
        assert stacked.capabilities == RetryingBackend(backend).capabilities == backend.capabilities
        assert await stacked.create_container() is False  # forwarded: the store exists already


async def test_put_if_absent_creates_once_and_never_overwrites(backend: Backend) -> None:
    assert await backend.put_if_absent("data/ab/ab01", b"first") is True
    assert await backend.put_if_absent("data/ab/ab01", b"second, longer content") is False
    assert await backend.get("data/ab/ab01") == b"first"
    assert (await backend.stat("data/ab/ab01")).size == 5


async def test_put_accepts_memoryview_and_empty_objects(backend: Backend) -> None:
    buf = bytearray(b"xxhello worldxx")
    assert await backend.put_if_absent("mv", memoryview(buf)[2:-2]) is True
    assert await backend.get("mv") == b"hello world"
    assert await backend.put_if_absent("empty", b"") is True
    assert await backend.get("empty") == b""
    assert (await backend.stat("empty")).size == 0
    assert await read_stream(backend, "empty") == []


async def test_concurrent_put_if_absent_has_exactly_one_winner(backend: Backend) -> None:
    payloads = [f"writer {i} ".encode() * (i + 1) for i in range(8)]
    results = await asyncio.gather(*(backend.put_if_absent("config", p) for p in payloads))
    assert sorted(results) == [False] * 7 + [True]
    winner = payloads[results.index(True)]
    assert await backend.get("config") == winner


async def test_concurrent_puts_of_different_names_all_succeed(backend: Backend) -> None:
    results = await asyncio.gather(
        *(backend.put_if_absent(f"data/{i:02x}/obj", b"%d" % i) for i in range(16))
    )
    assert all(results)
    assert await names(backend, "data/") == {f"data/{i:02x}/obj" for i in range(16)}


async def test_get_whole_and_ranged(backend: Backend) -> None:
    await backend.put_if_absent("obj", DATA)
    size = len(DATA)
    assert await backend.get("obj") == DATA
    assert await backend.get("obj", offset=100) == DATA[100:]
    assert await backend.get("obj", offset=100, length=50) == DATA[100:150]
    assert await backend.get("obj", length=7) == DATA[:7]
    assert await backend.get("obj", offset=5, length=0) == b""
    # ranges beyond the end return what exists
    assert await backend.get("obj", offset=size - 3, length=10) == DATA[-3:]
    assert await backend.get("obj", offset=size) == b""
    assert await backend.get("obj", offset=size + 1000, length=10) == b""


async def test_get_rejects_negative_ranges(backend: Backend) -> None:
    await backend.put_if_absent("obj", DATA)
    with pytest.raises(UsageError):
        await backend.get("obj", offset=-1)
    with pytest.raises(UsageError):
        await backend.get("obj", length=-1)


@pytest.mark.parametrize(
    ("offset", "length", "block_size"),
    [(0, None, 1000), (0, None, 1 << 20), (3, 40, 1), (100, 2500, 999), (len(DATA) - 5, 100, 2), (0, 0, 7)],
)
async def test_open_read_streams_the_same_bytes_in_bounded_blocks(
    backend: Backend, offset: int, length: int | None, block_size: int
) -> None:
    await backend.put_if_absent("obj", DATA)
    expected = await backend.get("obj", offset=offset, length=length)
    blocks = await read_stream(backend, "obj", offset=offset, length=length, block_size=block_size)
    assert b"".join(blocks) == expected
    assert all(0 < len(b) <= block_size for b in blocks)
    assert len(blocks) >= -(-len(expected) // block_size)


async def test_open_read_of_missing_object(backend: Backend) -> None:
    with pytest.raises(ObjectNotFoundError):
        await read_stream(backend, "nope")


async def test_open_read_can_be_abandoned_midway(backend: Backend) -> None:
    await backend.put_if_absent("obj", DATA)
    stream = backend.open_read("obj", block_size=100)
    assert await anext(stream) == DATA[:100]
    await stream.aclose()  # type: ignore[attr-defined]
    assert await backend.get("obj", length=3) == DATA[:3]


async def test_stat(backend: Backend) -> None:
    await backend.put_if_absent("snapshots/s1", b"12345")
    info = await backend.stat("snapshots/s1")
    assert info == ObjectInfo("snapshots/s1", 5, Tier.HOT, info.modified, False, info.tier_changed)
    assert info.modified.tzinfo is not None
    assert info.modified.utcoffset() == timedelta(0)
    assert info.modified > datetime(2020, 1, 1, tzinfo=UTC)  # a real timestamp, not the epoch


LISTING = [
    "config",
    "snap",
    "snapshots/a",
    "snapshots/b",
    "snapshots-old/c",
    "data/ab/ab1",
    "data/ab/ab2",
    "data/ac/ac1",
    "data/ab.txt",
    "datafile",
    "keys/deep/er/k",
]


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("", set(LISTING)),
        ("snapshots/", {"snapshots/a", "snapshots/b"}),
        ("snapshots", {"snapshots/a", "snapshots/b", "snapshots-old/c"}),
        ("snap", {"snap", "snapshots/a", "snapshots/b", "snapshots-old/c"}),
        ("data/", {"data/ab/ab1", "data/ab/ab2", "data/ac/ac1", "data/ab.txt"}),
        ("data/ab", {"data/ab/ab1", "data/ab/ab2", "data/ab.txt"}),
        ("data/ab/", {"data/ab/ab1", "data/ab/ab2"}),
        ("data/ab/ab1", {"data/ab/ab1"}),
        ("data", {"data/ab/ab1", "data/ab/ab2", "data/ac/ac1", "data/ab.txt", "datafile"}),
        ("keys/", {"keys/deep/er/k"}),
        ("config", {"config"}),
        ("nothing/", set()),
        ("nothing", set()),
        ("data/zz/", set()),
    ],
)
async def test_list_by_prefix(backend: Backend, prefix: str, expected: set[str]) -> None:
    for i, name in enumerate(LISTING):
        await backend.put_if_absent(name, b"x" * i)
    infos = [info async for info in backend.list(prefix)]
    assert {i.name for i in infos} == expected
    assert len(infos) == len(expected), "an object was listed twice"
    for info in infos:
        assert info.size == LISTING.index(info.name)
        assert info.tier is Tier.HOT
        assert info.modified.utcoffset() == timedelta(0)
        assert not info.rehydrating


async def test_list_reports_tiers_and_hides_backend_metadata(backend: Backend) -> None:
    for name in ("a/hot", "a/cool", "a/arch", "lock"):
        await backend.put_if_absent(name, b"x")
    await backend.set_tier("a/cool", Tier.COOL)
    await backend.set_tier("a/arch", Tier.ARCHIVE)
    lease = await backend.acquire_lease("lock", duration=30)
    infos = {i.name: i async for i in backend.list()}
    assert set(infos) == {"a/hot", "a/cool", "a/arch", "lock"}
    assert (infos["a/hot"].tier, infos["a/cool"].tier, infos["a/arch"].tier) == (
        Tier.HOT,
        Tier.COOL,
        Tier.ARCHIVE,
    )
    await lease.release()
    assert await names(backend) == {"a/hot", "a/cool", "a/arch", "lock"}


async def test_delete_is_idempotent(backend: Backend) -> None:
    await backend.put_if_absent("index/1", b"abc")
    await backend.put_if_absent("index/2", b"def")
    await backend.delete("index/1")
    with pytest.raises(ObjectNotFoundError):
        await backend.get("index/1")
    with pytest.raises(ObjectNotFoundError):
        await backend.stat("index/1")
    assert await names(backend) == {"index/2"}
    await backend.delete("index/1")
    await backend.delete("never/existed")
    assert await backend.put_if_absent("index/1", b"new") is True
    assert await backend.get("index/1") == b"new"


async def test_delete_forgets_the_tier(backend: Backend) -> None:
    await backend.put_if_absent("data/p", b"old")
    await backend.set_tier("data/p", Tier.ARCHIVE)
    await backend.delete("data/p")
    assert await backend.put_if_absent("data/p", b"new") is True
    assert (await backend.stat("data/p")).tier is Tier.HOT
    assert await backend.get("data/p") == b"new"


async def test_missing_objects(backend: Backend) -> None:
    with pytest.raises(ObjectNotFoundError):
        await backend.get("missing")
    with pytest.raises(ObjectNotFoundError):
        await backend.get("missing/deeper", offset=3, length=2)
    with pytest.raises(ObjectNotFoundError):
        await backend.stat("missing")
    with pytest.raises(ObjectNotFoundError):
        await backend.set_tier("missing", Tier.COOL)
    with pytest.raises(ObjectNotFoundError):
        await backend.rehydrate("missing")
    await backend.delete("missing")
    assert await names(backend, "missing") == set()


async def test_a_directory_like_prefix_is_not_an_object(backend: Backend) -> None:
    await backend.put_if_absent("data/ab/ab1", b"x")
    for name in ("data", "data/ab"):
        with pytest.raises(ObjectNotFoundError):
            await backend.get(name)
        with pytest.raises(ObjectNotFoundError):
            await backend.stat(name)
        await backend.delete(name)
    assert await backend.get("data/ab/ab1") == b"x"


async def test_delete_many(backend: Backend) -> None:
    for i in range(5):
        await backend.put_if_absent(f"data/{i:02x}/p", b"%d" % i)
    await backend.set_tier("data/03/p", Tier.ARCHIVE)  # archived objects are deleted too
    await backend.delete_many(["data/00/p", "data/03/p", "data/04/p", "never/existed", "data/00/p"])
    assert await names(backend) == {"data/01/p", "data/02/p"}
    await backend.delete_many([])
    await backend.delete_many(["data/01/p", "data/02/p"])
    assert await names(backend) == set()


async def test_tier_changed_is_reported_by_stat_and_list(backend: Backend) -> None:
    """Every store says when an object entered its tier: its creation until it moves, then the move
    (a real store's own ``access_tier_change_time`` on Azurite), the same in ``stat`` and ``list``."""
    await backend.put_if_absent("data/tc", b"tiered")
    first = await backend.stat("data/tc")
    assert first.tier_changed is not None and first.tier_changed.utcoffset() == timedelta(0)
    assert first.tier_changed > datetime(2020, 1, 1, tzinfo=UTC)
    await backend.set_tier_many(["data/tc"], Tier.COOL)
    moved = await backend.stat("data/tc")
    assert moved.tier_changed is not None  # (local: file mtimes are real time, moves its clock)
    listed = {i.name: i.tier_changed async for i in backend.list("data/")}
    assert listed == {"data/tc": moved.tier_changed}


async def test_tier_changed_follows_the_clock(backend: Backend, clock: FakeClock) -> None:
    """A move records the backend clock's time; a move to the tier it is in changes nothing; a
    finished rehydration counts as entering Hot when it finished."""
    if not backend.capabilities.tiers:
        pytest.skip("a store without tiers never moves an object")
    await backend.put_if_absent("data/tc", b"tiered")
    start = clock.now()
    clock.advance(1000)
    await backend.set_tier("data/tc", Tier.COOL)
    assert (await backend.stat("data/tc")).tier_changed == datetime.fromtimestamp(start + 1000, UTC)
    clock.advance(1000)
    await backend.set_tier_many(["data/tc"], Tier.COOL)  # already Cool: still since the first move
    assert (await backend.stat("data/tc")).tier_changed == datetime.fromtimestamp(start + 1000, UTC)
    await backend.set_tier_many(["data/tc"], Tier.ARCHIVE)
    archived = await backend.stat("data/tc")
    assert (archived.tier, archived.tier_changed) == (Tier.ARCHIVE, datetime.fromtimestamp(start + 2000, UTC))
    await backend.rehydrate("data/tc")  # rehydrate_seconds 0: readable at once, Hot from now
    clock.advance(10)
    back = await backend.stat("data/tc")
    assert (back.tier, back.tier_changed) == (Tier.HOT, datetime.fromtimestamp(start + 2000, UTC))
    clock.advance(1000)
    await backend.set_tier("data/tc", Tier.COLD)
    assert [i.tier_changed async for i in backend.list("data/")] == [
        datetime.fromtimestamp(start + 3010, UTC)
    ]


async def test_set_tier_many(backend: Backend) -> None:
    for i in range(5):
        await backend.put_if_absent(f"data/{i:02x}/p", b"%d" % i)
    await backend.set_tier_many(["data/00/p", "data/01/p", "data/02/p"], Tier.COOL)
    await backend.set_tier_many(["data/01/p", "data/03/p"], Tier.ARCHIVE)
    await backend.set_tier_many([], Tier.COLD)
    tiers = {i.name: i.tier async for i in backend.list()}
    assert tiers == {
        "data/00/p": Tier.COOL,
        "data/01/p": Tier.ARCHIVE,
        "data/02/p": Tier.COOL,
        "data/03/p": Tier.ARCHIVE,
        "data/04/p": Tier.HOT,
    }
    with pytest.raises(ObjectArchivedError):
        await backend.get("data/03/p")
    assert await backend.get("data/02/p") == b"2"


async def test_set_tier_many_of_a_missing_object(backend: Backend) -> None:
    await backend.put_if_absent("data/p", b"p")
    with pytest.raises(ObjectNotFoundError, match="missing"):
        await backend.set_tier_many(["missing"], Tier.COOL)
    assert (await backend.stat("data/p")).tier is Tier.HOT


@pytest.mark.parametrize("name", ["", "/abs", "a/../b", ".tv-tiers/x", "data/.tmp-1"])
async def test_batches_reject_bad_names(backend: Backend, name: str) -> None:
    with pytest.raises(UsageError):
        await backend.delete_many([name, "data/p"])
    with pytest.raises(UsageError):
        await backend.set_tier_many([name, "data/p"], Tier.COOL)


# ------------------------------------------------------------------------------------- tiers


async def test_cool_and_cold_stay_readable(backend: Backend) -> None:
    await backend.put_if_absent("data/p", DATA)
    for tier in (Tier.COOL, Tier.COLD, Tier.HOT, Tier.COLD):
        await backend.set_tier("data/p", tier)
        assert (await backend.stat("data/p")).tier is tier
        assert await backend.get("data/p", offset=1, length=4) == DATA[1:5]


async def test_archive_makes_an_object_unreadable_until_rehydrated(backend: Backend) -> None:
    await backend.put_if_absent("data/p", DATA)
    await backend.set_tier("data/p", Tier.ARCHIVE)
    info = await backend.stat("data/p")
    assert (info.tier, info.rehydrating, info.size) == (Tier.ARCHIVE, False, len(DATA))
    with pytest.raises(ObjectArchivedError):
        await backend.get("data/p")
    with pytest.raises(ObjectArchivedError):
        await backend.get("data/p", offset=10, length=1)
    with pytest.raises(ObjectArchivedError):
        await read_stream(backend, "data/p")
    # still present: not overwritable, deletable
    assert await backend.put_if_absent("data/p", b"other") is False
    await backend.set_tier("data/p", Tier.ARCHIVE)  # archiving again is harmless
    for tier in (Tier.HOT, Tier.COOL, Tier.COLD):
        with pytest.raises(UsageError, match="rehydrate"):
            await backend.set_tier("data/p", tier)

    await backend.rehydrate("data/p", priority=RehydratePriority.HIGH)  # rehydrate_seconds = 0
    info = await backend.stat("data/p")
    assert (info.tier, info.rehydrating) == (Tier.HOT, False)
    assert await backend.get("data/p") == DATA
    await backend.set_tier("data/p", Tier.COOL)  # an ordinary object again
    assert (await backend.stat("data/p")).tier is Tier.COOL


async def test_rehydrate_is_a_noop_for_readable_objects(backend: Backend) -> None:
    await backend.put_if_absent("hot", b"h")
    await backend.put_if_absent("cool", b"c")
    await backend.set_tier("cool", Tier.COOL)
    await backend.rehydrate("hot")
    await backend.rehydrate("cool")
    assert (await backend.stat("hot")).tier is Tier.HOT
    assert (await backend.stat("cool")).tier is Tier.COOL
    assert not (await backend.stat("cool")).rehydrating


async def test_rehydration_takes_time(make_backend: MakeBackend, clock: FakeClock) -> None:
    backend = await make_backend(rehydrate_seconds=3600)
    await backend.put_if_absent("data/p", DATA)
    await backend.put_if_absent("data/q", DATA)
    await backend.set_tier("data/p", Tier.ARCHIVE)
    await backend.set_tier("data/q", Tier.ARCHIVE)
    await backend.rehydrate("data/p")

    clock.advance(3599)
    info = await backend.stat("data/p")
    assert (info.tier, info.rehydrating) == (Tier.ARCHIVE, True)
    listed = {i.name: i for i in [i async for i in backend.list("data/")]}
    assert listed["data/p"].rehydrating and not listed["data/q"].rehydrating
    with pytest.raises(ObjectArchivedError):
        await backend.get("data/p")
    with pytest.raises(UsageError):
        await backend.set_tier("data/p", Tier.HOT)
    await backend.rehydrate("data/p")  # asking again does not restart the clock

    clock.advance(1)
    info = await backend.stat("data/p")
    assert (info.tier, info.rehydrating) == (Tier.HOT, False)
    assert await backend.get("data/p") == DATA
    # the other archived object was never asked for
    assert (await backend.stat("data/q")).tier is Tier.ARCHIVE
    with pytest.raises(ObjectArchivedError):
        await backend.get("data/q")


async def test_copy_rehydrate_copies_an_archived_object_and_leaves_it_archived(backend: Backend) -> None:
    await backend.put_if_absent("data/p", DATA)
    await backend.set_tier("data/p", Tier.ARCHIVE)
    assert await backend.copy_rehydrate("data/p", "staging/x/p", priority=RehydratePriority.HIGH)
    copy = await backend.stat("staging/x/p")  # rehydrate_seconds = 0 (Azurite: at once)
    assert (copy.tier, copy.rehydrating, copy.size) == (Tier.HOT, False, len(DATA))
    assert await backend.get("staging/x/p") == DATA
    source = await backend.stat("data/p")
    assert (source.tier, source.rehydrating) == (Tier.ARCHIVE, False)  # the source stays archived
    with pytest.raises(ObjectArchivedError):
        await backend.get("data/p")
    # a second copy to the same name changes nothing; deleting the copy leaves the source
    assert not await backend.copy_rehydrate("data/p", "staging/x/p")
    await backend.delete("staging/x/p")
    assert await names(backend) == {"data/p"}


async def test_copy_rehydrate_of_a_readable_or_missing_object(backend: Backend) -> None:
    await backend.put_if_absent("data/hot", DATA)
    assert await backend.copy_rehydrate("data/hot", "staging/hot")
    assert await backend.get("staging/hot") == DATA
    assert (await backend.stat("staging/hot")).tier is Tier.HOT
    with pytest.raises(ObjectNotFoundError):
        await backend.copy_rehydrate("data/missing", "staging/missing")
    with pytest.raises(UsageError):
        await backend.copy_rehydrate("data/hot", "../escape")
    with pytest.raises(UsageError):
        await backend.copy_rehydrate("data/hot", "staging/y", priority=cast(RehydratePriority, "urgent"))


async def test_copy_rehydrate_takes_time(make_backend: MakeBackend, clock: FakeClock) -> None:
    backend = await make_backend(rehydrate_seconds=3600)
    await backend.put_if_absent("data/p", DATA)
    await backend.set_tier("data/p", Tier.ARCHIVE)
    assert await backend.copy_rehydrate("data/p", "staging/p")
    clock.advance(3599)
    copy = await backend.stat("staging/p")
    assert (copy.tier, copy.rehydrating) == (Tier.ARCHIVE, True)
    listed = {i.name: i for i in [i async for i in backend.list("staging/")]}
    assert listed["staging/p"].rehydrating
    with pytest.raises(ObjectArchivedError):
        await backend.get("staging/p")
    assert not await backend.copy_rehydrate("data/p", "staging/p")  # does not restart the clock
    clock.advance(1)
    assert (await backend.stat("staging/p")).tier is Tier.HOT
    assert await backend.get("staging/p") == DATA
    source = await backend.stat("data/p")
    assert (source.tier, source.rehydrating) == (Tier.ARCHIVE, False)


# ------------------------------------------------------------------------------------ leases


async def test_lease_is_exclusive(backend: Backend) -> None:
    lease = await backend.acquire_lease("locks/prune", duration=60)
    assert isinstance(lease, Lease)
    assert lease.name == "locks/prune"
    assert await names(backend, "locks/") == {"locks/prune"}  # the object exists now
    with pytest.raises(LeaseHeldError):
        await backend.acquire_lease("locks/prune", duration=60)
    other = await backend.acquire_lease("locks/other", duration=60)  # other names are independent
    await lease.release()
    again = await backend.acquire_lease("locks/prune", duration=60)
    await again.release()
    await other.release()


async def test_lease_on_existing_object_keeps_its_content(backend: Backend) -> None:
    await backend.put_if_absent("locks/x", b"payload")
    lease = await backend.acquire_lease("locks/x", duration=LEASE)
    assert await backend.get("locks/x") == b"payload"
    await lease.release()


async def test_concurrent_acquire_has_one_winner(backend: Backend) -> None:
    results = await asyncio.gather(
        *(backend.acquire_lease("locks/prune", duration=60) for _ in range(8)), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, Lease)]
    assert len(winners) == 1
    assert all(isinstance(r, LeaseHeldError) for r in results if r not in winners)


async def test_renew_keeps_the_lease_and_release_frees_it(backend: Backend) -> None:
    """What real time allows without waiting for a lease to lapse (``tests/azure`` waits once)."""
    lease = await backend.acquire_lease("locks/prune", duration=LEASE)
    await lease.renew()
    await lease.renew()
    with pytest.raises(LeaseHeldError):
        await backend.acquire_lease("locks/prune", duration=LEASE)
    await lease.release()
    with pytest.raises(LeaseHeldError):
        await lease.renew()
    again = await backend.acquire_lease("locks/prune", duration=LEASE)
    await again.renew()
    await again.release()


async def test_lease_renew_extends_it(backend: Backend, clock: FakeClock) -> None:
    lease = await backend.acquire_lease("locks/prune", duration=10)
    clock.advance(8)
    await lease.renew()
    clock.advance(8)  # 16 s after acquiring: alive only thanks to the renewal
    with pytest.raises(LeaseHeldError):
        await backend.acquire_lease("locks/prune", duration=10)
    clock.advance(3)  # 19 s: 11 s after the renewal
    taken = await backend.acquire_lease("locks/prune", duration=10)
    await taken.release()


async def test_expired_lease_can_be_taken_and_the_loser_cannot_harm_it(
    backend: Backend, clock: FakeClock
) -> None:
    first = await backend.acquire_lease("locks/prune", duration=10)
    clock.advance(10.5)
    second = await backend.acquire_lease("locks/prune", duration=10)
    with pytest.raises(LeaseHeldError):
        await first.renew()
    await first.release()  # the lost lease's release must not remove the new holder's lease
    with pytest.raises(LeaseHeldError):
        await backend.acquire_lease("locks/prune", duration=10)
    await second.renew()
    await second.release()
    third = await backend.acquire_lease("locks/prune", duration=10)
    await third.release()


async def test_expired_but_untaken_lease_can_still_be_renewed(backend: Backend, clock: FakeClock) -> None:
    lease = await backend.acquire_lease("locks/prune", duration=10)
    clock.advance(20)
    await lease.renew()
    with pytest.raises(LeaseHeldError):
        await backend.acquire_lease("locks/prune", duration=10)
    await lease.release()


async def test_release_is_idempotent_and_final(backend: Backend) -> None:
    lease = await backend.acquire_lease("locks/prune", duration=LEASE)
    await lease.release()
    await lease.release()
    with pytest.raises(LeaseHeldError):
        await lease.renew()
    again = await backend.acquire_lease("locks/prune", duration=LEASE)
    await lease.release()  # an old handle does not release the new lease
    with pytest.raises(LeaseHeldError):
        await backend.acquire_lease("locks/prune", duration=LEASE)
    await again.release()


@pytest.mark.parametrize("duration", [0, -1, float("nan"), float("inf")])
async def test_lease_duration_must_be_positive(backend: Backend, duration: float) -> None:
    with pytest.raises(UsageError):
        await backend.acquire_lease("locks/prune", duration=duration)


# --------------------------------------------------------------------------------- bad input

BAD_NAMES = [
    "",
    "/abs",
    "..",
    "a/../b",
    "../escape",
    "a/./b",
    ".",
    "a//b",
    "a/",
    "a\\b",
    "a\x00b",
    ".tv-tiers/x",
    ".tv-leases",
    "data/.tmp-123",
]


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_bad_names_are_rejected_everywhere(backend: Backend, name: str) -> None:
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: backend.put_if_absent(name, b"x"),
        lambda: backend.get(name),
        lambda: read_stream(backend, name),
        lambda: backend.stat(name),
        lambda: backend.delete(name),
        lambda: backend.set_tier(name, Tier.COOL),
        lambda: backend.rehydrate(name),
        lambda: backend.acquire_lease(name, duration=LEASE),
    ]
    for call in calls:
        with pytest.raises(UsageError):
            await call()
    assert await names(backend) == set()


async def test_names_that_look_reserved_below_the_top_level_are_fine(backend: Backend) -> None:
    assert await backend.put_if_absent("data/.tv-tiers", b"x") is True
    assert await backend.put_if_absent("data/..a", b"y") is True
    assert await names(backend) == {"data/.tv-tiers", "data/..a"}


@pytest.mark.parametrize("prefix", ["/data", "../", "a/../", "a\\b"])
async def test_bad_list_prefix(backend: Backend, prefix: str) -> None:
    with pytest.raises(UsageError):
        await names(backend, prefix)


async def test_normal_use_leaves_no_incomplete_writes(backend: Backend) -> None:
    """Puts (new and already present), tiers, leases and deletes leave nothing ``list_incomplete`` sees."""
    assert await backend.put_if_absent("data/ab/ab01", DATA) is True
    assert await backend.put_if_absent("data/ab/ab01", b"again") is False
    await backend.set_tier("data/ab/ab01", Tier.COOL)
    lease = await backend.acquire_lease("locks/x", duration=LEASE)
    await lease.release()
    await backend.delete("data/ab/ab01")
    assert [i async for i in backend.list_incomplete()] == []
    assert list(await backend.delete_incomplete(older_than=0)) == []
    assert await names(backend) == {"locks/x"}


@pytest.mark.parametrize("age", [-1, float("nan"), float("inf"), "1", True])
async def test_delete_incomplete_refuses_a_bad_age(backend: Backend, age: object) -> None:
    with pytest.raises(UsageError):
        await backend.delete_incomplete(older_than=age)  # type: ignore[arg-type]


async def test_aclose_is_idempotent_and_final(make_backend: MakeBackend) -> None:
    """``aclose`` releases the backend for good: a second call is a no-op (no error), and afterwards
    every operation is refused with ``UsageError`` instead of touching the store (or reopening it)."""
    backend = await make_backend()
    assert await backend.put_if_absent("obj", b"x") is True
    lease = await backend.acquire_lease("locks/l", duration=LEASE)
    await lease.release()
    await backend.aclose()
    await backend.aclose()
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: backend.put_if_absent("new", b"y"),
        lambda: backend.get("obj"),
        lambda: read_stream(backend, "obj"),
        lambda: backend.stat("obj"),
        lambda: names(backend),
        lambda: backend.delete("obj"),
        lambda: backend.delete_many(["obj"]),
        lambda: backend.set_tier("obj", Tier.COOL),
        lambda: backend.set_tier_many(["obj"], Tier.COOL),
        lambda: backend.rehydrate("obj"),
        lambda: backend.acquire_lease("locks/l", duration=LEASE),
        lambda: incomplete(backend),
        lambda: backend.delete_incomplete(older_than=0),
    ]
    for call in calls:
        with pytest.raises(UsageError, match="closed"):
            await call()
    await backend.aclose()  # still a no-op after the refusals


# ================================================================================ local only


@pytest.fixture
def store(tmp_path: Path, fake_clock: FakeClock) -> LocalBackend:
    return LocalBackend(tmp_path / "store", clock=fake_clock, fsync=True)


def disk_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


async def test_local_layout(store: LocalBackend, tmp_path: Path, fake_clock: FakeClock) -> None:
    root = tmp_path / "store"
    assert not root.exists(), "the constructor must not touch the disk"
    assert store.location == str(root)
    await store.put_if_absent("data/ab/ab12", b"pack")
    assert (root / "data/ab/ab12").read_bytes() == b"pack"
    await store.set_tier("data/ab/ab12", Tier.ARCHIVE)
    assert json.loads((root / ".tv-tiers/data/ab/ab12.json").read_text()) == {
        "tier": "archive",
        "rehydrate_until": None,
        "changed": fake_clock.now(),
    }
    lease = await store.acquire_lease("locks/prune", duration=30)
    assert isinstance(lease, LocalLease)
    state = json.loads((root / ".tv-leases/locks/prune.json").read_text())
    assert state == {"lease_id": lease.lease_id, "expires": fake_clock.now() + 30}
    await lease.release()
    assert not (root / ".tv-leases/locks/prune.json").exists()
    await store.set_tier("data/ab/ab12", Tier.ARCHIVE)
    await store.delete("data/ab/ab12")
    assert disk_files(root) == {"locks/prune", ".tv-leases/locks/prune.lock"}  # no temp files left


async def test_local_location_is_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    backend = LocalBackend("rel/store")
    assert backend.location == str(tmp_path / "rel/store")
    assert os.path.isabs(backend.location)


async def test_local_leftover_temp_files_are_invisible(store: LocalBackend, tmp_path: Path) -> None:
    root = tmp_path / "store"
    await store.put_if_absent("data/ab/ab1", b"real")
    # a writer killed mid-put leaves its temp file behind
    (root / ".tmp-deadbeef").write_bytes(b"partial")
    (root / "data/ab/.tmp-0123456789abcdef").write_bytes(b"partial")
    (root / ".tv-tiers").mkdir()
    (root / ".tv-tiers/.tmp-cafe").write_bytes(b"{")
    assert await names(store) == {"data/ab/ab1"}
    assert await names(store, "data/ab/") == {"data/ab/ab1"}
    assert (await store.stat("data/ab/ab1")).tier is Tier.HOT
    with pytest.raises(UsageError):
        await store.get("data/ab/.tmp-0123456789abcdef")
    assert await store.put_if_absent("data/ab/ab2", b"fine") is True


async def test_local_lists_large_directories_in_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing_mod, "_LIST_BATCH", 7)
    store = LocalBackend(tmp_path / "s", fsync=False)
    expected = {f"data/ab/{i:03d}" for i in range(50)} | {f"data/{i:02x}" for i in range(20)}
    for name in expected:
        await store.put_if_absent(name, b"x")
    await store.set_tier("data/ab/007", Tier.COLD)
    infos = [i async for i in store.list("data/")]
    assert len(infos) == len(expected)
    assert {i.name for i in infos} == expected
    assert {i.name for i in infos if i.tier is Tier.COLD} == {"data/ab/007"}


async def test_local_list_walks_only_the_prefix_directory(
    store: LocalBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("snapshots/s1", "data/ab/p1", "data/ac/p2", "index/i1"):
        await store.put_if_absent(name, b"x")
    scanned: list[str] = []
    real_scandir = os.scandir

    def spy(path: str) -> object:
        scanned.append(os.path.relpath(path, tmp_path / "store"))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", spy)
    assert await names(store, "snapshots/") == {"snapshots/s1"}
    assert not any(p.startswith(("data", "index")) for p in scanned), scanned
    scanned.clear()
    assert await names(store, "data/ab") == {"data/ab/p1"}
    assert "data/ac" not in scanned and "snapshots" not in scanned, scanned


async def test_local_name_clashes_with_directories(store: LocalBackend) -> None:
    await store.put_if_absent("a", b"file")
    with pytest.raises(BackendError) as info:
        await store.put_if_absent("a/b", b"x")
    assert not isinstance(info.value, ObjectNotFoundError)
    with pytest.raises(ObjectNotFoundError):
        await store.get("a/b")
    await store.put_if_absent("d/e", b"x")
    with pytest.raises(BackendError, match="clashes"):
        await store.put_if_absent("d", b"x")


async def test_local_two_instances_share_leases(tmp_path: Path, fake_clock: FakeClock) -> None:
    one = LocalBackend(tmp_path / "s", clock=fake_clock, fsync=False)
    two = LocalBackend(tmp_path / "s", clock=fake_clock, fsync=False)
    results = await asyncio.gather(
        *(b.acquire_lease("locks/prune", duration=10) for b in [one, two] * 4), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, LocalLease)]
    assert len(winners) == 1
    assert sum(isinstance(r, LeaseHeldError) for r in results) == 7
    await winners[0].release()
    lease = await two.acquire_lease("locks/prune", duration=10)
    with pytest.raises(LeaseHeldError):
        await one.acquire_lease("locks/prune", duration=10)
    await lease.release()


def test_local_lease_excludes_another_process(tmp_path: Path) -> None:
    root = tmp_path / "s"
    script = (
        "import asyncio, sys\n"
        "from tiervault.backend.local import LocalBackend\n"
        "from tiervault.errors import LeaseHeldError\n"
        "async def main():\n"
        "    b = LocalBackend(sys.argv[1])\n"
        "    try:\n"
        "        await b.acquire_lease('locks/prune', duration=60)\n"
        "    except LeaseHeldError:\n"
        "        print('held')\n"
        "    else:\n"
        "        print('acquired')\n"
        "asyncio.run(main())\n"
    )
    src = str(Path(tiervault.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}

    def child() -> str:
        out = subprocess.run(
            [sys.executable, "-c", script, str(root)], capture_output=True, text=True, env=env, check=True
        )
        return out.stdout.strip()

    assert child() == "acquired"
    assert child() == "held"


async def test_local_enospc_is_a_clear_backend_error(
    store: LocalBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.put_if_absent("data/x", b"before")  # directories exist: the failure is in the write

    def no_space(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", no_space)
    with pytest.raises(BackendError, match="no space left") as info:
        await store.put_if_absent("data/y", b"payload")
    assert type(info.value) is BackendError  # not retryable, not "not found"
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.__cause__.errno == errno.ENOSPC
    assert "data/y" in str(info.value)
    monkeypatch.undo()
    assert disk_files(tmp_path / "store") == {"data/x"}  # the temp file was cleaned up
    with pytest.raises(ObjectNotFoundError):
        await store.stat("data/y")


async def test_local_enospc_on_link(
    store: LocalBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(src: str, dst: str) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), dst)

    monkeypatch.setattr(os, "link", no_space)
    with pytest.raises(BackendError, match="no space left") as info:
        await store.put_if_absent("data/y", b"payload")
    assert type(info.value) is BackendError
    monkeypatch.undo()
    assert disk_files(tmp_path / "store") == set()


async def test_local_read_errors_are_translated(store: LocalBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    await store.put_if_absent("data/x", DATA)

    def eio(fd: int, n: int, off: int) -> bytes:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "pread", eio)
    with pytest.raises(BackendError, match="I/O error") as info:
        await store.get("data/x")
    assert type(info.value) is BackendError
    with pytest.raises(BackendError, match="I/O error"):
        await read_stream(store, "data/x")


async def test_local_permission_errors_are_translated(
    store: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.put_if_absent("data/x", DATA)
    real_open = os.open

    def refuse(path: str, flags: int, mode: int = 0o777, **kw: object) -> int:
        if "data" in str(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(PermissionDeniedError):
        await store.get("data/x")
    with pytest.raises(PermissionDeniedError):
        await store.put_if_absent("data/y", b"y")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (FileNotFoundError(errno.ENOENT, "gone"), ObjectNotFoundError),
        (PermissionError(errno.EACCES, "no"), PermissionDeniedError),
        (OSError(errno.EAGAIN, "again"), TransientBackendError),
        (OSError(errno.ETIMEDOUT, "slow nfs"), TransientBackendError),
        (OSError(errno.ENOSPC, "full"), BackendError),
        (OSError(errno.EDQUOT, "quota"), BackendError),
        (OSError(errno.EROFS, "ro"), BackendError),
        (OSError(errno.EIO, "io"), BackendError),
        (OSError(errno.ENAMETOOLONG, "long"), BackendError),
    ],
)
def test_local_translate(exc: OSError, expected: type[BackendError]) -> None:
    translated = _translate(exc, "data/x", op="get")
    assert type(translated) is expected
    assert "data/x" in str(translated)


async def test_local_corrupt_sidecar_is_reported(store: LocalBackend, tmp_path: Path) -> None:
    await store.put_if_absent("data/x", b"x")
    sidecar = tmp_path / "store/.tv-tiers/data/x.json"
    sidecar.parent.mkdir(parents=True)
    sidecar.write_text('{"tier": "lukewarm"}')
    with pytest.raises(BackendError, match="corrupt tier metadata"):
        await store.stat("data/x")


async def test_local_stale_sidecar_does_not_describe_a_new_object(
    store: LocalBackend, tmp_path: Path
) -> None:
    sidecar = tmp_path / "store/.tv-tiers/data/x.json"
    sidecar.parent.mkdir(parents=True)
    sidecar.write_text('{"tier": "archive", "rehydrate_until": null}')  # left by an interrupted delete
    await store.put_if_absent("data/x", b"x")
    assert (await store.stat("data/x")).tier is Tier.HOT
    assert await store.get("data/x") == b"x"


async def test_local_closed_backend_refuses_work(store: LocalBackend) -> None:
    async with store:
        await store.put_if_absent("x", b"x")
    with pytest.raises(UsageError, match="closed"):
        await store.get("x")


# ========================================================================== FaultyBackend


@pytest.fixture
def faulty(memory_backend: MemoryBackend) -> FaultyBackend:
    return FaultyBackend(memory_backend)


async def test_faulty_fails_the_nth_call(faulty: FaultyBackend) -> None:
    await faulty.put_if_absent("a", b"a")
    faulty.fail_call("get", nth=2, count=2)
    assert await faulty.get("a") == b"a"
    for _ in range(2):
        with pytest.raises(TransientBackendError):
            await faulty.get("a")
    assert await faulty.get("a") == b"a"
    assert faulty.calls["get"] == 4
    assert faulty.injected == ["get a", "get a"]


async def test_faulty_fail_call_filters_by_name_and_error(faulty: FaultyBackend) -> None:
    await faulty.put_if_absent("a", b"a")
    await faulty.put_if_absent("b", b"b")
    faulty.fail_call("stat", name="b", error=PermissionDeniedError("nope"))
    await faulty.stat("a")
    with pytest.raises(PermissionDeniedError):
        await faulty.stat("b")
    await faulty.stat("b")
    faulty.fail_call("list")
    with pytest.raises(TransientBackendError):
        await names(faulty)
    faulty.fail_call("open_read")
    with pytest.raises(TransientBackendError):
        await read_stream(faulty, "a")
    with pytest.raises(ValueError, match="unknown method"):
        faulty.fail_call("gett")


async def test_faulty_lease_faults(faulty: FaultyBackend) -> None:
    lease = await faulty.acquire_lease("locks/l", duration=10)
    faulty.fail_call("lease.renew")
    with pytest.raises(TransientBackendError):
        await lease.renew()
    await lease.renew()
    await lease.release()


async def test_faulty_corrupts_reads_not_the_store(
    faulty: FaultyBackend, memory_backend: MemoryBackend
) -> None:
    await faulty.put_if_absent("p", DATA)
    await faulty.put_if_absent("q", DATA)
    faulty.corrupt("p")
    damaged = await faulty.get("p")
    assert len(damaged) == len(DATA)
    assert [i for i in range(len(DATA)) if damaged[i] != DATA[i]] == [0]
    assert await faulty.get("q") == DATA
    assert await memory_backend.get("p") == DATA

    faulty.corrupt("p", position=5000)
    assert await faulty.get("p", offset=0, length=100) == DATA[:100]  # does not cover 5000
    ranged = await faulty.get("p", offset=4990, length=20)
    assert ranged != DATA[4990:5010] and ranged[:10] == DATA[4990:5000] and ranged[11:] == DATA[5001:5010]
    streamed = b"".join(await read_stream(faulty, "p", block_size=999))
    assert [i for i in range(len(DATA)) if streamed[i] != DATA[i]] == [5000]
    faulty.heal()
    assert await faulty.get("p") == DATA


async def test_faulty_lost_put_response(faulty: FaultyBackend, memory_backend: MemoryBackend) -> None:
    faulty.lose_put_response("index/1")
    await faulty.put_if_absent("other", b"o")
    with pytest.raises(TransientBackendError):
        await faulty.put_if_absent("index/1", b"i")
    assert await memory_backend.get("index/1") == b"i"  # the write did happen
    assert await faulty.put_if_absent("index/1", b"i") is False  # the retry sees it
    faulty.lose_put_response()
    with pytest.raises(TransientBackendError):
        await faulty.put_if_absent("any", b"a")
    assert await faulty.put_if_absent("any2", b"a") is True


async def test_faulty_wraps_a_local_backend(local_backend: LocalBackend) -> None:
    faulty = FaultyBackend(local_backend)
    faulty.lose_put_response()
    with pytest.raises(TransientBackendError):
        await faulty.put_if_absent("x", b"x")
    assert await local_backend.get("x") == b"x"
    faulty.corrupt("x")
    assert await faulty.get("x") == b"y"
