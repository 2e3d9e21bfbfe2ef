"""Running ``bench/bench.py`` from the tests (tests/test_bench_*.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
BENCH = ROOT / "bench" / "bench.py"


def run_bench(*args: str, expect: int = 0, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """Run ``bench/bench.py ARGS`` to completion; check its exit status; return its stdout."""
    proc = subprocess.run(
        [sys.executable, str(BENCH), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == expect, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout
