"""The in-memory chunk index: chunk id -> (pack, offset, length, raw length, flags).

Shared by the archiver's worker threads, so every mutation takes one lock. ``claim`` is the dedup
decision within one writer session: exactly one thread stores a chunk that is neither indexed nor
already being stored by the same session. Claims are per session on purpose: a snapshot must never
reference a chunk that another, still running session has only promised to store.

Under format version 2 the index also holds a *view* of the garbage collection state (``PackRanks``,
docs/format.md "Writers (snapshot) under version 2"): every pack has a rank, ``NORMAL`` for a pack
neither condemned nor gone. Where a chunk has several locations the lowest rank is kept; a chunk
whose location is not ``NORMAL`` is absent for dedup (``in``, ``claim``: stored again) and still
found by ``lookup`` for reads (a gone pack only as the last resort).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from tiervault.core.format.indexfile import PackRecord
from tiervault.core.format.pack import PackEntry, PackKind


@dataclass(frozen=True, slots=True)
class PackInfo:
    id: str
    kind: PackKind
    salt: bytes

    @property
    def name(self) -> str:
        return pack_name(self.kind, self.id)


def pack_name(kind: PackKind, pack_id: str) -> str:
    return f"{kind.prefix}/{pack_id[:2]}/{pack_id}"


@dataclass(frozen=True, slots=True)
class Location:
    pack: PackInfo
    entry: PackEntry


#: a pack's rank (lower is preferred): usable; condemned by a plan; gone; not in storage at all
NORMAL, CONDEMNED, GONE, MISSING = 0, 1, 2, 3


class PackRanks(Protocol):
    """A view of which packs a writer may take new references to (``repo.gcstate.GcState`` is one)."""

    def rank(self, pack_id: str, /) -> int: ...


class Index:
    def __init__(self, ranks: PackRanks | None = None) -> None:
        self._lock = threading.Lock()
        self._packs: dict[str, PackInfo] = {}
        # chunk id -> (pack id, PackEntry); tuples keep the per-entry overhead low
        self._chunks: dict[bytes, tuple[str, PackEntry]] = {}
        self._ranks = ranks
        self._rank: dict[str, int] = {}  #: pack id -> rank, for the packs not NORMAL only

    def add_record(self, rec: PackRecord) -> None:
        pid = rec.pack_id
        new = {e[0]: (pid, e) for e in rec.entries}
        with self._lock:
            if pid not in self._packs:
                self._packs[pid] = PackInfo(pid, rec.kind, rec.salt)
                if (r := self.pack_rank(pid)) != NORMAL:
                    self._rank[pid] = r
            mine = self._rank.get(pid, NORMAL)
            chunks, ranked = self._chunks, self._rank
            for cid in new.keys() & chunks.keys():
                # the first location of a chunk stays, unless this one has a lower rank
                if mine >= ranked.get(chunks[cid][0], NORMAL):
                    del new[cid]
            chunks.update(new)

    def pack_rank(self, pack_id: str) -> int:
        """The rank of a pack by the current view (indexed or not)."""
        return NORMAL if self._ranks is None else self._ranks.rank(pack_id)

    def set_ranks(self, ranks: PackRanks | None) -> None:
        """Apply a new view to the locations held (each chunk keeps its one location)."""
        with self._lock:
            self._ranks = ranks
            self._rank = {pid: r for pid in self._packs if (r := self.pack_rank(pid)) != NORMAL}

    def replace(self, fresh: Index) -> None:
        """Take ``fresh``'s locations and view (a reload), atomically for concurrent readers."""
        with fresh._lock:
            packs, chunks, ranks, rank = fresh._packs, fresh._chunks, fresh._ranks, fresh._rank
        with self._lock:
            self._packs, self._chunks, self._ranks, self._rank = packs, chunks, ranks, rank

    @property
    def has_unusable(self) -> bool:
        """Whether some location held is in a pack that is not NORMAL."""
        return bool(self._rank)

    def __contains__(self, cid: bytes) -> bool:
        """Whether ``cid`` has a location a writer may reference (dedup, reuse from the parent)."""
        hit = self._chunks.get(cid)
        return hit is not None and (not self._rank or hit[0] not in self._rank)

    def __len__(self) -> int:
        return len(self._chunks)

    def claim(self, cid: bytes, session: set[bytes]) -> bool:
        """True if the caller must store ``cid``: without a usable location, and not yet claimed in
        ``session``."""
        with self._lock:
            if cid in self or cid in session:
                return False
            session.add(cid)
            return True

    def lookup(self, cid: bytes) -> Location | None:
        """Where to read ``cid``: its lowest-ranked location, usable or not (reading is not referencing)."""
        hit = self._chunks.get(cid)
        if hit is None:
            return None
        return Location(self._packs[hit[0]], hit[1])

    def location_rank(self, cid: bytes) -> int | None:
        """The rank of the location ``lookup`` gives, None if ``cid`` has none."""
        hit = self._chunks.get(cid)
        return None if hit is None else self._rank.get(hit[0], NORMAL)

    def packs(self) -> list[PackInfo]:
        with self._lock:
            return list(self._packs.values())

    def pack_ids(self) -> set[str]:
        with self._lock:
            return set(self._packs)

    def entries_by_pack(self) -> dict[str, list[PackEntry]]:
        out: dict[str, list[PackEntry]] = {}
        with self._lock:
            for pid, e in self._chunks.values():
                out.setdefault(pid, []).append(e)
        return out
