"""The Azure Blob Storage backend (``azure.storage.blob.aio``).

Addresses (parsed by :func:`parse_url`):

* ``az://ACCOUNT/CONTAINER[/PREFIX]`` — ``https://ACCOUNT.blob.core.windows.net``; credentials from the
  ``credential=``/``connection_string=``/``account_key=``/``sas_token=`` arguments, else from
  ``AZURE_STORAGE_CONNECTION_STRING`` / ``AZURE_STORAGE_KEY`` / ``AZURE_STORAGE_SAS_TOKEN``, else
  ``azure.identity.aio.DefaultAzureCredential`` (created here, so closed here).
* ``az://ACCOUNT/CONTAINER[/PREFIX]?endpoint=URL`` — the same on another endpoint (sovereign clouds,
  private endpoints, the emulator).
* ``azurite://HOST:PORT/CONTAINER[/PREFIX]`` — the Azurite development account (well-known key).

Retries (docs/architecture.md, "Retries"): the SDK's own policy, shortened, retries single requests
that failed with a transport error, 408 or a 5xx; errors that reach us after it are final for this
layer and are marked ``retried=True``. 429 (throttling), which the SDK never retries, is raised as a
``TransientBackendError`` with ``retried=False`` for the one upper layer (``backend/retry.py``) to
retry around idempotent units of work. 4xx errors are never retried.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import ExponentialRetry, RehydratePriority, StandardBlobTier
from azure.storage.blob.aio import BlobLeaseClient, BlobServiceClient, ContainerClient

from tiervault.backend.base import ObjectInfo, Tier, validate_name, validate_prefix
from tiervault.backend.base import RehydratePriority as OurPriority
from tiervault.errors import (
    BackendError,
    LeaseHeldError,
    ObjectArchivedError,
    ObjectNotFoundError,
    PermissionDeniedError,
    TransientBackendError,
    UsageError,
)

log = logging.getLogger("tiervault.backend.azure")

AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#: the newest API version released Azurite (3.37) accepts; the SDK's default is newer
AZURITE_API_VERSION = "2026-06-06"
BATCH_LIMIT = 256  # Blob Batch: at most 256 sub-requests per batch

_TIERS = {
    Tier.HOT: StandardBlobTier.HOT,
    Tier.COOL: StandardBlobTier.COOL,
    Tier.COLD: StandardBlobTier.COLD,
    Tier.ARCHIVE: StandardBlobTier.ARCHIVE,
}
_PRIORITIES = {OurPriority.STANDARD: RehydratePriority.STANDARD, OurPriority.HIGH: RehydratePriority.HIGH}


@dataclass(frozen=True, slots=True)
class AzureAddress:
    account: str
    container: str
    prefix: str  # "" or ends with "/"
    endpoint: str  # account URL, e.g. https://acct.blob.core.windows.net
    azurite: bool = False

    @property
    def location(self) -> str:
        base = f"az://{self.account}/{self.container}"
        return base + ("/" + self.prefix.rstrip("/") if self.prefix else "")


def parse_url(url: str) -> AzureAddress:
    """Parse an ``az://`` or ``azurite://`` address; raises UsageError with the accepted forms."""
    parsed = urlparse(url)
    parts = [p for p in unquote(parsed.path).split("/") if p]
    if parsed.scheme not in ("az", "azurite") or not parsed.netloc or not parts:
        raise UsageError(
            f"bad Azure address {url!r}: use az://ACCOUNT/CONTAINER[/PREFIX] or azurite://HOST:PORT/CONTAINER"
        )
    container, prefix_parts = parts[0], parts[1:]
    prefix = "/".join(prefix_parts) + "/" if prefix_parts else ""
    if prefix:
        validate_prefix(prefix)
    if parsed.scheme == "azurite":
        return AzureAddress(
            AZURITE_ACCOUNT, container, prefix, f"http://{parsed.netloc}/{AZURITE_ACCOUNT}", True
        )
    endpoint = parse_qs(parsed.query).get("endpoint", [f"https://{parsed.netloc}.blob.core.windows.net"])[0]
    return AzureAddress(parsed.netloc, container, prefix, endpoint.rstrip("/"))


def _status(exc: HttpResponseError) -> int:
    return int(exc.status_code or 0)


