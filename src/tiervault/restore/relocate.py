"""A pack deleted under a running restore (docs/format.md, "Restores and other readers").

A restore planned before a prune's sweep may find one of its packs gone. On the first
``ObjectNotFoundError`` for a pack, the restore reloads ``gc/`` and the index files **once**, then
reads each blob it still needs from that pack at another location: a repacked chunk has one (the
repack stored the copy and its index file before the old pack was condemned). Locations in packs
that are neither condemned nor gone are preferred, a gone pack is the last resort; a chunk that no
other pack holds fails the restore, naming the pack and the chunk. Reading is never referencing: the
in-memory index, which a writer of the same process uses, is not changed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterable

from tiervault.core.format.pack import FLAG_TREE, PackEntry
from tiervault.errors import ObjectNotFoundError
from tiervault.repo.gcstate import GcState
from tiervault.repo.index import Location, PackInfo
from tiervault.repo.locations import gc_state, locations_of
from tiervault.repo.repository import Repository

log = logging.getLogger("tiervault.restore")


class Relocator:
    """Finds blobs of packs that vanished during one restore (one reload, shared by its tasks)."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self._lock = asyncio.Lock()
        self._found: dict[bytes, list[Location]] | None = None
        self._gc = GcState()
        #: ids of the packs found missing so far
        self.missing: set[str] = set()
        #: how many times ``gc/`` and the index were reloaded (0 or 1)
        self.reloads = 0

    async def _load(self, chunks: Callable[[], Collection[bytes]]) -> dict[bytes, list[Location]]:
        async with self._lock:
            if self._found is None:
                self._gc = await gc_state(self.repo)
                self._found = await locations_of(self.repo, chunks())
                self.reloads += 1
            return self._found

    async def relocate(
        self, pack: PackInfo, entries: Iterable[PackEntry], chunks: Callable[[], Collection[bytes]]
    ) -> dict[PackEntry, Location]:
        """``pack`` is missing: a new location for each of ``entries`` (blobs of it still to read).
        ``chunks`` gives every chunk the restore reads, for the one reload. Raises
        ``ObjectNotFoundError`` naming the pack and the chunk when no other pack holds one."""
        self.missing.add(pack.id)
        found = await self._load(chunks)
        out: dict[PackEntry, Location] = {}
        for e in entries:
            kind = e.flags & FLAG_TREE
            others = [
                loc
                for loc in found.get(e.id, [])
                if loc.pack.id not in self.missing and loc.entry.flags & FLAG_TREE == kind
            ]
            if not others:
                raise ObjectNotFoundError(
                    f"{pack.name} was deleted during the restore (by a prune?) and no other pack "
                    f"holds chunk {e.id.hex()[:16]} (check names the points that need it)"
                )
            out[e] = min(others, key=lambda loc: self._gc.rank(loc.pack.id))  # the first of a rank
        log.info("%s is gone: %d blob(s) read from other packs", pack.name, len(out))
        return out
