"""What one ``tier`` run did or would do (``Vault.tier``, ``tiervault tier``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tiervault.backend.base import Tier
from tiervault.tiering.rules import ORDER

__all__ = ["TierMove", "TierReport", "TierTotals"]


@dataclass(frozen=True, slots=True)
class TierMove:
    """One pack moved (or to be moved) from ``source`` to ``target``, and why."""

    pack: str
    size: int
    source: Tier
    target: Tier
    reason: str
    #: when the pack entered ``source``, by the store (None: unknown)
    since: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "pack": self.pack,
            "size": self.size,
            "from": self.source.value,
            "to": self.target.value,
            "reason": self.reason,
            "since": None if self.since is None else self.since.isoformat(),
        }


@dataclass
class TierTotals:
    objects: int = 0
    bytes: int = 0


@dataclass
class TierReport:
    """``moves``: every pack moved (``dry_run``: to be moved), by pack name. ``tiers``: objects and
    bytes of the data packs per tier after the run (before it, for what it could not move).
    ``failed``: moves the store refused or whose pack vanished meanwhile (re-run to retry)."""

    dry_run: bool
    as_of: datetime
    moves: list[TierMove] = field(default_factory=list)
    tiers: dict[Tier, TierTotals] = field(default_factory=lambda: {t: TierTotals() for t in ORDER})
    #: data packs that stay where they are
    kept: int = 0
    #: the kept packs by the rule that held them (``TierDecision.rule``: ``small``, ``minimum`` ...)
    held: dict[str, int] = field(default_factory=dict)
    failed: list[tuple[str, str]] = field(default_factory=list)
    batches: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def moved_bytes(self) -> int:
        return sum(m.size for m in self.moves)

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "as_of": self.as_of.isoformat(),
            "moves": [m.to_json() for m in sorted(self.moves, key=lambda m: m.pack)],
            "moved": {"packs": len(self.moves), "bytes": self.moved_bytes},
            "tiers": {t.value: {"objects": v.objects, "bytes": v.bytes} for t, v in self.tiers.items()},
            "kept": self.kept,
            "held": dict(sorted(self.held.items())),
            "failed": [{"pack": p, "error": e} for p, e in self.failed],
            "batches": self.batches,
            "warnings": list(self.warnings),
        }
