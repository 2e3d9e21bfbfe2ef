"""The benchmark script still runs end to end: ``bench/bench.py --smoke`` (tiny corpus, tiervault only)."""

from __future__ import annotations

import importlib.util
import json
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
