"""Cancelling a snapshot task stops the work it started: its reader and packer threads end before the
cancellation completes, no point is committed, and nothing is stored afterwards (issue 9, defect 10)."""

from __future__ import annotations

import asyncio
import random
import threading
from pathlib import Path

import tiervault
from tests.e2e import KiB, repo_listing
from tests.support.trees import File, assert_trees_equal, build_tree, snapshot_tree

WORKER_PREFIXES = ("tiervault-read", "tiervault-pack")


def _workers() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(WORKER_PREFIXES)]


class HoldFirstRead(tiervault.Progress):
    """Holds the first reader that reports bytes until ``release`` is set, and says so (``held``)."""

    def __init__(self) -> None:
        super().__init__()
        self.held, self.release = threading.Event(), threading.Event()
        self.calls_after_release = 0

    def add(self, files: int, nbytes: int) -> None:
        super().add(files, nbytes)
        if self.release.is_set():
            with self.lock:
                self.calls_after_release += 1
        elif nbytes and threading.current_thread().name.startswith("tiervault-read"):
            self.held.set()
            self.release.wait()


async def test_cancelling_a_snapshot_stops_its_threads_and_commits_nothing(
    vault: tiervault.Vault, repo_path: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    rnd = random.Random(21)
    build_tree(src, {f"d{i % 5}/f{i:03d}.bin": File(rnd.randbytes(200 * KiB)) for i in range(200)})
    await vault.protect(src, name="src")
    assert _workers() == []
    progress = HoldFirstRead()
    task = asyncio.ensure_future(vault.snapshot("src", progress=progress))
    await asyncio.to_thread(progress.held.wait)  # a reader is in the middle of the first file
    assert _workers(), "the archiver's threads were expected to be running"
    task.cancel()
    # runs after the task has seen its cancellation (callbacks run in the order they were scheduled)
    asyncio.get_running_loop().call_soon(progress.release.set)
    cancelled = False
    try:
        await task
    except asyncio.CancelledError:
        cancelled = True
    assert cancelled and task.cancelled()
    # the cancellation completed only once the work it started had stopped
    assert _workers() == [], "reader or packer threads still run after the cancellation completed"
    stored = repo_listing(repo_path)
    calls = progress.calls_after_release
    assert progress.files_done < 200
    assert await vault.points() == [], "a cancelled snapshot committed a point"

    # nothing more happens in the background: a later, complete snapshot finds the repository as
    # the cancellation left it, and reuses whatever the cancelled run had stored
    await asyncio.sleep(0)
    assert repo_listing(repo_path) == stored and progress.calls_after_release == calls
    done = await vault.snapshot("src")
    assert not done.incomplete and done.stats.files == 200
    out = tmp_path / "out"
    assert (await vault.restore(done.point, out, verify=True)).ok
    assert_trees_equal(snapshot_tree(src), snapshot_tree(out))
    assert (await vault.check(read_data=True)).ok
