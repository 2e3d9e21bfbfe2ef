"""The public API is what ``tiervault.__all__`` says, and every name in it exists (httpx-style)."""

from __future__ import annotations

import tiervault

EXPECTED = {
    "AzureOptions",
    "BackendError",
    "CheckResult",
    "Entry",
    "IntegrityError",
    "Item",
    "LeaseHeldError",
    "PermissionDeniedError",
    "NotFoundError",
    "ObjectArchivedError",
    "ObjectNotFoundError",
    "Policy",
    "Progress",
    "RecoveryPoint",
    "RepositoryExistsError",
    "RepositoryNotFoundError",
    "RestoreResult",
    "RestoreStats",
    "ScryptParams",
    "SnapshotResult",
    "SnapshotStats",
    "TiervaultError",
    "TransientBackendError",
    "UnsupportedFormatError",
    "UsageError",
    "Vault",
    "WrongPasswordError",
    "__version__",
    "init",
    "open",
}


def test_all_is_pinned() -> None:
    assert set(tiervault.__all__) == EXPECTED


def test_all_names_exist() -> None:
    for name in tiervault.__all__:
        assert getattr(tiervault, name) is not None


def test_errors_share_one_base() -> None:
    for name in tiervault.__all__:
        obj = getattr(tiervault, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, tiervault.TiervaultError)
