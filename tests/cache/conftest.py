"""Fixtures of the disk-tier tests: the counting "cloud", a source tree, a cache directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cache import CountingBackend, Tally, random_tree
from tiervault import api
from tiervault.backend.base import Backend


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Tally:
    """Every backend ``tiervault.open``/``init`` build from now on is wrapped in a ``CountingBackend``
    (below the retry and cache layers, as the real store would be); the returned tally sums them."""
    tally = Tally()
    real = api._open_backend

    def counted(url: str, azure: api.AzureOptions | None) -> Backend:
        return CountingBackend(real(url, azure), tally)  # type: ignore[return-value]

    monkeypatch.setattr(api, "_open_backend", counted)
    return tally


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "src"
    random_tree(path)
    return path


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"
