#!/usr/bin/env python3
"""Side-by-side benchmark of tiervault and its peers (restic, restic through rclone, borg), in one run.

Every system gets the same corpus (bench/make_corpus.py), the same steps and the same measurement: every
step is its own process, timed with a wall clock and measured with ``os.wait4`` (user + sys CPU seconds
and peak RSS of the child and the descendants it leaves behind). Systems: tiervault on a local repository
and on Azurite (disk tier warm or cold), restic local and through rclone on the same Azurite, borg 1.2
local with lz4 and zstd,3. See bench/README.md for what is measured and how to read the ratios.

    python bench/bench.py                         # scale 1, tree+large, 3 runs, every system
    python bench/bench.py --systems tiervault,restic --runs 1 --scale 0.2
    python bench/bench.py --smoke --json out.json # seconds: tiny corpus, tiervault only, 1 run (CI)
    python3 -m nox -s bench -- --runs 1           # the same in the nox session's own venv
    python bench/bench.py --report bench/results/latest.json   # the tables and chart of an earlier run
    python bench/bench.py --limits                # raw limits: MB/s of each pipeline stage (bench/limits.py)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import chart  # bench/ is sys.path[0] when this file runs as a script
import peers
import prune_bench
import tiering_bench
from peers import AZURE_SYSTEMS, SYSTEMS, AzureSide, System, tree_bytes
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from targets import GROUP_TITLES, STEP_LABELS, STEPS, medians, ratios

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
MAKE_CORPUS = BENCH_DIR / "make_corpus.py"  # vendored copy of ../shared/bench/make_corpus.py
SHARED_MAKE_CORPUS = ROOT.parent / "shared" / "bench" / "make_corpus.py"
MEASURE = BENCH_DIR / "measure.py"
DEFAULT_JSON = BENCH_DIR / "results" / "latest.json"
DEFAULT_LIMITS_JSON = BENCH_DIR / "results" / "limits.json"

CORPUS_SEED = 1
MUTATE_SEED = 2  # make_corpus --mutate --seed: the change set (the content pool keeps the corpus seed)
SMOKE_SCALE = 0.01
SCHEMA = 2
MB = 1_000_000
MiB = 1 << 20
GiB = 1 << 30


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
    #: descendants the command left running, adopted, waited for and counted by measure.py (rclone)
    adopted: list[dict[str, Any]] = field(default_factory=list)
    #: the command alone (what ``os.wait4`` says of it), when ``adopted`` is not empty
    main: dict[str, Any] = field(default_factory=dict)


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
        # A process group of its own: on Ctrl-C / SIGTERM the whole step (measure.py, the command and
        # what it started) is terminated, not only measure.py (which would orphan the command).
        proc = subprocess.Popen(
            spawner, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd, process_group=0
        )
        try:
            code = proc.wait()
        except BaseException:
            stop_group(proc)
            raise
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
        adopted=r.get("adopted", []),
        main=r.get("main", {}),
    )


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group led by ``proc``, SIGKILL it after 10 s; reap ``proc``."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        if proc.poll() is not None:  # reaped: its PID (the group id) may be reused, do not signal
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)


# --------------------------------------------------------------------------------------- missing peers


def missing_panel(missing: dict[str, str]) -> Panel:
    lines = [f"{name}: MISSING: install with `{cmd}`" for name, cmd in missing.items()]
    lines.append("These systems were not measured; ratios that need them are skipped (see the notes).")
    return Panel("\n".join(lines), title="[bold red]peers missing", border_style="red")


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


def rotated(systems: list[System], run: int) -> list[System]:
    """The order of run ``run``: rotated by one system per run, so no system always goes first."""
    if not systems:
        return []
    k = run % len(systems)
    return systems[k:] + systems[:k]


@dataclass
class Bench:
    console: Console
    systems: list[System]
    work: Path
    verification_ok: bool = True
    #: where restores go (default: the work dir); see --restore-dir
    restore_dir: Path | None = None
    #: what the last step printed (the prune scenario reads its JSON)
    last_stdout: str = ""

    def target(self, sys_: System) -> Path:
        return (self.restore_dir or self.work) / f"restore-{sys_.name}"

    def step(
        self, sys_: System, step: str, argv: list[str], *, run: str, corpus_bytes: int
    ) -> dict[str, Any]:
        """Run one measured step of one system; ``run`` is a label like ``"2/3"``."""
        logs = self.work / "logs" / f"run{run.partition('/')[0]}" / sys_.name / step
        target = self.target(sys_)
        sys_.before_step(step)
        m = run_measured(argv, env=sys_.env(), cwd=sys_.cwd(step, target), logs=logs)
        self.last_stdout = m.stdout
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
            "repo_bytes": sys_.repo_bytes(),
            "details": sys_.details(step, m.stdout),
        }
        if m.adopted:  # restic's rclone: counted in cpu and peak RSS; the parts kept here
            fig["main_process"] = m.main
            fig["adopted_processes"] = m.adopted
        rate = f"{fig['mb_s']:8.1f} MB/s" if fig["mb_s"] is not None else " " * 13
        self.console.print(
            f"  run {run}  {sys_.name:<17}  {STEP_LABELS[step]:<19} {m.wall_s:8.2f} s {rate}"
            f"  cpu {cpu:7.2f} s  rss {fig['peak_rss_mb']:6.0f} MB  repo {fig['repo_bytes'] / MB:8.1f} MB"
        )
        return fig

    def run_once(self, scenario: str, run: int, nruns: int, pristine: Path) -> dict[str, Any]:
        """One run: every system through all steps on a fresh copy of the pristine corpus."""
        label = f"{run + 1}/{nruns}"
        corpus = self.work / "corpus"
        shutil.rmtree(corpus, ignore_errors=True)
        shutil.copytree(pristine, corpus, symlinks=True)  # copy2: mtimes kept, fresh inodes and ctimes
        order = rotated(self.systems, run)
        steps: dict[str, dict[str, Any]] = {s.name: {} for s in self.systems}
        names = [s.name for s in order]
        record: dict[str, Any] = {"scenario": scenario, "run": run, "order": names}
        record["loadavg_at_start"] = list(os.getloadavg())  # other work on the machine skews figures
        self.console.print(f"[bold]{scenario}: run {label}[/] (order: {', '.join(names)})")
        try:
            for s in order:
                s.start_run(run)
            record["repositories"] = {s.name: s.repo for s in order}
            size = tree_bytes(corpus)
            record["corpus_bytes_initial"] = size
            for s in order:  # every system backs up the same WORK/corpus
                steps[s.name]["init"] = self.step(s, "init", s.init(corpus), run=label, corpus_bytes=0)
                argv = s.backup(corpus, "initial")
                steps[s.name]["initial"] = self.step(s, "initial", argv, run=label, corpus_bytes=size)

            record["mutation"] = mutate(corpus)  # once, after all the initial backups
            size = tree_bytes(corpus)
            record["corpus_bytes_mutated"] = size
            for s in order:
                for step in ("mutated", "no-change"):
                    argv = s.backup(corpus, step)
                    steps[s.name][step] = self.step(s, step, argv, run=label, corpus_bytes=size)

            expected = manifest(corpus)
            record["verification"] = {}
            for s in order:
                target = self.target(s)
                shutil.rmtree(target, ignore_errors=True)
                target.mkdir()
                argv = s.restore(target)
                steps[s.name]["restore"] = self.step(s, "restore", argv, run=label, corpus_bytes=size)
                problems = compare(expected, manifest(s.restored_root(target, corpus)))
                record["verification"][s.name] = {
                    "ok": not problems,
                    "entries": len(expected),
                    "problems": problems[:50],
                }
                self.report_verification(s.name, f"{scenario} run {label}", len(expected), problems)
                shutil.rmtree(target, ignore_errors=True)
        finally:
            for s in order:
                with contextlib.suppress(Exception):
                    s.end_run()
        record["systems"] = steps
        record["loadavg_at_end"] = list(os.getloadavg())
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


RESULT_STYLE = {
    "PASS": "[green]PASS[/]",
    "MISS": "[red]MISS[/]",
    "info": "[dim]info[/]",
    None: "[yellow]n/a[/]",
}
UNITS = {"mb_s": " MB/s", "wall_s": " s", "repo_bytes": " MB", "peak_rss_mb": " MB"}
UNITS |= {"repo_after": " MB", "reclaimed_bytes": " MB", "prune_wall_s": " s", "prune_peak_rss_mb": " MB"}
BYTE_METRICS = ("repo_bytes", "repo_after", "reclaimed_bytes")


def ratio_table(title: str, rows: list[dict[str, Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    t.add_column("pair")
    t.add_column("figure")
    for col in ("tiervault", "peer", "ratio", "target"):
        t.add_column(col, justify="right")
    t.add_column("result")
    t.add_column("ratio per run", justify="right")
    for i, r in enumerate(rows):
        scale = MB if r["metric"] in BYTE_METRICS else 1
        unit = UNITS.get(r["metric"], "")
        fmt = (
            ".2f" if r["metric"].endswith("wall_s") else ".0f" if r["metric"].endswith("requests") else ".1f"
        )

        def show(v: float | None, fmt: str = fmt, unit: str = unit, scale: float = scale) -> str:
            return "-" if v is None else format(v / scale, fmt) + unit

        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        if r["ratio"] is not None and r["bound"] is not None and f"{r['ratio']:.2f}" == f"{r['bound']:.2f}":
            ratio = f"{r['ratio']:.3f}x"  # at the bound: show which side of it
        target = "-" if r["op"] is None else f"{r['op']} {r['bound']:.1f}x"
        spread = " ".join(_num(x, ".2f") for x in r["per_run"])
        pair = f"{r['system']} / {r['peer']}"
        first = i == 0 or (rows[i - 1]["system"], rows[i - 1]["peer"]) != (r["system"], r["peer"])
        last = i == len(rows) - 1 or (rows[i + 1]["system"], rows[i + 1]["peer"]) != (r["system"], r["peer"])
        t.add_row(
            pair if first else "",
            r["label"],
            show(r["system_value"]),
            show(r["peer_value"]),
            ratio,
            target,
            RESULT_STYLE[r["result"]],
            spread,
            end_section=last,
        )
    return t


def source_digest(package: Path) -> dict[str, Any]:
    """Which tiervault code was measured (the tree has no commit to name; others edit it meanwhile)."""
    h = hashlib.sha256()
    files = sorted(package.rglob("*.py"))
    for f in files:
        h.update(str(f.relative_to(package)).encode() + b"\0" + f.read_bytes() + b"\0")
    return {"path": str(package), "files": len(files), "sha256": h.hexdigest()}


def summarize(
    scenario: str,
    entry: dict[str, Any],
    profile: str,
    scale: float,
    *,
    selected: list[str],
    missing: dict[str, str],
) -> tuple[list[Table], list[str]]:
    """Add medians and ratios to a scenario's JSON entry; return its tables and the skipped-pair notes."""
    runs = entry["runs"]
    names = [n for n in SYSTEMS if all(n in r["systems"] for r in runs)]
    entry["median"] = med = medians(runs, names)
    rows, skipped = ratios(med, runs, selected=selected, missing=missing)
    entry["ratios"], entry["ratios_skipped"] = rows, skipped
    size = runs[0]["corpus_bytes_initial"] / MB
    title = (
        f"{scenario}: median of {len(runs)} run(s), corpus {size:.0f} MB "
        f"(profile {profile}, scale {scale:g}), warm page cache"
    )
    tables = [figures_table(title, med)]
    for group, group_title in GROUP_TITLES.items():
        group_rows = [r for r in rows if r["group"] == group]
        if group_rows:
            tables.append(ratio_table(f"{scenario}: {group_title}", group_rows))
    notes = [f"{scenario}: no ratios {s['system']} / {s['peer']}: {s['reason']}" for s in skipped]
    return tables, notes


