"""tests/support/fsclock.py: what the tests that need a later ctime rely on."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.fsclock import next_ctime_tick


def test_a_change_after_the_tick_has_a_later_ctime(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    changed = tree / "f"
    changed.write_bytes(b"one")
    recorded = changed.stat().st_ctime_ns
    tick = next_ctime_tick(tmp_path)
    assert tick > recorded
    changed.write_bytes(b"two")  # same size: only the ctime can tell
    os.chmod(changed, 0o600)
    assert changed.stat().st_ctime_ns >= tick > recorded
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree"]  # the probe is gone
