"""The garbage-collection objects (PLAN, GONE, HEARTBEAT): round trips, and hostile bytes are only
ever a ``FormatError``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiervault.core.format import FormatError
from tiervault.core.format.gcobjects import (
    CondemnedPack,
    GoneRecord,
    HeartbeatRecord,
    PlanRecord,
)

hex64 = st.binary(min_size=32, max_size=32).map(bytes.hex)
text = st.text(max_size=40)
pids = st.integers(0, 2**31)
times = st.sampled_from([None, "2026-12-01T10:00:00.123456789Z", "2026-01-01T00:00:00Z"])


def _packs(with_reason: bool) -> st.SearchStrategy[tuple[CondemnedPack, ...]]:
    one = st.builds(
        CondemnedPack,
        id=hex64,
        kind=st.sampled_from(["data", "meta"]),
        reason=st.sampled_from(["unreferenced", "repacked", "orphan"] if with_reason else ["unreferenced"]),
    )
    return st.lists(one, max_size=6, unique_by=lambda p: p.id).map(
        lambda ps: tuple(sorted(ps, key=lambda p: p.id))
    )


plans = st.builds(
    PlanRecord,
    packs=_packs(True),
    snapshots=st.lists(hex64, max_size=4, unique=True).map(lambda s: tuple(sorted(s))),
    host=text,
    pid=pids,
)
gones = st.builds(
    GoneRecord, plan=hex64, packs=_packs(False), unlisted=st.booleans(), supersedes=st.none() | hex64
)
beats = st.builds(
    HeartbeatRecord,
    session=st.binary(min_size=16, max_size=16).map(bytes.hex),
    seq=st.integers(0, 2**40),
    kind=st.sampled_from(["snapshot", "prune"]),
    host=text,
    pid=pids,
    user=text,
    program=text,
    started=times,
    lease_expires=times,
)


@settings(max_examples=150, deadline=None)
@given(rec=st.one_of(plans, gones, beats))
def test_round_trip(rec: PlanRecord | GoneRecord | HeartbeatRecord) -> None:
    data = rec.to_bytes()
    assert type(rec).from_bytes(data) == rec
    assert type(rec).from_bytes(data).to_bytes() == data


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=200)
    | st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=4),
        max_leaves=12,
    ).map(lambda o: json.dumps(o).encode())
)
def test_garbage_is_only_a_format_error(data: bytes) -> None:
    for cls in (PlanRecord, GoneRecord, HeartbeatRecord):
        try:
            cls.from_bytes(data)
        except FormatError:
            pass


def _plan_json(**change: Any) -> bytes:
    obj: dict[str, Any] = {
        "v": 1,
        "packs": [{"id": "a" * 64, "kind": "data", "reason": "unreferenced"}],
        "snapshots": [],
        "host": "h",
        "pid": 1,
    }
    obj.update(change)
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    "change",
    [
        {"v": 2},
        {"v": True},
        {"packs": [{"id": "a" * 64, "kind": "data", "reason": "whim"}]},
        {"packs": [{"id": "A" * 64, "kind": "data", "reason": "orphan"}]},
        {"packs": [{"id": "a" * 64, "kind": "tree", "reason": "orphan"}]},
        {
            "packs": [
                {"id": "b" * 64, "kind": "data", "reason": "orphan"},
                {"id": "a" * 64, "kind": "data", "reason": "orphan"},
            ]
        },
        {"packs": [{"id": "a" * 64, "kind": "data", "reason": "orphan", "extra": 1}]},
        {"snapshots": ["b" * 64, "a" * 64]},
        {"pid": -1},
        {"pid": True},
        {"host": 3},
    ],
)
def test_a_plan_with_a_bad_field_is_refused(change: dict[str, Any]) -> None:
    assert PlanRecord.from_bytes(_plan_json())  # the unchanged one is fine
    with pytest.raises(FormatError):
        PlanRecord.from_bytes(_plan_json(**change))


def test_a_heartbeat_with_a_bad_time_or_session_is_refused() -> None:
    good = HeartbeatRecord("0" * 32, 0, "snapshot", "h", 1, "u", "p", None)
    obj = json.loads(good.to_bytes())
    for key, bad in [("started", "yesterday"), ("session", "0" * 31), ("kind", "restore"), ("seq", 1.5)]:
        with pytest.raises(FormatError):
            HeartbeatRecord.from_bytes(json.dumps({**obj, key: bad}).encode())
