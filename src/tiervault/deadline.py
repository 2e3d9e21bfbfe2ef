"""Deadlines: a time budget (seconds from now, or an aware datetime) as a stop time on a ``Clock``."""

from __future__ import annotations

import math
from datetime import datetime

from tiervault.clock import Clock
from tiervault.errors import UsageError

#: what a run keeps back from its budget to store what is in flight and commit
RESERVE_SHARE, RESERVE_MIN, RESERVE_MAX = 0.1, 1.0, 30.0


def stop_time(deadline: float | datetime | None, clock: Clock) -> float | None:
    """The ``clock.monotonic()`` at which a run must stop taking new work, leaving a reserve to store
    what is in flight and commit (10% of the budget, between 1 and 30 seconds). A budget within the
    reserve gives "now": a snapshot or a restore still finishes one file first (``sources/stopping.py``,
    ``restore/executor.py``). None
    without a deadline; ``UsageError`` for one that is not finite, not a time, or already past."""
    if deadline is None:
        return None
    if isinstance(deadline, datetime):
        if deadline.tzinfo is None:
            raise UsageError("deadline must be an aware datetime (with a time zone) or seconds")
        budget = deadline.timestamp() - clock.now()
    else:
        try:
            budget = float(deadline)
        except (TypeError, ValueError):
            raise UsageError(f"deadline must be seconds or an aware datetime, not {deadline!r}") from None
        if not math.isfinite(budget):
            raise UsageError(f"deadline must be a finite number of seconds, not {deadline!r}")
    if budget <= 0:
        raise UsageError("the deadline has already passed")
    reserve = min(RESERVE_MAX, max(RESERVE_MIN, budget * RESERVE_SHARE))
    return clock.monotonic() + max(0.0, budget - reserve)
