"""Recovery points (snapshot objects) and protected items, as stored (JSON inside sealed envelopes).

Paths (``source``, ``errors[].path``) are held as ``str`` decoded from file-system bytes with
``surrogateescape``; they are stored as a JSON string when those bytes are UTF-8 and as ``*_b64``
otherwise (docs/format.md, "Snapshots"), so the stored JSON is always strict UTF-8.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tiervault.core.format import FormatError
from tiervault.core.format.tree import put_bytes

SNAPSHOT_VERSION = 1
ITEM_VERSION = 1


def utc_iso(ts_ns: int) -> str:
    """RFC 3339 UTC time with nanoseconds, sortable as text."""
    secs, ns = divmod(ts_ns, 1_000_000_000)
    dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=secs)
    return f"{dt.year:04d}-" + dt.strftime("%m-%dT%H:%M:%S") + f".{ns:09d}Z"  # 4 digits: year 999 too


def datetime_iso(dt: datetime) -> str:
    """An aware datetime as stored (RFC 3339 UTC, ns precision); a naive one is a ``ValueError``."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("the time must be timezone-aware")
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return utc_iso(delta // timedelta(microseconds=1) * 1000)


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
        return _text(obj, key)
    if key + "_b64" in obj:
        raw = base64.b64decode(_text(obj, key + "_b64"), validate=True)
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


_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z")
_ID_RE = re.compile(r"[0-9a-f]{64}")


def _text(o: dict[str, Any], key: str, default: str | None = None) -> str:
    """A field that must be a JSON string (absent: ``default``, or an error without one)."""
    value = o.get(key, default)
    if not isinstance(value, str):
        raise FormatError(f"{key} must be a string, not {value!r:.40}")
    return value


def _time(o: dict[str, Any], key: str) -> str:
    value = _text(o, key)
    if not _TIME_RE.fullmatch(value):
        raise FormatError(f"{key} is not an RFC 3339 UTC time: {value!r:.40}")
    try:
        parse_iso(value)  # a real date (month 13 fails here)
    except ValueError:
        raise FormatError(f"{key} is not a real date and time: {value!r:.40}") from None
    return value


def _flag(o: dict[str, Any], key: str) -> bool:
    value = o.get(key, False)
    if not isinstance(value, bool):
        raise FormatError(f"{key} must be true or false, not {value!r:.40}")
    return value


def _entries(o: dict[str, Any], key: str) -> list[dict[str, str]]:
    """``errors`` / ``warnings``: a list of objects of strings (paths as ``path`` or ``path_b64``)."""
    value = o.get(key, [])
    if not isinstance(value, list) or not all(
        isinstance(e, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in e.items())
        for e in value
    ):
        raise FormatError(f"{key} must be a list of objects of strings")
    return [_error_from_json(e) for e in value]


def _stats(o: dict[str, Any]) -> dict[str, Any]:
    value = o.get("stats", {})
    if not isinstance(value, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()
    ):
        raise FormatError("stats must be an object of numbers")
    return dict(value)


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
    #: when the point was committed, if not ``time`` (a point recorded at a given time); ``None``
    #: means the same as ``time``
    committed: str | None = None
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
        if self.committed is not None:  # written only for a point recorded at a given time
            out["committed"] = self.committed
        return out

    @classmethod
    def from_json(cls, o: dict[str, Any], sid: str) -> SnapshotRecord:
        """Decode and check every field (docs/format.md, "Snapshots"): a crafted but authentic
        snapshot is a ``FormatError`` here, so listings skip it like a damaged one."""
        if not isinstance(o, dict):
            raise FormatError("bad snapshot: not a JSON object")
        try:
            if o.get("v") != SNAPSHOT_VERSION:
                raise FormatError(f"snapshot version {o.get('v')} is not supported")
            tree, parent, root, tags = _text(o, "tree"), o.get("parent"), o.get("root"), o.get("tags", [])
            if not _ID_RE.fullmatch(tree):
                raise FormatError(f"tree is not a 64-hex-digit id: {tree!r:.70}")
            if parent is not None and not (isinstance(parent, str) and _ID_RE.fullmatch(parent)):
                raise FormatError(f"parent is neither null nor a 64-hex-digit id: {parent!r:.70}")
            if not isinstance(root, dict):
                raise FormatError("root must be a tree node object")
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise FormatError("tags must be a list of strings")
            item = _text(o, "item")
            if not item:
                raise FormatError("item must not be empty")
            return cls(
                item=item,
                time=_time(o, "time"),
                host=_text(o, "host"),
                user=_text(o, "user"),
                source=_get_path(o, "source"),
                tree=tree,
                root=dict(root),
                parent=parent,
                tags=list(tags),
                stats=_stats(o),
                errors=_entries(o, "errors"),
                partial=_flag(o, "partial"),
                incomplete=_flag(o, "incomplete"),
                warnings=_entries(o, "warnings"),
                program=_text(o, "program", ""),
                committed=_time(o, "committed") if "committed" in o else None,
                id=sid,
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, FormatError):
                raise FormatError(f"bad snapshot: {exc}") from None
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
        """Decode and check every field (docs/format.md, "Items")."""
        if not isinstance(o, dict):
            raise FormatError("bad item: not a JSON object")
        try:
            if o.get("v") != ITEM_VERSION:
                raise FormatError(f"item version {o.get('v')} is not supported")
            name, policy = _text(o, "name"), o.get("policy")
            if not name:
                raise FormatError("name must not be empty")
            if not isinstance(policy, dict):
                raise FormatError("policy must be an object")
            return cls(
                name=name,
                kind=_text(o, "kind"),
                source=_get_path(o, "source"),
                policy=dict(policy),
                created=_time(o, "created"),
                updated=_time(o, "updated"),
                host=_text(o, "host", ""),
                id=iid,
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, FormatError):
                raise FormatError(f"bad item: {exc}") from None
            raise FormatError(f"bad item: {exc}") from exc
