"""The storage interface every backend implements, and the contract each method keeps.

A backend stores opaque objects under slash-separated names (``data/ab/ab12...``). It knows nothing of
packs, snapshots or encryption. Every method translates the store's own errors, once, into
:mod:`tiervault.errors` (``raise ... from exc``); only :class:`~tiervault.errors.TransientBackendError`
may be retried, and retrying is not the backend's business (see ``docs/architecture.md``).
"""

from __future__ import annotations

import enum
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol, runtime_checkable

from tiervault.errors import UsageError


class Tier(enum.StrEnum):
    """Access tiers, warmest first. Stores without tiers report everything as ``HOT``."""

    HOT = "hot"
    COOL = "cool"
    COLD = "cold"
    ARCHIVE = "archive"


class RehydratePriority(enum.StrEnum):
    STANDARD = "standard"
    HIGH = "high"


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What ``stat`` and ``list`` report about one object."""

    name: str
    size: int
    tier: Tier
    modified: datetime
    #: True while an Archive object is being rehydrated (not yet readable).
    rehydrating: bool = False


@runtime_checkable
class Lease(Protocol):
    """An exclusive, expiring claim on one name. Expires by itself unless renewed."""

    @property
    def name(self) -> str: ...

    async def renew(self) -> None:
        """Extend the lease by its duration. Raises ``LeaseHeldError`` if it was lost meanwhile."""

    async def release(self) -> None:
        """Give the lease up at once. Idempotent."""


@runtime_checkable
class Backend(Protocol):
    """The whole storage contract. Options are keyword-only; every method is safe to call concurrently."""

    @property
    def location(self) -> str:
        """A human-readable address of this store (never contains secrets)."""

    async def put_if_absent(self, name: str, data: bytes | memoryview) -> bool:
        """Atomically create ``name`` with ``data``.

        Returns True if this call created it, False if an object of that name already existed (then
        nothing is changed: for content-addressed names that is a normal outcome). A reader never sees
        a partially written object, and a crash leaves either the whole object or none.
        """

    async def get(self, name: str, *, offset: int = 0, length: int | None = None) -> bytes:
        """Return ``length`` bytes from ``offset`` (the rest of the object when ``length`` is None).

        A range beyond the end returns what exists (possibly fewer bytes); callers that need exactly
        ``length`` bytes check. Raises ``ObjectNotFoundError``, or ``ObjectArchivedError`` for an
        object in the Archive tier that has not been rehydrated.
        """

    def open_read(
        self, name: str, *, offset: int = 0, length: int | None = None, block_size: int = 4 << 20
    ) -> AsyncIterator[bytes]:
        """Stream the same bytes as ``get`` in blocks of at most ``block_size``: bounded memory."""

    async def stat(self, name: str) -> ObjectInfo:
        """Describe one object; ``ObjectNotFoundError`` if absent."""

    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Yield every object whose name starts with ``prefix``, in no particular order."""

    async def delete(self, name: str) -> None:
        """Remove ``name``. Idempotent: deleting an absent object is not an error."""

    async def delete_many(self, names: Sequence[str]) -> None:
        """``delete`` for many names at once (Azure: Blob Batch, 256 per request). Idempotent."""

    async def set_tier(self, name: str, tier: Tier) -> None:
        """Move an object to ``tier``. Moving out of Archive is ``rehydrate``'s job."""

    async def set_tier_many(self, names: Sequence[str], tier: Tier) -> None:
        """``set_tier`` for many names at once (Azure: Blob Batch)."""

    async def rehydrate(self, name: str, *, priority: RehydratePriority = RehydratePriority.STANDARD) -> None:
        """Start making an Archive object readable again (to Hot). Returns at once; ``stat`` reports
        ``rehydrating`` until the object is readable. A no-op for an object that is not archived."""

    async def acquire_lease(self, name: str, *, duration: float) -> Lease:
        """Take an exclusive lease on ``name`` for ``duration`` seconds (creating the object if needed).

        Raises ``LeaseHeldError`` while another holder's lease is live. A holder that dies stops
        renewing, and its lease lapses by itself: a lock can never go stale for ever.
        """

    def list_incomplete(self) -> AsyncIterator[ObjectInfo]:
        """Yield what unfinished writes left behind (a writer killed inside ``put_if_absent``): no
        object, invisible to ``list`` and to readers, but it takes space.

        ``name`` is where the store keeps it, relative to the store (not an object name: the object
        methods refuse it), ``size`` its bytes and ``modified`` its last write by the store's clock.
        A store whose interrupted writes leave nothing visible yields nothing (Azure: a pack is one
        Put Blob, which either happens or not; blocks staged but never committed expire by
        themselves and are not billed as blobs).
        """

    async def delete_incomplete(self, *, older_than: float) -> Sequence[ObjectInfo]:
        """Remove the leftovers ``list_incomplete`` yields that were last written more than
        ``older_than`` seconds ago (by this backend's clock); return what was removed.

        A write in progress keeps refreshing its own leftover, so with ``older_than`` longer than
        any single write takes, a live writer's file is never touched; and if one were, that write
        would fail (``put_if_absent`` raises) instead of creating a damaged object. ``older_than``
        must be a finite number >= 0 (``UsageError``). A store with no leftovers returns nothing.
        """

    async def aclose(self) -> None:
        """Release connections and other resources. Idempotent."""