def translate(exc: BaseException, name: str) -> BackendError:
    """Azure's exceptions become tiervault's, once, here (always used with ``raise ... from exc``)."""
    code = getattr(exc, "error_code", None) or ""
    if isinstance(exc, ClientAuthenticationError) or (
        isinstance(exc, HttpResponseError) and _status(exc) == 403
    ):
        return PermissionDeniedError(
            f"{name}: access denied by Azure Storage ({code or exc.__class__.__name__})"
        )
    if isinstance(exc, ResourceNotFoundError):
        if code == "ContainerNotFound":
            return ObjectNotFoundError(f"{name}: the container does not exist")
        return ObjectNotFoundError(name)
    if isinstance(exc, HttpResponseError):
        status = _status(exc)
        if code == "BlobArchived" or (status == 409 and "archive" in str(exc).lower()):
            return ObjectArchivedError(f"{name} is in the Archive tier: rehydrate it first")
        if code in (
            "LeaseAlreadyPresent",
            "LeaseIdMismatchWithLeaseOperation",
            "LeaseLost",
            "LeaseIdMissing",
        ):
            return LeaseHeldError(f"{name}: {code}")
        if status == 429:
            return TransientBackendError(f"{name}: throttled by Azure Storage (429)", retried=False)
        if status == 408 or status >= 500:
            return TransientBackendError(
                f"{name}: Azure Storage answered {status} {code}".rstrip(), retried=True
            )
        return BackendError(f"{name}: Azure Storage answered {status} {code}".rstrip())
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return TransientBackendError(f"{name}: cannot reach Azure Storage: {exc}", retried=True)
    if isinstance(exc, AzureError):
        return BackendError(f"{name}: {exc}")
    return BackendError(f"{name}: {exc}")


def _tier_of(props: Any) -> Tier:
    raw = str(props.blob_tier or "Hot").lower()
    return Tier(raw) if raw in {t.value for t in Tier} else Tier.HOT


class AzureLease:
    """A blob lease. Azure lets a lease lapse by itself 15-60 s after its last renewal."""

    def __init__(self, name: str, client: BlobLeaseClient, duration: int) -> None:
        self._name, self._client, self.duration = name, client, duration
        self._released = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def lease_id(self) -> str:
        return str(self._client.id)

    async def renew(self) -> None:
        try:
            await self._client.renew()
        except AzureError as exc:
            err = translate(exc, self._name)
            if isinstance(exc, HttpResponseError) and _status(exc) in (409, 412):
                raise LeaseHeldError(f"{self._name}: the lease was lost") from exc
            raise err from exc

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        try:
            await self._client.release()
        except (ResourceNotFoundError, HttpResponseError) as exc:
            log.debug("lease on %s already gone: %s", self._name, exc)


