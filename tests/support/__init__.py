"""Test-only helpers: a fake clock, an in-memory backend and a fault-injecting backend wrapper."""

from __future__ import annotations


class FakeClock:
    """A :class:`tiervault.clock.Clock` that only moves when told to."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._mono = 1000.0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds`` (>= 0)."""
        if seconds < 0:
            raise ValueError("a clock does not run backwards")
        self._now += seconds
        self._mono += seconds

    def set(self, epoch: float) -> None:
        """Jump the wall clock to ``epoch`` (monotonic time moves forward by as much, if later)."""
        self._mono += max(0.0, epoch - self._now)
        self._now = float(epoch)


from tests.support.memory import FaultyBackend, FaultyLease, MemoryBackend, MemoryLease  # noqa: E402

__all__ = ["FakeClock", "FaultyBackend", "FaultyLease", "MemoryBackend", "MemoryLease"]
