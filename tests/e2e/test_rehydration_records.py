"""REHYDRATION records (docs/format.md, "Restores from Archive"): what ``record_json`` writes,
``parse_record`` reads back; anything else is an ``IntegrityError`` naming the record, never another
exception; a damaged or foreign record in the repository is reported by ``check`` and ignored by
restores, which start their own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tiervault
from tests.e2e.rehydrate_worker import PASSWORD
from tests.e2e.test_restore_archive import REHYDRATE_SECONDS, Store, archive_all, make_point, names, vault_on
from tests.support import FakeClock, MemoryBackend
from tiervault.core.format.envelope import ObjectType
from tiervault.errors import IntegrityError
from tiervault.repo.repository import Repository
from tiervault.restore.selection import Selection
from tiervault.restore.staging import PRIORITIES, parse_record, record_json, restore_key

hex64 = st.text("0123456789abcdef", min_size=64, max_size=64)
paths = st.lists(
    st.text(  # what os.fsdecode makes: no lone surrogates but surrogateescape's (undecodable bytes)
        st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",))
        | st.sampled_from([chr(c) for c in range(0xDC80, 0xDD00)]),
        min_size=1,
        max_size=8,
    ),
    max_size=4,
)


@given(
    snapshot=hex64,
    sel=st.one_of(st.none(), paths),
    include=st.lists(st.text(max_size=6), max_size=3),
    priority=st.sampled_from(PRIORITIES),
    packs=st.sets(hex64, max_size=5),
    started=st.floats(min_value=0, max_value=4e9),
)
def test_what_is_written_is_read_back(
    snapshot: str, sel: list[str] | None, include: list[str], priority: str, packs: set[str], started: float
) -> None:
    key = restore_key(snapshot, Selection(sel, include, None))
    plain = json.dumps(record_json(key, priority, packs, started), sort_keys=True).encode()
    rec = parse_record("a" * 64, plain)
    assert rec.key == key and rec.priority == priority and rec.packs == tuple(sorted(packs))
    assert rec.started == started and rec.staging_name("b" * 64) == f"staging/{'a' * 64}/{'b' * 64}"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(
    field=st.sampled_from(
        [
            "v",
            "snapshot",
            "paths",
            "include",
            "exclude",
            "priority",
            "packs",
            "started",
            "host",
            "pid",
            "extra",
        ]
    ),
    value=json_values,
)
def test_a_changed_field_is_read_or_refused_with_an_integrity_error(field: str, value: Any) -> None:
    good = record_json(restore_key("c" * 64, Selection(["d1"])), "high", ["d" * 64], 1.0)
    plain = json.dumps({**good, field: value}).encode()
    try:
        parse_record("e" * 64, plain)
    except IntegrityError as exc:
        assert "restore/" + "e" * 64 in str(exc)


@given(raw=st.binary(max_size=64))
def test_bytes_that_are_no_record_are_an_integrity_error(raw: bytes) -> None:
    with pytest.raises(IntegrityError):
        parse_record("f" * 64, raw)


async def test_a_damaged_or_foreign_record_is_reported_and_ignored(
    fake_clock: FakeClock, tmp_path: Path
) -> None:
    memory = MemoryBackend(clock=fake_clock, rehydrate_seconds=REHYDRATE_SECONDS)
    store: Store = lambda: memory  # noqa: E731
    point = await make_point(store, fake_clock, tmp_path / "src")
    await archive_all(store)
    vault = await vault_on(store, fake_clock)
    await memory.put_if_absent("restore/" + "0" * 64, b"not a sealed object")
    repo = await Repository.open(store(), PASSWORD.encode())
    foreign = repo.objects.seal("restore/", ObjectType.REHYDRATION, b'{"v":2}')  # a newer version
    await memory.put_if_absent(*foreign)
    checked = await vault.check()
    assert checked.ok
    ignored = [w for w in checked.warnings if "restores ignore" in w["warning"]]
    assert sorted(w["object"] for w in ignored) == sorted(["restore/" + "0" * 64, foreign[0]])

    started = await vault.restore(point, tmp_path / "out", rehydrate=True)
    assert started.awaiting_rehydration and started.rehydration is not None
    assert len(started.rehydration.records) == 1  # its own, new record
    fake_clock.advance(REHYDRATE_SECONDS)
    done = await vault.restore(point, tmp_path / "out", rehydrate=True)
    assert done.ok and await names(store, "staging/") == {}
    assert set(await names(store, "restore/")) == {"restore/" + "0" * 64, foreign[0]}  # not ours: kept
    with pytest.raises(tiervault.RehydrationNeededError):
        await vault.restore(point, tmp_path / "again")


def test_a_path_with_no_byte_form_is_a_usage_error() -> None:
    """A lone surrogate is no file-system name (os.fsdecode never makes one): a clear error."""
    with pytest.raises(tiervault.UsageError, match="not a file-system path"):
        Selection(["docs/\ud800"], None, None)
