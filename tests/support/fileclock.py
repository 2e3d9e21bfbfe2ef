"""A fake clock kept in a file, for tests whose steps run in separate processes: every process that
opens a ``FileClock`` on the same file sees the same time, and the test moves it with ``advance``.

``sleep`` does not wait: it moves the shared time forward by what it was asked (a simulation in which
waiting is what makes time pass), so a process polling on this clock (``restore --wait``) finishes
after a known number of polls, without a real-time sleep.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

START = 1_700_000_000.0


class FileClock:
    """A :class:`tiervault.clock.Clock` whose time is the number stored in ``path``."""

    def __init__(self, path: str | os.PathLike[str], *, start: float = START) -> None:
        self.path = Path(path)
        if not self.path.exists():
            self._write(start)

    def _write(self, value: float) -> None:
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        tmp.write_text(repr(value))
        os.replace(tmp, self.path)

    def now(self) -> float:
        return float(self.path.read_text())

    def monotonic(self) -> float:
        return self.now()

    def elapsed(self) -> float:
        return self.now()

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not run backwards")
        self._write(self.now() + seconds)
