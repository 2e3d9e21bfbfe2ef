"""Where a restore may go: a target strictly inside the item's protected source would be backed up
again by the next snapshot (the point doubles), so it is refused unless forced."""

from __future__ import annotations

import asyncio
import logging
import os

from tiervault.errors import UsageError
from tiervault.repo.snapshots import SnapshotRecord

log = logging.getLogger("tiervault.restore")


def inside_of(target: str | os.PathLike[str], source: str) -> bool:
    """Does ``target`` lie strictly below ``source`` (symlinks resolved)? An item's source is an
    absolute path; a point that records anything else (empty, relative, with a NUL byte: only a
    crafted one) has no source to protect, and says nothing about the directory the restore runs in."""
    if not source or "\0" in source or not os.path.isabs(source):
        return False
    real = os.path.realpath(os.path.abspath(os.fspath(target)))
    src = os.path.realpath(source)
    return real != src and os.path.commonpath([real, src]) == src


async def check_target(rec: SnapshotRecord, target: str | os.PathLike[str], *, force: bool) -> None:
    """Refuse (or with ``force`` warn about) a target strictly inside the point's source (an item's
    source never changes, see ``protection.protect``). Restoring over the source itself is allowed:
    it does not double the next snapshot."""
    if not await asyncio.to_thread(inside_of, target, rec.source):
        return
    msg = (
        f"restore target {os.fspath(target)!r} is inside the protected source {rec.source!r} of "
        f"item {rec.item!r}: the next snapshot would back up the restored copy too"
    )
    if not force:
        raise UsageError(msg + "; restore elsewhere, or pass force=True (--force) to restore there")
    log.warning("%s (forced)", msg)
