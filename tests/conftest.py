"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support import FakeClock
from tests.support.azurite import Azurite, AzuriteError, sigterm_as_keyboard_interrupt, unique_container_name
from tests.support.memory import MemoryBackend
from tiervault.backend.local import LocalBackend


@pytest.fixture(autouse=True)
def _isolated_cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own default disk-tier directory (``$TIERVAULT_CACHE_DIR``, inherited by
    subprocesses), so no test reads another's cache or writes into the home directory."""
    monkeypatch.setenv("TIERVAULT_CACHE_DIR", str(tmp_path_factory.mktemp("tv-cache")))


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


# ------------------------------------------------------------------------------------ Azurite


def _azurite_required() -> bool:
    """Whether a failure to install or start Azurite fails the tests (CI, or asked) or skips them."""
    if os.environ.get("TIERVAULT_TEST_AZURITE", "").strip() == "1":
        return True
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """One Azurite 3.37.0 blob service for the whole session (``tests/support/azurite.py``).

    Installed into ``.cache/azurite`` on first use if ``nox -s tests`` has not done it yet.
    ``TIERVAULT_TEST_AZURITE=0`` skips every test that uses it. If it cannot be installed or started,
    the tests that use it fail in CI (``CI=true``) or with ``TIERVAULT_TEST_AZURITE=1``, and are
    skipped, with the reason, elsewhere. Tests that kill or restart Azurite use ``fresh_azurite``.
    """
    if os.environ.get("TIERVAULT_TEST_AZURITE", "").strip() == "0":
        pytest.skip("Azure tests disabled by TIERVAULT_TEST_AZURITE=0")
    with sigterm_as_keyboard_interrupt():
        server = Azurite(tmp_path_factory.mktemp("azurite") / "data")
        try:
            server.start()
        except (AzuriteError, OSError) as exc:
            server.kill()
            message = f"Azurite could not be installed or started: {exc}"
            if _azurite_required():
                pytest.fail(
                    f"{message}\n(required here: CI is set, or TIERVAULT_TEST_AZURITE=1)", pytrace=False
                )
            pytest.skip(f"{message} (TIERVAULT_TEST_AZURITE=1 makes this an error, =0 skips quietly)")
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def azure_container(azurite: Azurite, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """``(connection_string, container_name)``: a fresh, empty container on the session's Azurite,
    deleted after the test (with its blobs)."""
    name = unique_container_name(request.node.name)
    azurite.make_container(name)
    try:
        yield azurite.connection_string, name
    finally:
        if not azurite.running:  # a test killed the shared Azurite: bring it back for the next ones
            azurite.restart()
        azurite.delete_container(name)


@pytest.fixture
def fresh_azurite(azurite: Azurite, tmp_path: Path) -> Iterator[Azurite]:
    """An Azurite of the test's own (own port, data under ``tmp_path``), stopped after the test: for
    tests that ``kill()``, ``stop()`` or ``restart()`` it. Same skip/fail rules as ``azurite``."""
    with Azurite(tmp_path / "azurite", cache_dir=azurite.cache_dir) as server:
        yield server
