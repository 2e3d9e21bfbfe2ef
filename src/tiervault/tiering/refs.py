"""Which data packs each recovery point needs: the trees of every point walked once each (shared
across points), their files' chunks located in the index."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from tiervault.core.format.tree import Node
from tiervault.repo.repository import Repository
from tiervault.repo.snapshots import SnapshotRecord
from tiervault.repo.treewalk import TreeCounter, point_tree

__all__ = ["packs_by_point"]


async def packs_by_point(
    repo: Repository, points: Sequence[SnapshotRecord]
) -> AsyncIterator[tuple[SnapshotRecord, set[str]]]:
    """Each point with the names of the data packs holding its files' content, one point at a time
    (the caller keeps what it needs of each set: memory stays per pack, not per point and pack). A
    tree that cannot be read raises (``IntegrityError`` / ``BackendError``): the tierer never
    decides on a partial view. Chunks no index lists are left out (``check`` reports them)."""
    direct: dict[bytes, set[str]] = {}
    below: dict[bytes, list[bytes]] = {}
    lookup = repo.index.lookup

    def collect(tid: bytes, nodes: list[Node]) -> None:
        packs: set[str] = set()
        for node in nodes:
            for item in node.content:
                if isinstance(item, bytes):
                    loc = lookup(item)
                    if loc is not None:
                        packs.add(loc.pack.name)
        direct[tid] = packs
        below[tid] = [n.subtree for n in nodes if n.subtree is not None]

    counter = TreeCounter(repo, on_tree=collect)
    for snap in points:
        root, _node = point_tree(snap)
        await counter.entries(root)
        seen = {root}
        todo = [root]
        packs: set[str] = set()
        while todo:
            tid = todo.pop()
            packs |= direct.get(tid, set())
            for sub in below.get(tid, ()):
                if sub not in seen:
                    seen.add(sub)
                    todo.append(sub)
        yield snap, packs
