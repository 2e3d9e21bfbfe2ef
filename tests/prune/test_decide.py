"""The pure decisions of prune (tiervault.prune.decide), by hypothesis: whatever the packs, the live
set and the blocked packs, the mark and the sweep's reinstatement never leave a live chunk without
a copy, the repack respects its limits, the sweep conditions hold and the GONE retirement waits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tiervault.core.format.gcobjects import CondemnedPack, GoneRecord, HeartbeatRecord
from tiervault.prune.decide import group, mark, plan_due, reinstate, retire_gones, select_repack
from tiervault.repo.gcstate import GRACE, HEARTBEAT_EXPIRY, MAX_SKEW, Gone, Heartbeat
from tiervault.repo.snapshots import datetime_iso

CHUNKS = [bytes([i]) * 32 for i in range(12)]
PACKS = [f"{i:064x}" for i in range(8)]
T0 = datetime(2026, 12, 1, 12, tzinfo=UTC)

repos = st.fixed_dictionaries(
    {
        "blobs": st.dictionaries(
            st.sampled_from(PACKS),
            st.lists(st.tuples(st.sampled_from(CHUNKS), st.integers(16, 1000)), max_size=6),
            min_size=1,
        ),
        "live": st.sets(st.sampled_from(CHUNKS)),
        "blocked": st.sets(st.sampled_from(PACKS), max_size=3),
    }
)


def _locations(blobs: dict[str, list[tuple[bytes, int]]]) -> dict[bytes, list[str]]:
    out: dict[bytes, list[str]] = {}
    for pid, bl in blobs.items():
        for c, _ in bl:
            if pid not in out.setdefault(c, []):
                out[c].append(pid)
    return out


def _located(live: set[bytes], blobs: dict[str, list[tuple[bytes, int]]], usable: set[str]) -> set[bytes]:
    return {c for p in usable for c, _ in blobs.get(p, ()) if c in live}


@settings(max_examples=300)
@given(repos)
def test_the_mark_never_condemns_a_live_chunks_last_kept_copy(r: dict) -> None:  # type: ignore[type-arg]
    blobs, live, blocked = r["blobs"], r["live"], r["blocked"]
    usable = set(blobs) - blocked
    before = _located(live, blobs, usable)
    condemned = mark(sorted(usable), live, _locations(blobs), blocked, blobs)
    assert condemned == sorted(condemned) and not set(condemned) & blocked
    assert _located(live, blobs, usable - set(condemned)) == before
    # a pack without a live chunk is always condemned
    for p in usable:
        if not any(c in live for c, _ in blobs[p]):
            assert p in condemned


@settings(max_examples=300)
@given(repos, st.sets(st.sampled_from(PACKS), min_size=1))
def test_reinstatement_keeps_every_live_chunk_the_plan_holds(r: dict, plan: set[str]) -> None:  # type: ignore[type-arg]
    blobs, live, others = r["blobs"], r["live"], r["blocked"] - plan
    blocked = others | plan  # the plan's own packs are condemned while it is swept
    kept = reinstate(plan, live, _locations(blobs), blocked, blobs)
    assert kept <= plan
    assert plan - set(blobs) <= kept  # unknown blobs: cannot be proven unneeded
    remaining = set(blobs) - others - (plan - kept)
    assert _located(live, blobs, set(blobs) - others) == _located(live, blobs, remaining)


@settings(max_examples=300)
@given(
    repos,
    st.one_of(st.floats(0.0, 1.0), st.integers(0, 5000)),
    st.one_of(st.none(), st.integers(0, 3000)),
)
def test_the_repack_respects_its_limits_and_keeps_every_chunk(
    r: dict,  # type: ignore[type-arg]
    max_unused: float | int,
    max_repack: int | None,
) -> None:
    blobs, live = r["blobs"], r["live"]
    sizes = {p: sum(n for _, n in bl) + 40 for p, bl in blobs.items()}
    choice = select_repack(blobs, sizes, live, blobs, max_unused=max_unused, max_repack_bytes=max_repack)
    if max_repack is not None:
        assert choice.live_bytes <= max_repack
    assert choice.unused_after <= choice.unused_before
    # the copied chunks land in a new pack; the mark then takes every repacked pack
    new = "f" * 64
    after = dict(blobs)
    after[new] = [(c, 1) for p in choice.packs for c in choice.copy[p]]
    locs = _locations(after)
    condemned = set(mark(sorted(blobs), live, locs, set(), after, first=choice.packs))
    assert set(choice.packs) <= condemned
    assert _located(live, after, set(after) - condemned) == _located(live, blobs, set(blobs))


def _beat(stored: datetime, started: datetime | None, kind: str = "snapshot") -> Heartbeat:
    rec = HeartbeatRecord(
        "ab" * 16, 1, kind, "h", 1, "u", "p", None if started is None else datetime_iso(started)
    )
    return Heartbeat("locks/" + "c" * 64, rec, stored)


minutes = st.integers(-200, 200).map(lambda m: timedelta(minutes=m))


@given(minutes, st.lists(st.tuples(minutes, minutes, st.sampled_from(["snapshot", "prune"])), max_size=4))
def test_a_plan_is_due_only_after_grace_and_once_older_sessions_ended(
    age: timedelta, beats: list[tuple[timedelta, timedelta, str]]
) -> None:
    mark_time = T0 - age
    hbs = [_beat(T0 - s, T0 - s - st_, kind) for s, st_, kind in beats]
    due = plan_due(mark_time, T0, hbs)
    blocking = [
        b
        for b in hbs
        if b.record.kind == "snapshot"
        and b.stored >= T0 - HEARTBEAT_EXPIRY - MAX_SKEW
        and b.started < mark_time + MAX_SKEW
    ]
    assert due.ok == (T0 - mark_time >= GRACE and not blocking)
    if not due.ok:
        assert (due.until is not None and due.until > T0) or blocking
        assert (due.heartbeat is not None) == bool(blocking)


@given(st.lists(st.integers(0, 10), max_size=30), st.integers(1, 15))
def test_consolidated_groups_keep_order_and_size(sizes: list[int], limit: int) -> None:
    items = list(range(len(sizes)))
    groups = group(items, sizes, limit)
    assert [i for g in groups for i in g] == items
    for g in groups:
        assert len(g) == 1 or sum(sizes[i] for i in g) <= limit


@given(
    st.lists(st.tuples(st.booleans(), minutes, st.booleans(), st.booleans()), max_size=5),
    st.lists(st.tuples(minutes, minutes), max_size=3),
)
def test_a_gone_is_unlisted_and_deleted_only_when_safe(
    gones: list[tuple[bool, timedelta, bool, bool]], beats: list[tuple[timedelta, timedelta]]
) -> None:
    objs = []
    listed: set[str] = set()
    plans: set[str] = set()
    for i, (unlisted, age, is_listed, plan_exists) in enumerate(gones):
        pack = f"{i + 100:064x}"
        plan = f"{i + 200:064x}"
        if is_listed:
            listed.add(pack)
        if plan_exists:
            plans.add(plan)
        rec = GoneRecord(plan, (CondemnedPack(pack, "data", "unreferenced"),), unlisted, None)
        objs.append(Gone(f"{i + 300:064x}", rec, T0 - age))
    hbs = [_beat(T0 - s, T0 - s - a) for s, a in beats]
    out = retire_gones(objs, plans, listed, T0, hbs)
    for g in out.unlist:
        assert not g.record.unlisted and g.record.plan not in plans
        assert not {p.id for p in g.record.packs} & listed
    for g in out.delete:
        assert g.record.unlisted and T0 - g.stored >= GRACE
        assert plan_due(g.stored, T0, hbs).ok
