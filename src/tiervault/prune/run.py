"""One prune run, steps 1-9 of docs/format.md, "prune, step by step" (the swept packs are deleted
after the consolidation of step 7, see ``sweep``). A dry run takes the lease and
writes its own heartbeat (its store time is the run's "now"), runs steps 2-3, and computes 4-8
without storing or deleting anything else."""

from __future__ import annotations

import logging
import os

from tiervault.clock import SYSTEM_CLOCK, Clock
from tiervault.core.format.envelope import ObjectType
from tiervault.core.format.gcobjects import CondemnedPack, GoneRecord, PlanRecord
from tiervault.costs import PriceTable, default_prices
from tiervault.errors import UsageError
from tiervault.prune.consolidate import consolidate, index_orphans, listed_now
from tiervault.prune.context import PruneContext
from tiervault.prune.decide import mark, retire_gones
from tiervault.prune.lease import PruneLease
from tiervault.prune.liveset import live_set, view_of
from tiervault.prune.load import load
from tiervault.prune.repack import candidates, choose, repack
from tiervault.prune.report import PruneReport
from tiervault.prune.requests import DELETE_BATCH, PruneBackend
from tiervault.prune.sweep import delete_swept, sweep
from tiervault.repo.gcstate import HEARTBEAT_EXPIRY, MAX_SKEW
from tiervault.repo.provenance import host_name
from tiervault.repo.repository import Repository

log = logging.getLogger("tiervault.prune")

#: restic's default ``--max-unused``: 5 % of the kept packs' bytes may be unused blobs
DEFAULT_MAX_UNUSED = 0.05


def _check_limits(max_unused: float | int, max_repack_bytes: int | None) -> None:
    if isinstance(max_unused, bool) or not isinstance(max_unused, (int, float)):
        raise UsageError(f"max_unused must be a fraction (float) or bytes (int), not {max_unused!r}")
    if isinstance(max_unused, float) and not 0.0 <= max_unused <= 1.0:
        raise UsageError(f"max_unused as a fraction must be between 0 and 1, not {max_unused!r}")
    if max_unused < 0:
        raise UsageError(f"max_unused must not be negative, not {max_unused!r}")
    if max_repack_bytes is not None and (isinstance(max_repack_bytes, bool) or max_repack_bytes < 0):
        raise UsageError(f"max_repack_bytes must be bytes >= 0, not {max_repack_bytes!r}")


async def prune(
    repo: Repository,
    *,
    dry_run: bool = False,
    max_unused: float | int = DEFAULT_MAX_UNUSED,
    max_repack_bytes: int | None = None,
    clock: Clock = SYSTEM_CLOCK,
    allow_early_delete: bool = False,
    prices: PriceTable | None = None,
) -> PruneReport:
    """Run one prune on ``repo`` (a version-2 repository; the caller checks the version). ``prices``
    (default: the shipped table) gives each tier's minimum retention: a pack inside it is not swept
    or repacked unless ``allow_early_delete`` (docs/costs.md, "Early deletion")."""
    _check_limits(max_unused, max_repack_bytes)
    if not repo.backend.capabilities.leases:
        raise UsageError(
            f"{repo.backend.location} cannot be pruned: the store has no leases, and a prune needs the "
            "exclusive prune lease"
        )
    backend = PruneBackend(repo.backend)
    backend.writable = not dry_run
    prepo = Repository(backend, repo.config, repo.keys, repo.key_name)
    lease = PruneLease(backend, prepo.objects, clock)
    table = prices if prices is not None else default_prices()
    report = PruneReport(dry_run=dry_run, allow_early_delete=allow_early_delete, currency=table.currency)
    await lease.acquire()  # step 1
    backend.guard = lease.check
    lease.start()
    try:
        now = await lease.first_heartbeat()
        backend.step = "load"
        loaded = await load(prepo)
        if not dry_run:  # step 1's clean-up, on the step-2 listing of locks/
            dead = [b.name for b in loaded.beats.beats if b.stored < now - HEARTBEAT_EXPIRY - MAX_SKEW]
            if dead:
                await backend.delete_many(dead)
            report.heartbeats_deleted = len(dead)
        backend.step = "live"
        view = view_of(prepo, loaded)
        live = await live_set(view, loaded)
        report.snapshots = len(loaded.snapshots)
        report.live_chunks = len(live.live)
        report.unprovable = [(p, loaded.packs[p].size, why) for p, why in sorted(loaded.unprovable.items())]
        report.damaged_index = sorted(e.name for e in loaded.damaged_index)
        if live.refused:
            report.refused = live.refused
            for why in live.refused:
                log.error("prune refused: %s", why)
            return report
        ctx = PruneContext.create(prepo, view, backend, loaded, live, now, report, dry_run)
        ctx.prices, ctx.allow_early_delete = table, allow_early_delete
        backend.step = "sweep"
        await index_orphans(ctx)
        await sweep(ctx)  # decides and stores the GONE objects; the deletes follow step 7
        backend.step = "repack"
        copied = await repack(ctx, choose(ctx, max_unused, max_repack_bytes))
        backend.step = "mark"
        await _mark(ctx, copied)
        backend.step = "consolidate"
        listed = await consolidate(ctx)
        backend.step = "sweep"
        await delete_swept(ctx)
        backend.step = "retire"
        await _retire(ctx, await listed_now(ctx, listed))
        if dry_run:
            report.would_request = _estimate(ctx, repo.pack_size)
    finally:
        backend.step = "release"
        await lease.close()
        report.requests = dict(backend.requests)
    return report


