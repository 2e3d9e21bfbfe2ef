"""The fixed facts the tierer decides by (docs/tiering.md): the tiers' order, their minimum
retention periods, the minimum billable size, and which objects may leave Hot at all."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from tiervault.backend.base import Tier

__all__ = [
    "COLDER",
    "MIN_BILLABLE",
    "MINIMUM",
    "ORDER",
    "THRESHOLDS",
    "colder",
    "is_data_pack",
    "warmer",
]

#: warmest first
ORDER: Final = (Tier.HOT, Tier.COOL, Tier.COLD, Tier.ARCHIVE)
#: the tiers a pack can move to, warmest first
COLDER: Final = ORDER[1:]
#: minimum retention: deleting or moving an object out of the tier sooner is charged the rest
MINIMUM: Final = {
    Tier.HOT: timedelta(0),
    Tier.COOL: timedelta(days=30),
    Tier.COLD: timedelta(days=90),
    Tier.ARCHIVE: timedelta(days=180),
}
#: the policy field holding each colder tier's threshold in days
THRESHOLDS: Final = {
    Tier.COOL: "cool_after_days",
    Tier.COLD: "cold_after_days",
    Tier.ARCHIVE: "archive_after_days",
}
#: Cool, Cold and Archive bill every object as at least this big: smaller packs stay Hot
MIN_BILLABLE: Final = 128 << 10


def colder(a: Tier, b: Tier) -> bool:
    """Whether ``a`` is colder than ``b``."""
    return ORDER.index(a) > ORDER.index(b)


def warmer(tier: Tier) -> Tier:
    """The next warmer tier (Hot stays Hot)."""
    return ORDER[max(0, ORDER.index(tier) - 1)]


def is_data_pack(name: str) -> bool:
    """Only data packs (``data/xx/<64 hex>``) may leave Hot: config, keys, items, snapshots, index
    files, meta packs, ``gc/`` and ``locks/`` are read by every operation and stay Hot."""
    parts = name.split("/")
    return (
        len(parts) == 3
        and parts[0] == "data"
        and len(parts[2]) == 64
        and parts[1] == parts[2][:2]
        and all(c in "0123456789abcdef" for c in parts[2])
    )
