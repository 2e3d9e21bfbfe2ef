"""``tiervault tier`` (the CLI fixtures are test_cli's) and ``Vault.tier``'s refusals: a date in the
past, a date that is not one, a store without tiers; a policy whose thresholds contradict the
minimum retention periods is named in the report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import tiervault
from tests.e2e import KDF, PASSWORD
from tests.prune.helpers import memory_vault
from tests.support import FakeClock, MemoryBackend
from tests.test_cli import FAST_KDF, Run, repo, run, snapshot_id, source, vault  # noqa: F401
from tiervault import UsageError
from tiervault.backend.base import Capabilities
from tiervault.cli import ExitCode
from tiervault.repo.repository import Repository


def test_tier_json_preview_and_apply(vault: Path, source: Path, run: Run) -> None:  # noqa: F811
    assert run("protect", str(source), "--name", "src", "--cool-after-days", "30").code == 0
    snapshot_id(run)
    res = run("tier", "--json")
    assert res.code == 0, res.err
    got = res.json()
    assert got["dry_run"] is False and got["moves"] == [] and got["tiers"]["hot"]["objects"] >= 1
    later = (datetime.now(UTC) + timedelta(days=40)).date().isoformat()
    res = run("tier", "--as-of", later, "--json")
    assert res.code == 0, res.err
    preview = res.json()
    assert preview["dry_run"] is True and preview["as_of"].startswith(later)
    assert [(m["from"], m["to"]) for m in preview["moves"]] == [("hot", "cool")]
    assert "cool after 30 days" in preview["moves"][0]["reason"]
    assert run("tier", "--json").json()["tiers"]["cool"]["objects"] == 0  # the preview moved nothing
    res = run("tier", "--as-of", later)
    assert res.code == 0 and "would move 1 pack" in res.out and "cool" in res.out
    res = run("tier", "--dry-run", "--tz", "Europe/Berlin")
    assert res.code == 0 and "would move 0 packs" in res.out
    assert run("tier", "--tz", "Mars/Olympus").code == ExitCode.USAGE


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2001-01-01", "is in the past"),
        ("2001-01-01T00:00:00Z", "is in the past"),
        ("next year", "is not a date or time"),
        ("2027-13-01", "is not a date or time"),
        ("2999-01-01T00:00:00", "has no time zone"),
    ],
)
def test_bad_as_of_is_a_usage_error(vault: Path, run: Run, value: str, message: str) -> None:  # noqa: F811
    res = run("tier", "--as-of", value)
    assert res.code == ExitCode.USAGE and message in res.err, res.err


def test_contradicting_thresholds_are_reported(vault: Path, source: Path, run: Run) -> None:  # noqa: F811
    args = ("--cool-after-days", "30", "--cold-after-days", "40")
    assert run("protect", str(source), "--name", "src", *args).code == 0
    snapshot_id(run)
    res = run("tier", "--dry-run", "--json")
    assert res.code == 0, res.err
    (warning,) = res.json()["warnings"]
    assert "cold_after_days 40 is sooner than cool_after_days 30 plus cool's 30-day minimum" in warning


async def test_vault_tier_refusals(tmp_path: Path) -> None:
    clock = FakeClock()
    v, _repo = await memory_vault(clock)
    now = datetime.fromtimestamp(clock.now(), UTC)
    with pytest.raises(UsageError, match="is in the past"):
        await v.tier(as_of=now - timedelta(seconds=1))
    with pytest.raises(UsageError, match="must be a datetime"):
        await v.tier(as_of="2030-01-01")  # type: ignore[arg-type]
    report = await v.tier(as_of=now)  # now itself is no past
    assert report.dry_run and report.as_of == now


async def test_a_store_without_tiers_is_refused(tmp_path: Path) -> None:
    class NoTiers(MemoryBackend):
        @property
        def capabilities(self) -> Capabilities:
            return Capabilities(leases=True)

    v = tiervault.Vault(await Repository.init(NoTiers(), PASSWORD.encode(), kdf=KDF))
    with pytest.raises(UsageError, match="has no access tiers"):
        await v.tier()
    assert (await v.tier(dry_run=True)).moves == []
