"""The restore planner: what a restore of a point (or part of it) needs, found before any write.

``plan_restore`` refuses a point beyond the expansion bounds (``treewalk.check_point``), walks it with
the one tree walker (``treewalk.walk``), keeping what the :class:`Selection` selects and the
directories above it, resolves every chunk of every selected file to its pack (a chunk no index
lists is an ``IntegrityError``; a file whose size does not match its chunks and holes, or that names
a tree or a chunk larger than the repository's chunker cuts, is an error for that file), and finds
the state of every pack needed: readable (and from which tier), in the Archive tier, being
rehydrated, or missing. It reads trees and asks the store about packs; it never
touches a restore target. ``RestorePlan.refuse_unreadable`` is the restore's check before it writes.
"""

from __future__ import annotations

import asyncio
import enum
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tiervault.backend.base import ObjectInfo, Tier
from tiervault.core.format.pack import FLAG_TREE, PackEntry, PackKind
from tiervault.core.format.tree import ContentItem, Node, node_from_json
from tiervault.errors import NotFoundError, ObjectNotFoundError, RehydrationNeededError
from tiervault.repo.index import Location, PackInfo
from tiervault.repo.repository import Repository
from tiervault.repo.snapshots import SnapshotRecord
from tiervault.repo.treewalk import DEFAULT_MAX_DEPTH, DEFAULT_MAX_ENTRIES, check_point, walk
from tiervault.restore.dirfd import check_name
from tiervault.restore.files import RestoreFile
from tiervault.restore.relocate import Relocator
from tiervault.restore.selection import Selection

#: packs whose state is asked with one ``stat`` each, at most this many at a time
STAT_CONCURRENCY = 16
#: more packs to ask about than this: one ``list`` of their folder instead of a ``stat`` per pack
LIST_ABOVE = 64
#: the tier a readable pack is reported in when the local disk tier holds a copy of it
DISK = "disk"


class PackState(enum.StrEnum):
    """Whether a pack a restore needs can be read now."""

    READABLE = "readable"
    ARCHIVED = "archived"  #: in the Archive tier, not rehydrated: ``rehydrate`` it first
    REHYDRATING = "rehydrating"  #: rehydration started, not finished
    MISSING = "missing"  #: not in the store (and not on the local disk tier)


class DiskTier(Protocol):
    """The local disk tier as the planner sees it (``cache.CacheBackend``)."""

    async def holds(self, names: Iterable[str]) -> set[str]:
        """Which of ``names`` it holds a copy of, without a request to the store."""


@dataclass(slots=True)
class PackNeed:
    """One pack a restore reads from: how many of its blobs, their stored bytes, and its state."""

    pack: PackInfo
    blobs: int = 0
    bytes: int = 0
    state: PackState = PackState.READABLE
    #: where it is read from: ``"disk"`` (the disk tier), a store tier (``"hot"``...), None if missing
    tier: str | None = None
    #: the whole pack's stored size, when the store was asked (what a rehydration copies)
    size: int | None = None
    #: its staging copy (``restore/rehydration.py``), when a rehydration record names the pack
    staging: str | None = None


@dataclass(frozen=True, slots=True)
class RestorePlanSummary:
    """What a restore of a selection needs (``Vault.plan_restore``), before anything is written."""

    files: int  #: selected files (hard-link members included)
    dirs: int
    others: int  #: symlinks, FIFOs, devices
    bytes: int  #: the selected files' sizes
    fetch_bytes: int  #: stored bytes of the distinct blobs to read (before coalescing)
    packs: dict[str, int]  #: packs needed, by state (``readable``, ``archived``, ...)
    bytes_by_state: dict[str, int]
    bytes_by_tier: dict[str, int]  #: of readable and archived packs: ``disk``, ``hot``, ``archive``...
    errors: tuple[dict[str, str], ...] = ()  #: entries the plan already knows cannot be restored
    now_files: int = 0  #: selected files whose packs are all readable now (restorable at once)
    now_bytes: int = 0
    #: packs still to come out of Archive (archived, or rehydrating): their number and whole sizes
    rehydrate_packs: int = 0
    rehydrate_bytes: int = 0
    #: ``Vault.plan_restore`` adds the priority, the wait estimate and the rehydration in progress
    rehydration: dict[str, Any] | None = None

    @property
    def readable(self) -> bool:
        """Every pack needed can be read now (nothing archived, rehydrating or missing)."""
        return set(self.packs) <= {PackState.READABLE.value}

    def to_json(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "dirs": self.dirs,
            "others": self.others,
            "bytes": self.bytes,
            "fetch_bytes": self.fetch_bytes,
            "readable": self.readable,
            "packs": dict(self.packs),
            "bytes_by_state": dict(self.bytes_by_state),
            "bytes_by_tier": dict(self.bytes_by_tier),
            "errors": list(self.errors),
            "now_files": self.now_files,
            "now_bytes": self.now_bytes,
            "blocked_files": self.files - self.now_files,
            "blocked_bytes": self.bytes - self.now_bytes,
            "rehydrate_packs": self.rehydrate_packs,
            "rehydrate_bytes": self.rehydrate_bytes,
            "rehydration": self.rehydration,
        }


