"""``tiervault forget``: apply retention, removing the recovery points no rule keeps."""

from __future__ import annotations

import zoneinfo
from datetime import tzinfo
from typing import Any

from tiervault import Policy, UsageError, Vault, load_prices

from .context import Context, vault_command
from .exitcodes import ExitCode
from .options import Commands
from .output import count, table, when
from .prune import add_prune_options, print_report, run_prune

_BUCKETS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")


def register(commands: Commands) -> None:
    p = commands.add(
        "forget",
        "remove the recovery points that the retention policy does not keep (their data stays until a prune)",
        vault_command(_forget),
    )
    p.add_argument(
        "item", metavar="ITEM", nargs="?", default=None, help="only this item (default: every item)"
    )
    pol = p.add_argument_group(
        "policy", "given options replace every item's own policy for this run; with none, each item's applies"
    )
    for k in _BUCKETS:
        what = "N newest points" if k == "last" else f"newest point of each of the N most recent {k} buckets"
        pol.add_argument(f"--keep-{k}", type=int, metavar="N", default=None, help=f"keep the {what}")
    pol.add_argument(
        "--keep-within",
        metavar="D",
        default=None,
        help="keep every point within D of the newest (e.g. 7d, 12h, 2w, 1y2m3d)",
    )
    pol.add_argument(
        "--keep-tag",
        action="append",
        default=[],
        metavar="T",
        help="keep every point with this tag (repeatable)",
    )
    add_tz_option(p)
    p.add_argument("--dry-run", action="store_true", help="decide and report, delete nothing")
    p.add_argument(
        "--prune", action="store_true", help="then run a prune (a dry one with --dry-run); see 'prune'"
    )
    add_prune_options(p)


def add_tz_option(p: Any) -> None:
    p.add_argument(
        "--tz",
        metavar="ZONE",
        default=None,
        help="bucket hours, days, weeks, months and years in this IANA time zone (default: UTC)",
    )


def time_zone(name: str | None) -> tzinfo | None:
    """``--tz``: an IANA time zone name such as Europe/Berlin."""
    if name is None:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--tz {name!r} is not a known time zone (e.g. UTC, Europe/Berlin)") from None


def policy_of(args: Any) -> Policy | None:
    """The policy the options give, or ``None`` when they give none (each item's own applies)."""
    given: dict[str, Any] = {
        f"keep_{k}": getattr(args, f"keep_{k}") for k in _BUCKETS if getattr(args, f"keep_{k}") is not None
    }
    if args.keep_within is not None:
        given["keep_within"] = args.keep_within
    if args.keep_tag:
        given["keep_tags"] = args.keep_tag
    return Policy(**given) if given else None


async def _forget(ctx: Context, vault: Vault) -> int:
    a = ctx.args
    given = a.max_unused is not None or a.max_repack_bytes is not None
    if not a.prune and (given or a.allow_early_delete or a.prices is not None):
        # checked before anything is deleted: a limit without a prune would be silently ignored
        raise UsageError(
            "--max-unused, --max-repack-bytes, --allow-early-delete and --prices apply to the prune: "
            "add --prune"
        )
    if a.prune and a.prices is not None:  # a bad price file is refused before anything is forgotten
        a.prices = load_prices(a.prices)
    decisions = await vault.forget(a.item, policy=policy_of(a), dry_run=a.dry_run, tz=time_zone(a.tz))
    report = None
    if a.prune:
        report = await run_prune(vault, a)
    code = ExitCode.OK if report is None or report.ok else ExitCode.INTEGRITY
    if ctx.json:
        out: dict[str, Any] = {"dry_run": a.dry_run, "points": [d.to_json() for d in decisions]}
        if report is not None:
            out["prune"] = report.to_json()
        ctx.emit(out)
        return code
    t = table("ID", "Time", "Item", "Decision", "Reasons")
    for d in decisions:
        t.add_row(d.id[:8], when(d.time), d.item, "keep" if d.keep else "remove", "; ".join(d.reasons))
    ctx.out.print(t)
    removed = sum(not d.keep for d in decisions)
    verb = "would be removed (dry run: nothing deleted)" if a.dry_run else "removed"
    ctx.out.print(f"{count(len(decisions) - removed, 'point')} kept, {count(removed, 'point')} {verb}")
    if report is not None:
        print_report(ctx, report)
    return code
