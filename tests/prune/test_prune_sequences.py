"""Random sequences of snapshot / forget / prune / time passing on a real repository (MemoryBackend
with a FakeClock): afterwards check passes and every remaining point restores exactly, and pruning
until nothing is pending leaves no pack that no point needs."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tiervault
from tests.e2e import PASSWORD
from tests.prune.helpers import after_grace, memory_vault, noise, restore_matches, write_files
from tests.support import FakeClock, MemoryBackend
from tests.support.trees import Snapshot, snapshot_tree
from tiervault.prune import prune
from tiervault.repo.gcstate import load_gc_state
from tiervault.repo.repository import Repository
from tiervault.repo.treewalk import referenced_chunks

steps = st.lists(
    st.one_of(
        st.tuples(st.just("snapshot"), st.integers(0, 5)),
        st.tuples(st.just("forget"), st.integers(1, 3)),
        st.tuples(st.just("prune"), st.floats(0.0, 0.5)),
        st.tuples(st.just("wait"), st.integers(0, 1)),
    ),
    min_size=3,
    max_size=10,
)


async def _run(ops: list[tuple[str, float]], root: Path) -> None:
    clock = FakeClock()
    vault, repo = await memory_vault(clock)
    backend = repo.backend
    assert isinstance(backend, MemoryBackend)
    src = root / "src"
    write_files(src, {"base.bin": noise(1, 50_000)})
    await vault.protect(src, name="src")
    expected: dict[str, Snapshot] = {}
    for n, (op, arg) in enumerate(ops):
        if op == "snapshot":
            write_files(src, {f"f{int(arg)}.bin": noise(n, 40_000 + 1000 * n)}, remove=f"f{int(arg)}.bin")
            res = await vault.snapshot("src")
            expected[res.point.id] = snapshot_tree(src)
        elif op == "forget":
            await vault.forget(policy=tiervault.Policy(keep_last=int(arg)))
        elif op == "prune":
            assert (await prune(repo, clock=clock, max_unused=float(arg))).ok
        elif arg:
            after_grace(clock)
        else:
            clock.advance(60)
    for _ in range(4):  # finish: every plan swept
        after_grace(clock)
        await prune(repo, clock=clock)
    fresh_repo = await Repository.open(backend, PASSWORD.encode())
    fresh = tiervault.Vault(fresh_repo, clock=clock)
    result = await fresh.check()
    assert result.ok, result
    points = {p.id for p in await fresh.points()}
    assert points <= set(expected)
    # space is reclaimed: once nothing is pending, every pack left holds a chunk some point needs
    assert not (await load_gc_state(backend, fresh_repo.objects)).condemned
    snaps = await fresh_repo.list_snapshots()
    live = await referenced_chunks(fresh_repo, [bytes.fromhex(s.tree) for s in snaps])
    stored = {n.rsplit("/", 1)[-1] for n in backend.objects if n.startswith(("data/", "meta/"))}
    for pid, entries in fresh_repo.index.entries_by_pack().items():
        if pid in stored:
            assert any(e.id in live for e in entries), f"pack {pid[:12]} holds nothing live"
    for i, pid in enumerate(sorted(points)):
        await restore_matches(fresh, pid, expected[pid], root / f"out{i}")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_random_sequences_keep_every_point_restorable(ops: list[tuple[str, float]]) -> None:
    with tempfile.TemporaryDirectory() as d:
        asyncio.run(_run(ops, Path(d)))
