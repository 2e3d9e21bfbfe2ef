"""``CacheBackend`` on its own: what it keeps, what it never serves, and where it lives."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cache import CountingBackend, KiB, Tally
from tests.cache.test_eviction import entries, obj
from tests.support.memory import FaultyBackend
from tiervault import api
from tiervault.backend.local import LocalBackend
from tiervault.cache import CacheBackend, EntryKind, cache_key, default_cache_dir, entry_kind
from tiervault.errors import ObjectNotFoundError, TransientBackendError, UsageError
from tiervault.repo.cachepolicy import REPOSITORY_CACHE_POLICY


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalBackend]:
    async with LocalBackend(tmp_path / "store", fsync=False) as backend:
        yield backend


@pytest.fixture
def tally() -> Tally:
    return Tally()


@pytest.fixture
def cache(store: LocalBackend, tally: Tally, tmp_path: Path) -> CacheBackend:
    return CacheBackend(
        CountingBackend(store, tally),  # type: ignore[arg-type]
        tmp_path / "cache",
        policy=REPOSITORY_CACHE_POLICY,
        max_bytes=10 << 20,
        repository_key="repo",
    )


async def test_config_is_never_served_from_the_cache(cache: CacheBackend, tally: Tally) -> None:
    await cache.put_if_absent("config", b"version 1")
    assert await cache.get("config") == b"version 1"
    assert await cache.get("config") == b"version 1"
    assert tally.calls["get"] == 2
    assert entries(cache) == {}
    # a "config" planted in the cache folder is ignored too
    assert cache.directory is not None
    cache.directory.mkdir(parents=True)
    (cache.directory / "config").write_bytes(b"stale")
    assert await cache.get("config") == b"version 1"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("config", None),
        ("locks/prune", None),
        ("data/ab/" + "ab" * 32, EntryKind.DATA),
        ("meta/ab/" + "ab" * 32, EntryKind.METADATA),
        ("snapshots/" + "0" * 64, EntryKind.METADATA),
        ("keys/" + "f" * 64, EntryKind.METADATA),
        ("index/" + "f" * 64, EntryKind.METADATA),
        ("items/" + "f" * 64, EntryKind.METADATA),
        ("data/ab/" + "AB" * 32, None),  # upper case is not what object_hash gives
        ("data/../" + "ab" * 32, None),
        ("data/ab/.tmp-" + "ab" * 30, None),
        ("checkpoints/" + "ab" * 32, None),  # unknown folders: not known to be immutable
        ("data/ab/" + "ab" * 31, None),
        ("ab" * 32, None),  # a top-level name
    ],
)
def test_only_content_addressed_names_are_cacheable(name: str, kind: EntryKind | None) -> None:
    """The repository's policy names the folders; the tier adds the hash-name and path rules."""
    assert entry_kind(REPOSITORY_CACHE_POLICY, name) is kind


async def test_a_ranged_read_of_an_uncached_object_fetches_only_the_range(
    cache: CacheBackend, store: LocalBackend, tally: Tally
) -> None:
    name, data = obj("data", 300 * KiB, 1)
    await store.put_if_absent(name, data)  # written by someone else: not in this cache
    assert await cache.get(name, offset=1000, length=500) == data[1000:1500]
    assert tally.gets == [(name, 1000, 500)]
    assert entries(cache) == {}
    assert await cache.get(name) == data  # a whole read is kept
    assert set(entries(cache)) == {name}
    tally.reset()
    assert await cache.get(name, offset=1000, length=500) == data[1000:1500]
    assert await cache.get(name, offset=len(data) - 10, length=100) == data[-10:]  # cut short at the end
    assert await cache.get(name, offset=len(data) + 10) == b""
    assert tally.gets == []
    c = cache.stats()
    assert (c.remote_reads, c.remote_bytes) == (2, 500 + len(data))
    assert (c.cache_hits, c.cache_bytes) == (3, 510)


async def test_open_read_streams_from_either_tier(cache: CacheBackend, tally: Tally) -> None:
    name, data = obj("data", 300 * KiB, 2)
    await cache.put_if_absent(name, data)
    blocks = [b async for b in cache.open_read(name, offset=5, length=200 * KiB, block_size=64 * KiB)]
    assert b"".join(blocks) == data[5 : 5 + 200 * KiB] and max(map(len, blocks)) <= 64 * KiB
    assert tally.calls["open_read"] == 0
    other, other_data = obj("meta", 10 * KiB, 3)
    await cache.inner.put_if_absent(other, other_data)
    assert b"".join([b async for b in cache.open_read(other)]) == other_data
    assert tally.calls["open_read"] == 1
    c = cache.stats()
    assert (c.cache_hits, c.cache_bytes, c.remote_reads, c.remote_bytes) == (1, 200 * KiB, 1, 10 * KiB)


async def test_a_failed_put_caches_nothing(store: LocalBackend, tmp_path: Path) -> None:
    faulty = FaultyBackend(store)
    cache = CacheBackend(
        faulty, tmp_path / "cache", policy=REPOSITORY_CACHE_POLICY, max_bytes=1 << 20, repository_key="r"
    )
    name, data = obj("data", 10 * KiB, 4)
    faulty.fail_call("put_if_absent")
    with pytest.raises(TransientBackendError):
        await cache.put_if_absent(name, data)
    assert entries(cache) == {}
    assert await cache.put_if_absent(name, data) is True
    assert set(entries(cache)) == {name}
    assert await cache.put_if_absent(name, data) is False  # already stored: still cached, unchanged
    assert set(entries(cache)) == {name}


