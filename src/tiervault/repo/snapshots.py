"""Recovery points (snapshot objects) and protected items, as stored (JSON inside sealed envelopes).

Paths (``source``, ``errors[].path``) are held as ``str`` decoded from file-system bytes with
``surrogateescape``; they are stored as a JSON string when those bytes are UTF-8 and as ``*_b64``
otherwise (docs/format.md, "Snapshots"), so the stored JSON is always strict UTF-8.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tiervault.core.format import FormatError
from tiervault.core.format.tree import put_bytes

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


def _path_bytes(text: str) -> bytes:
    """A path as the API holds it (file-system bytes decoded with ``surrogateescape``) as bytes."""
    return text.encode("utf-8", "surrogateescape")


def _put_path(out: dict[str, Any], key: str, text: str) -> None:
    """Store a path as ``key`` when its bytes are UTF-8, else as ``key_b64`` (the tree rule,
    ``put_bytes``): a JSON string never carries a lone surrogate, which strict readers reject."""
    put_bytes(out, key, _path_bytes(text))


def _get_path(obj: dict[str, Any], key: str) -> str:
    if key in obj:
        return str(obj[key])
    if key + "_b64" in obj:
        raw = base64.b64decode(str(obj[key + "_b64"]), validate=True)
        return raw.decode("utf-8", "surrogateescape")
    raise KeyError(key)


def _error_json(e: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in e.items():
        if k == "path":
            _put_path(out, "path", v)
        else:  # a message may quote a path: keep it readable, and strict UTF-8
            out[k] = _strict_text(v)
    return out


def _strict_text(text: str) -> str:
    """``text`` with what is not UTF-8 shown as ``\\xNN`` escapes (display text, not a path)."""
    try:
        return _path_bytes(text).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no file-system name decodes to
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _error_from_json(e: dict[str, Any]) -> dict[str, str]:
    out = {str(k): str(v) for k, v in e.items() if k != "path_b64"}
    if "path_b64" in e and "path" not in e:
        out["path"] = _get_path(e, "path")
    return out


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
            "tree": self.tree,
            "root": self.root,
            "parent": self.parent,
            "tags": sorted(self.tags),
            "stats": self.stats,
            "errors": [_error_json(e) for e in self.errors],
            "partial": self.partial,
            "incomplete": self.incomplete,
            "program": self.program,
        }
        _put_path(out, "source", self.source)
        if self.warnings:  # written only when there are some (readers default it to [])
            out["warnings"] = [_error_json(w) for w in self.warnings]
        return out

    @classmethod
    def from_json(cls, o: dict[str, Any], sid: str) -> SnapshotRecord:
        if not isinstance(o, dict):
            raise FormatError("bad snapshot: not a JSON object")
        try:
            if o.get("v") != SNAPSHOT_VERSION:
                raise FormatError(f"snapshot version {o.get('v')} is not supported")
            return cls(
                item=str(o["item"]),
                time=str(o["time"]),
                host=str(o["host"]),
                user=str(o["user"]),
                source=_get_path(o, "source"),
                tree=str(o["tree"]),
                root=dict(o["root"]),
                parent=o.get("parent"),
                tags=[str(t) for t in o.get("tags", [])],
                stats=dict(o.get("stats", {})),
                errors=[_error_from_json(dict(e)) for e in o.get("errors", [])],
                partial=bool(o.get("partial", False)),
                incomplete=bool(o.get("incomplete", False)),
                warnings=[_error_from_json(dict(w)) for w in o.get("warnings", [])],
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
        out: dict[str, Any] = {
            "v": ITEM_VERSION,
            "name": self.name,
            "kind": self.kind,
            "policy": self.policy,
            "created": self.created,
            "updated": self.updated,
            "host": self.host,
        }
        _put_path(out, "source", self.source)
        return out

    @classmethod
    def from_json(cls, o: dict[str, Any], iid: str) -> ItemRecord:
        if not isinstance(o, dict):
            raise FormatError("bad item: not a JSON object")
        try:
            if o.get("v") != ITEM_VERSION:
                raise FormatError(f"item version {o.get('v')} is not supported")
            return cls(
                name=str(o["name"]),
                kind=str(o["kind"]),
                source=_get_path(o, "source"),
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
