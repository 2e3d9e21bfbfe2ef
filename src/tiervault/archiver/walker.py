"""The walker of a snapshot run: one thread, depth-first over the folder (docs/architecture.md,
"Snapshot pipeline").

Each directory is listed sorted by name bytes with its entries' ``lstat`` (``sources/folder.py``), and
compared with the same directory in the parent point: what did not change is taken from the parent
(``sources/reuse.py``), changed regular files go to the ``ReaderPool``. Directories are finalized in
post-order as soon as all their files are read (children before parents): an unchanged one reuses
the parent's tree id, a changed one is encoded, keyed with the tree-id key and added to the run's
metadata pack, which only the walker writes.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import operator
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tiervault.archiver.outcome import Findings, Progress, SnapshotStats
from tiervault.archiver.readers import Job, ReaderPool, Stopped
from tiervault.core.crypto import chunk_id
from tiervault.core.format import FormatError
from tiervault.core.format.tree import (
    Node,
    content_to_json,
    decode_tree_json,
    encode_tree_json,
    nodes_from_json,
)
from tiervault.errors import TiervaultError
from tiervault.repo.packer import PackSink
from tiervault.repo.repository import Repository
from tiervault.repo.treewalk import DEFAULT_MAX_DEPTH, TreeCounter
from tiervault.sources.folder import FileChanged, list_dir, stat_json
from tiervault.sources.reading import CHANGED_WHILE_READ
from tiervault.sources.reuse import ParentReuse, tree_ref
from tiervault.sources.stopping import Stopper

log = logging.getLogger("tiervault.archiver")

_Obj = dict[str, Any]  # a node as its tree JSON object (core/format/tree.py)
_by_name = operator.itemgetter(0)


@dataclass(slots=True)
class PendingDir:
    """A directory being backed up. Its entries are kept as (raw name, tree JSON object): an
    unchanged directory is then recognised by comparing its objects with the parent tree's, and
    a changed one is encoded as is, with no ``Node`` built per entry."""

    path: bytes
    #: the same directory in the parent point, to reuse its tree when nothing changed
    parent_tree: bytes | None = None
    parent_nodes: list[_Obj] | None = None
    nodes: list[tuple[bytes, _Obj]] = field(default_factory=list)
    #: (name, object, job, slot, the parent's object of that name)
    jobs: list[tuple[bytes, _Obj, Job, int, _Obj | None]] = field(default_factory=list)
    subdirs: list[tuple[bytes, _Obj, PendingDir]] = field(default_factory=list)
    tree_id: bytes | None = None
    #: no longer the directory that was listed: its parent stores nothing of it
    left_out: bool = False

    def ready(self) -> bool:
        return all(job.done() for _, _, job, _, _ in self.jobs)


class TooDeep(Exception):
    """A directory whose entries would be deeper than a restore plans (``DEFAULT_MAX_DEPTH``)."""


@dataclass(slots=True)
class _Frame:
    """A directory of the walk whose entries are being gone through (``FolderWalker.walk``)."""

    pending: PendingDir
    entries: list[tuple[bytes, os.stat_result | OSError]]
    #: the parent point's entries of this directory, by raw name
    parent: dict[bytes, _Obj]
    prefix: bytes
    #: names in its path below the source (the source is 0)
    depth: int
    #: its name and object in the directory above (None for the source)
    link: tuple[bytes, _Obj] | None
    #: the next entry to go through
    i: int = 0
    reused_files: int = 0
    reused_bytes: int = 0


class FolderWalker:
    """Walks a folder in the calling thread (``walk``, then ``drain(block=True)``), counting into
    ``stats`` and ``progress`` and recording what it leaves out in ``findings``."""

    def __init__(
        self,
        repo: Repository,
        loop: asyncio.AbstractEventLoop,
        readers: ReaderPool,
        meta: PackSink,
        *,
        reuse: ParentReuse,
        stop: Stopper,
        stats: SnapshotStats,
        progress: Progress,
        findings: Findings,
        resume: bool = False,
    ) -> None:
        self.repo, self.loop, self._readers, self._meta = repo, loop, readers, meta
        #: the parent point is an incomplete checkpoint: only a file it does not hold is progress
        #: under a deadline (else every file is: ``sources/stopping.py``)
        self._resume = resume
        self._reuse, self._stop = reuse, stop
        self.stats, self.progress, self._findings = stats, progress, findings
        self._stats_lock: threading.Lock = findings.lock
        self._ready: collections.deque[PendingDir] = collections.deque()
        #: checks the parent's subtrees a stop keeps unvisited (``_sound_subtrees``)
        self._counter = TreeCounter(repo, on_tree=self._seen_tree)
        #: of each tree the counter loaded: its subtrees, and whether it and its content chunks all
        #: have usable locations (format version 2: none only in condemned or gone packs)
        self._tree_subs: dict[bytes, list[bytes]] = {}
        self._tree_usable: dict[bytes, bool] = {}

    def _seen_tree(self, tid: bytes, nodes: list[Node]) -> None:
        index = self.repo.index
        self._tree_subs[tid] = [n.subtree for n in nodes if n.subtree is not None]
        self._tree_usable[tid] = tid in index and all(
            c in index for n in nodes for c in n.content if isinstance(c, bytes)
        )

    def _usable_subtree(self, root: bytes) -> bool:
        """Whether every tree and chunk below ``root`` (loaded by ``_counter``) has a usable location:
        a stop keeps an unvisited directory by reference, which must not take a new reference to a
        condemned pack (writer rule 3)."""
        stack, seen = [root], set()
        while stack:
            tid = stack.pop()
            if tid in seen:
                continue
            seen.add(tid)
            if not self._tree_usable.get(tid, False):
                return False
            stack.extend(self._tree_subs.get(tid, ()))
        return True

    def _call(self, coro_factory: Callable[[], Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro_factory(), self.loop).result()

    def _parent_entries(self, pending: PendingDir) -> dict[bytes, _Obj]:
        """The parent point's entries of this directory by raw name ({} when unreadable: read all)."""
        tid = pending.parent_tree
        if tid is None:
            return {}
        try:
            data = self.repo.cached_tree_data(tid)
            if data is None:
                data = self._call(lambda: self.repo.load_tree_data(tid))
            try:
                nodes = decode_tree_json(data)
            except (FormatError, ValueError, TypeError) as exc:
                raise self.repo.tree_error(tid, exc) from exc
        except TiervaultError as exc:
            log.warning("parent tree unreadable, reading everything below %r: %s", pending.path, exc)
            return {}
        try:
            # reused objects are copied verbatim into this point: only from a tree the full decoder
            # accepts (a crafted parent must not make this host store nodes a restore refuses)
            checked = nodes_from_json(nodes)
        except FormatError as exc:
            self._findings.warn(
                pending.path, f"parent tree {tid.hex()} is invalid ({exc}): read again, nothing reused"
            )
            return {}
        parent = {n.name: o for n, o in zip(checked, nodes, strict=True)}
        pending.parent_nodes = nodes
        return parent

    def walk(
        self, path: bytes, parent_tree: bytes | None, ident: tuple[int, int] | None = None
    ) -> PendingDir:
        """List the directory ``path`` and everything below it (``parent_tree``: the same directory
        in the parent point; ``ident``: its ``(st_ino, st_dev)`` as listed, which it must still
        have). Directories whose files are read are finalized on the way.

        Iterative (a stack of open directories), so no depth of the source exhausts the interpreter's
        stack; nothing deeper than ``DEFAULT_MAX_DEPTH`` names is stored (``_open``)."""
        top = self._open(path, parent_tree, ident, 0, None)
        stack = [top]
        while stack:
            frame = stack[-1]
            sub = self._step(frame)
            if sub is not None:
                stack.append(sub)
                continue
            stack.pop()
            self._close(frame)
            if frame.link is not None:
                if frame.pending.left_out:
                    self.stats.dirs -= 1
                else:
                    name, obj = frame.link
                    stack[-1].pending.subdirs.append((name, obj, frame.pending))
        return top.pending

    def _open(
        self,
        path: bytes,
        parent_tree: bytes | None,
        ident: tuple[int, int] | None,
        depth: int,
        link: tuple[bytes, _Obj] | None,
    ) -> _Frame:
        """List a directory ``depth`` names below the source (see ``walk``) into a new frame."""
        pending = PendingDir(path, parent_tree)
        try:
            entries = list_dir(path, ident)
        except OSError as exc:
            self._findings.error(path, exc)
            entries = []
        except FileChanged as exc:  # swapped (for a symlink...) since it was listed: nothing below it
            self._findings.error(path, exc)
            pending.left_out = True
            entries = []
        if entries and depth >= DEFAULT_MAX_DEPTH:
            # its entries would be paths of more names than a restore plans: stored empty, and said
            self._findings.error(path, TooDeep(f"deeper than {DEFAULT_MAX_DEPTH} names: not backed up"))
            entries = []
        parent = {} if pending.left_out else self._parent_entries(pending)
        prefix = path if path.endswith(b"/") else path + b"/"
        return _Frame(pending, entries, parent, prefix, depth, link)

    def _step(self, frame: _Frame) -> _Frame | None:
        """Go on with a directory's entries up to its next subdirectory, listed into a new frame
        (returned); None once the directory has no entry left."""
        pending, entries, parent, stats = frame.pending, frame.entries, frame.parent, self.stats
        while frame.i < len(entries):
            i = frame.i
            frame.i += 1
            name, st = entries[i]
            old = parent.get(name)
            if old is not None and not isinstance(st, OSError) and self._reuse.unchanged_file(old, st):
                # the parent's object is exactly what stat_json + reusable would rebuild: take it
                # (no work, so even after a stop: only what needs work is left for the next run)
                stats.files += 1
                stats.bytes_total += st.st_size
                frame.reused_files += 1
                frame.reused_bytes += st.st_size
                pending.nodes.append((name, old))
                continue
            if self._stop.stopping():
                # the rest of this directory is left for the next run; what the parent point holds
                # of it stays in this checkpoint, so finished work is never lost (runs converge)
                kept, files, nbytes = self._reuse.keep_unvisited(entries[i:], parent)
                pending.nodes += self._sound_subtrees(kept, frame)
                stats.files += files
                stats.bytes_total += nbytes
                frame.reused_files += files
                frame.reused_bytes += nbytes
                frame.i = len(entries)
                break
            child = frame.prefix + name
            try:
                if isinstance(st, OSError):
                    raise st
                # xattrs change ctime: an entry whose ctime and inode match the parent's keeps its xattrs
                key = (st.st_ctime_ns, st.st_ino)
                same = old is not None and (old.get("ctime_ns"), old.get("inode")) == key
                obj = stat_json(child, name, st, xattrs=not same)
                if same and obj is not None and old is not None and isinstance(old.get("xattrs"), list):
                    obj["xattrs"] = old["xattrs"]
            except OSError as exc:
                self._findings.error(child, exc)  # vanished or unreadable: recorded, the rest goes on
                continue
            if obj is None:
                continue
            ntype = obj["type"]
            if ntype == "dir":
                stats.dirs += 1
                was_dir = old is not None and old.get("type") == "dir"
                sub_parent = tree_ref(old.get("subtree")) if old is not None and was_dir else None
                return self._open(child, sub_parent, (st.st_ino, st.st_dev), frame.depth + 1, (name, obj))
            if ntype == "file":
                size = st.st_size
                stats.files += 1
                stats.bytes_total += size
                content = self._reuse.reusable(obj, old)
                if content is not None:
                    obj["content"] = content
                    frame.reused_files += 1
                    frame.reused_bytes += size
                    pending.nodes.append((name, obj))
                else:
                    new = not self._resume or old is None or old.get("type") != "file"
                    job, slot = self._readers.add(child, st, new)
                    pending.jobs.append((name, obj, job, slot, old))
            else:
                stats.others += 1
                pending.nodes.append((name, obj))
        return None

    def _sound_subtrees(self, kept: list[tuple[bytes, _Obj]], frame: _Frame) -> list[tuple[bytes, _Obj]]:
        """The entries a stop keeps from the parent point, less the directories whose subtrees (kept
        by id, unvisited) fail the decoder or are deeper than a restore plans: a checkpoint copies
        them as they are, so a crafted parent is checked before (each distinct tree once per run,
        only in a stopped run). Those are left out, with a warning naming the tree."""
        out: list[tuple[bytes, _Obj]] = []
        for name, old in kept:
            tid = tree_ref(old.get("subtree")) if old.get("type") == "dir" else None
            if tid is not None:
                problem = None
                try:
                    depth = self._call(functools.partial(self._counter.depth, tid))
                    if frame.depth + 1 + depth > DEFAULT_MAX_DEPTH:
                        problem = f"deeper than {DEFAULT_MAX_DEPTH} names"
                    elif self.repo.index.has_unusable and not self._usable_subtree(tid):
                        problem = "some of its chunks are only in packs a prune condemned"
                except TiervaultError as exc:
                    problem = str(exc)
                if problem is not None:
                    where = frame.prefix + name
                    self._findings.warn(where, f"parent tree {tid.hex()} not kept ({problem}): read next run")
                    continue
            out.append((name, old))
        return out

    def _close(self, frame: _Frame) -> None:
        """A directory's entries are all walked: count what it reused, and finalize what is ready."""
        self.stats.files_reused += frame.reused_files
        self.stats.bytes_reused += frame.reused_bytes
        self.progress.add(frame.reused_files, frame.reused_bytes)
        self._ready.append(frame.pending)
        self.drain(block=False)

    def drain(self, *, block: bool) -> None:
        """Finalize the walked directories, oldest first, whose files are all read (``block``: all,
        waiting for their reads)."""
        while self._ready and (block or self._ready[0].ready()):
            self._finalize(self._ready.popleft())

    def _finalize(self, pending: PendingDir) -> None:
        nodes = pending.nodes
        for name, obj, job, i, old in pending.jobs:
            if job.future is None:
                self._readers.send_batch()  # the open batch holds files of this directory: send it now
            assert job.future is not None
            result = job.future.result()[i]
            if isinstance(result, Stopped):
                # left for the next run; the checkpoint keeps what the parent held of it (runs converge)
                if old is not None and self._reuse.held(old, regular=True):
                    nodes.append((name, old))
                continue
            if isinstance(result, BaseException):
                self._findings.error(os.path.join(pending.path, name), result)
                continue
            content, size, changed = result
            if changed:
                self._findings.warn(os.path.join(pending.path, name), CHANGED_WHILE_READ)
            obj["content"] = content_to_json(content)
            obj["size"] = size
            with self._stats_lock:
                self.stats.files_read += 1
                self.stats.bytes_read += size
            self.progress.add(1, 0)
            nodes.append((name, obj))
        for name, obj, sub in pending.subdirs:
            assert sub.tree_id is not None, "post-order: children are finalized first"
            obj["subtree"] = sub.tree_id.hex()
            nodes.append((name, obj))
        nodes.sort(key=_by_name)
        objs = [obj for _, obj in nodes]
        if (
            pending.parent_nodes is not None
            and objs == pending.parent_nodes
            and pending.parent_tree is not None
            and pending.parent_tree in self.repo.index  # not only in a condemned pack (writer rule 3)
        ):
            pending.tree_id = pending.parent_tree  # unchanged directory: its tree is already stored
        else:
            data = encode_tree_json(objs)
            tid = chunk_id(self.repo.tree_key, data)
            self._meta.add(tid, data)
            pending.tree_id = tid
        pending.parent_nodes = None
        pending.nodes, pending.jobs, pending.subdirs = [], [], []
