"""The public API is exactly what ``tiervault.__all__`` says (httpx's ``test_exported_members`` is the
model): the pinned names, each defined, each the original object of the module that defines it, each
documented, and nothing public in the package namespace left out of ``__all__``."""

from __future__ import annotations

import importlib
import inspect
import re
import tomllib
import types
from pathlib import Path

import tiervault

#: every exported name and the module that defines it (a re-export of a look-alike would differ)
EXPECTED: dict[str, str] = {
    "AzureOptions": "tiervault.api",
    "BackendError": "tiervault.errors",
    "CheckResult": "tiervault.maintenance",
    "Entry": "tiervault.models",
    "IntegrityError": "tiervault.errors",
    "LapsedWriterError": "tiervault.errors",
    "PriceTable": "tiervault.costs.prices",
    "load_prices": "tiervault.costs.prices",
    "Item": "tiervault.models",
    "KeyInfo": "tiervault.models",
    "LeaseHeldError": "tiervault.errors",
    "LimitError": "tiervault.errors",
    "NotFoundError": "tiervault.errors",
    "ObjectArchivedError": "tiervault.errors",
    "ObjectNotFoundError": "tiervault.errors",
    "ParameterError": "tiervault.errors",
    "PermissionDeniedError": "tiervault.errors",
    "Policy": "tiervault.policy",
    "Progress": "tiervault.archiver.outcome",
    "PruneReport": "tiervault.prune.report",
    "RecoveryPoint": "tiervault.models",
    "RehydrationNeededError": "tiervault.errors",
    "RehydrationProgress": "tiervault.restore.rehydration",
    "RepositoryExistsError": "tiervault.errors",
    "RepositoryNotFoundError": "tiervault.errors",
    "RestorePlanSummary": "tiervault.restore.planner",
    "RestoreResult": "tiervault.models",
    "StatsReport": "tiervault.stats",
    "RestoreStats": "tiervault.restore.restorer",
    "RetentionDecision": "tiervault.retention",
    "ScryptParams": "tiervault.core.crypto",
    "SnapshotResult": "tiervault.models",
    "SnapshotStats": "tiervault.archiver.outcome",
    "TierMove": "tiervault.tiering.report",
    "TierReport": "tiervault.tiering.report",
    "TiervaultError": "tiervault.errors",
    "TransientBackendError": "tiervault.errors",
    "UnsupportedFormatError": "tiervault.errors",
    "UpgradeResult": "tiervault.repo.upgrade",
    "UsageError": "tiervault.errors",
    "Vault": "tiervault.vault",
    "WrongPasswordError": "tiervault.errors",
    "init": "tiervault.api",
    "tune_allocator": "tiervault.memory",
}
#: dunder names that are part of the API on purpose
PUBLIC_DUNDERS = {"__version__"}
#: public, but not in ``__all__``: ``from tiervault import *`` must not shadow the builtin ``open``
NOT_STARRED = {"open": "tiervault.api"}
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_all_is_pinned_sorted_and_without_duplicates() -> None:
    exported = list(tiervault.__all__)
    assert len(exported) == len(set(exported)), "a name is listed twice in __all__"
    assert set(exported) == set(EXPECTED) | PUBLIC_DUNDERS
    assert exported == sorted(exported)


def test_star_import_does_not_shadow_builtins() -> None:
    """``from tiervault import *`` in someone's module must leave ``open`` (and every builtin) alone;
    ``tiervault.open`` is still the way to open a repository."""
    import builtins

    namespace: dict[str, object] = {}
    exec("from tiervault import *", namespace)
    assert not set(namespace) - {"__builtins__"} & set(dir(builtins))
    assert "open" not in namespace
    assert callable(tiervault.open) and tiervault.open is not builtins.open


def test_every_public_name_of_the_package_is_in_all() -> None:
    """Nothing public is importable from ``tiervault`` without being exported (submodules aside)."""
    public = {
        name
        for name, value in vars(tiervault).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"
    }
    assert public | PUBLIC_DUNDERS == set(tiervault.__all__) | set(NOT_STARRED)


def test_each_name_is_the_object_its_module_defines() -> None:
    for name, module_name in {**EXPECTED, **NOT_STARRED}.items():
        assert name in vars(tiervault), f"tiervault.{name} is exported but not defined"
        obj = vars(tiervault)[name]
        assert inspect.isclass(obj) or inspect.isfunction(obj), f"tiervault.{name} is {obj!r}"
        module = importlib.import_module(module_name)
        assert vars(module).get(name) is obj, f"tiervault.{name} is not {module_name}.{name}"
        assert obj.__module__ == module_name, f"tiervault.{name} is defined in {obj.__module__}"
        assert obj.__qualname__ == name


def test_each_name_is_documented() -> None:
    """A real docstring, not the signature a dataclass makes up when there is none."""
    for name in {**EXPECTED, **NOT_STARRED}:
        obj = getattr(tiervault, name)
        doc = (obj.__doc__ or "").strip()
        assert doc, f"tiervault.{name} has no docstring"
        assert not doc.startswith(f"{name}("), f"tiervault.{name} has only the generated dataclass doc"


def test_version_is_the_packages() -> None:
    with PYPROJECT.open("rb") as f:
        declared = tomllib.load(f)["project"]["version"]
    assert tiervault.__version__ == declared
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?(?:\.dev\d+)?", tiervault.__version__)


def test_every_error_of_the_tree_is_exported_and_shares_one_base() -> None:
    exported = {
        obj
        for obj in (getattr(tiervault, n) for n in EXPECTED)
        if isinstance(obj, type) and issubclass(obj, BaseException)
    }
    tree = {
        obj
        for obj in vars(tiervault.errors).values()
        if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ == "tiervault.errors"
    }
    assert exported == tree
    for error in exported:
        assert issubclass(error, tiervault.TiervaultError), error
