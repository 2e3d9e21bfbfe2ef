"""Fixtures shared by the whole test suite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support import FakeClock, azure_skips
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


def pytest_report_header(config: pytest.Config) -> list[str]:
    """At session start: whether the Azure tests can run here, and what happens if not."""
    line, _warning = azure_skips.session_notice()
    return [line]


def pytest_configure(config: pytest.Config) -> None:
    line, warning = azure_skips.session_notice()
    if warning:  # also in the warnings summary at the end, where it cannot be missed
        config.issue_config_time_warning(pytest.PytestWarning(line), stacklevel=2)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """A banner, after pytest's own summary, counting the Azure tests that were skipped and why."""
    azure_skips.report_skips(terminalreporter)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """One Azurite 3.37.0 blob service for the whole session (``tests/support/azurite.py``).

    Installed into ``.cache/azurite`` on first use if ``nox -s tests`` has not done it yet.
    ``TIERVAULT_TEST_AZURITE=0`` skips every test that uses it. If it cannot be installed or started,
    the tests that use it fail in CI (``CI=true``) or with ``TIERVAULT_TEST_AZURITE=1``, and are
    skipped elsewhere: loudly (``tests/support/azure_skips.py``: a notice at session start, a banner
    with their number and the reason at the end). Tests that kill or restart Azurite use
    ``fresh_azurite``.
    """
    if azure_skips.disabled():
        azure_skips.skip_disabled()
    with sigterm_as_keyboard_interrupt():
        server = Azurite(tmp_path_factory.mktemp("azurite") / "data")
        try:
            server.start()
        except (AzuriteError, OSError) as exc:
            server.kill()
            azure_skips.skip_or_fail(f"Azurite could not be installed or started: {exc}")
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
