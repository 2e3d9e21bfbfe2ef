"""The public API: ``init`` / ``open`` a repository and work with the :class:`Vault`.

This is the only module that builds concrete backends (``_backend_for``) and the only place where
backend decorators are stacked: ``CacheBackend(RetryingBackend(concrete))``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlparse

from tiervault import __version__
from tiervault.archiver import ArchiveOutcome, FolderArchiver, Progress, SnapshotStats
from tiervault.backend.base import Backend
from tiervault.cache import DEFAULT_MAX_BYTES as DEFAULT_CACHE_BYTES
from tiervault.cache import CacheBackend, CacheCleanup, CacheStats, cache_key, default_cache_dir
from tiervault.clock import SYSTEM_CLOCK, Clock
from tiervault.core.chunker import ChunkerParams
from tiervault.core.crypto import ScryptParams
from tiervault.core.format.tree import Node
from tiervault.errors import NotFoundError, TiervaultError, UsageError
from tiervault.maintenance import CheckResult, check
from tiervault.policy import Policy
from tiervault.reads import counting_reads
from tiervault.repo.leftovers import incomplete_writes, leftover_warnings, remove_stale
from tiervault.repo.provenance import host_name, now_iso, user_name
from tiervault.repo.repository import (
    DEFAULT_PACK_SIZE,
    LOCAL_PACK_SIZE,
    Repository,
)
from tiervault.repo.snapshots import ItemRecord, SnapshotRecord, parse_iso
from tiervault.repo.treewalk import data_packs_of, walk
from tiervault.restore import RestorePlanSummary, Restorer, RestoreStats, Selection, plan_restore

Password = str | bytes
log = logging.getLogger("tiervault.api")


# ---------------------------------------------------------------------------------------------- models


@dataclass(frozen=True, slots=True)
class Item:
    """A protected data source and its policy (DPM's protection group)."""

    name: str
    kind: str
    source: str
    policy: Policy
    created: str
    updated: str

    @classmethod
    def _from(cls, rec: ItemRecord) -> Item:
        return cls(rec.name, rec.kind, rec.source, Policy.from_json(rec.policy), rec.created, rec.updated)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "source": self.source,
            "policy": self.policy.to_json(),
            "created": self.created,
            "updated": self.updated,
        }


@dataclass(frozen=True, slots=True)
class RecoveryPoint:
    """One snapshot of one item."""

    id: str
    item: str
    time: datetime
    host: str
    user: str
    source: str
    tags: tuple[str, ...]
    parent: str | None
    partial: bool
    errors: tuple[dict[str, str], ...]
    stats: dict[str, Any]
    #: taken under a deadline that ran out: holds only part of the source (``latest`` skips it)
    incomplete: bool = False
    #: files stored although they changed while they were read (``{"path", "warning"}``)
    warnings: tuple[dict[str, str], ...] = ()

    @property
    def short_id(self) -> str:
        return self.id[:8]

    @classmethod
    def _from(cls, rec: SnapshotRecord) -> RecoveryPoint:
        return cls(
            id=rec.id,
            item=rec.item,
            time=parse_iso(rec.time),
            host=rec.host,
            user=rec.user,
            source=rec.source,
            tags=tuple(rec.tags),
            parent=rec.parent,
            partial=rec.partial,
            errors=tuple(rec.errors),
            stats=dict(rec.stats),
            incomplete=rec.incomplete,
            warnings=tuple(rec.warnings),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "short_id": self.short_id,
            "item": self.item,
            "time": self.time.isoformat(),
            "host": self.host,
            "user": self.user,
            "source": self.source,
            "tags": list(self.tags),
            "parent": self.parent,
            "partial": self.partial,
            "incomplete": self.incomplete,
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "stats": self.stats,
        }


