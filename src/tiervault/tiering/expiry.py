"""Which recovery points will still be kept at a future date: the early-deletion guard of the tierer
(docs/tiering.md, "The minimum-retention rule"). Pure, no I/O.

Retention removes old points as new ones arrive, so the future depends on backups not yet taken.
The model is simple and stated: the item keeps taking one point a day (at the time of day of its
newest point) until the date, and its current policy decides then. A point kept at that date is
still there when the tier's minimum retention ends; a pack none of whose points is, would be deleted
inside the minimum and pay the early-deletion charge, so it is not moved into that tier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from tiervault import retention
from tiervault.policy import Policy

__all__ = ["FuturePoint", "kept_at"]

DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class FuturePoint:
    """A point retention is asked about (a real one, or one the model assumes will be taken)."""

    id: str
    item: str
    time: datetime
    tags: tuple[str, ...] = ()
    incomplete: bool = False


def kept_at(
    points: Sequence[FuturePoint], policy: Policy | None, when: datetime, *, tz: tzinfo | None = None
) -> frozenset[str]:
    """The ids of ``points`` (all of one item) that ``policy`` still keeps at ``when``, the item
    having taken a point every day from its newest one until just before ``when`` (a pack whose
    last point goes at ``when`` itself is deleted no sooner). No policy, or one without a
    keep rule, keeps every point (as ``forget`` does)."""
    if policy is None or not policy.has_keep_rule or not points:
        return frozenset(p.id for p in points)
    item = points[0].item
    newest = max(p.time for p in points)
    future: list[FuturePoint] = []
    t = newest + DAY
    while t < when:
        future.append(FuturePoint(f"future-{len(future)}", item, t))
        t += DAY
    mine = {p.id for p in points}
    decisions = retention.decide([*points, *future], policy, tz=tz)
    return frozenset(d.id for d in decisions if d.keep and d.id in mine)
