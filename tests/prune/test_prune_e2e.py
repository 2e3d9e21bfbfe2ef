"""prune end to end on real repositories (written through the real writer) on a MemoryBackend whose
store times follow a FakeClock: condemn, sweep after GRACE, bytes reclaimed, every remaining point
restores exactly and check passes."""

from __future__ import annotations

from pathlib import Path

import tiervault
from tests.prune.helpers import (
    after_grace,
    memory_vault,
    noise,
    restore_matches,
    stored_bytes,
    write_files,
)
from tests.support import FakeClock, MemoryBackend
from tests.support.trees import Snapshot, snapshot_tree
from tiervault.prune import prune
from tiervault.repo.repository import Repository


async def _history(vault: tiervault.Vault, src: Path, n: int) -> list[tuple[str, Snapshot]]:
    """``n`` points, each replacing one 300 KiB file and keeping a shared one."""
    write_files(src, {"shared.bin": noise(999, 200_000)})
    await vault.protect(src, name="src")
    out = []
    for i in range(n):
        files = {f"gen{i}.bin": noise(i, 300_000), "sub/note.txt": f"note {i}\n".encode()}
        write_files(src, files, remove="gen*.bin")
        res = await vault.snapshot("src")
        out.append((res.point.id, snapshot_tree(src)))
    return out


async def test_forget_then_prune_condemns_then_sweeps_after_grace(tmp_path: Path) -> None:
    clock = FakeClock()
    vault, repo = await memory_vault(clock)
    backend = repo.backend
    assert isinstance(backend, MemoryBackend)
    points = await _history(vault, tmp_path / "src", 5)
    await vault.forget(policy=tiervault.Policy(keep_last=2))
    before = stored_bytes(backend)

    first = await prune(repo, clock=clock)
    assert first.ok and first.condemned and not first.swept
    assert stored_bytes(backend) >= before  # nothing deleted by the first run
    assert first.bytes_next > 0

    clock.advance(60)
    early = await prune(repo, clock=clock)  # too early: the plan waits for GRACE
    assert not early.swept and early.deferred and early.deferred[0].until is not None

    after_grace(clock)
    second = await prune(repo, clock=clock)
    assert second.ok and second.swept
    assert second.bytes_freed > 0
    assert stored_bytes(backend) < before
    assert not any(n.startswith("locks/") and n != "locks/prune" for n in backend.objects)

    fresh = tiervault.Vault(await Repository.open(backend, b"e2e correct horse"), clock=clock)
    assert (await fresh.check()).ok
    for i, (pid, expected) in enumerate(points[-2:]):
        await restore_matches(fresh, pid, expected, tmp_path / f"out{i}")
    assert {p.id for p in await fresh.points()} == {p for p, _ in points[-2:]}
