"""One ``tier`` run (docs/tiering.md): list the data packs with their tiers, find the live points
needing each, decide (``decide``), and move the packs that should go colder, ``BATCH`` per
``set_tier_many`` call (one Blob Batch request on Azure).

Resumable by construction: the plan is computed from the store's current tiers, so a run killed
midway leaves some packs moved and the next run plans the same moves minus those. Runs need no
lock: two at once plan the same idempotent moves; a pack a concurrent prune deleted meanwhile is
reported in ``failed`` and skipped.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo

from tiervault.backend.base import Tier
from tiervault.errors import BackendError, ObjectNotFoundError, UsageError
from tiervault.policy import Policy
from tiervault.repo.gcstate import GcState
from tiervault.repo.repository import Repository
from tiervault.repo.snapshots import parse_iso
from tiervault.tiering.decide import PackState, PointRef, TierDecision, contradictions, decide
from tiervault.tiering.expiry import FuturePoint, kept_at
from tiervault.tiering.refs import packs_by_point
from tiervault.tiering.report import TierMove, TierReport
from tiervault.tiering.rules import COLDER, MINIMUM, is_data_pack

__all__ = ["BATCH", "check_as_of", "plan", "tier"]

log = logging.getLogger("tiervault.tiering")

#: packs per ``set_tier_many`` call: Blob Batch takes at most 256 sub-requests
BATCH = 256


def check_as_of(as_of: object, now: datetime) -> datetime:
    """``as_of`` as an aware time (a naive one is UTC); ``UsageError`` unless it is a datetime no
    earlier than ``now`` (a preview is of the future: the past's plan is what ``tier`` did)."""
    if not isinstance(as_of, datetime):
        raise UsageError(f"as_of must be a datetime, not {as_of!r}")
    when = as_of if as_of.tzinfo is not None else as_of.replace(tzinfo=UTC)
    if when < now:
        raise UsageError(
            f"as_of {when.isoformat()} is in the past (now is {now.isoformat(timespec='seconds')}): "
            "a preview is for a future date"
        )
    return when


async def plan(
    repo: Repository, gc: GcState, now: datetime, report: TierReport, *, tz: tzinfo | None = None
) -> list[TierDecision]:
    """The decision for every stored data pack at ``now``; warnings go to ``report``. ``tz``: the
    time zone retention buckets in (as ``forget``'s)."""
    policies: dict[str, Policy | None] = {}
    for rec in await repo.list_items():
        try:
            policies[rec.name] = Policy.from_json(rec.policy)
        except UsageError as exc:
            policies[rec.name] = None
            report.warnings.append(f"item {rec.name!r} has an invalid policy ({exc}): its packs stay")
    for name, policy in sorted(policies.items()):
        report.warnings.extend(f"item {name!r}: {w}" for w in contradictions(policy))
    snapshots, damaged = await repo.load_snapshots()
    for bad in damaged:
        report.warnings.append(f"{bad.name} does not decode ({bad.detail}): the packs it needs are unknown")
    by_item: dict[str, list[FuturePoint]] = defaultdict(list)
    for snap in snapshots:
        when = parse_iso(snap.time)
        by_item[snap.item].append(FuturePoint(snap.id, snap.item, when, tuple(snap.tags), snap.incomplete))
    survivors: dict[Tier, frozenset[str]] = {}
    for tier in COLDER:
        kept: set[str] = set()
        for item, points in by_item.items():
            kept |= kept_at(points, policies.get(item), now + MINIMUM[tier], tz=tz)
        survivors[tier] = frozenset(kept)
    # per pack, only what decide needs: each item's newest point needing it (the warmest rule) and,
    # per tier, one point needing it that survives the tier's minimum (if any)
    newest: dict[str, dict[str, PointRef]] = defaultdict(dict)
    lasting: dict[str, dict[Tier, PointRef]] = defaultdict(dict)
    async for snap, packs in packs_by_point(repo, snapshots):
        ref = PointRef(snap.id, snap.item, parse_iso(snap.time))
        tiers = [t for t in COLDER if snap.id in survivors[t]]
        for name in packs:
            mine = newest[name]
            held = mine.get(snap.item)
            if held is None or (held.time, held.id) < (ref.time, ref.id):
                mine[snap.item] = ref
            for t in tiers:
                lasting[name].setdefault(t, ref)
    refs = {name: [*items.values(), *lasting.get(name, {}).values()] for name, items in newest.items()}
    condemned = gc.condemned
    out = []
    async for info in repo.backend.list("data/"):
        if not is_data_pack(info.name):
            continue
        pack = PackState(info.name, info.size, info.tier, info.tier_changed)
        if info.rehydrating:
            out.append(TierDecision(pack, pack.tier, "being rehydrated: a restore needs it", "rehydrating"))
            continue
        d = decide(
            pack, refs.get(info.name, ()), policies, now, condemned=pack.id in condemned, survivors=survivors
        )
        out.append(d)
    return sorted(out, key=lambda d: d.pack.name)


async def tier(
    repo: Repository, gc: GcState, now: datetime, *, dry_run: bool, tz: tzinfo | None = None
) -> TierReport:
    """Plan at ``now`` and, unless ``dry_run``, apply: every planned move, batched per target tier."""
    report = TierReport(dry_run=dry_run, as_of=now)
    decisions = await plan(repo, gc, now, report, tz=tz)
    by_target: dict[Tier, list[TierDecision]] = defaultdict(list)
    for d in decisions:
        if d.moves:
            by_target[d.target].append(d)
        else:
            report.kept += 1
            report.held[d.rule] = report.held.get(d.rule, 0) + 1
    failed: set[str] = set()
    for target in COLDER:
        todo = by_target.get(target, [])
        for i in range(0, len(todo), BATCH):
            batch = todo[i : i + BATCH]
            report.batches += 1
            if not dry_run:
                failed |= await _apply(repo, [d.pack.name for d in batch], target, report)
    for d in decisions:
        moved = d.moves and d.pack.name not in failed
        if moved:
            report.moves.append(
                TierMove(d.pack.name, d.pack.size, d.pack.tier, d.target, d.reason, d.pack.tier_changed)
            )
        totals = report.tiers[d.target if moved else d.pack.tier]
        totals.objects += 1
        totals.bytes += d.pack.size
    if report.moves and not dry_run:
        log.info("tiered %d pack(s), %d bytes", len(report.moves), report.moved_bytes)
    return report


async def _apply(repo: Repository, names: Sequence[str], target: Tier, report: TierReport) -> set[str]:
    """Move ``names`` to ``target`` in one batch; if the batch fails, one by one, so that a pack
    deleted meanwhile (or refused) fails alone. Returns the names that were not moved."""
    backend = repo.backend
    try:
        await backend.set_tier_many(names, target)
        return set()
    except BackendError as exc:
        log.info("batch of %d to %s failed (%s): moving one by one", len(names), target.value, exc)
    failed: set[str] = set()
    for name in names:
        try:
            await backend.set_tier(name, target)
        except ObjectNotFoundError:
            failed.add(name)
            report.failed.append((name, "deleted meanwhile (a concurrent prune)"))
        except (BackendError, UsageError) as exc:
            failed.add(name)
            report.failed.append((name, str(exc)))
    return failed