def draw_chart(data: dict[str, Any], path: Path, console: Console) -> str | None:
    """Write the PNG chart; returns its path, or None (with a printed reason) when it was skipped."""
    if not chart.available():
        console.print(f"[yellow]chart skipped: matplotlib is not installed ({chart.INSTALL_HINT})")
        return None
    try:
        chart.write_chart(data, path)
    except (KeyError, ValueError, OSError) as exc:
        console.print(f"[yellow]chart skipped: {exc!r}")
        return None
    console.print(f"chart: {path}")
    return str(path)


def report(path: Path, console: Console, chart_path: Path | None = None) -> int:
    """Print the tables of an earlier run from its JSON (``--report``) and draw its chart again."""
    data = json.loads(path.read_text())
    cfg, info = data["config"], data["machine"]
    versions = info.get("versions") or {"restic": info.get("restic")}
    console.print(
        f"{path}: {info.get('date')}, {info.get('cores')} cores, {info.get('ram_gib')} GiB RAM, "
        f"Python {info.get('python')}, tiervault {info.get('tiervault')}; "
        + ", ".join(f"{k}: {v}" for k, v in versions.items())
    )
    missing = data.get("missing") or {}
    if missing:
        console.print(missing_panel(missing))
    selected = list(cfg.get("systems", []))
    for scenario, entry in data["scenarios"].items():
        if scenario == "tiering":
            for t in tiering_bench.tables(entry):
                console.print(t)
                console.print()
        elif scenario == "prune":
            for run in entry["runs"]:
                console.print(prune_bench.prune_table(run))
                console.print()
            if entry.get("ratios"):
                console.print(ratio_table(prune_bench.RATIO_TITLE, entry["ratios"]))
            for name, why in entry.get("skipped", {}).items():
                if "--systems" not in why:
                    console.print(f"[yellow]note:[/] prune: {name} skipped: {why}")
        elif entry["runs"]:
            tables, notes = summarize(
                scenario, entry, cfg["profile"], cfg["scale"], selected=selected, missing=missing
            )
            for t in tables:
                console.print(t)
                console.print()
            for note in notes:
                console.print(f"[yellow]note:[/] {note}")
    if data["scenarios"].get("main", {}).get("runs"):
        draw_chart(data, chart_path or path.with_suffix(".png"), console)
    ok = data.get("verification_ok", False) and "error" not in data
    console.print(f"restore verification: {'PASS' if ok else 'FAILED (see the JSON)'}")
    return 0 if ok else 1


