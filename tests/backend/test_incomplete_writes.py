"""Leftovers of unfinished writes: what a writer SIGKILLed inside ``put_if_absent`` leaves behind,
how ``list_incomplete`` reports it and when ``delete_incomplete`` removes it (by the fake clock)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support import FakeClock, MemoryBackend

import tiervault
from tiervault.backend.base import Backend
from tiervault.backend.local import LocalBackend
from tiervault.backend.local.files import Disk
from tiervault.backend.retry import RetryingBackend
from tiervault.cache import CacheBackend
from tiervault.repo.cachepolicy import REPOSITORY_CACHE_POLICY

#: a child that stores one object and is SIGKILLed after writing its temp file, before linking it
_KILLED_PUT = (
    "import asyncio, os, signal, sys\n"
    "from tiervault.backend.local import LocalBackend\n"
    "os.link = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)  # the kill lands here\n"
    "asyncio.run(LocalBackend(sys.argv[1]).put_if_absent(sys.argv[2], b'x' * int(sys.argv[3])))\n"
)


def killed_put(root: Path, name: str, size: int) -> Path:
    """Run a real writer that dies mid-put; return the temp file it left."""
    src = str(Path(tiervault.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    before = set(root.rglob(".tmp-*"))
    argv = [sys.executable, "-c", _KILLED_PUT, str(root), name, str(size)]
    proc = subprocess.run(argv, env=env, check=False)
    assert proc.returncode == -signal.SIGKILL
    (left,) = set(root.rglob(".tmp-*")) - before
    return left


async def test_a_killed_writers_temp_file_is_listed_and_removed_only_when_old(tmp_path: Path) -> None:
    root = tmp_path / "store"
    left = killed_put(root, "data/ab/ab12", 5000)
    assert left.parent == root / "data" / "ab"
    clock = FakeClock(start=left.stat().st_mtime)
    store = LocalBackend(root, clock=clock)
    assert [i.name async for i in store.list("")] == []  # never an object
    (info,) = [i async for i in store.list_incomplete()]
    assert info.name == f"data/ab/{left.name}" and info.size == 5000
    clock.advance(3599)
    assert list(await store.delete_incomplete(older_than=3600)) == []  # young: it may be a live write
    assert left.exists()
    clock.advance(2)
    (removed,) = await store.delete_incomplete(older_than=3600)
    assert removed == info
    assert not left.exists()
    assert [i async for i in store.list_incomplete()] == []
    assert await store.put_if_absent("data/ab/ab12", b"done") is True  # the name was never taken


async def test_a_refreshed_temp_file_is_kept(tmp_path: Path) -> None:
    """A writer still writing keeps refreshing its file's mtime: the age counts from the last write."""
    root = tmp_path / "store"
    old = killed_put(root, "snapshots/s1", 10)
    live = killed_put(root, "data/cd/cd34", 10)
    clock = FakeClock(start=old.stat().st_mtime + 7200)
    os.utime(live, (clock.now() - 5, clock.now() - 5))  # written to 5 s ago
    store = LocalBackend(root, clock=clock)
    removed = await store.delete_incomplete(older_than=3600)
    assert [r.name for r in removed] == [f"snapshots/{old.name}"]
    assert live.exists() and not old.exists()


async def test_sidecar_temp_files_are_leftovers_too(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = LocalBackend(root, clock=FakeClock())
    await store.put_if_absent("data/x", b"x")
    # the same helper every write uses, for a tier sidecar, left behind as by a kill before rename
    left = Path(Disk(str(root), fsync=True).write_temp(str(root / ".tv-tiers" / "data"), b'{"tier":'))
    assert [i.name async for i in store.list_incomplete()] == [f".tv-tiers/data/{left.name}"]


@pytest.mark.parametrize("wrap", ["retry", "cache"])
async def test_the_decorators_pass_leftovers_through(tmp_path: Path, wrap: str) -> None:
    clock = FakeClock()
    inner = MemoryBackend(clock=clock)
    inner.leave_incomplete("data/.tmp-1", b"abc")
    outer: Backend = RetryingBackend(inner)
    if wrap == "cache":
        outer = CacheBackend(
            inner,
            tmp_path / "cache",
            policy=REPOSITORY_CACHE_POLICY,
            max_bytes=1 << 20,
            repository_key="k" * 16,
        )
    assert [(i.name, i.size) async for i in outer.list_incomplete()] == [("data/.tmp-1", 3)]
    assert list(await outer.delete_incomplete(older_than=10)) == []
    clock.advance(11)
    assert [i.name for i in await outer.delete_incomplete(older_than=10)] == ["data/.tmp-1"]
    assert inner.incomplete == {}
