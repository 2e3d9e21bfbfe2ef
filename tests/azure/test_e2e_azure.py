"""End to end on Azurite: the public API with ``azurite://127.0.0.1:PORT/CONTAINER[/PREFIX]``
addresses, real file trees, and the SDK to look at (and damage) what landed in the container.

Vaults that read back open with ``cache_dir=False``: every byte then comes from Azurite, not from the
disk tier the writing vault filled.
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob.aio import ContainerClient
from hypothesis import HealthCheck, given, settings

import tiervault
from tests.azure.conftest import NO_RETRIES, azurite_url, blob_names
from tests.e2e.test_roundtrip import trees
from tests.support.azurite import Azurite
from tests.support.trees import Dir, Entry, File, Symlink, assert_trees_equal, build_tree, snapshot_tree

pytestmark = pytest.mark.usefixtures("no_unclosed_sessions")

PASSWORD = "azure e2e correct horse"
KDF = tiervault.ScryptParams(log_n=10)  # fast key derivation: tests, not security
AZ = tiervault.AzureOptions(retry_total=0)  # Azurite: no SDK retries (tests/support/azurite.py)
KiB, MiB = 1 << 10, 1 << 20
PRELUDE = 24  # a pack's first blob starts right after its prelude


def init_vault(url: str, *, cache_dir: Any = False, **kwargs: Any) -> Any:
    return tiervault.init(url, password=PASSWORD, kdf=KDF, azure=AZ, cache_dir=cache_dir, **kwargs)


def open_vault(url: str, *, password: str = PASSWORD, cache_dir: Any = False) -> Any:
    return tiervault.open(url, password=password, azure=AZ, cache_dir=cache_dir)


@pytest.fixture
async def sdk_of(azurite: Azurite) -> AsyncIterator[Any]:
    """``sdk_of(container)``: an async SDK client of any container on the session's Azurite."""
    clients: list[ContainerClient] = []

    def make(container: str) -> ContainerClient:
        client = ContainerClient.from_connection_string(azurite.connection_string, container, **NO_RETRIES)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


def _spec(seed: int) -> dict[str, Entry]:
    rnd = random.Random(seed)
    return {
        "big.bin": File(rnd.randbytes(2 * MiB + 77)),
        "docs/report.txt": File(b"quarterly numbers\n" * 3000, mode=0o600),
        "docs/empty": File(b""),
        "docs/deep/er/leaf.bin": File(rnd.randbytes(40 * KiB)),
        "docs/link": Symlink(b"report.txt"),
        "void": Dir(mode=0o700),
        "ünïcödé name": File(b"unicode"),
    }


async def test_init_snapshot_incremental_restore_check(
    azurite: Azurite, new_container: str, sdk_of: Any, tmp_path: Path
) -> None:
    url = azurite_url(azurite, new_container)
    src = tmp_path / "src"
    build_tree(src, _spec(1))
    tree1 = snapshot_tree(src)
    async with init_vault(url, cache_dir=tmp_path / "cache") as vault:  # creates the container
        assert vault.location == url
        await vault.protect(src, name="app")
        first = await vault.snapshot("app")
        assert not first.partial and first.stats.files == 5
        # change the tree: one file rewritten, one added, one removed
        (src / "docs" / "report.txt").write_bytes(b"revised numbers\n" * 3000)
        (src / "new.bin").write_bytes(random.Random(2).randbytes(300 * KiB))
        (src / "docs" / "empty").unlink()
        tree2 = snapshot_tree(src)
        second = await vault.snapshot("app")
        assert second.point.parent == first.point.id
        assert (second.stats.files, second.stats.files_read) == (5, 2)  # the rest reused
    names = await blob_names(sdk_of(new_container))
    assert "config" in names
    assert {n.split("/")[0] for n in names} >= {
        "config",
        "keys",
        "items",
        "snapshots",
        "index",
        "data",
        "meta",
    }
    assert len([n for n in names if n.startswith("snapshots/")]) == 2

    async with open_vault(url) as vault:  # no disk tier: everything is read from Azurite
        for point, tree in ((first.point, tree1), (second.point, tree2)):
            out = tmp_path / f"out-{point.short_id}"
            result = await vault.restore(point.id, out, verify=True)
            assert result.ok, result.errors
            assert result.stats.files_verified == 5
            assert_trees_equal(tree, snapshot_tree(out))
        checked = await vault.check(read_data=True)
        assert checked.ok, checked.errors
        assert checked.snapshots == 2 and checked.packs_read == checked.packs > 0


