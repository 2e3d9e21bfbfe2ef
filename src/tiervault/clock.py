"""Time as a dependency, so tests can fake it: wall-clock ``now()``, a ``monotonic()`` timer, an
``elapsed()`` timer that also counts time the host was suspended, and ``sleep``."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Final, Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """A source of time. ``now`` is epoch seconds (wall clock); ``monotonic`` only measures intervals;
    ``elapsed`` measures intervals *including* time the host was suspended (a writer's heartbeat
    lapse, docs/format.md "Time"); ``sleep`` waits for ``seconds`` of this clock's ``monotonic``."""

    def now(self) -> float: ...

    def monotonic(self) -> float: ...

    def elapsed(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


#: CLOCK_BOOTTIME counts suspension on Linux; elsewhere the wall clock is the portable choice
#: (it counts suspension too, at the cost of following clock adjustments)
_BOOTTIME: int | None = getattr(time, "CLOCK_BOOTTIME", None) if sys.platform.startswith("linux") else None


class SystemClock:
    """The real clock: ``time.time``, ``time.monotonic``, ``CLOCK_BOOTTIME`` (Linux; ``time.time``
    elsewhere) and ``asyncio.sleep``."""

    __slots__ = ()

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def elapsed(self) -> float:
        if _BOOTTIME is not None:
            return time.clock_gettime(_BOOTTIME)
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SYSTEM_CLOCK"


SYSTEM_CLOCK: Final[Clock] = SystemClock()

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]
