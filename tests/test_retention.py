"""``tiervault.retention``: which points a policy keeps and why, against an independent brute-force
GFS implementation written here, plus one example per reason."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiervault import Policy, UsageError
from tiervault.policy import parse_duration
from tiervault.retention import NO_MATCH, NO_RULE, RetentionDecision, decide


@dataclass(frozen=True)
class P:
    id: str
    item: str
    time: datetime
    tags: tuple[str, ...] = ()
    incomplete: bool = False


def at(text: str, n: int = 0, **kw: object) -> P:
    t = datetime.fromisoformat(text).replace(tzinfo=UTC) if "+" not in text else datetime.fromisoformat(text)
    return P(id=f"{n:064x}", item=str(kw.pop("item", "x")), time=t, **kw)  # type: ignore[arg-type]


def by_id(decisions: list[RetentionDecision]) -> dict[str, tuple[bool, tuple[str, ...]]]:
    return {d.id: (d.keep, d.reasons) for d in decisions}


# ------------------------------------------------------------------------------------ one per reason


def test_last() -> None:
    pts = [at(f"2026-11-{d:02d}T12:00:00", d) for d in (1, 2, 3, 4)]
    got = by_id(decide(pts, Policy(keep_last=3)))
    assert [got[p.id] for p in pts] == [
        (False, (NO_MATCH,)),
        (True, ("last 3",)),
        (True, ("last 2",)),
        (True, ("last 1",)),
    ]


def test_daily_keeps_the_newest_of_each_of_the_most_recent_days() -> None:
    pts = [
        at("2026-11-28T09:00:00", 1),
        at("2026-11-29T09:00:00", 2),
        at("2026-11-30T08:00:00", 3),
        at("2026-11-30T20:00:00", 4),
    ]
    got = by_id(decide(pts, Policy(keep_daily=2)))
    assert got[pts[3].id] == (True, ("daily 2026-11-30",))
    assert got[pts[1].id] == (True, ("daily 2026-11-29",))
    assert not got[pts[2].id][0] and not got[pts[0].id][0]


def test_hourly_weekly_monthly_yearly() -> None:
    pts = [at("2025-06-01T00:00:00", 1), at("2026-10-15T00:00:00", 2), at("2026-11-26T14:05:00", 3)]
    got = by_id(decide(pts, Policy(keep_hourly=1, keep_weekly=2, keep_monthly=2, keep_yearly=5)))
    assert got[pts[2].id] == (
        True,
        ("hourly 2026-11-26T14", "weekly 2026-W48", "monthly 2026-11", "yearly 2026"),
    )
    assert got[pts[1].id] == (True, ("weekly 2026-W42", "monthly 2026-10"))
    assert got[pts[0].id] == (True, ("yearly 2025",))


def test_iso_weeks_belong_to_their_iso_year() -> None:
    # 2027-01-01 is a Friday: ISO week 53 of 2026, the same week as 2026-12-28
    pts = [at("2026-12-28T10:00:00", 1), at("2027-01-01T10:00:00", 2)]
    got = by_id(decide(pts, Policy(keep_weekly=5)))
    assert got[pts[1].id] == (True, ("weekly 2026-W53",))
    assert got[pts[0].id] == (False, (NO_MATCH,))


def test_within_counts_back_from_the_newest_point() -> None:
    pts = [at("2026-11-20T12:00:00", 1), at("2026-11-23T12:00:01", 2), at("2026-11-30T12:00:00", 3)]
    got = by_id(decide(pts, Policy(keep_within="7d")))
    assert got[pts[2].id] == (True, ("within 7d",))
    assert got[pts[1].id] == (True, ("within 7d",))
    assert got[pts[0].id] == (False, (NO_MATCH,))


def test_within_months_clamp_to_the_shorter_month() -> None:
    pts = [at("2024-02-29T00:00:00", 1), at("2024-02-29T00:00:01", 2), at("2024-03-31T00:00:00", 3)]
    got = by_id(decide(pts, Policy(keep_within="1m")))
    assert [got[p.id][0] for p in pts] == [False, True, True]  # cutoff 2024-02-29T00:00, strictly after
    got = by_id(decide(pts, Policy(keep_within="1y2m3d")))
    assert all(keep for keep, _ in got.values())


def test_tags() -> None:
    pts = [at("2026-01-01T00:00:00", 1, tags=("release", "v1")), at("2026-02-01T00:00:00", 2)]
    got = by_id(decide(pts, Policy(keep_tags=("release", "v1"))))
    assert got[pts[0].id] == (True, ("tag release", "tag v1"))
    assert got[pts[1].id] == (False, (NO_MATCH,))


def test_no_rule_keeps_everything_and_says_so() -> None:
    pts = [at("2026-01-01T00:00:00", 1), at("2026-02-01T00:00:00", 2, incomplete=True)]
    for policy in (Policy(), Policy(keep_last=0, keep_daily=0, keep_tags=())):
        assert all(d.keep and d.reasons == (NO_RULE,) for d in decide(pts, policy))


def test_incomplete_points_go_once_a_newer_complete_point_exists() -> None:
    old = at("2026-01-01T00:00:00", 1, incomplete=True)
    done = at("2026-01-02T00:00:00", 2)
    fresh = at("2026-01-03T00:00:00", 3, incomplete=True)
    got = by_id(decide([old, done, fresh], Policy(keep_last=5)))
    assert got[old.id] == (False, (f"incomplete, superseded by complete point {done.id[:8]}",))
    assert got[done.id] == (True, ("last 1",))  # the incomplete point counts for no rule
    assert got[fresh.id][0] and got[fresh.id][1][0].startswith("incomplete")


def test_buckets_are_utc_unless_a_time_zone_is_given() -> None:
    pts = [at("2026-11-30T23:30:00", 1)]
    assert decide(pts, Policy(keep_daily=1))[0].reasons == ("daily 2026-11-30",)
    plus2 = timezone(timedelta(hours=2))
    assert decide(pts, Policy(keep_daily=1), tz=plus2)[0].reasons == ("daily 2026-12-01",)


def test_items_are_decided_apart() -> None:
    pts = [at("2026-01-01T00:00:00", 1, item="a"), at("2026-01-02T00:00:00", 2, item="b")]
    assert all(d.keep and d.reasons == ("last 1",) for d in decide(pts, Policy(keep_last=1)))


@pytest.mark.parametrize("bad", ["", "7", "d", "7x", "1d2y", "0d", "0y0m", "-1d", " 7d", "7d ", "1.5d", "7D"])
def test_keep_within_garbage_is_refused(bad: str) -> None:
    with pytest.raises(UsageError, match="keep_within"):
        Policy(keep_within=bad)


# ------------------------------------------------------------------------------------ against brute force

BASE = datetime(2024, 12, 20, tzinfo=UTC)


def oracle_buckets(t: datetime) -> dict[str, tuple[object, str]]:
    """Each rule's bucket key of ``t`` and how the reason names it, computed from ``date`` parts."""
    d = t.date()
    iy, iw, _ = d.isocalendar()
    return {
        "keep_hourly": ((d, t.hour), f"hourly {d.isoformat()}T{t.hour:02d}"),
        "keep_daily": (d, f"daily {d.isoformat()}"),
        "keep_weekly": ((iy, iw), f"weekly {iy}-W{iw:02d}"),
        "keep_monthly": ((d.year, d.month), f"monthly {d.year}-{d.month:02d}"),
        "keep_yearly": (d.year, f"yearly {d.year}"),
    }


