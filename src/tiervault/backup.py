"""Taking a recovery point of a protected item: the run around the archiver.

In order (docs/format.md, "Ordering invariants"): remove the temp files of killed writers past the
safe age; under format version 2, join the repository's heartbeat series (``repo/heartbeat.py``) and
only then read ``gc/`` and (first session) every index file again; index the packs an interrupted
snapshot left; pick the parent; run the archiver in a worker thread (cancellable: its threads stop
before the cancellation propagates); write the index; renew the heartbeat, and a lapsed writer
rescues what it needs (``repo/rescue.py``); commit the snapshot object last (checked again if the
commit took too long); end the session (the last one deletes the heartbeat); then let the disk tier
keep what the newest point needs.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tiervault.archiver import ArchiveOutcome, FolderArchiver, Progress
from tiervault.cache import CacheBackend
from tiervault.clock import Clock
from tiervault.deadline import stop_time
from tiervault.errors import UsageError
from tiervault.protection import require_text
from tiervault.repo.heartbeat import HeartbeatSeries
from tiervault.repo.leftovers import remove_stale
from tiervault.repo.provenance import host_name, now_iso, user_name
from tiervault.repo.repository import Repository
from tiervault.repo.rescue import after_commit, commit_renewal
from tiervault.repo.snapshots import ItemRecord, SnapshotRecord, datetime_iso
from tiervault.repo.treewalk import data_packs_of
from tiervault.selection import parent_of
from tiervault.version import __version__


@dataclass(frozen=True, slots=True)
class Backup:
    """What a snapshot run committed, and what its archiver reported."""

    record: SnapshotRecord
    outcome: ArchiveOutcome


def newest_point_pin(item: str) -> str:
    """The disk tier's pin key for the data packs the newest point of ``item`` needs."""
    return f"newest point of item {item}"


async def take(
    repo: Repository,
    item: ItemRecord,
    *,
    clock: Clock,
    disk_tier: CacheBackend | None = None,
    tags: Sequence[str] = (),
    force_rehash: bool = False,
    progress: Progress | None = None,
    deadline: float | datetime | None = None,
    time: datetime | None = None,
) -> Backup:
    """Snapshot ``item`` into ``repo`` and commit the point (see ``Vault.snapshot``)."""
    for tag in tags:
        require_text(tag, "a tag")
    point_time = given_time(time)
    if not await asyncio.to_thread(os.path.isdir, item.source):
        raise UsageError(f"source path {item.source!r} of item {item.name!r} is missing or not a directory")
    await remove_stale(repo.backend)  # temp files of killed writers, past the safe age
    stop_at = stop_time(deadline, clock)
    series = None
    if repo.gc_enabled:
        # version 2: the heartbeat first, then a fresh view of gc/ and the index (invariant 10)
        series = await repo.sessions.begin(clock, lambda first: repo.refresh_gc_view(reload_index=first))
    try:
        return await _session(
            repo, item, series, clock, disk_tier, tags, force_rehash, progress, stop_at, point_time
        )
    finally:
        if series is not None:
            await repo.sessions.end()  # the last session deletes the heartbeat (even when cancelled)


async def _session(
    repo: Repository,
    item: ItemRecord,
    series: HeartbeatSeries | None,
    clock: Clock,
    disk_tier: CacheBackend | None,
    tags: Sequence[str],
    force_rehash: bool,
    progress: Progress | None,
    stop_at: float | None,
    point_time: str | None,
) -> Backup:
    await repo.index_orphan_packs()  # resume: reuse what an interrupted snapshot stored
    parent = await parent_of(repo, item)
    archiver = FolderArchiver(
        repo,
        asyncio.get_running_loop(),
        os.fsencode(item.source),
        parent_tree=bytes.fromhex(parent.tree) if parent else None,
        parent_incomplete=parent is not None and parent.incomplete,
        force_rehash=force_rehash,
        progress=progress,
        stop_at=stop_at,
        clock=clock,
        # packs in flight: a remote store hides its latency behind more of them; on a local disk
        # two keep the disk busy and peak memory lower
        max_inflight=4 if repo.backend.capabilities.remote else 2,
    )
    outcome = await run_archiver(archiver)
    await repo.flush_index()
    renewed = None
    if series is not None:  # version 2, rule 6: renew, and a lapsed writer rescues what it needs
        renewed = await commit_renewal(repo, series, outcome.tree)
    committed = now_iso()
    rec = SnapshotRecord(
        item=item.name,
        time=point_time or committed,
        host=host_name(),
        user=user_name(),
        source=item.source,
        tree=outcome.tree.hex(),
        root=outcome.root,
        parent=parent.id if parent else None,
        tags=sorted(set(tags)),
        stats=outcome.stats.to_json(),
        errors=outcome.errors,
        partial=bool(outcome.errors),
        incomplete=outcome.incomplete,
        warnings=outcome.warnings,
        program=f"tiervault {__version__}",
        committed=committed if point_time is not None else None,
    )
    await repo.save_snapshot(rec)
    if series is not None and renewed is not None:
        await after_commit(repo, series, outcome.tree, rec.id, renewed)
    if disk_tier is not None and disk_tier.enabled and not rec.incomplete:
        # the disk tier keeps what the newest point of each item needs, while its bound allows
        await disk_tier.pin(newest_point_pin(item.name), await data_packs_of(repo, outcome.tree))
    return Backup(rec, outcome)


def given_time(time: datetime | None) -> str | None:
    """The stored form of a point time given to ``snapshot(time=)``; a naive one is refused."""
    if time is None:
        return None
    if not isinstance(time, datetime):
        raise UsageError(f"time must be a datetime, not {type(time).__name__}")
    try:
        return datetime_iso(time)
    except (ValueError, OverflowError) as exc:
        raise UsageError(f"time {time!r}: {exc} (give a time zone, e.g. +00:00)") from None


async def run_archiver(archiver: FolderArchiver) -> ArchiveOutcome:
    """``archiver.run`` in a worker thread. Cancelling the caller stops the archiver and waits for
    its threads to end (uploads in flight included) before the cancellation propagates: nothing
    keeps reading or storing behind a cancelled snapshot."""
    work = asyncio.ensure_future(asyncio.to_thread(archiver.run))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        archiver.cancel()
        while not work.done():
            try:
                await asyncio.wait({work})
            except asyncio.CancelledError:
                continue  # cancelled again: the threads still have to wind down first
        if not work.cancelled():
            work.exception()  # Cancelled, or a failure while winding down: the cancellation wins
        raise
