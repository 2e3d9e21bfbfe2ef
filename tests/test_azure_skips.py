"""Azure tests never skip quietly: the real ``azurite`` fixture and hooks of ``tests/conftest.py``, run
by pytester on a tiny suite while Azurite cannot start, skip them with a banner (or fail in CI)."""

from __future__ import annotations

import pytest

from tests.support.azurite import Azurite, AzuriteError

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
"""
CONFTEST = """
from tests.conftest import azurite, pytest_configure, pytest_report_header, pytest_terminal_summary
"""
SUITE = """
def test_uses_azure_one(azurite): pass
def test_uses_azure_two(azurite): pass
def test_local(): pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    def cannot_start(self: Azurite) -> None:
        raise AzuriteError("node exploded")

    monkeypatch.setattr(Azurite, "start", cannot_start)  # Azurite is unavailable, nothing else changes
    for name in ("CI", "TIERVAULT_TEST_AZURITE"):
        monkeypatch.delenv(name, raising=False)
    pytester.makeini(INI)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(SUITE)
    return pytester


def test_outside_ci_they_are_skipped_with_a_banner(suite: pytest.Pytester) -> None:
    result = suite.runpytest_inprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "azurite: *",  # the session header says what to expect
            "*!!! 2 Azure tests SKIPPED: Azurite unavailable !!!*",
            "why: Azurite could not be installed or started: node exploded*",
            "SKIPPED [[]1[]] *:1: Azurite unavailable: Azurite could not be installed or started: node*",
            "SKIPPED [[]1[]] *:2: Azurite unavailable: *",
        ]
    )


def test_disabled_on_purpose_is_still_counted(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIERVAULT_TEST_AZURITE", "0")
    result = suite.runpytest_inprocess("-p", "no:cacheprovider", "-W", "default")
    result.assert_outcomes(passed=1, skipped=2, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "azurite: DISABLED by TIERVAULT_TEST_AZURITE=0: every Azure test will be SKIPPED",
            "*PytestWarning: azurite: DISABLED*",
            "*!!! 2 Azure tests SKIPPED: Azurite unavailable !!!*",
            "why: disabled by TIERVAULT_TEST_AZURITE=0",
        ]
    )


@pytest.mark.parametrize("env", [("CI", "true"), ("TIERVAULT_TEST_AZURITE", "1")])
def test_where_required_they_fail(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, env: tuple[str, str]
) -> None:
    monkeypatch.setenv(*env)
    result = suite.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(["*Azurite could not be installed or started: node exploded*"])
    result.stdout.no_fnmatch_line("*Azure tests SKIPPED*")


def test_nothing_is_printed_when_azure_tests_ran_or_were_not_selected(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile("def test_local(): pass\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*SKIPPED*")
