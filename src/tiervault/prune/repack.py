"""Step 5 of a prune, the repack (docs/format.md, "prune, step by step"; invariant 13): copy the live
blobs of the chosen packs into new packs through the ordinary pack writer, then store their index
file. The old packs are condemned by the mark that follows; nothing is deleted here."""

from __future__ import annotations

import asyncio
import logging

from tiervault.core.crypto import object_hash
from tiervault.core.format.indexfile import PackRecord
from tiervault.errors import IntegrityError, ObjectArchivedError, ObjectNotFoundError
from tiervault.prune.context import PruneContext
from tiervault.prune.decide import RepackChoice, mark, select_repack
from tiervault.prune.early import EarlyPack
from tiervault.repo.gcstate import ORPHAN_MIN_AGE
from tiervault.repo.index import PackInfo
from tiervault.repo.packer import Packer
from tiervault.repo.repository import Repository

log = logging.getLogger("tiervault.prune")

#: stands for the packs a dry run's repack would write (a location no pack id can be)
DRY_RUN_PACK = "repacked-in-dry-run"


def candidates(ctx: PruneContext) -> list[str]:
    """Packs the mark may condemn: existing, not condemned, gone or unprovable, with known blobs; an
    unindexed one only once ``ORPHAN_MIN_AGE`` old; never one this run wrote."""
    blocked = ctx.blocked()
    mine = {r.pack_id for r in ctx.new_records if r.pack_id not in ctx.loaded.unindexed}
    young = {
        pid
        for pid in ctx.loaded.unindexed
        if pid in ctx.loaded.packs and ctx.loaded.packs[pid].modified >= ctx.now - ORPHAN_MIN_AGE
    }
    return sorted(p for p in ctx.existing if p in ctx.blobs and p not in blocked | mine | young)


def choose(ctx: PruneContext, max_unused: float | int, max_repack_bytes: int | None) -> RepackChoice:
    cand = candidates(ctx)
    taken = set(mark(cand, ctx.live.live, ctx.live.locations, ctx.blocked(), ctx.blobs))
    kept = [p for p in cand if p not in taken]
    early = {} if ctx.allow_early_delete else {p: e for p in kept if (e := ctx.early(p)) is not None}
    choice = select_repack(
        kept,
        ctx.sizes,
        ctx.live.live,
        ctx.blobs,
        max_unused=max_unused,
        max_repack_bytes=max_repack_bytes,
        skip=early,
    )
    for pid in choice.deferred:  # a repacked pack is condemned, then swept: deleted inside its minimum
        ctx.report.early_deferred.append(EarlyPack(pid, "repack", None, early[pid]))
    return choice


async def repack(ctx: PruneContext, choice: RepackChoice) -> set[str]:
    """Copy ``choice``; returns the packs actually copied out (a pack that fails to read is left)."""
    rep = ctx.report
    if not choice.packs:
        return set()
    if ctx.dry_run:
        for pid in choice.packs:
            for c in choice.copy[pid]:
                ctx.live.locations.setdefault(c, []).append(DRY_RUN_PACK)
        rep.repacked = list(choice.packs)
        rep.repack_copied_bytes = choice.live_bytes
        return set(choice.packs)
    scratch = Repository(ctx.backend, ctx.repo.config, ctx.repo.keys, ctx.repo.key_name)
    done: set[str] = set()
    records = ctx.loaded.records()
    async with Packer(scratch) as packer:
        for pid in choice.packs:
            rec = records[pid]
            info = PackInfo(pid, rec.kind, rec.salt)
            try:
                data = await ctx.backend.get(info.name)
                if await asyncio.to_thread(object_hash, data) != pid:
                    raise IntegrityError(info.name, "content does not match its name (hash mismatch)")
                entries = {e.id: e for e in rec.entries}
                for cid in choice.copy[pid]:
                    e = entries[cid]
                    sealed = data[e.offset : e.offset + e.length]
                    plain = await asyncio.to_thread(ctx.view.packs.open_blob, info, e, sealed)
                    await packer.add(rec.kind, cid, plain)
            except (IntegrityError, ObjectNotFoundError, ObjectArchivedError) as exc:  # archived: unreadable
                log.warning("pack %s not repacked: %s", pid[:12], exc)
                rep.warnings.append(f"pack {pid} not repacked: {exc}")
                continue
            done.add(pid)
    name = await scratch.flush_index()
    if name is not None:
        ctx.written_index.append(name)
    # every pack the packer stored, also those of index files it flushed by itself on the way
    by_pack = scratch.index.entries_by_pack()
    for p in sorted(scratch.index.packs(), key=lambda p: p.id):
        ctx.add_record(PackRecord(p.id, p.kind, p.salt, tuple(sorted(by_pack[p.id], key=lambda e: e.offset))))
        rep.repack_new_packs.append(p.id)
    rep.repacked = sorted(done)
    rep.repack_copied_bytes = sum(n for p in done for c, n in ctx.blobs[p] if c in set(choice.copy[p]))
    return done
