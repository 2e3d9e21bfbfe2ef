"""tiervault's exceptions: one small tree, raised everywhere, mapped to exit codes only by the CLI.

    TiervaultError
    ├── UsageError                  bad arguments or input (a missing source path, an unknown item)
    │   ├── ParameterError          a parameter object's value out of range (also a ValueError)
    │   └── LimitError              more than a bound allows (entries a restore plans): raise the bound
    ├── RepositoryNotFoundError     no repository at that address
    ├── RepositoryExistsError       init over an existing repository
    ├── UnsupportedFormatError      written by a newer tiervault (or not a tiervault repository)
    ├── WrongPasswordError          no key slot opens with this password
    ├── IntegrityError              an object read back failed authentication or its hash; names it
    │   └── LapsedWriterError       a suspended snapshot's chunks were pruned meanwhile: run it again
    ├── NotFoundError               a recovery point, path or item that does not exist
    └── BackendError                the store failed
        ├── ObjectNotFoundError     the object does not exist
        ├── ObjectArchivedError     the object is in the Archive tier: rehydrate it first
        │   └── RehydrationNeededError  a restore needs archived packs: restore --rehydrate
        ├── LeaseHeldError          someone else holds the lease
        ├── PermissionDeniedError   credentials refused (never retried)
        └── TransientBackendError   may succeed if retried (the only retryable one)

Foreign exceptions (OSError, azure.core.exceptions...) are translated once, at the backend boundary,
always with ``raise ... from exc``.
"""

from __future__ import annotations

from typing import Any


class TiervaultError(Exception):
    """Base class of every error tiervault raises on purpose."""


class UsageError(TiervaultError):
    """The caller asked for something impossible: bad arguments, a missing source path."""


class ParameterError(UsageError, ValueError):
    """A parameter object (``ScryptParams``, ``ChunkerParams``, ``Policy``) was given a value out of its
    range. Also a ``ValueError``, which is what these raised before and what Python's own
    constructors raise for a bad value: code catching either keeps working."""


class LimitError(UsageError):
    """An operation would go beyond one of its bounds (e.g. the entries a restore plans in memory,
    ``max_entries``). The message names the bound and the option that raises it."""


class RepositoryNotFoundError(TiervaultError):
    """There is no tiervault repository at that address."""


class RepositoryExistsError(TiervaultError):
    """``init`` was asked to create a repository where one already exists."""


class UnsupportedFormatError(TiervaultError):
    """The repository's format version is not one this tiervault can read."""


class WrongPasswordError(TiervaultError):
    """No key slot of the repository opens with the given password."""


class IntegrityError(TiervaultError):
    """An object read back failed its hash or its authentication tag.

    ``name`` is the storage name of the damaged object.
    """

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"integrity error in {name}: {detail}")
        self.name = name
        self.detail = detail


class LapsedWriterError(IntegrityError):
    """A snapshot writer was suspended (or cut off) for so long that a prune may have deleted packs it
    relied on, and some chunk it needed is no longer stored: its point was not committed (or was
    withdrawn). Run the snapshot again."""


class NotFoundError(TiervaultError):
    """A recovery point, item or path inside a recovery point that does not exist."""


class BackendError(TiervaultError):
    """The storage backend failed."""


class ObjectNotFoundError(BackendError):
    """The named object does not exist in the store."""


class ObjectArchivedError(BackendError):
    """The object is in the Archive tier and must be rehydrated before it can be read."""


class RehydrationNeededError(ObjectArchivedError):
    """A restore needs packs in the Archive tier and was not asked to rehydrate them (nothing was
    written). ``plan`` is the restore plan's summary as JSON (``Vault.plan_restore``)."""

    def __init__(self, message: str, plan: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.plan = plan


class LeaseHeldError(BackendError):
    """Another holder owns the lease on that object."""


class PermissionDeniedError(BackendError):
    """The store refused our credentials; retrying cannot help."""


class TransientBackendError(BackendError):
    """A failure that may go away if the same idempotent request is repeated.

    ``retried`` says whether a lower layer (the Azure SDK's own policy) already retried this very
    failure: then no upper layer retries it again (one retry layer per failure).
    """

    def __init__(self, message: str, *, retried: bool = False) -> None:
        super().__init__(message)
        self.retried = retried


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to report from a task group: our own errors first, then anything else."""
    leaves: list[BaseException] = []

    def flatten(g: BaseExceptionGroup[BaseException]) -> None:
        for e in g.exceptions:
            if isinstance(e, BaseExceptionGroup):
                flatten(e)
            else:
                leaves.append(e)

    flatten(group)
    for e in leaves:
        if isinstance(e, TiervaultError):
            return e
    return leaves[0]
