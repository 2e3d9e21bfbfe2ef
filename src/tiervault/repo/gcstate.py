"""What every reader of a version-2 repository derives from ``gc/`` and ``locks/`` (docs/format.md,
"Garbage collection: forget and prune"): the pending plans and the GONE records, hence the
*condemned* and *gone* packs, and the live heartbeats. Every age here is a difference of store
times (``ObjectInfo.modified``), never of host clocks.
"""

from __future__ import annotations

import functools
import itertools
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tiervault.backend.base import Backend
from tiervault.core.format import FormatError
from tiervault.core.format.envelope import ObjectType
from tiervault.core.format.gcobjects import GoneRecord, HeartbeatRecord, PlanRecord
from tiervault.errors import IntegrityError, ObjectNotFoundError
from tiervault.repo.objects import SealedObjects, bounded_gather
from tiervault.repo.snapshots import parse_iso

log = logging.getLogger("tiervault.repo")

# docs/format.md, "Time": the constants of the scheme
MAX_SKEW = timedelta(minutes=5)
HEARTBEAT_INTERVAL = timedelta(minutes=5)
HEARTBEAT_EXPIRY = timedelta(minutes=30)
LAPSE = HEARTBEAT_EXPIRY - 2 * MAX_SKEW
GRACE = timedelta(hours=1)
ORPHAN_MIN_AGE = timedelta(hours=1)
PRUNE_LEASE = 60.0  #: seconds (Azure's longest finite lease)
PRUNE_LEASE_RENEW = 20.0
LEASE_NAME = "locks/prune"

_HEX64 = re.compile(r"[0-9a-f]{64}")

#: ``gc/`` and ``locks/`` are listed at least this often (and again while an object listed vanished
#: before its read): a listing that runs while a successor is stored and its predecessor deleted
#: (a heartbeat renewed, a PLAN swept after its GONE was stored) may show neither, as a directory
#: listing that ``stat``s each name does; the next listing shows the successor
LISTINGS = 2

#: ranks of a pack for reads and dedup: a chunk's location in a lower-ranked pack is preferred
NORMAL, CONDEMNED, GONE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Plan:
    id: str
    record: PlanRecord
    mark: datetime  #: the plan's store time

    @property
    def name(self) -> str:
        return "gc/" + self.id


@dataclass(frozen=True, slots=True)
class Gone:
    id: str
    record: GoneRecord
    stored: datetime

    @property
    def name(self) -> str:
        return "gc/" + self.id


@dataclass(frozen=True, slots=True)
class Heartbeat:
    name: str
    record: HeartbeatRecord
    stored: datetime

    @property
    def started(self) -> datetime:
        """When the series began, in store time (seq 0's own store time if it is seq 0)."""
        if self.record.started is None:
            return self.stored
        return parse_iso(self.record.started)

    def live(self, now: datetime) -> bool:
        return self.stored >= now - HEARTBEAT_EXPIRY - MAX_SKEW


@dataclass
class GcState:
    """The ``gc/`` objects of one listing: pending plans, GONE records, and what did not open."""

    plans: dict[str, Plan] = field(default_factory=dict)
    gones: dict[str, Gone] = field(default_factory=dict)
    damaged: list[IntegrityError] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)  #: names under gc/ that are not 64 hex digits

    @property
    def swept_plans(self) -> set[str]:
        return {g.record.plan for g in self.gones.values()}

    def pending(self) -> list[Plan]:
        """Plans without a GONE, oldest mark first."""
        swept = self.swept_plans
        return sorted((p for p in self.plans.values() if p.id not in swept), key=lambda p: (p.mark, p.id))

    @functools.cached_property
    def condemned(self) -> frozenset[str]:
        """Pack ids named by a pending plan."""
        return frozenset(p.id for plan in self.pending() for p in plan.record.packs)

    @functools.cached_property
    def gone(self) -> frozenset[str]:
        """Pack ids named by any GONE."""
        return frozenset(p.id for g in self.gones.values() for p in g.record.packs)

    @property
    def has_damaged_gone(self) -> bool:
        """A GONE that does not open may hide deleted packs (writers then check at every commit).
        Damaged objects are not told apart by type, so every damaged one counts."""
        return bool(self.damaged)

    def rank(self, pack_id: str) -> int:
        if pack_id in self.gone:
            return GONE
        if pack_id in self.condemned:
            return CONDEMNED
        return NORMAL

    def usable(self, pack_id: str) -> bool:
        """Whether a writer may take a new reference to a chunk in this pack."""
        return pack_id not in self.gone and pack_id not in self.condemned

    @property
    def empty(self) -> bool:
        return not (self.plans or self.gones or self.damaged)


