"""When splitting a pack that stopped sharing pays (``tiervault.prune.split``): worked examples
checked by independent arithmetic from the shipped table's prices, and properties by hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiervault.backend.base import Tier
from tiervault.costs import default_prices
from tiervault.errors import UsageError
from tiervault.prune.split import MARGIN, split_cost, split_pays

TABLE = default_prices()
MiB, KiB = 1 << 20, 1 << 10
GB = 1 << 30


def test_a_big_mostly_old_hot_pack_pays_to_split_towards_cold() -> None:
    got = split_pays(
        old_bytes=24 * MiB,
        recent_bytes=8 * MiB,
        pack_tier=Tier.HOT,
        recent_tier=Tier.HOT,
        old_tier=Tier.COLD,
        months_left=12,
        table=TABLE,
    )
    saving = 24 * MiB / GB * (0.018 - 0.0036)  # the old part leaves Hot for Cold
    cost = 1 / 10_000 * 0.004 + 2 / 10_000 * 0.05 + 1 / 10_000 * 0.18  # read, 2 writes, 1 tier change
    assert got.monthly_saving == pytest.approx(saving)
    assert got.cost == pytest.approx(cost)
    assert got.break_even_months == pytest.approx(cost / saving)
    assert got.pays and saving * 12 > MARGIN * cost


def test_small_or_short_lived_or_mostly_recent_packs_do_not() -> None:
    common = {"pack_tier": Tier.HOT, "recent_tier": Tier.HOT, "table": TABLE}
    small = split_pays(
        old_bytes=100 * KiB, recent_bytes=100 * KiB, old_tier=Tier.COLD, months_left=12, **common
    )
    # 100 KiB in Cold is billed as 128 KiB: a saving of cents per century against the requests
    assert not small.pays and "does not pay" in small.why
    assert small.monthly_saving == pytest.approx((100 * KiB * 0.018 - 128 * KiB * 0.0036) / GB)
    short = split_pays(old_bytes=24 * MiB, recent_bytes=8 * MiB, old_tier=Tier.COLD, months_left=2, **common)
    assert not short.pays and "minimum retention" in short.why
    recent = split_pays(
        old_bytes=4 * MiB, recent_bytes=28 * MiB, old_tier=Tier.COLD, months_left=12, **common
    )
    assert not recent.pays and "25%" in recent.why
    same = split_pays(old_bytes=24 * MiB, recent_bytes=8 * MiB, old_tier=Tier.HOT, months_left=12, **common)
    assert not same.pays and "same tier" in same.why
    with pytest.raises(UsageError, match="old_bytes"):
        split_pays(old_bytes=-1, recent_bytes=0, old_tier=Tier.COLD, months_left=1, **common)


def test_reading_a_cool_pack_adds_its_retrieval() -> None:
    hot = split_cost(32 * MiB, Tier.HOT, Tier.HOT, Tier.COLD, TABLE)
    cool = split_cost(32 * MiB, Tier.COOL, Tier.COOL, Tier.COLD, TABLE)
    extra = 1 / 10_000 * (0.01 - 0.004) + 32 * MiB / GB * 0.01 + 1 / 10_000 * 0.10  # read, retrieval, re-tier
    assert cool - hot == pytest.approx(extra)


tiers = st.sampled_from(list(Tier))


@settings(max_examples=400)
@given(
    st.integers(0, 1 << 36),
    st.integers(0, 1 << 36),
    tiers,
    tiers,
    tiers,
    st.floats(0, 120, allow_nan=False),
    st.floats(0, 120, allow_nan=False),
)
def test_a_split_that_pays_pays_clearly_and_longer_retention_keeps_it_paying(
    old: int, recent: int, pack: Tier, recent_tier: Tier, old_tier: Tier, months: float, more: float
) -> None:
    kw = {
        "old_bytes": old,
        "recent_bytes": recent,
        "pack_tier": pack,
        "recent_tier": recent_tier,
        "old_tier": old_tier,
        "table": TABLE,
    }
    got = split_pays(months_left=months, **kw)
    if not got.pays:
        return
    assert old and recent and old_tier is not recent_tier
    assert got.monthly_saving > 0 and got.monthly_saving * months > MARGIN * got.cost
    assert old >= 0.25 * (old + recent) and months * 30 >= TABLE.tier(old_tier).min_days
    assert split_pays(months_left=months + more, **kw).pays
