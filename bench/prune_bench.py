"""The prune scenario (issue 11, "Measure"): tiervault against restic on local repositories, and
tiervault on Azurite against restic through rclone on the same Azurite (requests counted).

On a fresh copy of the bench corpus, every system takes ``SNAPSHOTS`` backups, each after
``make_corpus.py --mutate`` with a different seed (``FIRST_SEED``, ``FIRST_SEED + 1``, ...; every
system backs up the same tree after each mutation). Then, measured like every bench step (wall time,
CPU, peak RSS of the process, bench/measure.py):

- restic: ``restic forget --keep-last 3 --prune`` (one run does it all);
- tiervault: ``tiervault forget corpus --keep-last 3 --prune --json``. A tiervault prune only
  *condemns* packs; it deletes them in a later run, once the plan is ``GRACE`` (1 h of store time)
  old (docs/format.md, "Garbage collection: forget and prune"). So the scenario then **ages the
  stored state**: it sets the modification time of every object under ``gc/`` and ``locks/`` of the
  local repository 1 h 2 min into the past (the local backend's store time is the file's mtime; this
  changes the stored state, exactly as the tests age objects, not the rule), and runs
  ``tiervault prune --json`` again, measured as "prune after grace". The output says so.

Reported per system: the repository size before and after, the bytes reclaimed, the prune wall
time (tiervault: both runs, and each), and the peak RSS; as ratios tiervault / restic. Afterwards
each system restores its latest point, verified byte-exact against the corpus.

On Azurite every request goes through a counting reverse proxy (tests/support/faultproxy.py, no
faults): the requests of each prune step are reported per system. There a blob's store time is
``Last-Modified``, set by the service, so nothing can be aged: tiervault on Azurite runs only the
first prune (it condemns, and deletes in a run an hour later), and its figures say so.

When ``tiervault prune --help`` fails (a tiervault without prune), the tiervault systems are skipped
with that reason and restic is still measured.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import peers
from peers import ITEM, PASSWORD, System
from rich.table import Table

SNAPSHOTS = 10
KEEP_LAST = 3
FIRST_SEED = 101
#: how far the gc/ and locks/ objects are set back before the second tiervault prune (GRACE + 2 min)
AGE_S = 3600 + 120
PRUNE_SYSTEMS = ("tiervault", "restic")
MB = 1_000_000

#: (label, metric, op, bound): ``op``/``bound`` are the issue's goals (None: informational)
TARGETS = (
    ("repo size after prune", "repo_after", "<=", 1.0),
    ("prune wall time (all runs)", "prune_wall_s", "<=", 1.0),
    ("bytes reclaimed", "reclaimed_bytes", None, None),
    ("peak RSS of the prune", "prune_peak_rss_mb", None, None),
)
#: on Azurite tiervault's first prune only condemns: its size and time are not the whole job
AZURE_TARGETS = (
    ("storage requests of the prune", "prune_requests", None, None),
    ("prune wall time (first run)", "prune_wall_s", None, None),
    ("repo size after the first prune", "repo_after", None, None),
    ("peak RSS of the prune", "prune_peak_rss_mb", None, None),
)
PAIRS = (
    ("tiervault", "restic", TARGETS),
    ("tiervault-az-warm", "restic-rclone", AZURE_TARGETS),
    ("tiervault-az-cold", "restic-rclone", AZURE_TARGETS),
)
RATIO_TITLE = "prune: tiervault / restic (goals from the issue on local disk; Azurite: informational)"
AZURE_PRUNE_SYSTEMS = ("tiervault-az-warm", "tiervault-az-cold", "restic-rclone")


def tiervault_cli() -> list[str]:
    return [sys.executable, "-m", "tiervault.cli"]


def tiervault_prune_missing() -> str | None:
    """Why tiervault cannot run this scenario (``tiervault prune --help`` fails), or None."""
    try:
        out = subprocess.run(
            [*tiervault_cli(), "prune", "--help"], capture_output=True, text=True, check=False, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`tiervault prune --help` could not run: {exc}"
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or [""]
        return f"`tiervault prune --help` exited {out.returncode} ({tail[0]}): this tiervault has no prune"
    return None


def mutate(corpus: Path, make_corpus: Path, seed: int) -> str:
    argv = [sys.executable, str(make_corpus), "--out", str(corpus), "--seed", str(seed), "--mutate"]
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"make_corpus.py --mutate --seed {seed} failed ({out.returncode}):\n{out.stderr}")
    return out.stdout.strip()


def age_gc_state(repo: Path, seconds: float) -> int:
    """Set the mtime of every object under ``gc/`` and ``locks/`` ``seconds`` into the past (the
    local backend's store time); returns how many objects were aged."""
    when = time.time() - seconds
    n = 0
    for prefix in ("gc", "locks"):
        for p in sorted((repo / prefix).rglob("*")) if (repo / prefix).is_dir() else []:
            if p.is_file() and not p.name.startswith(".tmp-"):
                os.utime(p, (when, when))
                n += 1
    return n


def _json(stdout: str) -> Any:
    try:
        return json.loads(stdout)
    except json.JSONDecodeError:
        return {"stdout_tail": stdout.strip().splitlines()[-3:]}


def prune_steps(sys_: System) -> list[tuple[str, list[str]]]:
    """The measured prune steps of a system: (step, argv)."""
    if isinstance(sys_, peers.Restic):
        return [
            (
                "forget-prune",
                [sys_.exe, "--repo", sys_.repo, "forget", "--keep-last", str(KEEP_LAST), "--prune"],
            )
        ]
    cli = [*tiervault_cli(), "-r", sys_.repo]
    forget = [*cli, "forget", ITEM, "--keep-last", str(KEEP_LAST), "--prune", "--json"]
    if isinstance(sys_, peers.TiervaultAzure):
        return [("forget-prune", forget)]  # Last-Modified cannot be aged: no second run
    return [("forget-prune", forget), ("prune-again", [*cli, "prune", "--json"])]


def run_prune(
    bench: Any,
    systems: list[System],
    pristine: Path,
    make_corpus: Path,
    run: int,
    proxy: CountingAzure | None = None,
) -> dict[str, Any]:
    """One run of the scenario (``bench`` is bench.Bench); the record for the JSON."""
    from bench import compare, manifest  # bench/ is sys.path[0]; imported late: bench imports us

    label = f"{run + 1}/1"
    corpus = bench.work / "corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    shutil.copytree(pristine, corpus, symlinks=True)
    record: dict[str, Any] = {"scenario": "prune", "run": run, "order": [s.name for s in systems]}
    figures: dict[str, dict[str, Any]] = {s.name: {} for s in systems}
    bench.console.print(
        f"[bold]prune: {SNAPSHOTS} snapshots after --mutate, then forget --keep-last {KEEP_LAST} --prune"
    )
    try:
        for s in systems:
            s.start_run(run)
            bench.step(s, "init", s.init(corpus), run=label, corpus_bytes=0)
        backups: dict[str, list[float]] = {s.name: [] for s in systems}
        record["mutations"] = []
        for k in range(SNAPSHOTS):
            record["mutations"].append(mutate(corpus, make_corpus, FIRST_SEED + k))
            size = peers.tree_bytes(corpus)
            for s in systems:
                fig = bench.step(s, "prune-backup", s.backup(corpus, "mutated"), run=label, corpus_bytes=size)
                backups[s.name].append(fig["wall_s"])
        record["corpus_bytes"] = peers.tree_bytes(corpus)
        for s in systems:
            f = figures[s.name]
            f["backup_wall_s"] = backups[s.name]
            f["repo_before"] = s.repo_bytes()
            f["steps"] = {}
            for i, (step, argv) in enumerate(prune_steps(s)):
                if i > 0:  # tiervault's second run: the plan must be GRACE old by store time
                    f["aged_objects"] = age_gc_state(Path(s.repo), AGE_S)
                    f["aged_note"] = (
                        f"before this run, the mtimes of {f['aged_objects']} objects under gc/ and locks/ "
                        f"were set {AGE_S} s into the past (the local store's time): the grace has passed"
                    )
                    bench.console.print(f"  {s.name}: {f['aged_note']}")
                since = time.monotonic()
                fig = bench.step(s, step, argv, run=label, corpus_bytes=0)
                fig["output"] = _json(bench.last_stdout)
                container = getattr(s, "container", "")
                if proxy is not None and container:
                    fig["requests"] = proxy.requests(container, since)
                    bench.console.print(f"  {s.name}: {fig['requests']:,} storage requests ({step})")
                f["steps"][step] = fig
            runs = list(f["steps"].values())
            f["repo_after"] = runs[-1]["repo_bytes"]
            f["repo_after_first_prune"] = runs[0]["repo_bytes"]
            f["reclaimed_bytes"] = f["repo_before"] - f["repo_after"]
            f["reclaimed_first_prune"] = f["repo_before"] - f["repo_after_first_prune"]
            f["prune_wall_s"] = sum(r["wall_s"] for r in runs)
            f["prune_peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
            if all("requests" in r for r in runs):
                f["prune_requests"] = sum(r["requests"] for r in runs)
            if isinstance(s, peers.TiervaultAzure):
                f["note"] = "first prune only: it condemns; the deletion needs a run 1 h later (store time)"
        expected = manifest(corpus)
        record["verification"] = {}
        for s in systems:
            target = bench.target(s)
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            bench.step(s, "prune-restore", s.restore(target), run=label, corpus_bytes=record["corpus_bytes"])
            problems = compare(expected, manifest(s.restored_root(target, corpus)))
            record["verification"][s.name] = {
                "ok": not problems,
                "entries": len(expected),
                "problems": problems[:50],
            }
            bench.report_verification(s.name, "prune: latest point after prune", len(expected), problems)
            shutil.rmtree(target, ignore_errors=True)
    finally:
        for s in systems:
            with contextlib.suppress(Exception):  # cleaning up: the run's own error matters more
                s.end_run()
    record["systems"] = figures
    return record


def prune_ratios(record: dict[str, Any]) -> list[dict[str, Any]]:
    """``system / peer`` of every pair in ``PAIRS`` both of whose systems ran (rows shaped like
    bench's ratio rows)."""
    sysf = record["systems"]
    rows = []
    for system, peer, targets in PAIRS:
        if not {system, peer} <= sysf.keys():
            continue
        for label, metric, op, bound in targets:
            a, b = sysf[system].get(metric), sysf[peer].get(metric)
            ratio = a / b if a is not None and b else None
            result = None if ratio is None else "info" if op is None else "PASS" if ratio <= bound else "MISS"
            rows.append(
                {
                    "group": "prune",
                    "system": system,
                    "peer": peer,
                    "label": label,
                    "step": "prune",
                    "metric": metric,
                    "op": op,
                    "bound": bound,
                    "system_value": a,
                    "peer_value": b,
                    "ratio": ratio,
                    "result": result,
                    "per_run": [ratio],
                }
            )
    return rows


def prune_table(record: dict[str, Any]) -> Table:
    t = Table(
        title=f"prune: {SNAPSHOTS} snapshots, forget --keep-last {KEEP_LAST} --prune", title_justify="left"
    )
    t.add_column("system")
    for col in ("before MB", "1st prune MB", "after MB", "reclaimed MB", "prune s", "RSS MB", "requests"):
        t.add_column(col, justify="right")
    for name, f in record["systems"].items():
        walls = " + ".join(f"{s['wall_s']:.2f}" for s in f["steps"].values())
        t.add_row(
            name,
            f"{f['repo_before'] / MB:.1f}",
            f"{f['repo_after_first_prune'] / MB:.1f}",
            f"{f['repo_after'] / MB:.1f}",
            f"{f['reclaimed_bytes'] / MB:.1f}",
            walls if len(f["steps"]) > 1 else f"{f['prune_wall_s']:.2f}",
            f"{f['prune_peak_rss_mb']:.0f}",
            f"{f['prune_requests']:,}" if "prune_requests" in f else "-",
        )
    return t


class PruneTiervault(peers.Tiervault):
    """tiervault on a local repository; its prune steps run the command line (password from the
    environment)."""

    def env(self) -> dict[str, str]:
        return {**super().env(), "TIERVAULT_PASSWORD": PASSWORD}


class PruneTiervaultAzure(peers.TiervaultAzure):
    """tiervault on Azurite (through the counting proxy); prune steps on the command line."""

    def env(self) -> dict[str, str]:
        return {**super().env(), "TIERVAULT_PASSWORD": PASSWORD}


class CountingAzure:
    """The bench's Azurite seen through a reverse proxy that forwards every request unchanged and
    logs it (tests/support/faultproxy.py, no faults armed): what the systems are given as their
    Azurite, so each step's requests can be counted per container. Sizes are read from Azurite
    itself (not counted)."""

    def __init__(self, azure: peers.AzureSide) -> None:
        from tests.support.faultproxy import FaultProxy  # importable: peers put the repository on sys.path

        self.azure = azure
        self.proxy = FaultProxy(azure.port)

    def start(self) -> None:
        self.proxy.start()

    def stop(self) -> None:
        self.proxy.stop()

    @property
    def port(self) -> int:
        return self.proxy.port

    @property
    def blob_endpoint(self) -> str:
        return self.proxy.blob_endpoint

    def requests(self, container: str, since: float) -> int:
        """Requests for ``container`` (its blobs included) that arrived at or after ``since``."""
        return sum(1 for r in self.proxy.records(since) if r.path.lstrip("/").split("/")[1:2] == [container])

    def __getattr__(self, name: str) -> Any:  # sas, container names, create/delete, container_bytes
        return getattr(self.azure, name)


def _make(name: str, work: Path, which: dict[str, str | None], azure: CountingAzure | None) -> System:
    restic = which.get("restic") or "restic"
    if name == "tiervault":
        return PruneTiervault(work)
    if name == "restic":
        return peers.Restic(work, restic)
    assert azure is not None
    if name == "restic-rclone":
        return peers.ResticRclone(work, azure, restic)  # type: ignore[arg-type]
    return PruneTiervaultAzure(work, azure, warm=name.endswith("warm"))  # type: ignore[arg-type]


def scenario(
    bench: Any,
    selected: list[str],
    which: dict[str, str | None],
    pristine: Path,
    make_corpus: Path,
    azure: peers.AzureSide | None = None,
) -> tuple[dict[str, Any], list[Table], list[str]]:
    """The whole scenario: its JSON entry, its tables and notes (why a system was skipped)."""
    from bench import ratio_table

    entry: dict[str, Any] = {"systems": [], "skipped": {}, "runs": []}
    names: list[str] = []
    tv_missing = tiervault_prune_missing() if {"tiervault", *AZURE_PRUNE_SYSTEMS} & set(selected) else None
    for name in (*PRUNE_SYSTEMS, *AZURE_PRUNE_SYSTEMS):
        if name not in selected:
            entry["skipped"][name] = f"{name} not selected (--systems)"
        elif name.startswith("restic") and not which.get("restic"):
            entry["skipped"][name] = "restic is MISSING (apt-get install restic)"
        elif name in AZURE_PRUNE_SYSTEMS and azure is None:
            entry["skipped"][name] = "Azurite is not running"
        elif name.startswith("tiervault") and tv_missing is not None:
            entry["skipped"][name] = tv_missing
        else:
            names.append(name)
    notes = [
        f"prune: {name} skipped: {why}" for name, why in entry["skipped"].items() if "--systems" not in why
    ]
    entry["systems"] = names
    if not names:
        return entry, [], notes
    counting = CountingAzure(azure) if azure is not None and set(names) & set(AZURE_PRUNE_SYSTEMS) else None
    if counting is not None:
        counting.start()
    try:
        systems = [_make(n, bench.work, which, counting) for n in names]
        record = run_prune(bench, systems, pristine, make_corpus, 0, counting)
    finally:
        if counting is not None:
            counting.stop()
    entry["runs"].append(record)
    entry["ratios"] = rows = prune_ratios(record)
    tables = [prune_table(record)]
    if rows:
        tables.append(ratio_table(RATIO_TITLE, rows))
    else:
        notes.append("prune: no ratios: no pair of a tiervault system and its restic peer was measured")
    for name, f in record["systems"].items():
        for key in ("aged_note", "note"):
            if key in f:
                notes.append(f"prune: {name}: {f[key]}")
    return entry, tables, notes