class AzureBackend:
    """One container (and optional name prefix) of one storage account."""

    def __init__(
        self,
        address: AzureAddress,
        *,
        credential: Any = None,
        connection_string: str | None = None,
        owns_credential: bool = False,
        max_connections: int = 16,
        retry_total: int = 4,
        retry_backoff: float = 0.5,
        validate_content: bool = True,
        api_version: str | None = None,
    ) -> None:
        self.address = address
        self._validate = validate_content
        self._credential = credential
        self._owns_credential = owns_credential
        kwargs: dict[str, Any] = {
            # one layer per failure: the SDK's policy, shortened (its default sleeps 15 s, 18 s, 24 s)
            "retry_policy": ExponentialRetry(
                initial_backoff=retry_backoff,  # type: ignore[arg-type]
                increment_base=2,
                retry_total=retry_total,
                random_jitter_range=retry_backoff,  # type: ignore[arg-type]
            ),
            "max_single_put_size": 256 << 20,  # a pack goes up as one Put Blob
            "max_single_get_size": 256 << 20,
            "connection_timeout": 20,
            "read_timeout": 120,
        }
        if api_version or address.azurite:
            kwargs["api_version"] = api_version or AZURITE_API_VERSION
        transport = _transport(max_connections)
        if transport is not None:
            kwargs["transport"] = transport
        if connection_string:
            self._service = BlobServiceClient.from_connection_string(connection_string, **kwargs)
        else:
            self._service = BlobServiceClient(address.endpoint, credential=credential, **kwargs)
        self._container: ContainerClient = self._service.get_container_client(address.container)
        self._closed = False

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        credential: Any = None,
        connection_string: str | None = None,
        account_key: str | None = None,
        sas_token: str | None = None,
        **options: Any,
    ) -> AzureBackend:
        """Build a backend from an address and whichever credential is given or configured."""
        address = parse_url(url)
        owns = False
        if address.azurite:
            conn = (
                f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
                f"BlobEndpoint={address.endpoint};"
            )
            return cls(address, connection_string=connection_string or conn, **options)
        connection_string = connection_string or os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
        if credential is None and not connection_string:
            account_key = account_key or os.environ.get("AZURE_STORAGE_KEY")
            sas_token = sas_token or os.environ.get("AZURE_STORAGE_SAS_TOKEN")
            if account_key:
                credential = {"account_name": address.account, "account_key": account_key}
            elif sas_token:
                credential = sas_token.lstrip("?")
            else:
                from azure.identity.aio import DefaultAzureCredential  # lazily: slow to import

                credential = DefaultAzureCredential()
                owns = True
        return cls(
            address,
            credential=credential,
            connection_string=connection_string,
            owns_credential=owns,
            **options,
        )

    # ------------------------------------------------------------------ helpers

    @property
    def location(self) -> str:
        return self.address.location

    def _blob(self, name: str) -> str:
        validate_name(name)
        return self.address.prefix + name

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("the Azure backend is closed")

    async def __aenter__(self) -> AzureBackend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def create_container(self) -> bool:
        """Create the container; False if it already existed."""
        self._check_open()
        try:
            await self._container.create_container()
            return True
        except ResourceExistsError:
            return False
        except AzureError as exc:
            raise translate(exc, self.address.container) from exc

    # ------------------------------------------------------------------ the contract

    async def put_if_absent(self, name: str, data: bytes | memoryview) -> bool:
        self._check_open()
        blob = self._container.get_blob_client(self._blob(name))
        payload = data if isinstance(data, bytes) else bytes(data)
        try:
            await blob.upload_blob(
                payload, overwrite=False, length=len(payload), validate_content=self._validate
            )
            return True
        except ResourceExistsError:
            # Either it existed before, or our own create succeeded and its response was lost, so the
            # SDK's retry found it: both are "already there" (callers check content-addressed sizes).
            return False
        except AzureError as exc:
            raise translate(exc, name) from exc

    async def get(self, name: str, *, offset: int = 0, length: int | None = None) -> bytes:
        self._check_open()
        if offset < 0 or (length is not None and length < 0):
            raise UsageError("offset and length must not be negative")
        if length == 0:
            await self.stat(name)
            return b""
        blob = self._container.get_blob_client(self._blob(name))
        try:
            stream = await blob.download_blob(offset=offset or None, length=length, max_concurrency=1)
            data: bytes = await stream.readall()
            return data
        except HttpResponseError as exc:
            if _status(exc) == 416:  # the range starts at or beyond the end
                await self.stat(name)
                return b""
            raise translate(exc, name) from exc
        except AzureError as exc:
            raise translate(exc, name) from exc

    async def open_read(
        self, name: str, *, offset: int = 0, length: int | None = None, block_size: int = 4 << 20
    ) -> AsyncIterator[bytes]:
        if block_size <= 0:
            raise UsageError("block_size must be positive")
        size = (await self.stat(name)).size
        end = size if length is None else min(size, offset + length)
        pos = offset
        while pos < end:
            n = min(block_size, end - pos)
            yield await self.get(name, offset=pos, length=n)
            pos += n

    async def stat(self, name: str) -> ObjectInfo:
        self._check_open()
        blob = self._container.get_blob_client(self._blob(name))
        try:
            props = await blob.get_blob_properties()
        except AzureError as exc:
            raise translate(exc, name) from exc
        return self._info(name, props)

    def _info(self, name: str, props: Any) -> ObjectInfo:
        modified = props.last_modified or datetime.now(UTC)
        status = str(getattr(props, "archive_status", None) or "")
        return ObjectInfo(
            name=name,
            size=int(props.size),
            tier=_tier_of(props),
            modified=modified if modified.tzinfo else modified.replace(tzinfo=UTC),
            rehydrating=status.startswith("rehydrate-pending"),
        )

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        self._check_open()
        if prefix:
            validate_prefix(prefix)
        strip = len(self.address.prefix)
        try:
            async for props in self._container.list_blobs(name_starts_with=self.address.prefix + prefix):
                yield self._info(props.name[strip:], props)
        except AzureError as exc:
            raise translate(exc, prefix or "/") from exc

    async def delete(self, name: str) -> None:
        self._check_open()
        blob = self._container.get_blob_client(self._blob(name))
        try:
            await blob.delete_blob()
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            raise translate(exc, name) from exc

    async def delete_many(self, names: Sequence[str]) -> None:
        """Delete many objects with Blob Batch requests (256 per batch); absent ones are fine."""
        self._check_open()
        blobs = [self._blob(n) for n in names]
        for i in range(0, len(blobs), BATCH_LIMIT):
            batch = blobs[i : i + BATCH_LIMIT]
            try:
                responses = await self._container.delete_blobs(*batch, raise_on_any_failure=False)
                async for resp in responses:
                    if resp.status_code not in (200, 202, 404):
                        raise BackendError(f"batch delete failed for a blob: HTTP {resp.status_code}")
            except AzureError as exc:
                raise translate(exc, batch[0]) from exc

    async def set_tier(self, name: str, tier: Tier) -> None:
        self._check_open()
        info = await self.stat(name)
        if info.tier is Tier.ARCHIVE and tier is not Tier.ARCHIVE:
            raise UsageError(f"{name} is archived: use rehydrate() to make it readable")
        blob = self._container.get_blob_client(self._blob(name))
        try:
            await blob.set_standard_blob_tier(_TIERS[tier])
        except AzureError as exc:
            raise translate(exc, name) from exc

    async def set_tier_many(self, names: Sequence[str], tier: Tier) -> None:
        """Move many objects to ``tier`` with Blob Batch requests (not out of Archive)."""
        self._check_open()
        blobs = [self._blob(n) for n in names]
        for i in range(0, len(blobs), BATCH_LIMIT):
            batch = blobs[i : i + BATCH_LIMIT]
            try:
                responses = await self._container.set_standard_blob_tier_blobs(
                    _TIERS[tier], *batch, raise_on_any_failure=False
                )
                async for resp in responses:
                    if resp.status_code not in (200, 202):
                        raise BackendError(f"batch set-tier failed for a blob: HTTP {resp.status_code}")
            except AzureError as exc:
                raise translate(exc, batch[0]) from exc

    async def rehydrate(self, name: str, *, priority: OurPriority = OurPriority.STANDARD) -> None:
        """Start rehydrating an archived blob in place (Set Blob Tier to Hot with a priority)."""
        self._check_open()
        info = await self.stat(name)
        if info.tier is not Tier.ARCHIVE or info.rehydrating:
            return
        blob = self._container.get_blob_client(self._blob(name))
        try:
            await blob.set_standard_blob_tier(StandardBlobTier.HOT, rehydrate_priority=_PRIORITIES[priority])
        except AzureError as exc:
            raise translate(exc, name) from exc

    async def acquire_lease(self, name: str, *, duration: float) -> AzureLease:
        """A blob lease of 15-60 s (Azure's range); the blob is created empty if needed."""
        self._check_open()
        seconds = round(duration)
        if not 15 <= seconds <= 60:
            raise UsageError("Azure leases last 15 to 60 seconds")
        blob = self._container.get_blob_client(self._blob(name))
        try:
            await blob.upload_blob(b"", overwrite=False)
        except ResourceExistsError:
            pass
        except AzureError as exc:
            raise translate(exc, name) from exc
        client = BlobLeaseClient(blob)
        try:
            await client.acquire(lease_duration=seconds)
        except AzureError as exc:
            if isinstance(exc, HttpResponseError) and _status(exc) == 409:
                raise LeaseHeldError(f"{name} is leased by another holder") from exc
            raise translate(exc, name) from exc
        return AzureLease(name, client, seconds)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._service.close()
        if self._owns_credential and self._credential is not None:
            await self._credential.close()


def _transport(max_connections: int) -> Any:
    """An aiohttp transport whose connection pool matches the uploads we keep in flight."""
    try:
        import aiohttp
        from azure.core.pipeline.transport import AioHttpTransport
    except ImportError:  # pragma: no cover - aiohttp comes with azure-storage-blob[aio]
        return None
    connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=max_connections)
    return AioHttpTransport(session=aiohttp.ClientSession(connector=connector), session_owner=True)