def oracle(
    points: list[P], policy: Policy, within: tuple[int, int, int] | None
) -> dict[str, tuple[bool, set[str]]]:
    """Brute force, per item: a point is kept by a bucket rule N when no newer point shares its
    bucket and at most N distinct buckets hold a point at least as new as it."""
    out: dict[str, tuple[bool, set[str]]] = {}
    if not policy.has_keep_rule:
        return {p.id: (True, {NO_RULE}) for p in points}
    for item in {p.item for p in points}:
        mine = [p for p in points if p.item == item]
        complete = [p for p in mine if not p.incomplete]
        newest = max(complete, key=lambda p: (p.time, p.id), default=None)
        for p in mine:
            if p.incomplete:
                out[p.id] = (newest is None or (p.time, p.id) > (newest.time, newest.id), set())
                continue
            newer = [q for q in complete if (q.time, q.id) > (p.time, p.id)]
            why: set[str] = set()
            if policy.keep_last and len(newer) < policy.keep_last:
                why.add(f"last {len(newer) + 1}")
            mine_b = oracle_buckets(p.time)
            for rule, (key, name) in mine_b.items():
                n = getattr(policy, rule) or 0
                seen = {oracle_buckets(q.time)[rule][0] for q in newer}
                if key not in seen and len(seen) + 1 <= n:
                    why.add(name)
            if within is not None and newest is not None:
                w, d, h = within
                if p.time > newest.time - timedelta(weeks=w, days=d, hours=h):
                    why.add(f"within {policy.keep_within}")
            why |= {f"tag {t}" for t in policy.keep_tags or () if t in p.tags}
            out[p.id] = (bool(why), why)
    return out


