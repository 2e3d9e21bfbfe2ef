"""``tiervault stats``: objects and bytes per access tier, per item and per recovery point, and with
``--cost`` their estimated monthly cost (docs/costs.md)."""

from __future__ import annotations

from tiervault import StatsReport, Vault

from .context import Context, vault_command
from .exitcodes import ExitCode
from .options import Commands
from .output import count, filesize, table, text, when


def register(commands: Commands) -> None:
    p = commands.add(
        "stats",
        "objects and bytes per access tier, item and recovery point (with --cost: estimated monthly costs)",
        vault_command(_stats),
    )
    p.add_argument(
        "--cost",
        action="store_true",
        help="estimate monthly storage costs from a price table (the shipped Azure list prices, or --prices)",
    )
    p.add_argument(
        "--prices",
        metavar="FILE",
        default=None,
        help="a price table (JSON, docs/costs.md) instead of the shipped one; needs --cost",
    )


def money(value: float | None, currency: str = "") -> str:
    """An amount readable at any size: cents for big ones, significant digits for tiny ones."""
    if value is None:
        return "-"
    unit = f" {currency}" if currency else ""
    if value == 0 or abs(value) >= 1:
        return f"{value:,.2f}{unit}"
    return f"{value:.2g}{unit}" if abs(value) < 0.0001 else f"{value:.4f}{unit}"


async def _stats(ctx: Context, vault: Vault) -> int:
    a = ctx.args
    report = await vault.stats(cost=a.cost, prices=a.prices)
    if ctx.json:
        ctx.emit(report.to_json())
    else:
        print_report(ctx, report)
    return ExitCode.OK


def print_report(ctx: Context, report: StatsReport) -> None:
    out, prices = ctx.out, report.prices
    cur = prices.currency if prices else ""
    cost_cols = ("Billable", f"Est. {cur}/month") if prices else ()
    t = table("Tier", "Objects", "Size", *cost_cols, right=("Objects", "Size", *cost_cols))
    for ts in report.tiers:
        extra = (filesize(ts.billable_bytes or 0), money(ts.estimated_monthly_cost)) if prices else ()
        t.add_row(ts.tier.value, f"{ts.objects:,}", filesize(ts.bytes), *extra)
    total = ("", money(report.estimated_monthly_cost)) if prices else ()
    t.add_row("total", f"{report.objects:,}", filesize(report.bytes), *total)
    out.print(t)
    if prices:
        out.print(
            f"all in Hot: {money(report.estimated_all_hot_monthly_cost, cur)} a month; the current "
            f"tiering saves {money(report.estimated_saving, cur)} "
            f"({report.estimated_saving_percent or 0.0:.1f}%)",
            soft_wrap=True,
        )
    cols = (f"Est. {cur}/mo", f"Unique {cur}/mo") if prices else ()
    t = table("Item", "Points", "Size", "Unique", *cols, right=("Points", "Size", "Unique", *cols))
    for it in report.items:
        extra = (money(it.estimated_monthly_cost), money(it.estimated_unique_monthly_cost)) if prices else ()
        t.add_row(text(it.name), f"{it.points:,}", filesize(it.bytes), filesize(it.unique_bytes), *extra)
    out.print(t)
    t = table("Point", "Item", "Time", "Size", "Unique", *cols, right=("Size", "Unique", *cols))
    for p in report.points:
        extra = (money(p.estimated_monthly_cost), money(p.estimated_unique_monthly_cost)) if prices else ()
        t.add_row(p.id[:8], text(p.item), when(p.time), filesize(p.bytes), filesize(p.unique_bytes), *extra)
    out.print(t)
    out.print(
        f"{count(len(report.points), 'recovery point')}: Size is what a point's chunks take, Unique what "
        "only it references (forgetting it alone frees at most that)",
        soft_wrap=True,
    )
    if prices:
        out.print(
            f"Costs are ESTIMATES of storage only, from {prices.currency} list prices for "
            f"{text(prices.region)} taken {prices.prices_taken.isoformat()} ({text(prices.source)}); "
            "operations, retrieval and early deletion are not included. Override with --prices FILE "
            "(docs/costs.md).",
            soft_wrap=True,
        )
    for w in report.warnings:
        out.print(f"warning: {text(w)}", soft_wrap=True)
