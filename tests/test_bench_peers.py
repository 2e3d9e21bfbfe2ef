"""The side-by-side benchmark's own logic (bench/targets.py, bench/peers.py, bench/chart.py, bench/measure.py)
on synthetic figures: cheap, no peer program needed. The optional last test runs one Azure system."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from tests.support import azure_skips
from tests.support.benchrun import run_bench

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
BENCH = BENCH_DIR / "bench.py"


def _load(name: str) -> ModuleType:
    """A bench/ module under a name of its own (bench/ is not a package and stays off sys.path)."""
    spec = importlib.util.spec_from_file_location(f"tvbench_{name}", BENCH_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    sys.modules.setdefault(name, module)  # what a later bench module imports it as (chart: targets)
    return module


targets = _load("targets")
peers = _load("peers")
chart = _load("chart")

STEPS = targets.STEPS


def _steps(mb_s: float, wall: float, repo: float, rss: float) -> dict[str, dict[str, float | None]]:
    """One system's figures for one run: every step alike, so the expected ratios are easy."""
    out: dict[str, dict[str, float | None]] = {}
    for step in STEPS:
        out[step] = {m: 1.0 for m in targets.METRICS}
        out[step].update(mb_s=None if step == "init" else mb_s, wall_s=wall, repo_bytes=repo, peak_rss_mb=rss)
    return out


def _runs(systems: dict[str, list[tuple[float, float, float, float]]]) -> list[dict[str, Any]]:
    nruns = len(next(iter(systems.values())))
    return [
        {"corpus_bytes_initial": 10_000_000, "systems": {n: _steps(*figs[i]) for n, figs in systems.items()}}
        for i in range(nruns)
    ]


def _row(rows: list[dict[str, Any]], system: str, peer: str, label: str) -> dict[str, Any]:
    (row,) = [r for r in rows if (r["system"], r["peer"], r["label"]) == (system, peer, label)]
    return row


# ------------------------------------------------------------------------------------ ratios


def test_ratios_pairs_targets_and_spread() -> None:
    runs = _runs(
        {
            # (MB/s, wall s, repo bytes, peak RSS MB) per run
            "tiervault": [(100.0, 1.0, 80.0, 50.0), (90.0, 1.0, 80.0, 50.0), (110.0, 1.0, 80.0, 50.0)],
            "restic": [(40.0, 4.0, 100.0, 100.0), (50.0, 4.0, 100.0, 100.0), (60.0, 4.0, 100.0, 100.0)],
            "borg-lz4": [(200.0, 0.5, 40.0, 25.0)] * 3,
        }
    )
    med = targets.medians(runs, ["tiervault", "restic", "borg-lz4"])
    assert med["tiervault"]["initial"]["mb_s"] == 100.0
    assert med["restic"]["initial"]["mb_s"] == 50.0
    assert med["tiervault"]["init"]["mb_s"] is None  # None values never make a median

    selected = ["tiervault", "restic", "borg-lz4"]
    rows, skipped = targets.ratios(med, runs, selected=selected, missing={})

    initial = _row(rows, "tiervault", "restic", "initial backup MB/s")
    assert initial["ratio"] == pytest.approx(2.0)
    assert (initial["op"], initial["bound"], initial["result"]) == (">=", 2.0, "PASS")
    assert initial["per_run"] == pytest.approx([2.5, 1.8, 110 / 60])  # the spread: one ratio per run

    no_change = _row(rows, "tiervault", "restic", "no-change backup time")
    assert no_change["ratio"] == pytest.approx(0.25) and no_change["result"] == "PASS"
    for step in ("initial", "mutated", "no-change"):
        assert _row(rows, "tiervault", "restic", f"repo size after {targets.STEP_LABELS[step]}")["ratio"] == (
            pytest.approx(0.8)
        )
    rss = [r for r in rows if r["peer"] == "restic" and r["metric"] == "peak_rss_mb"]
    assert [r["step"] for r in rss] == list(STEPS)  # the RSS target holds in every step
    assert all(r["result"] == "PASS" for r in rss)

    # borg: the same metrics, no bounds
    borg = [r for r in rows if r["peer"] == "borg-lz4"]
    assert {r["label"] for r in borg} == {r["label"] for r in rows if r["peer"] == "restic"}
    assert all(r["op"] is None and r["bound"] is None and r["result"] == "info" for r in borg)
    assert _row(rows, "tiervault", "borg-lz4", "restore MB/s")["ratio"] == pytest.approx(0.5)

    # not selected: skipped with a reason, never silently
    reasons = {(s["system"], s["peer"]): s["reason"] for s in skipped}
    assert "borg-zstd3 not selected" in reasons["tiervault", "borg-zstd3"]
    assert "tiervault-az-cold not selected" in reasons["tiervault-az-cold", "restic-rclone"]
    assert not any(r["peer"] in ("borg-zstd3", "restic-rclone") for r in rows)


