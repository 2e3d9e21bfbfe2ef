"""The goals from the issue as ratios ``tiervault-variant / peer``, and their computation from a run's
figures. Pure functions of the JSON structures ``bench/bench.py`` writes (no I/O, no rich)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

STEPS = ("init", "initial", "mutated", "no-change", "restore")
BACKUP_STEPS = ("initial", "mutated", "no-change")
STEP_LABELS = {
    "init": "init",
    "initial": "initial backup",
    "mutated": "backup after mutate",
    "no-change": "no-change backup",
    "restore": "full restore",
    # the prune scenario (bench/prune_bench.py)
    "prune-backup": "backup (prune run)",
    "forget-prune": "forget + prune",
    "prune-again": "prune after grace",
    "prune-restore": "restore latest",
}
METRICS = ("wall_s", "mb_s", "cpu_s", "user_s", "sys_s", "cpu_pct", "peak_rss_mb", "repo_bytes", "bytes")

Figures = dict[str, dict[str, dict[str, float | None]]]  # system -> step -> metric -> value


@dataclass(frozen=True)
class Target:
    """``system / peer`` of ``metric`` at ``step`` compared to ``bound`` (no bound: informational)."""

    label: str
    step: str  # a step name, or "*" for the maximum over all steps
    metric: str
    op: str | None = None  # ">=" or "<="; None: informational
    bound: float | None = None

    def passed(self, ratio: float) -> bool:
        assert self.bound is not None
        return ratio >= self.bound if self.op == ">=" else ratio <= self.bound

    def result(self, ratio: float | None) -> str | None:
        """``"PASS"``/``"MISS"`` against the bound, ``"info"`` without one, None without a ratio."""
        if ratio is None:
            return None
        if self.op is None:
            return "info"
        return "PASS" if self.passed(ratio) else "MISS"


@dataclass(frozen=True)
class Pair:
    """One comparison: a tiervault variant against a peer measured in the same run."""

    group: str
    system: str
    peer: str
    targets: tuple[Target, ...]

    @property
    def label(self) -> str:
        return f"{self.system} / {self.peer}"


def _same_metrics(
    initial: float | None,
    restore: float | None,
    no_change: float | None,
    size: float | None,
    rss: float | None,
) -> tuple[Target, ...]:
    """The local targets (or the same metrics without bounds: pass None)."""

    def t(label: str, step: str, metric: str, op: str, bound: float | None) -> Target:
        return Target(label, step, metric, op if bound is not None else None, bound)

    out = [
        t("initial backup MB/s", "initial", "mb_s", ">=", initial),
        t("restore MB/s", "restore", "mb_s", ">=", restore),
        t("no-change backup time", "no-change", "wall_s", "<=", no_change),
    ]
    out += [t(f"repo size after {STEP_LABELS[s]}", s, "repo_bytes", "<=", size) for s in BACKUP_STEPS]
    out += [t(f"peak RSS: {STEP_LABELS[s]}", s, "peak_rss_mb", "<=", rss) for s in STEPS]
    return tuple(out)


LOCAL_TARGETS = _same_metrics(2.0, 1.3, 0.5, 1.0, 1.0)
INFO_TARGETS = _same_metrics(None, None, None, None, None)


def _azure_targets(restore_bound: float | None) -> tuple[Target, ...]:
    return (
        Target("initial backup MB/s", "initial", "mb_s", ">=", 1.6),
        Target("restore MB/s", "restore", "mb_s", ">=" if restore_bound else None, restore_bound),
        Target("no-change backup time", "no-change", "wall_s"),
        Target("repo size after no-change backup", "no-change", "repo_bytes"),
        Target("peak RSS (max of all steps)", "*", "peak_rss_mb"),
    )


PAIRS = (
    Pair("local", "tiervault", "restic", LOCAL_TARGETS),
    Pair("azurite", "tiervault-az-warm", "restic-rclone", _azure_targets(None)),
    Pair("azurite", "tiervault-az-cold", "restic-rclone", _azure_targets(1.3)),
    Pair("borg", "tiervault", "borg-lz4", INFO_TARGETS),
    Pair("borg", "tiervault", "borg-zstd3", INFO_TARGETS),
)
GROUP_TITLES = {
    "local": "local disk: tiervault / restic (targets from the issue)",
    "azurite": "Azurite: tiervault-az-* / restic through rclone (targets from the issue; warm restore: info)",
    "borg": "local disk: tiervault / borg 1.2 (informational, no targets)",
}


def medians(runs: list[dict[str, Any]], systems: list[str]) -> Figures:
    """Per system, step and metric: the median over the runs (None values left out)."""
    out: Figures = {}
    for name in systems:
        out[name] = {}
        for step in STEPS:
            out[name][step] = {}
            for metric in METRICS:
                vals = [r["systems"][name][step].get(metric) for r in runs]
                vals = [v for v in vals if v is not None]
                out[name][step][metric] = statistics.median(vals) if vals else None
    return out


def pick(steps: dict[str, dict[str, Any]], t: Target) -> float | None:
    if t.step == "*":
        vals = [v[t.metric] for v in steps.values() if v.get(t.metric) is not None]
        return max(vals) if vals else None
    value: float | None = steps[t.step].get(t.metric)
    return value


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def skip_reason(name: str, measured: set[str], selected: list[str], missing: dict[str, str]) -> str | None:
    """Why ``name`` has no figures to compare, or None when it has."""
    if name in measured:
        return None
    if name in missing:
        return f"{name} is MISSING ({missing[name]})"
    if name not in selected:
        return f"{name} not selected (--systems)"
    return f"{name} has no figures (a run did not complete)"


def ratios(
    med: Figures,
    runs: list[dict[str, Any]],
    *,
    selected: list[str],
    missing: dict[str, str] | None = None,
    pairs: tuple[Pair, ...] = PAIRS,
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Every target of every pair whose both systems were measured: from the medians, and per run (to
    show the spread). Returns ``(rows, skipped)``; ``skipped`` names each pair left out and why."""
    missing = missing or {}
    measured = set(med)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for pair in pairs:
        reasons = [skip_reason(n, measured, selected, missing) for n in (pair.system, pair.peer)]
        why = "; ".join(r for r in reasons if r)
        if why:
            skipped.append({"group": pair.group, "system": pair.system, "peer": pair.peer, "reason": why})
            continue
        for t in pair.targets:
            a, b = pick(med[pair.system], t), pick(med[pair.peer], t)
            ratio = _ratio(a, b)
            per_run = [
                _ratio(pick(r["systems"][pair.system], t), pick(r["systems"][pair.peer], t))
                if {pair.system, pair.peer} <= r["systems"].keys()
                else None
                for r in runs
            ]
            rows.append(
                {
                    "group": pair.group,
                    "system": pair.system,
                    "peer": pair.peer,
                    "label": t.label,
                    "step": t.step,
                    "metric": t.metric,
                    "op": t.op,
                    "bound": t.bound,
                    "system_value": a,
                    "peer_value": b,
                    "ratio": ratio,
                    "result": t.result(ratio),
                    "per_run": per_run,
                }
            )
    return rows, skipped
