"""Repository maintenance. Today: ``check`` (structure, metadata, and optionally every data byte)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from tiervault.core.crypto import AuthenticationFailed, object_hash
from tiervault.core.format import FormatError
from tiervault.core.format.pack import PackKind, read_header
from tiervault.errors import BackendError, IntegrityError, TiervaultError
from tiervault.repo.index import PackInfo
from tiervault.repo.repository import Repository

log = logging.getLogger("tiervault.maintenance")


@dataclass(slots=True)
class CheckResult:
    snapshots: int = 0
    trees: int = 0
    packs: int = 0
    packs_read: int = 0
    bytes_read: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "snapshots": self.snapshots,
            "trees": self.trees,
            "packs": self.packs,
            "packs_read": self.packs_read,
            "bytes_read": self.bytes_read,
            "errors": self.errors,
            "warnings": self.warnings,
        }


class Checker:
    """Finds every problem it can and reports them all, rather than stopping at the first."""

    def __init__(self, repo: Repository, *, read_data: bool, concurrency: int = 4) -> None:
        self.repo = repo
        self.read_data = read_data
        self.sem = asyncio.Semaphore(concurrency)
        self.result = CheckResult()

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
        stored: dict[str, int] = {}
        for kind in PackKind:
            async for info in repo.backend.list(kind.prefix + "/"):
                stored[info.name] = info.size
        indexed = {p.name: p for p in repo.index.packs()}
        self.result.packs = len(indexed)
        for name in sorted(set(stored) - set(indexed)):
            self.result.warnings.append(
                {
                    "object": name,
                    "warning": "pack not in any index: left by an interrupted snapshot; "
                    "the next snapshot indexes it and reuses its chunks",
                }
            )
        for name in sorted(set(indexed) - set(stored)):
            self._fail(name, "pack is indexed but missing from storage")
        # 3. snapshots and every tree they reach
        seen: set[bytes] = set()
        for sid in snapshot_ids:
            try:
                snap = await repo.load_snapshot(sid)
            except IntegrityError as exc:
                self._fail(exc.name, exc.detail)
                continue
            self.result.snapshots += 1
            await self._tree(bytes.fromhex(snap.tree), seen, f"snapshots/{sid}")
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

    async def _tree(self, tid: bytes, seen: set[bytes], where: str) -> None:
        if tid in seen:
            return
        seen.add(tid)
        try:
            nodes = await self.repo.load_tree(tid)
        except IntegrityError as exc:
            self._fail(exc.name, f"{exc.detail} (tree {tid.hex()[:16]} of {where})")
            return
        except BackendError as exc:
            self._fail(where, f"tree {tid.hex()[:16]} unreadable: {exc}")
            return
        self.result.trees += 1
        for n in nodes:
            if n.type == "dir" and n.subtree is not None:
                await self._tree(n.subtree, seen, where)
            elif n.type == "file":
                for c in n.content:
                    if isinstance(c, bytes) and c not in self.repo.index:
                        self._fail(
                            where, f"file {n.display_name!r} needs chunk {c.hex()[:16]} which no index has"
                        )
                        break

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


async def check(repo: Repository, *, read_data: bool = False) -> CheckResult:
    return await Checker(repo, read_data=read_data).run()