def test_ratios_miss_and_missing_peer() -> None:
    runs = _runs(
        {
            "tiervault": [(100.0, 3.0, 120.0, 150.0)],
            "tiervault-az-cold": [(30.0, 2.0, 120.0, 150.0)],
            "tiervault-az-warm": [(40.0, 2.0, 120.0, 150.0)],
            "restic-rclone": [(25.0, 2.0, 100.0, 100.0)],
        }
    )
    names = list(runs[0]["systems"])
    med = targets.medians(runs, names)
    missing = {"restic": "apt-get install restic", "borg-lz4": "apt-get install borgbackup"}
    rows, skipped = targets.ratios(med, runs, selected=names, missing=missing)

    cold = _row(rows, "tiervault-az-cold", "restic-rclone", "initial backup MB/s")
    assert cold["ratio"] == pytest.approx(1.2) and cold["bound"] == 1.6 and cold["result"] == "MISS"
    warm = _row(rows, "tiervault-az-warm", "restic-rclone", "initial backup MB/s")
    assert warm["ratio"] == pytest.approx(1.6) and warm["result"] == "PASS"  # the bound itself passes
    assert _row(rows, "tiervault-az-cold", "restic-rclone", "restore MB/s")["bound"] == 1.3
    assert _row(rows, "tiervault-az-warm", "restic-rclone", "restore MB/s")["result"] == "info"
    assert _row(rows, "tiervault-az-cold", "restic-rclone", "peak RSS (max of all steps)")["ratio"] == (
        pytest.approx(1.5)
    )

    reasons = {(s["system"], s["peer"]): s["reason"] for s in skipped}
    assert reasons["tiervault", "restic"] == "restic is MISSING (apt-get install restic)"
    assert "apt-get install borgbackup" in reasons["tiervault", "borg-lz4"]
    assert "borg-zstd3 not selected" in reasons["tiervault", "borg-zstd3"]
    assert not any(r["peer"] == "restic" for r in rows)


def test_target_pick_and_result() -> None:
    steps = _steps(10.0, 1.0, 5.0, 20.0)
    steps["restore"]["peak_rss_mb"] = 70.0
    steps["init"]["peak_rss_mb"] = None
    assert targets.pick(steps, targets.Target("rss", "*", "peak_rss_mb")) == 70.0
    t = targets.Target("x", "initial", "wall_s", "<=", 0.5)
    assert (t.result(0.5), t.result(0.51), t.result(None)) == ("PASS", "MISS", None)
    assert targets.Target("y", "initial", "mb_s").result(3.0) == "info"


# ------------------------------------------------------------------------------------ peers


def test_missing_tools_names_the_install_command() -> None:
    def which(name: str) -> str | None:
        return None if name in ("rclone", "borg") else f"/usr/bin/{name}"

    got = peers.missing_tools(list(peers.SYSTEMS), which=which)
    assert got == {
        "restic-rclone": "apt-get install rclone",
        "borg-lz4": "apt-get install borgbackup",
        "borg-zstd3": "apt-get install borgbackup",
    }
    assert peers.missing_tools(["restic-rclone"], which=lambda _n: None) == {
        "restic-rclone": "apt-get install restic rclone"
    }


def test_rclone_env_from_an_account_sas(tmp_path: Path) -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    sas = peers.account_sas("devstoreaccount1", "a2V5", now=now)
    q = {k: v[0] for k, v in parse_qs(sas).items()}
    assert q["ss"] == "b"  # the blob service
    assert set(q["srt"]) == set("sco")  # service, container, object
    assert set(q["sp"]) == set("rwdlac")
    assert datetime.fromisoformat(q["se"].replace("Z", "+00:00")) == now + timedelta(days=1)
    assert q["sig"]

    config = tmp_path / "rclone.conf"
    env = peers.rclone_env("http://127.0.0.1:41234/devstoreaccount1", sas, config)
    assert env["RCLONE_CONFIG"] == str(config)  # never ~/.config/rclone
    assert env["RCLONE_CONFIG_TVBENCH_TYPE"] == "azureblob"
    url = urlparse(env["RCLONE_CONFIG_TVBENCH_SAS_URL"])
    assert (url.scheme, url.hostname, url.port, url.path) == ("http", "127.0.0.1", 41234, "/devstoreaccount1")
    assert url.query == sas
    assert peers.RCLONE_REMOTE == "tvbench"


