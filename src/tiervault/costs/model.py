"""The cost model: pure arithmetic over a :class:`PriceTable` (docs/costs.md, "What is estimated").

Everything here is an *estimate* from list prices: no request is made, nothing is read. Sizes are
bytes; a GB is 2^30 bytes (as Azure bills); a month is 30 days (``DAYS_PER_MONTH``: the pro-rating
of early deletion). In Cool, Cold and Archive an object smaller than the tier's
``min_billable_bytes`` (128 KiB) is billed as that size, for storage and for early deletion alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from tiervault.backend.base import RehydratePriority, Tier
from tiervault.costs.prices import PriceTable
from tiervault.errors import UsageError

__all__ = [
    "DAYS_PER_MONTH",
    "GB",
    "TierUsage",
    "billable_bytes",
    "early_delete_charge",
    "rehydration_cost",
    "storage_cost",
]

GB: Final = 1 << 30
DAYS_PER_MONTH: Final = 30


def _size(size: int, what: str = "size") -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise UsageError(f"{what} must be a whole number of bytes, 0 or more, not {size!r}")
    return size


def billable_bytes(tier: Tier, size: int, table: PriceTable) -> int:
    """What one object of ``size`` bytes is billed as in ``tier``: at least the tier's minimum."""
    return max(_size(size), table.tier(tier).min_billable_bytes)


def storage_cost(tier: Tier, billable: int, table: PriceTable) -> float:
    """The monthly storage charge of ``billable`` bytes (already billable: see ``billable_bytes``)."""
    return _size(billable, "billable") / GB * table.tier(tier).storage_per_gb_month


def early_delete_charge(tier: Tier, size: int, days_in_tier: float, table: PriceTable) -> float:
    """The charge for deleting (or moving, or overwriting) an object of ``size`` bytes that entered
    ``tier`` ``days_in_tier`` days ago: the days left of the tier's minimum retention, at the tier's
    storage price of its billable size, pro-rated per day. 0 once the minimum has passed (and in Hot).
    """
    if not math.isfinite(days_in_tier) or days_in_tier < 0:
        raise UsageError(f"days_in_tier must be a finite number of 0 or more, not {days_in_tier!r}")
    left = max(0.0, table.tier(tier).min_days - days_in_tier)
    if not left:
        return 0.0
    return storage_cost(tier, billable_bytes(tier, size, table), table) * left / DAYS_PER_MONTH


def rehydration_cost(
    nbytes: int, objects: int, priority: RehydratePriority | str, table: PriceTable
) -> float:
    """Rehydrating ``objects`` archived objects of ``nbytes`` bytes in all, at ``priority``: the
    per-GB rehydration charge plus one read operation per object (the High priority prices for
    ``high``). Writing a staging copy in its target tier, and reading it afterwards, are priced
    separately (that tier's ``write_per_10k`` / ``read_per_10k``)."""
    try:
        prio = RehydratePriority(priority)
    except ValueError:
        raise UsageError(f"priority must be standard or high, not {priority!r}") from None
    archive = table.tier(Tier.ARCHIVE)
    if prio is RehydratePriority.HIGH:
        per_gb, per_10k = archive.rehydrate_high_per_gb, archive.read_high_per_10k
    else:
        per_gb, per_10k = archive.rehydrate_standard_per_gb, archive.read_per_10k
    assert per_gb is not None and per_10k is not None  # parse_prices requires them for Archive
    return _size(nbytes, "nbytes") / GB * per_gb + _size(objects, "objects") / 10_000 * per_10k


@dataclass(slots=True)
class TierUsage:
    """Objects of one tier, counted one at a time (``add``): their bytes and billable bytes."""

    tier: Tier
    objects: int = 0
    bytes: int = 0
    billable_bytes: int = 0

    def add(self, size: int, table: PriceTable) -> None:
        self.objects += 1
        self.bytes += size
        self.billable_bytes += billable_bytes(self.tier, size, table)

    def monthly_cost(self, table: PriceTable) -> float:
        return storage_cost(self.tier, self.billable_bytes, table)
