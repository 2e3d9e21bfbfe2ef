"""Restore routing through the disk tier: warm restores read nothing from the store, cold ones read
from it and refill the cache, damaged entries are dropped and read again."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from tests.cache import Tally, cache_root, cache_warnings, cached, init_vault, open_vault, stored
from tests.support.fsclock import next_ctime_tick
from tests.support.trees import assert_trees_equal, snapshot_tree


async def _snapshot(repo: Path, src: Path, cache_dir: Path) -> str:
    async with init_vault(repo, cache_dir) as vault:
        await vault.protect(src, name="src")
        return (await vault.snapshot("src")).point.id


async def test_warm_restore_right_after_a_snapshot_reads_nothing_from_the_store(
    tmp_path: Path, src: Path, cache_dir: Path, cloud: Tally
) -> None:
    repo = tmp_path / "repo"
    async with init_vault(repo, cache_dir) as vault:
        await vault.protect(src, name="src")
        point = (await vault.snapshot("src")).point
        # write-through: every content-addressed object of the repository is on local disk
        assert set(cached(cache_dir)) == set(stored(repo)) - {"config"}
        cloud.reset()
        result = await vault.restore(point, tmp_path / "out1")
        assert cloud.reads == 0, cloud.gets
    assert result.ok
    assert_trees_equal(snapshot_tree(src), snapshot_tree(tmp_path / "out1"))
    s = result.stats
    assert (s.remote_reads, s.remote_bytes) == (0, 0)
    assert s.cache_hits >= s.read_requests > 0
    assert s.cache_bytes >= s.bytes_fetched > 0

    # and again from a new session (a new process would do the same: the cache is on disk)
    async with open_vault(repo, cache_dir) as vault:
        cloud.reset()
        result = await vault.restore(point, tmp_path / "out2", verify=True)
        assert cloud.reads == 0, cloud.gets
    assert result.ok and result.stats.remote_reads == 0
    assert_trees_equal(snapshot_tree(src), snapshot_tree(tmp_path / "out2"))


async def test_cold_restore_reads_from_the_store_and_repopulates(
    tmp_path: Path, src: Path, cache_dir: Path, cloud: Tally
) -> None:
    repo = tmp_path / "repo"
    point = await _snapshot(repo, src, cache_dir)
    data_packs = stored(repo, "data/")
    assert len(data_packs) >= 3

    cold = tmp_path / "cold-cache"  # an empty cache directory
    async with open_vault(repo, cold) as vault:
        cloud.reset()
        result = await vault.restore(point, tmp_path / "out")
        cold_gets = list(cloud.gets)
        stats = await vault.cache_stats()
    assert result.ok
    assert_trees_equal(snapshot_tree(src), snapshot_tree(tmp_path / "out"))
    # every data pack came from the store, as ranges (never a whole 1 MiB pack for a range)
    assert {name for name, _, _ in cold_gets if name.startswith("data/")} == set(data_packs)
    assert all(length is not None for name, _, length in cold_gets if name.startswith("data/"))
    assert result.stats.remote_reads == len(cold_gets) and result.stats.cache_hits == 0
    assert result.stats.remote_bytes >= result.stats.bytes_fetched
    # the metadata it read is kept: snapshot, trees (meta packs), and what open read (keys, index)
    meta = {n for n in stored(repo) if n.split("/")[0] in ("keys", "index", "snapshots", "meta")}
    assert set(cached(cold)) == meta
    assert stats.enabled and stats.usage.metadata_entries == len(meta) and stats.usage.data_entries == 0

    async with open_vault(repo, cold) as vault:  # the next restore reads only data ranges
        cloud.reset()
        result = await vault.restore(point, tmp_path / "out2")
    assert result.ok
    assert cloud.gets and all(name.startswith("data/") for name, _, _ in cloud.gets)
    assert result.stats.cache_hits > 0


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0x01
    else:
        del data[len(data) // 2 :]
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["flip", "truncate"])
@pytest.mark.parametrize("kind", ["data", "meta", "snapshots"])
async def test_a_damaged_entry_is_dropped_and_read_again(
    tmp_path: Path,
    src: Path,
    cache_dir: Path,
    cloud: Tally,
    caplog: pytest.LogCaptureFixture,
    how: str,
    kind: str,
) -> None:
    repo = tmp_path / "repo"
    point = await _snapshot(repo, src, cache_dir)
    victim = sorted(cached(cache_dir, kind + "/"))[0]
    _damage(cache_root(cache_dir) / victim, how)

    caplog.set_level(logging.WARNING, logger="tiervault")
    async with open_vault(repo, cache_dir) as vault:
        cloud.reset()
        result = await vault.restore(point, tmp_path / "out")
    assert result.ok
    assert_trees_equal(snapshot_tree(src), snapshot_tree(tmp_path / "out"))
    warnings = cache_warnings(caplog.records)
    assert len(warnings) == 1 and victim in warnings[0] and "damaged" in warnings[0], warnings
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert victim in {name for name, _, _ in cloud.gets}  # read again from the store
    assert result.stats.remote_reads == len(cloud.gets) >= 1
    # a whole-object read puts a good copy back; a data pack read by ranges is simply gone
    assert (victim in cached(cache_dir)) == (kind != "data")
    if victim in cached(cache_dir):
        assert (cache_root(cache_dir) / victim).read_bytes() == (repo / victim).read_bytes()


async def test_an_entry_damaged_after_this_process_checked_it_is_checked_again(
    tmp_path: Path, src: Path, cache_dir: Path, cloud: Tally, caplog: pytest.LogCaptureFixture
) -> None:
    """The (inode, size, mtime) remembered for a verified entry catches a later truncation or
    rewrite, even one that puts the old mtime back."""
    repo = tmp_path / "repo"
    point = await _snapshot(repo, src, cache_dir)
    caplog.set_level(logging.WARNING, logger="tiervault")
    async with open_vault(repo, cache_dir) as vault:
        assert (await vault.restore(point, tmp_path / "out1")).stats.remote_reads == 0  # all verified
        packs = sorted(cached(cache_dir, "data/"))
        truncated, rewritten = cache_root(cache_dir) / packs[0], cache_root(cache_dir) / packs[1]
        next_ctime_tick(tmp_path)  # the damage gets a later ctime than the one remembered
        _damage(truncated, "truncate")
        st = rewritten.stat()
        _damage(rewritten, "flip")
        os.utime(rewritten, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime
        cloud.reset()
        result = await vault.restore(point, tmp_path / "out2")
    assert result.ok
    assert_trees_equal(snapshot_tree(src), snapshot_tree(tmp_path / "out2"))
    assert {packs[0], packs[1]} <= {name for name, _, _ in cloud.gets}
    assert len(cache_warnings(caplog.records)) == 2
