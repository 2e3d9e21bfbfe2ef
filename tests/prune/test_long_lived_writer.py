"""A long-lived process keeps its in-memory index between snapshots. Meanwhile other processes
forget its data and prune until the plan's GONE is retired, so the GC state is again what it was
when the process loaded its view. The next snapshot of the same data must not dedup against the
deleted packs: an equal GC state proves nothing once index files were consolidated away."""

from __future__ import annotations

from pathlib import Path

import tiervault
from tests.prune.helpers import memory_vault, noise, reopen, restore_matches, write_files
from tests.support import FakeClock
from tests.support.trees import snapshot_tree
from tiervault.repo.gcstate import load_gc_state

HOUR = 3600.0


async def test_a_long_lived_writer_never_dedups_against_packs_pruned_since_its_last_session(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    src = tmp_path / "src"
    write_files(src, {"a.bin": noise(1, 300_000), "b.bin": noise(2, 300_000)})
    long_lived, repo = await memory_vault(clock)
    await long_lived.protect(src, name="src")
    await long_lived.snapshot("src")  # its in-memory index now lists the packs of a.bin and b.bin

    other, other_repo = await reopen(repo, clock)
    write_files(src, {"c.bin": noise(3, 300_000)}, remove="*.bin")
    await other.snapshot("src")
    await other.forget("src", policy=tiervault.Policy(keep_last=1))
    deleted = 0
    for _ in range(8):  # condemn, sweep, unlist and retire the GONE: gc/ is empty again
        clock.advance(2 * HOUR)
        deleted += len((await other.prune()).swept)
        state = await load_gc_state(other_repo.backend, other_repo.objects)
        if deleted and not (state.plans or state.gones):
            break
    assert deleted and not (state.plans or state.gones), "the test needs a fully retired GC cycle"

    write_files(src, {"a.bin": noise(1, 300_000), "b.bin": noise(2, 300_000)}, remove="*.bin")
    point = (await long_lived.snapshot("src")).point
    fresh, _ = await reopen(repo, clock)
    report = await fresh.check()
    assert report.ok, report.errors
    await restore_matches(fresh, point.id, snapshot_tree(src), tmp_path / "out")
