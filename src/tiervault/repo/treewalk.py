"""Bounded tree walking: how many entries a recovery point expands to, found without expanding it.

A point's trees form a DAG, not a tree: equal directories have equal bytes, are stored once and are
referenced by every directory that holds them (two checkouts of the same project, empty directories).
A walk that follows every reference visits every *path*, so a crafted point of 25 trees, each
referencing the next one twice, is 25 small objects that expand to 2^25 paths: enough to exhaust
a restore's memory while a check that visits each tree once finds nothing wrong.

``TreeCounter`` counts the paths with one pass over the *distinct* trees (memoized, iterative, so
neither depth nor fan-out matters), and ``check_point`` refuses a point that expands beyond a limit
before anything is planned (docs/format.md, "Trees", "Expansion bound").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tiervault.core.format import FormatError
from tiervault.core.format.tree import Node, node_from_json
from tiervault.errors import BackendError, IntegrityError
from tiervault.repo.repository import Repository
from tiervault.repo.snapshots import SnapshotRecord

#: the most entries (paths below the root, every directory, file, link... counted once per path that
#: reaches it) a restore plans by default. A restore plans every entry in memory (about half a KiB
#: each), so this is also about the most a restore of one point can hold: ~5 GB. Raise it
#: (``Restorer.max_entries``, ``Checker(max_entries=...)``) for a point that legitimately holds more.
DEFAULT_MAX_ENTRIES = 10_000_000

#: counts saturate here, so a crafted point of a thousand doubling trees stays a 64-bit number
SATURATED = (1 << 63) - 1

TreeHook = Callable[[bytes, list[Node]], None]
ErrorHook = Callable[[bytes, IntegrityError | BackendError], None]


@dataclass(frozen=True, slots=True)
class Expansion:
    entries: int  #: paths below the root (saturating at ``SATURATED``)
    trees: int  #: distinct trees reached, the root included


class TreeCounter:
    """Memoized entry counts of trees, shared by every point it is asked about.

    ``on_tree(tid, nodes)`` is called once for each distinct tree loaded. Without ``on_error`` a tree
    that cannot be read raises; with it, the error is passed on and the tree counts as empty.
    """

    def __init__(
        self, repo: Repository, *, on_tree: TreeHook | None = None, on_error: ErrorHook | None = None
    ) -> None:
        self.repo = repo
        self.on_tree = on_tree
        self.on_error = on_error
        self._entries: dict[bytes, int] = {}
        self._subtrees: dict[bytes, list[bytes]] = {}

    @property
    def distinct_trees(self) -> int:
        """Trees loaded so far, over every point counted."""
        return len(self._entries)

    async def _load(self, tid: bytes) -> list[Node] | None:
        try:
            nodes = await self.repo.load_tree(tid)
        except (IntegrityError, BackendError) as exc:
            if self.on_error is None:
                raise
            self.on_error(tid, exc)
            return None
        if self.on_tree is not None:
            self.on_tree(tid, nodes)
        return nodes

    async def entries(self, root: bytes) -> int:
        """How many paths the tree ``root`` expands to (its nodes, and theirs, recursively)."""
        memo = self._entries
        # a frame is (tree id, its own node count, its subtrees) once loaded, (tree id, -1, []) before
        stack: list[tuple[bytes, int, list[bytes]]] = [(root, -1, [])]
        open_: set[bytes] = set()  # loaded, not yet counted: the trees on the path to the top frame
        while stack:
            tid, own, subs = stack[-1]
            if own < 0:
                if tid in memo:
                    stack.pop()
                    continue
                if tid in open_:  # ids are keyed hashes of the bytes: only a broken id can loop
                    raise self.repo.tree_error(tid, FormatError("a tree contains itself"))
                nodes = await self._load(tid)
                if nodes is None:
                    memo[tid] = 0
                    self._subtrees[tid] = []
                    stack.pop()
                    continue
                subs = [n.subtree for n in nodes if n.subtree is not None]
                stack[-1] = (tid, len(nodes), subs)
                self._subtrees[tid] = list(dict.fromkeys(subs))
                open_.add(tid)
                stack.extend((s, -1, []) for s in reversed(subs) if s not in memo)
                continue
            stack.pop()
            open_.discard(tid)
            memo[tid] = min(SATURATED, own + sum(memo[s] for s in subs))
        return memo[root]

    async def expansion(self, root: bytes) -> Expansion:
        """``entries(root)``, and the number of distinct trees below ``root`` (one more pass over them)."""
        entries = await self.entries(root)
        seen = {root}
        todo = [root]
        while todo:
            for s in self._subtrees.get(todo.pop(), []):
                if s not in seen:
                    seen.add(s)
                    todo.append(s)
        return Expansion(entries, len(seen))


def point_tree(snapshot: SnapshotRecord) -> tuple[bytes, Node]:
    """A point's root tree id and root node, checked: an IntegrityError naming the snapshot otherwise."""
    name = f"snapshots/{snapshot.id}"
    try:
        tree = bytes.fromhex(snapshot.tree) if len(snapshot.tree) == 64 else b""
        root = node_from_json(snapshot.root)
    except (ValueError, FormatError) as exc:
        raise IntegrityError(name, f"bad root: {exc}") from exc
    if len(tree) != 32:
        raise IntegrityError(name, f"root tree id is not 64 hex digits: {snapshot.tree[:70]!r}")
    if root.type != "dir" or root.subtree != tree:
        raise IntegrityError(name, "the root node is not the directory of the point's tree")
    return tree, root


def too_many(found: Expansion, limit: int) -> str:
    """The complaint about a point that expands to more than ``limit`` entries."""
    more = "more than " if found.entries >= SATURATED else ""
    return (
        f"point expands to {more}{found.entries:,} entries from {found.trees:,} distinct trees "
        f"(shared subtrees), more than the limit of {limit:,} a restore plans"
    )


async def check_point(repo: Repository, snapshot: SnapshotRecord, *, max_entries: int) -> Expansion:
    """Refuse a point that a restore cannot plan: a bad root, or more than ``max_entries`` entries.

    Raises IntegrityError naming the snapshot; returns the point's expansion otherwise. Costs one
    pass over the point's distinct trees, which the restore loads anyway.
    """
    tree, _root = point_tree(snapshot)
    counter = TreeCounter(repo)
    entries = await counter.entries(tree)
    if entries > max_entries:
        found = await counter.expansion(tree)
        raise IntegrityError(
            f"snapshots/{snapshot.id}",
            too_many(found, max_entries) + " (Restorer.max_entries raises the limit)",
        )
    return Expansion(entries, counter.distinct_trees)
