"""``tiervault.Policy``: validation, defaults, its stored JSON (docs/format.md, "Items"), and what
``Vault.protect`` does with it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tiervault
from tests.e2e import KDF, PASSWORD
from tiervault import Policy, UsageError

KEEP = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
TIERS = ("cool_after_days", "cold_after_days", "archive_after_days")
COUNTS = KEEP + TIERS
ALL_FIELDS = (*KEEP, "keep_within", "keep_tags", *TIERS, "schedule")

counts = st.none() | st.integers(min_value=0, max_value=10**6)
cron_field = st.sampled_from(["*", "0", "*/5", "1-5", "0,30", "MON", "12"])
schedules = st.none() | st.integers(min_value=5, max_value=6).flatmap(
    lambda n: st.lists(cron_field, min_size=n, max_size=n).map(" ".join)
)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    """Any valid policy: tier thresholds drawn as a sorted list, then some of them left unset."""
    tiers = sorted(draw(st.lists(st.integers(min_value=0, max_value=3650), min_size=3, max_size=3)))
    tier_values = [t if draw(st.booleans()) else None for t in tiers]
    keep: dict[str, Any] = {k: draw(counts) for k in KEEP}
    keep["keep_within"] = draw(st.none() | st.sampled_from(["7d", "12h", "2w", "1y2m3d", "1y", "36m"]))
    keep["keep_tags"] = draw(
        st.none() | st.lists(st.text(min_size=1), max_size=3).map(lambda t: tuple(sorted(set(t))))
    )
    return Policy(**keep, **dict(zip(TIERS, tier_values, strict=True)), schedule=draw(schedules))


# ------------------------------------------------------------------------------------ defaults


def test_the_default_policy_has_no_rule() -> None:
    policy = Policy()
    assert [f.name for f in dataclasses.fields(Policy)] == list(ALL_FIELDS)
    assert all(getattr(policy, name) is None for name in ALL_FIELDS)
    assert policy.to_json() == {}
    assert Policy.from_json({}) == policy


def test_a_policy_is_frozen_and_hashable() -> None:
    policy = Policy(keep_daily=7)
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.keep_daily = 8  # type: ignore[misc]
    assert hash(policy) == hash(Policy(keep_daily=7))
    assert {policy, Policy(keep_daily=7)} == {policy}


# ------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize("name", COUNTS)
@pytest.mark.parametrize("bad", [-1, -(10**9), True, False, 1.0, 7.5, "7", b"7", [7], float("nan")])
def test_counts_must_be_non_negative_integers(name: str, bad: object) -> None:
    with pytest.raises(UsageError, match=f"^{name} must be a non-negative integer$"):
        Policy(**{name: bad})  # type: ignore[arg-type]


@pytest.mark.parametrize("name", COUNTS)
def test_zero_and_large_counts_are_accepted(name: str) -> None:
    assert getattr(Policy(**{name: 0}), name) == 0
    assert getattr(Policy(**{name: 10**12}), name) == 10**12


@pytest.mark.parametrize(
    "schedule", ["* * * * *", "0 */5 * * * *", "0 2 * * MON-FRI", "  0\t2 * *  *  ", "0 0 1 1 * 2026"]
)
def test_five_and_six_field_schedules_are_accepted(schedule: str) -> None:
    assert Policy(schedule=schedule).schedule == schedule  # kept as given (a hint for schedulers)


@pytest.mark.parametrize("schedule", ["", "   ", "* * * *", "* * * * * * *", "@daily", 5, b"* * * * *"])
def test_schedules_need_five_or_six_fields(schedule: object) -> None:
    with pytest.raises(UsageError, match=r"^schedule must be a 5- or 6-field cron expression$"):
        Policy(schedule=schedule)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "tiers",
    [
        {"cool_after_days": 30, "cold_after_days": 10},
        {"cold_after_days": 90, "archive_after_days": 30},
        {"cool_after_days": 30, "archive_after_days": 29},  # compared even with cold unset
        {"cool_after_days": 1, "cold_after_days": 3, "archive_after_days": 2},
    ],
)
def test_tier_thresholds_must_not_decrease(tiers: dict[str, int]) -> None:
    with pytest.raises(UsageError, match=r"^tier thresholds must grow"):
        Policy(**tiers)


@given(
    st.tuples(*(st.none() | st.integers(min_value=0, max_value=100) for _ in TIERS)),
)
def test_tier_thresholds_are_accepted_exactly_when_the_set_ones_are_sorted(
    tiers: tuple[int | None, int | None, int | None],
) -> None:
    set_ones = [t for t in tiers if t is not None]
    kwargs = dict(zip(TIERS, tiers, strict=True))
    if set_ones == sorted(set_ones):
        policy = Policy(**kwargs)
        assert tuple(getattr(policy, t) for t in TIERS) == tiers
    else:
        with pytest.raises(UsageError):
            Policy(**kwargs)


@given(st.sampled_from(COUNTS), st.integers(max_value=-1))
def test_any_negative_count_is_refused(name: str, value: int) -> None:
    with pytest.raises(UsageError):
        Policy(**{name: value})


# ------------------------------------------------------------------------------------ JSON


def test_to_json_holds_only_the_set_fields() -> None:
    policy = Policy(keep_daily=7, keep_weekly=4, cool_after_days=30, schedule="0 2 * * *")
    assert policy.to_json() == {
        "keep_daily": 7,
        "keep_weekly": 4,
        "cool_after_days": 30,
        "schedule": "0 2 * * *",
    }
    assert Policy(keep_last=0).to_json() == {"keep_last": 0}  # stored as set; retention reads 0 as no rule
    assert Policy(keep_tags=["v2", "release", "v2"], keep_within="2w").to_json() == {
        "keep_tags": ["release", "v2"],
        "keep_within": "2w",
    }


@given(policies())
def test_every_valid_policy_round_trips_through_stored_json(policy: Policy) -> None:
    stored = json.dumps(policy.to_json(), sort_keys=True)
    assert Policy.from_json(json.loads(stored)) == policy
    assert set(policy.to_json()) == {f for f in ALL_FIELDS if getattr(policy, f) is not None}
    assert all(v is not None for v in policy.to_json().values())


@given(policies(), st.dictionaries(st.text(min_size=1).filter(lambda k: k not in ALL_FIELDS), st.integers()))
def test_fields_a_newer_writer_added_are_ignored(policy: Policy, extra: dict[str, Any]) -> None:
    assert Policy.from_json({**policy.to_json(), **extra}) == policy


@pytest.mark.parametrize(
    "stored",
    [
        {"keep_daily": -1},
        {"keep_daily": "7"},
        {"keep_daily": 7.0},
        {"schedule": "daily"},
        {"cool_after_days": 30, "cold_after_days": 10},
        {"keep_within": "7 days"},
        {"keep_within": 7},
        {"keep_tags": "release"},
        {"keep_tags": ["release", 3]},
        {"keep_tags": [""]},
    ],
)
def test_a_stored_policy_is_validated_when_read(stored: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        Policy.from_json(stored)


# ------------------------------------------------------------------------------------ protect


async def test_protect_stores_the_policy_and_keeps_it_unless_given(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    policy = Policy(keep_daily=7, keep_weekly=4, cool_after_days=30, archive_after_days=365)
    async with tiervault.init(tmp_path / "repo", password=PASSWORD, kdf=KDF) as vault:
        assert (await vault.protect(src, name="a")).policy == Policy()  # a new item: no rule
        item = await vault.protect(src, name="a", policy=policy)
        assert item.policy == policy
        assert (await vault.protect(src, name="a")).policy == policy  # None keeps the item's policy
    async with tiervault.open(tmp_path / "repo", password=PASSWORD) as vault:
        assert (await vault.item("a")).policy == policy  # as stored
        assert (await vault.protect(src, name="a", policy=Policy())).policy == Policy()  # replaced
        assert [i.policy for i in await vault.items()] == [Policy()]
