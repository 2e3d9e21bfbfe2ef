"""``tiervault plan-restore``: what a restore needs, and what a restore from Archive adds (the packs to
rehydrate, their bytes, the estimated wait, what can be restored right now); and the plan and progress
lines ``restore --rehydrate`` prints (docs/restore-archive.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tiervault import RecoveryPoint, RehydrationProgress, Vault

from .context import Context, vault_command
from .exitcodes import ExitCode
from .options import Commands, positive_int
from .output import count, filesize


def add_priority(p: Any) -> None:
    p.add_argument(
        "--priority",
        choices=("standard", "high"),
        default="standard",
        help="rehydration priority: standard (estimate: up to 15 h) or high (about 1 h for objects "
        "under 10 GB, at a higher price)",
    )


def register(commands: Commands) -> None:
    p = commands.add(
        "plan-restore",
        "what restoring a point needs, writing nothing: packs by state, what must come out of Archive, "
        "the estimated wait, and what can be restored right now",
        vault_command(_plan),
    )
    p.add_argument("point", metavar="POINT")
    p.add_argument(
        "--path", action="append", default=[], metavar="P", help="plan only this path (repeatable)"
    )
    p.add_argument(
        "--include", action="append", default=[], metavar="G", help="only paths matching this glob"
    )
    p.add_argument(
        "--exclude", action="append", default=[], metavar="G", help="skip paths matching this glob"
    )
    add_priority(p)
    p.add_argument("--max-entries", type=positive_int, default=None, metavar="N", help="as for restore")


async def _plan(ctx: Context, vault: Vault) -> int:
    a = ctx.args
    point: RecoveryPoint = await vault.point(a.point)
    summary = await vault.plan_restore(
        point,
        paths=a.path or None,
        include=a.include or None,
        exclude=a.exclude or None,
        priority=a.priority,
        **({"max_entries": a.max_entries} if a.max_entries else {}),
    )
    plan = summary.to_json()
    if ctx.json:
        ctx.emit({"point": point.id, **plan})
    else:
        ctx.out.print(f"plan for restoring recovery point {point.short_id}", soft_wrap=True)
        print_plan(ctx, plan)
    return ExitCode.OK


def _packs(by_state: dict[str, int], sizes: dict[str, int]) -> str:
    parts = [f"{n:,} {state} ({filesize(sizes.get(state, 0))})" for state, n in sorted(by_state.items())]
    return ", ".join(parts) or "none"


def print_plan(ctx: Context, plan: dict[str, Any]) -> None:
    """The plan's summary for people (``RestorePlanSummary.to_json``)."""
    out = ctx.out
    out.print(
        f"  selected: {count(plan['files'], 'file')} ({filesize(plan['bytes'])}), "
        f"{count(plan['dirs'], 'dir')}, {plan['others']:,} other",
        soft_wrap=True,
    )
    out.print(f"  packs:    {_packs(plan['packs'], plan['bytes_by_state'])}", soft_wrap=True)
    out.print(
        f"  now:      {count(plan['now_files'], 'file')} ({filesize(plan['now_bytes'])}) can be "
        f"restored right now; {count(plan['blocked_files'], 'file')} ({filesize(plan['blocked_bytes'])}) "
        "wait for Archive",
        soft_wrap=True,
    )
    info = plan.get("rehydration")
    if info is None:
        return
    if plan["rehydrate_packs"]:
        out.print(
            f"  archive:  {count(plan['rehydrate_packs'], 'pack')} ({filesize(plan['rehydrate_bytes'])}) "
            f"to rehydrate at {info['priority']} priority, {info['expected_wait']}",
            soft_wrap=True,
        )
        if "estimated_cost" in info:
            out.print(
                f"  cost:     about {info['estimated_cost']:.4f} {info['currency']} to rehydrate "
                "(estimate from list prices; docs/costs.md)",
                soft_wrap=True,
            )
    progress = info.get("in_progress")
    if progress is not None:
        out.print(f"  started:  {progress_line(progress)}", soft_wrap=True)


def progress_line(p: dict[str, Any]) -> str:
    started = p.get("started")
    since = (
        ""
        if started is None
        else f" since {datetime.fromtimestamp(started, UTC).isoformat(timespec='seconds')}"
    )
    left = f", {p['wait']} left" if p["waiting_packs"] else ""
    return (
        f"rehydration{since} ({p['priority']}): {p['ready']:,} of {count(p['packs'], 'pack')} ready "
        f"({filesize(p['ready_bytes'])} of {filesize(p['bytes'])}){left}"
    )


def progress_printer(ctx: Context) -> Any:
    """``restore --rehydrate --wait``: one line per poll on stderr (also when not a terminal, so
    that a log shows how the wait went)."""

    def show(p: RehydrationProgress) -> None:
        ctx.err.print(progress_line(p.to_json()), soft_wrap=True)

    return show