@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(spec=trees())
def test_any_tree_round_trips_through_azurite(
    spec: dict[bytes, Entry], azurite: Azurite, azure_container: tuple[str, str]
) -> None:
    """Each example in a repository of its own, under its own prefix of one container."""
    url = azurite_url(azurite, azure_container[1], f"ex-{os.urandom(6).hex()}")

    async def roundtrip(workdir: str) -> None:
        src, dst = os.path.join(workdir, "src"), os.path.join(workdir, "dst")
        build_tree(src, spec)
        before = snapshot_tree(src)
        async with init_vault(url) as vault:
            await vault.protect(src, name="tree")
            point = (await vault.snapshot("tree")).point
        async with open_vault(url) as vault:
            result = await vault.restore(point, dst, verify=True)
            assert result.ok, result.errors
        assert_trees_equal(before, snapshot_tree(dst))

    with tempfile.TemporaryDirectory(prefix="tv-azure-") as workdir:
        asyncio.run(roundtrip(workdir))


async def test_dedup_adds_no_data_packs(container_url: str, sdk: ContainerClient, tmp_path: Path) -> None:
    build_tree(tmp_path / "src", _spec(3))
    build_tree(tmp_path / "copy", _spec(3))  # the same content at another path
    async with init_vault(container_url) as vault:
        await vault.protect(tmp_path / "src", name="src")
        await vault.protect(tmp_path / "copy", name="copy")
        first = await vault.snapshot("src")
        data = await blob_names(sdk, "data/")
        assert data and first.stats.packs_new >= 2
        again = await vault.snapshot("src", force_rehash=True)  # read again, chunked again
        copied = await vault.snapshot("copy")
        for result in (again, copied):
            assert result.stats.files_read == 5
            assert result.stats.bytes_new < 10 * KiB < result.stats.bytes_read  # new trees at most
        assert await blob_names(sdk, "data/") == data  # no data pack added
        assert len(await blob_names(sdk, "snapshots/")) == 3


async def test_two_vaults_snapshot_one_repository_at_once(
    container_url: str, sdk: ContainerClient, tmp_path: Path
) -> None:
    trees_ = {}
    async with init_vault(container_url) as vault:
        for name, seed in (("a", 4), ("b", 5)):
            build_tree(tmp_path / name, {**_spec(seed), "shared.bin": File(b"same in both" * 50_000)})
            trees_[name] = snapshot_tree(tmp_path / name)
            await vault.protect(tmp_path / name, name=name)
    async with open_vault(container_url) as one, open_vault(container_url) as two:
        ra, rb = await asyncio.gather(one.snapshot("a"), two.snapshot("b"))
    assert len(await blob_names(sdk, "index/")) >= 2  # one index file per writer session
    async with open_vault(container_url) as vault:
        checked = await vault.check(read_data=True)
        assert checked.ok, checked.errors
        assert sorted(p.id for p in await vault.points()) == sorted([ra.point.id, rb.point.id])
        for result, name in ((ra, "a"), (rb, "b")):
            out = tmp_path / f"out-{name}"
            assert (await vault.restore(result.point, out, verify=True)).ok
            assert_trees_equal(trees_[name], snapshot_tree(out))


async def test_wrong_password(container_url: str) -> None:
    async with init_vault(container_url):
        pass
    with pytest.raises(tiervault.WrongPasswordError):
        await open_vault(container_url, password="not the password")
    async with open_vault(container_url) as vault:
        assert await vault.points() == []


