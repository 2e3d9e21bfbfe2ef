#!/usr/bin/env python3
"""Side-by-side benchmark of tiervault and restic on the local file system, in one run.

Both systems get the same corpus (bench/make_corpus.py), the same steps and the same measurement: every
step is its own process, timed with a wall clock and measured with ``os.wait4`` (user + sys CPU seconds
and peak RSS of the child). See bench/README.md for what is measured and how to read the ratios.

    python bench/bench.py                         # scale 1, tree+large, 3 runs, tiervault and restic
    python bench/bench.py --smoke --json out.json # seconds: tiny corpus, tiervault only, 1 run (CI)
    python3 -m nox -s bench -- --runs 1           # the same in the nox session's own venv
    python bench/bench.py --limits                # raw limits: MB/s of each pipeline stage (bench/limits.py)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
MAKE_CORPUS = BENCH_DIR / "make_corpus.py"  # vendored copy of ../shared/bench/make_corpus.py
SHARED_MAKE_CORPUS = ROOT.parent / "shared" / "bench" / "make_corpus.py"
TV_STEP = BENCH_DIR / "tv_step.py"
MEASURE = BENCH_DIR / "measure.py"
DEFAULT_JSON = BENCH_DIR / "results" / "latest.json"
DEFAULT_LIMITS_JSON = BENCH_DIR / "results" / "limits.json"

SYSTEMS = ("tiervault", "restic")
STEPS = ("init", "initial", "mutated", "no-change", "restore")
STEP_LABELS = {
    "init": "init",
    "initial": "initial backup",
    "mutated": "backup after mutate",
    "no-change": "no-change backup",
    "restore": "full restore",
}
PASSWORD = "tiervault-bench-not-a-secret"
ITEM = "corpus"
CORPUS_SEED = 1
MUTATE_SEED = 2  # make_corpus --mutate --seed: the change set (the content pool keeps the corpus seed)
SMOKE_SCALE = 0.01
RESTIC_INSTALL = "apt-get install restic"
MB = 1_000_000
MiB = 1 << 20
GiB = 1 << 30


# ------------------------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    """One goal from the issue: ``tiervault / restic`` of ``metric`` at ``step`` compared to ``bound``."""

    label: str
    step: str  # a step name, or "*" for the maximum over all steps
    metric: str
    op: str  # ">=" or "<="
    bound: float

    def passed(self, ratio: float) -> bool:
        return ratio >= self.bound if self.op == ">=" else ratio <= self.bound


TARGETS = (
    Target("initial backup MB/s", "initial", "mb_s", ">=", 2.0),
    Target("restore MB/s", "restore", "mb_s", ">=", 1.3),
    Target("no-change backup time", "no-change", "wall_s", "<=", 0.5),
    Target("repository size", "no-change", "repo_bytes", "<=", 1.0),
    Target("peak RSS (max of all steps)", "*", "peak_rss_mb", "<=", 1.0),
)


# --------------------------------------------------------------------------------------- measurement


@dataclass
class Measured:
    """What ``os.wait4`` and a wall clock say about one child process (see bench/measure.py)."""

    argv: list[str]
    exit_code: int
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_bytes: int
    stdout: str
    stderr: str


class StepFailedError(Exception):
    def __init__(self, system: str, step: str, m: Measured) -> None:
        tail = "\n".join((m.stderr or m.stdout).strip().splitlines()[-15:])
        super().__init__(
            f"{system} {STEP_LABELS.get(step, step)} exited {m.exit_code}: {' '.join(m.argv)}\n{tail}"
        )


def run_measured(argv: Sequence[str], *, env: dict[str, str], cwd: Path, logs: Path) -> Measured:
    """Run ``argv`` to completion under bench/measure.py (``os.wait4``: CPU and peak RSS of the child)."""
    logs.mkdir(parents=True, exist_ok=True)
    out_path, err_path, res_path = logs / "stdout", logs / "stderr", logs / "rusage.json"
    res_path.unlink(missing_ok=True)
    spawner = [sys.executable, "-I", "-S", str(MEASURE), str(res_path), *argv]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        code = subprocess.call(spawner, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd)
    stdout, stderr = out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
    if code != 0 or not res_path.exists():
        return Measured(list(argv), code or 127, 0.0, 0.0, 0.0, 0, stdout, stderr)
    r = json.loads(res_path.read_text())
    return Measured(
        argv=list(argv),
        exit_code=r["exit_code"],
        wall_s=r["wall_s"],
        user_s=r["user_s"],
        sys_s=r["sys_s"],
        maxrss_bytes=r["maxrss_bytes"],
        stdout=stdout,
        stderr=stderr,
    )


def tree_bytes(root: Path) -> int:
    """Apparent size of the regular files under ``root`` (sum of st_size; directories not counted)."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if not os.path.islink(os.path.join(dirpath, name)):
                total += st.st_size
    return total


