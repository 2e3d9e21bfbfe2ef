"""A prune killed with SIGKILL (a real process, killed by itself at a chosen request through
``tests/support/killer.py``) before, during and after deletion, repack and consolidation: the
repository passes check, every remaining point restores exactly, and the next prunes finish the job
(docs/format.md, "A prune killed (SIGKILL) at each step")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tiervault
from tests.e2e import KDF, PASSWORD
from tests.prune.helpers import SMALL_CHUNKS, noise, restore_matches, tail_changed, write_files
from tests.support import FakeClock
from tests.support.trees import Snapshot, snapshot_tree
from tiervault.backend.local import LocalBackend
from tiervault.prune import prune
from tiervault.repo.repository import Repository

WT = Path(__file__).resolve().parents[2]


def _age(repo_path: Path, prefix: str, seconds: float) -> None:
    """Set back the store time (mtime) of every object under ``prefix``: the stored state ages,
    the rule under test is untouched."""
    past = time.time() - seconds
    for p in (repo_path / prefix).rglob("*"):
        if p.is_file() and not p.name.startswith(".tmp-"):
            os.utime(p, (past, past))


def _kill_run(repo_path: Path, method: str, prefix: str, nth: int) -> int:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(WT / "src"), str(WT)]))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.prune.kill_driver", str(repo_path), method, prefix, str(nth)],
        check=False,
        cwd=WT,
        env=env,
        capture_output=True,
        timeout=300,
    )
    return proc.returncode


def _backend(repo_path: Path) -> LocalBackend:
    # the killed prune's lease lapses within PRUNE_LEASE: this backend's lease clock is past it
    return LocalBackend(repo_path, clock=FakeClock(time.time() + 120))


async def _setup(repo_path: Path, src: Path) -> list[tuple[str, Snapshot]]:
    repo = await Repository.init(
        LocalBackend(repo_path), PASSWORD.encode(), pack_size=1 << 20, kdf=KDF, chunker=SMALL_CHUNKS
    )
    vault = tiervault.Vault(repo)
    write_files(src, {"shared.bin": noise(999, 200_000)})
    await vault.protect(src, name="src")
    points = []
    for i in range(4):
        files = {f"gen{i}.bin": noise(i, 300_000), "big.bin": tail_changed(i), "n.txt": f"{i}".encode()}
        write_files(src, files, remove="gen*.bin")
        points.append(((await vault.snapshot("src")).point.id, snapshot_tree(src)))
    await vault.forget(policy=tiervault.Policy(keep_last=2))
    return points[-2:]


async def _verify(repo_path: Path, points: list[tuple[str, Snapshot]], out: Path) -> None:
    """check passes (no index file names a deleted pack: swept packs leave the index first) and
    every point restores exactly, from a fresh open."""
    vault = tiervault.Vault(await Repository.open(_backend(repo_path), PASSWORD.encode()))
    result = await vault.check()
    assert result.ok, result
    for i, (pid, expected) in enumerate(points):
        await restore_matches(vault, pid, expected, out / f"r{i}")


async def _finish(repo_path: Path) -> None:
    """Prune again (aging the plans each time) until nothing is condemned any more."""
    for _ in range(4):
        _age(repo_path, "gc", 2 * 3600)
        repo = await Repository.open(_backend(repo_path), PASSWORD.encode())
        report = await prune(repo, clock=FakeClock(time.time() + 120))
        assert report.ok
        if not report.condemned and not report.deferred and not list((repo_path / "gc").glob("*")):
            return
    raise AssertionError("four prunes did not finish the job")


# (kill point, method, prefix, nth, whether a first prune ran before: the kill is in the sweep)
POINTS = [
    ("sweep-before-gone", "put_if_absent", "gc/", 1, True),
    ("sweep-after-gone", "delete", "data/", 1, True),
    ("sweep-during-deletes", "delete", "data/", 2, True),
    ("sweep-before-plan-delete", "delete", "gc/", 1, True),
    ("repack-before-index", "put_if_absent", "index/", 1, False),
    ("repack-during-packs", "put_if_absent", "data/", 1, False),
    ("before-plan", "put_if_absent", "gc/", 1, False),
    ("consolidation-before-deletes", "delete", "index/", 1, False),
    ("consolidation-during-deletes", "delete", "index/", 2, False),
]


@pytest.mark.parametrize(
    ("point", "method", "prefix", "nth", "condemned_first"), POINTS, ids=[p[0] for p in POINTS]
)
async def test_prune_killed_at_a_request(
    tmp_path: Path, point: str, method: str, prefix: str, nth: int, condemned_first: bool
) -> None:
    repo_path = tmp_path / "repo"
    points = await _setup(repo_path, tmp_path / "src")
    if condemned_first:
        first = await prune(await Repository.open(LocalBackend(repo_path), PASSWORD.encode()))
        assert first.condemned
        _age(repo_path, "gc", 2 * 3600)
    rc = _kill_run(repo_path, method, prefix, nth)
    assert rc == -signal.SIGKILL, f"{point}: the prune was not killed (exit {rc})"
    await _verify(repo_path, points, tmp_path / "after-kill")
    await _finish(repo_path)
    await _verify(repo_path, points, tmp_path / "after-finish")
