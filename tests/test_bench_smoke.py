"""The benchmark script still runs end to end: ``bench/bench.py --smoke`` (tiny corpus, tiervault only)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

from tests.support.benchrun import run_bench

ROOT = Path(__file__).resolve().parent.parent
STEPS = ("init", "initial", "mutated", "no-change", "restore")


def test_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run_bench("--smoke", "--json", str(out), "--workdir", str(tmp_path / "work"))
    data = json.loads(out.read_text())

    assert data["verification_ok"] is True
    assert "error" not in data
    assert data["missing"] == {}  # --smoke selects tiervault alone: nothing to be missing
    assert data["config"]["systems"] == ["tiervault"]
    if importlib.util.find_spec("matplotlib") is not None:  # the chart goes next to the JSON
        assert data["chart"] == str(out.with_suffix(".png"))
        assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    main = data["scenarios"]["main"]
    assert len(main["runs"]) == 1
    run = main["runs"][0]
    assert run["verification"]["tiervault"]["ok"] is True
    assert run["verification"]["tiervault"]["entries"] > 0
    for step in STEPS:
        fig = main["median"]["tiervault"][step]
        assert fig["wall_s"] > 0, step
        assert fig["cpu_s"] > 0, step
        assert fig["peak_rss_mb"] > 0, step
        assert fig["repo_bytes"] > 0, step
        if step != "init":
            assert fig["mb_s"] > 0, step
    # the snapshot stats come from the API, through bench/tv_step.py
    stats = run["systems"]["tiervault"]["initial"]["details"]["stats"]
    assert stats["bytes_total"] == run["corpus_bytes_initial"]
    assert run["systems"]["tiervault"]["no-change"]["details"]["stats"]["bytes_read"] == 0


LIMIT_STAGES = ("read", "chunk", "hash", "compress", "encrypt", "pack")


def test_bench_limits_smoke(tmp_path: Path) -> None:
    """``--limits --smoke``: a 16 MiB buffer, no Azurite; every CPU stage gets positive figures."""
    out = tmp_path / "limits.json"
    stdout = run_bench("--limits", "--smoke", "--json", str(out))
    limits = json.loads(out.read_text())["limits"]
    assert limits["buffer_bytes"] == 16 << 20
    stages = limits["stages"]
    for stage in LIMIT_STAGES:
        fig = stages[stage]
        assert fig["mb_s_1"] > 0, stage
        assert fig["mb_s_2"] > 0, stage
        assert fig["scaling"] > 0, stage
        assert fig["bytes"] > 0, stage
    assert "skipped" in stages["upload"]  # no Azurite in the smoke path
    assert "raw limits" in stdout


def test_bench_prune_smoke(tmp_path: Path) -> None:
    """``--scenarios prune`` on a tiny corpus: every measured system reclaims bytes, and its latest
    point restores byte-exact after the prune; a system that cannot run it is skipped with the reason
    (tiervault without ``prune``, restic not installed), never silently."""
    out = tmp_path / "prune.json"
    argv = ("--scenarios", "prune", "--systems", "tiervault,restic", "--scale", "0.005", "--runs", "1")
    run_bench(*argv, "--json", str(out), "--workdir", str(tmp_path / "work"), timeout=900)
    data = json.loads(out.read_text())
    assert "error" not in data and data["verification_ok"] is True
    assert "main" not in data["scenarios"]
    prune = data["scenarios"]["prune"]
    assert set(prune["systems"]) <= {"tiervault", "restic"}
    assert set(prune["systems"]) | set(prune["skipped"]) >= {"tiervault", "restic"}
    if "tiervault" in prune["skipped"]:
        assert "prune --help" in prune["skipped"]["tiervault"]
    if "restic" in prune["skipped"]:
        assert shutil.which("restic") is None
    for run in prune["runs"]:
        assert len(run["mutations"]) == 10
        for name, fig in run["systems"].items():
            assert run["verification"][name]["ok"] is True, name
            assert fig["repo_after"] < fig["repo_before"], name
            assert fig["reclaimed_bytes"] == fig["repo_before"] - fig["repo_after"] > 0, name
            assert fig["prune_wall_s"] > 0 and fig["prune_peak_rss_mb"] > 0, name
        if "tiervault" in run["systems"]:  # a second run once the grace passed (aged store state)
            tv = run["systems"]["tiervault"]
            assert set(tv["steps"]) == {"forget-prune", "prune-again"} and tv["aged_objects"] > 0
    if set(prune["systems"]) == {"tiervault", "restic"}:
        assert {r["metric"] for r in prune["ratios"]} >= {"repo_after", "prune_wall_s", "reclaimed_bytes"}


def test_bench_tiering_smoke(tmp_path: Path) -> None:
    """``--scenarios tiering`` over a few simulated days of a tiny corpus: every day's point taken,
    forgotten by the GFS policy, pruned and tiered in process; the final figures (per tier, cost
    against all-Hot, early deletions, the oldest point's restore plan) are in the JSON."""
    out = tmp_path / "tiering.json"
    argv = ("--scenarios", "tiering", "--systems", "tiervault", "--tiering-days", "12")
    stdout = run_bench(*argv, "--tiering-scale", "0.01", "--json", str(out), "--workdir", str(tmp_path / "w"))
    data = json.loads(out.read_text())
    assert "error" not in data and set(data["scenarios"]) == {"tiering"}
    tiering = data["scenarios"]["tiering"]
    assert tiering["config"]["days"] == 12 and tiering["check_ok"] is True
    assert "MemoryBackend" in tiering["backend"] and "FakeClock" in tiering["backend"]
    assert tiering["totals"]["points_taken"] == 12 and tiering["totals"]["forgotten"] > 0
    (final,) = tiering["checkpoints"]  # 12 days: no checkpoint before the last day
    assert final["day"] == 12 and final["points"] == 12 - tiering["totals"]["forgotten"]
    assert sum(t["bytes"] for t in final["tiers"].values()) == final["bytes"] > 0
    assert final["all_hot_monthly_cost"] >= final["monthly_cost"] > 0
    early = tiering["early_deletion"]
    assert early["charges"] == len(early["list"]) and early["cost"] >= 0
    oldest = tiering["restore_oldest"]
    assert oldest["standard"]["readable"] is True  # 12 days: nothing can be in Archive yet
    assert oldest["standard"]["now_files"] == oldest["standard"]["files"] > 0
    assert "early-deletion charges incurred" in stdout
