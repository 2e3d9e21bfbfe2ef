"""The garbage-collection objects of format version 2, as JSON (docs/format.md, "Garbage collection:
forget and prune", "New objects"): a PLAN condemns packs, a GONE records the ones a sweep deletes,
a HEARTBEAT makes a writer or a prune known. Each is the plaintext of a sealed object (types 5, 6, 7).

Decoding validates every field and raises only ``FormatError``: these objects come from storage.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tiervault.core.format import FormatError

GC_VERSION = 1
REASONS = ("unreferenced", "repacked", "orphan")
KINDS = ("data", "meta")
WRITER_KINDS = ("snapshot", "prune")
#: longest ``host``/``user``/``program`` kept (they are informational)
MAX_TEXT = 1024

_ID = re.compile(r"[0-9a-f]{64}")
_SESSION = re.compile(r"[0-9a-f]{32}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z")


def _encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _decode(plain: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(plain.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f"{what} is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise FormatError(f"{what} is not a JSON object")
    if obj.get("v") != GC_VERSION or isinstance(obj.get("v"), bool):
        raise FormatError(f"{what} version {obj.get('v')!r:.20} is not supported")
    return obj


def _id(value: Any, key: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise FormatError(f"{key} must be 64 hex digits, not {value!r:.80}")
    return value


def _text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise FormatError(f"{key} must be a string of at most {MAX_TEXT} characters, not {value!r:.40}")
    return value


def _int(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 63:
        raise FormatError(f"{key} must be a non-negative integer, not {value!r:.40}")
    return value


def _time_or_none(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        raise FormatError(f"{key} must be an RFC 3339 UTC time or null, not {value!r:.40}")
    return value


def _choice(value: Any, key: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed or not isinstance(value, str):
        raise FormatError(f"{key} must be one of {', '.join(allowed)}, not {value!r:.40}")
    return value


@dataclass(frozen=True, slots=True)
class CondemnedPack:
    id: str
    kind: str  #: "data" or "meta"
    reason: str  #: "unreferenced", "repacked" or "orphan"

    @property
    def name(self) -> str:
        return f"{self.kind}/{self.id[:2]}/{self.id}"


def _packs(obj: dict[str, Any], *, with_reason: bool) -> tuple[CondemnedPack, ...]:
    value = obj.get("packs")
    if not isinstance(value, list):
        raise FormatError("packs must be a list")
    out: list[CondemnedPack] = []
    for p in value:
        if not isinstance(p, dict) or set(p) != ({"id", "kind", "reason"} if with_reason else {"id", "kind"}):
            raise FormatError(f"a pack entry has the wrong fields: {p!r:.80}")
        reason = _choice(p["reason"], "reason", REASONS) if with_reason else "unreferenced"
        out.append(CondemnedPack(_id(p["id"], "pack id"), _choice(p["kind"], "kind", KINDS), reason))
    ids = [p.id for p in out]
    if ids != sorted(set(ids)):
        raise FormatError("packs must be sorted by id, each once")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class PlanRecord:
    """PLAN (type 5): the packs one prune condemned, and the snapshots it computed references from."""

    packs: tuple[CondemnedPack, ...]
    snapshots: tuple[str, ...]
    host: str
    pid: int

    def to_bytes(self) -> bytes:
        return _encode(
            {
                "v": GC_VERSION,
                "packs": [
                    {"id": p.id, "kind": p.kind, "reason": p.reason} for p in sorted(self.packs, key=_pid)
                ],
                "snapshots": sorted(self.snapshots),
                "host": self.host[:MAX_TEXT],
                "pid": self.pid,
            }
        )

    @classmethod
    def from_bytes(cls, plain: bytes) -> PlanRecord:
        obj = _decode(plain, "plan")
        snaps = obj.get("snapshots")
        if not isinstance(snaps, list):
            raise FormatError("snapshots must be a list")
        ids = tuple(_id(s, "snapshot id") for s in snaps)
        if list(ids) != sorted(set(ids)):
            raise FormatError("snapshots must be sorted, each once")
        return cls(_packs(obj, with_reason=True), ids, _text(obj, "host"), _int(obj, "pid"))


@dataclass(frozen=True, slots=True)
class GoneRecord:
    """GONE (type 6): the packs a sweep of ``plan`` deletes (stored before the first delete)."""

    plan: str
    packs: tuple[CondemnedPack, ...]
    unlisted: bool
    supersedes: str | None

    def to_bytes(self) -> bytes:
        return _encode(
            {
                "v": GC_VERSION,
                "plan": self.plan,
                "packs": [{"id": p.id, "kind": p.kind} for p in sorted(self.packs, key=_pid)],
                "unlisted": self.unlisted,
                "supersedes": self.supersedes,
            }
        )

    @classmethod
    def from_bytes(cls, plain: bytes) -> GoneRecord:
        obj = _decode(plain, "gone")
        unlisted = obj.get("unlisted")
        if not isinstance(unlisted, bool):
            raise FormatError(f"unlisted must be true or false, not {unlisted!r:.40}")
        sup = obj.get("supersedes")
        return cls(
            _id(obj.get("plan"), "plan"),
            _packs(obj, with_reason=False),
            unlisted,
            None if sup is None else _id(sup, "supersedes"),
        )


@dataclass(frozen=True, slots=True)
class HeartbeatRecord:
    """HEARTBEAT (type 7): one renewal of a writer's or a prune's series."""

    session: str
    seq: int
    kind: str  #: "snapshot" or "prune"
    host: str
    pid: int
    user: str
    program: str
    started: str | None  #: store time of the series' seq 0 heartbeat (None in seq 0 itself)
    lease_expires: str | None = None  #: prune only, informational (the holder's clock)

    def to_bytes(self) -> bytes:
        return _encode(
            {
                "v": GC_VERSION,
                "session": self.session,
                "seq": self.seq,
                "kind": self.kind,
                "host": self.host[:MAX_TEXT],
                "pid": self.pid,
                "user": self.user[:MAX_TEXT],
                "program": self.program[:MAX_TEXT],
                "started": self.started,
                "lease_expires": self.lease_expires,
            }
        )

    @classmethod
    def from_bytes(cls, plain: bytes) -> HeartbeatRecord:
        obj = _decode(plain, "heartbeat")
        session = obj.get("session")
        if not isinstance(session, str) or not _SESSION.fullmatch(session):
            raise FormatError(f"session must be 32 hex digits, not {session!r:.40}")
        return cls(
            session,
            _int(obj, "seq"),
            _choice(obj.get("kind"), "kind", WRITER_KINDS),
            _text(obj, "host"),
            _int(obj, "pid"),
            _text(obj, "user"),
            _text(obj, "program"),
            _time_or_none(obj, "started"),
            _time_or_none(obj, "lease_expires"),
        )


def _pid(p: CondemnedPack) -> str:
    return p.id