def machine_info(which: dict[str, str | None]) -> dict[str, Any]:
    info: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "cores": os.cpu_count(),
        "loadavg_at_start": list(os.getloadavg()),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
    }
    commands = {"restic": ["version"], "rclone": ["version"], "borg": ["--version"]}
    info["versions"] = {
        tool: peers.tool_version([exe, *commands[tool]]) if exe else "missing" for tool, exe in which.items()
    }
    info["restic"] = info["versions"].get("restic")
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
    ap.add_argument(
        "--restore-dir",
        type=Path,
        metavar="DIR",
        help="restore into DIR instead of the work dir, e.g. /dev/shm: on this kind of VM, creating files "
        "on ext4 (online discard) after a large delete is slow and depends on what ran before, which makes "
        "restore figures depend on the order of systems",
    )
    ap.add_argument("--runs", type=int, default=3, help="runs; every figure is the median (default 3)")
    ap.add_argument(
        "--big-file-gib",
        type=float,
        metavar="GIB",
        help="also one run on the corpus plus a single file of this size, e.g. 4 (off by default)",
    )
    ap.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help=f"comma list (default: all of {','.join(SYSTEMS)})",
    )
    ap.add_argument(
        "--scenarios",
        default=None,
        help="comma list of main, prune, tiering (default: main,prune; with --smoke: main). prune: "
        "10 snapshots after --mutate, then forget --keep-last 3 --prune (bench/prune_bench.py); "
        "tiering: 400 simulated days of forget, prune and tier, in process (bench/tiering_bench.py)",
    )
    ap.add_argument(
        "--tiering-days",
        type=int,
        metavar="N",
        help=f"tiering scenario: simulated days (default {tiering_bench.DAYS}; --smoke: "
        f"{tiering_bench.SMOKE_DAYS})",
    )
    ap.add_argument(
        "--tiering-scale",
        type=float,
        metavar="S",
        help=f"tiering scenario: make_corpus.py --profile tree --scale (default {tiering_bench.SCALE:g}; "
        f"--smoke: {SMOKE_SCALE:g})",
    )
    ap.add_argument("--smoke", action="store_true", help=f"CI: scale {SMOKE_SCALE}, tiervault only, 1 run")
    ap.add_argument(
        "--json",
        type=Path,
        help=f"raw results (default {DEFAULT_JSON}; with --limits {DEFAULT_LIMITS_JSON})",
    )
    ap.add_argument(
        "--chart",
        type=Path,
        metavar="PNG",
        help="the chart (default: next to the JSON, same name with .png; with --report: next to that JSON)",
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
        "--report",
        type=Path,
        metavar="JSON",
        help="only print the tables of an earlier run's JSON and draw its chart again",
    )
    a = ap.parse_args(argv)
    if a.json is None:
        a.json = DEFAULT_LIMITS_JSON if a.limits else DEFAULT_JSON
    if a.source is not None and not a.limits:
        ap.error("--source goes with --limits")
    if a.scenarios is None:
        a.scenarios = "main" if a.smoke else "main,prune"
    a.scenarios = list(dict.fromkeys(s.strip() for s in a.scenarios.split(",") if s.strip()))
    if not a.scenarios or set(a.scenarios) - {"main", "prune", "tiering"}:
        ap.error("--scenarios: choose from main, prune, tiering")
    if a.tiering_days is None:
        a.tiering_days = tiering_bench.SMOKE_DAYS if a.smoke else tiering_bench.DAYS
    if a.tiering_scale is None:
        a.tiering_scale = SMOKE_SCALE if a.smoke else tiering_bench.SCALE
    if a.tiering_days < 1 or a.tiering_scale <= 0:
        ap.error("--tiering-days must be at least 1 and --tiering-scale above 0")
    if a.smoke:
        a.scale, a.systems, a.runs, a.big_file_gib = SMOKE_SCALE, "tiervault", 1, None
    a.systems = list(dict.fromkeys(s.strip() for s in a.systems.split(",") if s.strip()))
    unknown = set(a.systems) - set(SYSTEMS)
    if unknown or not a.systems:
        ap.error(f"--systems: choose from {', '.join(SYSTEMS)}")
    if a.runs < 1:
        ap.error("--runs must be at least 1")
    return a


