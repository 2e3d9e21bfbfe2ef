"""Index files written by a prune (docs/format.md, "prune, step by step", steps 3-4 and 7;
invariant 14): indexing the unindexed packs that hold live chunks (before anything is deleted, so
no live chunk is ever only in a pack no index lists), and consolidating the index into few large
files, each stored before any file it replaces is deleted."""

from __future__ import annotations

import asyncio
import logging

from tiervault.core.format.envelope import ObjectType, seal_object
from tiervault.core.format.indexfile import PackRecord, encode_index
from tiervault.errors import IntegrityError, ObjectNotFoundError
from tiervault.prune.context import PruneContext
from tiervault.prune.decide import group
from tiervault.repo.objects import put_hashed

log = logging.getLogger("tiervault.prune")


async def store_index(ctx: PruneContext, records: list[PackRecord]) -> str:
    key = ctx.repo.keys.encryption
    data = await asyncio.to_thread(lambda: seal_object(key, ObjectType.INDEX, encode_index(records)))
    return await put_hashed(ctx.backend, "index/", data)


async def index_orphans(ctx: PruneContext) -> None:
    """Unindexed packs whose header authenticated, neither condemned nor gone, holding a live chunk:
    one index file for them (an ordinary INDEX object, as a writer's ``index_orphan_packs``)."""
    blocked = ctx.condemned | ctx.gone
    live = ctx.live.live
    recs = [
        r
        for pid, r in sorted(ctx.loaded.unindexed.items())
        if pid not in blocked and any(e.id in live for e in r.entries)
    ]
    if not recs:
        return
    ctx.report.indexed_orphans = [r.pack_id for r in recs]
    if ctx.dry_run:
        return
    name = await store_index(ctx, recs)
    ctx.written_index.append(name)
    ctx.new_records.extend(recs)


def _merged(ctx: PruneContext) -> tuple[list[PackRecord], bool]:
    """The records of every index file read and written, each pack once, minus gone packs that no
    longer exist or are about to be deleted (``ctx.existing`` no longer holds those); and whether
    anything was dropped."""
    out: dict[str, PackRecord] = {}
    for recs in ctx.loaded.index_files.values():
        for r in recs:
            out.setdefault(r.pack_id, r)
    for r in ctx.new_records:
        out.setdefault(r.pack_id, r)
    # gone packs that no longer exist, and those this run's sweep deletes right after
    dropped = {pid for pid in out if pid in ctx.gone and pid not in ctx.existing}
    return [r for pid, r in sorted(out.items()) if pid not in dropped], bool(dropped)


async def consolidate(ctx: PruneContext) -> set[str]:
    """Step 7. Returns the pack ids the index files this run leaves (consolidated or kept) list."""
    replaced = sorted(set(ctx.loaded.index_files) | set(ctx.written_index))
    records, dropped = _merged(ctx)
    groups = group(records, [len(r.entries) for r in records])
    ctx.report.index_files_before = len(ctx.loaded.index_files) + len(ctx.loaded.damaged_index)
    if len(replaced) <= max(1, len(groups)) and not dropped:
        ctx.report.index_files_after = ctx.report.index_files_before + len(ctx.written_index)
        return {r.pack_id for r in records}
    ctx.report.index_files_after = len(groups) + len(ctx.loaded.damaged_index)
    if ctx.dry_run:
        return {r.pack_id for r in records}
    new = {await store_index(ctx, g) for g in groups}
    ctx.written_index.extend(sorted(new - set(ctx.written_index)))
    old = [n for n in replaced if n not in new]
    if old:
        await ctx.backend.delete_many(old)
    return {r.pack_id for r in records}


async def listed_now(ctx: PruneContext, listed: set[str]) -> set[str]:
    """Step 8's view: ``listed`` plus the packs of index files others wrote during the run."""
    known = set(ctx.loaded.index_files) | set(ctx.written_index) | {e.name for e in ctx.loaded.damaged_index}
    out = set(listed)
    for name in await ctx.repo.index_files.names():
        if name in known:
            continue
        try:
            recs = await ctx.repo.index_files.load_file(name)
        except ObjectNotFoundError:
            continue  # a consolidated file of ours, or another's, replaced since
        except IntegrityError as exc:
            log.warning("%s", exc)
            continue
        out.update(r.pack_id for r in recs)
    return out
