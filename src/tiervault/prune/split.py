"""Packs that stop sharing (issue 12, item 3; docs/tiering.md, "Packs that stop sharing"): when
does rewriting one pack, which recent points need, into a *recent* part and an *old-only* part pay,
so that the old-only part can move to a colder tier? A pure decision over a :class:`PriceTable`:
no I/O. Every figure is an estimate from list prices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from tiervault.backend.base import Tier
from tiervault.costs import GB, PriceTable, billable_bytes, storage_cost
from tiervault.errors import UsageError

#: the old-only part must be at least this share of the pack: below it the pack is mostly recent
#: data, and the saving is small against re-reading and re-writing the whole pack
MIN_OLD_FRACTION: Final = 0.25
#: the saving over the months left must exceed the split's one-off cost this many times: the months
#: left are a prediction (retention of points not yet taken), so a split must pay clearly
MARGIN: Final = 2.0


@dataclass(frozen=True, slots=True)
class SplitDecision:
    pays: bool
    why: str
    #: per month: the pack as it is, minus the two parts in their tiers
    monthly_saving: float
    #: one-off: read the pack (and its retrieval), write two packs in Hot, move the two parts
    cost: float
    #: months until the saving has paid the cost (None: it never does)
    break_even_months: float | None


def _ops(n: int, per_10k: float) -> float:
    return n / 10_000 * per_10k


def split_cost(
    pack_bytes: int, pack_tier: Tier, recent_tier: Tier, old_tier: Tier, table: PriceTable
) -> float:
    """The one-off cost of splitting a ``pack_bytes`` pack in ``pack_tier``: one read (and the
    tier's per-GB retrieval) of the whole pack, two writes in Hot (the new packs; the index file
    they need is written anyway by the prune), and a tier change (a write in the target tier) for
    each part not meant to stay Hot."""
    src = table.tier(pack_tier)
    out = _ops(1, src.read_per_10k) + pack_bytes / GB * src.retrieval_per_gb
    out += _ops(2, table.tier(Tier.HOT).write_per_10k)
    for tier in (recent_tier, old_tier):
        if tier is not Tier.HOT:
            out += _ops(1, table.tier(tier).write_per_10k)
    return out


def split_pays(
    *,
    old_bytes: int,
    recent_bytes: int,
    pack_tier: Tier,
    recent_tier: Tier,
    old_tier: Tier,
    months_left: float,
    table: PriceTable,
    min_old_fraction: float = MIN_OLD_FRACTION,
    margin: float = MARGIN,
) -> SplitDecision:
    """Whether to split a pack whose chunks are ``old_bytes`` that only old points need (the
    tierer's rule would put them in ``old_tier``) and ``recent_bytes`` that recent points need
    (``recent_tier``, which the whole pack follows today: the warmest rule), for ``months_left``
    months (until the old points are expected to be forgotten). It pays when the old-only part is
    at least ``min_old_fraction`` of the pack, it would stay in ``old_tier`` at least that tier's
    minimum retention (else moving it costs an early deletion), and the monthly storage saving
    over ``months_left`` exceeds ``margin`` times the one-off cost (``split_cost``)."""
    for name, n in (("old_bytes", old_bytes), ("recent_bytes", recent_bytes)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise UsageError(f"{name} must be a whole number of bytes, 0 or more, not {n!r}")
    if not months_left >= 0:
        raise UsageError(f"months_left must be 0 or more, not {months_left!r}")
    total = old_bytes + recent_bytes
    as_is = storage_cost(recent_tier, billable_bytes(recent_tier, total, table), table)
    parts = storage_cost(recent_tier, billable_bytes(recent_tier, recent_bytes, table), table)
    if old_bytes:
        parts += storage_cost(old_tier, billable_bytes(old_tier, old_bytes, table), table)
    saving = as_is - parts
    cost = split_cost(total, pack_tier, recent_tier, old_tier, table)
    even = cost / saving if saving > 0 else None

    def no(why: str) -> SplitDecision:
        return SplitDecision(False, why, saving, cost, even)

    if not old_bytes or not recent_bytes:
        return no("nothing to split: the pack is all old or all recent")
    if old_tier is recent_tier:
        return no("both parts belong in the same tier")
    if old_bytes < min_old_fraction * total:
        return no(f"the old-only part is under {min_old_fraction:.0%} of the pack")
    if months_left * 30 < table.tier(old_tier).min_days:
        return no(f"the old part would leave {old_tier.value} inside its minimum retention")
    if saving <= 0 or saving * months_left <= margin * cost:
        return no(f"the saving over {months_left:g} months does not pay {margin:g}x the split")
    return SplitDecision(True, "the saving pays the split", saving, cost, even)