def make_console() -> Console:
    probe = Console()
    return probe if probe.is_terminal else Console(width=140)


def run_limits(a: argparse.Namespace, console: Console) -> int:
    """``--limits``: the raw limits of this machine (bench/limits.py): a table, ``"limits"`` in the JSON."""
    import limits

    info = machine_info({"restic": shutil.which("restic")})
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


def start_azure(
    a: argparse.Namespace, work: Path, console: Console, missing: dict[str, str], notes: dict[str, str]
) -> AzureSide | None:
    """Start the invocation's Azurite when an Azure system is selected; on failure, the Azure systems
    become missing (with the reason in ``notes``)."""
    wanted = [s for s in a.systems if s in AZURE_SYSTEMS]
    if not wanted or not {"main", "prune"} & set(a.scenarios):  # tiering runs in process, no Azurite
        return None
    azure: AzureSide | None = None
    try:
        azure = AzureSide(work / "azurite")
        console.print("azurite: starting (installing it first with npm if needed)")
        azure.start()
        console.print(f"azurite: {azure.version()} on port {azure.port}")
        return azure
    except Exception as exc:  # AzuriteError, OSError, ImportError of the SDK: all mean "not available"
        if azure is not None:
            with contextlib.suppress(Exception):
                azure.stop()
        reason = f"Azurite could not be installed or started: {exc}"
        console.print(f"[red]{reason}")
        for name in wanted:
            missing[name] = peers.AZURITE_INSTALL
            notes[name] = reason
            a.systems.remove(name)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    console = make_console()
    if a.report:
        return report(a.report, console, a.chart)
    if a.limits:
        return run_limits(a, console)
    chart_path: Path = a.chart or a.json.with_suffix(".png")
    which = {tool: shutil.which(tool) for tool in ("restic", "rclone", "borg")}
    requested = list(a.systems)
    missing = peers.missing_tools(a.systems, which=which.get)
    notes: dict[str, str] = {}
    a.systems = [s for s in a.systems if s not in missing]
    if not MAKE_CORPUS.exists():
        console.print(f"[red]{MAKE_CORPUS} is missing (a copy of {SHARED_MAKE_CORPUS})")
        return 2

    temp = a.workdir is None
    work = Path(tempfile.mkdtemp(prefix="tiervault-bench-")) if temp else a.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    info = machine_info(which)
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "machine": info,
        "config": {
            "scale": a.scale,
            "profile": a.profile,
            "runs": a.runs,
            "systems": a.systems,  # those measured (missing ones removed)
            "requested": requested,
            "smoke": a.smoke,
            "big_file_gib": a.big_file_gib,
            "workdir": str(work),
            "restore_dir": str(a.restore_dir.resolve()) if a.restore_dir else str(work),
            "corpus_seed": CORPUS_SEED,
            "mutate_seed": MUTATE_SEED,
            "cache": "warm page cache: it cannot be dropped here; every step reads recent data",
            "repo_bytes": "local: sum of st_size of the files in the repository directory after the step; "
            "Azurite: sum of the sizes of the blobs in the system's container",
            "order": "rotated by one system per run",
            "scenarios": a.scenarios,
        },
        "missing": missing,  # {system: install command}
        "missing_notes": notes,
        "scenarios": {},
        "verification_ok": False,
    }
    azure: AzureSide | None = None
    bench: Bench | None = None
    exit_code = 0
    tables: list[Table] = []
    skip_notes: list[str] = []
    try:
        with peers.sigterm_as_keyboard_interrupt():
            azure = start_azure(a, work, console, missing, notes)
            if azure is not None:
                info["versions"]["azurite"] = azure.version()
            if missing:
                console.print(missing_panel(missing))
            if not a.systems:
                raise RuntimeError("nothing to measure: every selected system is missing")
            systems = peers.make_systems(a.systems, work, azure, which)
            console.print(
                f"tiervault bench: {info.get('cores')} cores, {info.get('ram_gib')} GiB RAM, "
                f"Python {info['python']}, tiervault {info.get('tiervault')}; "
                f"systems {', '.join(a.systems)}; work dir {work}"
            )
            for tool, version in info["versions"].items():
                console.print(f"  {tool}: {version}")
            load = os.getloadavg()[0]
            if load > 0.5 * (os.cpu_count() or 1):
                console.print(
                    f"[yellow]note: load average {load:.1f} on {os.cpu_count()} cores: figures will be noisy"
                )
            restore_dir = a.restore_dir.resolve() if a.restore_dir else None
            if restore_dir is not None:
                restore_dir.mkdir(parents=True, exist_ok=True)
            bench = Bench(console, systems, work, restore_dir=restore_dir)
            base = Corpus(work / f"pristine-{a.profile.replace(',', '+')}-{a.scale:g}", a.profile, a.scale)
            if {"main", "prune"} & set(a.scenarios):
                base.ensure(console)
            scenarios: list[tuple[str, Corpus, int]] = (
                [("main", base, a.runs)] if "main" in a.scenarios else []
            )
            if a.big_file_gib and "main" in a.scenarios:
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
                t, n = summarize(scenario, entry, a.profile, a.scale, selected=a.systems, missing=missing)
                tables += t
                skip_notes += n
            if "prune" in a.scenarios:
                entry, t, n = prune_bench.scenario(bench, a.systems, which, base.path, MAKE_CORPUS, azure)
                result["scenarios"]["prune"] = entry
                tables += t
                skip_notes += n
            if "tiering" in a.scenarios:
                tc = Corpus(work / f"pristine-tree-{a.tiering_scale:g}", "tree", a.tiering_scale)
                tc.ensure(console)
                entry, t, n = tiering_bench.scenario(
                    tc.path, work, MAKE_CORPUS, days=a.tiering_days, scale=a.tiering_scale, log=console.print
                )
                result["scenarios"]["tiering"] = entry
                tables += t
                skip_notes += n
    except (StepFailedError, RuntimeError, OSError) as exc:
        console.print(Panel(str(exc), title="[bold red]benchmark aborted", border_style="red"))
        result["error"] = str(exc)
        exit_code = 2
    except KeyboardInterrupt:
        result["error"] = "interrupted"
        console.print("[red]interrupted: stopping Azurite, writing what was measured")
        exit_code = 130
    finally:
        if azure is not None:
            with contextlib.suppress(Exception):
                azure.stop()
        result["verification_ok"] = bench.verification_ok if bench else False
        if isinstance(info.get("tiervault_source"), dict):  # did someone edit the code meanwhile?
            info["tiervault_source_at_end"] = source_digest(Path(info["tiervault_source"]["path"]))
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=2) + "\n")
        if temp:
            shutil.rmtree(work, ignore_errors=True)
        else:
            keep_log = () if exit_code == 0 else ("azurite.log",)  # Azurite's access log: kept on errors
            for leftover in {"corpus", "state", "azurite", "azurite.log"} - set(keep_log):
                path = work / leftover
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
    if bench is None:
        if missing:
            console.print(missing_panel(missing))
        console.print(f"raw figures: {a.json}")
        return exit_code or 2

    console.print()
    for t in tables:
        console.print(t)
        console.print()
    for note in skip_notes:
        console.print(f"[yellow]note:[/] {note}")
    if missing:
        console.print(missing_panel(missing))
    if result["scenarios"].get("main", {}).get("median"):
        result["chart"] = draw_chart(result, chart_path, console)
        a.json.write_text(json.dumps(result, indent=2) + "\n")
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
        n = sum(len(r.get("verification", {})) for sc in result["scenarios"].values() for r in sc["runs"])
        console.print(f"restore verification: PASS ({n} restores byte-exact: file list, sizes, sha256)")
    console.print(f"raw figures: {a.json}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
