"""Read accounting per operation: which tier served each read request, counted for whoever asked.

A tier that serves reads (the disk tier, ``cache.CacheBackend``) reports every read request and its
bytes with :func:`count_reads`; an operation that wants its own counts opens :func:`counting_reads`
around its work. The scope is a context variable, so it follows the operation into the tasks and
worker threads it starts (``asyncio`` copies the context into both) and nothing else: two restores
running at once on one vault each count only their own reads. Scopes nest; a read counts in every
scope open around it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

#: the counter fields a tier reports (the same names as ``cache.CacheCounters``)
READ_FIELDS = ("cache_hits", "cache_bytes", "remote_reads", "remote_bytes")


@dataclass(slots=True)
class ReadTally:
    """Read requests and bytes served by the local disk tier and by the store, within one scope."""

    cache_hits: int = 0
    cache_bytes: int = 0
    remote_reads: int = 0
    remote_bytes: int = 0
    #: whether any tier reported at all (a backend stack without a reporting tier counts nothing)
    reported: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, deltas: dict[str, int]) -> None:
        with self._lock:
            self.reported = True
            for name in READ_FIELDS:
                n = deltas.get(name)
                if n:
                    setattr(self, name, getattr(self, name) + n)


_scopes: ContextVar[tuple[ReadTally, ...]] = ContextVar("tiervault_read_scopes", default=())


@contextmanager
def counting_reads() -> Iterator[ReadTally]:
    """``with counting_reads() as tally``: every read reported inside counts in ``tally``."""
    tally = ReadTally()
    token = _scopes.set((*_scopes.get(), tally))
    try:
        yield tally
    finally:
        _scopes.reset(token)


def count_reads(deltas: dict[str, int]) -> None:
    """A tier reports reads served (any of ``READ_FIELDS``; other keys are ignored)."""
    for tally in _scopes.get():
        tally.add(deltas)


__all__ = ["READ_FIELDS", "ReadTally", "count_reads", "counting_reads"]
