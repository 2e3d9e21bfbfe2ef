"""``tiervault restore``: restore a recovery point, or part of it, into a directory."""

from __future__ import annotations

import os

from tiervault import RecoveryPoint, RehydrationNeededError, RestoreResult, UsageError, Vault

from . import passwords
from .context import Context, run_on_vault
from .exitcodes import ExitCode
from .options import Commands, positive_int
from .output import count, filesize, print_problems, progress, text
from .rehydrate import add_priority, print_plan, progress_line, progress_printer


def register(commands: Commands) -> None:
    p = commands.add("restore", "restore a recovery point, or part of it, into a directory", _handle)
    p.add_argument("point", metavar="POINT")
    p.add_argument("--target", required=True, metavar="DIR", help="where to restore to")
    p.add_argument(
        "--path", action="append", default=[], metavar="P", help="restore only this path (repeatable)"
    )
    p.add_argument(
        "--include", action="append", default=[], metavar="G", help="only paths matching this glob"
    )
    p.add_argument(
        "--exclude", action="append", default=[], metavar="G", help="skip paths matching this glob"
    )
    p.add_argument("--verify", action="store_true", help="read back and check every restored file")
    p.add_argument(
        "--deadline",
        type=float,
        metavar="SECONDS",
        help="start no new read after SECONDS, once a file is restored (exit 4); the same restore into "
        "the same target resumes",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="restore even into a directory inside the item's protected source (with a warning)",
    )
    p.add_argument(
        "--max-entries",
        type=positive_int,
        default=None,
        metavar="N",
        help="plan at most N entries in memory (default: 10,000,000; with --path, only what it selects)",
    )
    p.add_argument(
        "--rehydrate",
        action="store_true",
        help="copy the archived packs it needs out of Archive (staging copies) and exit 5 until they "
        "are readable; run the same restore again, from any host, to finish it",
    )
    add_priority(p)
    p.add_argument(
        "--wait",
        action="store_true",
        help="with --rehydrate: wait for the rehydration (a progress line per poll), then restore",
    )


def _handle(ctx: Context) -> int:
    ctx.args.target = os.path.abspath(ctx.args.target)
    return run_on_vault(ctx, passwords.password(ctx.args), _restore)


async def _restore(ctx: Context, vault: Vault) -> int:
    a = ctx.args
    point: RecoveryPoint = await vault.point(a.point)
    if a.wait and not a.rehydrate:
        raise UsageError("--wait waits for a rehydration: use it with --rehydrate")
    try:
        async with progress(ctx, f"restoring {point.short_id}"):
            result = await vault.restore(
                point,
                a.target,
                paths=a.path or None,
                include=a.include or None,
                exclude=a.exclude or None,
                verify=a.verify,
                deadline=a.deadline,
                force=a.force,
                rehydrate=a.rehydrate,
                priority=a.priority,
                wait=a.wait,
                progress=progress_printer(ctx) if a.wait else None,
                **({"max_entries": a.max_entries} if a.max_entries else {}),
            )
    except RehydrationNeededError as exc:  # before anything was written: the plan, its own exit code
        if ctx.json:
            ctx.emit(
                {"point": point.id, "target": a.target, "ok": False, "error": str(exc), "plan": exc.plan}
            )
        else:
            ctx.err.print(f"{exc}", soft_wrap=True)
            if exc.plan is not None:
                print_plan(ctx, exc.plan)
        return ExitCode.REHYDRATION_NEEDED
    if result.awaiting_rehydration:
        return _awaiting(ctx, point, result)
    s = result.stats
    if ctx.json:
        ctx.emit({"point": point.id, "target": a.target, **result.to_json()})
    else:
        if result.incomplete:
            ctx.out.print("INCOMPLETE: the deadline came first; run the same restore again to finish it")
        verified = f", {s.files_verified:,} verified" if a.verify else ""
        ctx.out.print(
            f"restored recovery point {point.short_id} to {text(a.target)}\n"
            f"  files: {s.files:,} ({s.files_written:,} written, {s.files_unchanged:,} unchanged{verified}), "
            f"dirs: {s.dirs:,}, symlinks: {s.symlinks:,}, other: {s.others:,}\n"
            f"  data:  {filesize(s.bytes_written)} written, {filesize(s.bytes_fetched)} fetched "
            f"from {s.packs_read:,} packs\n"
            f"  reads: {count(s.cache_hits, 'request')} ({filesize(s.cache_bytes)}) from the disk tier, "
            f"{count(s.remote_reads, 'request')} ({filesize(s.remote_bytes)}) from the repository\n"
            f"  time:  {s.duration_s:.2f} s",
            soft_wrap=True,
        )
        if s.leftovers_removed:
            ctx.out.print(
                f"  removed {count(s.leftovers_removed, 'temporary file')} left by earlier, "
                "interrupted restores"
            )
        if result.rehydration is not None:
            ctx.out.print(
                f"  archive: read {count(result.rehydration.packs, 'pack')} from staging copies, "
                f"{count(result.staging_removed, 'staging copy', 'staging copies')} removed",
                soft_wrap=True,
            )
        print_problems(
            ctx, result.errors, f"{count(len(result.errors), 'entry', 'entries')} could not be restored"
        )
    if not result.ok:
        return ExitCode.PARTIAL
    return ExitCode.INCOMPLETE if result.incomplete else ExitCode.OK


def _awaiting(ctx: Context, point: RecoveryPoint, result: RestoreResult) -> int:
    """Rehydration started (or still running): nothing was written; the same restore continues."""
    if ctx.json:
        ctx.emit({"point": point.id, "target": ctx.args.target, **result.to_json()})
        return ExitCode.AWAITING_REHYDRATION
    ctx.out.print(
        f"AWAITING REHYDRATION: nothing was written; run the same restore of {point.short_id} again "
        "(from any host) to finish it",
        soft_wrap=True,
    )
    if result.rehydration is not None:
        ctx.out.print(f"  {progress_line(result.rehydration.to_json())}", soft_wrap=True)
    if result.plan is not None:
        print_plan(ctx, result.plan.to_json())
    return ExitCode.AWAITING_REHYDRATION
