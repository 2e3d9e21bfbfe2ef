"""The in-memory chunk index: chunk id -> (pack, offset, length, raw length, flags).

Shared by the archiver's worker threads, so every mutation takes one lock. ``claim`` is the dedup
decision within one writer session: exactly one thread stores a chunk that is neither indexed nor
already being stored by the same session. Claims are per session on purpose: a snapshot must never
reference a chunk that another, still running session has only promised to store.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

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


class Index:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._packs: dict[str, PackInfo] = {}
        # chunk id -> (pack id, PackEntry); tuples keep the per-entry overhead low
        self._chunks: dict[bytes, tuple[str, PackEntry]] = {}

    def add_record(self, rec: PackRecord) -> None:
        pid = rec.pack_id
        new = {e[0]: (pid, e) for e in rec.entries}
        with self._lock:
            self._packs.setdefault(pid, PackInfo(pid, rec.kind, rec.salt))
            for cid in new.keys() & self._chunks.keys():
                del new[cid]  # the first location of a chunk stays
            self._chunks.update(new)

    def __contains__(self, cid: bytes) -> bool:
        return cid in self._chunks

    def __len__(self) -> int:
        return len(self._chunks)

    def claim(self, cid: bytes, session: set[bytes]) -> bool:
        """True if the caller must store ``cid``: not indexed, and not yet claimed in ``session``."""
        with self._lock:
            if cid in self._chunks or cid in session:
                return False
            session.add(cid)
            return True

    def lookup(self, cid: bytes) -> Location | None:
        hit = self._chunks.get(cid)
        if hit is None:
            return None
        return Location(self._packs[hit[0]], hit[1])

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
