"""``stats --cost`` on Azurite: the tiers are the blobs' own access tiers (Set Blob Tier for real),
through the API and the CLI."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import tiervault
from tests.azure.conftest import NO_RETRIES
from tests.azure.test_e2e_azure import AZ, PASSWORD, init_vault
from tiervault.backend.azure import AzureBackend
from tiervault.backend.base import Tier
from tiervault.cli import ExitCode, main
from tiervault.costs import default_prices

pytestmark = pytest.mark.usefixtures("no_unclosed_sessions")


async def test_stats_reads_the_blob_tiers(
    container_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(bytes(range(256)) * 4000)
    async with init_vault(container_url, pack_size=1 << 20) as v:
        await v.protect(src, name="src")
        await v.snapshot("src")
    async with AzureBackend.from_url(container_url, **NO_RETRIES) as store:
        blobs = {o.name: o.size async for o in store.list("")}
        data = [n for n in blobs if n.startswith("data/")]
        assert data
        await store.set_tier_many(data, Tier.COLD)
    async with tiervault.open(container_url, password=PASSWORD, azure=AZ, cache_dir=False) as v:
        report = await v.stats(cost=True)
    cold = next(t for t in report.tiers if t.tier is Tier.COLD)
    assert (cold.objects, cold.bytes) == (len(data), sum(blobs[n] for n in data))
    t = default_prices()
    assert cold.estimated_monthly_cost == pytest.approx(
        sum(max(blobs[n], 128 << 10) for n in data) * t.tier(Tier.COLD).storage_per_gb_month / 2**30
    )
    assert report.objects == len(blobs) and report.bytes == sum(blobs.values())
    assert report.points[0].bytes > 0 and report.points[0].unique_bytes == report.points[0].bytes

    monkeypatch.setenv("TIERVAULT_PASSWORD", PASSWORD)
    capsys.readouterr()
    code = await _cli(["-r", container_url, "--no-cache", "stats", "--cost", "--json"])
    got = json.loads(capsys.readouterr().out)
    assert code == ExitCode.OK
    assert {x["tier"]: x["objects"] for x in got["tiers"]}["cold"] == len(data)
    assert got["cost"]["estimate"] is True


async def _cli(argv: list[str]) -> int:
    """``main`` runs its own event loop: off this test's loop, in a thread."""
    return await asyncio.to_thread(main, argv)
