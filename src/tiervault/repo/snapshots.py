"""Recovery points (snapshot objects) and protected items, as stored (JSON inside sealed envelopes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tiervault.core.format import FormatError

SNAPSHOT_VERSION = 1
ITEM_VERSION = 1


def utc_iso(ts_ns: int) -> str:
    """RFC 3339 UTC time with nanoseconds, sortable as text."""
    secs, ns = divmod(ts_ns, 1_000_000_000)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns:09d}Z"


def parse_iso(s: str) -> datetime:
    base, _, frac = s.rstrip("Z").partition(".")
    dt = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    micro = int((frac + "000000")[:6]) if frac else 0
    return dt.replace(microsecond=micro)


@dataclass(slots=True)
class SnapshotRecord:
    item: str
    time: str
    host: str
    user: str
    source: str
    tree: str  # hex id of the root tree
    root: dict[str, Any]  # tree-node JSON of the source directory itself (mode, owner, times)
    parent: str | None = None
    tags: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)
    partial: bool = False
    #: the time budget ran out: the point holds only what was done (a checkpoint to resume from)
    incomplete: bool = False
    #: files stored although they changed while they were read: ``{"path": …, "warning": …}``
    warnings: list[dict[str, str]] = field(default_factory=list)
    program: str = ""
    id: str = ""  # the storage hash; not part of the stored JSON

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "v": SNAPSHOT_VERSION,
            "item": self.item,
            "time": self.time,
            "host": self.host,
            "user": self.user,
            "source": self.source,
            "tree": self.tree,
            "root": self.root,
            "parent": self.parent,
            "tags": sorted(self.tags),
            "stats": self.stats,
            "errors": self.errors,
            "partial": self.partial,
            "incomplete": self.incomplete,
            "program": self.program,
        }
        if self.warnings:  # written only when there are some (readers default it to [])
            out["warnings"] = self.warnings
        return out

    @classmethod
    def from_json(cls, o: dict[str, Any], sid: str) -> SnapshotRecord:
        try:
            if o.get("v") != SNAPSHOT_VERSION:
                raise FormatError(f"snapshot version {o.get('v')} is not supported")
            return cls(
                item=str(o["item"]),
                time=str(o["time"]),
                host=str(o["host"]),
                user=str(o["user"]),
                source=str(o["source"]),
                tree=str(o["tree"]),
                root=dict(o["root"]),
                parent=o.get("parent"),
                tags=[str(t) for t in o.get("tags", [])],
                stats=dict(o.get("stats", {})),
                errors=[dict(e) for e in o.get("errors", [])],
                partial=bool(o.get("partial", False)),
                incomplete=bool(o.get("incomplete", False)),
                warnings=[dict(w) for w in o.get("warnings", [])],
                program=str(o.get("program", "")),
                id=sid,
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, FormatError):
                raise
            raise FormatError(f"bad snapshot: {exc}") from exc


@dataclass(slots=True)
class ItemRecord:
    name: str
    kind: str  # "folder"
    source: str  # absolute path
    policy: dict[str, Any]
    created: str
    updated: str
    host: str
    id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "v": ITEM_VERSION,
            "name": self.name,
            "kind": self.kind,
            "source": self.source,
            "policy": self.policy,
            "created": self.created,
            "updated": self.updated,
            "host": self.host,
        }

    @classmethod
    def from_json(cls, o: dict[str, Any], iid: str) -> ItemRecord:
        try:
            if o.get("v") != ITEM_VERSION:
                raise FormatError(f"item version {o.get('v')} is not supported")
            return cls(
                name=str(o["name"]),
                kind=str(o["kind"]),
                source=str(o["source"]),
                policy=dict(o["policy"]),
                created=str(o["created"]),
                updated=str(o["updated"]),
                host=str(o.get("host", "")),
                id=iid,
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, FormatError):
                raise
            raise FormatError(f"bad item: {exc}") from exc
