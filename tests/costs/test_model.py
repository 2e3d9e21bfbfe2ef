"""The cost model, against figures computed here from the table's own prices: storage with the
128 KiB minimum billable size, the pro-rated early deletion charge, rehydration by priority."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiervault.backend.base import RehydratePriority, Tier
from tiervault.costs import (
    GB,
    TierUsage,
    billable_bytes,
    default_prices,
    early_delete_charge,
    parse_prices,
    rehydration_cost,
    storage_cost,
)
from tiervault.errors import UsageError

T = default_prices()
KiB = 1 << 10


def test_small_objects_are_billed_at_the_minimum_in_the_cold_tiers_only() -> None:
    assert billable_bytes(Tier.HOT, 100, T) == 100
    for tier in (Tier.COOL, Tier.COLD, Tier.ARCHIVE):
        assert billable_bytes(tier, 100, T) == 128 * KiB
        assert billable_bytes(tier, 0, T) == 128 * KiB
        assert billable_bytes(tier, 128 * KiB + 1, T) == 128 * KiB + 1


def test_tier_usage_sums_billable_bytes_and_prices_them() -> None:
    u = TierUsage(Tier.COOL)
    for size in (10, 200 * KiB, GB):
        u.add(size, T)
    assert (u.objects, u.bytes) == (3, 10 + 200 * KiB + GB)
    assert u.billable_bytes == 128 * KiB + 200 * KiB + GB
    assert u.monthly_cost(T) == pytest.approx(u.billable_bytes / 2**30 * 0.01)
    assert storage_cost(Tier.HOT, 5 * GB, T) == pytest.approx(5 * 0.018)


def test_early_deletion_charges_the_days_left_of_the_minimum() -> None:
    # Azure's own example: archived, deleted after 45 days: 135 days of Archive storage
    assert early_delete_charge(Tier.ARCHIVE, GB, 45, T) == pytest.approx(0.00099 * 135 / 30)
    assert early_delete_charge(Tier.COOL, 10 * GB, 0, T) == pytest.approx(10 * 0.01)
    assert early_delete_charge(Tier.COLD, GB, 89.5, T) == pytest.approx(0.0036 * 0.5 / 30)
    # a small object is charged at its billable size
    assert early_delete_charge(Tier.COOL, 1, 15, T) == pytest.approx(128 * KiB / 2**30 * 0.01 * 15 / 30)
    for tier, days in ((Tier.HOT, 0), (Tier.COOL, 30), (Tier.COLD, 400), (Tier.ARCHIVE, 180)):
        assert early_delete_charge(tier, GB, days, T) == 0.0


@pytest.mark.parametrize("days", [-1, math.nan, math.inf])
def test_early_deletion_refuses_impossible_ages(days: float) -> None:
    with pytest.raises(UsageError, match="days_in_tier"):
        early_delete_charge(Tier.COOL, GB, days, T)


def test_rehydration_costs_per_gb_and_per_object_by_priority() -> None:
    assert rehydration_cost(2 * GB, 10, RehydratePriority.STANDARD, T) == pytest.approx(
        2 * 0.02 + 10 / 10_000 * 5.0
    )
    assert rehydration_cost(2 * GB, 10, "high", T) == pytest.approx(2 * 0.1 + 10 / 10_000 * 50.0)
    assert rehydration_cost(0, 0, "high", T) == 0.0
    with pytest.raises(UsageError, match="standard or high"):
        rehydration_cost(GB, 1, "urgent", T)
    with pytest.raises(UsageError, match="objects"):
        rehydration_cost(GB, -1, "high", T)


def test_a_user_table_changes_every_figure() -> None:
    raw = T.to_json()
    raw["tiers"]["cool"].update(storage_per_gb_month=1.0, min_days=10, min_billable_bytes=0)
    mine = parse_prices(raw)
    assert billable_bytes(Tier.COOL, 1, mine) == 1
    assert early_delete_charge(Tier.COOL, GB, 4, mine) == pytest.approx(6 / 30)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(list(Tier)),
    st.integers(0, 1 << 44),
    st.floats(0, 1000, allow_nan=False),
    st.floats(0, 1000, allow_nan=False),
)
def test_early_deletion_shrinks_with_age_and_ends_at_the_minimum(
    tier: Tier, size: int, a: float, b: float
) -> None:
    young, old = sorted((a, b))
    charge = early_delete_charge(tier, size, young, T)
    assert charge >= early_delete_charge(tier, size, old, T) >= 0
    full = storage_cost(tier, billable_bytes(tier, size, T), T) * T.tier(tier).min_days / 30
    assert charge <= full * (1 + 1e-12)
    assert early_delete_charge(tier, size, T.tier(tier).min_days, T) == 0.0
