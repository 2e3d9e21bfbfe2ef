"""The tierer's decision for one data pack (docs/tiering.md, "What moves when"). Pure, no I/O.

A pack's target is the warmest of the targets its live points give it: a point of age ``a`` days
gives the coldest tier whose threshold (``cool_after_days`` ...) in its item's policy is at most
``a``; a point of an item without thresholds (or no longer protected) keeps the pack Hot. Then the
guards, in order: a pack a pending prune plan condemns, one no live point references, a
metadata object and a pack smaller than ``MIN_BILLABLE`` stay where they are; a target whose minimum
retention would outlast every point needing the pack is stepped warmer (``expiry``); a pack still
inside its current tier's minimum stays; and a pack never moves towards a warmer tier.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tiervault.backend.base import Tier
from tiervault.policy import Policy
from tiervault.tiering.rules import (
    COLDER,
    MIN_BILLABLE,
    MINIMUM,
    ORDER,
    THRESHOLDS,
    colder,
    is_data_pack,
    warmer,
)

__all__ = ["PackState", "PointRef", "TierDecision", "contradictions", "decide", "point_target"]


@dataclass(frozen=True, slots=True)
class PointRef:
    """A live recovery point referencing a pack."""

    id: str
    item: str
    time: datetime


@dataclass(frozen=True, slots=True)
class PackState:
    """A stored data pack as listed: its tier and when it entered it."""

    name: str
    size: int
    tier: Tier
    tier_changed: datetime | None = None

    @property
    def id(self) -> str:
        return self.name.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class TierDecision:
    """Where a pack goes (``target``; its own tier if it stays), why in words (``reason``), and the
    rule that decided, as a short key (``rule``): ``move``, or what held it: ``metadata``,
    ``condemned``, ``unreferenced``, ``small``, ``threshold`` (not old enough, or already there),
    ``early-deletion`` (the minimum-retention rule), ``never-warmer``, ``minimum`` (inside its
    tier's minimum), ``rehydrating``."""

    pack: PackState
    target: Tier
    reason: str
    rule: str = "move"

    @property
    def moves(self) -> bool:
        return self.target is not self.pack.tier


def _days(d: timedelta) -> str:
    return f"{d.total_seconds() / 86400:.1f}"


def point_target(policy: Policy | None, age: timedelta) -> Tier:
    """The coldest tier whose threshold ``policy`` sets at most ``age`` (Hot without one)."""
    target = Tier.HOT
    if policy is None:
        return target
    for tier in COLDER:
        days = getattr(policy, THRESHOLDS[tier])
        if days is not None and age >= timedelta(days=days):
            target = tier
    return target


def decide(
    pack: PackState,
    refs: Sequence[PointRef],
    policies: Mapping[str, Policy | None],
    now: datetime,
    *,
    condemned: bool = False,
    survivors: Mapping[Tier, frozenset[str]] | None = None,
) -> TierDecision:
    """Where ``pack`` (referenced by the live points ``refs``) should be at ``now``.

    ``policies`` maps item names to their policy (None: no longer protected). ``survivors[tier]``
    holds the ids of the points still kept when ``tier``'s minimum retention, started now, ends
    (``expiry.kept_at``); a tier missing from it is not guarded."""

    def stay(rule: str, why: str) -> TierDecision:
        return TierDecision(pack, pack.tier, why, rule)

    if not is_data_pack(pack.name):
        return stay("metadata", "metadata stays Hot")
    if condemned:
        return stay("condemned", "condemned by a pending prune plan: prune deletes it")
    if not refs:
        return stay("unreferenced", "no live recovery point references it: prune deletes it")
    if pack.size < MIN_BILLABLE:
        return stay(
            "small", f"{pack.size} bytes, under the 128 KiB minimum billable size of the colder tiers"
        )
    # the warmest target over the points; among equals, the newest point explains it
    rank, _, _, ref = min(
        (ORDER.index(point_target(policies.get(r.item), now - r.time)), -r.time.timestamp(), r.id, r)
        for r in {r.id: r for r in refs}.values()
    )
    target = ORDER[rank]
    why = f"newest needing point {ref.id[:8]} ({ref.item}) is {_days(now - ref.time)} days old"
    if target is Tier.HOT:
        if pack.tier is Tier.HOT:
            return stay("threshold", why + ": under every threshold")
        return stay("never-warmer", why + f"; stays {pack.tier.value}: never warmer")
    why += f": {target.value} after {getattr(policies[ref.item], THRESHOLDS[target])} days"
    veto = None
    if survivors is not None:
        target, veto = _outlasted(target, {r.id for r in refs}, survivors)
        why = veto or why
    if not colder(target, pack.tier):
        if veto is not None:
            return stay("early-deletion", why)
        if target is pack.tier:
            return stay("threshold", why)
        return stay("never-warmer", why + f"; stays {pack.tier.value}: never warmer")
    if pack.tier is not Tier.HOT and pack.tier_changed is not None:
        ends = pack.tier_changed + MINIMUM[pack.tier]
        if now < ends:
            return stay(
                "minimum",
                f"{why}; inside {pack.tier.value}'s {MINIMUM[pack.tier].days}-day minimum until "
                f"{ends.date().isoformat()}",
            )
    return TierDecision(pack, target, why)


def _outlasted(
    target: Tier, ids: set[str], survivors: Mapping[Tier, frozenset[str]]
) -> tuple[Tier, str | None]:
    """``target``, stepped warmer while no point in ``ids`` survives its minimum retention."""
    why = None
    while target in survivors and not ids & survivors[target]:
        why = (
            f"every point needing it is forgotten within {target.value}'s "
            f"{MINIMUM[target].days}-day minimum, so not {target.value}"
        )
        target = warmer(target)
    return target, why


def contradictions(policy: Policy | None) -> list[str]:
    """The thresholds of ``policy`` that leave a tier before its minimum retention ends (moving on
    sooner is charged as an early deletion): the tierer then keeps such packs in the warmer tier
    until its minimum has passed, later than the policy says."""
    if policy is None:
        return []
    out = []
    set_ = [(t, getattr(policy, THRESHOLDS[t])) for t in COLDER if getattr(policy, THRESHOLDS[t]) is not None]
    for (a, da), (b, db) in itertools.pairwise(set_):
        if db - da < MINIMUM[a].days:
            out.append(
                f"{THRESHOLDS[b]} {db} is sooner than {THRESHOLDS[a]} {da} plus {a.value}'s "
                f"{MINIMUM[a].days}-day minimum: packs stay {a.value} until day {da + MINIMUM[a].days}"
            )
    return out
