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
    "KeyInfo",
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
    "tune_allocator",
}


def test_all_is_pinned() -> None:
    assert set(tiervault.__all__) == EXPECTED


def test_star_import_does_not_shadow_builtins() -> None:
    """``from tiervault import *`` in someone's module must leave ``open`` (and every builtin) alone;
    ``tiervault.open`` is still the way to open a repository."""
    import builtins

    namespace: dict[str, object] = {}
    exec("from tiervault import *", namespace)
    assert not set(namespace) - {"__builtins__"} & set(dir(builtins))
    assert "open" not in namespace
    assert callable(tiervault.open) and tiervault.open is not builtins.open


def test_all_names_exist() -> None:
    for name in tiervault.__all__:
        assert getattr(tiervault, name) is not None


def test_errors_share_one_base() -> None:
    for name in tiervault.__all__:
        obj = getattr(tiervault, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, tiervault.TiervaultError)
