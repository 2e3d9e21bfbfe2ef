"""What ``check`` reports about garbage collection (docs/format.md, "Garbage collection: forget and
prune", "check"): in a version-2 repository the objects of ``gc/`` and ``locks/``, condemned and gone
packs and dead heartbeats; in every repository the packs that no recovery point uses ("unused", with
their bytes: what a prune reclaims, never an error).

Ages are differences of store times only. ``check`` writes nothing, so it cannot learn the store's
"now" the way a prune does (by storing a heartbeat); it uses the newest store time among the
objects it listed, which the store's now can only exceed: a heartbeat reported dead is dead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tiervault.backend.base import ObjectInfo
from tiervault.costs import default_prices
from tiervault.repo.gcstate import GRACE, HEARTBEAT_EXPIRY, LEASE_NAME, MAX_SKEW, GcState, load_heartbeats
from tiervault.repo.index import PackInfo
from tiervault.repo.locations import gc_state
from tiervault.repo.repository import Repository


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="seconds")


def pack_id(name: str) -> str:
    return name.rsplit("/", 1)[-1]


@dataclass(slots=True)
class GcFindings:
    """What ``gc/`` and ``locks/`` hold, as ``check`` reports it (all empty in version 1)."""

    state: GcState = field(default_factory=GcState)
    errors: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    #: one entry per condemned pack: object, bytes, plan, reason, after (the earliest sweep)
    condemned: list[dict[str, Any]] = field(default_factory=list)

    @property
    def gone(self) -> frozenset[str]:
        return self.state.gone

    @property
    def condemned_ids(self) -> frozenset[str]:
        return self.state.condemned


async def gc_findings(repo: Repository, stored: dict[str, ObjectInfo]) -> GcFindings:
    """Read ``gc/`` and ``locks/`` (version 2 only: in version 1 nothing reads or writes them) and
    judge them against the packs ``stored`` (name -> listing)."""
    out = GcFindings()
    if not repo.gc_enabled:  # nothing version 1 writes lives there: only listed, to say so
        for prefix in ("gc/", "locks/"):
            names = sorted([i.name async for i in repo.backend.list(prefix) if i.name != LEASE_NAME])
            if names:
                out.errors.append(
                    {
                        "object": names[0],
                        "error": f"{len(names):,} version-2 object(s) under {prefix} in a repository whose "
                        "config says format version 1 (a downgraded config?): snapshot, forget and "
                        "prune refuse to write here; reading and restoring work",
                    }
                )
        return out
    state = out.state = await gc_state(repo)
    beats = await load_heartbeats(repo.backend, repo.objects)
    for exc in state.damaged:
        out.errors.append({"object": exc.name, "error": f"gc object does not open: {exc.detail}"})
    for name in sorted(state.foreign + beats.foreign):
        out.warnings.append(
            {"object": name, "warning": "not an object of this repository's format (ignored by every reader)"}
        )
    for exc in beats.damaged:
        out.warnings.append({"object": exc.name, "warning": f"heartbeat does not open: {exc.detail}"})
    by_id = {pack_id(n): n for n in stored}
    for gone in sorted(state.gones.values(), key=lambda g: g.id):
        for p in gone.record.packs:
            if p.id in by_id:
                out.warnings.append(
                    {
                        "object": by_id[p.id],
                        "warning": f"pack is gone (swept by plan {gone.record.plan[:16]}, {gone.name}) but "
                        "still stored: a sweep in progress or killed; the next prune finishes it",
                        "bytes": str(stored[by_id[p.id]].size),
                    }
                )
    table = default_prices()
    for plan in state.pending():
        for p in plan.record.packs:
            if p.id in by_id:
                info = stored[by_id[p.id]]
                when, note = plan.mark + GRACE, ""
                since = info.modified if info.tier_changed is None else info.tier_changed
                ends = since + timedelta(days=table.tier(info.tier).min_days)
                if ends > when:  # prune defers it (early deletion) unless --allow-early-delete
                    when, note = ends, f" (the end of its {info.tier.value} minimum retention)"
                after = _iso(when)
                out.condemned.append(
                    {
                        "object": by_id[p.id],
                        "bytes": info.size,
                        "plan": plan.id,
                        "reason": p.reason,
                        "after": after,
                        "note": f"condemned, deleted by the next prune after {after}{note}",
                    }
                )
    times = [i.modified for i in stored.values()]
    times += [p.mark for p in state.plans.values()] + [g.stored for g in state.gones.values()]
    times += [b.stored for b in beats.beats]
    now = max(times, default=None)
    for beat in beats.dead(now) if now is not None else []:
        rec = beat.record
        out.warnings.append(
            {
                "object": beat.name,
                "warning": f"dead heartbeat of a {rec.kind} on {rec.host} (pid {rec.pid}), last renewed "
                f"{_iso(beat.stored)}, more than {int((HEARTBEAT_EXPIRY + MAX_SKEW).total_seconds() // 60)} "
                "min before the newest stored object: that process was killed or lost the store; "
                "the next prune deletes it",
            }
        )
    return out


def unused_packs(
    stored: dict[str, ObjectInfo], indexed: dict[str, PackInfo], used: set[str], gc: GcFindings
) -> list[dict[str, Any]]:
    """Indexed, stored packs from which no recovery point reads a chunk and that no plan names, by
    name, with their bytes."""
    skip = gc.condemned_ids | gc.gone
    return [
        {"object": name, "bytes": stored[name].size}
        for name, p in sorted(indexed.items())
        if name in stored and p.id not in used and p.id not in skip
    ]
