"""When the Azure tests cannot run: fail in CI, else skip them *loudly* (never quietly).

Every such skip has a reason starting with ``UNAVAILABLE``; ``tests/conftest.py`` says at session start
what to expect (``session_notice``) and, at the end, prints a banner with how many tests were skipped
and why (``report_skips``), on top of pytest's one-line-per-reason ``-ra`` summary.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path
from typing import NoReturn, Protocol

import pytest

from tests.support.azurite import DEFAULT_CACHE_DIR, installed_versions

#: the start of the reason of every skip for want of Azurite (what the summary counts)
UNAVAILABLE = "Azurite unavailable"
_MAKE_IT_AN_ERROR = "TIERVAULT_TEST_AZURITE=1 or CI=true makes this an error"


def disabled() -> bool:
    """``TIERVAULT_TEST_AZURITE=0``: the Azure tests are skipped on purpose (still reported)."""
    return os.environ.get("TIERVAULT_TEST_AZURITE", "").strip() == "0"


def required() -> bool:
    """Whether a missing Azurite fails the tests (CI, or ``TIERVAULT_TEST_AZURITE=1``)."""
    if os.environ.get("TIERVAULT_TEST_AZURITE", "").strip() == "1":
        return True
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip_disabled() -> NoReturn:
    pytest.skip(f"{UNAVAILABLE}: disabled by TIERVAULT_TEST_AZURITE=0")


def skip_or_fail(detail: str) -> NoReturn:
    """Azurite cannot be had: fail where it is required, else skip with a reason the summary counts."""
    if required():
        pytest.fail(f"{detail}\n(required here: CI is set, or TIERVAULT_TEST_AZURITE=1)", pytrace=False)
    pytest.skip(f"{UNAVAILABLE}: {detail} ({_MAKE_IT_AN_ERROR})")


def session_notice(cache_dir: Path = DEFAULT_CACHE_DIR) -> tuple[str, bool]:
    """One line for the session header, and whether it is a warning (the Azure tests will skip)."""
    if disabled():
        return "azurite: DISABLED by TIERVAULT_TEST_AZURITE=0: every Azure test will be SKIPPED", True
    mode = "required (failing to start it is an error)" if required() else "skipped LOUDLY if it cannot start"
    versions = installed_versions(cache_dir)
    if versions is not None:
        found = f"{versions.get('azurite')} on node {versions.get('node')} in {cache_dir}"
        return f"azurite: {found}; {mode}", False
    if shutil.which("npm") is None:
        line = f"azurite: not installed in {cache_dir} and no npm on PATH to install it"
        if required():
            return f"{line}: the Azure tests will FAIL", True
        return f"{line}: every Azure test will be SKIPPED ({_MAKE_IT_AN_ERROR})", True
    return f"azurite: not installed yet: installed with npm on first use into {cache_dir}; {mode}", False


class _Terminal(Protocol):
    stats: dict[str, list[object]]

    def write_sep(self, sep: str, title: str | None = None, **markup: bool) -> None: ...

    def write_line(self, line: str, **markup: bool) -> None: ...


def _skip_reason(report: object) -> str:
    longrepr = getattr(report, "longrepr", None)
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return ""


def report_skips(terminal: _Terminal) -> int:
    """Print a banner for the tests skipped for want of Azurite; return how many there were."""
    reasons = Counter(
        reason
        for report in terminal.stats.get("skipped", [])
        if (reason := _skip_reason(report)).startswith(UNAVAILABLE)
    )
    total = sum(reasons.values())
    if total:
        why = "; ".join(r.removeprefix(f"{UNAVAILABLE}: ") for r in reasons)
        terminal.write_sep("!", f"{total} Azure tests SKIPPED: {UNAVAILABLE}", red=True, bold=True)
        terminal.write_line(f"why: {why}", red=True)
        terminal.write_line(
            "these tests did not run, so nothing was checked against Azure Blob Storage", red=True
        )
    return total