@st.composite
def histories(draw: st.DrawFn) -> list[P]:
    n = draw(st.integers(min_value=0, max_value=40))
    spread = draw(st.sampled_from([6 * 3600, 3 * 86400, 60 * 86400, 900 * 86400]))
    out = []
    for i in range(n):
        secs = draw(st.integers(min_value=0, max_value=spread))
        tags = tuple(sorted(draw(st.sets(st.sampled_from(["a", "b"]), max_size=2))))
        incomplete = draw(st.integers(min_value=0, max_value=9)) == 0
        item = draw(st.sampled_from(["x", "y"]))
        out.append(P(f"{i:064x}", item, BASE + timedelta(seconds=secs), tags, incomplete))
    return out


small = st.none() | st.integers(min_value=0, max_value=6)


@settings(max_examples=300, deadline=None)
@given(
    histories(),
    small,
    small,
    small,
    small,
    small,
    small,
    st.none() | st.tuples(*[st.integers(min_value=0, max_value=3)] * 3).filter(any),
    st.none() | st.lists(st.sampled_from(["a", "b"]), max_size=2),
)
def test_decisions_match_a_brute_force_gfs(
    points: list[P],
    last: int | None,
    hourly: int | None,
    daily: int | None,
    weekly: int | None,
    monthly: int | None,
    yearly: int | None,
    within: tuple[int, int, int] | None,
    tags: list[str] | None,
) -> None:
    within_text = (
        None if within is None else "".join(f"{v}{u}" for v, u in zip(within, "wdh", strict=True) if v)
    )
    policy = Policy(
        keep_last=last,
        keep_hourly=hourly,
        keep_daily=daily,
        keep_weekly=weekly,
        keep_monthly=monthly,
        keep_yearly=yearly,
        keep_within=within_text,
        keep_tags=tags,
    )
    got = decide(points, policy)
    assert [d.id for d in got] == [p.id for p in sorted(points, key=lambda p: (p.time, p.id))]
    want = oracle(points, policy, within)
    for d in got:
        keep, why = want[d.id]
        assert d.keep == keep, (d, why)
        if why:
            assert set(d.reasons) == why and len(d.reasons) == len(why)


def test_the_oracle_names_weeks_as_iso_does() -> None:
    assert oracle_buckets(datetime(2026, 11, 26, tzinfo=UTC))["keep_weekly"][1] == "weekly 2026-W48"
    assert date(2026, 11, 26).isocalendar()[1] == 48


@given(st.tuples(*[st.integers(min_value=0, max_value=999)] * 5).filter(any))
def test_keep_within_parses_every_duration_in_its_syntax(parts: tuple[int, int, int, int, int]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in zip(parts, "ymwdh", strict=True) if n)
    assert parse_duration(text) == parts
    assert Policy(keep_within=text).keep_within == text


@given(st.text(alphabet="0123456789ymwdhYD .-", max_size=12))
def test_keep_within_accepts_exactly_its_grammar(text: str) -> None:
    ok = re.fullmatch(r"(\d+y)?(\d+m)?(\d+w)?(\d+d)?(\d+h)?", text) is not None and any(
        c in "123456789" for c in text
    )
    try:
        Policy(keep_within=text)
    except UsageError:
        assert not ok
    else:
        assert ok
