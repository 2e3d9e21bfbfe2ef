"""When a walk and its reads must stop: a deadline (by a :class:`~tiervault.clock.Clock`) or a
cancellation. Shared by the walker and the reader threads of one snapshot run.

A deadline never stops a run before it has finished one file: a budget shorter than the reserve
(or a slow first file) would otherwise commit an empty incomplete point on every run and never
converge. A cancellation stops at once.
"""

from __future__ import annotations

from tiervault.clock import SYSTEM_CLOCK, Clock


class Cancelled(Exception):
    """The run was cancelled: its threads have stopped and nothing is to be committed."""


class Stopper:
    """Answers "stop now?" for one run; ``incomplete`` tells afterwards whether work was left out."""

    __slots__ = ("_cancelled", "_clock", "_progressed", "incomplete", "stop_at")

    def __init__(self, stop_at: float | None, clock: Clock = SYSTEM_CLOCK) -> None:
        #: ``clock.monotonic()`` after which no new file is started and long reads stop
        self.stop_at = stop_at
        self._clock = clock
        self._progressed = False
        self._cancelled = False
        #: the deadline (or a cancellation) stopped the run before everything was done
        self.incomplete = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        """Stop as soon as possible (from any thread)."""
        self._cancelled = True

    def file_done(self) -> None:
        """One file was read completely in this run: from now on a passed deadline stops it."""
        self._progressed = True

    def stopping(self) -> bool:
        if self.incomplete:
            return True
        if self._cancelled or (
            self.stop_at is not None and self._progressed and self._clock.monotonic() >= self.stop_at
        ):
            self.incomplete = True
        return self.incomplete
