"""When a walk and its reads must stop: a deadline (by a :class:`~tiervault.clock.Clock`) or a
cancellation. Shared by the walker and the reader threads of one snapshot run.

A cancellation stops at once. A deadline stops a run only once it has finished a **new** file: one
its parent point does not hold (every file is new when the parent is a complete point, or there is
none). The checkpoint a stop commits keeps every file its parent held (``sources/reuse.py``), so each
stop adds at least one file, and a run with no new file left does not stop: a source of N files
completes within N + 1 runs under any deadline (docs/architecture.md, "Time-boxed and interrupted
runs"). Counting any finished file instead, a run resuming from a checkpoint stopped after re-reading
a file that changes before every run (an active log first in walk order) and never got further.
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
        self._progressed = False  # a new file was finished
        self._cancelled = False
        #: the deadline (or a cancellation) stopped the run before everything was done
        self.incomplete = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        """Stop as soon as possible (from any thread)."""
        self._cancelled = True

    def file_done(self, new: bool) -> None:
        """A file was read completely in this run. A new one (absent from the parent point) is
        progress: from then on a passed deadline stops the run."""
        if new:
            self._progressed = True

    def stopping(self) -> bool:
        if self.incomplete:
            return True
        if self._cancelled or (
            self.stop_at is not None and self._progressed and self._clock.monotonic() >= self.stop_at
        ):
            self.incomplete = True
        return self.incomplete
