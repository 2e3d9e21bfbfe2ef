"""The bound: least recently used data packs go first, metadata last, and the cache stays within
``max_bytes`` (a whole snapshot, and the decorator on its own)."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cache import KiB, MiB, Tally, cache_root, cached, init_vault, open_vault, random_tree, stored
from tests.support.trees import assert_trees_equal, snapshot_tree
from tiervault.backend.local import LocalBackend
from tiervault.backup import newest_point_pin
from tiervault.cache import CacheBackend
from tiervault.core.crypto import object_hash
from tiervault.repo.cachepolicy import REPOSITORY_CACHE_POLICY
from tiervault.repo.treewalk import data_packs_of


def obj(prefix: str, size: int, seed: int) -> tuple[str, bytes]:
    """A content-addressed object: ``prefix/xx/<hash>`` (``prefix/<hash>`` for flat folders)."""
    data = random.Random(seed).randbytes(size)
    h = object_hash(data)
    return (f"{prefix}/{h[:2]}/{h}" if prefix in ("data", "meta") else f"{prefix}/{h}"), data


def entries(cache: CacheBackend) -> dict[str, int]:
    assert cache.directory is not None
    root = cache.directory
    return {
        str(p.relative_to(root)): p.stat().st_size
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".tmp-") and p.name != "CACHEDIR.TAG"
    }


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalBackend]:
    async with LocalBackend(tmp_path / "store", fsync=False) as backend:
        yield backend


def make_cache(store: LocalBackend, tmp_path: Path, max_bytes: int) -> CacheBackend:
    return CacheBackend(
        store, tmp_path / "cache", policy=REPOSITORY_CACHE_POLICY, max_bytes=max_bytes, repository_key="repo"
    )


async def test_least_recently_used_data_goes_first(store: LocalBackend, tmp_path: Path) -> None:
    cache = make_cache(store, tmp_path, 350 * KiB)
    a, b, c, d = (obj("data", 100 * KiB, i) for i in range(4))
    for name, data in (a, b, c):
        await cache.put_if_absent(name, data)
    assert set(entries(cache)) == {a[0], b[0], c[0]}
    for name, data in (a, b, c, a):  # the last read makes a more recent than b and c
        # (read twice: with relatime, the kernel itself would only record the first read)
        assert await cache.get(name, offset=10, length=5) == data[10:15]
    await cache.put_if_absent(*d)
    assert set(entries(cache)) == {a[0], c[0], d[0]}  # b, the least recently used, was evicted
    assert await cache.get(c[0]) == c[1]
    e = obj("data", 100 * KiB, 4)
    await cache.put_if_absent(*e)
    assert set(entries(cache)) == {c[0], d[0], e[0]}  # then a: c was read since
    assert sum(entries(cache).values()) <= 350 * KiB
    assert cache.stats().evicted == 2


async def test_pinned_packs_are_evicted_last(store: LocalBackend, tmp_path: Path) -> None:
    """Pinned data packs (the API pins those the newest point of an item needs) are kept while the
    bound allows, even when they are the least recently used (a new point that reuses old packs by
    dedup)."""
    cache = make_cache(store, tmp_path, 350 * KiB)
    a, b, c, d = (obj("data", 100 * KiB, 10 + i) for i in range(4))
    for name, data in (a, b, c):
        await cache.put_if_absent(name, data)
    await cache.pin("app", [a[0], "config", "locks/x"])  # names the tier cannot hold are ignored
    assert cache.pinned("app") == {a[0]}
    await cache.get(b[0], offset=0, length=1)
    await cache.get(c[0], offset=0, length=1)
    await cache.put_if_absent(*d)
    assert set(entries(cache)) == {a[0], c[0], d[0]}  # b went, not a (older, but protected)
    await cache.pin("app", [d[0]])  # a newer pin under the same key replaces the set
    e = obj("data", 100 * KiB, 20)
    await cache.put_if_absent(*e)
    assert a[0] not in entries(cache) and d[0] in entries(cache)


async def test_a_snapshot_pins_what_its_point_needs(tmp_path: Path) -> None:
    src = tmp_path / "src"
    random_tree(src, files=6, size=3 * MiB, seed=5)
    async with init_vault(tmp_path / "repo", tmp_path / "cache") as vault:
        await vault.protect(src, name="src")
        result = await vault.snapshot("src")
        cache = vault._cache
        assert cache is not None
        packs = await data_packs_of(
            vault._repo, bytes.fromhex((await vault._repo.load_snapshot(result.point.id)).tree)
        )
        assert packs and cache.pinned(newest_point_pin("src")) == frozenset(packs)
        assert packs == {n for n in stored(tmp_path / "repo") if n.startswith("data/")}


async def test_metadata_is_evicted_only_when_no_data_is_left(store: LocalBackend, tmp_path: Path) -> None:
    cache = make_cache(store, tmp_path, 350 * KiB)
    m1, m2 = obj("meta", 100 * KiB, 10), obj("index", 100 * KiB, 11)
    d1, d2 = obj("data", 100 * KiB, 12), obj("data", 100 * KiB, 13)
    await cache.put_if_absent(*m1)
    await cache.put_if_absent(*d1)  # older than m2, but data
    await cache.put_if_absent(*m2)
    await cache.put_if_absent(*d2)
    assert set(entries(cache)) == {m1[0], m2[0], d2[0]}  # d1 went, not the older m1
    # a data pack that would need metadata evicted is not cached at all
    cache2 = make_cache(store, tmp_path, 250 * KiB)  # same folder, smaller bound
    assert (await cache2.prune()).removed_entries == 1
    assert set(entries(cache2)) == {m1[0], m2[0]}
    d3 = obj("data", 100 * KiB, 14)
    await cache2.put_if_absent(*d3)
    assert set(entries(cache2)) == {m1[0], m2[0]}
    assert cache2.stats().skipped == 1
    assert await store.get(d3[0]) == d3[1]  # the store has it, of course
    # metadata makes room for metadata, least recently used first
    assert await cache2.get(m1[0]) == m1[1]
    m3 = obj("snapshots", 100 * KiB, 15)
    await cache2.put_if_absent(*m3)
    assert set(entries(cache2)) == {m1[0], m3[0]}


async def test_an_object_larger_than_the_bound_is_not_cached(store: LocalBackend, tmp_path: Path) -> None:
    cache = make_cache(store, tmp_path, 100 * KiB)
    big = obj("data", 200 * KiB, 20)
    await cache.put_if_absent(*big)
    assert await cache.get(big[0]) == big[1]
    assert entries(cache) == {}
    assert cache.stats().remote_reads == 1 and cache.stats().skipped == 2


async def test_prune_and_clear(store: LocalBackend, tmp_path: Path) -> None:
    big = make_cache(store, tmp_path, 10 * MiB)
    objs = [obj("data", 100 * KiB, 30 + i) for i in range(6)] + [obj("keys", 10 * KiB, 40)]
    for o in objs:
        await big.put_if_absent(*o)
    usage = await big.usage()
    assert (usage.entries, usage.data_entries, usage.metadata_entries) == (7, 6, 1)
    assert usage.bytes == 610 * KiB
    small = make_cache(store, tmp_path, 300 * KiB)
    pruned = await small.prune()
    assert pruned.removed_entries == 4 and pruned.removed_bytes == 400 * KiB
    assert set(entries(small)) == {objs[4][0], objs[5][0], objs[6][0]}  # the newest data, and metadata
    assert pruned.usage.bytes == 210 * KiB <= 300 * KiB
    cleared = await small.clear()
    assert cleared.removed_entries == 3 and cleared.usage.entries == 0
    assert entries(small) == {}
    assert small.directory is not None and small.directory.is_dir()  # the folder itself stays
    await small.put_if_absent(*objs[0])  # and the tier keeps working
    assert set(entries(small)) == {objs[0][0]}


async def test_stale_temporary_files_are_removed(store: LocalBackend, tmp_path: Path) -> None:
    cache = make_cache(store, tmp_path, 300 * KiB)
    await cache.put_if_absent(*obj("data", 10 * KiB, 50))
    root = cache.directory
    assert root is not None
    old, young = root / "data" / ".tmp-1-dead", root / "data" / ".tmp-2-busy"
    old.write_bytes(b"x" * 1000)
    young.write_bytes(b"y" * 1000)
    os.utime(old, (1, 1))
    await cache.prune()
    assert not old.exists() and young.exists()


async def test_a_snapshot_larger_than_the_bound(
    tmp_path: Path, src: Path, cache_dir: Path, cloud: Tally
) -> None:
    """Writing through a snapshot bigger than the cache keeps all metadata and the packs written
    last, within the bound; a restore then reads the rest from the store."""
    random_tree(src, files=10, size=600 * KiB, seed=5)
    bound = 3 * MiB
    repo = tmp_path / "repo"
    order: list[str] = []
    async with init_vault(repo, cache_dir, cache_max_bytes=bound) as vault:
        await vault.protect(src, name="src")
        cloud.after_put = lambda name: order.append(name) if name.startswith("data/") else None
        point = (await vault.snapshot("src")).point
        stats = await vault.cache_stats()
    have = cached(cache_dir)
    assert sum(have.values()) <= bound
    assert stats.usage.bytes == sum(have.values()) and stats.max_bytes == bound
    metadata = {n for n in stored(repo) if not n.startswith("data/")} - {"config"}
    assert metadata <= set(have)
    data = stored(repo, "data/")
    kept = {n for n in have if n.startswith("data/")}
    assert 0 < len(kept) < len(data)
    # the packs kept are the ones used last: written last (up to 4 uploads run at once)
    assert kept <= set(order[-(len(kept) + 4) :])
    # the others were evicted, or not admitted at all (the room was promised to uploads in flight)
    assert stats.counters.evicted + stats.counters.skipped >= len(data) - len(kept)
    root = cache_root(cache_dir)

    async with open_vault(repo, cache_dir, cache_max_bytes=bound) as vault:
        cloud.reset()
        result = await vault.restore(point, tmp_path / "out")
    assert result.ok
    assert_trees_equal(snapshot_tree(src), snapshot_tree(tmp_path / "out"))
    assert {n for n, _, _ in cloud.gets} == set(data) - kept  # cached packs were not read from the store
    assert result.stats.cache_hits > 0 and result.stats.remote_reads > 0
    assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) <= bound
