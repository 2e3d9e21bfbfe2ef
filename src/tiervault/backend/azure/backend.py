"""``AzureBackend``: the storage contract over one container (and optional name prefix) of one
storage account, with ``azure.storage.blob.aio``.

Errors are translated once (``errors.translate``); single requests are retried by the SDK's own
policy, shortened (``transport.Backoff``); 429 (throttling), which the SDK never retries, is raised as
a ``TransientBackendError`` with ``retried=False`` for the one upper layer (``backend/retry.py``) to
retry around idempotent units of work. 4xx errors are never retried.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final

from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError
from azure.storage.blob import StandardBlobTier
from azure.storage.blob.aio import BlobServiceClient, ContainerClient

from tiervault.backend.azure.address import AzureAddress, parse_url
from tiervault.backend.azure.batch import send_batches
from tiervault.backend.azure.blobs import PRIORITIES, TIERS, body, check_tier, md5_b64, object_info
from tiervault.backend.azure.credentials import choose_credential, close_soon, connection_account
from tiervault.backend.azure.errors import code_of, is_gone, status_of, translate
from tiervault.backend.azure.lease import AzureLease, lease_seconds
from tiervault.backend.azure.transport import AZURITE_API_VERSION, Backoff, PooledTransport, client_options
from tiervault.backend.base import (
    Capabilities,
    ObjectInfo,
    Tier,
    validate_age,
    validate_name,
    validate_prefix,
)
from tiervault.backend.base import RehydratePriority as OurPriority
from tiervault.errors import BackendError, ObjectArchivedError, ObjectNotFoundError, UsageError

__all__ = ["CAPABILITIES", "AzureBackend"]

#: real tiers and leases, Blob Batch, a container; ``put_if_absent`` needs ``bytes`` (the SDK's
#: single-shot upload copies a memoryview, so a writer that can hand over ``bytes`` and drop its own
#: buffer should)
CAPABILITIES: Final = Capabilities(
    tiers=True, leases=True, batch=True, create_container=True, remote=True, put_needs_bytes=True
)


def _check_range(offset: int, length: int | None) -> None:
    if offset < 0 or (length is not None and length < 0):
        raise UsageError(f"offset and length must not be negative (offset={offset}, length={length})")


class AzureBackend:
    """One container (and optional name prefix) of one storage account.

    Build it with :meth:`from_url`. Safe to use concurrently from one event loop; close it with
    ``aclose`` (or ``async with``), which also closes a credential it created, never one given to it.
    """

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
        if max_connections < 1 or retry_total < 0 or retry_backoff < 0:
            raise UsageError("max_connections must be >= 1, retry_total and retry_backoff >= 0")
        self.address = address
        self._validate = validate_content
        self._credential = credential
        self._owns_credential = owns_credential
        self._closed = False
        self._retry_policy = Backoff.budget(retry_total, retry_backoff)
        # the aiohttp session is made on first use, inside the event loop, and closed with the client
        self._transport = PooledTransport(max_connections)
        kwargs = client_options(
            self._retry_policy,
            self._transport,
            api_version or (AZURITE_API_VERSION if address.azurite else None),
        )
        self._service: BlobServiceClient
        if connection_string:
            try:
                self._service = BlobServiceClient.from_connection_string(connection_string, **kwargs)
            except ValueError as exc:  # the SDK's word for a malformed connection string
                raise UsageError(f"bad Azure Storage connection string: {exc}") from None
            named = connection_account(connection_string)
            if named is not None and named != address.account:
                raise UsageError(
                    f"the connection string is for storage account {named!r}, "
                    f"but the address {address.location} names {address.account!r}"
                )
        else:
            self._service = BlobServiceClient(address.endpoint, credential=credential, **kwargs)
        self._container: ContainerClient = self._service.get_container_client(address.container)

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
        """Build a backend from an address and the first credential found, in this order:
        ``credential``; a SAS token in an ``https://`` address's query; ``connection_string`` or
        ``AZURE_STORAGE_CONNECTION_STRING``; ``account_key``
        or ``AZURE_STORAGE_KEY``; ``sas_token`` or ``AZURE_STORAGE_SAS_TOKEN``; a new
        ``DefaultAzureCredential`` (then owned: closed by ``aclose``). ``azurite://`` addresses use
        the development account's well-known key (or ``connection_string``, for the same account).
        """
        address = parse_url(url)
        chosen = choose_credential(
            address,
            url,
            credential=credential,
            connection_string=connection_string,
            account_key=account_key,
            sas_token=sas_token,
        )
        try:
            return cls(address, **chosen, **options)
        except BaseException:
            if chosen.get("owns_credential"):
                close_soon(chosen["credential"])
            raise

    # ------------------------------------------------------------------ helpers

    @property
    def location(self) -> str:
        return self.address.location

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    def _blob(self, name: str) -> str:
        validate_name(name)
        return self.address.prefix + name

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError(f"the Azure backend for {self.location} is closed")

    def _translate(self, exc: BaseException, name: str) -> BackendError:
        return translate(exc, name, container=self.address.container)

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
        except ResourceExistsError as exc:
            if code_of(exc) == "ContainerAlreadyExists":
                return False
            raise self._translate(exc, self.address.container) from exc
        except AzureError as exc:
            raise self._translate(exc, self.address.container) from exc

    # ------------------------------------------------------------------ the contract

    async def put_if_absent(self, name: str, data: bytes | memoryview) -> bool:
        self._check_open()
        blob = self._container.get_blob_client(self._blob(name))
        payload = data if isinstance(data, bytes) else bytes(data)
        # Transactional MD5: the service refuses the upload if the body it got has another digest.
        # The SDK's validate_content computes it on the event loop (about 25 ms per 16 MiB pack,
        # blocking every other request meanwhile): hash in a worker thread instead (hashlib
        # releases the GIL) and send the same Content-MD5 header.
        headers = {"Content-MD5": await asyncio.to_thread(md5_b64, payload)} if self._validate else None
        try:
            await blob.upload_blob(payload, overwrite=False, length=len(payload), headers=headers)
            return True
        except ResourceExistsError as exc:
            if code_of(exc) != "BlobAlreadyExists":  # e.g. ContainerBeingDeleted
                raise self._translate(exc, name) from exc
            # Either it existed before, or our own create succeeded and its response was lost, so the
            # SDK's retry found it: both are "already there" (callers check content-addressed sizes).
            return False
        except AzureError as exc:
            raise self._translate(exc, name) from exc

    async def get(self, name: str, *, offset: int = 0, length: int | None = None) -> bytes:
        self._check_open()
        _check_range(offset, length)
        if length == 0:
            await self._readable(name)
            return b""
        blob = self._container.get_blob_client(self._blob(name))
        try:
            if offset or length is not None:
                # both or neither: the SDK refuses a length without an offset ("bytes=0-" is fine)
                stream = await blob.download_blob(offset=offset, length=length, max_concurrency=1)
            else:
                stream = await blob.download_blob(max_concurrency=1)
            return await body(stream)
        except HttpResponseError as exc:
            if status_of(exc) == 416:  # the range starts at or beyond the end: no bytes, not an error
                await self._readable(name)
                return b""
            raise self._translate(exc, name) from exc
        except AzureError as exc:
            raise self._translate(exc, name) from exc

    async def _readable(self, name: str) -> ObjectInfo:
        """``stat``, raising ``ObjectArchivedError`` like a read would (for reads of no bytes)."""
        info = await self.stat(name)
        if info.tier is Tier.ARCHIVE:
            raise ObjectArchivedError(f"{name} is in the Archive tier: rehydrate it first")
        return info

    async def open_read(
        self, name: str, *, offset: int = 0, length: int | None = None, block_size: int = 4 << 20
    ) -> AsyncIterator[bytes]:
        """Ranged GETs of at most ``block_size`` bytes, one at a time (bounded memory)."""
        self._check_open()
        _check_range(offset, length)
        if block_size <= 0:
            raise UsageError(f"block_size must be > 0, not {block_size}")
        size = (await self._readable(name)).size
        end = size if length is None else min(size, offset + length)
        pos = offset
        while pos < end:
            n = min(block_size, end - pos)
            block = await self.get(name, offset=pos, length=n)
            if not block:
                return
            yield block
            pos += len(block)

    async def stat(self, name: str) -> ObjectInfo:
        self._check_open()
        blob = self._container.get_blob_client(self._blob(name))
        try:
            props = await blob.get_blob_properties()
        except AzureError as exc:
            raise self._translate(exc, name) from exc
        return object_info(name, props)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        self._check_open()
        validate_prefix(prefix)
        strip = len(self.address.prefix)
        try:
            async for props in self._container.list_blobs(name_starts_with=self.address.prefix + prefix):
                yield object_info(props.name[strip:], props)
        except AzureError as exc:
            raise self._translate(exc, prefix or "/") from exc

    async def delete(self, name: str) -> None:
        self._check_open()
        blob = self._container.get_blob_client(self._blob(name))
        try:
            await blob.delete_blob()
        except AzureError as exc:
            if is_gone(exc):
                return  # already gone: deleting is idempotent (a missing container is not)
            raise self._translate(exc, name) from exc

    async def list_incomplete(self) -> AsyncIterator[ObjectInfo]:
        """Nothing: an interrupted ``put_if_absent`` (one Put Blob) leaves no blob, and blocks
        staged but never committed are not blobs (the service discards them after a week)."""
        self._check_open()
        return
        yield  # makes this an async generator that yields nothing

    async def delete_incomplete(self, *, older_than: float) -> Sequence[ObjectInfo]:
        """Nothing to remove (see ``list_incomplete``); ``older_than`` is still validated."""
        self._check_open()
        validate_age(older_than)
        return []

    async def delete_many(self, names: Sequence[str]) -> None:
        """Delete many objects with Blob Batch requests (256 per batch); absent ones are fine."""
        await self._batch(names, None)

    async def set_tier(self, name: str, tier: Tier) -> None:
        self._check_open()
        tier = check_tier(tier)
        info = await self.stat(name)
        if info.tier is Tier.ARCHIVE:
            if tier is Tier.ARCHIVE:
                return
            raise UsageError(f"{name} is archived: use rehydrate() to make it readable")
        blob = self._container.get_blob_client(self._blob(name))
        try:
            await blob.set_standard_blob_tier(TIERS[tier])
        except AzureError as exc:
            raise self._translate(exc, name) from exc

    async def set_tier_many(self, names: Sequence[str], tier: Tier) -> None:
        """Move many objects to ``tier`` with Blob Batch requests (256 per batch).

        Unlike ``set_tier``, this does not stat each object first (that would cost a request per
        object): an Archive object in ``names`` with a warmer ``tier`` starts rehydrating (Azure's
        Set Blob Tier), so callers moving objects *out of* Archive must use ``rehydrate``.
        """
        await self._batch(names, check_tier(tier))

    async def _batch(self, names: Sequence[str], tier: Tier | None) -> None:
        """Delete (``tier`` None) or set the tier of ``names`` (``batch.send_batches``)."""
        self._check_open()
        blobs = [self._blob(n) for n in names]  # every name is checked before anything is sent
        await send_batches(self._container, names, blobs, tier, self._translate)

    async def rehydrate(self, name: str, *, priority: OurPriority = OurPriority.STANDARD) -> None:
        """Start rehydrating an archived blob in place (Set Blob Tier to Hot with a priority)."""
        self._check_open()
        try:
            rehydrate_priority = PRIORITIES[OurPriority(priority)]
        except ValueError:
            raise UsageError(f"unknown rehydrate priority {priority!r}") from None
        info = await self.stat(name)
        if info.tier is not Tier.ARCHIVE or info.rehydrating:
            return
        blob = self._container.get_blob_client(self._blob(name))
        try:
            await blob.set_standard_blob_tier(StandardBlobTier.HOT, rehydrate_priority=rehydrate_priority)
        except AzureError as exc:
            raise self._translate(exc, name) from exc

    async def copy_rehydrate(
        self, src: str, dst: str, *, priority: OurPriority = OurPriority.STANDARD
    ) -> bool:
        """Copy Blob ``src`` to a new ``dst`` in Hot (``rehydrate_priority`` for an archived ``src``,
        which stays archived); False if ``dst`` exists (a copy started earlier goes on)."""
        self._check_open()
        try:
            rehydrate_priority = PRIORITIES[OurPriority(priority)]
        except ValueError:
            raise UsageError(f"unknown rehydrate priority {priority!r}") from None
        source = await self.stat(src)
        try:
            await self.stat(dst)
            return False
        except ObjectNotFoundError:
            pass
        extra: dict[str, Any] = {}
        if source.tier is Tier.ARCHIVE:
            extra["rehydrate_priority"] = rehydrate_priority
        url = self._container.get_blob_client(self._blob(src)).url
        blob = self._container.get_blob_client(self._blob(dst))
        try:
            await blob.start_copy_from_url(url, standard_blob_tier=StandardBlobTier.HOT, **extra)
        except AzureError as exc:
            raise self._translate(exc, dst) from exc
        return True

    async def acquire_lease(self, name: str, *, duration: float) -> AzureLease:
        """A blob lease of 15-60 s (Azure's range); the blob is created empty if needed."""
        self._check_open()
        seconds = lease_seconds(duration)
        blob = self._container.get_blob_client(self._blob(name))
        return await AzureLease.acquire(blob, name, seconds, self.address.container)

    async def aclose(self) -> None:
        """Close the client (its aiohttp session) and a credential we created. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._service.close()
        finally:
            if self._owns_credential and self._credential is not None:
                await self._credential.close()
