"""A snapshot's commit under format version 2 (docs/format.md, "Writers (snapshot) under version 2",
rule 6; ordering invariants 10 and 15): the heartbeat renewed at the commit, and the *lapsed-writer
check* that a writer runs when its series lapsed (or a GONE object is damaged).

The check reads ``gc/`` again, lists ``data/`` and ``meta/``, reads every index file into a fresh view
in which a pack that is missing, gone or condemned is not usable, and walks the new point's tree.
Every chunk it references without a usable location is *rescued*: read (verified) from a pack that
still holds it and stored again, in a new pack of this session, through the ordinary pack writer;
then the index file is written. A chunk no pack holds any more fails the session with
``LapsedWriterError``. After the snapshot is stored, a commit that took ``LAPSE`` or more in store
time runs the check again and withdraws (deletes) the snapshot if a chunk is lost.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime

from tiervault.core.format.pack import FLAG_TREE, PackKind
from tiervault.errors import BackendError, IntegrityError, LapsedWriterError
from tiervault.repo.gcstate import LAPSE, GcState, load_gc_state
from tiervault.repo.heartbeat import HeartbeatSeries
from tiervault.repo.index import MISSING, NORMAL
from tiervault.repo.objects import bounded_gather
from tiervault.repo.packer import Packer
from tiervault.repo.repository import Repository
from tiervault.repo.treewalk import referenced_chunks

log = logging.getLogger("tiervault.repo")

LAPSED = "packs this snapshot needed were pruned while the writer was suspended; run it again"


class CheckRanks:
    """The lapsed check's view: ``missing`` packs (indexed, not listed) rank below gone ones; every
    condemned pack is unusable, whichever plan condemned it."""

    def __init__(
        self, state: GcState, missing: frozenset[str] | None = None, listed: frozenset[str] = frozenset()
    ) -> None:
        self.state, self.missing, self.listed = state, missing, listed

    def rank(self, pack_id: str, /) -> int:
        if self.missing is None:  # while the view is built: whatever the listing did not show
            if pack_id not in self.listed:
                return MISSING
        elif pack_id in self.missing:
            return MISSING
        return self.state.rank(pack_id)


async def commit_renewal(repo: Repository, series: HeartbeatSeries, tree: bytes) -> datetime:
    """Before the snapshot is stored: renew the heartbeat (measuring the lapse); a lapsed writer, or
    one that knows of a damaged GONE, runs the lapsed check. Returns the renewal's store time."""
    renewed = await series.renew()
    if series.lapsed or repo.gc.has_damaged_gone:
        await lapsed_check(repo, tree)
    return renewed


async def after_commit(
    repo: Repository, series: HeartbeatSeries, tree: bytes, snapshot_id: str, renewed: datetime
) -> None:
    """After the snapshot is stored: if its store time is ``LAPSE`` or more after the commit's renewal,
    the writer may have been declared dead meanwhile: check again, and withdraw the snapshot if a
    chunk it references is in no pack any more."""
    name = "snapshots/" + snapshot_id
    stored = (await repo.backend.stat(name)).modified
    if stored - renewed < LAPSE:
        return
    series.lapsed = True
    log.warning("snapshot stored %s after the commit's heartbeat: checking its packs again", stored - renewed)
    try:
        await lapsed_check(repo, tree)
    except LapsedWriterError:
        await repo.backend.delete(name)
        log.error("snapshot %s withdrawn: %s", snapshot_id[:12], LAPSED)
        raise


async def lapsed_check(repo: Repository, tree: bytes) -> int:
    """Rescue every chunk the point with root ``tree`` references that has no usable location, or
    raise ``LapsedWriterError`` if one is in no pack any more. Returns how many chunks were rescued."""
    backend = repo.backend
    state = await load_gc_state(backend, repo.objects)
    listed = frozenset(
        [i.name.rsplit("/", 1)[-1] for kind in PackKind async for i in backend.list(kind.prefix + "/")]
    )
    await repo.index_files.reload(CheckRanks(state, listed=listed))
    repo.gc = state
    index = repo.index
    # from now on only the packs that were missing stay unusable: packs stored later are usable
    repo.index.set_ranks(CheckRanks(state, frozenset(index.pack_ids() - listed)))
    try:
        referenced = await referenced_chunks(repo, [tree])
    except (IntegrityError, BackendError) as exc:
        raise LapsedWriterError(getattr(exc, "name", "meta/"), f"{LAPSED} (a tree: {exc})") from exc
    bad = sorted(cid for cid in referenced if index.location_rank(cid) != NORMAL)
    if not bad:
        return 0
    log.warning("rescuing %d chunk(s) of this snapshot from packs a prune condemned or deleted", len(bad))
    lost: list[LapsedWriterError] = []
    async with Packer(repo) as packer:

        async def rescue(cid: bytes) -> None:
            loc = index.lookup(cid)
            if loc is None:
                lost.append(LapsedWriterError("index/", f"{LAPSED} (chunk {cid.hex()[:16]} is in no index)"))
                return
            is_tree = loc.entry.flags & FLAG_TREE
            try:
                # a tree this process read (authenticated) is still in memory even if its pack is gone
                data = (repo.cached_tree_data(cid) if is_tree else None) or await repo.read_blob(cid)
            except (IntegrityError, BackendError) as exc:
                lost.append(LapsedWriterError(loc.pack.name, f"{LAPSED} (chunk {cid.hex()[:16]}: {exc})"))
                return
            kind = PackKind.META if is_tree else PackKind.DATA
            await packer.add(kind, cid, data)

        await bounded_gather([functools.partial(rescue, c) for c in bad], limit=8)
        if lost:
            for failure in lost:
                log.error("%s", failure)
            raise lost[0]
    await repo.flush_index()
    log.warning("rescued %d chunk(s) into new packs", len(bad))
    return len(bad)
