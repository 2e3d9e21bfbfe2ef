"""Restores from Archive on Azurite: real Set Blob Tier to Archive, real Copy Blob out of it with a
rehydrate priority and tier Hot, real reads refused with ``BlobArchived``.

The one difference from Azure, named here: Azurite finishes a Copy Blob out of Archive at once, so
``SlowRehydration`` (tests/support/slowrehydrate.py) holds each staging copy unreadable until a
``FakeClock`` passes the priority's delay (High: 1 h, Standard: 15 h). Two vaults over two
``AzureBackend`` clients stand for two hosts; they share the wrapper's ready times.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import tiervault
from tests.azure.conftest import NO_RETRIES, azurite_url
from tests.e2e import KDF, PASSWORD, KiB
from tests.support import FakeClock
from tests.support.azurite import Azurite
from tests.support.slowrehydrate import DELAYS, SlowRehydration
from tests.support.trees import File, assert_trees_equal, build_tree, snapshot_tree
from tiervault.backend.azure import AzureBackend
from tiervault.backend.base import RehydratePriority, Tier
from tiervault.repo.repository import Repository

pytestmark = pytest.mark.usefixtures("no_unclosed_sessions")
MiB = 1 << 20


@pytest.mark.parametrize("paths", [None, ["d1"]])
async def test_restore_from_archive_on_azurite(
    azurite: Azurite, azure_container: tuple[str, str], tmp_path: Path, paths: list[str] | None
) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    rnd = random.Random(5)
    build_tree(src, {f"d{i % 2}/f{i}.bin": File(rnd.randbytes(600 * KiB)) for i in range(6)})
    url = azurite_url(azurite, azure_container[1], "repo")
    clock = FakeClock()
    ready_at: dict[str, float] = {}
    async with (
        AzureBackend.from_url(url, **NO_RETRIES) as host_a,
        AzureBackend.from_url(url, **NO_RETRIES) as host_b,
    ):
        a = SlowRehydration(host_a, clock, ready_at)
        repo = await Repository.init(a, PASSWORD.encode(), kdf=KDF, pack_size=MiB)
        vault = tiervault.Vault(repo, clock=clock)
        await vault.protect(src, name="src")
        point = (await vault.snapshot("src")).point
        packs = sorted([i.name async for i in host_a.list("data/")])
        await host_a.set_tier_many(packs, Tier.ARCHIVE)  # Blob Batch, for real
        with pytest.raises(tiervault.ObjectArchivedError):
            await host_a.get(packs[0])  # BlobArchived

        with pytest.raises(tiervault.RehydrationNeededError):
            await vault.restore(point, out, paths=paths)
        assert not out.exists()
        started = await vault.restore(point, out, paths=paths, rehydrate=True, priority="high")
        assert started.awaiting_rehydration and started.rehydration is not None
        copies = [i async for i in host_b.list("staging/")]
        assert len(copies) == started.rehydration.packs > 0
        # Azurite made the copies (Hot, readable); the wrapper holds them for the High delay
        assert all(i.tier is Tier.HOT for i in [await host_b.stat(c.name) for c in copies])
        assert all(i.tier is Tier.ARCHIVE for i in [await host_b.stat(p) for p in packs])

        b = SlowRehydration(host_b, clock, ready_at)
        other = tiervault.Vault(await Repository.open(b, PASSWORD.encode()), clock=clock)
        clock.advance(DELAYS[RehydratePriority.HIGH] - 1)
        assert (await other.restore(point, out, paths=paths, rehydrate=True)).awaiting_rehydration
        clock.advance(1)
        done = await other.restore(point, out, paths=paths, rehydrate=True, verify=True)
        assert done.ok and done.staging_removed == len(copies)
        restored = out if paths is None else out / "d1"
        expected = src if paths is None else src / "d1"
        root = ["."] if paths else []
        assert_trees_equal(snapshot_tree(expected), snapshot_tree(restored), ignore_root=root)
        assert [i async for i in host_b.list("staging/")] == []
        assert [i async for i in host_b.list("restore/")] == []
        assert all(i.tier is Tier.ARCHIVE for i in [await host_b.stat(p) for p in packs])  # left in place
