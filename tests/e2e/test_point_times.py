"""Points recorded at a given time (``snapshot(time=)``, ``--time``): ordering, ``latest`` and the
commit time kept beside it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

import tiervault
from tiervault.core.format import FormatError
from tiervault.repo.snapshots import SnapshotRecord


async def _item(vault: tiervault.Vault, tmp_path: Path) -> str:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    await vault.protect(src, name="src")
    return "src"


async def test_a_point_recorded_at_a_given_time_sorts_and_resolves_by_it(
    vault: tiervault.Vault, tmp_path: Path
) -> None:
    item = await _item(vault, tmp_path)
    now = await vault.snapshot(item)
    old = datetime(2020, 5, 17, 8, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    past = await vault.snapshot(item, time=old)
    assert past.point.time == old
    assert past.point.time.tzinfo == UTC
    assert past.point.committed is not None and past.point.committed > old + timedelta(days=365)
    assert now.point.committed == now.point.time  # no given time: committed is the time itself
    points = await vault.points(item)
    assert [p.id for p in points] == [past.point.id, now.point.id]  # oldest first, by time
    assert (await vault.point("latest")).id == now.point.id
    assert (await vault.point(past.point.id)).committed == past.point.committed


async def test_a_naive_time_is_refused(vault: tiervault.Vault, tmp_path: Path) -> None:
    item = await _item(vault, tmp_path)
    with pytest.raises(tiervault.UsageError, match="time zone"):
        await vault.snapshot(item, time=datetime(2020, 1, 1))
    assert await vault.points() == []


def _record(**extra: object) -> dict[str, object]:
    rec = SnapshotRecord(
        item="x",
        time="2026-11-30T10:00:00.000000000Z",
        host="h",
        user="u",
        source="/s",
        tree="0" * 64,
        root={},
    )
    return {**rec.to_json(), **extra}


def test_committed_is_optional_and_validated() -> None:
    assert "committed" not in _record()
    assert SnapshotRecord.from_json(_record(), "id").committed is None
    ok = SnapshotRecord.from_json(_record(committed="2026-12-01T10:00:00.5Z"), "id")
    assert ok.committed == "2026-12-01T10:00:00.5Z"
    assert ok.to_json()["committed"] == "2026-12-01T10:00:00.5Z"
    for bad in (3, "yesterday", "2026-13-01T10:00:00Z", None):
        with pytest.raises(FormatError, match="committed"):
            SnapshotRecord.from_json(_record(committed=bad), "id")


@pytest.mark.parametrize("year", [1, 999, 1969, 9999])
async def test_any_year_is_stored_readably(vault: tiervault.Vault, tmp_path: Path, year: int) -> None:
    item = await _item(vault, tmp_path)
    given = datetime(year, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    point = (await vault.snapshot(item, time=given)).point
    assert [p.time for p in await vault.points()] == [given]  # listed, not skipped as damaged
    assert (await vault.point(point.id)).time == given


async def test_a_time_past_year_9999_in_utc_is_refused(vault: tiervault.Vault, tmp_path: Path) -> None:
    item = await _item(vault, tmp_path)
    with pytest.raises(tiervault.UsageError, match="time"):
        await vault.snapshot(item, time=datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-2))))