#: top-level names starting with this are reserved for a backend's own bookkeeping (never listed)
RESERVED_PREFIX: Final = ".tv-"
#: name parts starting with this are temporary files of an unfinished write (never listed)
TEMP_PREFIX: Final = ".tmp-"


def validate_name(name: str) -> None:
    """Raise ``UsageError`` unless ``name`` is a valid object name.

    Valid: non-empty, slash-separated, relative, no empty / ``.`` / ``..`` parts, no backslash or NUL,
    no part starting with ``.tmp-`` and no top-level part starting with ``.tv-`` (both reserved).
    """
    if not isinstance(name, str) or not name:
        raise UsageError(f"invalid object name {name!r}: must be a non-empty string")
    if "\\" in name or "\x00" in name:
        raise UsageError(f"invalid object name {name!r}: backslash and NUL are not allowed")
    if name.startswith("/"):
        raise UsageError(f"invalid object name {name!r}: must not start with '/'")
    parts = name.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise UsageError(f"invalid object name {name!r}: empty, '.' or '..' path component")
        if part.startswith(TEMP_PREFIX):
            raise UsageError(f"invalid object name {name!r}: {TEMP_PREFIX!r} names are reserved")
    if parts[0].startswith(RESERVED_PREFIX):
        raise UsageError(f"invalid object name {name!r}: top-level {RESERVED_PREFIX!r} names are reserved")


def validate_age(older_than: float) -> float:
    """``older_than`` of ``delete_incomplete`` as a float; ``UsageError`` unless finite and >= 0."""
    if isinstance(older_than, bool) or not isinstance(older_than, int | float):
        raise UsageError(f"older_than must be a number of seconds, not {older_than!r}")
    if not (older_than >= 0 and math.isfinite(older_than)):
        raise UsageError(f"older_than must be a finite number of seconds >= 0, not {older_than!r}")
    return float(older_than)


def validate_prefix(prefix: str) -> None:
    """Raise ``UsageError`` unless ``prefix`` could start a valid name (``""`` lists everything)."""
    if not isinstance(prefix, str):
        raise UsageError(f"invalid list prefix {prefix!r}: must be a string")
    if "\\" in prefix or "\x00" in prefix or prefix.startswith("/"):
        raise UsageError(f"invalid list prefix {prefix!r}")
    if any(part in (".", "..") for part in prefix.split("/")[:-1]):
        raise UsageError(f"invalid list prefix {prefix!r}: '.' or '..' path component")
