"""Restoring recovery points: a planner, an executor, and the targets they write to.

- ``planner``: walks the point (``repo.treewalk.walk``), selects (``selection``), resolves every chunk
  to its pack and finds each pack's state (readable, archived, rehydrating, missing) before anything
  is written: a :class:`RestorePlan` that can be inspected (``Vault.plan_restore``).
- ``executor``: fetches by pack (coalesced ranged reads, bounded concurrency, a deadline on the
  ``Clock``), opens each blob once and writes it wherever it is used.
- ``targets``: the :class:`RestoreTarget` protocol and the local ``DirectoryTarget`` (``dirfd``,
  ``files``, ``meta``: descriptors only, never a symlink followed).
- ``restorer``: :class:`Restorer` runs plan, refusal, executor, finish and verify.
"""

from __future__ import annotations

from tiervault.restore.planner import PackState, RestorePlan, RestorePlanSummary, plan_restore
from tiervault.restore.restorer import Restorer, RestoreStats
from tiervault.restore.selection import Selection
from tiervault.restore.targets import DirectoryTarget, RestoreTarget

__all__ = [
    "DirectoryTarget",
    "PackState",
    "RestorePlan",
    "RestorePlanSummary",
    "RestoreStats",
    "RestoreTarget",
    "Restorer",
    "Selection",
    "plan_restore",
]
