"""The public value types the API returns: items, recovery points, the results of a snapshot or a
restore, directory entries, key slots. Plain frozen dataclasses with ``to_json``; built from the
stored records (``repo/snapshots.py``) by ``_from``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tiervault.archiver import SnapshotStats
from tiervault.core.format.tree import Node
from tiervault.policy import Policy
from tiervault.repo.snapshots import ItemRecord, SnapshotRecord, parse_iso
from tiervault.restore.planner import RestorePlanSummary
from tiervault.restore.rehydration import RehydrationProgress
from tiervault.restore.restorer import RestoreStats


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
    #: when the point was committed: ``time`` unless it was recorded at a given time
    committed: datetime | None = None

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
            committed=parse_iso(rec.committed or rec.time),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "short_id": self.short_id,
            "item": self.item,
            "time": self.time.isoformat(),
            "committed": (self.committed or self.time).isoformat(),
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
    #: a restore from Archive (``rehydrate=True``): where its rehydration stands (None: nothing was
    #: needed from Archive)
    rehydration: RehydrationProgress | None = None
    #: packs are still coming out of Archive: nothing was written; run the same restore again
    awaiting_rehydration: bool = False
    #: the plan's summary (a restore from Archive, awaiting rehydration)
    plan: RestorePlanSummary | None = None
    #: staging copies deleted after a finished restore from Archive
    staging_removed: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ok": self.ok,
            "incomplete": self.incomplete,
            "stats": self.stats.to_json(),
            "errors": list(self.errors),
        }
        if self.rehydration is not None or self.awaiting_rehydration:
            out["awaiting_rehydration"] = self.awaiting_rehydration
            out["rehydration"] = None if self.rehydration is None else self.rehydration.to_json()
            out["plan"] = None if self.plan is None else self.plan.to_json()
            out["staging_removed"] = self.staging_removed
        return out


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
