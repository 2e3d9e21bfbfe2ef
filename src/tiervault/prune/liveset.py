"""Step 3 of a prune: the live set, every chunk id some snapshot references, and the refusals
(docs/format.md, "prune, step by step").

The live set is a set of 32-byte chunk ids held in memory (about 100 bytes per chunk with Python's
overhead: some 100 MB for a million chunks). That is fine for the repositories tiervault serves
today; a larger one would need an on-disk or probabilistic set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tiervault.errors import BackendError, IntegrityError
from tiervault.prune.load import Loaded
from tiervault.repo.repository import Repository
from tiervault.repo.treewalk import point_tree, referenced_chunks


@dataclass
class LiveSet:
    live: set[bytes] = field(default_factory=set)
    #: why nothing may be deleted (empty: the live set is complete)
    refused: list[str] = field(default_factory=list)
    #: chunk id -> ids of the existing, not gone packs holding it
    locations: dict[bytes, list[str]] = field(default_factory=dict)


def view_of(repo: Repository, loaded: Loaded) -> Repository:
    """A repository over the same backend and keys whose index holds exactly the packs of the step-2
    listing (indexed or read from their own header), a chunk's location preferring packs that are
    neither condemned nor gone: trees are read from what exists now, not from what ``repo`` loaded
    at open."""
    view = Repository(repo.backend, repo.config, repo.keys, repo.key_name)
    gc = loaded.gc
    records = [r for pid, r in loaded.records().items() if pid in loaded.packs]
    for rec in sorted(records, key=lambda r: (gc.rank(r.pack_id), r.pack_id)):
        view.index.add_record(rec)
    return view


async def live_set(view: Repository, loaded: Loaded) -> LiveSet:
    """Walk every snapshot's trees (complete and incomplete points alike). Refuse (``refused``) on a
    damaged snapshot, a tree that cannot be read, or a referenced chunk with no location."""
    out = LiveSet()
    gone = loaded.gc.gone
    for pid, rec in loaded.records().items():
        if pid in loaded.packs and pid not in gone:
            for e in rec.entries:
                out.locations.setdefault(e.id, []).append(pid)
    for exc in loaded.damaged_snapshots:
        out.refused.append(
            f"{exc.name} does not decode ({exc.detail}): it may reference anything, so nothing is provably "
            "unreferenced until it is repaired or removed"
        )
    roots: list[bytes] = []
    for snap in loaded.snapshots:
        try:
            tree, _root = point_tree(snap)
        except IntegrityError as exc:
            out.refused.append(f"{exc.name}: {exc.detail}")
            continue
        roots.append(tree)
    if out.refused:
        return out
    try:
        out.live = await referenced_chunks(view, roots)
    except (IntegrityError, BackendError) as exc:
        out.refused.append(f"a tree a snapshot references cannot be read: {exc}")
        return out
    # a chunk only a gone pack that still exists holds is not missing (a crafted GONE, or a sweep
    # killed midway): the sweep's re-check keeps that pack, so the run need not refuse
    last_resort = {
        e.id
        for pid, rec in loaded.records().items()
        if pid in gone and pid in loaded.packs
        for e in rec.entries
    }
    missing = [c for c in out.live if c not in out.locations and c not in last_resort]
    if missing:
        out.refused.append(
            f"{len(missing)} referenced chunk(s) have no location in a stored pack, e.g. "
            f"{min(missing).hex()[:16]} (run check)"
        )
    return out
