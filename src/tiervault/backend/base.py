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
    #: when the object entered its current tier, by the store's clock: the last tier change (Azure's
    #: ``access_tier_change_time``), else its creation. None where a store cannot tell.
    tier_changed: datetime | None = None


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a store can do, declared by the backend (``Backend.capabilities``) instead of probed.

    Every backend implements every method of :class:`Backend`; a capability says whether a method
    does the real thing or its documented fallback, and what that costs. Decorators (retry, the disk
    tier) report the capabilities of the backend they wrap. All default to False.
    """

    #: ``set_tier`` moves objects between access tiers and ``stat`` reports them (real ones, or
    #: emulated: ``LocalBackend``'s sidecar files). False: ``set_tier`` changes nothing and every
    #: object is reported ``HOT``.
    tiers: bool = False
    #: ``acquire_lease`` gives exclusive, expiring leases. False: it raises ``BackendError`` (the
    #: store cannot lock), so a caller that needs a lock stops instead of running unlocked.
    leases: bool = False
    #: ``delete_many`` and ``set_tier_many`` are native batched calls (Azure: Blob Batch), cheaper
    #: than one call per name. False: they are loops over the single calls (just as correct).
    batch: bool = False
    #: the store has a container to create first (``create_container`` does). False:
    #: ``create_container`` returns False and changes nothing.
    create_container: bool = False
    #: a network store (every request a round trip, billed), not a local or mounted file system:
    #: callers keep more requests in flight and write larger packs.
    remote: bool = False
    #: ``put_if_absent`` copies a ``memoryview`` it is given into ``bytes`` (Azure's single-shot
    #: upload): a writer that can hand over ``bytes`` and drop its own buffer should.
    put_needs_bytes: bool = False


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

    @property
    def capabilities(self) -> Capabilities:
        """What this store can do (see :class:`Capabilities`). Constant for the backend's life."""

    async def create_container(self) -> bool:
        """Create the store's container: True if this call created it, False if it already existed,
        or if the store has no container (``capabilities.create_container`` False). Idempotent."""

    async def put_if_absent(self, name: str, data: bytes | memoryview) -> bool:
        """Atomically create ``name`` with ``data`` (a ``memoryview`` is copied first where
        ``capabilities.put_needs_bytes``).

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
        """``delete`` for many names at once (Azure: Blob Batch, 256 per request; a loop of
        ``delete`` where ``capabilities.batch`` is False). Idempotent."""

    async def set_tier(self, name: str, tier: Tier) -> None:
        """Move an object to ``tier``. Moving out of Archive is ``rehydrate``'s job. A store without
        tiers (``capabilities.tiers`` False) changes nothing."""

    async def set_tier_many(self, names: Sequence[str], tier: Tier) -> None:
        """``set_tier`` for many names at once (Azure: Blob Batch; a loop where
        ``capabilities.batch`` is False)."""

    async def rehydrate(self, name: str, *, priority: RehydratePriority = RehydratePriority.STANDARD) -> None:
        """Start making an Archive object readable again (to Hot). Returns at once; ``stat`` reports
        ``rehydrating`` until the object is readable. A no-op for an object that is not archived."""

    async def copy_rehydrate(
        self, src: str, dst: str, *, priority: RehydratePriority = RehydratePriority.STANDARD
    ) -> bool:
        """Start copying ``src`` to a new object ``dst`` in the Hot tier (Azure: Copy Blob with
        ``rehydrate_priority`` and tier Hot), leaving ``src`` where it is, in its tier.

        Returns True if this call started the copy, False if ``dst`` already exists (then nothing
        changes: a copy started earlier goes on). ``dst`` exists at once; while an archived source is
        still being copied out, ``stat`` reports it ``ARCHIVE`` and ``rehydrating`` and reading it
        raises ``ObjectArchivedError``; afterwards it is an ordinary Hot object with ``src``'s bytes.
        A readable ``src`` is copied at once. ``ObjectNotFoundError`` if ``src`` is absent."""

    async def acquire_lease(self, name: str, *, duration: float) -> Lease:
        """Take an exclusive lease on ``name`` for ``duration`` seconds (creating the object if needed).

        Raises ``LeaseHeldError`` while another holder's lease is live. A holder that dies stops
        renewing, and its lease lapses by itself: a lock can never go stale for ever. A store
        without leases (``capabilities.leases`` False) raises ``BackendError``.
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
