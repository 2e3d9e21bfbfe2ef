"""The state one prune run carries from step to step: what step 2 loaded, the live set of step 3,
and the sets of packs the later steps change (existing, condemned, gone)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tiervault.core.format.gcobjects import CondemnedPack
from tiervault.core.format.indexfile import PackRecord
from tiervault.costs import PriceTable
from tiervault.prune.decide import Blobs
from tiervault.prune.early import Early, early
from tiervault.prune.liveset import LiveSet
from tiervault.prune.load import Loaded
from tiervault.prune.report import PruneReport
from tiervault.prune.requests import PruneBackend
from tiervault.repo.repository import Repository


@dataclass
class PruneContext:
    repo: Repository  #: on ``backend``: every request it makes is counted and lease-checked
    view: Repository  #: the same, with an index of exactly the packs of the step-2 listing
    backend: PruneBackend
    loaded: Loaded
    live: LiveSet
    now: datetime  #: ``T``, the store time of the prune's first heartbeat
    report: PruneReport
    dry_run: bool
    blobs: dict[str, Blobs] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    existing: set[str] = field(default_factory=set)
    #: plans not swept (yet) in this run: their packs are condemned
    pending: dict[str, set[str]] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    #: plan ids this run deletes (after the packs of ``to_delete``)
    plans_deleted: set[str] = field(default_factory=set)
    #: swept packs, deleted once the consolidated index is stored
    to_delete: list[CondemnedPack] = field(default_factory=list)
    #: pack records of index files this run stored (repaired orphans, repacked packs)
    new_records: list[PackRecord] = field(default_factory=list)
    written_index: list[str] = field(default_factory=list)
    #: the price table whose minimum retention days (and prices) decide early deletion
    prices: PriceTable | None = None
    #: delete (and repack) packs inside their minimum anyway, reporting the charge
    allow_early_delete: bool = False
    #: plans this run stored to carry a swept plan's packs still inside their minimum (step 4)
    carried: list[str] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        repo: Repository,
        view: Repository,
        backend: PruneBackend,
        loaded: Loaded,
        live: LiveSet,
        now: datetime,
        report: PruneReport,
        dry_run: bool,
    ) -> PruneContext:
        ctx = cls(repo, view, backend, loaded, live, now, report, dry_run)
        for pid, rec in loaded.records().items():
            ctx.blobs[pid] = tuple((e.id, e.length) for e in rec.entries)
        ctx.sizes = {pid: p.size for pid, p in loaded.packs.items()}
        ctx.existing = set(loaded.packs)
        swept = loaded.gc.swept_plans
        ctx.pending = {
            p.id: {c.id for c in p.record.packs} for p in loaded.gc.plans.values() if p.id not in swept
        }
        ctx.gone = set(loaded.gc.gone)
        return ctx

    @property
    def condemned(self) -> set[str]:
        return set().union(*self.pending.values()) if self.pending else set()

    def blocked(self) -> set[str]:
        """Packs whose blobs count as no location: condemned, gone, unprovable, or not existing."""
        absent = set(self.blobs) - self.existing
        return self.condemned | self.gone | set(self.loaded.unprovable) | absent

    def early(self, pid: str) -> Early | None:
        """Whether deleting ``pid`` now would fall inside its tier's minimum (None: it would not,
        or it is not in the step-2 listing, or there is no price table)."""
        p = self.loaded.packs.get(pid)
        if p is None or self.prices is None:
            return None
        return early(p.tier, p.size, p.in_tier_since, self.now, self.prices)

    def add_record(self, rec: PackRecord) -> None:
        """A pack this run stored (or indexed): it exists and its blobs are locations."""
        self.new_records.append(rec)
        self.existing.add(rec.pack_id)
        self.blobs[rec.pack_id] = tuple((e.id, e.length) for e in rec.entries)
        for e in rec.entries:
            locs = self.live.locations.setdefault(e.id, [])
            if rec.pack_id not in locs:
                locs.append(rec.pack_id)