@dataclass(slots=True)
class RestorePlan:
    """Directories, files and other entries selected, in walk order, and the packs they need."""

    snapshot: SnapshotRecord
    root: Node
    whole: bool  #: everything is selected (the root's metadata is applied to the target)
    dirs: list[tuple[bytes, Node]] = field(default_factory=list)
    files: list[RestoreFile] = field(default_factory=list)
    others: list[tuple[bytes, Node]] = field(default_factory=list)
    packs: dict[str, PackNeed] = field(default_factory=dict)  #: by pack name
    errors: list[dict[str, str]] = field(default_factory=list)

    def summary(self) -> RestorePlanSummary:
        packs: dict[str, int] = {}
        by_state: dict[str, int] = {}
        by_tier: dict[str, int] = {}
        for need in self.packs.values():
            packs[need.state] = packs.get(need.state, 0) + 1
            by_state[need.state] = by_state.get(need.state, 0) + need.bytes
            if need.tier is not None:
                by_tier[need.tier] = by_tier.get(need.tier, 0) + need.bytes
        now_files = now_bytes = 0
        for f in self.files:
            if not f.failed and all(
                loc is None or self.packs[loc.pack.name].state is PackState.READABLE
                for _i, _n, loc in (f.link_to.layout if f.link_to is not None else f.layout)
            ):
                now_files += 1
                now_bytes += f.node.size
        waiting = [n for n in self.packs.values() if n.state in (PackState.ARCHIVED, PackState.REHYDRATING)]
        return RestorePlanSummary(
            now_files=now_files,
            now_bytes=now_bytes,
            rehydrate_packs=len(waiting),
            rehydrate_bytes=sum(n.size if n.size is not None else n.bytes for n in waiting),
            files=len(self.files),
            dirs=len(self.dirs),
            others=len(self.others),
            bytes=sum(f.node.size for f in self.files),
            fetch_bytes=sum(n.bytes for n in self.packs.values()),
            packs=packs,
            bytes_by_state=by_state,
            bytes_by_tier=by_tier,
            errors=tuple(self.errors),
        )

    def unreadable(self) -> list[PackNeed]:
        return [n for n in self.packs.values() if n.state is not PackState.READABLE]

    def refuse_unreadable(self) -> None:
        """Raise, before anything is written, if a pack needed cannot be read now: missing packs are
        ``ObjectNotFoundError``, archived or rehydrating ones ``RehydrationNeededError`` (an
        ``ObjectArchivedError`` carrying the plan's summary)."""
        bad = self.unreadable()
        if not bad:
            return
        total = len(self.packs)
        missing = [n for n in bad if n.state is PackState.MISSING]
        if missing:
            raise ObjectNotFoundError(
                f"{_packs(missing)} of the {total} this restore needs "
                f"{'is' if len(missing) == 1 else 'are'} missing from the repository "
                f"(first: {missing[0].pack.name}); nothing was written"
            )
        waiting = [n for n in bad if n.state is PackState.REHYDRATING]
        archived = [n for n in bad if n.state is PackState.ARCHIVED]
        parts = []
        if archived:
            parts.append(f"{_packs(archived)} in the Archive tier")
        if waiting:
            parts.append(f"{_packs(waiting)} still being rehydrated")
        them = "it" if len(bad) == 1 else "them"
        advice = (
            f"rehydrate {them} first (restore --rehydrate)" if archived else "wait until rehydration finishes"
        )
        raise RehydrationNeededError(
            f"this restore needs {' and '.join(parts)} (of {total} packs; first: {bad[0].pack.name}): "
            f"{advice}; nothing was written",
            self.summary().to_json(),
        )


def _packs(needs: Sequence[PackNeed]) -> str:
    n, size = len(needs), sum(x.bytes for x in needs)
    return f"{n} {'pack' if n == 1 else 'packs'} ({size:,} bytes)"


def _add_error(errors: list[dict[str, str]], rel: bytes, msg: str) -> None:
    errors.append({"path": os.fsdecode(rel), "error": msg})


