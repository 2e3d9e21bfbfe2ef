"""Fixtures of the Azure tests: addresses on the session's Azurite, SDK clients to look behind
tiervault's back, and a check that nothing leaves an aiohttp session open."""

from __future__ import annotations

import contextlib
import gc
import logging
import warnings
from collections.abc import AsyncIterator, Iterator

import pytest
from azure.storage.blob.aio import ContainerClient

from tests.support.azurite import Azurite, unique_container_name
from tiervault.backend.azure import AzureBackend

#: every client made against Azurite in these tests: no SDK retries (Azurite answers some unsupported
#: headers with 500, which the SDK's own policy would retry for many seconds)
NO_RETRIES = {"retry_total": 0}


def azurite_url(azurite: Azurite, container: str, prefix: str = "") -> str:
    """``azurite://127.0.0.1:PORT/CONTAINER[/PREFIX]``"""
    url = f"azurite://127.0.0.1:{azurite.port}/{container}"
    return f"{url}/{prefix}" if prefix else url


@pytest.fixture
def container_url(azurite: Azurite, azure_container: tuple[str, str], no_unclosed_sessions: None) -> str:
    """The address of a fresh, empty (existing) container."""
    return azurite_url(azurite, azure_container[1])


@pytest.fixture
def new_container(
    azurite: Azurite, request: pytest.FixtureRequest, no_unclosed_sessions: None
) -> Iterator[str]:
    """The name of a container that does not exist yet (deleted after the test if it was made)."""
    name = unique_container_name(request.node.name)
    yield name
    azurite.delete_container(name)


@pytest.fixture
async def sdk(azure_container: tuple[str, str], no_unclosed_sessions: None) -> AsyncIterator[ContainerClient]:
    """The async SDK's client of the test's container, to see and change blobs directly."""
    connection_string, container = azure_container
    async with ContainerClient.from_connection_string(connection_string, container, **NO_RETRIES) as client:
        yield client


@pytest.fixture
async def backend(container_url: str) -> AsyncIterator[AzureBackend]:
    """An ``AzureBackend`` on the test's container."""
    async with AzureBackend.from_url(container_url, **NO_RETRIES) as b:
        yield b


async def blob_names(client: ContainerClient, prefix: str = "") -> list[str]:
    return sorted([b.name async for b in client.list_blobs(name_starts_with=prefix or None)])


class _Unclosed(logging.Handler):
    """Collects what aiohttp reports about a session or connector garbage-collected while open (it
    tells the event loop's exception handler, which logs to ``asyncio``)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "Unclosed" in record.getMessage():
            self.found.append(record.getMessage())


@contextlib.contextmanager
def unclosed_sessions() -> Iterator[list[str]]:
    """Inside: what is reported as unclosed (also what garbage collection at the end finds)."""
    handler = _Unclosed()
    logger = logging.getLogger("asyncio")
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)  # the same news, reported by the log
            yield handler.found
            gc.collect()
    finally:
        logger.removeHandler(handler)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "leaks_on_purpose: exempt from the no_unclosed_sessions check")


@pytest.fixture
def no_unclosed_sessions(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if it leaves an aiohttp session (or connector) unclosed. The fixtures that give
    a test Azurite containers use it (a garbage collection per test costs some time)."""
    with unclosed_sessions() as found:
        yield
    if request.node.get_closest_marker("leaks_on_purpose") is None:
        assert not found, found
