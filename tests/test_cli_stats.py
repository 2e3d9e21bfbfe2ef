"""``tiervault stats [--cost] [--prices FILE] [--json]`` (the CLI's fixtures are test_cli's)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.e2e import repo_objects
from tests.test_cli import Run, repo, run, snapshot_id, source, vault  # noqa: F401
from tiervault.backend.base import Tier
from tiervault.backend.local import LocalBackend
from tiervault.cli import ExitCode
from tiervault.costs import default_prices


def _archive_data(repo: Path) -> list[str]:  # noqa: F811
    packs = repo_objects(repo, "data")

    async def go() -> None:
        async with LocalBackend(repo) as store:
            await store.set_tier_many(packs, Tier.ARCHIVE)

    asyncio.run(go())
    return packs


def test_stats_json_counts_tiers_and_points(vault: Path, run: Run) -> None:  # noqa: F811
    first = snapshot_id(run)
    packs = _archive_data(vault)
    res = run("stats", "--json")
    assert res.code == ExitCode.OK, res.err
    got = res.json()
    tiers = {t["tier"]: t for t in got["tiers"]}
    sizes = [(vault / p).stat().st_size for p in packs]
    assert (tiers["archive"]["objects"], tiers["archive"]["bytes"]) == (len(packs), sum(sizes))
    assert "cost" not in got and "estimated_monthly_cost" not in tiers["hot"]
    assert [p["id"] for p in got["points"]] == [first]
    assert got["points"][0]["unique_bytes"] == got["points"][0]["bytes"] > 200_000
    assert got["items"][0]["name"] == "src" and got["items"][0]["points"] == 1


def test_stats_cost_is_labelled_an_estimate(vault: Path, run: Run) -> None:  # noqa: F811
    snapshot_id(run)
    _archive_data(vault)
    res = run("stats", "--cost", "--json")
    assert res.code == ExitCode.OK, res.err
    cost = res.json()["cost"]
    assert cost["estimate"] is True and "estimate" in cost["note"]
    assert cost["prices"] == default_prices().to_json()
    assert cost["estimated_saving"] > 0 and 0 < cost["estimated_saving_percent"] < 100

    res = run("stats", "--cost")
    assert res.code == ExitCode.OK, res.err
    assert "ESTIMATES" in res.out and "USD" in res.out and "2025-01-15" in res.out
    assert "all in Hot" in res.out and "archive" in res.out

    res = run("stats")
    assert res.code == ExitCode.OK and "ESTIMATES" not in res.out and "archive" in res.out


def test_stats_with_a_user_price_file(vault: Path, run: Run, tmp_path: Path) -> None:  # noqa: F811
    snapshot_id(run)
    raw = default_prices().to_json()
    raw["currency"] = "EUR"
    f = tmp_path / "eur.json"
    f.write_text(json.dumps(raw))
    res = run("stats", "--cost", "--prices", str(f), "--json")
    assert res.code == ExitCode.OK, res.err
    assert res.json()["cost"]["currency"] == "EUR"
    # what --json shows is a price file again
    g = tmp_path / "again.json"
    g.write_text(json.dumps(res.json()["cost"]["prices"]))
    assert run("stats", "--cost", "--prices", str(g)).code == ExitCode.OK


def test_stats_refuses_bad_price_files_and_prices_without_cost(
    vault: Path,  # noqa: F811
    run: Run,  # noqa: F811
    tmp_path: Path,
) -> None:
    raw = default_prices().to_json()
    raw["tiers"]["cold"]["read_per_10k"] = -1
    f = tmp_path / "neg.json"
    f.write_text(json.dumps(raw))
    res = run("stats", "--cost", "--prices", str(f))
    assert res.code == ExitCode.USAGE
    assert "tiers.cold.read_per_10k" in res.err and str(f) in res.err

    raw = default_prices().to_json()
    raw["tiers"]["cool"]["colour"] = "blue"
    f.write_text(json.dumps(raw))
    res = run("stats", "--cost", "--prices", str(f))
    assert res.code == ExitCode.USAGE and "unknown field tiers.cool.colour" in res.err

    res = run("stats", "--cost", "--prices", str(tmp_path / "absent.json"))
    assert res.code == ExitCode.USAGE and "cannot read the price file" in res.err

    res = run("stats", "--prices", str(f))
    assert res.code == ExitCode.USAGE and "--cost" in res.err
