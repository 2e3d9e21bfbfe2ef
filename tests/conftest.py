"""Fixtures shared by the whole test suite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support import FakeClock
from tests.support.memory import MemoryBackend
from tiervault.backend.local import LocalBackend


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock that stands still until the test calls ``advance``."""
    return FakeClock()


@pytest.fixture
async def memory_backend(fake_clock: FakeClock) -> AsyncIterator[MemoryBackend]:
    """An empty in-memory backend on ``fake_clock``."""
    async with MemoryBackend(clock=fake_clock) as backend:
        yield backend


@pytest.fixture
async def local_backend(tmp_path: Path, fake_clock: FakeClock) -> AsyncIterator[LocalBackend]:
    """An empty ``LocalBackend`` under ``tmp_path / "store"`` on ``fake_clock``, without fsync (fast)."""
    async with LocalBackend(tmp_path / "store", clock=fake_clock, fsync=False) as backend:
        yield backend