# ------------------------------------------------------------------------------------------- systems


class System:
    """How one backup program runs each step (the argv), and what its output tells us."""

    name = ""

    def __init__(self, work: Path) -> None:
        self.work = work

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def init(self, repo: Path, corpus: Path) -> list[str]:
        raise NotImplementedError

    def backup(self, repo: Path, corpus: Path) -> list[str]:
        raise NotImplementedError

    def restore(self, repo: Path, target: Path) -> list[str]:
        raise NotImplementedError

    def restored_root(self, target: Path, corpus: Path) -> Path:
        """Where the corpus' top directory ends up below the restore ``target``."""
        return target

    def details(self, step: str, m: Measured) -> dict[str, Any]:
        return {}


class Tiervault(System):
    name = "tiervault"

    def env(self) -> dict[str, str]:
        return {**os.environ, "TIERVAULT_BENCH_PASSWORD": PASSWORD}

    def init(self, repo: Path, corpus: Path) -> list[str]:
        return [
            sys.executable,
            str(TV_STEP),
            "init",
            "--repo",
            str(repo),
            "--source",
            str(corpus),
            "--name",
            ITEM,
        ]

    def backup(self, repo: Path, corpus: Path) -> list[str]:
        return [sys.executable, str(TV_STEP), "snapshot", "--repo", str(repo), "--name", ITEM]

    def restore(self, repo: Path, target: Path) -> list[str]:
        return [sys.executable, str(TV_STEP), "restore", "--repo", str(repo), "--target", str(target)]

    def details(self, step: str, m: Measured) -> dict[str, Any]:
        lines = m.stdout.strip().splitlines()
        try:
            out: dict[str, Any] = json.loads(lines[-1]) if lines else {}
        except json.JSONDecodeError:
            return {"stdout_tail": lines[-3:]}
        return out


class Restic(System):
    name = "restic"

    def __init__(self, work: Path, exe: str) -> None:
        super().__init__(work)
        self.exe = exe

    def env(self) -> dict[str, str]:
        # A cache per run inside the work dir (not ~/.cache): not counted as repository size.
        return {
            **os.environ,
            "RESTIC_PASSWORD": PASSWORD,
            "RESTIC_CACHE_DIR": str(self.work / "restic-cache"),
        }

    def init(self, repo: Path, corpus: Path) -> list[str]:
        return [self.exe, "--repo", str(repo), "init"]

    def backup(self, repo: Path, corpus: Path) -> list[str]:
        return [self.exe, "--repo", str(repo), "backup", "--json", str(corpus)]

    def restore(self, repo: Path, target: Path) -> list[str]:
        return [self.exe, "--repo", str(repo), "restore", "latest", "--target", str(target)]

    def restored_root(self, target: Path, corpus: Path) -> Path:
        return target / str(corpus.resolve()).lstrip("/")  # restic recreates the absolute source path

    def details(self, step: str, m: Measured) -> dict[str, Any]:
        if step in ("initial", "mutated", "no-change"):
            for line in reversed(m.stdout.splitlines()):
                if '"message_type":"summary"' in line.replace(" ", ""):
                    try:
                        summary: dict[str, Any] = json.loads(line)
                    except json.JSONDecodeError:
                        break
                    return summary
        return {"stdout_tail": m.stdout.strip().splitlines()[-3:]}


