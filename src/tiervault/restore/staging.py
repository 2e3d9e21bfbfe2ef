"""Rehydration records and staging copies: the state of a restore from Archive, kept in the repository.

docs/format.md, "Restores from Archive": a REHYDRATION record ``restore/<h>`` (sealed object type 8)
names the point and the selection of a restore and the data packs it copies out of Archive; each
copy is ``staging/<h>/<pack id>``. The record is stored before its first copy is started, and deleted
after its copies (ordering invariant 19). This module reads, writes and deletes them; deciding when
is ``rehydration.py``'s.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from tiervault.core.format.envelope import ObjectType
from tiervault.errors import IntegrityError, TiervaultError
from tiervault.repo.objects import bounded_gather
from tiervault.repo.provenance import host_name
from tiervault.repo.repository import Repository
from tiervault.restore.selection import Selection

RECORD_PREFIX: Final = "restore/"
STAGING_PREFIX: Final = "staging/"
PRIORITIES: Final = ("standard", "high")
_HEX64 = re.compile(r"[0-9a-f]{64}")

#: what identifies a restore: the point, its ``paths`` (normalized, sorted), ``include``, ``exclude``
RestoreKey = tuple[str, tuple[str, ...] | None, tuple[str, ...], tuple[str, ...]]


def restore_key(snapshot: str, selection: Selection) -> RestoreKey:
    """The key records are matched on (docs/format.md: the priority and the target do not count)."""
    paths = None if selection.paths is None else tuple(sorted(os.fsdecode(p) for p in selection.paths))
    return snapshot, paths, tuple(selection.include), tuple(selection.exclude)


@dataclass(frozen=True, slots=True)
class RehydrationRecord:
    """One ``restore/<id>`` object."""

    id: str
    snapshot: str
    paths: tuple[str, ...] | None
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    priority: str
    packs: tuple[str, ...]  #: data pack ids, sorted
    started: float
    host: str
    pid: int

    @property
    def name(self) -> str:
        return RECORD_PREFIX + self.id

    @property
    def key(self) -> RestoreKey:
        return self.snapshot, self.paths, self.include, self.exclude

    def staging_name(self, pack_id: str) -> str:
        return f"{STAGING_PREFIX}{self.id}/{pack_id}"


def record_json(key: RestoreKey, priority: str, packs: Iterable[str], started: float) -> dict[str, Any]:
    snapshot, paths, include, exclude = key
    return {
        "v": 1,
        "snapshot": snapshot,
        "paths": None if paths is None else list(paths),
        "include": list(include),
        "exclude": list(exclude),
        "priority": priority,
        "packs": sorted(set(packs)),
        "started": started,
        "host": host_name(),
        "pid": os.getpid(),
    }


class _Invalid(Exception):
    """A field of a record that is not what docs/format.md says."""


def _strings(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise _Invalid(f"{what} must be a list of strings")
    return tuple(value)


def parse_record(rid: str, plain: bytes) -> RehydrationRecord:
    """A record's plaintext, checked field by field (``IntegrityError`` naming the record)."""
    name = RECORD_PREFIX + rid
    try:
        obj = json.loads(plain)
        if not isinstance(obj, dict) or obj.get("v") != 1:
            raise _Invalid("not a version-1 rehydration record")
        snapshot, priority, started = obj.get("snapshot"), obj.get("priority"), obj.get("started")
        if not isinstance(snapshot, str) or not _HEX64.fullmatch(snapshot):
            raise _Invalid("snapshot must be 64 hex digits")
        if priority not in PRIORITIES:
            raise _Invalid(f"priority must be one of {', '.join(PRIORITIES)}")
        packs = _strings(obj.get("packs"), "packs")
        if any(not _HEX64.fullmatch(p) for p in packs) or list(packs) != sorted(set(packs)):
            raise _Invalid("packs must be sorted, distinct ids of 64 hex digits")
        if isinstance(started, bool) or not isinstance(started, int | float):
            raise _Invalid("started must be a number")
        host, pid = obj.get("host"), obj.get("pid")
        if not isinstance(host, str) or isinstance(pid, bool) or not isinstance(pid, int):
            raise _Invalid("host must be a string and pid an integer")
        raw_paths = obj.get("paths")
        paths = None if raw_paths is None else _strings(raw_paths, "paths")
        return RehydrationRecord(
            rid,
            snapshot,
            paths,
            _strings(obj.get("include"), "include"),
            _strings(obj.get("exclude"), "exclude"),
            str(priority),
            packs,
            float(started),
            host,
            pid,
        )
    except (_Invalid, ValueError) as exc:  # ValueError: not JSON
        raise IntegrityError(name, f"not a valid rehydration record: {exc}") from exc


