"""Fixtures of the end-to-end tests: a fresh repository on local disk per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import tiervault
from tests.e2e import init_vault


@pytest.fixture
def repo_path(tmp_path: Path) -> Path:
    return tmp_path / "repo"


@pytest.fixture
async def vault(repo_path: Path) -> AsyncIterator[tiervault.Vault]:
    """A freshly initialised repository at ``repo_path``, opened with ``tests.e2e.PASSWORD``."""
    async with init_vault(repo_path) as v:
        yield v
