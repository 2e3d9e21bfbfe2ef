"""Time-boxed restores: stop before the deadline, then resume into the same target.

Time is the vault's :class:`~tiervault.clock.Clock`: a fake one that moves only when the store is
read (every ranged read of a data pack "takes" ``READ_SECONDS``), so the deadline passes after a
known amount of work, without a real clock or a patched predicate.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import tiervault
from tests.e2e import PASSWORD, KiB, MiB, leftovers
from tests.support import FakeClock
from tests.support.trees import Dir, File, HardLink, assert_trees_equal, build_tree, snapshot_tree
from tiervault.backend.base import Backend
from tiervault.backend.local import LocalBackend
from tiervault.repo.repository import Repository

READ_SECONDS = 10.0
BUDGET_SECONDS = 40.0  # 10% (4 s) is kept in reserve: reads may start until 36 s have passed


class TimedReads:
    """A backend whose ranged reads of data packs advance ``clock`` (everything else is ``inner``)."""

    def __init__(self, inner: Backend, clock: FakeClock) -> None:
        self._inner, self._clock = inner, clock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def get(self, name: str, *, offset: int = 0, length: int | None = None) -> bytes:
        data = await self._inner.get(name, offset=offset, length=length)
        if name.startswith("data/"):
            self._clock.advance(READ_SECONDS)
        return data


async def point_of(vault: tiervault.Vault, src: Path, spec: dict[str, Any]) -> tiervault.RecoveryPoint:
    """Build ``spec`` at ``src``, protect it as ``src`` and snapshot it."""
    build_tree(src, spec)
    await vault.protect(src, name="src")
    return (await vault.snapshot("src")).point


async def timed_vault(repo_path: Path) -> tuple[FakeClock, tiervault.Vault]:
    """The repository opened again, its data reads timed on a fresh fake clock (``TimedReads``)."""
    clock = FakeClock()
    repo = await Repository.open(TimedReads(LocalBackend(repo_path), clock), PASSWORD.encode())
    return clock, tiervault.Vault(repo, clock=clock)


@pytest.mark.parametrize("form", ["seconds", "datetime"])
async def test_restore_deadline_then_resume_into_the_same_target(
    vault: tiervault.Vault, repo_path: Path, tmp_path: Path, form: str
) -> None:
    src = tmp_path / "src"
    rnd = random.Random(9)
    spec: dict[str, Any] = {f"d{i % 3}/f{i:02d}.bin": File(rnd.randbytes(900 * KiB)) for i in range(40)}
    spec["big.bin"] = File(rnd.randbytes(12 * MiB))
    point = await point_of(vault, src, spec)

    clock, timed = await timed_vault(repo_path)
    async with timed:
        whole = await timed.restore(point, tmp_path / "whole")  # no deadline: every range
        assert whole.ok and not whole.incomplete
        assert whole.stats.read_requests >= 10

        out = tmp_path / "out"
        deadline: float | datetime = BUDGET_SECONDS
        if form == "datetime":
            deadline = datetime.fromtimestamp(clock.now() + BUDGET_SECONDS, UTC)
        started = clock.monotonic()
        first = await timed.restore(point, out, deadline=deadline, verify=True)
        assert first.incomplete and first.ok, first.errors
        # reads start at 0, 10, 20 and 30 s; up to 3 more were already under way (4 packs at a time)
        assert 4 <= first.stats.read_requests <= 7 < whole.stats.read_requests
        assert clock.monotonic() - started == READ_SECONDS * first.stats.read_requests
        assert 0 < first.stats.files_written < first.stats.files
        assert leftovers(out) == [], "temporary files left behind"

        second = await timed.restore(point, out, verify=True)
    assert not second.incomplete and second.ok
    assert second.stats.files_unchanged >= first.stats.files_written, "finished files were written again"
    assert second.stats.files_written == second.stats.files - second.stats.files_unchanged
    assert_trees_equal(snapshot_tree(src), snapshot_tree(out))


@pytest.mark.parametrize("budget", [0.5, 1.0, 1.1])
async def test_a_budget_within_the_reserve_still_converges(
    vault: tiervault.Vault, repo_path: Path, tmp_path: Path, budget: float
) -> None:
    """A deadline of about a second or less gives a stop time of "now" (the reserve is at least 1 s):
    every run must still finish at least one file before it stops, so repeated runs converge."""
    src = tmp_path / "src"
    rnd = random.Random(11)
    spec: dict[str, Any] = {f"d{i % 2}/f{i:02d}.bin": File(rnd.randbytes(700 * KiB)) for i in range(16)}
    spec["big.bin"] = File(rnd.randbytes(10 * MiB))
    point = await point_of(vault, src, spec)

    out = tmp_path / "out"
    _clock, timed = await timed_vault(repo_path)
    async with timed:
        runs, written = 0, 0
        while True:
            runs += 1
            assert runs <= len(spec) + 1, "a run under the deadline made no progress"
            result = await timed.restore(point, out, deadline=budget, verify=True)
            assert result.ok, result.errors
            assert leftovers(out) == [], "temporary files left behind"
            if not result.incomplete:
                break
            assert result.stats.files_written >= 1, f"run {runs} finished no file"
            written += result.stats.files_written
        assert runs > 1, "the budget did not cut the first run short"
        assert result.stats.files_verified == len(spec)
    assert written + result.stats.files_written == len(spec)
    assert_trees_equal(snapshot_tree(src), snapshot_tree(out))


async def test_an_incomplete_run_verifies_what_it_finished_and_leaves_directory_metadata(
    vault: tiervault.Vault, repo_path: Path, tmp_path: Path
) -> None:
    """A run cut short verifies only the files it put in place (a hard link whose first name is not
    finished yet is not a verification failure) and leaves the directories' metadata to the run that
    completes the restore: a read-only directory applied early would keep the next run (as a user
    other than root) from writing the rest into it."""
    src = tmp_path / "src"
    spec: dict[str, Any] = {
        "0.bin": File(b"small"),  # finished first: the run then stops
        "a": Dir(mode=0o555),
        "a/first.bin": File(random.Random(3).randbytes(48 * MiB)),  # more ranges than one run reads
        "b/second": HardLink("a/first.bin"),
    }
    point = await point_of(vault, src, spec)

    out = tmp_path / "out"
    _clock, timed = await timed_vault(repo_path)
    async with timed:
        first = await timed.restore(point, out, deadline=1.0, verify=True)
        assert first.incomplete
        assert first.ok, first.errors
        assert first.stats.files_verified == first.stats.files_written == 1
        assert (out / "a").stat().st_mode & 0o7777 == 0o700, "directory metadata applied too early"
        second = await timed.restore(point, out, verify=True)
    assert second.ok and not second.incomplete
    assert second.stats.files_verified == 3
    assert_trees_equal(snapshot_tree(src), snapshot_tree(out))