async def save_record(
    repo: Repository, key: RestoreKey, priority: str, packs: Iterable[str], started: float
) -> RehydrationRecord:
    """Store a new record (before any of its copies is started: invariant 19)."""
    obj = record_json(key, priority, packs, started)
    plain = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")
    name, data = repo.objects.seal(RECORD_PREFIX, ObjectType.REHYDRATION, plain)
    await repo.backend.put_if_absent(name, data)
    return parse_record(name.removeprefix(RECORD_PREFIX), plain)


@dataclass(slots=True)
class Rehydrations:
    """Every record in the repository, the ones that do not open, and every staging copy."""

    records: list[RehydrationRecord]
    damaged: list[tuple[str, str]]  #: (object name, why)
    staging: dict[str, int]  #: staging copy name -> size

    def of(self, key: RestoreKey) -> list[RehydrationRecord]:
        """The records a restore belongs to, oldest first."""
        return sorted((r for r in self.records if r.key == key), key=lambda r: (r.started, r.id))

    def orphans(self) -> list[str]:
        """Staging copies whose record is not in the repository (or is damaged)."""
        ids = {r.id for r in self.records}
        return sorted(n for n in self.staging if n.removeprefix(STAGING_PREFIX).split("/")[0] not in ids)


async def load_rehydrations(repo: Repository) -> Rehydrations:
    """List ``staging/`` first, then ``restore/`` (so a copy listed without its record has lost it),
    and open every record."""
    staging = {i.name: i.size async for i in repo.backend.list(STAGING_PREFIX)}
    names = [i.name async for i in repo.backend.list(RECORD_PREFIX)]
    damaged: list[tuple[str, str]] = []

    async def one(name: str) -> RehydrationRecord | None:
        rid = name.removeprefix(RECORD_PREFIX)
        try:
            if not _HEX64.fullmatch(rid):
                raise IntegrityError(name, "not a rehydration record name")
            return parse_record(rid, await repo.objects.load(name, ObjectType.REHYDRATION))
        except TiervaultError as exc:  # damaged, or deleted since the listing
            damaged.append((name, str(exc)))
            return None

    loaded = await bounded_gather([functools.partial(one, n) for n in names])
    return Rehydrations([r for r in loaded if r is not None], sorted(damaged), staging)


def check_warnings(found: Rehydrations) -> list[dict[str, str]]:
    """What ``check`` says about restores from Archive: each record in progress (its point, packs,
    staging copies and their bytes, in Hot until that restore finishes), each record that does not
    open, and each staging copy without a record. Warnings: nothing here is damage to any point."""
    out = []
    for r in sorted(found.records, key=lambda r: (r.started, r.id)):
        prefix = f"{r.name.replace(RECORD_PREFIX, STAGING_PREFIX, 1)}/"
        copies = [size for name, size in found.staging.items() if name.startswith(prefix)]
        out.append(
            {
                "object": r.name,
                "warning": f"a restore from Archive of point {r.snapshot[:8]} is in progress: "
                f"{len(r.packs)} pack(s), {len(copies)} staging copies ({sum(copies)} bytes in Hot); run "
                "the same restore --rehydrate again to finish it and remove them",
                "bytes": str(sum(copies)),
            }
        )
    for name, why in found.damaged:
        out.append({"object": name, "warning": f"a rehydration record that restores ignore: {why}"})
    for name in found.orphans():
        size = found.staging[name]
        out.append(
            {
                "object": name,
                "warning": "a staging copy without its rehydration record (the next restore from "
                "Archive that finishes removes it)",
                "bytes": str(size),
            }
        )
    return out


async def delete_records(
    repo: Repository, records: Sequence[RehydrationRecord], staging: Iterable[str]
) -> None:
    """Delete ``staging`` copies, then the ``records`` (invariant 19)."""
    copies = sorted(set(staging))
    if copies:
        await repo.backend.delete_many(copies)
    if records:
        await repo.backend.delete_many([r.name for r in records])


__all__ = [
    "PRIORITIES",
    "RECORD_PREFIX",
    "STAGING_PREFIX",
    "RehydrationRecord",
    "Rehydrations",
    "RestoreKey",
    "check_warnings",
    "delete_records",
    "load_rehydrations",
    "parse_record",
    "restore_key",
    "save_record",
]