async def test_a_repository_under_a_prefix(
    azurite: Azurite, azure_container: tuple[str, str], sdk: ContainerClient, tmp_path: Path
) -> None:
    container = azure_container[1]
    app1, app2 = (azurite_url(azurite, container, f"team/app{i}") for i in (1, 2))
    build_tree(tmp_path / "src", _spec(6))
    tree = snapshot_tree(tmp_path / "src")
    async with init_vault(app1) as vault:
        assert vault.location == app1
        await vault.protect(tmp_path / "src", name="src")
        point = (await vault.snapshot("src")).point
    names = await blob_names(sdk)
    assert names and all(n.startswith("team/app1/") for n in names), names
    assert "team/app1/config" in names
    async with init_vault(app2) as other:  # a second repository in the same container
        assert other.repository_id
    with pytest.raises(tiervault.RepositoryNotFoundError):
        await open_vault(azurite_url(azurite, container))  # the container root holds no repository
    with pytest.raises(tiervault.RepositoryNotFoundError):
        await open_vault(azurite_url(azurite, container, "team"))
    async with open_vault(app1) as vault:
        await vault.restore(point, tmp_path / "out", verify=True)
        assert_trees_equal(tree, snapshot_tree(tmp_path / "out"))
        assert (await vault.check(read_data=True)).ok


async def test_opening_a_missing_container(azurite: Azurite, new_container: str, sdk_of: Any) -> None:
    url = azurite_url(azurite, new_container)
    with pytest.raises(tiervault.RepositoryNotFoundError, match="no tiervault repository") as info:
        await open_vault(url)
    assert url in str(info.value)
    cause = info.value.__cause__
    assert isinstance(cause, tiervault.ObjectNotFoundError)
    assert f"container '{new_container}' does not exist" in str(cause)
    # init without creating the container says what is missing, and creates nothing
    with pytest.raises(tiervault.ObjectNotFoundError, match=f"container '{new_container}' does not exist"):
        await init_vault(url, create_container=False)
    assert not await sdk_of(new_container).exists()


async def test_a_corrupted_data_pack(container_url: str, sdk: ContainerClient, tmp_path: Path) -> None:
    build_tree(tmp_path / "src", {"a.bin": File(random.Random(7).randbytes(300 * KiB))})
    async with init_vault(container_url) as vault:
        await vault.protect(tmp_path / "src", name="src")
        point = (await vault.snapshot("src")).point
    (pack,) = await blob_names(sdk, "data/")
    damaged = bytearray(await (await sdk.download_blob(pack)).readall())
    damaged[PRELUDE + 100] ^= 0x5A
    await sdk.upload_blob(pack, bytes(damaged), overwrite=True)

    async with open_vault(container_url) as vault:
        with pytest.raises(tiervault.IntegrityError) as info:
            await vault.restore(point, tmp_path / "out")
        assert info.value.name == pack
        assert pack in str(info.value)
        checked = await vault.check(read_data=True)
        assert not checked.ok
        assert [e["object"] for e in checked.errors] == [pack], checked.errors
        assert [e.name for e in await vault.ls(point)] == ["a.bin"]  # metadata is intact


async def test_default_pack_size_is_16_mib_on_azure_and_8_mib_on_a_local_disk(
    container_url: str, tmp_path: Path
) -> None:
    async with tiervault.init(container_url, password=PASSWORD, kdf=KDF) as remote:
        assert remote._repo.pack_size == 16 << 20
    async with tiervault.init(tmp_path / "local", password=PASSWORD, kdf=KDF) as local:
        assert local._repo.pack_size == 8 << 20
    async with tiervault.init(tmp_path / "chosen", password=PASSWORD, kdf=KDF, pack_size=4 << 20) as chosen:
        assert chosen._repo.pack_size == 4 << 20
    async with tiervault.open(tmp_path / "local", password=PASSWORD) as again:
        assert again._repo.pack_size == 8 << 20  # a property of the repository, kept in its config
