"""tiervault: tiered, encrypted, deduplicating backups with restore as the first-class path.

async with tiervault.open("/backups/repo", password=...) as vault:
    point = (await vault.snapshot("app-data")).point
    await vault.restore(point, "/restore/app-data")
"""

from __future__ import annotations

from tiervault.api import AzureOptions, init
from tiervault.api import open as open  # tiervault.open; not in __all__: a star import keeps the builtin
from tiervault.archiver import Progress, SnapshotStats
from tiervault.core.crypto import ScryptParams
from tiervault.costs import PriceTable, load_prices
from tiervault.errors import (
    BackendError,
    IntegrityError,
    LapsedWriterError,
    LeaseHeldError,
    LimitError,
    NotFoundError,
    ObjectArchivedError,
    ObjectNotFoundError,
    ParameterError,
    PermissionDeniedError,
    RehydrationNeededError,
    RepositoryExistsError,
    RepositoryNotFoundError,
    TiervaultError,
    TransientBackendError,
    UnsupportedFormatError,
    UsageError,
    WrongPasswordError,
)
from tiervault.maintenance import CheckResult
from tiervault.memory import tune_allocator
from tiervault.models import Entry, Item, KeyInfo, RecoveryPoint, RestoreResult, SnapshotResult
from tiervault.policy import Policy
from tiervault.prune import PruneReport
from tiervault.repo.upgrade import UpgradeResult
from tiervault.restore.planner import RestorePlanSummary
from tiervault.restore.rehydration import RehydrationProgress
from tiervault.restore.restorer import RestoreStats
from tiervault.retention import RetentionDecision
from tiervault.stats import StatsReport
from tiervault.tiering import TierMove, TierReport
from tiervault.vault import Vault
from tiervault.version import __version__

__all__ = [
    "AzureOptions",
    "BackendError",
    "CheckResult",
    "Entry",
    "IntegrityError",
    "Item",
    "KeyInfo",
    "LapsedWriterError",
    "LeaseHeldError",
    "LimitError",
    "NotFoundError",
    "ObjectArchivedError",
    "ObjectNotFoundError",
    "ParameterError",
    "PermissionDeniedError",
    "Policy",
    "PriceTable",
    "Progress",
    "PruneReport",
    "RecoveryPoint",
    "RehydrationNeededError",
    "RehydrationProgress",
    "RepositoryExistsError",
    "RepositoryNotFoundError",
    "RestorePlanSummary",
    "RestoreResult",
    "RestoreStats",
    "RetentionDecision",
    "ScryptParams",
    "SnapshotResult",
    "SnapshotStats",
    "StatsReport",
    "TierMove",
    "TierReport",
    "TiervaultError",
    "TransientBackendError",
    "UnsupportedFormatError",
    "UpgradeResult",
    "UsageError",
    "Vault",
    "WrongPasswordError",
    "__version__",
    "init",
    "load_prices",
    "tune_allocator",
]