async def _walk(repo: Repository, plan: RestorePlan, sel: Selection, max_depth: int) -> None:
    """The selected entries, and the directories above them (a directory that cannot hold a selected
    path is not entered; one with nothing selected below it, and not selected itself, is dropped)."""
    dirs: list[tuple[bytes, Node]] = []
    kept: list[bool] = []
    index_of: dict[bytes, int] = {}  # a planned directory's position (the latest of a duplicate name)

    def keep_above(rel: bytes) -> None:
        parent = rel.rpartition(b"/")[0]
        while parent:
            i = index_of[parent]  # entries are only reached through planned directories
            if kept[i]:
                break  # kept already, and so is everything above it
            kept[i] = True
            parent = parent.rpartition(b"/")[0]

    def enter(rel: bytes, node: Node) -> bool:  # a directory is entered when it was just planned
        return bool(dirs) and dirs[-1][1] is node and dirs[-1][0] == rel

    tree = bytes.fromhex(plan.snapshot.tree)
    async for rel, node in walk(repo, tree, descend=enter, max_depth=max_depth):
        try:
            check_name(node.name)  # the decoder refuses these; a restore never relies on it
        except OSError as exc:
            _add_error(plan.errors, rel, f"{exc.strerror} in the recovery point")
            continue
        if node.type == "dir":
            if not sel.may_contain(rel):
                continue
            index_of[rel] = len(dirs)
            dirs.append((rel, node))
            kept.append(False)
            if sel.selected(rel):
                kept[-1] = True
                keep_above(rel)
            continue
        if not sel.selected(rel):
            continue
        keep_above(rel)
        if node.type == "file":
            parent, _, name = rel.rpartition(b"/")
            plan.files.append(RestoreFile(rel, parent, name, node))
        else:
            plan.others.append((rel, node))
    plan.dirs = [d for d, k in zip(dirs, kept, strict=True) if k]


def _not_data(loc: Location, largest: int) -> str | None:
    """Why a file may not hold the chunk at ``loc`` (None: it may). A tree's plaintext is no file's
    content, and no chunk a repository's chunker cut is larger than its ``max_size``: a crafted one
    (up to 4 GiB, compressed to almost nothing) would be decompressed in memory by each fetch task."""
    cid = loc.entry.id.hex()[:16]
    if loc.pack.kind is not PackKind.DATA or loc.entry.flags & FLAG_TREE:
        return f"chunk {cid} is a tree, not data"
    if loc.entry.raw_length > largest:
        return (
            f"chunk {cid} holds {loc.entry.raw_length:,} bytes, more than the repository's chunks "
            f"can ({largest:,})"
        )
    return None


def _resolve(repo: Repository, plan: RestorePlan) -> None:
    """Every chunk of every file to its pack (a worker thread): chunks and sizes checked, hard links
    grouped."""
    largest = repo.chunker_params.max_size
    links: dict[tuple[int, int], RestoreFile] = {}
    entries: dict[str, set[PackEntry]] = {}
    for f in plan.files:
        node = f.node
        if node.links > 1:
            first = links.get((node.device, node.inode))
            if first is not None:
                f.link_to, f.layout = first, first.layout  # written once, as ``first``
                continue
            links[(node.device, node.inode)] = f
        layout: list[tuple[ContentItem, int, Location | None]] = []
        stored, negative, bad = 0, False, None
        for item in node.content:
            if isinstance(item, int):
                layout.append((item, item, None))
                n = item
            else:
                loc = repo.locate(item)  # a chunk no index has: IntegrityError, nothing written
                n = loc.entry.raw_length
                layout.append((item, n, loc))
                bad = bad or _not_data(loc, largest)
            stored += n
            negative = negative or n < 0
        if bad is None and (stored != node.size or negative):
            # a crafted size (10**12 for 6 bytes) must not become a huge sparse file
            bad = f"stored size {node.size} does not match its content ({stored} bytes)"
        if bad is not None:
            _add_error(plan.errors, f.rel, bad)
            f.failed = True
            continue
        f.layout = layout
        for _, _, where in layout:
            if where is not None:
                name = where.pack.name
                if name not in plan.packs:
                    plan.packs[name] = PackNeed(where.pack)
                    entries[name] = set()
                entries[name].add(where.entry)
    for name, blobs in entries.items():
        need = plan.packs[name]
        need.blobs, need.bytes = len(blobs), sum(e.length for e in blobs)


def _state_of(info: ObjectInfo) -> tuple[PackState, str]:
    if info.tier is Tier.ARCHIVE:
        return (PackState.REHYDRATING if info.rehydrating else PackState.ARCHIVED), info.tier.value
    return PackState.READABLE, info.tier.value


def _set_state(need: PackNeed, info: ObjectInfo) -> None:
    need.state, need.tier = _state_of(info)
    need.size = info.size


