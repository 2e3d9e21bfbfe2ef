"""``tiervault snapshot``: take a recovery point of a protected item."""

from __future__ import annotations

from datetime import datetime

import tiervault
from tiervault import UsageError, Vault

from .context import Context, vault_command
from .exitcodes import ExitCode
from .options import Commands
from .output import count, filesize, print_problems, progress


def register(commands: Commands) -> None:
    p = commands.add("snapshot", "take a recovery point of a protected item", vault_command(_snapshot))
    p.add_argument("item", metavar="ITEM")
    p.add_argument("--tag", action="append", default=[], metavar="T", help="tag the point (repeatable)")
    p.add_argument("--force-rehash", action="store_true", help="read every file, even unchanged ones")
    p.add_argument(
        "--deadline",
        type=float,
        metavar="SECONDS",
        help="stop in time to save an incomplete point before SECONDS have passed (exit 4); "
        "the next snapshot of the item resumes from it",
    )
    p.add_argument(
        "--time",
        metavar="ISO8601",
        help="record the point at this time instead of now, with a time zone "
        "(e.g. 2026-11-30T12:00:00Z); the commit time is kept too",
    )


def parse_time(text: str | None) -> datetime | None:
    """``--time``: an ISO 8601 time with a time zone (``Z`` or an offset)."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--time {text!r} is not an ISO 8601 time (e.g. 2026-11-30T12:00:00Z)") from None
    if value.tzinfo is None:
        raise UsageError(f"--time {text!r} has no time zone: add Z or an offset such as +01:00")
    return value


async def _snapshot(ctx: Context, vault: Vault) -> int:
    a = ctx.args
    time = parse_time(a.time)
    counters = tiervault.Progress()
    async with progress(ctx, f"snapshot {a.item}", counters):
        result = await vault.snapshot(
            a.item,
            tags=a.tag,
            force_rehash=a.force_rehash,
            progress=counters,
            deadline=a.deadline,
            time=time,
        )
    s, point = result.stats, result.point
    if ctx.json:
        ctx.emit(
            {
                "point": point.to_json(),
                "stats": s.to_json(),
                "errors": list(result.errors),
                "warnings": list(result.warnings),
                "partial": result.partial,
                "incomplete": result.incomplete,
            }
        )
    else:
        ctx.out.print(
            f"recovery point {point.short_id} of item {point.item!r} saved"
            + (" (PARTIAL)" if result.partial else "")
            + (" (INCOMPLETE: the deadline ran out; run again to resume)" if result.incomplete else ""),
            soft_wrap=True,
        )
        ctx.out.print(
            f"  files: {s.files:,} ({s.files_read:,} read, {s.files_reused:,} unchanged), dirs: {s.dirs:,}, "
            f"other: {s.others:,}\n"
            f"  data:  {filesize(s.bytes_total)} total, {filesize(s.bytes_read)} read, "
            f"{filesize(s.bytes_new)} new, {filesize(s.stored_new)} stored in {s.packs_new:,} packs\n"
            f"  time:  {s.duration_s:.2f} s",
            soft_wrap=True,
        )
        print_problems(
            ctx, result.errors, f"{count(len(result.errors), 'entry', 'entries')} could not be backed up"
        )
        print_problems(
            ctx,
            result.warnings,
            f"{count(len(result.warnings), 'file')} changed while being backed up",
            kind="warning",
        )
    if result.incomplete:
        return ExitCode.INCOMPLETE
    return ExitCode.PARTIAL if result.partial else ExitCode.OK
