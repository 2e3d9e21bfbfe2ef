"""End to end against Azurite: the disk tier is on by default for Azure repositories, a warm restore
sends no read request to Blob Storage, a cold one reads from it."""

from __future__ import annotations

import os
from pathlib import Path

from tests.cache import Tally, cached, init_vault, open_vault
from tests.support.azurite import Azurite
from tests.support.trees import assert_trees_equal, snapshot_tree


async def test_warm_and_cold_restores_from_azurite(
    azurite: Azurite, azure_container: tuple[str, str], tmp_path: Path, src: Path, cloud: Tally
) -> None:
    url = f"azurite://127.0.0.1:{azurite.port}/{azure_container[1]}"
    cache = tmp_path / "cache"
    async with init_vault(url, cache) as vault:
        await vault.protect(src, name="src")
        point = (await vault.snapshot("src")).point
    assert cached(cache, "data/")

    async with open_vault(url, cache) as vault:  # warm: a new session, the cache from the snapshot
        cloud.reset()
        warm = await vault.restore(point, tmp_path / "warm", verify=True)
        assert cloud.reads == 0, cloud.gets
        await vault.cache_clear()
        cloud.reset()
        cold = await vault.restore(point, tmp_path / "cold", verify=True)
        cold_requests = cloud.calls["get"]
    for result, out in ((warm, "warm"), (cold, "cold")):
        assert result.ok
        assert_trees_equal(snapshot_tree(src), snapshot_tree(tmp_path / out))
    assert warm.stats.remote_reads == 0 and warm.stats.cache_hits > 0
    assert cold.stats.remote_reads == cold_requests > 0 and cold.stats.cache_hits == 0
    assert cold.stats.remote_bytes >= cold.stats.bytes_fetched > 0


async def test_the_disk_tier_is_on_by_default_for_azure(
    azurite: Azurite, azure_container: tuple[str, str], tmp_path: Path, src: Path
) -> None:
    url = f"azurite://127.0.0.1:{azurite.port}/{azure_container[1]}"
    default = Path(os.environ["TIERVAULT_CACHE_DIR"])  # the per-test default (tests/conftest.py)
    async with init_vault(url, None) as vault:
        await vault.protect(src, name="src")
        await vault.snapshot("src")
        stats = await vault.cache_stats()
    assert stats.enabled and stats.directory is not None
    assert Path(stats.directory).parent == default
    assert stats.usage.data_entries > 0 and stats.counters.cache_writes > 0
    async with open_vault(url, False) as vault:
        assert not (await vault.cache_stats()).enabled
