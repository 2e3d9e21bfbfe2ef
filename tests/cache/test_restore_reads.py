"""Reads per tier are counted by the restore itself, for its own reads only: two restores running at
once on one vault each report what they read, and together exactly what the tiers served."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.cache import Tally, init_vault
from tests.support.trees import assert_trees_equal, snapshot_tree


async def test_concurrent_restores_each_count_only_their_own_reads(
    tmp_path: Path, src: Path, cache_dir: Path, cloud: Tally
) -> None:
    async with init_vault(tmp_path / "repo", cache_dir) as vault:
        await vault.protect(src, name="src")
        point = (await vault.snapshot("src")).point
        before = (await vault.cache_stats()).counters
        cloud.reset()
        one, two = await asyncio.gather(
            vault.restore(point, tmp_path / "one"), vault.restore(point, tmp_path / "two")
        )
        served = (await vault.cache_stats()).counters - before
    assert one.ok and two.ok
    for out in ("one", "two"):
        assert_trees_equal(snapshot_tree(src), snapshot_tree(tmp_path / out))
    # write-through: everything from the disk tier; each restore read every data range it wrote
    for result in (one, two):
        s = result.stats
        assert s.remote_reads == 0 and s.cache_hits >= s.read_requests > 0
    assert one.stats.cache_hits + two.stats.cache_hits == served.cache_hits
    assert one.stats.cache_bytes + two.stats.cache_bytes == served.cache_bytes
    assert cloud.reads == 0
