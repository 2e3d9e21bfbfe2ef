"""The samples are part of the documentation: run them so they cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_protect_and_restore_sample_runs() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "samples/protect_and_restore.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "restored 1 file(s), verified 1" in out.stdout
    assert "check: ok" in out.stdout


def test_demo_runs_small() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "samples/demo.py"), "--size-mb", "8"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "verified byte for byte" in out.stdout
    assert "check --read-data: ok" in out.stdout
