"""The file system's own clock, for tests that need a change to get a later ctime.

A file's ``st_ctime`` is stamped from the kernel's (coarse) clock, with a granularity that depends on the
file system (a jiffy on ext4 and tmpfs, 2 s on FAT). A test that records a tree and then changes a file
"in the same tick" may see the same ctime again. Instead of sleeping for a guessed margin, wait until the
file system itself stamps a later time: changes made after ``next_ctime_tick`` returns get a ctime
strictly later than any made before it was called.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def _stamp(probe: Path) -> int:
    """Change ``probe``'s metadata (so the kernel stamps its ctime now) and return that ctime."""
    os.chmod(probe, 0o600 if probe.stat().st_mode & 0o077 else 0o644)
    return probe.stat().st_ctime_ns


def next_ctime_tick(directory: Path, *, limit: float = 30.0) -> int:
    """Return once the file system holding ``directory`` stamps ctimes later than it did at the call.

    A probe file (``directory/.ctime-probe``, removed afterwards: put ``directory`` outside the tree
    under test, on the same file system) is changed until its ctime moves. ``limit`` seconds only
    guard against a clock that never moves. Returns the new ctime (ns)."""
    probe = directory / ".ctime-probe"
    probe.touch()
    try:
        before = _stamp(probe)
        deadline = time.monotonic() + limit
        while (now := _stamp(probe)) <= before:
            if time.monotonic() > deadline:
                raise AssertionError(f"the ctime of {probe} did not move in {limit:.0f} s")
            time.sleep(0.001)
        return now
    finally:
        probe.unlink()
