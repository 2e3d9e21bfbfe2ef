"""Step 4 of a prune, the sweep (docs/format.md, "prune, step by step"; invariants 11, 12): finish
the sweeps a killed prune left (a PLAN that has a GONE), then sweep every due plan oldest first:
reinstate the packs a live chunk still needs and store the GONE. The swept packs are deleted, then
their PLANs, only once the consolidated index that no longer lists them is stored (step 7), so no
index file a reader opens later names a deleted pack."""

from __future__ import annotations

import logging
import os

from tiervault.core.format.envelope import ObjectType
from tiervault.core.format.gcobjects import CondemnedPack, GoneRecord, PlanRecord
from tiervault.errors import ObjectNotFoundError
from tiervault.prune.context import PruneContext
from tiervault.prune.decide import plan_due, reinstate
from tiervault.prune.early import EarlyPack
from tiervault.prune.report import Deferred
from tiervault.repo.provenance import host_name

log = logging.getLogger("tiervault.prune")


def _delete_packs(ctx: PruneContext, packs: list[CondemnedPack], plan: str) -> None:
    """Decide to delete ``packs``: they leave the index at the consolidation, and are deleted right
    after it (``delete_swept``). One inside its tier's minimum is reported with its charge."""
    for p in packs:
        if p.id in ctx.existing:
            if (e := ctx.early(p.id)) is not None:
                ctx.report.early_deleted.append(EarlyPack(p.id, "sweep", plan, e))
            ctx.existing.discard(p.id)
            ctx.to_delete.append(p)
            ctx.report.swept.append(p.id)
            ctx.report.bytes_freed += ctx.sizes.get(p.id, 0)


def _delete_plan(ctx: PruneContext, plan_id: str) -> None:
    ctx.plans_deleted.add(plan_id)


async def delete_swept(ctx: PruneContext) -> None:
    """After the consolidated index (which no longer lists them) is stored: delete the swept packs,
    then their PLANs (invariant 12: the PLAN goes after the last pack)."""
    if ctx.dry_run:
        return
    if ctx.to_delete:
        await ctx.backend.delete_many([p.name for p in ctx.to_delete])
    for plan_id in sorted(ctx.plans_deleted):
        try:
            await ctx.backend.delete("gc/" + plan_id)
        except ObjectNotFoundError:
            pass


async def finish_killed(ctx: PruneContext) -> None:
    """A PLAN that has a GONE: a sweep was killed after its GONE. Delete the GONE's packs that still
    exist, after the same re-check as a sweep (a crafted GONE cannot delete live data), then the PLAN."""
    gc = ctx.loaded.gc
    for gone in sorted(gc.gones.values(), key=lambda g: (g.stored, g.id)):
        if gone.record.plan not in gc.plans or gone.record.plan in ctx.plans_deleted:
            continue
        still = [p for p in gone.record.packs if p.id in ctx.existing]
        # the GONE's own packs are blocked (gone): each is kept only if a live chunk lacks any
        # other location outside blocked packs
        keep = reinstate((p.id for p in still), ctx.live.live, ctx.live.locations, ctx.blocked(), ctx.blobs)
        for pid in sorted(keep):
            log.warning("gone pack %s holds a live chunk found nowhere else: kept", pid[:12])
            ctx.report.reinstated.append(pid)
        _delete_packs(ctx, [p for p in still if p.id not in keep], gone.record.plan)
        ctx.pending.pop(gone.record.plan, None)
        _delete_plan(ctx, gone.record.plan)


async def sweep(ctx: PruneContext) -> None:
    await finish_killed(ctx)
    beats = ctx.loaded.beats.beats
    for plan in ctx.loaded.gc.pending():
        due = plan_due(plan.mark, ctx.now, beats)
        if not due.ok:
            hb = due.heartbeat
            ctx.report.deferred.append(
                Deferred(
                    plan.id,
                    due.until,
                    hb.name if hb else None,
                    hb.record.host if hb else None,
                    hb.record.pid if hb else None,
                )
            )
            continue
        ids = [p.id for p in plan.record.packs if p.id in ctx.existing and p.id not in ctx.gone]
        keep = reinstate(ids, ctx.live.live, ctx.live.locations, ctx.blocked(), ctx.blobs)
        rest = tuple(p for p in plan.record.packs if p.id not in keep)
        wait = _early(ctx, plan.id, [p for p in rest if p.id in ids])
        if wait and not keep and len(wait) == len(ids):
            continue  # nothing to sweep or reinstate yet: the plan stays pending as it is
        if wait:
            rest = tuple(p for p in rest if p not in wait)
            await _carry(ctx, plan.id, wait)
        ctx.report.reinstated.extend(sorted(keep))
        if not ctx.dry_run:
            record = GoneRecord(
                plan.id, tuple(CondemnedPack(p.id, p.kind, "unreferenced") for p in rest), False, None
            )
            await ctx.repo.objects.save_plain("gc/", ObjectType.GONE, record.to_bytes())
        ctx.gone.update(p.id for p in rest)
        del ctx.pending[plan.id]
        _delete_packs(ctx, list(rest), plan.id)
        _delete_plan(ctx, plan.id)


def _early(ctx: PruneContext, plan: str, packs: list[CondemnedPack]) -> list[CondemnedPack]:
    """The packs of ``packs`` (a due plan's, to be deleted) whose sweep waits for the end of their
    tier's minimum retention; each is reported with the charge avoided. None if early deletion is
    allowed (``_delete_packs`` then reports the charge)."""
    if ctx.allow_early_delete:
        return []
    wait = []
    for p in packs:
        if (e := ctx.early(p.id)) is not None:
            wait.append(p)
            ctx.report.early_deferred.append(EarlyPack(p.id, "sweep", plan, e))
    return wait


async def _carry(ctx: PruneContext, plan: str, wait: list[CondemnedPack]) -> None:
    """Condemn ``wait`` (packs of ``plan`` whose sweep waits for their minimum) in a new PLAN, stored
    before ``plan``'s GONE, so that they stay condemned throughout; the GONE then names only the
    packs swept now. Packs another pending plan condemns already (a run killed between the two
    stores) are not condemned again."""
    others = set().union(*(s for q, s in ctx.pending.items() if q != plan))
    carry = tuple(p for p in wait if p.id not in others)
    if not carry:
        return
    if ctx.dry_run:
        name = f"dry-run-carry-{plan}"
    else:
        record = PlanRecord(
            carry, tuple(sorted(s.id for s in ctx.loaded.snapshots)), host_name(), os.getpid()
        )
        name = (await ctx.repo.objects.save_plain("gc/", ObjectType.PLAN, record.to_bytes())).removeprefix(
            "gc/"
        )
    ctx.carried.append(name)
    ctx.pending[name] = {p.id for p in carry}
