"""Repository maintenance. Today: ``check`` (structure, metadata, and optionally every data byte; what
it says about garbage collection and unused packs is ``checkgc.py``'s)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from tiervault.backend.base import ObjectInfo
from tiervault.checkgc import GcFindings, gc_findings, pack_id, unused_packs
from tiervault.core.crypto import AuthenticationFailed, object_hash
from tiervault.core.format import FormatError
from tiervault.core.format.pack import FLAG_TREE, PackKind, read_header
from tiervault.core.format.tree import Node
from tiervault.errors import BackendError, IntegrityError, TiervaultError, UsageError
from tiervault.policy import Policy
from tiervault.repo.index import PackInfo
from tiervault.repo.locations import locations_of
from tiervault.repo.repository import Repository
from tiervault.repo.treewalk import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_ENTRIES,
    SATURATED,
    TreeCounter,
    beyond_bounds,
    point_tree,
)

log = logging.getLogger("tiervault.maintenance")


@dataclass(slots=True)
class CheckResult:
    """What ``Vault.check`` found: counts of what it read, errors (damage) and warnings."""

    snapshots: int = 0
    #: distinct trees (each checked once, however many points and directories share it)
    trees: int = 0
    #: entries (paths) of every point, summed: shared subtrees count once per path that reaches them
    entries: int = 0
    packs: int = 0
    packs_read: int = 0
    bytes_read: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    #: packs no recovery point reads from and no plan names (``object``, ``bytes``): what a prune
    #: reclaims. None when a damaged point or tree keeps the references from being known
    unused: list[dict[str, Any]] | None = field(default_factory=list)
    #: packs a pending prune plan condemned (version 2): ``object``, ``bytes``, ``plan``, ``reason``,
    #: ``after`` (the earliest store time a prune may delete it) and ``note``
    condemned: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def unused_packs(self) -> int | None:
        return None if self.unused is None else len(self.unused)

    @property
    def unused_bytes(self) -> int | None:
        return None if self.unused is None else sum(int(u["bytes"]) for u in self.unused)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "snapshots": self.snapshots,
            "trees": self.trees,
            "entries": self.entries,
            "packs": self.packs,
            "packs_read": self.packs_read,
            "bytes_read": self.bytes_read,
            "errors": self.errors,
            "warnings": self.warnings,
            "unused_packs": self.unused_packs,
            "unused_bytes": self.unused_bytes,
            "unused": self.unused,
            "condemned": self.condemned,
        }


class Checker:
    """Finds every problem it can and reports them all, rather than stopping at the first."""

    def __init__(
        self,
        repo: Repository,
        *,
        read_data: bool,
        concurrency: int = 4,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_depth: int = DEFAULT_MAX_DEPTH,
    ) -> None:
        self.repo = repo
        self.read_data = read_data
        #: a point beyond what a restore plans (entries, path depth) is an error (repo/treewalk.py)
        self.max_entries, self.max_depth = max_entries, max_depth
        self._where = ""  # the point whose trees are being checked
        self.sem = asyncio.Semaphore(concurrency)
        self.result = CheckResult()
        self._stored: dict[str, ObjectInfo] = {}
        self._gc = GcFindings()
        #: ids of the packs some point reads a chunk from; False once a point or tree is unreadable
        self._used: set[str] = set()
        self._refs_known = True
        #: chunks whose indexed location is a gone or missing pack -> (that pack, the point)
        self._stranded: dict[bytes, tuple[str, str]] = {}

    def _fail(self, obj: str, detail: str) -> None:
        log.debug("check: %s: %s", obj, detail)  # reported in the result, not twice
        self.result.errors.append({"object": obj, "error": detail})

    async def run(self) -> CheckResult:
        repo = self.repo
        # 0. snapshots first, then the index again: every index file a listed snapshot needs was
        #    written before it (ordering invariant), so a snapshot committed by another process
        #    since this one opened the repository is not reported as missing chunks
        snapshot_ids = await repo.snapshot_ids()
        repo.index_errors.clear()
        await repo.load_index()
        # 1. every index file authenticates
        for exc in repo.index_errors:
            self._fail(exc.name, exc.detail)
        # 2. packs: every indexed pack exists with a matching size; unindexed packs are only a warning
        stored = self._stored
        for kind in PackKind:
            async for info in repo.backend.list(kind.prefix + "/"):
                stored[info.name] = info
        # 2a. gc/ and locks/ (version 2): plans, GONE records, heartbeats
        gc = self._gc = await gc_findings(repo, stored)
        self.result.errors.extend(gc.errors)
        self.result.warnings.extend(gc.warnings)
        self.result.condemned = gc.condemned
        indexed = {p.name: p for p in repo.index.packs()}
        self.result.packs = len(indexed)
        for name in sorted(set(stored) - set(indexed)):
            if pack_id(name) in gc.gone or pack_id(name) in gc.condemned_ids:
                continue  # a prune's: reported above, and no writer adopts it
            self.result.warnings.append(
                {
                    "object": name,
                    "warning": "pack not in any index: left by an interrupted snapshot; "
                    "the next snapshot indexes it and reuses its chunks",
                }
            )
        for name in sorted(set(indexed) - set(stored)):
            if indexed[name].id not in gc.gone:  # a swept pack stays listed until a consolidation
                self._fail(name, "pack is indexed but missing from storage")
        # 2b. items: every item object reads, and its policy is one this tiervault can use
        items, damaged_items = await repo.load_items()
        for exc in damaged_items:
            self._fail(exc.name, exc.detail)
        for item in items:
            try:
                Policy.from_json(item.policy)
            except UsageError as exc:
                self._fail(f"items/{item.id}", f"item {item.name!r}: unusable policy: {exc}")
        # 3. snapshots and every tree they reach: each distinct tree checked once, and what each point
        #    expands to counted (shared subtrees are counted once per path, as a restore plans them)
        counter = TreeCounter(repo, on_tree=self._tree, on_error=self._tree_failed)
        for sid in snapshot_ids:
            try:
                snap = await repo.load_snapshot(sid)
            except IntegrityError as exc:
                self._fail(exc.name, exc.detail)
                self._refs_known = False
                continue
            self.result.snapshots += 1
            try:
                tree, _root = point_tree(snap)
            except IntegrityError as exc:
                self._fail(exc.name, exc.detail)
                self._refs_known = False
                continue
            self._where = f"snapshots/{sid}"
            entries = await counter.entries(tree)
            self.result.entries = min(SATURATED, self.result.entries + entries)
            if await counter.depth(tree) > self.max_depth:  # the archiver stores none: crafted
                found = await counter.expansion(tree)
                self._fail(self._where, beyond_bounds(found, SATURATED, self.max_depth) or "")
            elif entries > self.max_entries:  # huge, or shared subtrees that expand: restorable with a
                found = await counter.expansion(tree)  # larger max_entries, or in parts (paths)
                problem = beyond_bounds(found, self.max_entries, SATURATED) or ""
                self.result.warnings.append(
                    {"object": self._where, "warning": f"{problem}: restore with --max-entries, or by paths"}
                )
        # 3b. chunks stranded in gone or missing packs: fine if another pack holds them
        await self._stranded_chunks()
        # (not known while a damaged point or tree, an error already, may reference any pack)
        self.result.unused = unused_packs(stored, indexed, self._used, gc) if self._refs_known else None
        # 4. pack contents: metadata packs always, data packs with read_data
        by_pack = repo.index.entries_by_pack()
        todo = [
            p for p in indexed.values() if p.name in stored and (self.read_data or p.kind is PackKind.META)
        ]

        async def one(p: PackInfo) -> None:
            async with self.sem:
                await self._pack(p, by_pack.get(p.id, []))

        await asyncio.gather(*(one(p) for p in todo))
        return self.result

    async def _stranded_chunks(self) -> None:
        """A point that reads a chunk from a gone or missing pack is an error naming both, unless an
        index file lists the chunk in another stored pack that is not gone (a repacked copy)."""
        if not self._stranded:
            return
        stored_ids = {pack_id(n) for n in self._stored}
        gone, condemned = self._gc.gone, self._gc.condemned_ids
        found = await locations_of(self.repo, self._stranded, exclude=gone)
        failed: dict[tuple[str, str], list[bytes]] = {}
        for cid, (pack, where) in self._stranded.items():
            others = [loc.pack.id for loc in found.get(cid, []) if loc.pack.id in stored_ids]
            if others:
                self._used.add(min(others, key=lambda p: (p in condemned, others.index(p))))
            else:
                failed.setdefault((where, pack), []).append(cid)
        for (where, pack), cids in sorted(failed.items()):
            what = "gone (deleted by a prune)" if pack_id(pack) in gone else "missing from storage"
            self._fail(
                where,
                f"references {len(cids):,} chunk(s) of pack {pack}, which is {what}, and no other pack "
                f"holds them (chunk {cids[0].hex()[:16]})",
            )

    def _tree_failed(self, tid: bytes, exc: IntegrityError | BackendError) -> None:
        self._refs_known = False
        if isinstance(exc, IntegrityError):
            self._fail(exc.name, f"{exc.detail} (in {self._where})")
        else:
            self._fail(self._where, f"tree {tid.hex()[:16]} unreadable: {exc}")

    def _tree(self, tid: bytes, nodes: list[Node]) -> None:
        """One distinct tree, decoded (so valid, docs/format.md "Validity"): every chunk its files
        need is indexed, as data, and the chunk lengths and holes add up to the file's size."""
        self.result.trees += 1
        lookup = self.repo.index.lookup
        here = lookup(tid)
        if here is not None:
            self._used.add(here.pack.id)
        for n in nodes:
            if n.type != "file":
                continue
            for c in n.content:  # every chunk, also after a problem below: its pack is in use
                if isinstance(c, bytes) and (loc := lookup(c)) is not None:
                    self._use(c, loc.pack, self._where)
            held = 0
            for c in n.content:
                if isinstance(c, int):
                    held += c
                    continue
                loc = lookup(c)
                if loc is None or loc.entry.flags & FLAG_TREE:
                    what = "which no index has" if loc is None else "which is a tree, not data"
                    self._fail(self._where, f"file {n.display_name!r} needs chunk {c.hex()[:16]} {what}")
                    break
                held += loc.entry.raw_length
            else:
                if held != n.size:
                    self._fail(
                        self._where,
                        f"file {n.display_name!r} (tree {tid.hex()[:16]}) claims {n.size:,} bytes "
                        f"but its chunks and holes hold {held:,}",
                    )

    def _use(self, cid: bytes, pack: PackInfo, where: str) -> None:
        if pack.name in self._stored and pack.id not in self._gc.gone:
            self._used.add(pack.id)
        else:
            self._stranded.setdefault(cid, (pack.name, where))

    async def _pack(self, pack: PackInfo, entries: list[Any]) -> None:
        try:
            data = await self.repo.backend.get(pack.name)
        except TiervaultError as exc:
            self._fail(pack.name, f"unreadable: {exc}")
            return
        self.result.packs_read += 1
        self.result.bytes_read += len(data)

        def verify() -> str | None:
            if object_hash(data) != pack.id:
                return "content does not match its name (hash mismatch)"
            try:
                _kind, salt, header = read_header(self.repo.keys.encryption, data)
            except AuthenticationFailed:
                return "pack header failed authentication"
            except FormatError as exc:
                return f"bad pack: {exc}"
            if salt != pack.salt:
                return "pack salt differs from the index"
            in_header = {e.id: e for e in header}
            for e in entries:
                if in_header.get(e.id) != e:
                    return f"index entry for chunk {e.id.hex()[:16]} does not match the pack header"
            view = memoryview(data)
            for e in header:
                self.repo.open_pack_blob(pack, e, view[e.offset : e.offset + e.length])
            return None

        try:
            problem = await asyncio.to_thread(verify)
        except IntegrityError as exc:
            problem = exc.detail
        if problem:
            self._fail(pack.name, problem)


async def check(
    repo: Repository,
    *,
    read_data: bool = False,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> CheckResult:
    return await Checker(repo, read_data=read_data, max_entries=max_entries, max_depth=max_depth).run()
