"""Crafted repositories for the soundness tests: points that a compromised host holding the key could
write, built through the real writer (``PackWriter``, ``Repository.save_pack``, ``flush_index``,
``save_snapshot``), so every object authenticates and only the *content* is hostile.

Trees are written as given, in the given order, without the encoder's checks: a test can plant
duplicate or unsorted names, bad field values, or trees that reference each other many times.

    async with init_vault(path) as vault:
        plant = Planter(vault)
        sub = await plant.tree([plant.file("x", b"evil")])
        root = await plant.tree([plant.symlink("l", "/outside"), plant.dir("l", sub)])
        point = await plant.commit(root)          # a snapshot id, restorable like any other
"""

from __future__ import annotations

import json
import time
from typing import Any

import tiervault
from tiervault.core.crypto import chunk_id
from tiervault.core.format.pack import PackKind
from tiervault.core.format.tree import entry_json, put_bytes
from tiervault.repo.packer import Packer
from tiervault.repo.repository import Repository
from tiervault.repo.snapshots import SnapshotRecord, utc_iso

Name = str | bytes


def _raw(name: Name) -> bytes:
    return name.encode() if isinstance(name, str) else name


def node(name: Name, ntype: str, mode: int, **extra: Any) -> dict[str, Any]:
    """A node's JSON object with harmless defaults for the fields every node has."""
    out = entry_json(_raw(name), ntype, mode, 0, 0, 1_700_000_000_000_000_000, 0, 0, 0)
    out.update(extra)
    return out


class Planter:
    """Writes crafted chunks, trees and points into an opened vault's repository."""

    def __init__(self, vault: tiervault.Vault) -> None:
        self.repo: Repository = vault._repo
        self._packer = Packer(self.repo)
        #: data chunks named by ``chunk`` (a synchronous call), stored at the next ``tree`` or ``flush``
        self._chunks: list[tuple[bytes, bytes]] = []

    # ------------------------------------------------------------------ content

    def chunk(self, data: bytes) -> str:
        """Store ``data`` as one data chunk; its id in hex (as a file's ``content`` lists it)."""
        cid = chunk_id(self.repo.keys.chunk_id, data)
        self._chunks.append((cid, data))
        return cid.hex()

    async def _store_chunks(self) -> None:
        chunks, self._chunks = self._chunks, []
        for cid, data in chunks:
            await self._packer.add(PackKind.DATA, cid, data)

    async def tree_bytes(self, data: bytes) -> str:
        """Store raw tree bytes as a tree chunk (anything: the decoder is what is under test)."""
        tid = chunk_id(self.repo.tree_key, data)
        await self._store_chunks()
        await self._packer.add(PackKind.META, tid, data)
        return tid.hex()

    async def tree(self, nodes: list[dict[str, Any]]) -> str:
        """Store a tree of these node objects, in this order, in the canonical envelope."""
        doc = {"nodes": nodes, "v": 1}
        data = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        return await self.tree_bytes(data)

    # ------------------------------------------------------------------ nodes

    def file(
        self, name: Name, data: bytes = b"", *, mode: int = 0o644, size: int | None = None
    ) -> dict[str, Any]:
        """A file node whose content is ``data`` (one chunk), claiming ``size`` (default: the truth)."""
        content = [self.chunk(data)] if data else []
        return node(name, "file", mode, size=len(data) if size is None else size, links=1, content=content)

    @staticmethod
    def dir(name: Name, subtree: str, *, mode: int = 0o755) -> dict[str, Any]:
        return node(name, "dir", mode, subtree=subtree)

    @staticmethod
    def symlink(name: Name, target: Name) -> dict[str, Any]:
        out = node(name, "symlink", 0o777)
        put_bytes(out, "target", _raw(target))
        return out

    @staticmethod
    def fifo(name: Name, *, mode: int = 0o644) -> dict[str, Any]:
        return node(name, "fifo", mode)

    # ------------------------------------------------------------------ commit

    async def flush(self) -> None:
        """Store the open packs and an index file for them."""
        await self._store_chunks()
        await self._packer.flush()
        await self.repo.flush_index()

    async def commit(
        self,
        tree: str,
        *,
        item: str = "hostile",
        source: str = "/hostile",
        root: dict[str, Any] | None = None,
        host: str = "compromised-host",
        user: str = "mallory",
        incomplete: bool = False,
    ) -> str:
        """Flush, then commit a recovery point of ``tree``; returns its id. ``host`` (and ``user``)
        the provenance it claims: the legitimate host's own makes it the parent of that host's next
        snapshot of ``item`` and ``source``."""
        await self.flush()
        root_node = root if root is not None else node("root", "dir", 0o755, subtree=tree)
        rec = SnapshotRecord(
            item=item,
            time=utc_iso(time.time_ns()),
            host=host,
            user=user,
            source=source,
            tree=tree,
            root=root_node,
            program="tests.support.hostile",
            incomplete=incomplete,
        )
        return await self.repo.save_snapshot(rec)
