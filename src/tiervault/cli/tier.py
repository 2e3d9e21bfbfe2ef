"""``tiervault tier``: move data packs to colder access tiers by their items' policies
(docs/tiering.md); ``--dry-run`` plans without moving, ``--as-of`` previews a future date."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from tiervault import TierReport, UsageError, Vault

from .context import Context, vault_command
from .exitcodes import ExitCode
from .forget import add_tz_option, time_zone
from .options import Commands
from .output import count, filesize, table


def register(commands: Commands) -> None:
    p = commands.add(
        "tier",
        "move data packs to Cool, Cold and Archive as their items' policies say (metadata stays Hot)",
        vault_command(_tier),
    )
    p.add_argument("--dry-run", action="store_true", help="report the moves, change nothing")
    p.add_argument(
        "--as-of",
        metavar="DATE",
        help="preview the plan at a future date (2027-06-01, or a time with a zone such as "
        "2027-06-01T12:00:00Z); moves nothing",
    )
    add_tz_option(p)  # retention's buckets, for which points outlast a tier's minimum


def parse_as_of(text: str, today: date) -> datetime | None:
    """``--as-of``: a date (its start, UTC; today means now: None) or an ISO 8601 time with a zone."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return None if day == today else datetime(day.year, day.month, day.day, tzinfo=UTC)
        value = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--as-of {text!r} is not a date or time (e.g. 2027-06-01 or 2027-06-01T12:00:00Z)"
        ) from None
    if value.tzinfo is None:
        raise UsageError(f"--as-of {text!r} has no time zone: add Z or an offset such as +01:00")
    return value


def print_report(ctx: Context, report: TierReport) -> None:
    out = ctx.out
    would = "would move" if report.dry_run else "moved"
    out.print(
        f"tier as of {report.as_of.isoformat(timespec='seconds')}: {would} "
        f"{count(len(report.moves), 'pack')} ({filesize(report.moved_bytes)})",
        soft_wrap=True,
    )
    if report.moves:
        t = table("Pack", "Size", "From", "To", "Why", right=("Size",))
        for m in sorted(report.moves, key=lambda m: m.pack):
            t.add_row(
                m.pack.rsplit("/", 1)[-1][:12], filesize(m.size), m.source.value, m.target.value, m.reason
            )
        out.print(t)
    t = table("Tier", "Packs", "Bytes", right=("Packs", "Bytes"))
    for tier, totals in report.tiers.items():
        t.add_row(tier.value, f"{totals.objects:,}", filesize(totals.bytes))
    out.print(t)
    if report.held:
        held = ", ".join(f"{rule} {n}" for rule, n in sorted(report.held.items()))
        out.print(f"{count(report.kept, 'pack')} kept where they are ({held})", soft_wrap=True)
    for name, why in report.failed:
        out.print(f"[yellow]not moved[/] {name}: {why}", soft_wrap=True)
    for w in report.warnings:
        out.print(f"[yellow]warning:[/] {w}", soft_wrap=True)


async def _tier(ctx: Context, vault: Vault) -> int:
    a: Any = ctx.args
    dry_run = bool(a.dry_run)
    as_of = None
    if a.as_of is not None:
        as_of = parse_as_of(a.as_of, datetime.now(UTC).date())
        dry_run = True  # a preview, even of today
    report = await vault.tier(dry_run=dry_run, as_of=as_of, tz=time_zone(a.tz))
    if ctx.json:
        ctx.emit(report.to_json())
    else:
        print_report(ctx, report)
    return ExitCode.OK if not report.failed else ExitCode.PARTIAL
