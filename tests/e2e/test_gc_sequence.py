"""Property: any sequence of snapshots (at given times), forgets, prunes, store-time advances and
snapshots running *while* a prune runs leaves a repository that ``check`` accepts, in which every
remaining point restores exactly what was snapshotted, and whose kept points are exactly those an
independent GFS implementation (``tests.test_retention.oracle``) keeps.

On the memory backend store time is the ``FakeClock``; on the local backend it is file mtimes, and
"time passes" is done by moving every stored object's mtime back (the stored state an hour later).
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tiervault
from tests.e2e import KDF, PASSWORD
from tests.support import FakeClock, MemoryBackend
from tests.test_retention import P, oracle
from tiervault.backend.base import Backend
from tiervault.backend.local import LocalBackend
from tiervault.repo.repository import Repository
from tiervault.vault import Vault

BASE = datetime(2026, 1, 5, tzinfo=UTC)
PACK = 1 << 20  # the smallest pack size: a few files per pack, so packs end up partly live
ITEMS = ("a", "b")
#: the content of file slot k, variant v: incompressible, a few hundred KiB (one chunk each)
SIZES = (150_000, 260_000, 400_000, 90_000)

ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("snapshot"),
            st.sampled_from(ITEMS),
            st.integers(0, 40 * 24),
            st.lists(st.integers(0, 2), min_size=4, max_size=4),
        ),
        st.tuples(st.just("forget"), st.integers(1, 3), st.integers(0, 3)),
        st.tuples(st.just("prune")),
        st.tuples(st.just("advance"), st.sampled_from([0.5, 2.0])),
        st.tuples(
            st.just("concurrent"), st.sampled_from(ITEMS), st.lists(st.integers(0, 2), min_size=4, max_size=4)
        ),
    ),
    min_size=1,
    max_size=12,
)


def content(slot: int, variant: int) -> bytes:
    return random.Random(slot * 10 + variant).randbytes(SIZES[slot])


class Model:
    """What the repository must hold: every live point's files, and its retention facts."""

    def __init__(self) -> None:
        self.points: dict[str, tuple[P, dict[str, bytes]]] = {}

    def add(self, point: tiervault.RecoveryPoint, files: dict[str, bytes]) -> None:
        self.points[point.id] = (
            P(point.id, point.item, point.time, tuple(point.tags), point.incomplete),
            files,
        )

    def forget(self, policy: tiervault.Policy) -> set[str]:
        facts = [p for p, _ in self.points.values()]
        decided = oracle(facts, policy, None)
        removed = {pid for pid, (keep, _why) in decided.items() if not keep}
        for pid in removed:
            del self.points[pid]
        return removed


class Store:
    """One backend kind: how to open a second handle on the same store, and how time passes."""

    def __init__(self, kind: str, root: Path) -> None:
        self.kind, self.root = kind, root
        self.clock = FakeClock(BASE.timestamp() + 400 * 86400)
        self.memory = MemoryBackend(clock=self.clock) if kind == "memory" else None

    def backend(self) -> Backend:
        if self.memory is not None:
            return self.memory
        return LocalBackend(self.root / "repo", fsync=False)

    async def vault(self, *, create: bool = False) -> Vault:
        backend = self.backend()
        if create:
            repo = await Repository.init(backend, PASSWORD.encode(), kdf=KDF, pack_size=PACK)
        else:
            repo = await Repository.open(backend, PASSWORD.encode())
        return Vault(repo, clock=self.clock)

    def advance(self, hours: float) -> None:
        seconds = hours * 3600
        self.clock.advance(seconds)
        if self.memory is None:  # store time is the files' mtime: move the stored state back
            for path in (self.root / "repo").rglob("*"):
                if path.is_file():
                    st = path.stat()
                    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - int(seconds * 1e9)))


async def take(
    vault: Vault, root: Path, item: str, hours: int | None, variants: list[int], model: Model
) -> None:
    src = root / "src" / item
    src.mkdir(parents=True, exist_ok=True)
    files = {f"f{k}": content(k, v) for k, v in enumerate(variants) if v}
    for old in src.iterdir():
        if old.name not in files:
            old.unlink()
    for name, data in files.items():
        (src / name).write_bytes(data)
    when = None if hours is None else BASE + timedelta(hours=hours)
    result = await vault.snapshot(item, time=when)
    model.add(result.point, files)


async def verify(vault: Vault, root: Path, model: Model) -> None:
    result = await vault.check()
    assert result.ok, result.errors
    assert {p.id for p in await vault.points()} == set(model.points)
    for n, (pid, (_facts, files)) in enumerate(sorted(model.points.items())):
        out = root / "out" / str(n)
        restored = await vault.restore(pid, out)
        assert restored.ok, restored.errors
        assert {p.name: p.read_bytes() for p in out.iterdir()} == files, pid


async def run(kind: str, steps: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = Store(kind, root)
        model = Model()
        vault = await store.vault(create=True)
        for item in ITEMS:
            (root / "src" / item).mkdir(parents=True)
            await vault.protect(root / "src" / item, name=item)
        for step in steps:
            match step:
                case ("snapshot", item, hours, variants):
                    await take(vault, root, item, hours, variants, model)
                case ("forget", last, daily):
                    policy = tiervault.Policy(keep_last=last, keep_daily=daily)
                    decisions = await vault.forget(policy=policy)
                    expected_removed = model.forget(policy)
                    assert {d.id for d in decisions if not d.keep} == expected_removed
                case ("prune",):
                    await vault.prune()
                case ("advance", hours):
                    store.advance(hours)
                case ("concurrent", item, variants):
                    other = await store.vault()  # a second writer: its own index, its own heartbeat
                    await asyncio.gather(take(other, root, item, None, variants, model), vault.prune())
                    if store.memory is None:
                        await other.aclose()
        store.advance(2.0)
        await vault.prune()  # condemn what is left over,
        store.advance(2.0)
        await vault.prune()  # and sweep it
        await verify(vault, root, model)
        await vault.aclose()


@pytest.mark.parametrize("kind", ["memory", "local"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=ops)
def test_any_sequence_leaves_a_checked_repository_whose_points_restore(
    kind: str, steps: list[tuple[Any, ...]]
) -> None:
    asyncio.run(run(kind, steps))