async def test_damaged_bytes_from_the_store_are_not_cached(store: LocalBackend, tmp_path: Path) -> None:
    faulty = FaultyBackend(store)
    cache = CacheBackend(
        faulty, tmp_path / "cache", policy=REPOSITORY_CACHE_POLICY, max_bytes=1 << 20, repository_key="r"
    )
    name, data = obj("index", 10 * KiB, 5)
    await store.put_if_absent(name, data)
    faulty.corrupt(name)
    assert await cache.get(name) != data  # the caller's own hash check reports it
    assert entries(cache) == {}
    faulty.heal()
    assert await cache.get(name) == data
    assert set(entries(cache)) == {name}


async def test_delete_removes_the_entry(cache: CacheBackend) -> None:
    a, b, c = obj("items", 1 * KiB, 6), obj("data", 1 * KiB, 7), obj("data", 1 * KiB, 8)
    for o in (a, b, c):
        await cache.put_if_absent(*o)
    await cache.delete(a[0])
    await cache.delete_many([b[0], "locks/x"])
    assert set(entries(cache)) == {c[0]}
    with pytest.raises(ObjectNotFoundError):
        await cache.get(a[0])


async def test_file_work_runs_off_the_event_loop(
    cache: CacheBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.current_thread()
    seen: list[threading.Thread] = []
    parts = {cache._entries: ("read", "store", "remove", "open_verified"), cache._bounds: ("usage", "clear")}
    for part, methods in parts.items():
        for method in methods:
            real = getattr(part, method)

            def spy(*args: object, _real: object = real) -> object:
                seen.append(threading.current_thread())
                return _real(*args)  # type: ignore[operator]

            monkeypatch.setattr(part, method, spy)
    name, data = obj("data", 10 * KiB, 9)
    await cache.put_if_absent(name, data)
    await cache.get(name)
    assert [b async for b in cache.open_read(name)] == [data]
    await cache.usage()
    await cache.delete(name)
    await cache.clear()
    assert len(seen) == 7 and loop_thread not in seen  # clear reports the usage after it


async def test_no_cache_dir_only_counts(store: LocalBackend, tally: Tally) -> None:
    cache = CacheBackend(
        CountingBackend(store, tally), None, policy=REPOSITORY_CACHE_POLICY, repository_key="r"
    )  # type: ignore[arg-type]
    name, data = obj("data", 10 * KiB, 10)
    await cache.put_if_absent(name, data)
    assert await cache.get(name) == data
    assert tally.calls["get"] == 1
    assert not cache.enabled
    report = await cache.report()
    assert report.directory is None and report.counters.remote_reads == 1
    assert report.disabled_reason is None  # off by choice, not by failure
    assert (await cache.clear()).removed_entries == 0


def test_bad_arguments(store: LocalBackend, tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        CacheBackend(store, tmp_path, policy=REPOSITORY_CACHE_POLICY, max_bytes=0, repository_key="r")
    with pytest.raises(UsageError):
        CacheBackend(store, tmp_path, policy=REPOSITORY_CACHE_POLICY, repository_key="../x")
    with pytest.raises(UsageError):
        api._backend_for(tmp_path / "repo", None, cache_max_bytes=-1)
    with pytest.raises(UsageError):
        api._backend_for(tmp_path / "repo", None, cache_dir="")


def test_where_the_cache_lives(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("TIERVAULT_CACHE_DIR", "FUNCTIONS_WORKER_RUNTIME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "tiervault"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "tiervault"
    monkeypatch.setenv("FUNCTIONS_WORKER_RUNTIME", "python")
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    assert default_cache_dir() == tmp_path / "tmp" / "tiervault-cache"
    monkeypatch.setenv("TIERVAULT_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"

    # an explicit choice
    assert api._cache_dir(True) == tmp_path / "mine"
    assert api._cache_dir(tmp_path / "x") == tmp_path / "x"
    assert api._cache_dir(False) is None
    # one folder per repository address
    stack = api._backend_for(tmp_path / "repo", None, cache_dir=tmp_path / "c")
    assert stack.cache.directory == tmp_path / "c" / cache_key(str(tmp_path / "repo"))
    assert stack.backend is stack.cache  # the disk tier is the top of the stack
    assert cache_key("az://a/b") != cache_key("az://a/c") and len(cache_key("x")) == 32


async def test_the_cache_is_on_by_default_for_remote_stores_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without a choice, ``capabilities.remote`` decides: on for Azure, off for a local path."""
    monkeypatch.setenv("TIERVAULT_CACHE_DIR", str(tmp_path / "mine"))
    for url, remote in (
        (str(tmp_path / "repo"), False),
        ((tmp_path / "repo").as_uri(), False),
        ("azurite://127.0.0.1:1/container", True),
        ("https://acct.blob.core.windows.net/container?sv=2024-01-01&sig=x", True),
    ):
        backend, cache = api._backend_for(url, None)
        try:
            assert backend.capabilities.remote is remote
            assert cache.enabled is remote
            assert cache.directory == (tmp_path / "mine" / cache_key(backend.location) if remote else None)
            off, _ = api._backend_for(url, None, cache_dir=False)
            assert isinstance(off, CacheBackend) and not off.enabled
            await off.aclose()
        finally:
            await backend.aclose()
