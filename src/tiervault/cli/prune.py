"""``tiervault prune``: delete the data no recovery point references (two phases; docs/format.md,
"prune, step by step"). ``forget --prune`` runs it after a forget (``print_report``)."""

from __future__ import annotations

import argparse
from typing import Any

from tiervault import PruneReport, Vault

from .context import Context, vault_command
from .exitcodes import ExitCode
from .options import Commands, parse_size
from .output import count, table


def register(commands: Commands) -> None:
    p = commands.add(
        "prune",
        "delete packs no recovery point references (condemned by one run, deleted by a later one after "
        "a grace period), repack partly used packs and consolidate the index",
        vault_command(_prune),
    )
    add_prune_options(p)
    p.add_argument("--dry-run", action="store_true", help="report what would be done, change nothing")


def add_prune_options(p: Any) -> None:
    p.add_argument(
        "--max-unused",
        type=parse_max_unused,
        default=None,
        metavar="LIMIT",
        help="repack while more than this is unused in kept packs: a percentage (5%%, the default) "
        "or a size (500M)",
    )
    p.add_argument(
        "--max-repack-bytes",
        type=parse_size,
        default=None,
        metavar="SIZE",
        help="copy at most this much live data when repacking (e.g. 1G; default: no limit)",
    )
    p.add_argument(
        "--allow-early-delete",
        action="store_true",
        help="delete and repack packs still inside their tier's minimum retention (Cool 30, Cold 90, "
        "Archive 180 days) anyway, paying the pro-rated early-deletion charge (default: defer them)",
    )
    p.add_argument(
        "--prices",
        default=None,
        metavar="FILE",
        help="a price file (docs/costs.md) giving each tier's minimum retention and prices "
        "(default: the shipped table)",
    )


def parse_max_unused(text: str) -> float | int:
    """``5%`` (a fraction of the kept packs' bytes) or a size (``500M``, ``0``)."""
    t = text.strip()
    if t.endswith("%"):
        try:
            pct = float(t[:-1])
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid percentage {text!r} (example: 5%)") from None
        if not 0.0 <= pct <= 100.0:
            raise argparse.ArgumentTypeError(f"the percentage must be between 0% and 100%, not {text!r}")
        return pct / 100.0
    if t == "0":
        return 0
    return parse_size(t)


def _size(n: int) -> str:
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n} B"


def print_report(ctx: Context, report: PruneReport) -> None:
    """The human summary of one prune."""
    out = ctx.out
    if report.refused:
        out.print("[bold red]prune refused: nothing was deleted[/]")
        for why in report.refused:
            out.print(f"  {why}")
        return
    t = table("Step", "Result", right=())
    would = "would be " if report.dry_run else ""
    t.add_row("live set", f"{count(report.snapshots, 'point')}, {count(report.live_chunks, 'chunk')}")
    t.add_row("sweep", f"{count(len(report.swept), 'pack')} {would}deleted ({_size(report.bytes_freed)})")
    if report.reinstated:
        t.add_row("reinstated", count(len(report.reinstated), "pack") + " kept: a point needs them")
    for d in report.deferred:
        until = d.until.astimezone().strftime("%Y-%m-%d %H:%M:%S") if d.until else "?"
        who = f", held by {d.heartbeat} ({d.host} pid {d.pid})" if d.heartbeat else ""
        t.add_row("deferred", f"plan {d.plan[:8]} waits until {until} at the earliest{who}")
    t.add_row(
        "repack",
        f"{count(len(report.repacked), 'pack')} {would}rewritten "
        f"({_size(report.repack_copied_bytes)} copied)",
    )
    t.add_row(
        "condemn",
        f"{count(len(report.condemned), 'pack')} {would}condemned; {_size(report.bytes_next)} "
        "freed by a later prune",
    )
    t.add_row("index", f"{report.index_files_before} index file(s) -> {report.index_files_after}")
    cur = report.currency
    for e in report.early_deferred:
        ends = e.info.until.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        what = "sweep" if e.step == "sweep" else "repack"
        t.add_row(
            "early deletion",
            f"pack {e.pack[:12]} ({e.info.tier.value}, {_size(e.info.size)}, {e.info.days_in_tier:.1f} "
            f"days in tier): {what} deferred until {ends}; avoids ~{e.info.charge:.6f} {cur}",
        )
    for e in report.early_deleted:
        t.add_row(
            "early deletion",
            f"pack {e.pack[:12]} ({e.info.tier.value}, {_size(e.info.size)}, {e.info.days_in_tier:.1f} "
            f"days in tier) {would}deleted inside its minimum: ~{e.info.charge:.6f} {cur} charged",
        )
    if report.early_deferred or report.early_deleted:
        t.add_row(
            "early charges",
            f"avoided ~{report.charge_avoided:.6f} {cur}, incurred ~{report.charge_incurred:.6f} {cur} "
            "(estimates from list prices)",
        )
    for pid, n, why in report.unprovable:
        t.add_row("unprovable", f"pack {pid[:12]} ({_size(n)}): {why}; kept")
    for name in report.damaged_index:
        t.add_row("damaged", f"{name}: its packs were read from their own headers")
    for w in report.warnings:
        t.add_row("warning", w)
    t.add_row("requests", ", ".join(f"{k} {v}" for k, v in report.requests.items()))
    if report.dry_run:
        would = ", ".join(f"{k} {v}" for k, v in report.would_request.items()) or "none"
        t.add_row("would request", would)
    out.print(t)


async def run_prune(vault: Vault, a: Any) -> PruneReport:
    """``vault.prune`` with the options of ``add_prune_options`` (and ``--dry-run``)."""
    limits: dict[str, Any] = {"max_repack_bytes": a.max_repack_bytes}
    if a.max_unused is not None:
        limits["max_unused"] = a.max_unused
    return await vault.prune(
        dry_run=a.dry_run, allow_early_delete=a.allow_early_delete, prices=a.prices, **limits
    )


async def _prune(ctx: Context, vault: Vault) -> int:
    a = ctx.args
    report = await run_prune(vault, a)
    if ctx.json:
        ctx.emit(report.to_json())
    else:
        print_report(ctx, report)
    return ExitCode.OK if report.ok else ExitCode.INTEGRITY