@dataclass(frozen=True, slots=True)
class SnapshotResult:
    """What ``Vault.snapshot`` returns: the new recovery point, its counters and per-file errors."""

    point: RecoveryPoint
    stats: SnapshotStats
    errors: tuple[dict[str, str], ...]
    #: files stored although they kept changing while they were read: their content may mix
    #: states (the next snapshot reads them again)
    warnings: tuple[dict[str, str], ...] = ()

    @property
    def partial(self) -> bool:
        """True when some files could not be read: the point exists, but without them."""
        return bool(self.errors)

    @property
    def incomplete(self) -> bool:
        """True when the deadline ran out first: call ``snapshot`` again to resume."""
        return self.point.incomplete

    def to_json(self) -> dict[str, Any]:
        return {
            "point": self.point.to_json(),
            "stats": self.stats.to_json(),
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "partial": self.partial,
            "incomplete": self.incomplete,
        }


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """What ``Vault.restore`` returns: counters and per-entry errors (``ok`` when there are none)."""

    stats: RestoreStats
    errors: tuple[dict[str, str], ...] = field(default_factory=tuple)
    #: the deadline came first: run the same restore into the same target again to finish it
    incomplete: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "incomplete": self.incomplete,
            "stats": self.stats.to_json(),
            "errors": list(self.errors),
        }


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of a directory inside a recovery point (what ``ls`` returns)."""

    path: str
    name: str
    type: str
    size: int
    mode: int
    uid: int
    gid: int
    mtime: datetime
    target: str | None = None

    @classmethod
    def _from(cls, path: str, n: Node) -> Entry:
        return cls(
            path=path,
            name=n.name.decode("utf-8", "surrogateescape"),
            type=n.type,
            size=n.size,
            mode=n.mode,
            uid=n.uid,
            gid=n.gid,
            mtime=datetime.fromtimestamp(n.mtime_ns / 1e9).astimezone(),
            target=os.fsdecode(n.target) if n.target is not None else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "name": self.name,
            "type": self.type,
            "size": self.size,
            "mode": oct(self.mode),
            "uid": self.uid,
            "gid": self.gid,
            "mtime": self.mtime.isoformat(),
            "target": self.target,
        }


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """One key slot of the repository (what ``keys()`` returns): the master keys wrapped by one password."""

    id: str
    #: the slot this vault was opened with (``remove_key`` refuses it; ``change_password`` replaces it)
    current: bool
    created: datetime | None
    host: str
    user: str
    #: why the slot cannot be read (it is skipped when opening), or None
    damaged: str | None = None

    @classmethod
    def _from(cls, k: dict[str, Any]) -> KeyInfo:
        created = parse_iso(k["created"]) if k.get("created") else None
        return cls(k["id"], bool(k["current"]), created, k["host"], k["user"], k.get("damaged"))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "current": self.current,
            "created": self.created.isoformat() if self.created else None,
            "host": self.host,
            "user": self.user,
            "damaged": self.damaged,
        }


# ---------------------------------------------------------------------------------------------- vault


def _password(pw: Password) -> bytes:
    data = pw.encode("utf-8") if isinstance(pw, str) else bytes(pw)
    if not data:
        raise UsageError("the password must not be empty")
    return data


@dataclass(frozen=True, slots=True)
class AzureOptions:
    """How to reach Azure Blob Storage (only for Azure addresses: ``https://...blob...``, ``az://``,
    ``azurite://``). ``tiervault.open(url, credential=...)`` is the short form of ``credential`` here.

    With none of ``credential``, ``connection_string``, ``account_key`` or ``sas_token`` (nor a SAS in an
    ``https://`` address), the environment is used (``AZURE_STORAGE_CONNECTION_STRING``/``_KEY``/
    ``_SAS_TOKEN``), then
    ``azure.identity.aio.DefaultAzureCredential``. A credential passed in is never closed by tiervault.
    """

    credential: Any = None
    connection_string: str | None = None
    account_key: str | None = None
    sas_token: str | None = None
    max_connections: int = 16
    retry_total: int = 4
    retry_backoff: float = 0.5
    validate_content: bool = True


CacheOption = str | os.PathLike[str] | bool | None


def _is_remote(url: str | os.PathLike[str]) -> bool:
    """An Azure address (``az://``, ``azurite://`` or an ``https://`` blob URL), not a local path."""
    return urlparse(os.fspath(url)).scheme in ("az", "azurite", "http", "https")


def _azure_options(azure: AzureOptions | None, credential: Any) -> AzureOptions | None:
    """``credential=`` given directly (as the Azure SDK takes it) means ``AzureOptions(credential=)``."""
    if credential is None:
        return azure
    if azure is not None:
        if azure.credential is not None:
            raise UsageError("give the credential once: credential= or AzureOptions(credential=), not both")
        return replace(azure, credential=credential)
    return AzureOptions(credential=credential)


def _open_backend(url: str | os.PathLike[str], azure: AzureOptions | None) -> Backend:
    """Build the concrete backend for an address (no decorators)."""
    text = os.fspath(url)
    parsed = urlparse(text)
    if _is_remote(text):
        from tiervault.backend.azure import AzureBackend

        o = azure or AzureOptions()
        return AzureBackend.from_url(
            text,
            credential=o.credential,
            connection_string=o.connection_string,
            account_key=o.account_key,
            sas_token=o.sas_token,
            max_connections=o.max_connections,
            retry_total=o.retry_total,
            retry_backoff=o.retry_backoff,
            validate_content=o.validate_content,
        )
    if azure is not None:
        raise UsageError("Azure options were given for a repository that is not on Azure")
    from tiervault.backend.local import LocalBackend

    if parsed.scheme == "file":
        return LocalBackend(unquote(parsed.path))
    if parsed.scheme == "":
        return LocalBackend(os.path.abspath(os.path.expanduser(text)))
    raise UsageError(
        f"unsupported repository address {text!r}: use a local path, file:///path, "
        "https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX], az://ACCOUNT/CONTAINER[/PREFIX] "
        "or azurite://HOST:PORT/CONTAINER"
    )


def _cache_dir(url: str | os.PathLike[str], cache_dir: CacheOption) -> Path | None:
    """Where the disk tier lives, or None: on by default for remote (Azure) repositories only."""
    if cache_dir is False:
        return None
    if cache_dir is None:
        return default_cache_dir() if _is_remote(url) else None
    if cache_dir is True:
        return default_cache_dir()
    text = os.fspath(cache_dir)
    if not text:
        raise UsageError("cache_dir must not be empty (use cache_dir=False to turn the disk tier off)")
    return Path(os.path.abspath(os.path.expanduser(text)))


def _backend_for(
    url: str | os.PathLike[str],
    azure: AzureOptions | None,
    *,
    cache_dir: CacheOption = None,
    cache_max_bytes: int = DEFAULT_CACHE_BYTES,
) -> CacheBackend:
    """Build the concrete backend for an address and stack its decorators (the only place):
    ``CacheBackend(RetryingBackend(concrete))`` (the cache counts reads per tier even when off)."""
    from tiervault.backend.retry import RetryingBackend

    if not isinstance(cache_max_bytes, int) or cache_max_bytes <= 0:
        raise UsageError(f"cache_max_bytes must be a positive number of bytes, not {cache_max_bytes!r}")
    where = _cache_dir(url, cache_dir)
    inner = _open_backend(url, azure)
    return CacheBackend(
        RetryingBackend(inner),
        where,
        max_bytes=cache_max_bytes,
        repository_key=cache_key(inner.location),
    )


def _find_cache(backend: Backend) -> CacheBackend | None:
    while not isinstance(backend, CacheBackend):
        if not hasattr(backend, "inner"):
            return None
        backend = backend.inner
    return backend


def _innermost(backend: Backend) -> Backend:
    while hasattr(backend, "inner"):
        backend = backend.inner
    return backend


def _stop_time(deadline: float | datetime | None, clock: Clock = SYSTEM_CLOCK) -> float | None:
    """The ``clock.monotonic()`` at which a run must stop taking new work, leaving a reserve to store
    what is in flight and commit (10% of the budget, between 1 and 30 seconds). A budget within the
    reserve gives "now": a snapshot still finishes one file first (``sources/stopping.py``)."""
    if deadline is None:
        return None
    if isinstance(deadline, datetime):
        if deadline.tzinfo is None:
            raise UsageError("deadline must be an aware datetime (with a time zone) or seconds")
        budget = deadline.timestamp() - clock.now()
    else:
        try:
            budget = float(deadline)
        except (TypeError, ValueError):
            raise UsageError(f"deadline must be seconds or an aware datetime, not {deadline!r}") from None
        if not math.isfinite(budget):
            raise UsageError(f"deadline must be a finite number of seconds, not {deadline!r}")
    if budget <= 0:
        raise UsageError("the deadline has already passed")
    reserve = min(30.0, max(1.0, budget / 10))
    return clock.monotonic() + max(0.0, budget - reserve)


async def _run_archiver(archiver: FolderArchiver) -> ArchiveOutcome:
    """``archiver.run`` in a worker thread. Cancelling the caller stops the archiver and waits for
    its threads to end (uploads in flight included) before the cancellation propagates: nothing
    keeps reading or storing behind a cancelled snapshot."""
    work = asyncio.ensure_future(asyncio.to_thread(archiver.run))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        archiver.cancel()
        while not work.done():
            try:
                await asyncio.wait({work})
            except asyncio.CancelledError:
                continue  # cancelled again: the threads still have to wind down first
        if not work.cancelled():
            work.exception()  # Cancelled, or a failure while winding down: the cancellation wins
        raise


def _require_text(value: str, what: str) -> None:
    """Names and tags are text, stored as JSON strings: refuse what is not valid UTF-8 (e.g. a
    command-line argument that was not, decoded with surrogate escapes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{what} must be valid UTF-8 text, not {value!r}") from None


def _inside_of(target: str | os.PathLike[str], source: str) -> bool:
    """Does ``target`` lie strictly below ``source`` (symlinks resolved)?"""
    if not source:
        return False
    real = os.path.realpath(os.path.abspath(os.fspath(target)))
    src = os.path.realpath(source)
    return real != src and os.path.commonpath([real, src]) == src


def _inspect_source(path: str | os.PathLike[str]) -> tuple[str, bool, bool]:
    source = os.path.abspath(os.path.expanduser(os.fspath(path)))
    return source, os.path.exists(source), os.path.isdir(source)


class Vault:
    """An opened repository. Use ``async with tiervault.open(...) as vault``.

    ``clock`` is the time snapshot and restore deadlines are measured with (``open(..., clock=)``; a
    fake one makes them testable).
    """

    def __init__(self, repo: Repository, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._repo = repo
        self._clock = clock
        self._closed = False
        self._cache = _find_cache(repo.backend)

    @property
    def repository_id(self) -> str:
        return self._repo.id

    @property
    def location(self) -> str:
        return self._repo.backend.location

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._repo.backend.aclose()

    async def __aenter__(self) -> Vault:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ items

    async def protect(self, path: str | os.PathLike[str], *, name: str, policy: Policy | None = None) -> Item:
        """Register a folder under ``name`` with a policy, or update the policy of an existing item
        (``policy=None`` keeps an existing item's policy; a new item gets ``Policy()``).

        Re-protecting an existing name with a different path is refused (it would mix two sources in
        one history).
        """
        if not name or "/" in name or name.strip() != name or len(name) > 200:
            raise UsageError("item name must be 1-200 characters, without '/' or surrounding spaces")
        _require_text(name, "item name")
        source, exists, is_dir = await asyncio.to_thread(_inspect_source, path)
        if not exists:
            raise UsageError(f"source path {source!r} does not exist")
        if not is_dir:
            raise UsageError(f"source path {source!r} is not a directory (folders are protected today)")
        existing = {i.name: i for i in await self._repo.list_items()}
        now = now_iso()
        old = existing.get(name)
        if policy is None:
            policy = Policy.from_json(old.policy) if old is not None else Policy()
        if old is not None and old.source != source:
            raise UsageError(f"item {name!r} already protects {old.source!r}, not {source!r}")
        rec = ItemRecord(
            name=name,
            kind="folder",
            source=source,
            policy=policy.to_json(),
            created=old.created if old else now,
            updated=now,
            host=host_name(),
        )
        if old is not None and old.policy == rec.policy:
            return Item._from(old)
        await self._repo.save_item(rec, replaces=old.id if old else None)
        return Item._from(rec)

    async def items(self) -> list[Item]:
        return [Item._from(r) for r in await self._repo.list_items()]

    async def item(self, name: str) -> Item:
        for rec in await self._repo.list_items():
            if rec.name == name:
                return Item._from(rec)
        raise NotFoundError(f"no protected item named {name!r} (see `tiervault protect`)")

    # ------------------------------------------------------------------ snapshots

    async def snapshot(
        self,
        item: str | Item,
        *,
        tags: Sequence[str] = (),
        force_rehash: bool = False,
        progress: Progress | None = None,
        deadline: float | datetime | None = None,
    ) -> SnapshotResult:
        """Take a recovery point of a protected item.

        Files unchanged since the previous point of the same item on this host (same size, mtime,
        ctime and inode) are not read again unless ``force_rehash``. A file that cannot be read is
        listed in ``errors`` and the result is ``partial``; the point is still committed.

        ``deadline`` (seconds from now, or an aware datetime) bounds the run, for Azure Functions:
        before it, the snapshot stops taking new files, stores what it has and commits an
        *incomplete* point (``result.incomplete``). That point is the checkpoint: the next call for
        the same item resumes from it, reading only what it did not finish and uploading nothing
        that is already stored. ``latest`` never resolves to an incomplete point. Every run finishes at
        least one file, so repeated runs under even a very short deadline converge.

        A file that changed while it was read is read again; one that changed again is stored as read
        and listed in ``warnings`` (also kept in the point). Cancelling the task stops the snapshot's
        threads before the cancellation completes, and commits no point.
        """
        for tag in tags:
            _require_text(tag, "a tag")
        it = item if isinstance(item, Item) else await self.item(item)
        if not await asyncio.to_thread(os.path.isdir, it.source):
            raise UsageError(f"source path {it.source!r} of item {it.name!r} is missing or not a directory")
        await remove_stale(self._repo.backend)  # temp files of killed writers, past the safe age
        stop_at = _stop_time(deadline, self._clock)
        await self._repo.index_orphan_packs()  # resume: reuse what an interrupted snapshot stored
        parent = await self._parent(it)
        loop = asyncio.get_running_loop()
        archiver = FolderArchiver(
            self._repo,
            loop,
            os.fsencode(it.source),
            parent_tree=bytes.fromhex(parent.tree) if parent else None,
            force_rehash=force_rehash,
            progress=progress,
            stop_at=stop_at,
            clock=self._clock,
            # packs in flight: a remote store hides its latency behind more of them; on a local disk
            # two keep the disk busy and peak memory lower
            max_inflight=2 if self.location.startswith(("/", "file:")) else 4,
        )
        outcome = await _run_archiver(archiver)
        await self._repo.flush_index()
        rec = SnapshotRecord(
            item=it.name,
            time=now_iso(),
            host=host_name(),
            user=user_name(),
            source=it.source,
            tree=outcome.tree.hex(),
            root=outcome.root,
            parent=parent.id if parent else None,
            tags=sorted(set(tags)),
            stats=outcome.stats.to_json(),
            errors=outcome.errors,
            partial=bool(outcome.errors),
            incomplete=outcome.incomplete,
            warnings=outcome.warnings,
            program=f"tiervault {__version__}",
        )
        await self._repo.save_snapshot(rec)
        if self._cache is not None and self._cache.enabled and not rec.incomplete:
            # the disk tier keeps what the newest point of each item needs, while its bound allows
            await self._cache.protect(it.name, await data_packs_of(self._repo, outcome.tree))
        return SnapshotResult(
            RecoveryPoint._from(rec), outcome.stats, tuple(outcome.errors), tuple(outcome.warnings)
        )

    async def _parent(self, it: Item) -> SnapshotRecord | None:
        host = host_name()
        candidates = [
            s
            for s in await self._repo.list_snapshots()
            if s.item == it.name and s.host == host and s.source == it.source
        ]
        return candidates[-1] if candidates else None

    async def points(
        self, item: str | None = None, *, tags: Sequence[str] | None = None
    ) -> list[RecoveryPoint]:
        """Recovery points, oldest first, optionally of one item and having all of ``tags``.

        A damaged snapshot object is left out and logged as a warning naming it (logger
        ``tiervault.repo``); ``check`` reports it as an error. ``latest`` and the parent of a new
        snapshot skip damaged points the same way."""
        out = []
        for s in await self._repo.list_snapshots():
            if item is not None and s.item != item:
                continue
            if tags and not set(tags) <= set(s.tags):
                continue
            out.append(RecoveryPoint._from(s))
        return out

    async def point(self, ref: str | RecoveryPoint) -> RecoveryPoint:
        """A point by id, unique id prefix, ``latest`` or ``latest:<item>``."""
        return RecoveryPoint._from(await self._record(ref))

    async def _record(self, ref: str | RecoveryPoint) -> SnapshotRecord:
        if isinstance(ref, RecoveryPoint):
            return await self._repo.load_snapshot(ref.id)
        if ref == "latest" or ref.startswith("latest:"):
            item = ref.partition(":")[2] or None
            snaps = [
                s
                for s in await self._repo.list_snapshots()
                if (item is None or s.item == item) and not s.incomplete
            ]
            if not snaps:
                raise NotFoundError("no recovery points" + (f" of item {item!r}" if item else ""))
            return snaps[-1]
        return await self._repo.find_snapshot(ref)

    async def ls(self, point: str | RecoveryPoint, path: str = "", *, recursive: bool = False) -> list[Entry]:
        """The entries of directory ``path`` inside a recovery point (or the entry itself for a file)."""
        rec = await self._record(point)
        parts = [p for p in os.fsencode(path).split(b"/") if p not in (b"", b".")]
        tree = bytes.fromhex(rec.tree)
        prefix = b""
        for i, part in enumerate(parts):
            nodes = {n.name: n for n in await self._repo.load_tree(tree)}
            node = nodes.get(part)
            if node is None:
                raise NotFoundError(f"{path!r} is not in recovery point {rec.id[:8]}")
            prefix = prefix + b"/" + part if prefix else part
            if node.type != "dir":
                if i != len(parts) - 1:
                    raise NotFoundError(f"{path!r} is not in recovery point {rec.id[:8]}")
                return [Entry._from(os.fsdecode(prefix), node)]
            assert node.subtree is not None
            tree = node.subtree
        return [
            Entry._from(os.fsdecode(entry_path), node)
            async for entry_path, node in walk(
                self._repo, tree, prefix=prefix, descend=lambda _p, _n: recursive
            )
        ]

    async def plan_restore(
        self,
        point: str | RecoveryPoint,
        *,
        paths: Sequence[str] | None = None,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
    ) -> RestorePlanSummary:
        """What restoring ``point`` (or the selection, as for ``restore``) needs, writing nothing:
        files, directories, bytes, and the packs to read by state (``readable``, ``archived``,
        ``rehydrating``, ``missing``) with their bytes by tier (``disk`` for the local disk tier,
        else the store's). ``restore`` refuses to start unless ``readable``."""
        rec = await self._record(point)
        plan = await plan_restore(self._repo, rec, Selection(paths, include, exclude), local=self._cache)
        return plan.summary()

    async def restore(
        self,
        point: str | RecoveryPoint,
        target: str | os.PathLike[str],
        *,
        paths: Sequence[str] | None = None,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        verify: bool = False,
        deadline: float | datetime | None = None,
        force: bool = False,
    ) -> RestoreResult:
        """Rebuild a recovery point (or the selected part of it) under ``target``.

        ``paths`` are paths inside the point; ``include``/``exclude`` are glob patterns matched
        against each path and its components. Files already identical in ``target`` are left
        alone; others are replaced atomically. ``verify`` re-reads every restored file. Nothing
        outside ``target`` is ever changed, whatever the point holds (docs/architecture.md,
        "Restore").

        ``deadline`` (seconds from now, or an aware datetime): before it, no new read starts; files
        finished by then are complete, and the result is ``incomplete``. The same restore into the
        same target resumes: complete files are recognised by their content and skipped.

        A target inside the item's protected source (the next snapshot would hold the restored copy
        too) is refused with ``UsageError`` unless ``force``; then it is a warning. Restoring over
        the source itself is allowed. A restore that could put nothing in place (a read-only target,
        every entry failing) raises ``TiervaultError``; per-entry failures otherwise are in
        ``errors``.

        Before anything is written, every pack the restore reads is checked (``plan_restore``): one
        in the Archive tier or being rehydrated raises ``ObjectArchivedError``, a missing one
        ``ObjectNotFoundError``, each naming how many packs and bytes.
        """
        stop_at = _stop_time(deadline, self._clock)
        with counting_reads() as reads:  # every read of this restore per tier, the point's record too
            rec = await self._record(point)
            await self._check_restore_target(rec, target, force)
            restorer = Restorer(
                self._repo,
                rec,
                target,
                paths=paths,
                include=include,
                exclude=exclude,
                verify=verify,
                stop_at=stop_at,
                clock=self._clock,
                local=self._cache,
                reads=reads,
            )
            stats, errors = await restorer.run()
        return RestoreResult(stats, tuple(errors), restorer.incomplete)

    async def _check_restore_target(
        self, rec: SnapshotRecord, target: str | os.PathLike[str], force: bool
    ) -> None:
        """Refuse (or with ``force`` warn about) a target strictly inside the item's source (the
        point's ``source``: an item's source never changes, see ``protect``)."""
        if not await asyncio.to_thread(_inside_of, target, rec.source):
            return
        msg = (
            f"restore target {os.fspath(target)!r} is inside the protected source {rec.source!r} of "
            f"item {rec.item!r}: the next snapshot would back up the restored copy too"
        )
        if not force:
            raise UsageError(msg + "; restore elsewhere, or pass force=True (--force) to restore there")
        log.warning("%s (forced)", msg)

    # ------------------------------------------------------------------ the disk tier

    def _disk_tier(self) -> CacheBackend:
        if self._cache is None:  # pragma: no cover - _backend_for always stacks one
            raise UsageError("this vault has no disk tier")
        return self._cache

    async def cache_stats(self) -> CacheStats:
        """The disk tier of this repository: on or off (and why), where, how full, and how many read
        requests and bytes it and the store served since the vault was opened."""
        return await self._disk_tier().report()

    async def cache_prune(self) -> CacheCleanup:
        """Evict least recently used entries (data packs first) until the cache is within its bound."""
        return await self._disk_tier().prune()

    async def cache_clear(self) -> CacheCleanup:
        """Remove every cached object of this repository (nothing is lost: the store has them all)."""
        return await self._disk_tier().clear()

    # ------------------------------------------------------------------ maintenance and keys

    async def check(self, *, read_data: bool = False) -> CheckResult:
        """Verify the repository; ``read_data`` also reads and authenticates every data pack.

        Temporary files left by unfinished writes are reported as warnings (count and bytes, then
        each one by name); the next snapshot removes those older than the safe age."""
        result = await check(self._repo, read_data=read_data)
        result.warnings.extend(leftover_warnings(await incomplete_writes(self._repo.backend)))
        return result

    async def keys(self) -> list[KeyInfo]:
        """The repository's key slots, oldest first."""
        return [KeyInfo._from(k) for k in await self._repo.list_keys()]

    async def add_key(self, password: Password, *, kdf: ScryptParams | None = None) -> str:
        return await self._repo.add_key(_password(password), kdf=kdf)

    async def remove_key(self, key_id: str) -> None:
        await self._repo.remove_key(key_id)

    async def change_password(self, new_password: Password, *, kdf: ScryptParams | None = None) -> str:
        return await self._repo.change_password(_password(new_password), kdf=kdf)


class _Opening:
    """What ``init``/``open`` return: await it, or use it with ``async with`` (closes the vault)."""

    def __init__(self, factory: Callable[[], Awaitable[Vault]]) -> None:
        self._factory = factory
        self._vault: Vault | None = None

    def __await__(self) -> Generator[Any, None, Vault]:
        return self._factory().__await__()

    async def __aenter__(self) -> Vault:
        self._vault = await self._factory()
        return self._vault

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._vault is not None:
            await self._vault.aclose()


def open(
    url: str | os.PathLike[str],
    *,
    password: Password,
    credential: Any = None,
    azure: AzureOptions | None = None,
    cache_dir: CacheOption = None,
    cache_max_bytes: int = DEFAULT_CACHE_BYTES,
    clock: Clock | None = None,
) -> _Opening:
    """Open an existing repository: a local path, ``file://``, an Azure blob URL
    (``https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]``, optionally with a SAS), ``az://`` or
    ``azurite://`` address.

    ``credential`` is any ``azure.identity.aio`` credential (or what the SDK accepts as one), as an
    Azure SDK client takes it; tiervault never closes a credential it did not create. Without one, see
    :class:`AzureOptions` for the order in which the environment is tried.

    The disk tier (``docs/architecture.md``, "Disk tier") is on by default for Azure repositories,
    in :func:`tiervault.cache.default_cache_dir`, and off for local ones. ``cache_dir`` names its
    directory (``True``: the default one, also for a local repository); ``cache_dir=False`` turns it
    off. ``cache_max_bytes`` bounds what it keeps of this repository (2 GiB). ``clock`` is what
    snapshot deadlines are measured by (the system clock; tests pass a fake one).
    """

    options = _azure_options(azure, credential)

    async def go() -> Vault:
        backend = _backend_for(url, options, cache_dir=cache_dir, cache_max_bytes=cache_max_bytes)
        try:
            return Vault(await Repository.open(backend, _password(password)), clock=clock or SYSTEM_CLOCK)
        except BaseException:
            await backend.aclose()
            raise

    return _Opening(go)


def init(
    url: str | os.PathLike[str],
    *,
    password: Password,
    pack_size: int | None = None,
    chunker: ChunkerParams | None = None,
    kdf: ScryptParams | None = None,
    credential: Any = None,
    azure: AzureOptions | None = None,
    create_container: bool = True,
    cache_dir: CacheOption = None,
    cache_max_bytes: int = DEFAULT_CACHE_BYTES,
    clock: Clock | None = None,
) -> _Opening:
    """Create a repository and open it. On Azure the container is created first when
    ``create_container`` (and the credential may do so). ``credential``, ``cache_dir``,
    ``cache_max_bytes`` and ``clock`` as for :func:`open`. ``pack_size`` defaults to 8 MiB on a local
    file system and 16 MiB elsewhere."""
    options = _azure_options(azure, credential)

    async def go() -> Vault:
        backend = _backend_for(url, options, cache_dir=cache_dir, cache_max_bytes=cache_max_bytes)
        try:
            concrete = _innermost(backend)
            # packs are buffered in memory until stored: a local disk needs no large ones, a remote
            # store pays per request and lists per object (docs/performance.md, "Memory")
            size = pack_size
            if size is None:
                from tiervault.backend.local import LocalBackend

                size = LOCAL_PACK_SIZE if isinstance(concrete, LocalBackend) else DEFAULT_PACK_SIZE
            create = getattr(concrete, "create_container", None)
            if create_container and create is not None:
                await create()
            repo = await Repository.init(
                backend, _password(password), chunker=chunker, pack_size=size, kdf=kdf
            )
            return Vault(repo, clock=clock or SYSTEM_CLOCK)
        except BaseException:
            await backend.aclose()
            raise

    return _Opening(go)


__all__ = [
    "AzureOptions",
    "Entry",
    "Item",
    "KeyInfo",
    "RecoveryPoint",
    "RestoreResult",
    "SnapshotResult",
    "TiervaultError",
    "Vault",
    "init",
    "open",
]
