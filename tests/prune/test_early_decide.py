"""The pure early-deletion decision of prune (``tiervault.prune.early.early``) and the repack's
``skip``, by hypothesis: a pack is held exactly while its tier's minimum runs, until the day it
ends, with the pro-rated charge; a skipped pack is never chosen for repack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tiervault.backend.base import Tier
from tiervault.costs import default_prices
from tiervault.prune.decide import select_repack
from tiervault.prune.early import early

TABLE = default_prices()
T0 = datetime(2026, 1, 1, tzinfo=UTC)
MIN_DAYS = {Tier.HOT: 0, Tier.COOL: 30, Tier.COLD: 90, Tier.ARCHIVE: 180}
PRICE = {Tier.HOT: 0.018, Tier.COOL: 0.01, Tier.COLD: 0.0036, Tier.ARCHIVE: 0.00099}


@settings(max_examples=400)
@given(
    st.sampled_from(list(Tier)),
    st.integers(0, 1 << 34),
    st.floats(0, 400, allow_nan=False),
    st.floats(0, 50, allow_nan=False),
)
def test_early_holds_exactly_inside_the_minimum(tier: Tier, size: int, days: float, more: float) -> None:
    since = T0
    now = T0 + timedelta(days=days)
    got = early(tier, size, since, now, TABLE)
    inside = days < MIN_DAYS[tier] and (since + timedelta(days=MIN_DAYS[tier])) > now
    assert (got is not None) == inside
    if got is None:
        return
    assert got.tier is tier and got.size == size and got.since == since
    assert got.until == T0 + timedelta(days=MIN_DAYS[tier]) and got.until > now
    left = MIN_DAYS[tier] - (now - since).total_seconds() / 86400
    expected = max(size, 128 << 10) / (1 << 30) * PRICE[tier] * left / 30
    assert abs(got.charge - expected) <= 1e-9 * max(1.0, expected)
    later = early(tier, size, since, now + timedelta(days=more), TABLE)
    assert later is None or later.charge <= got.charge + 1e-12


@given(st.sampled_from([Tier.COOL, Tier.COLD, Tier.ARCHIVE]), st.floats(0, 3600, allow_nan=False))
def test_a_tier_change_after_now_counts_as_zero_days(tier: Tier, ahead: float) -> None:
    got = early(tier, 1 << 20, T0 + timedelta(seconds=ahead), T0, TABLE)
    assert got is not None and got.days_in_tier == 0


PACKS = [f"{i:064x}" for i in range(6)]


@settings(max_examples=300)
@given(
    st.dictionaries(
        st.sampled_from(PACKS),
        st.lists(st.tuples(st.integers(0, 11), st.integers(1, 1000)), min_size=1, max_size=6),
        min_size=1,
    ),
    st.sets(st.integers(0, 11)),
    st.sets(st.sampled_from(PACKS)),
)
def test_repack_never_chooses_a_skipped_pack(
    raw: dict[str, list[tuple[int, int]]], live_ids: set[int], skip: set[str]
) -> None:
    blobs = {p: tuple((bytes([c]), n) for c, n in entries) for p, entries in raw.items()}
    sizes = {p: sum(n for _, n in b) + 100 for p, b in blobs.items()}
    live = {bytes([c]) for c in live_ids}
    free = select_repack(list(blobs), sizes, live, blobs, max_unused=0, max_repack_bytes=None)
    held = select_repack(list(blobs), sizes, live, blobs, max_unused=0, max_repack_bytes=None, skip=skip)
    assert not set(held.packs) & skip
    # with no limit on the bytes copied, the skipped packs are exactly those that would have been
    assert set(held.deferred) == set(free.packs) & skip
    assert set(held.packs) == set(free.packs) - skip
