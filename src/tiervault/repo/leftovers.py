"""Leftovers of unfinished writes (a writer killed inside ``put_if_absent`` leaves a temp file): how
``check`` reports them, and when the next writer removes them.

The rule (docs/format.md, "Ordering invariants", 8): a snapshot, before it writes anything, removes
the leftovers last written more than :data:`SAFE_AGE` ago by the backend's clock. A live writer's temp
file is at most one write old (it is written, then linked to its name, in one go), so it is never
that old; and removing one anyway only makes that one put fail, never an object incomplete.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from tiervault.backend.base import Backend, ObjectInfo

log = logging.getLogger("tiervault.repo")

#: leftovers last written longer ago than this (seconds, by the backend's clock) are removed
SAFE_AGE = 3600.0


async def incomplete_writes(backend: Backend) -> list[ObjectInfo]:
    """Every leftover the store holds, by name."""
    return sorted([info async for info in backend.list_incomplete()], key=lambda i: i.name)


async def remove_stale(backend: Backend, *, older_than: float = SAFE_AGE) -> Sequence[ObjectInfo]:
    """Remove the leftovers older than ``older_than`` seconds (the safe age); return them."""
    removed = await backend.delete_incomplete(older_than=older_than)
    if removed:
        log.info(
            "removed %d temporary file(s) of unfinished writes (%d bytes) older than %.0f s",
            len(removed),
            sum(r.size for r in removed),
            older_than,
        )
    return removed


def leftover_warnings(leftovers: Sequence[ObjectInfo]) -> list[dict[str, str]]:
    """``check`` warnings: one with the count and total size, then one per leftover (name, size)."""
    if not leftovers:
        return []
    total = sum(i.size for i in leftovers)
    hours = SAFE_AGE / 3600
    out = [
        {
            "object": "temporary files",
            "warning": f"{len(leftovers)} temporary file(s) of unfinished writes, {total} bytes in total: "
            f"the next snapshot removes those last written more than {hours:g} h ago",
            "bytes": str(total),
        }
    ]
    out.extend(
        {
            "object": i.name,
            "warning": f"temporary file of an unfinished write, {i.size} bytes, "
            f"last written {i.modified.isoformat(timespec='seconds')}",
            "bytes": str(i.size),
        }
        for i in leftovers
    )
    return out
