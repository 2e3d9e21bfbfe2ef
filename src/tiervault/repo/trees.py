"""Trees by id, with the memory cache that makes walking them cheap: a tree's metadata pack is read
whole once, checked against its name and kept (up to ``META_CACHE_BYTES``), so the trees that follow
cost no I/O; decoded trees are kept too (the most recent, up to ``TREE_CACHE_NODES`` nodes). A
metadata pack a prune swept since the index was loaded is read from its trees' other locations
(docs/format.md, "Restores and other readers")."""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict

from tiervault.backend.base import Backend
from tiervault.core.crypto import object_hash
from tiervault.core.format import FormatError
from tiervault.core.format.pack import PackKind
from tiervault.core.format.tree import Node, decode_tree
from tiervault.errors import IntegrityError, ObjectNotFoundError
from tiervault.repo.index import Index, Location, PackInfo
from tiervault.repo.packs import Packs

#: metadata packs kept in memory while trees are walked
META_CACHE_BYTES = 64 << 20
#: decoded trees kept in memory, bounded by their nodes (about 0.3 KiB each): a restore counts a
#: point's trees (``treewalk.check_point``) and then walks them, so the walk should find what the
#: count decoded; a restore's plan keeps most of these nodes alive anyway
TREE_CACHE_NODES = 500_000


class Trees:
    """The trees of one repository; every method but ``load``/``load_data`` is thread-safe and
    does no I/O."""

    def __init__(self, backend: Backend, index: Index, packs: Packs) -> None:
        self.backend, self.index, self.packs = backend, index, packs
        self._trees: OrderedDict[bytes, list[Node]] = OrderedDict()
        self._nodes = 0  # nodes held by ``_trees``
        self._meta_packs: OrderedDict[str, bytes] = OrderedDict()
        self._meta_bytes = 0
        self._lock = threading.Lock()
        #: vanished metadata pack id -> each of its trees' other location (one reload per pack)
        self._moved: dict[str, dict[bytes, Location]] = {}
        self._moving = asyncio.Lock()

    def cached(self, tid: bytes) -> list[Node] | None:
        """A tree without I/O, if it or its whole metadata pack is in memory (thread-safe).

        Walking a tree of thousands of directories then costs one read per metadata pack instead of
        one round trip through the event loop per directory.
        """
        with self._lock:
            hit = self._trees.get(tid)
            if hit is not None:
                self._trees.move_to_end(tid)
                return hit
        data = self.cached_data(tid)
        return None if data is None else self._remember(tid, data)

    def cached_data(self, tid: bytes) -> bytes | None:
        """A tree's authenticated plaintext without I/O, if its metadata pack is in memory (thread-safe)."""
        with self._lock:
            loc = self.index.lookup(tid)
            pack = self._meta_packs.get(loc.pack.id) if loc is not None else None
            if pack is not None:
                self._meta_packs.move_to_end(loc.pack.id)  # type: ignore[union-attr]
        if loc is None or pack is None:
            return None
        sealed = memoryview(pack)[loc.entry.offset : loc.entry.offset + loc.entry.length]
        return self.packs.open_blob(loc.pack, loc.entry, sealed)

    def _remember(self, tid: bytes, data: bytes) -> list[Node]:
        try:
            nodes = decode_tree(data)
        except FormatError as exc:
            raise self.error(tid, exc) from exc
        with self._lock:
            if tid not in self._trees:
                self._trees[tid] = nodes
                self._nodes += len(nodes)
            while self._nodes > TREE_CACHE_NODES and len(self._trees) > 1:
                _, old = self._trees.popitem(last=False)
                self._nodes -= len(old)
        return nodes

    def error(self, tid: bytes, exc: Exception) -> IntegrityError:
        """The error for an unusable tree, naming the pack that holds it."""
        loc = self.index.lookup(tid)
        return IntegrityError(loc.pack.name if loc else "tree", f"tree {tid.hex()[:16]}: {exc}")

    async def load(self, tid: bytes) -> list[Node]:
        """A tree by id. Its whole metadata pack is read once, checked against its name, and kept
        in memory (up to ``META_CACHE_BYTES``) for the trees that follow."""
        nodes = self.cached(tid)
        if nodes is not None:
            return nodes
        return self._remember(tid, await self.load_data(tid))

    async def load_data(self, tid: bytes) -> bytes:
        """A tree's authenticated plaintext (see ``load``; nothing is decoded)."""
        data = self.cached_data(tid)
        if data is not None:
            return data
        loc = self.packs.locate(tid)
        if loc.pack.kind is not PackKind.META:
            return await self.packs.read_blob(tid)
        try:
            pack = await self.backend.get(loc.pack.name)
        except ObjectNotFoundError:
            return await self._elsewhere(tid, loc)
        if await asyncio.to_thread(object_hash, pack) != loc.pack.id:
            raise IntegrityError(loc.pack.name, "content does not match its name (hash mismatch)")
        with self._lock:
            self._meta_packs[loc.pack.id] = pack
            self._meta_bytes += len(pack)
            while self._meta_bytes > META_CACHE_BYTES and len(self._meta_packs) > 1:
                _, old = self._meta_packs.popitem(last=False)
                self._meta_bytes -= len(old)
        sealed = memoryview(pack)[loc.entry.offset : loc.entry.offset + loc.entry.length]
        return await asyncio.to_thread(self.packs.open_blob, loc.pack, loc.entry, sealed)

    async def _elsewhere(self, tid: bytes, vanished: Location) -> bytes:
        """The tree's metadata pack is not in storage (swept by a prune since the index was loaded):
        read it from another location the index files list now (a repacked copy; packs neither
        condemned nor gone first). The index files are read again once per vanished pack, for the
        trees it held; the in-memory index is left alone (reading is not referencing)."""
        gone = vanished.pack.id
        async with self._moving:
            moved = self._moved.get(gone)
            if moved is None:
                moved = self._moved[gone] = await self._other_locations(gone)
        loc = moved.get(tid)
        if loc is None:
            raise ObjectNotFoundError(
                f"{vanished.pack.name} was deleted (by a prune?) and no other pack holds "
                f"tree {tid.hex()[:16]}"
            )
        return await self.packs.read_at(loc)

    async def _other_locations(self, gone: str) -> dict[bytes, Location]:
        held = {e.id for e in self.index.entries_by_pack().get(gone, [])}
        files = self.packs.index_files
        found: dict[bytes, tuple[int, Location]] = {}
        for name in await files.names():
            try:
                records = await files.load_file(name)
            except (IntegrityError, ObjectNotFoundError):
                continue  # damaged (check reports it), or replaced by a consolidation listed too
            for rec in records:
                if rec.pack_id == gone or rec.kind is not PackKind.META:
                    continue
                rank = self.index.pack_rank(rec.pack_id)
                info = PackInfo(rec.pack_id, rec.kind, rec.salt)
                for e in rec.entries:
                    if e.id in held and (e.id not in found or rank < found[e.id][0]):
                        found[e.id] = (rank, Location(info, e))
        return {tid: loc for tid, (_rank, loc) in found.items()}
