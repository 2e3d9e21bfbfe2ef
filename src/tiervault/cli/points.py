"""``tiervault points`` and ``tiervault ls``: the recovery points, and what one holds."""

from __future__ import annotations

import stat
from typing import Any

from tiervault import Entry, RecoveryPoint, RetentionDecision, Vault

from .context import Context, vault_command
from .exitcodes import ExitCode
from .forget import add_tz_option, time_zone
from .options import Commands, positive_int
from .output import count, filesize, table, text, when


def register(commands: Commands) -> None:
    p = commands.add("points", "list recovery points, oldest first", vault_command(_points))
    p.add_argument("--item", metavar="I", default=None, help="only points of this item")
    p.add_argument(
        "--tag", action="append", default=[], metavar="T", help="only points with this tag (repeatable)"
    )
    p.add_argument(
        "--explain",
        action="store_true",
        help="show whether each item's retention policy keeps each point, and why (as forget --dry-run)",
    )
    add_tz_option(p)

    p = commands.add("ls", "list a directory inside a recovery point", vault_command(_ls))
    p.add_argument("point", metavar="POINT")
    p.add_argument("path", metavar="PATH", nargs="?", default="", help="a directory or file inside the point")
    p.add_argument("-R", "--recursive", action="store_true", help="list subdirectories too")
    p.add_argument(
        "--max-entries",
        type=positive_int,
        default=None,
        metavar="N",
        help="refuse to list more than N entries recursively (default: 10,000,000)",
    )


async def _points(ctx: Context, vault: Vault) -> int:
    points = await vault.points(ctx.args.item, tags=ctx.args.tag or None)
    decided = {}
    if ctx.args.explain:
        zone = time_zone(ctx.args.tz)
        decided = {d.id: d for d in await vault.forget(ctx.args.item, dry_run=True, tz=zone)}
        points = [p for p in points if p.id in decided]  # committed after the listing: decided next time
    if ctx.json:
        ctx.emit([_point_json(p, decided.get(p.id)) for p in points])
        return ExitCode.OK
    extra = ("Retention",) if ctx.args.explain else ()
    t = table("ID", "Time", "Item", "Host", "Tags", "Files", "Size", "", *extra, right=("Files", "Size"))
    for p in points:
        d = decided.get(p.id)
        why = (("keep: " if d.keep else "remove: ") + "; ".join(d.reasons),) if d is not None else ()
        t.add_row(
            p.short_id,
            when(p.time),
            p.item,
            p.host,
            ",".join(p.tags),
            f"{p.stats.get('files', 0):,}",
            filesize(int(p.stats.get("bytes_total", 0))),
            "partial" if p.partial else "",
            *why,
        )
    ctx.out.print(t)
    ctx.out.print(count(len(points), "recovery point"))
    return ExitCode.OK


def _point_json(p: RecoveryPoint, d: RetentionDecision | None) -> dict[str, Any]:
    out = p.to_json()
    if d is not None:
        out["retention"] = {"keep": d.keep, "reasons": list(d.reasons)}
    return out


_TYPE_CHAR = {"dir": "d", "symlink": "l", "fifo": "p", "chardev": "c", "blockdev": "b"}


def _mode_text(e: Entry) -> str:
    return _TYPE_CHAR.get(e.type, "-") + stat.filemode(e.mode)[1:]


async def _ls(ctx: Context, vault: Vault) -> int:
    a = ctx.args
    limit = {"max_entries": a.max_entries} if a.max_entries else {}
    entries = await vault.ls(a.point, a.path, recursive=a.recursive, **limit)
    if ctx.json:
        ctx.emit([e.to_json() for e in entries])
        return ExitCode.OK
    t = table("Mode", "Size", "Modified", "Path", right=("Size",))
    for e in entries:
        name = text(e.path) + (f" -> {text(e.target)}" if e.target is not None else "")
        t.add_row(_mode_text(e), f"{e.size:,}" if e.type == "file" else "", when(e.mtime), name)
    ctx.out.print(t)
    return ExitCode.OK