async def find_pack_states(
    repo: Repository,
    packs: dict[str, PackNeed],
    *,
    local: DiskTier | None = None,
    list_above: int = LIST_ABOVE,
) -> None:
    """Set each pack's state and tier: held by the disk tier (no request), else asked of the store,
    with a bounded ``stat`` per pack or, for more than ``list_above`` packs, one ``list`` of their
    folders."""
    held = await local.holds(packs) if local is not None and packs else set()
    ask = []
    for name, need in packs.items():
        if name in held:
            need.state, need.tier = PackState.READABLE, DISK
        else:
            ask.append(need)
    if not ask:
        return
    backend = repo.backend
    if len(ask) > list_above:
        wanted = {n.pack.name: n for n in ask}
        for need in ask:
            need.state, need.tier = PackState.MISSING, None
        for folder in sorted({name.partition("/")[0] + "/" for name in wanted}):
            async for info in backend.list(folder):
                found = wanted.get(info.name)
                if found is not None:
                    _set_state(found, info)
        return
    sem = asyncio.Semaphore(STAT_CONCURRENCY)

    async def one(need: PackNeed) -> None:
        async with sem:
            try:
                info = await backend.stat(need.pack.name)
            except ObjectNotFoundError:
                need.state, need.tier = PackState.MISSING, None
                return
        _set_state(need, info)

    await asyncio.gather(*(one(n) for n in ask))


async def plan_restore(
    repo: Repository,
    snapshot: SnapshotRecord,
    selection: Selection | None = None,
    *,
    local: DiskTier | None = None,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> RestorePlan:
    """Plan a restore of ``selection`` (default: everything) of ``snapshot``; writes nothing.

    Raises ``LimitError`` for more than ``max_entries`` entries to plan (only the subtrees of
    ``paths`` count when given), ``IntegrityError`` for a bad root, paths deeper than ``max_depth``
    or a chunk no index lists, and ``NotFoundError`` when a selection selects nothing. ``local`` is
    the disk tier, whose packs are readable without asking the store.
    """
    sel = selection or Selection()
    await check_point(repo, snapshot, paths=sel.paths, max_entries=max_entries, max_depth=max_depth)
    plan = RestorePlan(snapshot, node_from_json(snapshot.root), sel.whole)
    await _walk(repo, plan, sel, max_depth)
    if not sel.whole and not plan.files and not plan.others and not plan.dirs:
        raise NotFoundError("nothing in the recovery point matches the given paths/patterns")
    await asyncio.to_thread(_resolve, repo, plan)
    await find_pack_states(repo, plan.packs, local=local)
    return plan


async def relocate_missing(
    repo: Repository, plan: RestorePlan, relocator: Relocator, *, local: DiskTier | None = None
) -> None:
    """Packs found missing by the plan (a prune swept them since the index was loaded): every blob
    the files need from one is planned from another location instead, after one reload of ``gc/``
    and the index (``relocate.py``). A pack with a blob no other pack holds stays missing, and
    ``refuse_unreadable`` refuses the restore as before."""
    missing = [n for n in plan.packs.values() if n.state is PackState.MISSING]
    if not missing:
        return

    def chunks() -> set[bytes]:
        return {loc.entry.id for f in plan.files for _i, _n, loc in f.layout if loc is not None}

    moved: dict[tuple[str, PackEntry], Location] = {}
    for need in missing:
        name = need.pack.name
        needed = {loc.entry for f in plan.files for _i, _n, loc in f.layout if loc and loc.pack.name == name}
        try:
            found = await relocator.relocate(need.pack, needed, chunks)
        except ObjectNotFoundError:
            continue  # stays missing
        moved.update(((name, old), loc) for old, loc in found.items())
        del plan.packs[name]
    if not moved:
        return
    added: dict[str, tuple[PackInfo, set[PackEntry]]] = {}
    for f in plan.files:
        if f.link_to is not None:
            continue  # shares the layout of the file it links to
        f.layout = [
            (item, n, moved.get((loc.pack.name, loc.entry), loc) if loc is not None else None)
            for item, n, loc in f.layout
        ]
        for _i, _n, loc in f.layout:
            if loc is not None and loc.pack.name not in plan.packs:
                added.setdefault(loc.pack.name, (loc.pack, set()))[1].add(loc.entry)
    new = {
        name: PackNeed(pack, len(blobs), sum(e.length for e in blobs))
        for name, (pack, blobs) in added.items()
    }
    await find_pack_states(repo, new, local=local)
    plan.packs.update(new)


__all__ = [
    "DISK",
    "DiskTier",
    "PackNeed",
    "PackState",
    "RestorePlan",
    "RestorePlanSummary",
    "find_pack_states",
    "plan_restore",
    "relocate_missing",
]
