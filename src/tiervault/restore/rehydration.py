"""Restores from Archive (docs/restore-archive.md): plan what must come out of Archive, start staging
copies, continue from any process or host, restore from the copies, clean them up.

``RehydratingRestore.run``:

1. Plan the restore (``Restorer.prepared_plan``). Missing packs refuse it at once, as always.
2. Load the rehydration records it belongs to (``staging.load_rehydrations``) and give every archived
   pack a record names its staging copy's state (``apply_staging``).
3. Archived packs with no copy yet: a new record naming them is stored, *then* their copies are
   started (``copy_rehydrate``, ordering invariant 19); a copy a record names but the store lost
   is started again under that record. Packs someone rehydrates in place are waited for, not copied.
4. Not all readable: return the progress (``awaiting``), or with ``wait`` poll on the vault's clock
   (until the restore's deadline, if it has one, would pass during the next poll).
5. All readable: ``Restorer.run`` reads the archived packs' blobs from their copies; once everything
   selected is in place (not incomplete, no errors), the copies and then the records are deleted,
   and staging copies whose record is gone with them.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from tiervault.backend.base import RehydratePriority
from tiervault.clock import Clock
from tiervault.errors import ObjectNotFoundError, RehydrationNeededError, UsageError
from tiervault.repo.repository import Repository
from tiervault.repo.snapshots import SnapshotRecord
from tiervault.repo.treewalk import DEFAULT_MAX_ENTRIES
from tiervault.restore.planner import (
    DiskTier,
    PackNeed,
    PackState,
    RestorePlan,
    RestorePlanSummary,
    find_pack_states,
    plan_restore,
)
from tiervault.restore.restorer import Restorer, RestoreStats
from tiervault.restore.selection import Selection
from tiervault.restore.staging import (
    RehydrationRecord,
    RestoreKey,
    delete_records,
    load_rehydrations,
    restore_key,
    save_record,
)

#: Azure's documented rehydration times (estimates, not promises): Standard up to 15 hours; High
#: usually under 1 hour for objects smaller than 10 GB (larger ones: as Standard)
STANDARD_WAIT_S: Final = 15 * 3600.0
HIGH_WAIT_S: Final = 3600.0
HIGH_SIZE_LIMIT: Final = 10 * 10**9
#: how often ``wait`` asks the store again (seconds of the vault's clock)
POLL_SECONDS: Final = 300.0
#: staging copies stat'ed / started at once
CONCURRENCY: Final = 16
ARCHIVE: Final = "archive"


def check_priority(priority: str | RehydratePriority) -> RehydratePriority:
    try:
        return RehydratePriority(priority)
    except ValueError:
        raise UsageError(f"unknown rehydrate priority {priority!r}: standard or high") from None


def expected_wait(priority: RehydratePriority, sizes: Iterable[int]) -> float:
    """The estimated time (seconds) a rehydration of objects of ``sizes`` takes at ``priority``."""
    sizes = list(sizes)
    if not sizes:
        return 0.0
    if priority is RehydratePriority.HIGH and max(sizes) < HIGH_SIZE_LIMIT:
        return HIGH_WAIT_S
    return STANDARD_WAIT_S


def wait_text(seconds: float) -> str:
    if seconds <= 0:
        return "none"
    hours = seconds / 3600
    return f"estimate: up to {hours:.0f} h" if hours >= 1 else f"estimate: up to {seconds / 60:.0f} min"


@dataclass(frozen=True, slots=True)
class RehydrationProgress:
    """Where a restore from Archive stands: the packs it needs out of Archive and how many are
    readable, with their whole sizes (what is copied: for the cost model, bytes and objects), and
    the estimated wait that remains (an estimate: Azure promises none)."""

    priority: str
    records: tuple[str, ...]  #: ids of the rehydration records (``restore/<id>``) it belongs to
    started: float | None  #: when the oldest of them was started (its host's clock)
    packs: int
    ready: int
    bytes: int
    ready_bytes: int
    wait_s: float

    @property
    def done(self) -> bool:
        return self.ready == self.packs

    def to_json(self) -> dict[str, Any]:
        return {
            "priority": self.priority,
            "records": list(self.records),
            "started": self.started,
            "packs": self.packs,
            "ready": self.ready,
            "bytes": self.bytes,
            "ready_bytes": self.ready_bytes,
            "waiting_packs": self.packs - self.ready,
            "waiting_bytes": self.bytes - self.ready_bytes,
            "wait_s": self.wait_s,
            "wait": wait_text(self.wait_s),
        }


def archived(plan: RestorePlan) -> dict[str, PackNeed]:
    """The packs of ``plan`` that are in the Archive tier (archived or rehydrating in place)."""
    return {n: need for n, need in plan.packs.items() if need.tier == ARCHIVE}


async def _stat_staging(repo: Repository, needs: Sequence[PackNeed]) -> None:
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(need: PackNeed) -> None:
        assert need.staging is not None
        async with sem:
            try:
                info = await repo.backend.stat(need.staging)
            except ObjectNotFoundError:  # lost (or deleted): to be copied again
                need.staging, need.state = None, PackState.ARCHIVED
                return
        out = info.tier.value == ARCHIVE
        need.state = PackState.REHYDRATING if out else PackState.READABLE

    await asyncio.gather(*(one(n) for n in needs))


async def apply_staging(repo: Repository, plan: RestorePlan, records: Sequence[RehydrationRecord]) -> None:
    """Every archived pack of ``plan`` a record names: the state of its staging copy (readable,
    still rehydrating, or lost: archived again). Packs rehydrating in place are asked again."""
    copies: dict[str, str] = {}
    for r in records:  # oldest first: its copy is the one most likely ready
        for pid in r.packs:
            copies.setdefault(pid, r.staging_name(pid))
    staged, in_place = [], {}
    for name, need in archived(plan).items():
        if need.staging is None:
            need.staging = copies.get(need.pack.id)
        if need.staging is not None:
            staged.append(need)
        elif need.state is PackState.REHYDRATING:
            in_place[name] = need
    await _stat_staging(repo, staged)
    if in_place:
        await find_pack_states(repo, in_place)


def progress_of(
    plan: RestorePlan, records: Sequence[RehydrationRecord], priority: RehydratePriority, now: float
) -> RehydrationProgress:
    """Where the restore stands; its wait estimate at the priority of its records (``priority``
    when it has none yet)."""
    if records:  # a rehydration in progress goes at the priority it was started with
        high = all(r.priority == RehydratePriority.HIGH.value for r in records)
        priority = RehydratePriority.HIGH if high else RehydratePriority.STANDARD
    needs = list(archived(plan).values())
    sizes = [n.size if n.size is not None else n.bytes for n in needs]
    ready = [n for n in needs if n.state is PackState.READABLE]
    started = min((r.started for r in records), default=None)
    waiting = [s for n, s in zip(needs, sizes, strict=True) if n.state is not PackState.READABLE]
    estimate = expected_wait(priority, waiting)
    left = max(0.0, estimate - (now - started)) if started is not None and waiting else estimate
    if waiting and left <= 0:
        left = 60.0  # past the estimate and not ready: say a little more, never "none"
    return RehydrationProgress(
        priority.value,
        tuple(r.id for r in records),
        started,
        len(needs),
        len(ready),
        sum(sizes),
        sum(n.size if n.size is not None else n.bytes for n in ready),
        left,
    )


def summarize(
    plan: RestorePlan, records: Sequence[RehydrationRecord], priority: RehydratePriority, now: float
) -> RestorePlanSummary:
    """The plan's summary with what a restore from Archive adds: the priority, the estimated wait of
    a rehydration started now (or what remains of the one in progress), and its progress."""
    summary = plan.summary()
    status = progress_of(plan, records, priority, now)
    if not status.packs and not records:
        return summary
    fresh = expected_wait(priority, [n.size or n.bytes for n in archived(plan).values()])
    info = {
        "priority": priority.value,
        "expected_wait_s": fresh,
        "expected_wait": wait_text(fresh),
        "in_progress": status.to_json() if records else None,
    }
    return dataclasses.replace(summary, rehydration=info)


def explain(exc: RehydrationNeededError, priority: RehydratePriority) -> RehydrationNeededError:
    """A refusal's plan with the estimated wait of a rehydration at ``priority`` (from the total
    bytes: a conservative stand-in for the largest pack), for the fail-fast message."""
    plan = exc.plan
    if plan is not None and plan.get("rehydrate_packs") and plan.get("rehydration") is None:
        wait = expected_wait(priority, [int(plan["rehydrate_bytes"])])
        plan["rehydration"] = {
            "priority": priority.value,
            "expected_wait_s": wait,
            "expected_wait": wait_text(wait),
            "in_progress": None,
        }
    return exc


async def plan_from_archive(
    repo: Repository,
    snapshot: SnapshotRecord,
    selection: Selection,
    *,
    priority: RehydratePriority,
    now: float,
    local: DiskTier | None = None,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> RestorePlanSummary:
    """``Vault.plan_restore``: the plan, with the staging copies of a rehydration in progress."""
    plan = await plan_restore(repo, snapshot, selection, local=local, max_entries=max_entries)
    if not archived(plan):  # nothing in Archive: no rehydration to look for (no listing either)
        return plan.summary()
    records = (await load_rehydrations(repo)).of(restore_key(snapshot.id, selection))
    await apply_staging(repo, plan, records)
    return summarize(plan, records, priority, now)


@dataclass(frozen=True, slots=True)
class RehydratedOutcome:
    """What ``RehydratingRestore.run`` did: restored (``stats``), or awaiting rehydration."""

    plan: RestorePlan
    progress: RehydrationProgress | None  #: None: the point needed nothing from Archive
    stats: RestoreStats | None  #: None while awaiting rehydration (nothing was written)
    errors: list[dict[str, str]]
    cleaned: int  #: staging copies deleted after the restore
    summary: RestorePlanSummary | None = None  #: the plan's summary, while awaiting rehydration

    @property
    def awaiting(self) -> bool:
        return self.stats is None


class RehydratingRestore:
    """``Vault.restore(rehydrate=True)`` around a :class:`Restorer`."""

    def __init__(
        self,
        restorer: Restorer,
        *,
        priority: RehydratePriority,
        clock: Clock,
        wait: bool = False,
        poll_seconds: float = POLL_SECONDS,
        progress: Callable[[RehydrationProgress], None] | None = None,
    ) -> None:
        if not poll_seconds > 0:
            raise UsageError(f"poll_seconds must be > 0, not {poll_seconds!r}")
        self.restorer, self.repo = restorer, restorer.repo
        self.priority, self.clock, self.wait = priority, clock, wait
        self.poll_seconds, self.progress = poll_seconds, progress
        self.key: RestoreKey = restore_key(restorer.snapshot.id, restorer.selection)

    async def run(self) -> RehydratedOutcome:
        plan = await self.restorer.prepared_plan()
        if any(n.state is PackState.MISSING for n in plan.packs.values()):
            plan.refuse_unreadable()  # missing packs: ObjectNotFoundError, before anything is started
        records = (await load_rehydrations(self.repo)).of(self.key)
        records = await self._refresh(plan, records)
        while True:
            status = progress_of(plan, records, self.priority, self.clock.now())
            if status.done:
                break
            if self.progress is not None:
                self.progress(status)
            stop_at = self.restorer.stop_at
            out_of_time = stop_at is not None and self.clock.monotonic() + self.poll_seconds > stop_at
            if not self.wait or out_of_time:  # a deadline ends a wait as it ends a restore
                summary = summarize(plan, records, self.priority, self.clock.now())
                return RehydratedOutcome(plan, status, None, [], 0, summary)
            await self.clock.sleep(self.poll_seconds)
            records = await self._refresh(plan, records)
        if self.progress is not None and status.packs:
            self.progress(status)
        stats, errors = await self.restorer.run(plan)
        cleaned = 0
        if not self.restorer.incomplete and not errors:
            cleaned = await self._clean(records)
        return RehydratedOutcome(plan, status if status.packs else None, stats, errors, cleaned)

    async def _refresh(self, plan: RestorePlan, records: list[RehydrationRecord]) -> list[RehydrationRecord]:
        """Ask the store about the staging copies (and in-place rehydrations); start the copies that
        are missing (never started, or lost meanwhile, also while waiting)."""
        await apply_staging(self.repo, plan, records)
        if any(n.state is PackState.ARCHIVED for n in archived(plan).values()):
            records = await self._start(plan, records)
            await apply_staging(self.repo, plan, records)
        return records

    async def _start(self, plan: RestorePlan, records: list[RehydrationRecord]) -> list[RehydrationRecord]:
        """Copies for every archived pack that has none: under the record naming it (a lost copy),
        or under a new record, stored first (invariant 19)."""
        owner = {pid: r for r in records for pid in reversed(r.packs)}
        todo = [n for n in archived(plan).values() if n.state is PackState.ARCHIVED]
        fresh = sorted({n.pack.id for n in todo if n.pack.id not in owner})
        if fresh:
            record = await save_record(self.repo, self.key, self.priority.value, fresh, self.clock.now())
            records = [*records, record]
            owner.update((pid, record) for pid in fresh)
        sem = asyncio.Semaphore(CONCURRENCY)

        async def one(need: PackNeed) -> None:
            dst = owner[need.pack.id].staging_name(need.pack.id)
            async with sem:
                await self.repo.backend.copy_rehydrate(need.pack.name, dst, priority=self.priority)
            need.staging = dst

        await asyncio.gather(*(one(n) for n in todo))
        return records

    async def _clean(self, records: Sequence[RehydrationRecord]) -> int:
        """After a finished restore: its records' copies, then the records, then orphaned copies."""
        if not records:
            return 0
        listing = await load_rehydrations(self.repo)
        mine = {r.id for r in records}
        copies = [n for n in listing.staging if n.split("/")[1] in mine]
        await delete_records(self.repo, records, copies)
        orphans = (await load_rehydrations(self.repo)).orphans()
        await delete_records(self.repo, [], orphans)
        return len(copies) + len(orphans)


__all__ = [
    "HIGH_WAIT_S",
    "POLL_SECONDS",
    "STANDARD_WAIT_S",
    "RehydratedOutcome",
    "RehydratingRestore",
    "RehydrationProgress",
    "apply_staging",
    "check_priority",
    "expected_wait",
    "explain",
    "plan_from_archive",
    "progress_of",
    "summarize",
    "wait_text",
]
