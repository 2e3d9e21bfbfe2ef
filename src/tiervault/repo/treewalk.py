"""Bounded tree walking: how many entries a recovery point expands to, found without expanding it.

The one tree walker of the code base, in two shapes: :func:`walk` yields every *path* below a tree
(``ls``, the restore planner), :class:`TreeCounter` visits every *distinct* tree once (``check``,
:func:`data_packs_of`); both are iterative, so a deep point cannot exhaust the stack.

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

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass

from tiervault.core.format import FormatError
from tiervault.core.format.tree import Node, node_from_json
from tiervault.errors import BackendError, IntegrityError, LimitError
from tiervault.repo.repository import Repository
from tiervault.repo.snapshots import SnapshotRecord

#: the most entries (paths below the root, every directory, file, link... counted once per path that
#: reaches it) a restore plans by default. A restore plans every entry in memory (about half a KiB
#: each), so this is also about the most a restore of one point can hold: ~5 GB. Raise it
#: (``Vault.restore(max_entries=)``, ``restore --max-entries``) for a point that legitimately holds
#: more; a restore of ``paths`` counts only what they select.
DEFAULT_MAX_ENTRIES = 10_000_000

#: the deepest path (in names: ``a/b/c`` is 3) a snapshot stores and a restore plans: far beyond real
#: trees (a path of 512 names of one letter and their slashes is 1 KiB). The archiver records what lies
#: deeper as an error instead of storing it, so only a crafted point has deeper paths
DEFAULT_MAX_DEPTH = 512

#: counts saturate here, so a crafted point of a thousand doubling trees stays a 64-bit number
SATURATED = (1 << 63) - 1

TreeHook = Callable[[bytes, list[Node]], None]
ErrorHook = Callable[[bytes, IntegrityError | BackendError], None]


@dataclass(frozen=True, slots=True)
class Expansion:
    entries: int  #: paths below the root (saturating at ``SATURATED``)
    trees: int  #: distinct trees reached, the root included
    depth: int  #: names in the longest path (0 for an empty root)


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
        self._depth: dict[bytes, int] = {}
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
                    memo[tid] = self._depth[tid] = 0
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
            self._depth[tid] = max((1 + self._depth[s] for s in subs), default=1 if own else 0)
        return memo[root]

    async def depth(self, root: bytes) -> int:
        """Names in the longest path below ``root`` (counted in the same pass as ``entries``)."""
        await self.entries(root)
        return self._depth[root]

    async def expansion(self, root: bytes) -> Expansion:
        """``entries(root)``, ``depth(root)``, and the distinct trees below ``root`` (one more pass)."""
        entries = await self.entries(root)
        seen = {root}
        todo = [root]
        while todo:
            for s in self._subtrees.get(todo.pop(), []):
                if s not in seen:
                    seen.add(s)
                    todo.append(s)
        return Expansion(entries, len(seen), self._depth[root])


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


def beyond_bounds(found: Expansion, max_entries: int, max_depth: int, what: str = "point") -> str | None:
    """The complaint about what a restore would plan beyond its limits, or None."""
    if found.entries > max_entries:
        more = "more than " if found.entries >= SATURATED else ""
        return (
            f"{what} expands to {more}{found.entries:,} entries from {found.trees:,} distinct trees "
            f"more than the limit of {max_entries:,} a restore plans"
        )
    if found.depth > max_depth:
        return (
            f"{what} has paths of {found.depth:,} names, more than the limit of {max_depth:,} a restore plans"
        )
    return None


async def node_at(repo: Repository, tree: bytes, path: bytes) -> Node | None:
    """The node at ``path`` (``a/b/c``) below ``tree``, or None if there is none."""
    node: Node | None = None
    tid: bytes | None = tree
    for part in path.split(b"/") if path else []:
        if tid is None:
            return None
        node = next((n for n in await repo.load_tree(tid) if n.name == part), None)
        if node is None:
            return None
        tid = node.subtree
    return node


async def check_point(
    repo: Repository,
    snapshot: SnapshotRecord,
    *,
    paths: Sequence[bytes] | None = None,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Expansion:
    """Refuse a restore that cannot be planned, before it plans anything: a bad root, paths of more
    than ``max_depth`` names (only a crafted point has them: the archiver stores none), or more than
    ``max_entries`` entries to plan.

    With ``paths`` (relative byte paths inside the point) only those subtrees are counted, so a
    restore of one file from a huge point costs the trees on its path, not the point. Costs one pass
    over the distinct trees counted, which the restore loads anyway. Raises ``IntegrityError`` naming
    the snapshot for a bad root or depth, ``LimitError`` (saying how to raise the limit) for the
    entries; returns what was counted otherwise.
    """
    tree, _root = point_tree(snapshot)
    counter = TreeCounter(repo)
    if paths is None or any(not p for p in paths):
        found = await counter.expansion(tree)
        what = "point"
    else:
        entries = depth = 0
        for p in dict.fromkeys(paths):
            node = await node_at(repo, tree, p)
            if node is None:
                continue  # the planner says what matched nothing
            names = p.count(b"/") + 1
            below = await counter.expansion(node.subtree) if node.subtree is not None else None
            entries += names + (below.entries if below else 0)
            depth = max(depth, names + (below.depth if below else 0))
        found = Expansion(min(SATURATED, entries), counter.distinct_trees, depth)
        what = "the selection"
    if found.depth > max_depth:
        raise IntegrityError(
            f"snapshots/{snapshot.id}", beyond_bounds(found, SATURATED, max_depth, what) or ""
        )
    problem = beyond_bounds(found, max_entries, SATURATED, what)
    if problem:
        raise LimitError(
            f"recovery point {snapshot.id[:8]}: {problem} in memory; pass max_entries= "
            "(restore --max-entries) to plan more"
        )
    return found


async def walk(
    repo: Repository,
    tree: bytes,
    *,
    prefix: bytes = b"",
    descend: Callable[[bytes, Node], bool] | None = None,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> AsyncIterator[tuple[bytes, Node]]:
    """Every entry below ``tree`` as ``(path, node)``, depth first, each directory's entries in stored
    (raw name) order, a directory before its entries. ``path`` is ``prefix/.../name`` (no leading
    slash when ``prefix`` is empty). A directory is entered when ``descend(path, node)`` is true
    (default: always); trees are loaded one at a time, as the walk reaches them.

    A path deeper than ``max_depth`` names raises IntegrityError (a crafted point; ``check_point``
    refuses such points before a restore plans them).
    """
    stack: list[tuple[bytes, Iterator[Node]]] = [(prefix, iter(await repo.load_tree(tree)))]
    while stack:
        base, entries = stack[-1]
        node = next(entries, None)
        if node is None:
            stack.pop()
            continue
        path = base + b"/" + node.name if base else node.name
        yield path, node
        if node.subtree is not None and (descend is None or descend(path, node)):
            below = await repo.load_tree(node.subtree)
            if below and len(stack) >= max_depth:  # an empty directory at the limit is no deeper path
                raise repo.tree_error(node.subtree, FormatError(f"paths deeper than {max_depth} names"))
            stack.append((path, iter(below)))


async def data_packs_of(repo: Repository, tree: bytes) -> set[str]:
    """Names of the data packs holding the file content below ``tree`` (each distinct tree once, from
    the metadata packs kept in memory). Chunks no index lists are left out (``check`` reports them)."""
    packs: set[str] = set()
    lookup = repo.index.lookup

    def collect(_tid: bytes, nodes: list[Node]) -> None:
        for node in nodes:
            for item in node.content:
                if isinstance(item, bytes):
                    loc = lookup(item)
                    if loc is not None:
                        packs.add(loc.pack.name)

    await TreeCounter(repo, on_tree=collect).entries(tree)
    return packs


async def referenced_chunks(repo: Repository, trees: Sequence[bytes]) -> set[bytes]:
    """Every chunk id the points with these root ``trees`` reference: their trees (each distinct one
    once, shared across the points) and the content chunks of their files. A tree that cannot be
    read raises: prune must never decide on a partial set."""
    found: set[bytes] = set()
    counter = TreeCounter(repo, on_tree=chunk_collector(found))
    for tree in trees:
        found.add(tree)
        await counter.entries(tree)
    return found


def chunk_collector(found: set[bytes]) -> TreeHook:
    """A ``TreeCounter`` hook adding every tree and content chunk id it sees to ``found``."""

    def collect(tid: bytes, nodes: list[Node]) -> None:
        found.add(tid)
        for node in nodes:
            for item in node.content:
                if isinstance(item, bytes):
                    found.add(item)

    return collect
