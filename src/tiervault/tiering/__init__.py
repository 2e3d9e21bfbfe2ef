"""Tiering: moving data packs from Hot to Cool, Cold and Archive by their items' policies
(docs/tiering.md). ``decide`` and ``expiry`` are pure; ``run`` lists, plans and applies."""

from tiervault.tiering.report import TierMove, TierReport, TierTotals

__all__ = ["TierMove", "TierReport", "TierTotals"]
