"""The Azurite test infrastructure (``tests/support/azurite.py``): the right emulator, reachable with
the SDK's defaults, with the behaviours the Azure backend relies on, and a crash it survives."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.core.pipeline.transport import AsyncHttpTransport
from azure.storage.blob import BlobServiceClient, ContainerClient

from tests.support.azurite import (
    AZURITE_VERSION,
    NODE_MAJOR,
    REPO_ROOT,
    Azurite,
    installed_versions,
    node_binary,
)


def test_the_installed_and_running_versions(azurite: Azurite) -> None:
    package = json.loads((azurite.cache_dir / "node_modules" / "azurite" / "package.json").read_text())
    assert package["version"] == AZURITE_VERSION == "3.37.0"
    node_version = subprocess.run(
        [str(node_binary(azurite.cache_dir)), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert node_version.startswith(f"v{NODE_MAJOR}.")
    assert installed_versions(azurite.cache_dir) == {"azurite": AZURITE_VERSION, "node": node_version}
    assert azurite.server_header == f"Azurite-Blob/{AZURITE_VERSION}"  # the process answering
    assert azurite.blob_endpoint == f"http://127.0.0.1:{azurite.port}/devstoreaccount1"


def test_service_properties_with_the_sdks_default_api_version(azurite: Azurite) -> None:
    """The SDK sends an API version newer than any Azurite knows: ``--skipApiVersionCheck`` lets it."""
    with BlobServiceClient.from_connection_string(azurite.connection_string, retry_total=0) as client:
        properties = client.get_service_properties()
        assert client.api_version  # the SDK's newest, not pinned
    assert "cors" in properties


def test_put_without_overwrite_on_an_existing_blob_raises_resource_exists(
    azure_container: tuple[str, str],
) -> None:
    connection_string, container = azure_container
    with ContainerClient.from_connection_string(connection_string, container, retry_total=0) as client:
        client.upload_blob("data/ab/ab12", b"first", overwrite=False)
        with pytest.raises(ResourceExistsError):
            client.upload_blob("data/ab/ab12", b"second", overwrite=False)
        assert client.download_blob("data/ab/ab12").readall() == b"first"


async def test_blob_batch_delete_with_the_async_sdk(azure_container: tuple[str, str]) -> None:
    """Blob Batch through the async SDK: Azurite 3.35 answers it with 400 InvalidInput, 3.37 works."""
    from azure.storage.blob.aio import ContainerClient as AsyncContainerClient

    transport = _async_transport()
    connection_string, container = azure_container
    names = [f"data/{i:02x}/pack-{i}" for i in range(5)]
    async with AsyncContainerClient.from_connection_string(
        connection_string, container, transport=transport, retry_total=0
    ) as client:
        for name in [*names, "keep"]:
            await client.upload_blob(name, name.encode(), overwrite=False)
        responses = [response async for response in await client.delete_blobs(*names)]
        assert [response.status_code for response in responses] == [202] * len(names)
        assert [blob.name async for blob in client.list_blobs()] == ["keep"]


def _async_transport() -> AsyncHttpTransport[Any, Any] | None:
    """The SDK's default async transport (aiohttp) when installed, else one on ``requests``."""
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        from azure.core.pipeline.transport import AsyncioRequestsTransport

        transport: AsyncHttpTransport[Any, Any] = AsyncioRequestsTransport()
        return transport
    return None


def test_kill_then_restart_keeps_what_was_persisted(fresh_azurite: Azurite) -> None:
    server = fresh_azurite
    port, pid = server.port, server.pid
    name = server.make_container()
    with ContainerClient.from_connection_string(server.connection_string, name, retry_total=0) as client:
        client.upload_blob("snapshots/1", b"before the crash" * 1000)
    server.wait_persisted(name, ["snapshots/1"])  # Azurite saves its metadata on a 5 s timer
    server.kill()
    assert not server.running
    with pytest.raises(OSError):  # nothing listens any more
        _connect(port)
    server.restart()
    assert (server.port, server.running) == (port, True)
    assert server.pid != pid
    with ContainerClient.from_connection_string(server.connection_string, name, retry_total=0) as client:
        assert client.download_blob("snapshots/1").readall() == b"before the crash" * 1000
        client.upload_blob("snapshots/2", b"after the restart")


def test_graceful_restart_keeps_everything_at_once(fresh_azurite: Azurite) -> None:
    server = fresh_azurite
    name = server.make_container()
    with ContainerClient.from_connection_string(server.connection_string, name, retry_total=0) as client:
        client.upload_blob("index/1", b"just written")
    server.restart()  # SIGINT: Azurite saves its metadata before it exits
    assert server.last_exit == 0, f"Azurite did not exit by itself on SIGINT ({server.last_exit})"
    with ContainerClient.from_connection_string(server.connection_string, name, retry_total=0) as client:
        assert client.download_blob("index/1").readall() == b"just written"


def test_azurite_ends_when_the_process_that_started_it_is_killed(azurite: Azurite, tmp_path: Path) -> None:
    """No finalizer runs after a SIGKILL: the watchdog inside node ends the orphan by itself."""
    script = REPO_ROOT / "tests" / "support" / "azurite.py"
    runner = subprocess.Popen(
        [sys.executable, str(script), "--cache-dir", str(azurite.cache_dir), "run",
         "--location", str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        assert runner.stdout is not None
        line = runner.stdout.readline()
        assert line, "`azurite.py run` exited without starting Azurite (its stderr is above)"
        started = json.loads(line)
        _connect(started["port"])  # it listens
    finally:
        runner.kill()
        runner.wait()
    deadline = time.monotonic() + 10
    while _alive(started["pid"]):
        assert time.monotonic() < deadline, f"Azurite (pid {started['pid']}) outlived its parent"
        time.sleep(0.1)


def _connect(port: int) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for a reaper does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_the_fixture_gives_each_test_an_empty_container_of_its_own(
    azurite: Azurite, azure_container: tuple[str, str]
) -> None:
    connection_string, container = azure_container
    assert connection_string == azurite.connection_string
    assert container.startswith("test-the-fixture-gives")
    with ContainerClient.from_connection_string(connection_string, container, retry_total=0) as client:
        assert [blob.name for blob in client.list_blobs()] == []
