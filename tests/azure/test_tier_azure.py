"""The tierer on Azurite: real Set Blob Tier in Blob Batch requests, packs of different ages going
to Cool, Cold and Archive, metadata staying Hot, the store's own tier-change time read back, and a
re-run (resuming) planning nothing more."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.storage.blob.aio import ContainerClient

import tiervault
from tests.azure.conftest import blob_names
from tests.azure.test_e2e_azure import init_vault
from tiervault.backend.azure import AzureBackend
from tiervault.backend.base import Tier

pytestmark = pytest.mark.usefixtures("no_unclosed_sessions")

THRESHOLDS = tiervault.Policy(cool_after_days=30, cold_after_days=90, archive_after_days=180)


async def test_tier_moves_packs_by_age_in_batches(
    container_url: str, sdk: ContainerClient, backend: AzureBackend, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    now = datetime.now(UTC)
    ages = {"archive.bin": 200, "cold.bin": 100, "cool.bin": 40, "hot.bin": 10}
    async with init_vault(container_url) as vault:
        await vault.protect(src, name="src", policy=THRESHOLDS)
        for name, age in ages.items():  # oldest first; each point holds only its own file
            for old in src.iterdir():
                old.unlink()
            (src / name).write_bytes(random.Random(name).randbytes(200 << 10))
            await vault.snapshot("src", time=now - timedelta(days=age))
        data = await blob_names(sdk, "data/")
        assert len(data) == 4
        plan = await vault.tier(dry_run=True)
        assert sorted(m.target.value for m in plan.moves) == ["archive", "cold", "cool"]
        assert {b.blob_tier async for b in sdk.list_blobs()} == {"Hot"}  # a dry run moves nothing
        before = datetime.now(UTC).replace(microsecond=0)  # store times have whole seconds
        report = await vault.tier()
        assert [(m.pack, m.target) for m in report.moves] == [(m.pack, m.target) for m in plan.moves]
        assert report.batches == 3 and not report.failed
        tiers = {b.name: b.blob_tier async for b in sdk.list_blobs()}
        assert sorted(tiers[n] for n in data) == ["Archive", "Cold", "Cool", "Hot"]
        assert {t for n, t in tiers.items() if not n.startswith("data/")} == {"Hot"}  # metadata
        for move in report.moves:
            info = await backend.stat(move.pack)
            props = await sdk.get_blob_client(move.pack).get_blob_properties()
            assert info.tier is move.target
            assert info.tier_changed is not None and info.tier_changed >= before
            assert props.blob_tier_change_time is not None  # the store's own record, read back
            assert info.tier_changed == props.blob_tier_change_time
        (hot,) = set(data) - {m.pack for m in report.moves}
        props = await sdk.get_blob_client(hot).get_blob_properties()
        assert (await backend.stat(hot)).tier_changed == props.creation_time  # never moved
        again = await vault.tier()  # resuming / re-running: nothing left to do
        assert again.moves == [] and again.batches == 0
        assert again.tiers[Tier.ARCHIVE].objects == 1
