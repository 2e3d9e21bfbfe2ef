"""The writer side of garbage collection on Azurite: the heartbeat is a blob stored (and its
``Last-Modified`` read) before the writer reads ``gc/`` or an index file and deleted after the
snapshot; a pack a plan condemns is not referenced by the next point."""

from __future__ import annotations

from pathlib import Path

import pytest

import tiervault
from tests.azure.conftest import NO_RETRIES, azurite_url
from tests.e2e import KDF, PASSWORD
from tests.e2e.gcsim import chunks_of, condemn, locations, pack_names
from tests.support.azurite import Azurite
from tests.support.recording import RecordingBackend
from tiervault.backend.azure import AzureBackend
from tiervault.repo.repository import Repository

pytestmark = pytest.mark.usefixtures("no_unclosed_sessions")


async def test_heartbeat_and_condemned_packs_on_azurite(
    azurite: Azurite, azure_container: tuple[str, str], tmp_path: Path
) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"alpha\n" * 5000)
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 800)
    async with AzureBackend.from_url(azurite_url(azurite, azure_container[1], "repo"), **NO_RETRIES) as store:
        rec = RecordingBackend(store)
        vault = tiervault.Vault(await Repository.init(rec, PASSWORD.encode(), kdf=KDF))
        await vault.protect(src, name="src")
        rec.calls.clear()
        await vault.snapshot("src")
        beat = rec.names("put_if_absent", "locks/")[0]
        assert rec.first("put_if_absent", beat) < rec.first("stat", beat) < rec.first("list", "gc/")
        assert rec.first("stat", beat) < rec.first("list", "index/")
        assert [i.name async for i in store.list("locks/")] == []

        old = await pack_names(store)
        await condemn(store, old)
        second = await vault.snapshot("src")
        assert second.stats.files_reused == 0
        where = await locations(store)
        for cid in await chunks_of(store, second.point.id):
            assert where[cid] - old, f"chunk {cid.hex()[:12]} is only in a condemned pack"
        assert [i.name async for i in store.list("locks/")] == []
