"""``tiervault.tiering.decide``: each rule on its own, and every decision against an independent
computation (per item, from its newest point) over random packs, points, policies and guards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tiervault import Policy
from tiervault.backend.base import Tier
from tiervault.tiering.decide import PackState, PointRef, contradictions, decide
from tiervault.tiering.expiry import FuturePoint, kept_at

NOW = datetime(2027, 6, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)
PACK = "data/ab/" + "ab" + "0" * 62
GFS = Policy(keep_daily=7, cool_after_days=30, cold_after_days=90, archive_after_days=180)
ORDER = [Tier.HOT, Tier.COOL, Tier.COLD, Tier.ARCHIVE]
MIN_DAYS = [0, 30, 90, 180]


def pack(
    size: int = 1 << 20, tier: Tier = Tier.HOT, since: datetime | None = None, name: str = PACK
) -> PackState:
    return PackState(name, size, tier, since)


def ref(age_days: float, item: str = "a", pid: str | None = None) -> PointRef:
    return PointRef(pid or f"p-{item}-{age_days}", item, NOW - timedelta(days=age_days))


# ------------------------------------------------------------------------------------ each rule


@pytest.mark.parametrize(
    ("age", "tier"), [(0, Tier.HOT), (29.9, Tier.HOT), (30, Tier.COOL), (90, Tier.COLD), (180, Tier.ARCHIVE)]
)
def test_the_newest_point_s_age_against_the_thresholds(age: float, tier: Tier) -> None:
    assert decide(pack(), [ref(age)], {"a": GFS}, NOW).target is tier


def test_a_pack_shared_by_items_follows_the_warmest_rule() -> None:
    slow = Policy(cool_after_days=365)
    d = decide(pack(), [ref(200, "a"), ref(200, "b")], {"a": GFS, "b": slow}, NOW)
    assert d.target is Tier.HOT  # b's points are under b's 365 days
    d = decide(pack(), [ref(200, "a"), ref(10, "a", "young")], {"a": GFS}, NOW)
    assert d.target is Tier.HOT and "young" in d.reason  # a young point needs it: not past Hot


def test_an_item_without_thresholds_or_policy_keeps_its_packs_hot() -> None:
    assert decide(pack(), [ref(400, "a")], {"a": Policy(keep_daily=7)}, NOW).target is Tier.HOT
    assert decide(pack(), [ref(400, "gone")], {}, NOW).target is Tier.HOT


@pytest.mark.parametrize(
    "name",
    ["meta/ab/" + "ab" + "0" * 62, "index/" + "0" * 64, "snapshots/" + "0" * 64, "config", "data/ab/xyz"],
)
def test_metadata_never_leaves_hot(name: str) -> None:
    d = decide(pack(name=name), [ref(400)], {"a": GFS}, NOW)
    assert (d.target, d.reason) == (Tier.HOT, "metadata stays Hot")


def test_packs_under_the_minimum_billable_size_stay_hot() -> None:
    assert decide(pack(size=(128 << 10) - 1), [ref(400)], {"a": GFS}, NOW).target is Tier.HOT
    assert decide(pack(size=128 << 10), [ref(400)], {"a": GFS}, NOW).target is Tier.ARCHIVE


def test_condemned_and_unreferenced_packs_are_not_moved() -> None:
    d = decide(pack(), [ref(400)], {"a": GFS}, NOW, condemned=True)
    assert d.target is Tier.HOT and "condemned" in d.reason
    d = decide(pack(), [], {"a": GFS}, NOW)
    assert d.target is Tier.HOT and "no live recovery point" in d.reason


def test_never_towards_a_warmer_tier() -> None:
    d = decide(pack(tier=Tier.COLD, since=NOW - 400 * DAY), [ref(40)], {"a": GFS}, NOW)
    assert (d.target, d.moves, d.rule) == (Tier.COLD, False, "never-warmer")
    assert "never warmer" in d.reason
    d = decide(pack(tier=Tier.COOL, since=NOW - 400 * DAY), [ref(1)], {"a": GFS}, NOW)
    assert (d.target, d.rule) == (Tier.COOL, "never-warmer")  # a new point needs an old pack


def test_a_pack_stays_inside_its_tier_s_minimum() -> None:
    d = decide(pack(tier=Tier.COOL, since=NOW - 29 * DAY), [ref(200)], {"a": GFS}, NOW)
    assert d.target is Tier.COOL and "minimum until" in d.reason and d.rule == "minimum"
    d = decide(pack(tier=Tier.COOL, since=NOW - 30 * DAY), [ref(200)], {"a": GFS}, NOW)
    assert d.target is Tier.ARCHIVE


def test_no_tier_whose_minimum_outlasts_every_point_needing_the_pack() -> None:
    refs = [ref(200, pid="old"), ref(190, pid="older")]
    survivors = {Tier.COOL: frozenset({"old"}), Tier.COLD: frozenset({"old"}), Tier.ARCHIVE: frozenset()}
    d = decide(pack(), refs, {"a": GFS}, NOW, survivors=survivors)
    assert d.target is Tier.COLD and "180-day minimum" in d.reason
    survivors = {t: frozenset() for t in ORDER[1:]}
    d = decide(pack(), refs, {"a": GFS}, NOW, survivors=survivors)
    assert (d.target, d.rule) == (Tier.HOT, "early-deletion")


def test_contradicting_thresholds_are_named() -> None:
    policy = Policy(cool_after_days=30, cold_after_days=40, archive_after_days=100)
    found = contradictions(policy)
    assert len(found) == 2
    assert found[0].startswith("cold_after_days 40 is sooner than cool_after_days 30 plus cool's 30-day")
    assert "archive_after_days 100 is sooner than cold_after_days 40 plus cold's 90-day" in found[1]
    assert contradictions(Policy(cool_after_days=30, archive_after_days=59)) != []
    assert contradictions(GFS) == contradictions(None) == []
    # such a policy still never leaves a tier early: Cool since day 30, Cold only from day 60
    d = decide(pack(tier=Tier.COOL, since=NOW - 10 * DAY), [ref(40)], {"a": policy}, NOW)
    assert d.target is Tier.COOL


# ------------------------------------------------------------------------------------ expiry


def test_kept_at_assumes_a_point_a_day_until_the_date() -> None:
    points = [FuturePoint(f"p{i}", "a", NOW - i * DAY) for i in range(10)]
    keep3 = Policy(keep_daily=3)
    assert kept_at(points, keep3, NOW) == {"p0", "p1", "p2"}  # no future point yet
    assert kept_at(points, keep3, NOW + 2 * DAY) == {"p0", "p1"}  # one more point, before the date
    assert kept_at(points, keep3, NOW + 10 * DAY) == set()
    assert kept_at(points, None, NOW + 99 * DAY) == {p.id for p in points}
    assert kept_at(points, Policy(), NOW + 99 * DAY) == {p.id for p in points}
    tagged = [*points, FuturePoint("t", "a", NOW - 50 * DAY, ("release",))]
    assert kept_at(tagged, Policy(keep_daily=1, keep_tags=("release",)), NOW + 99 * DAY) == {"t"}


# ------------------------------------------------------------------------------------ against a model

thresholds = st.lists(st.integers(0, 400), min_size=3, max_size=3).map(sorted)


@st.composite
def policies(draw: st.DrawFn) -> Policy | None:
    if draw(st.booleans()) and draw(st.booleans()):
        return None
    cool, cold, archive = (t if draw(st.booleans()) else None for t in draw(thresholds))
    return Policy(cool_after_days=cool, cold_after_days=cold, archive_after_days=archive)


def _model(
    p: PackState,
    refs: list[PointRef],
    pols: dict[str, Policy | None],
    condemned: bool,
    survivors: dict[Tier, frozenset[str]],
) -> Tier:
    """Independently: per item, the tier its newest point's age reaches; the warmest item wins."""
    cur = ORDER.index(p.tier)
    if not p.name.startswith("data/") or condemned or not refs or p.size < 131072:
        return p.tier
    newest: dict[str, datetime] = {}
    for r in refs:
        newest[r.item] = max(newest.get(r.item, r.time), r.time)
    want = 3
    for item, t in newest.items():
        pol = pols.get(item)
        age_days = (NOW - t) / DAY
        limits = [] if pol is None else [pol.cool_after_days, pol.cold_after_days, pol.archive_after_days]
        # the coldest tier whose (set) threshold the age reaches
        level = max((i + 1 for i, x in enumerate(limits) if x is not None and age_days >= x), default=0)
        want = min(want, level)
    ids = {r.id for r in refs}
    while want > 0 and not ids & survivors[ORDER[want]]:
        want -= 1
    if want <= cur:
        return p.tier
    if cur > 0 and p.tier_changed is not None and p.tier_changed + MIN_DAYS[cur] * DAY > NOW:
        return p.tier
    return ORDER[want]


