"""Early deletion in a prune (docs/format.md, "prune, step by step", steps 4 and 5; docs/costs.md,
"Early deletion"): the pure decision whether deleting a pack now falls inside its tier's minimum
retention, until when, and what it would be charged. No I/O: decided on the step-2 listing's tier
and tier-change time of each pack, at ``T`` (the prune's heartbeat store time)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from tiervault.backend.base import Tier
from tiervault.costs import PriceTable, early_delete_charge
from tiervault.repo.snapshots import datetime_iso

#: the step that would delete the pack: a sweep deletes it, a repack condemns it for a later sweep
Step = Literal["sweep", "repack"]

_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Early:
    """A pack inside its tier's minimum retention at ``T``."""

    tier: Tier
    size: int
    since: datetime  #: when it entered ``tier`` (the store's tier-change time, else its store time)
    until: datetime  #: when the minimum ends: ``since`` + the tier's ``min_days``
    days_in_tier: float
    charge: float  #: what deleting it at ``T`` is charged (``early_delete_charge``)


def early(tier: Tier, size: int, since: datetime, now: datetime, table: PriceTable) -> Early | None:
    """``None`` when deleting a pack of ``size`` bytes that entered ``tier`` at ``since`` costs no
    early-deletion charge at ``now`` (Hot, or ``table``'s minimum for the tier has passed); else
    until when the minimum runs and the charge. A ``since`` later than ``now`` (store clock skew)
    counts as 0 days in the tier."""
    min_days = table.tier(tier).min_days
    until = since + timedelta(days=min_days)
    if min_days == 0 or now >= until:
        return None
    days = max(0.0, (now - since).total_seconds() / _DAY)
    return Early(tier, size, since, until, days, early_delete_charge(tier, size, days, table))


@dataclass(frozen=True, slots=True)
class EarlyPack:
    """A pack a prune deferred deleting (or repacking) because of its minimum retention, or deleted
    inside it anyway (``allow_early_delete``): the report's ``early_deletion`` entries."""

    pack: str
    step: Step
    plan: str | None  #: the plan whose sweep it is (sweep only)
    info: Early

    def to_json(self) -> dict[str, Any]:
        return {
            "pack": self.pack,
            "step": self.step,
            "plan": self.plan,
            "tier": self.info.tier.value,
            "bytes": self.info.size,
            "in_tier_since": datetime_iso(self.info.since),
            "minimum_ends": datetime_iso(self.info.until),
            "days_in_tier": round(self.info.days_in_tier, 3),
            "estimated_charge": self.info.charge,
        }
