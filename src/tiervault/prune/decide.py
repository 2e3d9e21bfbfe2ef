"""The pure decisions of a prune (docs/format.md, "prune, step by step"): when a plan may be swept,
which of its packs are reinstated, which packs a repack rewrites, which packs the mark condemns,
how the consolidated index is grouped, and which GONE objects are retired. No I/O: everything is
decided on the step-2 listings, so these functions are tested on their own (hypothesis)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from tiervault.repo.gcstate import GRACE, HEARTBEAT_EXPIRY, MAX_SKEW, Gone, Heartbeat

#: most blob entries of one consolidated index file (about 47 MiB of plaintext)
MAX_INDEX_ENTRIES = 1 << 20

#: (chunk id, stored bytes) of every blob of a pack
Blobs = Sequence[tuple[bytes, int]]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Due:
    """Whether a plan may be swept now; if not, until when at least, and which heartbeat holds it."""

    ok: bool
    until: datetime | None = None
    heartbeat: Heartbeat | None = None


def plan_due(mark: datetime, now: datetime, beats: Iterable[Heartbeat]) -> Due:
    """Sweep conditions (a) ``now - mark >= GRACE`` and (b) no live ``"snapshot"`` heartbeat whose
    series started before ``mark + MAX_SKEW``."""
    blocker: Heartbeat | None = None
    for b in beats:
        holds = b.record.kind == "snapshot" and b.live(now) and b.started < mark + MAX_SKEW
        if holds and (blocker is None or b.stored > blocker.stored):
            blocker = b
    grace_ends = mark + GRACE
    if now >= grace_ends and blocker is None:
        return Due(True)
    until = grace_ends
    if blocker is not None:  # at the earliest once that heartbeat is dead
        until = max(until, blocker.stored + HEARTBEAT_EXPIRY + MAX_SKEW)
    return Due(False, until, blocker)


def _has_other(
    cid: bytes, here: str, locations: Mapping[bytes, Sequence[str]], blocked: Collection[str]
) -> bool:
    return any(q != here and q not in blocked for q in locations.get(cid, ()))


def reinstate(
    packs: Iterable[str],
    live: Collection[bytes],
    locations: Mapping[bytes, Sequence[str]],
    blocked: Collection[str],
    blobs: Mapping[str, Blobs],
) -> set[str]:
    """The packs of ``packs`` to keep: those holding a live chunk with no location outside
    ``blocked`` (condemned, gone, unprovable or absent packs), keeping one such pack per chunk
    (lowest id first). A pack without known blobs is kept: it cannot be proven unneeded."""
    kept: set[str] = set()
    covered: set[bytes] = set()
    for pid in sorted(packs):
        if pid not in blobs:
            kept.add(pid)
            continue
        need = [
            c
            for c, _ in blobs[pid]
            if c in live and c not in covered and not _has_other(c, pid, locations, blocked)
        ]
        if need:
            kept.add(pid)
            covered.update(c for c, _ in blobs[pid] if c in live)
    return kept


def mark(
    candidates: Iterable[str],
    live: Collection[bytes],
    locations: Mapping[bytes, Sequence[str]],
    blocked: Collection[str],
    blobs: Mapping[str, Blobs],
    *,
    first: Collection[str] = (),
) -> list[str]:
    """Step 6: visit ``candidates`` in pack-id order and condemn one if every live chunk it holds has
    a location in another pack that is not ``blocked`` and not condemned earlier in this visit.

    The candidates in ``first`` (the packs just repacked) are visited before the others: a repacked
    pack's chunks all have a copy in the new packs or in a kept pack not yet visited, so each of
    them is condemned (visiting by id alone could keep it and condemn the other holder instead)."""
    condemned: list[str] = []
    now_blocked = set(blocked)
    cands = set(candidates)
    early = sorted(cands & set(first))
    for pid in early + sorted(cands - set(early)):
        if pid in now_blocked or pid not in blobs:
            continue
        if all(_has_other(c, pid, locations, now_blocked) for c, _ in blobs[pid] if c in live):
            condemned.append(pid)
            now_blocked.add(pid)
    return condemned


@dataclass(frozen=True, slots=True)
class RepackChoice:
    packs: tuple[str, ...]  #: packs to rewrite, lowest live fraction first
    copy: dict[str, tuple[bytes, ...]]  #: pack -> the live chunks to copy out of it
    live_bytes: int  #: stored bytes of the blobs copied
    unused_before: int  #: unused bytes in the kept packs before the repack
    unused_after: int
    total: int  #: bytes of the kept packs
    #: packs of ``skip`` that would have been chosen (inside their tier's minimum: early deletion)
    deferred: tuple[str, ...] = ()


def unused_limit(max_unused: float | int, total: int) -> int:
    """``max_unused``: a fraction of ``total`` (a float in [0, 1]) or bytes (an int)."""
    if isinstance(max_unused, float):
        return int(max_unused * total)
    return max_unused


def select_repack(
    kept: Iterable[str],
    sizes: Mapping[str, int],
    live: Collection[bytes],
    blobs: Mapping[str, Blobs],
    *,
    max_unused: float | int,
    max_repack_bytes: int | None,
    skip: Collection[str] = (),
) -> RepackChoice:
    """Step 5: among the ``kept`` packs (those the mark would keep), each live chunk is *used* in one
    pack only (its lowest-id holder); every other byte is unused. While the unused bytes exceed
    ``max_unused``, rewrite the pack with the lowest live fraction whose used bytes still fit in
    ``max_repack_bytes``. A pack of ``skip`` (inside its tier's minimum retention) is never chosen:
    it is named in ``deferred`` where it would have been, and its unused bytes stay."""
    order = sorted(p for p in kept if p in blobs)
    owner: dict[bytes, str] = {}
    for pid in order:
        for c, _ in blobs[pid]:
            if c in live:
                owner.setdefault(c, pid)
    used: dict[str, int] = {}
    copy: dict[str, tuple[bytes, ...]] = {}
    for pid in order:
        mine = [(c, n) for c, n in blobs[pid] if owner.get(c) == pid]
        used[pid] = sum(n for _, n in mine)
        copy[pid] = tuple(dict.fromkeys(c for c, _ in mine))
    total = sum(sizes[p] for p in order)
    unused = total - sum(used.values())
    limit = unused_limit(max_unused, total)
    before, copied, chosen, deferred = unused, 0, [], []
    for pid in sorted(order, key=lambda p: (used[p] / max(1, sizes[p]), p)):
        if unused <= limit:
            break
        if max_repack_bytes is not None and copied + used[pid] > max_repack_bytes:
            continue
        if pid in skip:
            deferred.append(pid)
            continue
        chosen.append(pid)
        copied += used[pid]
        unused -= sizes[pid] - used[pid]
    return RepackChoice(
        tuple(chosen), {p: copy[p] for p in chosen}, copied, before, unused, total, tuple(deferred)
    )


def group(items: Sequence[_T], sizes: Sequence[int], limit: int = MAX_INDEX_ENTRIES) -> list[list[_T]]:
    """Consecutive groups of ``items`` with at most ``limit`` summed ``sizes`` each (an item larger
    than the limit is a group of its own)."""
    out: list[list[_T]] = []
    cur: list[_T] = []
    n = 0
    for item, size in zip(items, sizes, strict=True):
        if cur and n + size > limit:
            out.append(cur)
            cur, n = [], 0
        cur.append(item)
        n += size
    if cur:
        out.append(cur)
    return out


@dataclass(frozen=True, slots=True)
class Retire:
    unlist: tuple[Gone, ...]  #: replace by their ``unlisted`` form
    delete: tuple[Gone, ...]  #: delete (superseded ones, and expired ``unlisted`` ones)


def retire_gones(
    gones: Iterable[Gone],
    plans: Collection[str],
    listed: Collection[str],
    now: datetime,
    beats: Iterable[Heartbeat],
) -> Retire:
    """Step 8 on the GONE objects: one whose plan is deleted and whose packs no index file lists
    is unlisted; an unlisted one is deleted ``GRACE`` after its store time once no live
    ``"snapshot"`` heartbeat started before that store time + ``MAX_SKEW``; a superseded one goes."""
    gones = list(gones)
    beats = list(beats)
    superseded = {g.record.supersedes for g in gones if g.record.supersedes is not None}
    unlist: list[Gone] = []
    delete: list[Gone] = []
    for g in sorted(gones, key=lambda g: g.id):
        if g.id in superseded:
            delete.append(g)
        elif not g.record.unlisted:
            if g.record.plan not in plans and not any(p.id in listed for p in g.record.packs):
                unlist.append(g)
        elif now - g.stored >= GRACE and plan_due(g.stored, now, beats).ok:
            delete.append(g)
    return Retire(tuple(unlist), tuple(delete))