@given(
    size=st.sampled_from([1000, 131071, 131072, 4 << 20]),
    tier=st.sampled_from(ORDER),
    since_days=st.none() | st.integers(0, 400),
    name=st.sampled_from([PACK, "meta/ab/" + "ab" + "0" * 62]),
    ages=st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 500)), max_size=6),
    pols=st.fixed_dictionaries({"a": policies(), "b": policies()}),
    condemned=st.booleans(),
    alive=st.lists(st.lists(st.integers(0, 5), max_size=6), min_size=3, max_size=3),
)
def test_decide_matches_an_independent_model(
    size: int,
    tier: Tier,
    since_days: int | None,
    name: str,
    ages: list[tuple[str, int]],
    pols: dict[str, Policy | None],
    condemned: bool,
    alive: list[list[int]],
) -> None:
    refs = [PointRef(f"p{i}", item, NOW - age * DAY) for i, (item, age) in enumerate(ages)]
    since = None if since_days is None else NOW - since_days * DAY
    p = pack(size, tier, since, name)
    survivors = {ORDER[k + 1]: frozenset(f"p{i}" for i in alive[k]) for k in range(3)}
    d = decide(p, refs, pols, NOW, condemned=condemned, survivors=survivors)
    assert d.target is _model(p, refs, pols, condemned, survivors)
    assert d.moves == (d.target is not tier)
    if d.moves:  # only colder, and never before the threshold of any point needing it
        assert ORDER.index(d.target) > ORDER.index(tier)
        for r in refs:
            pol = pols.get(r.item)
            assert pol is not None
            # the threshold that lets it be this cold: the target's own, or a colder tier's when
            # the target's is unset (archive after 0 days, stepped back to Cold by the expiry rule)
            thresholds = [pol.cool_after_days, pol.cold_after_days, pol.archive_after_days]
            allowing = [t for t in thresholds[ORDER.index(d.target) - 1 :] if t is not None]
            assert allowing and NOW - r.time >= min(allowing) * DAY
