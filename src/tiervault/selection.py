"""Which recovery points: by reference (id, unique prefix, ``latest``, ``latest:ITEM``), by item and
tags, and the parent a new snapshot of an item builds on. Damaged snapshot objects are skipped by
every listing here (``Repository.list_snapshots``) and reported by ``check``."""

from __future__ import annotations

from collections.abc import Sequence

from tiervault.errors import NotFoundError
from tiervault.repo.provenance import host_name
from tiervault.repo.repository import Repository
from tiervault.repo.snapshots import ItemRecord, SnapshotRecord


async def resolve(repo: Repository, ref: str) -> SnapshotRecord:
    """A point by full id or unique id prefix (at least 4 hex digits), ``latest`` (the newest complete
    point) or ``latest:ITEM`` (the newest complete point of one item). Incomplete points (a deadline
    ran out) are never ``latest``."""
    if ref == "latest" or ref.startswith("latest:"):
        item = ref.partition(":")[2] or None
        snaps = [
            s for s in await repo.list_snapshots() if (item is None or s.item == item) and not s.incomplete
        ]
        if not snaps:
            raise NotFoundError("no recovery points" + (f" of item {item!r}" if item else ""))
        return snaps[-1]
    return await repo.find_snapshot(ref)


async def matching(
    repo: Repository, item: str | None = None, tags: Sequence[str] | None = None
) -> list[SnapshotRecord]:
    """Points oldest first, of ``item`` if given, having every one of ``tags`` if given."""
    wanted = set(tags or ())
    return [
        s for s in await repo.list_snapshots() if (item is None or s.item == item) and wanted <= set(s.tags)
    ]


async def parent_of(repo: Repository, item: ItemRecord) -> SnapshotRecord | None:
    """The point a new snapshot of ``item`` on this host builds on: the newest of the same item,
    host and source (an incomplete one included: it is the checkpoint to resume from)."""
    host = host_name()
    candidates = [
        s
        for s in await repo.list_snapshots()
        if s.item == item.name and s.host == host and s.source == item.source
    ]
    return candidates[-1] if candidates else None