def test_restored_roots_and_borg_argv(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    target = tmp_path / "target"
    expected = target / str(corpus.resolve()).lstrip("/")
    borg = peers.Borg(tmp_path, "zstd,3")
    assert borg.name == "borg-zstd3"
    borg.start_run(0)
    assert borg.restored_root(target, corpus) == expected  # borg strips the leading "/"
    assert peers.Restic(tmp_path).restored_root(target, corpus) == expected
    create = borg.backup(corpus, "mutated")
    assert create[:5] == ["borg", "create", "--json", "--compression", "zstd,3"]
    assert create[-2:] == [f"{borg.repo}::mutated", str(corpus)]
    assert borg.restore(target) == ["borg", "extract", f"{borg.repo}::mutated"]
    assert borg.cwd("restore", target) == target  # borg extracts into its working directory
    env = borg.env()
    for var in ("BORG_BASE_DIR", "BORG_CACHE_DIR", "BORG_CONFIG_DIR", "BORG_SECURITY_DIR"):
        assert env[var].startswith(str(tmp_path / "state" / "borg-zstd3"))


def test_rotated_order_puts_every_system_first_once() -> None:
    bench = _load_bench()
    systems = [peers.Tiervault(Path("/w")), peers.Restic(Path("/w")), peers.Borg(Path("/w"), "lz4")]
    firsts = [bench.rotated(systems, run)[0].name for run in range(3)]
    assert sorted(firsts) == sorted(s.name for s in systems)
    assert [s.name for s in bench.rotated(systems, 1)] == ["restic", "borg-lz4", "tiervault"]


def _load_bench() -> ModuleType:
    sys.path.insert(0, str(BENCH_DIR))  # bench.py imports chart, peers and targets by plain name
    try:
        return _load("bench")
    finally:
        sys.path.remove(str(BENCH_DIR))


# ------------------------------------------------------------------------------------ measure.py


def test_measure_adopts_and_counts_an_orphaned_grandchild(tmp_path: Path) -> None:
    """Like restic's rclone: the command exits without waiting for its child; measure.py adopts it."""
    result = tmp_path / "rusage.json"
    # the grandchild outlives its parent for sure: it exits only once it has been re-parented (to
    # measure.py, the subreaper), a state it polls, not a sleep long enough "in practice"
    grandchild = (
        "import os, sys, time; x = bytearray(300_000_000); x[::4096] = b'a' * len(x[::4096])\n"
        "deadline = time.monotonic() + 30\n"
        "while os.getppid() == int(sys.argv[1]) and time.monotonic() < deadline: time.sleep(0.01)"
    )
    command = (
        "import os, subprocess, sys; "
        f"subprocess.Popen([sys.executable, '-c', {grandchild!r}, str(os.getpid())]); print('left it')"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            str(BENCH_DIR / "measure.py"),
            str(result),
            sys.executable,
            "-c",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    r = json.loads(result.read_text())
    assert r["exit_code"] == 0 and r["subreaper"] is True
    assert len(r["adopted"]) == 1
    assert r["adopted"][0]["maxrss_bytes"] >= 300_000_000
    assert r["main"]["maxrss_bytes"] < 300_000_000  # os.wait4 on the command alone misses it
    assert r["maxrss_bytes"] == r["main"]["maxrss_bytes"] + r["adopted"][0]["maxrss_bytes"]
    assert r["user_s"] == pytest.approx(r["main"]["user_s"] + r["adopted"][0]["user_s"])
    assert r["sys_s"] == pytest.approx(r["main"]["sys_s"] + r["adopted"][0]["sys_s"])
    assert r["wall_all_s"] >= r["wall_s"]


# ------------------------------------------------------------------------------------ chart and report


def _synthetic_result() -> dict[str, Any]:
    runs = _runs({"tiervault": [(100.0, 1.0, 8e6, 50.0)], "restic": [(50.0, 4.0, 1e7, 100.0)]})
    for i, r in enumerate(runs):
        r.update(run=i, scenario="main", order=["tiervault", "restic"], corpus_bytes_mutated=10_000_000)
    return {
        "schema": 2,
        "machine": {"date": "2026-01-02T03:04:05+00:00", "cores": 2, "python": "3.11"},
        "config": {"scale": 0.05, "profile": "tree,large", "runs": 1, "systems": ["tiervault", "restic"]},
        "missing": {"borg-lz4": "apt-get install borgbackup"},
        "scenarios": {"main": {"corpus": {}, "runs": runs}},
        "verification_ok": True,
    }


def test_report_prints_ratios_missing_peers_and_draws_the_chart(tmp_path: Path) -> None:
    if not chart.available():
        pytest.skip(f"matplotlib is not installed: {chart.INSTALL_HINT}")
    data = tmp_path / "old.json"
    data.write_text(json.dumps(_synthetic_result()))
    png = tmp_path / "charts" / "again.png"
    stdout = run_bench("--report", str(data), "--chart", str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000
    out = stdout
    assert "tiervault / restic" in out and "2.00x" in out  # the initial backup ratio
    assert "apt-get install borgbackup" in out  # the missing peer, loudly
    assert "borg-zstd3 not selected" in out


def test_chart_skipped_without_matplotlib_is_not_an_error(tmp_path: Path) -> None:
    """With matplotlib hidden, ``--report`` still succeeds and says how to install it."""
    data = tmp_path / "old.json"
    data.write_text(json.dumps(_synthetic_result()))
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "matplotlib.py").write_text("raise ImportError('hidden by the test')\n")
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    stdout = run_bench("--report", str(data), env=env)
    assert "chart skipped" in stdout and "matplotlib" in stdout
    assert not data.with_suffix(".png").exists()


def test_a_missing_peer_is_reported_not_dropped(tmp_path: Path) -> None:
    """Only a missing system selected: nothing is measured, the JSON and the terminal say how to install."""
    out = tmp_path / "bench.json"
    env = {**os.environ, "PATH": str(tmp_path / "empty-bin")}  # no restic, no borg on this PATH
    stdout = run_bench("--systems", "restic,borg-lz4", "--json", str(out), expect=2, env=env)
    data = json.loads(out.read_text())
    assert data["missing"] == {"restic": "apt-get install restic", "borg-lz4": "apt-get install borgbackup"}
    assert "apt-get install restic" in stdout and "apt-get install borgbackup" in stdout


# ------------------------------------------------------------------------------------ optional: Azurite


def _azurite_installed() -> bool:
    from tests.support.azurite import installed_versions

    return installed_versions() is not None


def test_bench_tiervault_az_cold(tmp_path: Path) -> None:
    """One Azure system end to end (~20 s): Azurite started and stopped by bench.py, repository size
    from the container's blobs, the disk tier emptied before every step. Without Azurite: skipped
    loudly, or failed in CI (``tests/support/azure_skips.py``), like every Azure test."""
    if azure_skips.disabled():
        azure_skips.skip_disabled()
    if not _azurite_installed():
        azure_skips.skip_or_fail("Azurite is not installed (python tests/support/azurite.py install)")
    out = tmp_path / "bench.json"
    run_bench(
        *("--systems", "tiervault-az-cold", "--scale", "0.01", "--runs", "1", "--json", str(out)),
        *("--workdir", str(tmp_path / "work")),
        timeout=300,
    )
    data = json.loads(out.read_text())
    run = data["scenarios"]["main"]["runs"][0]
    assert run["verification"]["tiervault-az-cold"]["ok"] is True
    assert run["repositories"]["tiervault-az-cold"].startswith("azurite://127.0.0.1:")
    figs = run["systems"]["tiervault-az-cold"]
    assert figs["initial"]["repo_bytes"] > 0
    assert figs["no-change"]["repo_bytes"] >= figs["initial"]["repo_bytes"]
    restore = figs["restore"]["details"]["stats"]
    assert restore["remote_reads"] > 0  # cold: nothing in the disk tier, every pack from Azurite
    assert "Azurite" in data["machine"]["versions"]["azurite"]
    assert not (tmp_path / "work" / "azurite").exists()  # stopped and cleaned up
