"""Emulated tiers and rehydration for the local backend.

A non-Hot object has a sidecar ``.tv-tiers/<name>.json`` holding ``{"tier": ..., "rehydrate_until":
epoch|null, "changed": epoch}``; no sidecar means Hot since the object was written. ``changed`` is
when the object entered ``tier`` by the backend's clock (a sidecar without it, written by an older
tiervault, counts from the object's mtime); an object moved back to Hot keeps a ``"hot"`` sidecar for
that time. An archived object reads as Archive until a rehydration, timed by the backend's clock, is
due; from then on it reads as Hot, changed at ``rehydrate_until``. All blocking: callers run these in
a worker thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from tiervault.backend.base import ObjectInfo, Tier
from tiervault.backend.local.files import JSON, Disk, mtime, unlink_quiet
from tiervault.clock import Clock
from tiervault.errors import BackendError, UsageError

__all__ = ["TIERS_DIR", "TierRecord", "Tiers"]

TIERS_DIR: Final = ".tv-tiers"
_TIER_VALUES: Final = frozenset(t.value for t in Tier)


@dataclass(frozen=True, slots=True)
class TierRecord:
    """A tier sidecar's content."""

    tier: Tier
    rehydrate_until: float | None = None
    #: when the object entered ``tier`` (epoch seconds, the backend's clock); None: unrecorded
    changed: float | None = None


class Tiers:
    """The tier sidecars under ``disk``; ``clock`` times rehydrations, which take
    ``rehydrate_seconds``."""

    __slots__ = ("_clock", "_disk", "rehydrate_seconds")

    def __init__(self, disk: Disk, clock: Clock, rehydrate_seconds: float) -> None:
        self._disk = disk
        self._clock = clock
        self.rehydrate_seconds = rehydrate_seconds

    def sidecar(self, name: str) -> str:
        """The path of ``name``'s tier sidecar."""
        return self._disk.path(TIERS_DIR, name + JSON)

    def read(self, name: str) -> TierRecord | None:
        """``name``'s sidecar; None if it has none (Hot)."""
        path = self.sidecar(name)
        rec = self._disk.read_json(path)
        if rec is None:
            return None
        tier = rec.get("tier")
        until, changed = _epoch(rec.get("rehydrate_until")), _epoch(rec.get("changed"))
        if tier not in _TIER_VALUES or until is False or changed is False:
            raise BackendError(f"corrupt tier metadata {path}: {rec!r}")
        return TierRecord(Tier(tier), until, changed)

    def effective(self, rec: TierRecord | None) -> tuple[Tier, bool]:
        """(tier, rehydrating) now: a finished rehydration reads as Hot."""
        if rec is None:
            return Tier.HOT, False
        if rec.tier is Tier.ARCHIVE and rec.rehydrate_until is not None:
            if self._clock.now() >= rec.rehydrate_until:
                return Tier.HOT, False
            return Tier.ARCHIVE, True
        return rec.tier, False

    def info(self, name: str, st: os.stat_result, rec: TierRecord | None) -> ObjectInfo:
        """The ``ObjectInfo`` of object ``name`` from its stat and its sidecar."""
        tier, rehydrating = self.effective(rec)
        modified = mtime(st)
        changed = modified
        if rec is not None:
            if rec.tier is Tier.ARCHIVE and tier is Tier.HOT and rec.rehydrate_until is not None:
                changed = datetime.fromtimestamp(rec.rehydrate_until, UTC)  # rehydrated: Hot since then
            elif rec.changed is not None:
                changed = datetime.fromtimestamp(rec.changed, UTC)
        return ObjectInfo(name, st.st_size, tier, modified, rehydrating, changed)

    def forget(self, name: str) -> None:
        """Remove ``name``'s sidecar, if any."""
        unlink_quiet(self.sidecar(name))

    def set_tier(self, name: str, tier: Tier) -> None:
        """Move object ``name`` to ``tier``; leaving Archive is refused (``UsageError``)."""
        self._disk.stat_object(name)
        current, _ = self.effective(self.read(name))
        if current is Tier.ARCHIVE:
            if tier is Tier.ARCHIVE:
                return
            raise UsageError(f"{name!r} is in the Archive tier: use rehydrate to move it out")
        if tier is current:
            return  # no change: the object stays in its tier since when it entered it
        record: dict[str, object] = {
            "tier": tier.value,
            "rehydrate_until": None,
            "changed": self._clock.now(),
        }
        self._disk.write_json_atomic(self.sidecar(name), record)

    def rehydrate(self, name: str) -> bool:
        """Start rehydrating archived object ``name``; False if it is not archived or already
        rehydrating."""
        self._disk.stat_object(name)
        rec = self.read(name)
        tier, rehydrating = self.effective(rec)
        if tier is not Tier.ARCHIVE or rehydrating:
            return False
        until = self._clock.now() + self.rehydrate_seconds
        record: dict[str, object] = {"tier": Tier.ARCHIVE.value, "rehydrate_until": until}
        if rec is not None and rec.changed is not None:
            record["changed"] = rec.changed
        self._disk.write_json_atomic(self.sidecar(name), record)
        return True

    def start_copy(self, name: str, *, archived: bool) -> None:
        """The sidecar of a copy about to be made at ``name``: rehydrating from now for
        ``rehydrate_seconds`` when its source is archived, else none (Hot)."""
        if not archived:
            self.forget(name)
            return
        until = self._clock.now() + self.rehydrate_seconds
        record: dict[str, object] = {"tier": Tier.ARCHIVE.value, "rehydrate_until": until}
        self._disk.ensure_dir(os.path.dirname(self.sidecar(name)))
        self._disk.write_json_atomic(self.sidecar(name), record)


def _epoch(value: object) -> float | bool | None:
    """A sidecar time: None when absent, a float, or False when it is not a number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return float(value)