async def load_gc_state(backend: Backend, objects: SealedObjects) -> GcState:
    """List ``gc/`` and read every object in it. An object that is not a PLAN or a GONE, or does not
    authenticate, goes to ``damaged`` (``check`` reports it); one deleted between the listing and
    the read is left out. ``gc/`` is listed ``LISTINGS`` times, and again (what is new read) until
    none vanished so: a PLAN is deleted only after its GONE was stored, a GONE only after the one
    replacing it (or once retired), so a later listing shows what one missed (a sweep running
    meanwhile)."""
    state = GcState()
    seen: set[str] = set()
    vanished = True

    async def read(name: str, modified: datetime) -> None:
        nonlocal vanished
        oid = name.removeprefix("gc/")
        if not _HEX64.fullmatch(oid):
            state.foreign.append(name)
            return
        try:
            data = await backend.get(name)
        except ObjectNotFoundError:
            vanished = True
            return
        plain: bytes | None = None
        errors: list[str] = []
        for otype in (ObjectType.PLAN, ObjectType.GONE):
            try:
                plain = objects.open_bytes(name, data, otype)
            except (IntegrityError, FormatError) as exc:
                errors.append(str(exc))
                continue
            try:
                if otype is ObjectType.PLAN:
                    state.plans[oid] = Plan(oid, PlanRecord.from_bytes(plain), modified)
                else:
                    state.gones[oid] = Gone(oid, GoneRecord.from_bytes(plain), modified)
            except FormatError as exc:
                state.damaged.append(IntegrityError(name, str(exc)))
            return
        state.damaged.append(IntegrityError(name, "; ".join(errors)))

    for listing in itertools.count():
        if not vanished and listing >= LISTINGS:
            break
        vanished = False
        infos = [i async for i in backend.list("gc/") if i.name not in seen]
        seen.update(i.name for i in infos)
        await bounded_gather([functools.partial(read, i.name, i.modified) for i in infos])
    for exc in state.damaged:
        log.error("%s", exc)
    return state


@dataclass(slots=True)
class Heartbeats:
    """The heartbeats of one ``locks/`` listing."""

    beats: list[Heartbeat] = field(default_factory=list)
    damaged: list[IntegrityError] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    def live(self, now: datetime, kind: str | None = None) -> list[Heartbeat]:
        return [b for b in self.beats if b.live(now) and (kind is None or b.record.kind == kind)]

    def dead(self, now: datetime) -> list[Heartbeat]:
        return [b for b in self.beats if not b.live(now)]


async def load_heartbeats(backend: Backend, objects: SealedObjects) -> Heartbeats:
    """List ``locks/`` and read every heartbeat. One deleted between the listing and its read was
    renewed or ended: a renewal stores the next heartbeat before it deletes this one, so ``locks/``
    is listed ``LISTINGS`` times, and again (what is new read) until a listing holds none that
    vanished so; else a writer renewing during the listing would be invisible and its
    sweep-holding heartbeat missed."""
    out = Heartbeats()
    seen: set[str] = set()
    vanished = True

    async def read(name: str, modified: datetime) -> None:
        nonlocal vanished
        oid = name.removeprefix("locks/")
        if name == LEASE_NAME:
            return
        if not _HEX64.fullmatch(oid):
            out.foreign.append(name)
            return
        try:
            plain = await objects.load(name, ObjectType.HEARTBEAT)
            out.beats.append(Heartbeat(name, HeartbeatRecord.from_bytes(plain), modified))
        except ObjectNotFoundError:
            vanished = True  # renewed (its successor is stored: list again) or ended
        except IntegrityError as exc:
            out.damaged.append(exc)
        except FormatError as exc:
            out.damaged.append(IntegrityError(name, str(exc)))

    for listing in itertools.count():
        if not vanished and listing >= LISTINGS:
            break
        vanished = False
        infos = [i async for i in backend.list("locks/") if i.name not in seen]
        seen.update(i.name for i in infos)
        await bounded_gather([functools.partial(read, i.name, i.modified) for i in infos])
    out.beats.sort(key=lambda b: (b.stored, b.name))
    return out
