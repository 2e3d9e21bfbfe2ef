"""Time as a dependency, so tests can fake it: wall-clock ``now()`` and a ``monotonic()`` timer."""

from __future__ import annotations

import time
from typing import Final, Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """A source of time. ``now`` is epoch seconds (wall clock); ``monotonic`` only measures intervals."""

    def now(self) -> float: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The real clock: ``time.time`` and ``time.monotonic``."""

    __slots__ = ()

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def __repr__(self) -> str:
        return "SYSTEM_CLOCK"


SYSTEM_CLOCK: Final[Clock] = SystemClock()

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]
