"""``tiervault plan-restore`` and ``tiervault restore --rehydrate`` (the CLI's fixtures are test_cli's):
the plan in text and JSON, the fail-fast exit code 14 with the plan summary and nothing written,
and a restore from Archive on the local backend, whose rehydration takes no time when opened by the
CLI (the delayed flow, resumed across processes, is in tests/e2e/test_restore_archive.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.test_cli import FAST_KDF, Run, repo, run, snapshot_id, source, tree, vault  # noqa: F401
from tiervault.backend.base import Tier
from tiervault.backend.local import LocalBackend
from tiervault.cli import ExitCode


def archive_data(repo: Path) -> list[str]:  # noqa: F811
    async def go() -> list[str]:
        async with LocalBackend(repo) as store:
            packs = sorted([i.name async for i in store.list("data/")])
            await store.set_tier_many(packs, Tier.ARCHIVE)
            return packs

    return asyncio.run(go())


def staging_and_records(repo: Path) -> list[str]:  # noqa: F811
    """The objects (files) under ``staging/`` and ``restore/``; empty directories do not count."""
    found = [p for d in ("staging", "restore") for p in (repo / d).rglob("*") if p.is_file()]
    return sorted(str(p.relative_to(repo)) for p in found)


def test_plan_restore_and_the_fail_fast_exit_code(vault: Path, run: Run, tmp_path: Path) -> None:  # noqa: F811
    point = snapshot_id(run)
    res = run("plan-restore", point, "--json")
    assert res.code == 0, res.err
    assert res.json()["readable"] and res.json()["rehydration"] is None
    packs = archive_data(vault)

    res = run("plan-restore", point, "--priority", "high", "--json")
    assert res.code == 0, res.err
    plan = res.json()
    assert plan["point"] == point and plan["rehydrate_packs"] == len(packs)
    assert plan["rehydration"]["expected_wait"] == "estimate: up to 1 h"
    assert plan["rehydration"]["estimated_cost"] > 0 and plan["rehydration"]["currency"] == "USD"
    assert plan["now_files"] == 0 and plan["blocked_files"] == 3
    res = run("plan-restore", point, "--path", "docs")
    assert res.code == 0, res.err
    assert "to rehydrate at standard priority, estimate: up to 15 h" in res.out
    assert "to rehydrate (estimate from list prices" in res.out and " USD " in res.out
    assert "can be restored right now" in res.out

    target = tmp_path / "out"
    res = run("restore", point, "--target", str(target))
    assert res.code == ExitCode.REHYDRATION_NEEDED == 14
    assert "--rehydrate" in res.err and "nothing was written" in res.err
    assert "to rehydrate at standard priority" in res.out  # the plan summary
    res = run("restore", point, "--target", str(target), "--json")
    assert res.code == 14 and res.json()["plan"]["rehydrate_packs"] == len(packs)
    assert not target.exists() and staging_and_records(vault) == []
    res = run("restore", point, "--target", str(target), "--wait")
    assert res.code == ExitCode.USAGE and "--rehydrate" in res.err


def test_restore_rehydrate_on_a_local_repository(
    vault: Path,  # noqa: F811
    source: Path,  # noqa: F811
    run: Run,  # noqa: F811
    tmp_path: Path,
) -> None:
    point = snapshot_id(run)
    archive_data(vault)
    target = tmp_path / "out"
    res = run("restore", point, "--target", str(target), "--rehydrate", "--priority", "high", "--json")
    assert res.code == 0, res.err  # the local backend's copies are readable at once
    out = res.json()
    assert out["ok"] and not out["awaiting_rehydration"] and out["staging_removed"] > 0
    assert out["rehydration"]["priority"] == "high"
    assert tree(target) == tree(source)
    assert staging_and_records(vault) == []
    res = run("restore", point, "--target", str(tmp_path / "again"), "--rehydrate", "--wait")
    assert res.code == 0, res.err
    assert "from staging copies" in res.out
    assert "rehydration since " in res.err and " ready (" in res.err  # the progress line of --wait
