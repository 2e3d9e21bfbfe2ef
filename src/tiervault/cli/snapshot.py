"""``tiervault snapshot``: take a recovery point of a protected item."""

from __future__ import annotations

import tiervault
from tiervault import Vault

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


async def _snapshot(ctx: Context, vault: Vault) -> int:
    a = ctx.args
    counters = tiervault.Progress()
    async with progress(ctx, f"snapshot {a.item}", counters):
        result = await vault.snapshot(
            a.item, tags=a.tag, force_rehash=a.force_rehash, progress=counters, deadline=a.deadline
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
