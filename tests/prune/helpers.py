"""Shared helpers of the prune tests: a real repository (written through the real writer) on a
``MemoryBackend`` whose store times follow a ``FakeClock``, snapshots of changing trees, exact
restores, and a simulated live writer's heartbeat."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import tiervault
from tests.e2e import KDF, PASSWORD
from tests.support import FakeClock, MemoryBackend
from tests.support.trees import Snapshot, assert_trees_equal, snapshot_tree
from tiervault.backend.base import Backend
from tiervault.core.chunker import ChunkerParams
from tiervault.core.format.envelope import ObjectType
from tiervault.core.format.gcobjects import HeartbeatRecord
from tiervault.repo.gcstate import GRACE
from tiervault.repo.repository import Repository
from tiervault.repo.snapshots import datetime_iso

MiB = 1 << 20
#: small chunks (~48 KiB): one file's chunks share a pack, so a file whose tail changes between
#: points leaves a partly live pack once the older point is forgotten (deterministically)
SMALL_CHUNKS = ChunkerParams(min_size=16 << 10, avg_size=32 << 10, max_size=128 << 10)


async def memory_vault(
    clock: FakeClock, backend: Backend | None = None
) -> tuple[tiervault.Vault, Repository]:
    be = backend if backend is not None else MemoryBackend(clock=clock)
    repo = await Repository.init(be, PASSWORD.encode(), pack_size=MiB, kdf=KDF, chunker=SMALL_CHUNKS)
    return tiervault.Vault(repo, clock=clock), repo


async def reopen(repo: Repository, clock: FakeClock) -> tuple[tiervault.Vault, Repository]:
    """A fresh ``Repository`` over the same store (another process, in effect)."""
    fresh = await Repository.open(repo.backend, PASSWORD.encode())
    return tiervault.Vault(fresh, clock=clock), fresh


def write_files(root: Path, files: dict[str, bytes], *, remove: str | None = None) -> None:
    """Write ``files`` below ``root`` (created), after removing the files matching ``remove``."""
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob(remove) if remove else ():
        old.unlink()
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def tail_changed(i: int) -> bytes:
    """A 600 KB file whose first 400 KB stay and whose last 200 KB change with ``i``."""
    return noise(12345, 400_000) + noise(1000 + i, 200_000)


def noise(seed: int, n: int) -> bytes:
    """Incompressible bytes, deterministic per seed."""
    import random

    return random.Random(seed).randbytes(n)


def copy_tree(src: Path, dst: Path) -> None:
    import shutil

    shutil.copytree(src, dst, symlinks=True)


async def restore_matches(vault: tiervault.Vault, point: str, expected: Snapshot, out: Path) -> None:
    """Restore ``point`` into the new directory ``out``; it must equal ``expected`` exactly."""
    await vault.restore(point, out)
    assert_trees_equal(expected, snapshot_tree(out))


def stored_bytes(backend: MemoryBackend, prefixes: Sequence[str] = ("data/", "meta/")) -> int:
    return sum(len(o.data) for n, o in backend.objects.items() if n.startswith(tuple(prefixes)))


async def fake_writer_heartbeat(repo: Repository, *, seq: int = 0, started: str | None = None) -> str:
    """Simulate a live snapshot session on another host: its heartbeat in ``locks/``."""
    rec = HeartbeatRecord(
        os.urandom(16).hex(), seq, "snapshot", "otherhost", 4242, "u", "tiervault x", started
    )
    return await repo.objects.save_plain("locks/", ObjectType.HEARTBEAT, rec.to_bytes())


def after_grace(clock: FakeClock) -> None:
    clock.advance(GRACE.total_seconds() + 1)


__all__ = ["GRACE", "datetime_iso"]
