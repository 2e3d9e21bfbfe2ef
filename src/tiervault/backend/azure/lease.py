"""Azure blob leases (``AzureLease``), as ``AzureBackend.acquire_lease`` takes them."""

from __future__ import annotations

import logging
import math

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.blob.aio import BlobClient, BlobLeaseClient

from tiervault.backend.azure.errors import code_of, translate
from tiervault.errors import LeaseHeldError, ObjectNotFoundError, UsageError

__all__ = ["AzureLease", "lease_seconds"]

_log = logging.getLogger("tiervault.backend.azure")


class AzureLease:
    """A blob lease. Azure lets a lease lapse by itself 15-60 s after its last renewal."""

    def __init__(self, name: str, client: BlobLeaseClient, duration: int, container: str) -> None:
        self._name, self._client, self.duration, self._container = name, client, duration, container
        # kept apart from the SDK client, which forgets the id once the lease is released
        self._lease_id = str(client.id)
        self._released = False

    @classmethod
    async def acquire(cls, blob: BlobClient, name: str, seconds: int, container: str) -> AzureLease:
        """Lease ``blob`` (object ``name`` in ``container``) for ``seconds``, creating it empty if
        needed; ``LeaseHeldError`` if another holder has it."""
        try:
            await blob.upload_blob(b"", overwrite=False)
        except ResourceExistsError as exc:
            if code_of(exc) != "BlobAlreadyExists":
                raise translate(exc, name, container=container) from exc
        except AzureError as exc:
            err = translate(exc, name, container=container)
            # creating a blob that exists and is leased is refused as a lease conflict: fine here
            if not isinstance(err, LeaseHeldError):
                raise err from exc
        client = BlobLeaseClient(blob)
        try:
            await client.acquire(lease_duration=seconds)
        except AzureError as exc:
            raise translate(exc, name, container=container) from exc
        return cls(name, client, seconds, container)

    @property
    def name(self) -> str:
        return self._name

    @property
    def lease_id(self) -> str:
        return self._lease_id

    async def renew(self) -> None:
        """Renew; ``LeaseHeldError`` if released, or lapsed and taken (or broken) meanwhile."""
        if self._released:
            raise LeaseHeldError(f"{self._name}: the lease was released")
        try:
            await self._client.renew()
        except AzureError as exc:
            err = translate(exc, self._name, container=self._container)
            if isinstance(err, ObjectNotFoundError):  # the object (so its lease) was deleted
                raise LeaseHeldError(f"{self._name}: the lease was lost ({err})") from exc
            raise err from exc

    async def release(self) -> None:
        """Release at once. Idempotent, and harmless once the lease is lost (Azure refuses our id, so
        a new holder keeps its lease). Other failures are raised, and a later call tries again."""
        if self._released:
            return
        try:
            await self._client.release()
        except AzureError as exc:
            err = translate(exc, self._name, container=self._container)
            if not isinstance(err, LeaseHeldError | ObjectNotFoundError):
                raise err from exc
            _log.debug("lease on %s already gone: %s", self._name, err)
        self._released = True


def lease_seconds(duration: float) -> int:
    """``duration`` as whole seconds in Azure's range for a lease (15-60); ``UsageError`` if outside."""
    # check the number before rounding it: round(nan) is a ValueError, round(inf) an OverflowError
    if not (math.isfinite(duration) and 15 <= round(duration) <= 60):
        raise UsageError(f"Azure leases last 15 to 60 seconds, not {duration!r}")
    return round(duration)
