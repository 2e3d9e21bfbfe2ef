"""What ``init`` and ``open`` decide from the backend's declared capabilities, on real stores."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.support.azurite import Azurite, unique_container_name

import tiervault
from tiervault.repo.repository import DEFAULT_PACK_SIZE, LOCAL_PACK_SIZE

PASSWORD = "stack correct horse"
KDF = tiervault.ScryptParams(log_n=10)  # fast key derivation: tests, not security


async def test_a_local_store_gets_local_packs_and_no_container(tmp_path: Path) -> None:
    async with tiervault.init(tmp_path / "repo", password=PASSWORD, kdf=KDF) as vault:
        assert vault._repo.pack_size == LOCAL_PACK_SIZE
        assert vault._repo.backend.capabilities.remote is False
        assert vault._cache is not None and vault._cache.enabled is False  # off by default, locally


async def test_a_remote_store_gets_its_container_and_larger_packs(
    azurite: Azurite, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    container = unique_container_name(request.node.name)
    url = f"azurite://127.0.0.1:{azurite.port}/{container}"
    options = tiervault.AzureOptions(retry_total=0)
    try:
        async with tiervault.init(
            url, password=PASSWORD, kdf=KDF, azure=options, cache_dir=tmp_path / "cache"
        ) as vault:  # the container did not exist: init created it (capabilities.create_container)
            assert vault._repo.pack_size == DEFAULT_PACK_SIZE
            assert vault._repo.backend.capabilities.remote is True
            assert vault._repo.put_needs_bytes is True
            assert vault._cache is not None and vault._cache.enabled
        async with tiervault.open(url, password=PASSWORD, azure=options, cache_dir=False) as vault:
            assert vault._repo.pack_size == DEFAULT_PACK_SIZE
    finally:
        await asyncio.to_thread(azurite.delete_container, container)