async def _mark(ctx: PruneContext, copied: set[str]) -> None:
    """Step 6: condemn, in one PLAN."""
    marked = mark(candidates(ctx), ctx.live.live, ctx.live.locations, ctx.blocked(), ctx.blobs, first=copied)
    unindexed = ctx.loaded.unindexed
    live = ctx.live.live
    packs = []
    for pid in marked:
        if pid in copied:
            reason = "repacked"
        elif pid in unindexed:
            reason = "orphan"
        else:
            reason = "unreferenced" if not any(c in live for c, _ in ctx.blobs[pid]) else "repacked"
        kind = ctx.loaded.packs[pid].kind.prefix if pid in ctx.loaded.packs else "data"
        packs.append(CondemnedPack(pid, kind, reason))
    ctx.report.condemned = [(p.id, p.reason) for p in packs]
    if packs:
        if not ctx.dry_run:
            record = PlanRecord(
                tuple(packs), tuple(sorted(s.id for s in ctx.loaded.snapshots)), host_name(), os.getpid()
            )
            name = await ctx.repo.objects.save_plain("gc/", ObjectType.PLAN, record.to_bytes())
            ctx.pending[name.removeprefix("gc/")] = set(marked)
        else:
            ctx.pending["dry-run"] = set(marked)
    ctx.report.bytes_next = sum(ctx.sizes.get(p, 0) for p in ctx.condemned if p in ctx.existing)


async def _retire(ctx: PruneContext, listed: set[str]) -> None:
    """Step 8."""
    gc = ctx.loaded.gc
    plans = set(gc.plans) - ctx.plans_deleted
    retire = retire_gones(gc.gones.values(), plans, listed, ctx.now, ctx.loaded.beats.beats)
    ctx.report.gone_unlisted = len(retire.unlist)
    ctx.report.gone_deleted = len(retire.delete)
    if ctx.dry_run:
        return
    for g in retire.unlist:
        new = GoneRecord(g.record.plan, g.record.packs, True, g.id)
        await ctx.repo.objects.save_plain("gc/", ObjectType.GONE, new.to_bytes())
        await ctx.backend.delete(g.name)
    if retire.delete:
        await ctx.backend.delete_many([g.name for g in retire.delete])


def _batches(n: int) -> int:
    return -(-n // DELETE_BATCH)


def _estimate(ctx: PruneContext, pack_size: int) -> dict[str, int]:
    """The mutating requests (and repack reads) a real run would make now, per step: a dry run's
    ``requests`` count only the reads it made."""
    r = ctx.report
    out = {
        "sweep": 2 * len(ctx.plans_deleted)
        + len(ctx.carried)
        + _batches(len(r.swept))
        + (1 if r.indexed_orphans else 0),
        "repack": (len(r.repacked) + -(-r.repack_copied_bytes // pack_size) + 1) if r.repacked else 0,
        "mark": 1 if r.condemned else 0,
        "consolidate": 0,
        "retire": 2 * r.gone_unlisted + _batches(r.gone_deleted),
    }
    if r.index_files_after != r.index_files_before:
        out["consolidate"] = r.index_files_after + _batches(r.index_files_before)
    return {k: v for k, v in out.items() if v}
