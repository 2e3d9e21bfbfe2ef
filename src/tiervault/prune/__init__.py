"""prune: the garbage collector of format version 2 (docs/format.md, "Garbage collection: forget and
prune", "prune, step by step"). ``run.prune`` is the entry point; the decisions are pure
(``decide``), the steps that store and delete are ``sweep``, ``repack``, ``consolidate``."""

from tiervault.prune.report import PruneReport
from tiervault.prune.run import DEFAULT_MAX_UNUSED, prune

__all__ = ["DEFAULT_MAX_UNUSED", "PruneReport", "prune"]
