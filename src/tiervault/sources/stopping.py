"""When a walk and its reads must stop: a deadline (by a :class:`~tiervault.clock.Clock`) or a
cancellation. Shared by the walker and the reader threads of one snapshot run.

A cancellation stops at once. A deadline stops a run only once it has made progress that the next
run keeps, so repeated runs under any deadline converge (docs/architecture.md, "Time-boxed runs"):

* it has finished a **new** file: one its parent point does not hold (every file counts when the
  parent is a complete point, or there is none). A run resuming from an incomplete point would
  otherwise stop after re-reading a file that changes before every run (an active log first in walk
  order) and never get further;
* or no new file is left (the walk is over and every new file it queued is done or failed) and it
  has finished some file.

The checkpoint a stop commits keeps every file its parent held (``sources/reuse.py``), so each stop
adds at least one file and a source of N files completes within N + 1 runs.
"""

from __future__ import annotations

import threading

from tiervault.clock import SYSTEM_CLOCK, Clock


class Cancelled(Exception):
    """The run was cancelled: its threads have stopped and nothing is to be committed."""


class Stopper:
    """Answers "stop now?" for one run; ``incomplete`` tells afterwards whether work was left out."""

    __slots__ = (
        "_cancelled",
        "_clock",
        "_done_any",
        "_lock",
        "_new_pending",
        "_progressed",
        "_walked",
        "incomplete",
        "stop_at",
    )

    def __init__(self, stop_at: float | None, clock: Clock = SYSTEM_CLOCK) -> None:
        #: ``clock.monotonic()`` after which no new file is started and long reads stop
        self.stop_at = stop_at
        self._clock = clock
        self._lock = threading.Lock()
        self._progressed = False  # a new file was finished
        self._done_any = False  # some file was finished
        self._new_pending = 0  # new files queued and not yet done or failed
        self._walked = False  # the walker has listed everything
        self._cancelled = False
        #: the deadline (or a cancellation) stopped the run before everything was done
        self.incomplete = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        """Stop as soon as possible (from any thread)."""
        self._cancelled = True

    def queued(self, new: bool) -> None:
        """The walker queued a file to be read (``new``: one the parent point does not hold)."""
        if new:
            with self._lock:
                self._new_pending += 1

    def walked(self) -> None:
        """The walker has listed everything: no new file is queued from now on."""
        self._walked = True

    def file_done(self, new: bool, *, finished: bool = True) -> None:
        """A queued file was read completely in this run (``finished``), or left out (failed,
        stopped). A finished new file is progress: from then on a passed deadline stops the run."""
        with self._lock:
            if new:
                self._new_pending -= 1
                self._progressed = self._progressed or finished
            self._done_any = self._done_any or finished

    def _may_stop(self) -> bool:
        if self._progressed:
            return True
        with self._lock:
            return self._walked and self._new_pending <= 0 and self._done_any

    def stopping(self) -> bool:
        if self.incomplete:
            return True
        if self._cancelled or (
            self.stop_at is not None and self._clock.monotonic() >= self.stop_at and self._may_stop()
        ):
            self.incomplete = True
        return self.incomplete
