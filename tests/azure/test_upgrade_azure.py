"""Upgrading to format version 2 on Azurite (docs/format.md, "Upgrading to version 2"): ``config.next``
is an ordinary blob name there too; a whole upgrade, and one killed after step 2 (``config`` deleted,
``config.next`` stored) that a read-only open reads from and the next snapshot finishes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tiervault
from tests.azure.conftest import NO_RETRIES, azurite_url
from tests.support.azurite import Azurite
from tiervault.backend.azure import AzureBackend
from tiervault.core.crypto import object_hash
from tiervault.core.format.keyfile import CONFIG_NEXT_NAME, upgraded_config
from tiervault.repo.repository import Repository

pytestmark = pytest.mark.usefixtures("no_unclosed_sessions")

PASSWORD = "azure upgrade correct horse"
KDF = tiervault.ScryptParams(log_n=10)
AZ = tiervault.AzureOptions(retry_total=0)


def _source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"alpha\n" * 5000)
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 800)
    return src


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("killed_after_step_2", [False, True])
async def test_upgrade_on_azurite(
    azurite: Azurite, azure_container: tuple[str, str], tmp_path: Path, killed_after_step_2: bool
) -> None:
    url = azurite_url(azurite, azure_container[1], "repo")
    src = _source(tmp_path)
    async with AzureBackend.from_url(url, **NO_RETRIES) as backend:
        await Repository.init(backend, PASSWORD.encode(), kdf=KDF, version=1)
        v1 = await backend.get("config")
    async with tiervault.open(url, password=PASSWORD, azure=AZ, cache_dir=False) as v:
        await v.protect(src, name="docs")
        point = (await v.snapshot("docs")).point
        if not killed_after_step_2:
            result = await v.upgrade()
            assert result.upgraded and result.upgraded_from == object_hash(v1)
    if killed_after_step_2:
        async with AzureBackend.from_url(url, **NO_RETRIES) as backend:
            assert await backend.put_if_absent(CONFIG_NEXT_NAME, upgraded_config(v1))
            await backend.delete("config")
        async with tiervault.open(url, password=PASSWORD, azure=AZ, cache_dir=False) as v:
            await v.restore(point.id, tmp_path / "read")
            assert _tree(tmp_path / "read") == _tree(src)
            await v.snapshot("docs")  # finishes steps 3 and 4
    async with AzureBackend.from_url(url, **NO_RETRIES) as backend:
        names = sorted([i.name async for i in backend.list("config")])
        assert names == ["config"]
        doc = json.loads(await backend.get("config"))
        assert doc["version"] == 2 and doc["upgraded_from"] == object_hash(v1)
    async with tiervault.open(url, password=PASSWORD, azure=AZ, cache_dir=False) as v:
        assert v._repo.format_version == 2
        await v.restore(point.id, tmp_path / "after", verify=True)
        assert (await v.check(read_data=True)).ok
    assert _tree(tmp_path / "after") == _tree(src)
