"""Every stored location of some chunks, and the garbage-collection state, read again from storage.

The in-memory index keeps one location per chunk (the first loaded). When that pack is gone or
missing (a prune swept it: docs/format.md, "Restores and other readers"), a reader looks for the
chunk's other locations, a repacked copy for instance, in the index files as they are *now*: this
module re-reads them (and ``gc/``, in a version-2 repository) without touching the in-memory index,
so reading never changes what a writer of the same process references.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Container

from tiervault.core.format.indexfile import PackRecord
from tiervault.errors import IntegrityError, ObjectNotFoundError
from tiervault.repo.gcstate import GcState, load_gc_state
from tiervault.repo.index import Location, PackInfo
from tiervault.repo.objects import bounded_gather
from tiervault.repo.repository import Repository

#: how often the index is listed again when a listed index file is absent when read (a
#: consolidation replaced it: its successor was stored before it was deleted)
RELIST = 3


async def gc_state(repo: Repository) -> GcState:
    """``gc/`` as stored now; empty in a version-1 repository, where nothing reads or writes it."""
    if not repo.gc_enabled:
        return GcState()
    return await load_gc_state(repo.backend, repo.objects)


async def index_records(repo: Repository) -> list[PackRecord]:
    """The pack records of every index file stored now, in listing order. Damaged index files are
    left out (``check`` reports them); a file deleted between the listing and the read (a
    consolidation) makes the listing be read again, as its replacement was stored before."""
    done: set[str] = set()
    records: list[PackRecord] = []

    async def load(name: str) -> list[PackRecord] | None:
        try:
            return await repo.load_index_file(name)
        except ObjectNotFoundError:
            return None  # replaced by a consolidation: list again
        except IntegrityError:
            return []

    for _ in range(RELIST):
        names = [n for n in await repo.index_names() if n not in done]
        loaded = await bounded_gather([functools.partial(load, n) for n in names])
        for name, recs in zip(names, loaded, strict=True):
            if recs is not None:
                done.add(name)
                records.extend(recs)
        if all(recs is not None for recs in loaded):
            break
    return records


async def locations_of(
    repo: Repository, chunks: Collection[bytes], *, exclude: Container[str] = ()
) -> dict[bytes, list[Location]]:
    """Every location of each of ``chunks`` that an index file stored now lists, outside the packs
    whose ids are in ``exclude``; each pack once per chunk, in index listing order."""
    wanted = set(chunks)
    out: dict[bytes, list[Location]] = {}
    seen: set[tuple[bytes, str]] = set()
    for rec in await index_records(repo):
        if rec.pack_id in exclude:
            continue
        info = PackInfo(rec.pack_id, rec.kind, rec.salt)
        for entry in rec.entries:
            if entry.id in wanted and (entry.id, rec.pack_id) not in seen:
                seen.add((entry.id, rec.pack_id))
                out.setdefault(entry.id, []).append(Location(info, entry))
    return out
