"""Step 2 of a prune: list ``snapshots/``, ``index/``, ``gc/``, ``locks/``, ``data/`` and ``meta/``
with their store times, and read every snapshot, index file and ``gc/`` object, plus the header of
every pack no readable index file lists (docs/format.md, "prune, step by step")."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime

from tiervault.backend.base import Tier
from tiervault.core.format.indexfile import PackRecord
from tiervault.core.format.pack import PackKind
from tiervault.errors import IntegrityError, ObjectNotFoundError
from tiervault.repo.gcstate import GcState, Heartbeats, load_gc_state, load_heartbeats
from tiervault.repo.objects import bounded_gather
from tiervault.repo.repository import Repository
from tiervault.repo.snapshots import SnapshotRecord


@dataclass(frozen=True, slots=True)
class StoredPack:
    id: str
    kind: PackKind
    size: int
    modified: datetime
    tier: Tier = Tier.HOT
    #: when it entered ``tier`` by the store's clock (``ObjectInfo.tier_changed``), else ``modified``
    tier_changed: datetime | None = None

    @property
    def in_tier_since(self) -> datetime:
        return self.modified if self.tier_changed is None else self.tier_changed

    @property
    def name(self) -> str:
        return f"{self.kind.prefix}/{self.id[:2]}/{self.id}"


@dataclass
class Loaded:
    """Everything step 2 found."""

    snapshots: list[SnapshotRecord] = field(default_factory=list)
    damaged_snapshots: list[IntegrityError] = field(default_factory=list)
    #: index file name -> its pack records (authenticated files only)
    index_files: dict[str, list[PackRecord]] = field(default_factory=dict)
    damaged_index: list[IntegrityError] = field(default_factory=list)
    packs: dict[str, StoredPack] = field(default_factory=dict)
    #: packs in the listing that no readable index file lists, whose own header authenticated
    unindexed: dict[str, PackRecord] = field(default_factory=dict)
    #: unindexed packs whose header does not authenticate: pack id -> why
    unprovable: dict[str, str] = field(default_factory=dict)
    gc: GcState = field(default_factory=GcState)
    beats: Heartbeats = field(default_factory=Heartbeats)

    def records(self) -> dict[str, PackRecord]:
        """Every pack record known (index files first, then unindexed headers), each pack once."""
        out: dict[str, PackRecord] = {}
        for recs in self.index_files.values():
            for r in recs:
                out.setdefault(r.pack_id, r)
        for pid, r in self.unindexed.items():
            out.setdefault(pid, r)
        return out


async def load(repo: Repository) -> Loaded:
    """Step 2, on ``repo`` (whose backend is the prune's)."""
    out = Loaded()
    backend = repo.backend
    out.gc = await load_gc_state(backend, repo.objects)
    out.beats = await load_heartbeats(backend, repo.objects)
    out.snapshots, out.damaged_snapshots = await repo.points.load_snapshots()
    names = await repo.index_files.names()

    async def read_index(name: str) -> None:
        try:
            out.index_files[name] = await repo.index_files.load_file(name)
        except ObjectNotFoundError:
            pass  # consolidated away by another prune since the listing
        except IntegrityError as exc:
            out.damaged_index.append(exc)

    await bounded_gather([functools.partial(read_index, n) for n in names])
    for kind in PackKind:
        async for info in backend.list(kind.prefix + "/"):
            pid = info.name.rsplit("/", 1)[-1]
            if len(pid) == 64 and info.name == f"{kind.prefix}/{pid[:2]}/{pid}":
                out.packs[pid] = StoredPack(pid, kind, info.size, info.modified, info.tier, info.tier_changed)
    indexed = {r.pack_id for recs in out.index_files.values() for r in recs}
    orphans = [p for pid, p in sorted(out.packs.items()) if pid not in indexed]

    async def header(p: StoredPack) -> None:
        try:
            rec = await repo.index_files.read_pack_header(p.kind, p.id, p.size)
        except ObjectNotFoundError:
            del out.packs[p.id]  # deleted since the listing
            return
        if isinstance(rec, PackRecord):
            out.unindexed[p.id] = rec
        else:
            out.unprovable[p.id] = rec

    await bounded_gather([functools.partial(header, p) for p in orphans])
    return out