def restic_version(exe: str) -> str:
    try:
        out = subprocess.run([exe, "version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        return f"unknown ({exc})"
    return out.stdout.strip() or out.stderr.strip()


# -------------------------------------------------------------------------------------------- corpus


class Corpus:
    """The pristine corpus (generated once per invocation, or reused from ``--workdir`` if identical)."""

    def __init__(self, path: Path, profile: str, scale: float, big_file_bytes: int = 0) -> None:
        self.path, self.profile, self.scale, self.big_file_bytes = path, profile, scale, big_file_bytes

    def stamp(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "scale": self.scale,
            "seed": CORPUS_SEED,
            "big_file_bytes": self.big_file_bytes,
            "make_corpus_sha256": hashlib.sha256(MAKE_CORPUS.read_bytes()).hexdigest(),
        }

    def ensure(self, console: Console, base: Corpus | None = None) -> None:
        stamp_file = self.path.with_name(self.path.name + ".stamp.json")
        if stamp_file.exists() and self.path.is_dir():
            try:
                if json.loads(stamp_file.read_text()) == self.stamp():
                    console.print(f"corpus: reusing {self.path}")
                    return
            except json.JSONDecodeError:
                pass
        stamp_file.unlink(missing_ok=True)
        shutil.rmtree(self.path, ignore_errors=True)
        started = time.perf_counter()
        if base is not None:
            console.print(f"corpus: copying {base.path} and adding a {self.big_file_bytes / GiB:g} GiB file")
            shutil.copytree(base.path, self.path, symlinks=True)
            write_big_file(self.path / "big" / "big.bin", self.big_file_bytes)
        else:
            console.print(f"corpus: generating profile={self.profile} scale={self.scale:g} in {self.path}")
            argv = [sys.executable, str(MAKE_CORPUS), "--out", str(self.path), "--seed", str(CORPUS_SEED)]
            argv += ["--profile", self.profile, "--scale", f"{self.scale:g}"]
            out = subprocess.run(argv, capture_output=True, text=True, check=False)
            if out.returncode != 0:
                raise RuntimeError(f"make_corpus.py failed ({out.returncode}):\n{out.stderr}")
            for line in out.stdout.strip().splitlines():
                console.print(f"  {line}")
        console.print(f"corpus: ready in {time.perf_counter() - started:.1f} s")
        stamp_file.write_text(json.dumps(self.stamp()))


def write_big_file(path: Path, nbytes: int) -> None:
    """A deterministic large file: 1-8 MiB segments of random (55%), text (30%) and zero (15%) bytes."""
    r = random.Random(f"tiervault-bench-big/{CORPUS_SEED}")
    words = [bytes(r.choices(b"etaoinshrdlucmfwyp", k=r.randint(2, 9))) for _ in range(4000)]
    text = b" ".join(r.choices(words, k=1_200_000))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        done = 0
        while done < nbytes:
            k = min(nbytes - done, r.randint(1, 8) * MiB)
            p = r.random()
            if p < 0.55:
                f.write(r.randbytes(k))
            elif p < 0.85:
                a = r.randrange(len(text) - 1)
                piece = text[a:] + text
                while len(piece) < k:
                    piece += text
                f.write(piece[:k])
            else:
                f.write(bytes(k))
            done += k
    os.utime(path, (1704067200, 1704067200))


def mutate(corpus: Path) -> str:
    argv = [sys.executable, str(MAKE_CORPUS), "--out", str(corpus), "--seed", str(MUTATE_SEED), "--mutate"]
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"make_corpus.py --mutate failed ({out.returncode}):\n{out.stderr}")
    return out.stdout.strip()


# ------------------------------------------------------------------------------------- verification

Manifest = dict[str, tuple[str, int, str]]


def manifest(root: Path) -> Manifest:
    """Every entry below ``root``: (type, size, sha256) for files, (type, 0, target) for symlinks."""
    out: Manifest = {}
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if os.path.islink(full):
                out[rel] = ("symlink", 0, os.readlink(full))
            elif os.path.isdir(full):
                out[rel] = ("dir", 0, "")
            else:
                with open(full, "rb") as f:
                    digest = hashlib.file_digest(f, "sha256").hexdigest()
                out[rel] = ("file", os.path.getsize(full), digest)
    return out


def compare(expected: Manifest, got: Manifest) -> list[str]:
    problems = [f"missing: {p}" for p in sorted(expected.keys() - got.keys())]
    problems += [f"unexpected: {p}" for p in sorted(got.keys() - expected.keys())]
    for p in sorted(expected.keys() & got.keys()):
        (et, es, eh), (gt, gs, gh) = expected[p], got[p]
        if et != gt:
            problems.append(f"type differs: {p}: {et} != {gt}")
        elif es != gs:
            problems.append(f"size differs: {p}: {gs} != {es}")
        elif eh != gh:
            problems.append(f"content differs: {p} (sha256)")
    return problems


# ------------------------------------------------------------------------------------------- running


@dataclass
class Bench:
    console: Console
    systems: list[System]
    work: Path
    verification_ok: bool = True

    def step(
        self, sys_: System, step: str, argv: list[str], *, run: str, corpus_bytes: int, repo: Path
    ) -> dict[str, Any]:
        """Run one measured step of one system; ``run`` is a label like ``"2/3"``."""
        logs = self.work / "logs" / f"run{run.partition('/')[0]}" / sys_.name / step
        m = run_measured(argv, env=sys_.env(), cwd=self.work, logs=logs)
        if m.exit_code != 0:
            raise StepFailedError(sys_.name, step, m)
        cpu = m.user_s + m.sys_s
        fig: dict[str, Any] = {
            "wall_s": m.wall_s,
            "user_s": m.user_s,
            "sys_s": m.sys_s,
            "cpu_s": cpu,
            "cpu_pct": 100 * cpu / m.wall_s if m.wall_s > 0 else None,
            "peak_rss_mb": m.maxrss_bytes / MB,
            "bytes": corpus_bytes,
            "mb_s": corpus_bytes / MB / m.wall_s if step != "init" and m.wall_s > 0 else None,
            "repo_bytes": tree_bytes(repo),
            "details": sys_.details(step, m),
        }
        rate = f"{fig['mb_s']:8.1f} MB/s" if fig["mb_s"] is not None else " " * 13
        self.console.print(
            f"  run {run}  {sys_.name:<9}  {STEP_LABELS[step]:<19} {m.wall_s:8.2f} s {rate}"
            f"  cpu {cpu:7.2f} s  rss {fig['peak_rss_mb']:6.0f} MB  repo {fig['repo_bytes'] / MB:8.1f} MB"
        )
        return fig

    def run_once(self, scenario: str, run: int, nruns: int, pristine: Path) -> dict[str, Any]:
        """One run: both systems through all steps on a fresh copy of the pristine corpus."""
        label = f"{run + 1}/{nruns}"
        corpus = self.work / "corpus"
        shutil.rmtree(corpus, ignore_errors=True)
        shutil.rmtree(self.work / "restic-cache", ignore_errors=True)
        shutil.copytree(pristine, corpus, symlinks=True)  # copy2: mtimes kept, fresh inodes and ctimes
        order = self.systems if run % 2 == 0 else self.systems[::-1]  # alternate who goes first
        repos = {s.name: self.work / f"repo-{s.name}" for s in self.systems}
        for repo in repos.values():
            shutil.rmtree(repo, ignore_errors=True)
        steps: dict[str, dict[str, Any]] = {s.name: {} for s in self.systems}
        names = [s.name for s in order]
        record: dict[str, Any] = {"scenario": scenario, "run": run, "order": names}
        record["loadavg_at_start"] = list(os.getloadavg())  # other work on the machine skews figures
        self.console.print(f"[bold]{scenario}: run {label}[/] (order: {', '.join(names)})")

        size = tree_bytes(corpus)
        record["corpus_bytes_initial"] = size
        for s in order:
            repo = repos[s.name]
            steps[s.name]["init"] = self.step(
                s, "init", s.init(repo, corpus), run=label, corpus_bytes=0, repo=repo
            )
            argv = s.backup(repo, corpus)
            steps[s.name]["initial"] = self.step(s, "initial", argv, run=label, corpus_bytes=size, repo=repo)

        record["mutation"] = mutate(corpus)
        size = tree_bytes(corpus)
        record["corpus_bytes_mutated"] = size
        for s in order:
            repo = repos[s.name]
            for step in ("mutated", "no-change"):
                argv = s.backup(repo, corpus)
                steps[s.name][step] = self.step(s, step, argv, run=label, corpus_bytes=size, repo=repo)

        expected = manifest(corpus)
        record["verification"] = {}
        for s in order:
            repo, target = repos[s.name], self.work / f"restore-{s.name}"
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            argv = s.restore(repo, target)
            steps[s.name]["restore"] = self.step(s, "restore", argv, run=label, corpus_bytes=size, repo=repo)
            problems = compare(expected, manifest(s.restored_root(target, corpus)))
            record["verification"][s.name] = {
                "ok": not problems,
                "entries": len(expected),
                "problems": problems[:50],
            }
            self.report_verification(s.name, f"{scenario} run {label}", len(expected), problems)
            shutil.rmtree(target, ignore_errors=True)
        record["systems"] = steps
        record["loadavg_at_end"] = list(os.getloadavg())
        for repo in repos.values():
            shutil.rmtree(repo, ignore_errors=True)
        return record

    def report_verification(self, system: str, where: str, entries: int, problems: list[str]) -> None:
        if not problems:
            self.console.print(f"  {where}  {system}: restore verified byte-exact ({entries} entries)")
            return
        self.verification_ok = False
        more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
        self.console.print(
            Panel(
                "\n".join(problems[:20]) + more,
                title=f"[bold red]RESTORE VERIFICATION FAILED: {system}, {where}",
                border_style="red",
            )
        )


def medians(runs: list[dict[str, Any]], systems: list[str]) -> dict[str, dict[str, dict[str, float | None]]]:
    metrics = ("wall_s", "mb_s", "cpu_s", "user_s", "sys_s", "cpu_pct", "peak_rss_mb", "repo_bytes", "bytes")
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for name in systems:
        out[name] = {}
        for step in STEPS:
            out[name][step] = {}
            for metric in metrics:
                vals = [r["systems"][name][step][metric] for r in runs]
                vals = [v for v in vals if v is not None]
                out[name][step][metric] = statistics.median(vals) if vals else None
    return out


def _pick(steps: dict[str, dict[str, Any]], t: Target) -> float | None:
    if t.step == "*":
        return max((v[t.metric] or 0.0) for v in steps.values())
    value: float | None = steps[t.step][t.metric]
    return value


def ratios(
    med: dict[str, dict[str, dict[str, float | None]]], runs: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """tiervault / restic for every target: from the medians, and per run (to show the spread)."""
    out = []
    for t in TARGETS:
        row: dict[str, Any] = {"label": t.label, "step": t.step, "metric": t.metric}
        row.update(op=t.op, bound=t.bound)
        tv = _pick(med["tiervault"], t) if "tiervault" in med else None
        rs = _pick(med["restic"], t) if "restic" in med else None
        row.update(tiervault=tv, restic=rs)
        row["ratio"] = tv / rs if tv is not None and rs else None
        row["result"] = None if row["ratio"] is None else ("PASS" if t.passed(row["ratio"]) else "MISS")
        per_run: list[float | None] = []
        for r in runs:
            if {"tiervault", "restic"} <= r["systems"].keys():
                a, b = _pick(r["systems"]["tiervault"], t), _pick(r["systems"]["restic"], t)
                per_run.append(a / b if a is not None and b else None)
        row["per_run"] = per_run
        out.append(row)
    return out


# ------------------------------------------------------------------------------------------- output


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def figures_table(title: str, med: dict[str, dict[str, dict[str, float | None]]]) -> Table:
    t = Table(title=title, title_justify="left")
    t.add_column("system")
    t.add_column("step")
    for col in ("wall s", "MB/s", "CPU s", "CPU %", "peak RSS MB", "repo MB"):
        t.add_column(col, justify="right")
    for name, steps in med.items():
        for i, step in enumerate(STEPS):
            f = steps[step]
            repo = None if f["repo_bytes"] is None else f["repo_bytes"] / MB
            t.add_row(
                name if i == 0 else "",
                STEP_LABELS[step],
                _num(f["wall_s"], ".2f"),
                _num(f["mb_s"], ".1f"),
                _num(f["cpu_s"], ".2f"),
                _num(f["cpu_pct"], ".0f"),
                _num(f["peak_rss_mb"], ".0f"),
                _num(repo, ".1f"),
                end_section=i == len(STEPS) - 1,
            )
    return t


def ratio_table(title: str, rows: list[dict[str, Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    t.add_column("tiervault / restic")
    for col in ("tiervault", "restic", "ratio", "target"):
        t.add_column(col, justify="right")
    t.add_column("result")
    t.add_column("ratio per run", justify="right")
    for r in rows:
        scale = MB if r["metric"] == "repo_bytes" else 1
        unit = {"mb_s": " MB/s", "wall_s": " s", "repo_bytes": " MB", "peak_rss_mb": " MB"}[r["metric"]]
        fmt = ".2f" if r["metric"] == "wall_s" else ".1f"

        def show(v: float | None, fmt: str = fmt, unit: str = unit, scale: float = scale) -> str:
            return "-" if v is None else format(v / scale, fmt) + unit

        res = {"PASS": "[green]PASS[/]", "MISS": "[red]MISS[/]", None: "[yellow]n/a[/]"}[r["result"]]
        ratio = _num(r["ratio"], ".2f") + ("x" if r["ratio"] is not None else "")
        target = f"{r['op']} {r['bound']:.1f}x"
        spread = " ".join(_num(x, ".2f") for x in r["per_run"])
        t.add_row(r["label"], show(r["tiervault"]), show(r["restic"]), ratio, target, res, spread)
    return t


def source_digest(package: Path) -> dict[str, Any]:
    """Which tiervault code was measured (the tree has no commit to name; others edit it meanwhile)."""
    h = hashlib.sha256()
    files = sorted(package.rglob("*.py"))
    for f in files:
        h.update(str(f.relative_to(package)).encode() + b"\0" + f.read_bytes() + b"\0")
    return {"path": str(package), "files": len(files), "sha256": h.hexdigest()}


def summarize(scenario: str, entry: dict[str, Any], profile: str, scale: float) -> list[Table]:
    """Add medians and ratios to a scenario's JSON entry; return its tables."""
    runs = entry["runs"]
    names = [n for n in SYSTEMS if all(n in r["systems"] for r in runs)]
    entry["median"] = med = medians(runs, names)
    entry["ratios"] = rows = ratios(med, runs)
    size = runs[0]["corpus_bytes_initial"] / MB
    title = (
        f"{scenario}: median of {len(runs)} run(s), corpus {size:.0f} MB "
        f"(profile {profile}, scale {scale:g}), warm page cache"
    )
    tables = [figures_table(title, med)]
    if {"tiervault", "restic"} <= set(names):
        tables.append(ratio_table(f"{scenario}: tiervault / restic (targets from the issue)", rows))
    return tables


def report(path: Path, console: Console) -> int:
    """Print the tables of an earlier run from its JSON (``--report``)."""
    data = json.loads(path.read_text())
    cfg, info = data["config"], data["machine"]
    console.print(
        f"{path}: {info.get('date')}, {info.get('cores')} cores, {info.get('ram_gib')} GiB RAM, "
        f"Python {info.get('python')}, tiervault {info.get('tiervault')}, {info.get('restic')}"
    )
    for scenario, entry in data["scenarios"].items():
        if entry["runs"]:
            for t in summarize(scenario, entry, cfg["profile"], cfg["scale"]):
                console.print(t)
                console.print()
    ok = data.get("verification_ok", False) and "error" not in data
    console.print(f"restore verification: {'PASS' if ok else 'FAILED (see the JSON)'}")
    return 0 if ok else 1


def machine_info(restic: str | None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "cores": os.cpu_count(),
        "loadavg_at_start": list(os.getloadavg()),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "restic": restic_version(restic) if restic else f"missing (install: {RESTIC_INSTALL})",
    }
    try:
        import tiervault

        info["tiervault"] = tiervault.__version__
        info["tiervault_source"] = source_digest(Path(tiervault.__file__).parent)
    except ImportError as exc:
        info["tiervault"] = f"not importable: {exc}"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["ram_gib"] = round(int(line.split()[1]) * 1024 / GiB, 1)
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="corpus scale for make_corpus.py (default 1)")
    ap.add_argument("--profile", default="tree,large", help="make_corpus.py profiles (default tree,large)")
    ap.add_argument(
        "--workdir",
        type=Path,
        help="where corpus, repositories and restores go; the generated corpus is kept and reused there "
        "(default: a fresh temporary directory under /tmp, removed at the end)",
    )
    ap.add_argument("--runs", type=int, default=3, help="runs; every figure is the median (default 3)")
    ap.add_argument(
        "--big-file-gib",
        type=float,
        metavar="GIB",
        help="also one run on the corpus plus a single file of this size, e.g. 4 (off by default)",
    )
    ap.add_argument("--systems", default="tiervault,restic", help="comma list (default tiervault,restic)")
    ap.add_argument("--smoke", action="store_true", help=f"CI: scale {SMOKE_SCALE}, tiervault only, 1 run")
    ap.add_argument(
        "--json",
        type=Path,
        help=f"raw results (default {DEFAULT_JSON}; with --limits {DEFAULT_LIMITS_JSON})",
    )
    ap.add_argument(
        "--limits",
        action="store_true",
        help="measure only the raw limits: MB/s of each pipeline stage on 1 and 2 threads (bench/limits.py)",
    )
    ap.add_argument(
        "--source",
        type=Path,
        metavar="DIR",
        help="with --limits: sample the files under DIR instead of the generated buffer",
    )
    ap.add_argument(
        "--report", type=Path, metavar="JSON", help="only print the tables of an earlier run's JSON"
    )
    a = ap.parse_args(argv)
    if a.json is None:
        a.json = DEFAULT_LIMITS_JSON if a.limits else DEFAULT_JSON
    if a.source is not None and not a.limits:
        ap.error("--source goes with --limits")
    if a.smoke:
        a.scale, a.systems, a.runs, a.big_file_gib = SMOKE_SCALE, "tiervault", 1, None
    a.systems = [s.strip() for s in a.systems.split(",") if s.strip()]
    unknown = set(a.systems) - set(SYSTEMS)
    if unknown or not a.systems:
        ap.error(f"--systems: choose from {', '.join(SYSTEMS)}")
    if a.runs < 1:
        ap.error("--runs must be at least 1")
    return a


def make_console() -> Console:
    probe = Console()
    return probe if probe.is_terminal else Console(width=130)


def run_limits(a: argparse.Namespace, console: Console) -> int:
    """``--limits``: the raw limits of this machine (bench/limits.py): a table, ``"limits"`` in the JSON."""
    import limits  # bench/ is sys.path[0] when this file runs as a script

    info = machine_info(shutil.which("restic"))
    console.print(
        f"tiervault bench --limits: {info.get('cores')} cores, {info.get('ram_gib')} GiB RAM, "
        f"Python {info['python']}, tiervault {info.get('tiervault')}"
    )
    result: dict[str, Any] = {"schema": 1, "machine": info, "config": {"smoke": a.smoke, "source": None}}
    if a.source is not None:
        result["config"]["source"] = str(a.source)
    result["limits"] = limits.run_limits(console, smoke=a.smoke, source=a.source)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(result, indent=2) + "\n")
    console.print()
    console.print(limits.limits_table(result["limits"]))
    console.print(f"raw figures: {a.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    console = make_console()
    if a.report:
        return report(a.report, console)
    if a.limits:
        return run_limits(a, console)
    restic = shutil.which("restic")
    missing: list[str] = []
    if "restic" in a.systems and restic is None:
        missing.append("restic")
        a.systems.remove("restic")

    def warn_missing() -> None:
        if missing:
            console.print(
                Panel(
                    f"restic is MISSING (not on PATH): install it with `{RESTIC_INSTALL}`.\n"
                    "Only tiervault was measured; there are no tiervault/restic ratios.",
                    title="[bold red]restic missing",
                    border_style="red",
                )
            )

    warn_missing()
    if not MAKE_CORPUS.exists():
        console.print(f"[red]{MAKE_CORPUS} is missing (a copy of {SHARED_MAKE_CORPUS})")
        return 2

    temp = a.workdir is None
    work = Path(tempfile.mkdtemp(prefix="tiervault-bench-")) if temp else a.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    systems: list[System] = []
    for name in a.systems:
        systems.append(Tiervault(work) if name == "tiervault" else Restic(work, restic or "restic"))

    info = machine_info(restic)
    result: dict[str, Any] = {
        "schema": 1,
        "machine": info,
        "config": {
            "scale": a.scale,
            "profile": a.profile,
            "runs": a.runs,
            "systems": a.systems,
            "missing": missing,
            "smoke": a.smoke,
            "big_file_gib": a.big_file_gib,
            "workdir": str(work),
            "corpus_seed": CORPUS_SEED,
            "mutate_seed": MUTATE_SEED,
            "cache": "warm: the page cache cannot be dropped here; every step reads recently written data",
            "repo_bytes": "sum of st_size of the files in the repository directory after the step",
        },
        "restic_missing": {"install": RESTIC_INSTALL} if missing else None,
        "scenarios": {},
        "verification_ok": True,
    }
    console.print(
        f"tiervault bench: {info.get('cores')} cores, {info.get('ram_gib')} GiB RAM, "
        f"Python {info['python']}, tiervault {info.get('tiervault')}, {info['restic'].splitlines()[0]}; "
        f"work dir {work}"
    )
    load = os.getloadavg()[0]
    if load > 0.5 * (os.cpu_count() or 1):
        console.print(
            f"[yellow]note: load average {load:.1f} on {os.cpu_count()} cores: figures will be noisy"
        )
    bench = Bench(console, systems, work)
    exit_code = 0
    tables: list[Table] = []
    try:
        base = Corpus(work / f"pristine-{a.profile.replace(',', '+')}-{a.scale:g}", a.profile, a.scale)
        base.ensure(console)
        scenarios: list[tuple[str, Corpus, int]] = [("main", base, a.runs)]
        if a.big_file_gib:
            big_path = work / f"{base.path.name}-big{a.big_file_gib:g}"
            big = Corpus(big_path, a.profile, a.scale, int(a.big_file_gib * GiB))
            big.ensure(console, base)
            scenarios.append((f"big-file ({a.big_file_gib:g} GiB)", big, 1))
        for scenario, corpus, nruns in scenarios:
            runs: list[dict[str, Any]] = []
            entry: dict[str, Any] = {"corpus": corpus.stamp(), "runs": runs}
            result["scenarios"][scenario] = entry
            for run in range(nruns):
                runs.append(bench.run_once(scenario, run, nruns, corpus.path))
            tables += summarize(scenario, entry, a.profile, a.scale)
    except (StepFailedError, RuntimeError, OSError) as exc:
        console.print(Panel(str(exc), title="[bold red]benchmark aborted", border_style="red"))
        result["error"] = str(exc)
        exit_code = 2
    finally:
        result["verification_ok"] = bench.verification_ok
        if isinstance(info.get("tiervault_source"), dict):  # did someone edit the code meanwhile?
            info["tiervault_source_at_end"] = source_digest(Path(info["tiervault_source"]["path"]))
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=2) + "\n")
        if temp:
            shutil.rmtree(work, ignore_errors=True)
        else:
            for leftover in ("corpus", "restic-cache"):
                shutil.rmtree(work / leftover, ignore_errors=True)

    console.print()
    for t in tables:
        console.print(t)
        console.print()
    if not missing and a.systems != list(SYSTEMS) and len(a.systems) < len(SYSTEMS):
        console.print(f"no ratios: only {', '.join(a.systems)} measured (--systems / --smoke)")
    warn_missing()
    if not bench.verification_ok:
        console.print(
            Panel(
                "A restore did not reproduce the corpus byte for byte (see above and the JSON).",
                title="[bold red]RESTORE VERIFICATION FAILED",
                border_style="red",
            )
        )
        exit_code = exit_code or 1
    elif exit_code == 0:
        n = sum(len(sc["runs"]) for sc in result["scenarios"].values()) * len(systems)
        console.print(f"restore verification: PASS ({n} restores byte-exact: file list, sizes, sha256)")
    console.print(f"raw figures: {a.json}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
