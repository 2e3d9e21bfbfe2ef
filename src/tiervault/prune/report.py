"""What one prune did, or a dry run would do (``Vault.prune``'s result; ``tiervault prune --json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tiervault.prune.early import EarlyPack
from tiervault.repo.snapshots import datetime_iso


@dataclass(frozen=True, slots=True)
class Deferred:
    """A plan whose sweep waits: until when at least, and the heartbeat that holds it (if any)."""

    plan: str
    until: datetime | None
    heartbeat: str | None  #: ``locks/<h>`` name
    host: str | None = None
    pid: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "until": None if self.until is None else datetime_iso(self.until),
            "heartbeat": self.heartbeat,
            "host": self.host,
            "pid": self.pid,
        }


@dataclass
class PruneReport:
    """What one prune did (or, with ``dry_run``, would do): the packs swept (deleted), reinstated,
    condemned (deleted by a later run) and repacked, the index files before and after, the plans
    whose sweep waits (until when, held by which writer heartbeat), bytes freed now and by the next
    run, requests made per step, why it refused to delete anything (``refused``), and the packs whose
    deletion or repack waits for the end of their tier's minimum retention (``early_deferred``, with
    the charge avoided) or that were deleted inside it (``early_deleted``, with the charge)."""

    dry_run: bool = False
    #: why nothing was deleted (a damaged snapshot or tree, a chunk without location); empty: ran
    refused: list[str] = field(default_factory=list)
    snapshots: int = 0
    live_chunks: int = 0
    #: packs deleted (or, in a dry run, that would be) by sweeps of due plans
    swept: list[str] = field(default_factory=list)
    #: packs of swept plans kept because a live chunk needs them
    reinstated: list[str] = field(default_factory=list)
    #: (pack id, reason) condemned by this run's mark
    condemned: list[tuple[str, str]] = field(default_factory=list)
    repacked: list[str] = field(default_factory=list)
    repack_copied_bytes: int = 0
    repack_new_packs: list[str] = field(default_factory=list)
    index_files_before: int = 0
    index_files_after: int = 0
    #: unindexed packs this run indexed (they hold live chunks)
    indexed_orphans: list[str] = field(default_factory=list)
    deferred: list[Deferred] = field(default_factory=list)
    #: unindexed packs whose header does not authenticate: (pack id, bytes, why)
    unprovable: list[tuple[str, int, str]] = field(default_factory=list)
    damaged_index: list[str] = field(default_factory=list)
    gone_unlisted: int = 0
    gone_deleted: int = 0
    heartbeats_deleted: int = 0
    warnings: list[str] = field(default_factory=list)
    bytes_freed: int = 0  #: by this run's sweeps
    bytes_next: int = 0  #: held by condemned packs, freed by a later run
    requests: dict[str, int] = field(default_factory=dict)
    #: dry run only: the stores, deletes and repack reads a real run would make now, per step
    would_request: dict[str, int] = field(default_factory=dict)
    #: early deletion (docs/costs.md): whether packs inside their minimum were deleted anyway
    allow_early_delete: bool = False
    currency: str = ""  #: of the estimated charges (the price table's)
    #: packs not swept, or not repacked, because they are inside their tier's minimum retention
    early_deferred: list[EarlyPack] = field(default_factory=list)
    #: packs swept inside their minimum (``allow_early_delete``, or a killed sweep finished)
    early_deleted: list[EarlyPack] = field(default_factory=list)

    @property
    def charge_avoided(self) -> float:
        """Estimated early-deletion charges the deferrals avoided (at this run's time)."""
        return sum(e.info.charge for e in self.early_deferred)

    @property
    def charge_incurred(self) -> float:
        """Estimated early-deletion charges of the packs this run deleted inside their minimum."""
        return sum(e.info.charge for e in self.early_deleted)

    @property
    def ok(self) -> bool:
        return not self.refused

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "ok": self.ok,
            "refused": list(self.refused),
            "snapshots": self.snapshots,
            "live_chunks": self.live_chunks,
            "swept": list(self.swept),
            "reinstated": list(self.reinstated),
            "condemned": [{"id": p, "reason": r} for p, r in self.condemned],
            "repacked": list(self.repacked),
            "repack_copied_bytes": self.repack_copied_bytes,
            "repack_new_packs": list(self.repack_new_packs),
            "index_files": {"before": self.index_files_before, "after": self.index_files_after},
            "indexed_orphans": list(self.indexed_orphans),
            "deferred": [d.to_json() for d in self.deferred],
            "unprovable": [{"id": p, "bytes": n, "why": w} for p, n, w in self.unprovable],
            "damaged_index": list(self.damaged_index),
            "gone_unlisted": self.gone_unlisted,
            "gone_deleted": self.gone_deleted,
            "heartbeats_deleted": self.heartbeats_deleted,
            "warnings": list(self.warnings),
            "bytes_freed": self.bytes_freed,
            "bytes_next": self.bytes_next,
            "requests": dict(self.requests),
            "would_request": dict(self.would_request),
            "early_deletion": {
                "allowed": self.allow_early_delete,
                "estimate": True,
                "currency": self.currency,
                "deferred": [e.to_json() for e in self.early_deferred],
                "estimated_charge_avoided": self.charge_avoided,
                "deleted": [e.to_json() for e in self.early_deleted],
                "estimated_charge_incurred": self.charge_incurred,
            },
        }
