"""The two-process forget/prune-while-snapshot scenario of ``tests/e2e/test_gc_processes.py`` on
Azurite (both processes reach it over HTTP; store time is Azurite's, seen through
``ClockJumpBackend``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.e2e.test_gc_processes import scenario


def test_a_snapshot_while_forget_and_prune_run_in_another_process_on_azurite(
    container_url: str, tmp_path: Path
) -> None:
    asyncio.run(scenario(container_url, tmp_path))
