"""Time-boxed snapshots: stop before the deadline, commit an incomplete point, resume from it.

Time is the vault's injected clock (``tiervault.open(..., clock=)``, a ``FakeClock``): the deadline
passes when the test moves the clock, from a ``Progress`` observer at a chosen amount of work. The
archiver's own deadline check runs unchanged.
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import tiervault
from tests.e2e import KDF, PASSWORD, KiB, MiB
from tests.support import FakeClock
from tests.support.trees import File, assert_trees_equal, build_tree, filter_tree, snapshot_tree


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def vault(repo_path: Path, clock: FakeClock) -> AsyncIterator[tiervault.Vault]:
    async with tiervault.init(repo_path, password=PASSWORD, kdf=KDF, clock=clock) as v:
        yield v


class AdvanceAfter(tiervault.Progress):
    """Moves the fake clock by ``seconds`` once ``nbytes`` of file content were read."""

    def __init__(self, clock: FakeClock, nbytes: int, seconds: float) -> None:
        super().__init__()
        self._clock, self._at, self._seconds, self._fired = clock, nbytes, seconds, False

    def add(self, files: int, nbytes: int) -> None:
        super().add(files, nbytes)
        with self.lock:
            fire = not self._fired and self.bytes_done >= self._at
            self._fired = self._fired or fire
        if fire:
            self._clock.advance(self._seconds)


async def test_deadline_commits_an_incomplete_point_and_the_next_run_resumes(
    vault: tiervault.Vault, tmp_path: Path, clock: FakeClock
) -> None:
    src = tmp_path / "src"
    rnd = random.Random(3)
    spec = {f"d{i % 4}/f{i:03d}.bin": File(rnd.randbytes(64 * KiB)) for i in range(120)}
    # last in walk order: had it been read first, its 6 MiB alone would pass the deadline before
    # any small file was done
    spec["zbig.bin"] = File(rnd.randbytes(6 * MiB))
    build_tree(src, spec)
    await vault.protect(src, name="src")

    # a 600 s budget stops taking work at 570 s (the reserve is 10%, at most 30 s): the clock jumps
    # there after 40 files' worth of bytes
    first = await vault.snapshot("src", deadline=600, progress=AdvanceAfter(clock, 40 * 64 * KiB, 570))
    assert first.incomplete and first.point.incomplete
    done = first.stats.files_read
    assert 0 < done < 121
    with pytest.raises(tiervault.NotFoundError):
        await vault.point("latest")  # an incomplete point is never "latest"
    [listed] = await vault.points()
    assert listed.incomplete

    # the incomplete point restores explicitly: exactly the files it holds
    part = tmp_path / "part"
    assert (await vault.restore(first.point, part, verify=True)).ok
    got = snapshot_tree(part)
    files = [p for p, e in got.items() if e["type"] == "file"]
    assert len(files) == done
    assert_trees_equal(
        filter_tree(snapshot_tree(src), lambda p: p in got and got[p]["type"] == "file"),
        filter_tree(got, lambda p: got[p]["type"] == "file"),
    )

    # 569 s of the next 600 pass during the run: still before it must stop, so it finishes
    second = await vault.snapshot("src", deadline=600, progress=AdvanceAfter(clock, 1, 569))
    assert not second.incomplete
    assert second.stats.files_reused == done, "files finished by the first run were read again"
    assert second.stats.files_read == 121 - done
    out = tmp_path / "out"
    assert (await vault.restore("latest", out, verify=True)).ok
    assert_trees_equal(snapshot_tree(src), snapshot_tree(out))
    assert (await vault.check(read_data=True)).ok


@pytest.mark.parametrize("deadline", [0.001, 0.5, 1.0])
async def test_short_deadlines_always_make_progress_and_converge(
    vault: tiervault.Vault, tmp_path: Path, deadline: float
) -> None:
    """A budget shorter than the reserve used to stop before the first file, every time: an empty
    incomplete point per run, forever. Each run now finishes at least one file."""
    src = tmp_path / "src"
    rnd = random.Random(4)
    spec = {f"d{i % 3}/f{i:02d}.bin": File(rnd.randbytes(rnd.randrange(1, 300 * KiB))) for i in range(12)}
    spec["big.bin"] = File(rnd.randbytes(3 * MiB))
    build_tree(src, spec)
    await vault.protect(src, name="src")
    runs = []
    while not runs or runs[-1].incomplete:
        assert len(runs) <= len(spec), "repeated runs under a short deadline do not converge"
        # the fake clock never moves: the deadline is past from the start of every run
        result = await vault.snapshot("src", deadline=deadline)
        assert result.stats.files_read >= 1, "a run under an accepted deadline finished no file"
        runs.append(result)
    assert sum(r.stats.files_read for r in runs) == len(spec)
    out = tmp_path / "out"
    assert (await vault.restore("latest", out, verify=True)).ok
    assert_trees_equal(snapshot_tree(src), snapshot_tree(out))


async def test_deadline_validation(vault: tiervault.Vault, tmp_path: Path, clock: FakeClock) -> None:
    (tmp_path / "src").mkdir()
    await vault.protect(tmp_path / "src", name="src")
    for bad in (0, -1, math.nan, math.inf, -math.inf):
        with pytest.raises(tiervault.UsageError):
            await vault.snapshot("src", deadline=bad)
    with pytest.raises(tiervault.UsageError):
        await vault.snapshot("src", deadline=datetime.now() + timedelta(minutes=1))  # naive
    now = datetime.fromtimestamp(clock.now(), UTC)
    with pytest.raises(tiervault.UsageError, match="passed"):
        await vault.snapshot("src", deadline=now - timedelta(seconds=1))  # by the vault's clock
    ok = await vault.snapshot("src", deadline=now + timedelta(minutes=5))
    assert not ok.incomplete
    assert await vault.points() == [ok.point]


@pytest.mark.parametrize(("deadline", "changing"), [(0.001, "first"), (1.0, "first"), (0.5, "every")])
async def test_short_deadlines_converge_while_files_keep_changing(
    vault: tiervault.Vault, tmp_path: Path, deadline: float, changing: str
) -> None:
    """An active log first in walk order, written before every run: under a short deadline each run
    used to re-read it, count it as progress and stop, so every run was incomplete with only that
    file. A run resuming from a checkpoint now stops only after a file the checkpoint does not hold,
    and a checkpoint never drops one its parent held: N files complete within N + 1 runs, even when
    every file changes before every run."""
    src = tmp_path / "src"
    rnd = random.Random(5)
    spec = {"a.log": File(b"start\n")}
    spec |= {f"d{i % 3}/f{i:02d}.bin": File(rnd.randbytes(rnd.randrange(1, 100 * KiB))) for i in range(9)}
    build_tree(src, spec)
    await vault.protect(src, name="src")
    held: set[str] = set()
    runs = 0
    while True:
        assert runs <= len(spec), "repeated runs under a short deadline do not converge"
        for path in [src / "a.log"] if changing == "first" else [src / p for p in spec]:
            path.write_bytes(path.read_bytes() + b"line %d\n" % runs)  # the fake clock never moves
        result = await vault.snapshot("src", deadline=deadline)
        runs += 1
        files = {e.path for e in await vault.ls(result.point, recursive=True) if e.type == "file"}
        assert held <= files, "a checkpoint dropped a file its parent held"
        assert result.incomplete or files == set(spec)
        if not result.incomplete:
            break
        assert len(files) > len(held), "an incomplete run added no file to its checkpoint"
        held = files
    out = tmp_path / "out"
    assert (await vault.restore("latest", out, verify=True)).ok
    assert_trees_equal(snapshot_tree(src), snapshot_tree(out))
