"""Test-only helpers: a fake clock, an in-memory backend and a fault-injecting backend wrapper."""

from __future__ import annotations

import asyncio
import threading


class FakeClock:
    """A :class:`tiervault.clock.Clock` that only moves when told to. ``elapsed`` moves with
    ``monotonic`` (an ``advance`` is as good as a host suspended that long); ``sleep`` returns once
    ``advance`` (from any thread) has moved ``monotonic`` far enough."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._mono = 1000.0
        self._lock = threading.Lock()
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def elapsed(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self._mono + max(0.0, seconds), fut)
        with self._lock:
            if self._mono >= entry[0]:
                fut.set_result(None)
            else:
                self._sleepers.append(entry)
        try:
            await fut
        finally:
            with self._lock:
                if entry in self._sleepers:
                    self._sleepers.remove(entry)

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds`` (>= 0)."""
        if seconds < 0:
            raise ValueError("a clock does not run backwards")
        with self._lock:
            self._now += seconds
            self._mono += seconds
        self._wake()

    def set(self, epoch: float) -> None:
        """Jump the wall clock to ``epoch`` (monotonic time moves forward by as much, if later)."""
        with self._lock:
            self._mono += max(0.0, epoch - self._now)
            self._now = float(epoch)
        self._wake()

    def _wake(self) -> None:
        with self._lock:
            due = [e for e in self._sleepers if self._mono >= e[0]]
            self._sleepers = [e for e in self._sleepers if self._mono < e[0]]
        for _, fut in due:
            try:
                fut.get_loop().call_soon_threadsafe(_resolve, fut)
            except RuntimeError:  # its loop is closed: nobody waits any more
                pass


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


from tests.support.memory import FaultyBackend, FaultyLease, MemoryBackend, MemoryLease  # noqa: E402

__all__ = ["FakeClock", "FaultyBackend", "FaultyLease", "MemoryBackend", "MemoryLease"]
