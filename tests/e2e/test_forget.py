"""``Vault.forget``: retention applied to a real repository; only snapshot objects go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import tiervault
from tests.e2e import KDF, PASSWORD
from tests.support.trees import assert_trees_equal, snapshot_tree
from tiervault.backend.local import LocalBackend
from tiervault.repo.repository import Repository
from tiervault.retention import NO_RULE
from tiervault.vault import Vault

DAY0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


async def _history(vault: tiervault.Vault, src: Path, days: int) -> list[tiervault.RecoveryPoint]:
    """One point a day from DAY0, each after adding a file."""
    points = []
    for d in range(days):
        (src / f"day{d}.txt").write_text(f"day {d}\n")
        points.append((await vault.snapshot("src", time=DAY0 + timedelta(days=d))).point)
    return points


def _objects(path: Path, kind: str) -> set[str]:
    return {p.name for p in (path / kind).rglob("*") if p.is_file()}


async def test_forget_applies_the_items_policy_and_deletes_only_snapshots(
    vault: tiervault.Vault, repo_path: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    await vault.protect(src, name="src", policy=tiervault.Policy(keep_last=2, keep_tags=("release",)))
    points = []
    for d in range(5):
        (src / f"day{d}.txt").write_text(f"day {d}\n")
        tags = ("release",) if d == 1 else ()
        points.append((await vault.snapshot("src", time=DAY0 + timedelta(days=d), tags=tags)).point)
    data_before = _objects(repo_path, "data")

    dry = await vault.forget("src", dry_run=True)
    assert [(d.id, d.keep) for d in dry] == [
        (p.id, p.id in {points[1].id, points[3].id, points[4].id}) for p in points
    ]
    assert len(await vault.points()) == 5

    done = await vault.forget("src")
    assert done == dry
    assert {d.id: d.reasons for d in done if d.keep} == {
        points[1].id: ("tag release",),
        points[3].id: ("last 2",),
        points[4].id: ("last 1",),
    }
    assert [p.id for p in await vault.points()] == [points[1].id, points[3].id, points[4].id]
    assert _objects(repo_path, "data") == data_before  # data stays until a prune
    assert (await vault.check()).ok
    out = tmp_path / "out"
    await vault.restore(points[1].id, out)
    assert sorted(p.name for p in out.iterdir()) == ["day0.txt", "day1.txt"]
    assert await vault.forget("src") == [d for d in done if d.keep]  # nothing more goes


async def test_a_given_policy_overrides_and_no_rule_keeps_everything(
    vault: tiervault.Vault, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    await vault.protect(src, name="src")
    await _history(vault, src, 6)
    kept = await vault.forget()
    assert len(kept) == 6 and all(d.keep and d.reasons == (NO_RULE,) for d in kept)
    decided = await vault.forget(policy=tiervault.Policy(keep_within="2d"))
    assert [d.keep for d in decided] == [False, False, False, False, True, True]  # after newest - 2d
    assert len(await vault.points()) == 2


async def test_forget_of_an_unknown_item_is_a_clear_error(vault: tiervault.Vault) -> None:
    with pytest.raises(tiervault.NotFoundError, match="'nope'"):
        await vault.forget("nope")


async def test_the_kept_points_restore_exactly_after_forget(vault: tiervault.Vault, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    await vault.protect(src, name="src")
    (src / "a.bin").write_bytes(b"a" * 100_000)
    first = (await vault.snapshot("src", time=DAY0)).point
    want_first = snapshot_tree(src)
    (src / "b.bin").write_bytes(b"b" * 100_000)
    await vault.snapshot("src", time=DAY0 + timedelta(hours=1))
    (src / "a.bin").unlink()
    last = (await vault.snapshot("src", time=DAY0 + timedelta(days=40))).point
    want_last = snapshot_tree(src)
    decided = await vault.forget(policy=tiervault.Policy(keep_monthly=2))
    assert [d.id for d in decided if d.keep] == [decided[1].id, last.id]
    assert decided[0].id == first.id and not decided[0].keep
    assert [p.id for p in await vault.points()] == [decided[1].id, last.id]
    out = tmp_path / "out"
    await vault.restore(last.id, out)
    assert_trees_equal(snapshot_tree(out), want_last)
    assert want_first != want_last
    assert (await vault.check(read_data=True)).ok


class _SnapshotBeforeDeletes:
    """A backend that, on the first ``delete_many``, lets another writer commit a point first: the
    point is committed after forget listed and decided, before it deletes."""

    def __init__(self, inner: object, commit: object) -> None:
        self.inner, self.commit, self.fired = inner, commit, False

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def delete_many(self, names: list[str]) -> None:
        if not self.fired:
            self.fired = True
            await self.commit()  # type: ignore[operator]
        await self.inner.delete_many(names)  # type: ignore[attr-defined]


async def test_a_point_committed_during_forget_is_never_deleted(repo_path: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    async with tiervault.init(repo_path, password=PASSWORD, kdf=KDF) as writer:
        await writer.protect(src, name="src")
        old = await _history(writer, src, 3)

        async def commit() -> None:
            (src / "late.txt").write_text("late\n")
            late.append((await writer.snapshot("src")).point)

        late: list[tiervault.RecoveryPoint] = []
        backend = _SnapshotBeforeDeletes(LocalBackend(repo_path), commit)
        forgetter = Vault(await Repository.open(backend, PASSWORD.encode()))  # type: ignore[arg-type]
        decisions = await forgetter.forget("src", policy=tiervault.Policy(keep_last=1))
        assert backend.fired and late
        assert {d.id for d in decisions} == {p.id for p in old}  # the late point was not decided
        assert {p.id for p in await writer.points()} == {old[-1].id, late[0].id}
        await forgetter.aclose()
