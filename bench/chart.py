"""The PNG chart of a bench run (matplotlib, Agg backend): throughput per system and step, and the
repository size of each system after each backup step. Drawn from the JSON's medians of the ``main``
scenario, so ``bench.py --report JSON`` draws it again. Needs ``pip install -e '.[bench]'``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from targets import BACKUP_STEPS as SIZE_STEPS  # bench/ is sys.path[0], as for bench.py
from targets import STEP_LABELS as LABELS
from targets import STEPS

THROUGHPUT_STEPS = STEPS[1:]  # every step but init

COLORS = {
    "tiervault": "#1f4e9c",
    "tiervault-az-warm": "#3f83d9",
    "tiervault-az-cold": "#8fbcef",
    "restic": "#d9661f",
    "restic-rclone": "#f2a766",
    "borg-lz4": "#2f8f4e",
    "borg-zstd3": "#88c79a",
}
MB = 1_000_000
INSTALL_HINT = "pip install 'matplotlib>=3.8' (or: pip install -e '.[bench]')"


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _bars(ax: Any, steps: tuple[str, ...], systems: list[str], values: dict[str, list[float | None]]) -> None:
    n = max(len(systems), 1)
    width = 0.8 / n
    for i, name in enumerate(systems):
        xs = [j + (i - (n - 1) / 2) * width for j in range(len(steps))]
        ys = [v if v is not None else 0.0 for v in values[name]]
        bars = ax.bar(xs, ys, width, label=name, color=COLORS.get(name))
        labels = [f"{v:.0f}" if v is not None and v >= 10 else _small(v) for v in values[name]]
        ax.bar_label(bars, labels=labels, fontsize=6, rotation=90, padding=2)
    ax.set_xticks(range(len(steps)), [LABELS[s] for s in steps])
    ax.grid(axis="y", alpha=0.3)


def _small(v: float | None) -> str:
    return "" if v is None else f"{v:.1f}"


def write_chart(data: dict[str, Any], path: Path, scenario: str = "main") -> Path:
    """Draw the chart of ``data`` (a bench JSON with medians) into ``path``; ImportError without
    matplotlib, KeyError/ValueError when the JSON has no medians for ``scenario``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    entry = data["scenarios"][scenario]
    med: dict[str, dict[str, dict[str, float | None]]] = entry["median"]
    systems = list(med)
    if not systems:
        raise ValueError(f"no system has figures in scenario {scenario!r}")
    info, cfg = data.get("machine", {}), data.get("config", {})
    runs = len(entry.get("runs", []))
    corpus_mb = entry["runs"][0]["corpus_bytes_initial"] / MB if runs else 0.0
    title = (
        f"tiervault bench {str(info.get('date', '?'))[:16].replace('T', ' ')} UTC: scale {cfg.get('scale')} "
        f"({corpus_mb:.0f} MB corpus), {info.get('cores')} cores, median of {runs} run(s)"
    )
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(9.0, 1.6 * len(systems) + 4), 9.5))
    fig.suptitle(title, fontsize=11)
    rates = {n: [med[n][s]["mb_s"] for s in THROUGHPUT_STEPS] for n in systems}
    _bars(ax1, THROUGHPUT_STEPS, systems, rates)
    positive = [v for vals in rates.values() for v in vals if v]
    if positive and max(positive) > 20 * min(positive):  # e.g. a no-change backup at 1000+ MB/s
        ax1.set_yscale("log")
        plain = FuncFormatter(lambda v, _pos: f"{v:g}")
        ax1.yaxis.set_major_formatter(plain)
        ax1.yaxis.set_minor_formatter(plain)
        ax1.tick_params(axis="y", which="minor", labelsize=7)
        ax1.set_ylabel("MB/s (corpus bytes / wall s, log scale)")
    else:
        ax1.set_ylabel("MB/s (corpus bytes / wall s)")
    ax1.set_title("throughput (higher is better; no-change: rate of confirming the corpus)", fontsize=9)
    fig.legend(
        *ax1.get_legend_handles_labels(),
        loc="upper center",
        ncols=len(systems),
        fontsize=8,
        bbox_to_anchor=(0.5, 0.955),
        frameon=False,
    )
    sizes = {
        n: [None if med[n][s]["repo_bytes"] is None else med[n][s]["repo_bytes"] / MB for s in SIZE_STEPS]
        for n in systems
    }
    _bars(ax2, SIZE_STEPS, systems, sizes)
    ax2.set_ylabel("MB (10^6 bytes)")
    ax2.set_title("repository size after each backup step (lower is better)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
