"""The Azure Blob Storage backend (``azure.storage.blob.aio``).

Addresses (parsed by :func:`parse_url`):

* ``https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX][?SAS]`` — the Azure-native URL (also with
  another cloud's suffix, ``ACCOUNT.blob.core.chinacloudapi.cn``, or path-style for emulators:
  ``http://127.0.0.1:10000/devstoreaccount1/CONTAINER`` is Azurite); the same as:
* ``az://ACCOUNT/CONTAINER[/PREFIX]`` — ``https://ACCOUNT.blob.core.windows.net``; the first credential
  of: ``credential=``; a SAS in the address; ``connection_string=`` or
  ``AZURE_STORAGE_CONNECTION_STRING`` (for the same account); ``account_key=`` or ``AZURE_STORAGE_KEY``;
  ``sas_token=`` or ``AZURE_STORAGE_SAS_TOKEN``; else ``azure.identity.aio.DefaultAzureCredential``
  (created here, so closed here).
* ``az://ACCOUNT/CONTAINER[/PREFIX]?endpoint=URL`` — the same on another endpoint (sovereign clouds,
  private endpoints, the emulator).
* ``azurite://HOST[:PORT]/CONTAINER[/PREFIX]`` — the Azurite development account (well-known key;
  port 10000 by default).

``location`` gives the address back in the ``az://`` / ``azurite://`` form (without secrets): it reopens
the same store, and names it the same way whichever form opened it (the disk tier is keyed by it).

Retries (docs/architecture.md, "Retries"): the SDK's own policy, shortened, retries single requests
that failed with a transport error, 408 or a 5xx; errors that reach us after it are final for this
layer and are marked ``retried=True``. 429 (throttling), which the SDK never retries, is raised as a
``TransientBackendError`` with ``retried=False`` for the one upper layer (``backend/retry.py``) to
retry around idempotent units of work. 4xx errors are never retried.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import math
import os
import random
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qs, unquote, urlparse

import aiohttp
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    IncompleteReadError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.transport import AioHttpTransport
from azure.storage.blob import RehydratePriority, StandardBlobTier

# ExponentialRetry from .aio: the sync one (``azure.storage.blob.ExponentialRetry``) in an aio pipeline
# never awaits the transport and fails every request with an AttributeError on a coroutine.
from azure.storage.blob.aio import BlobLeaseClient, BlobServiceClient, ContainerClient, ExponentialRetry

from tiervault.backend.base import (
    Capabilities,
    ObjectInfo,
    Tier,
    validate_age,
    validate_name,
    validate_prefix,
)
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
#: real tiers and leases, Blob Batch, a container; ``put_if_absent`` needs ``bytes`` (the SDK's
#: single-shot upload copies a memoryview, so a writer that can hand over ``bytes`` and drop its own
#: buffer should)
CAPABILITIES: Final = Capabilities(
    tiers=True, leases=True, batch=True, create_container=True, remote=True, put_needs_bytes=True
)

_TIERS = {
    Tier.HOT: StandardBlobTier.HOT,
    Tier.COOL: StandardBlobTier.COOL,
    Tier.COLD: StandardBlobTier.COLD,
    Tier.ARCHIVE: StandardBlobTier.ARCHIVE,
}
_PRIORITIES = {OurPriority.STANDARD: RehydratePriority.STANDARD, OurPriority.HIGH: RehydratePriority.HIGH}


_ACCOUNT_RE = re.compile(r"[a-z0-9]{3,24}")
# 3-63 of lowercase letters, digits and single hyphens, starting and ending with a letter or digit
_CONTAINER_RE = re.compile(r"(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*")
AZURITE_DEFAULT_PORT = 10000
_FORMS = (
    "https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX][?SAS], az://ACCOUNT/CONTAINER[/PREFIX]"
    "[?endpoint=URL] or azurite://HOST[:PORT]/CONTAINER[/PREFIX]"
)
#: the endpoint suffix of Azure's public cloud; other clouds' (``core.chinacloudapi.cn``...) are kept
_PUBLIC_SUFFIX = "core.windows.net"


@dataclass(frozen=True, slots=True)
class AzureAddress:
    account: str
    container: str
    prefix: str  # "" or ends with "/"
    endpoint: str  # account URL, e.g. https://acct.blob.core.windows.net
    azurite: bool = False
    #: ``HOST:PORT`` of an ``azurite://`` address
    host: str = ""
    #: the endpoint was given explicitly (``?endpoint=``)
    custom_endpoint: bool = False

    @property
    def location(self) -> str:
        """The address in canonical form: it opens the same store again, and holds no secret."""
        path = f"{self.container}/{self.prefix.rstrip('/')}" if self.prefix else self.container
        if self.azurite:
            return f"azurite://{self.host}/{path}"
        base = f"az://{self.account}/{path}"
        return f"{base}?endpoint={self.endpoint}" if self.custom_endpoint else base


def url_sas(url: str) -> str | None:
    """The SAS token carried in the query of an ``https://`` address, if any (``sig=`` present)."""
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https") and "sig" in parse_qs(parsed.query):
        return parsed.query
    return None


def parse_url(url: str) -> AzureAddress:
    """Parse an Azure address; raises UsageError naming the accepted forms.

    Besides ``az://`` and ``azurite://``, the Azure-native blob URL of a container (or of a prefix in
    it) is accepted as the portal and ``az`` show it: ``https://ACCOUNT.blob.core.windows.net/
    CONTAINER[/PREFIX]``, the same on another cloud's suffix or a private endpoint
    (``ACCOUNT.blob.<suffix>``), and the path-style form of emulators
    (``http://127.0.0.1:10000/devstoreaccount1/CONTAINER`` is Azurite's development account). Its
    query may be a SAS token (see :func:`url_sas`), nothing else.
    """
    parsed = urlparse(url)
    # no SAS, key or password in messages
    netloc = parsed.netloc.rpartition("@")[2]
    shown = f"{parsed.scheme}://{netloc}{parsed.path}" + ("?..." if parsed.query else "")
    parts = [p for p in unquote(parsed.path).split("/") if p]
    if parsed.scheme in ("http", "https"):
        return _parse_native(parsed, parts, shown)
    if parsed.scheme not in ("az", "azurite") or not parsed.netloc or not parts:
        raise UsageError(f"bad Azure address {shown!r}: use {_FORMS}")
    container, prefix = _container_prefix(parts, shown)
    query = parse_qs(parsed.query, keep_blank_values=True)
    if parsed.scheme == "azurite":
        if query or parsed.username or parsed.password:
            raise UsageError(f"bad Azure address {shown!r}: azurite:// takes no options and no user")
        try:
            port = parsed.port or AZURITE_DEFAULT_PORT
        except ValueError as exc:
            raise UsageError(f"bad Azure address {shown!r}: {exc}") from None
        host = f"{parsed.hostname}:{port}"
        endpoint = f"http://{host}/{AZURITE_ACCOUNT}"
        return AzureAddress(AZURITE_ACCOUNT, container, prefix, endpoint, azurite=True, host=host)
    account = _account(parsed.netloc, shown)
    unknown = sorted(set(query) - {"endpoint"})
    if unknown:
        raise UsageError(
            f"bad Azure address {shown!r}: unknown option {unknown[0]!r} (only endpoint= is known)"
        )
    if "endpoint" not in query:
        return AzureAddress(account, container, prefix, f"https://{account}.blob.core.windows.net")
    given = urlparse(query["endpoint"][-1])
    if given.scheme not in ("http", "https") or not given.netloc or given.query or given.fragment:
        raise UsageError(f"bad Azure address {shown!r}: endpoint= must be an http(s) URL without a query")
    endpoint = f"{given.scheme}://{given.netloc}{given.path}".rstrip("/")
    return AzureAddress(account, container, prefix, endpoint, custom_endpoint=True)


def _container_prefix(parts: list[str], shown: str) -> tuple[str, str]:
    container, prefix_parts = parts[0], parts[1:]
    if not _CONTAINER_RE.fullmatch(container):
        raise UsageError(
            f"bad Azure address {shown!r}: container name {container!r} must be 3-63 lowercase letters, "
            "digits and single hyphens, starting and ending with a letter or digit"
        )
    prefix = "/".join(prefix_parts) + "/" if prefix_parts else ""
    if prefix:
        validate_prefix(prefix)
    return container, prefix


def _account(name: str, shown: str) -> str:
    if not _ACCOUNT_RE.fullmatch(name):
        raise UsageError(
            f"bad Azure address {shown!r}: storage account name {name!r} must be 3-24 lowercase "
            "letters and digits"
        )
    return name


def _parse_native(parsed: Any, parts: list[str], shown: str) -> AzureAddress:
    """``http(s)://ACCOUNT.blob.SUFFIX/CONTAINER[/PREFIX]`` or path-style ``http(s)://HOST/ACCOUNT/...``."""
    if parsed.query and url_sas(parsed.geturl()) is None:
        raise UsageError(f"bad Azure address {shown!r}: the query of a blob URL may only be a SAS token")
    if parsed.username or parsed.password or parsed.fragment or not parsed.hostname:
        raise UsageError(f"bad Azure address {shown!r}: use {_FORMS}")
    try:
        parsed.port  # noqa: B018 - validates it
    except ValueError as exc:
        raise UsageError(f"bad Azure address {shown!r}: {exc}") from None
    host = parsed.netloc.lower()
    labels = host.split(":")[0].split(".")
    if len(labels) >= 3 and labels[1] == "blob":  # virtual-host style: the account is the first label
        account = _account(labels[0], shown)
        if not parts:
            raise UsageError(f"bad Azure address {shown!r}: name a container (use {_FORMS})")
        container, prefix = _container_prefix(parts, shown)
        endpoint = f"{parsed.scheme}://{host}"
        public = parsed.scheme == "https" and host == f"{account}.blob.{_PUBLIC_SUFFIX}"
        return AzureAddress(account, container, prefix, endpoint, custom_endpoint=not public)
    if len(parts) < 2:  # path style: /ACCOUNT/CONTAINER[/PREFIX]
        raise UsageError(f"bad Azure address {shown!r}: use {_FORMS}")
    account = parts[0]
    container, prefix = _container_prefix(parts[1:], shown)
    if account == AZURITE_ACCOUNT and parsed.scheme == "http":
        return AzureAddress(account, container, prefix, f"http://{host}/{account}", azurite=True, host=host)
    _account(account, shown)
    return AzureAddress(
        account, container, prefix, f"{parsed.scheme}://{host}/{account}", custom_endpoint=True
    )


def _check_range(offset: int, length: int | None) -> None:
    if offset < 0 or (length is not None and length < 0):
        raise UsageError(f"offset and length must not be negative (offset={offset}, length={length})")


def _status(exc: HttpResponseError) -> int:
    return int(exc.status_code or 0)


def _code(exc: BaseException) -> str:
    """Azure's error code (``BlobNotFound``...): the SDK's attribute (a str enum), else the header."""
    code = getattr(exc, "error_code", None)
    code = getattr(code, "value", code)
    if not code and isinstance(exc, HttpResponseError) and exc.response is not None:
        code = getattr(exc.response, "headers", {}).get("x-ms-error-code")
    return str(code or "")


#: a lease is held by someone else, or ours is gone (released, broken, lapsed and taken)
_LEASE_CODES = frozenset(
    {
        "LeaseAlreadyPresent",
        "LeaseIdMismatchWithLeaseOperation",
        "LeaseIdMismatchWithBlobOperation",
        "LeaseNotPresentWithLeaseOperation",
        "LeaseIsBrokenAndCannotBeRenewed",
        "LeaseIsBreakingAndCannotBeAcquired",
        "LeaseIsBreakingAndCannotBeChanged",
        "LeaseLost",
        "LeaseIdMissing",
    }
)
_ARCHIVED_CODES = frozenset({"BlobArchived", "BlobBeingRehydrated"})


def translate(exc: BaseException, name: str, *, container: str | None = None) -> BackendError:
    """Azure's exceptions become tiervault's, once, here (always used with ``raise ... from exc``).

    ``name`` is the object (or prefix) the operation was about; ``container`` names the container in
    the message when Azure says it does not exist.
    """
    code = _code(exc)
    status = _status(exc) if isinstance(exc, HttpResponseError) else 0
    answer = f"{status} {code}".strip() if status else (code or type(exc).__name__)
    if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
        return PermissionDeniedError(
            f"{name}: access denied by Azure Storage ({answer}): check the key, SAS (expiry, "
            "permissions) or the identity's role on the account"
        )
    if code == "ContainerNotFound":
        which = f"container {container!r}" if container else "the container"
        return ObjectNotFoundError(f"{name}: {which} does not exist (ContainerNotFound)")
    if isinstance(exc, ResourceNotFoundError) or status == 404:
        return ObjectNotFoundError(f"{name}: no such object ({answer})")
    if code in _ARCHIVED_CODES:
        return ObjectArchivedError(f"{name} is in the Archive tier ({code}): rehydrate it first")
    if code in _LEASE_CODES:
        return LeaseHeldError(f"{name}: leased by another holder, or our lease is gone ({code})")
    if isinstance(exc, IncompleteReadError):  # a download cut short, after the SDK's own retries
        return TransientBackendError(f"{name}: download from Azure Storage cut short: {exc}", retried=True)
    if isinstance(exc, HttpResponseError):
        if status == 429:
            return TransientBackendError(f"{name}: throttled by Azure Storage ({answer})", retried=False)
        if status == 408 or (status >= 500 and status not in (501, 505)):
            return TransientBackendError(f"{name}: Azure Storage answered {answer}", retried=True)
        return BackendError(f"{name}: Azure Storage answered {answer}")
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return TransientBackendError(f"{name}: cannot reach Azure Storage: {exc}", retried=True)
    return BackendError(f"{name}: {type(exc).__name__}: {exc}")


def _tier_of(props: Any) -> Tier:
    raw = str(props.blob_tier or "Hot").lower()
    return Tier(raw) if raw in {t.value for t in Tier} else Tier.HOT


class AzureLease:
    """A blob lease. Azure lets a lease lapse by itself 15-60 s after its last renewal."""

    def __init__(self, name: str, client: BlobLeaseClient, duration: int, container: str) -> None:
        self._name, self._client, self.duration, self._container = name, client, duration, container
        # kept apart from the SDK client, which forgets the id once the lease is released
        self._lease_id = str(client.id)
        self._released = False

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
            log.debug("lease on %s already gone: %s", self._name, err)
        self._released = True


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
        self._retry_policy = _Backoff(
            initial_backoff=retry_backoff,  # type: ignore[arg-type]
            increment_base=2,
            retry_total=retry_total,
            # the SDK caps each kind at 3 by default whatever retry_total says: one budget for all
            retry_connect=retry_total,
            retry_read=retry_total,
            retry_status=retry_total,
            random_jitter_range=retry_backoff,  # type: ignore[arg-type]
        )
        kwargs: dict[str, Any] = {
            # one layer per failure: the SDK's policy, shortened (its default sleeps 15 s, 18 s, 24 s)
            "retry_policy": self._retry_policy,
            "max_single_put_size": 256 << 20,  # a pack goes up as one Put Blob
            "max_single_get_size": 256 << 20,
            # and chunks() hands it over in one piece (see _body)
            "max_chunk_get_size": 256 << 20,
            "connection_timeout": 20,
            "read_timeout": 120,
        }
        # the aiohttp session is made on first use, inside the event loop, and closed with the client
        self._transport = kwargs["transport"] = _PooledTransport(max_connections)
        if api_version or address.azurite:
            kwargs["api_version"] = api_version or AZURITE_API_VERSION
        self._service: BlobServiceClient
        if connection_string:
            try:
                self._service = BlobServiceClient.from_connection_string(connection_string, **kwargs)
            except ValueError as exc:  # the SDK's word for a malformed connection string
                raise UsageError(f"bad Azure Storage connection string: {exc}") from None
            named = _connection_account(connection_string)
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
        in_url = url_sas(url)  # a SAS in the address names exactly this store
        if address.azurite:
            conn = (
                f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
                f"BlobEndpoint={address.endpoint};"
            )
            return cls(address, connection_string=connection_string or conn, **options)
        if credential is not None:
            return cls(address, credential=credential, **options)
        if in_url:
            return cls(address, credential=in_url, **options)
        connection_string = connection_string or os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
        if connection_string:
            return cls(address, connection_string=connection_string, **options)
        account_key = account_key or os.environ.get("AZURE_STORAGE_KEY")
        if account_key:
            key = {"account_name": address.account, "account_key": account_key}
            return cls(address, credential=key, **options)
        sas_token = sas_token or os.environ.get("AZURE_STORAGE_SAS_TOKEN")
        if sas_token:
            return cls(address, credential=sas_token.lstrip("?"), **options)
        from azure.identity.aio import DefaultAzureCredential  # lazily: slow to import

        owned = DefaultAzureCredential()
        try:
            return cls(address, credential=owned, owns_credential=True, **options)
        except BaseException:
            _close_soon(owned)
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
            if _code(exc) == "ContainerAlreadyExists":
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
        headers = {"Content-MD5": await asyncio.to_thread(_md5_b64, payload)} if self._validate else None
        try:
            await blob.upload_blob(payload, overwrite=False, length=len(payload), headers=headers)
            return True
        except ResourceExistsError as exc:
            if _code(exc) != "BlobAlreadyExists":  # e.g. ContainerBeingDeleted
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
            return await _body(stream)
        except HttpResponseError as exc:
            if _status(exc) == 416:  # the range starts at or beyond the end: no bytes, not an error
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
        validate_prefix(prefix)
        strip = len(self.address.prefix)
        try:
            async for props in self._container.list_blobs(name_starts_with=self.address.prefix + prefix):
                yield self._info(props.name[strip:], props)
        except AzureError as exc:
            raise self._translate(exc, prefix or "/") from exc

    async def delete(self, name: str) -> None:
        self._check_open()
        blob = self._container.get_blob_client(self._blob(name))
        try:
            await blob.delete_blob()
        except AzureError as exc:
            if _gone(exc):
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
        tier = _tier(tier)
        info = await self.stat(name)
        if info.tier is Tier.ARCHIVE:
            if tier is Tier.ARCHIVE:
                return
            raise UsageError(f"{name} is archived: use rehydrate() to make it readable")
        blob = self._container.get_blob_client(self._blob(name))
        try:
            await blob.set_standard_blob_tier(_TIERS[tier])
        except AzureError as exc:
            raise self._translate(exc, name) from exc

    async def set_tier_many(self, names: Sequence[str], tier: Tier) -> None:
        """Move many objects to ``tier`` with Blob Batch requests (256 per batch).

        Unlike ``set_tier``, this does not stat each object first (that would cost a request per
        object): an Archive object in ``names`` with a warmer ``tier`` starts rehydrating (Azure's
        Set Blob Tier), so callers moving objects *out of* Archive must use ``rehydrate``.
        """
        await self._batch(names, _tier(tier))

    async def _batch(self, names: Sequence[str], tier: Tier | None) -> None:
        """Delete (``tier`` None) or set the tier of ``names``, 256 per Blob Batch request. Every batch
        is sent; then the first failed sub-request is raised (translated), the others are logged."""
        self._check_open()
        blobs = [self._blob(n) for n in names]  # every name is checked before anything is sent
        failures: list[BackendError] = []
        for i in range(0, len(blobs), BATCH_LIMIT):
            chunk_names = names[i : i + BATCH_LIMIT]
            chunk = blobs[i : i + BATCH_LIMIT]
            try:
                if tier is None:
                    responses = await self._container.delete_blobs(*chunk, raise_on_any_failure=False)
                else:
                    responses = await self._container.set_standard_blob_tier_blobs(
                        _TIERS[tier], *chunk, raise_on_any_failure=False
                    )
                answers = [r async for r in responses]
            except AzureError as exc:
                raise self._translate(exc, chunk_names[0]) from exc
            if len(answers) != len(chunk):
                raise BackendError(
                    f"Blob Batch answered {len(answers)} of {len(chunk)} sub-requests (from {chunk_names[0]})"
                )
            for name, answer in zip(chunk_names, answers, strict=True):
                if answer.status_code in (200, 202):
                    continue
                sub = _sub_error(answer)
                if tier is None and _gone(sub):
                    continue  # deleting an absent object is fine (a missing container is not)
                err = self._translate(sub, name)
                log.warning("batch %s failed for %s: %s", "delete" if tier is None else "set-tier", name, err)
                failures.append(err)
        if failures:
            raise failures[0]

    async def rehydrate(self, name: str, *, priority: OurPriority = OurPriority.STANDARD) -> None:
        """Start rehydrating an archived blob in place (Set Blob Tier to Hot with a priority)."""
        self._check_open()
        try:
            rehydrate_priority = _PRIORITIES[OurPriority(priority)]
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

    async def acquire_lease(self, name: str, *, duration: float) -> AzureLease:
        """A blob lease of 15-60 s (Azure's range); the blob is created empty if needed."""
        self._check_open()
        # check the number before rounding it: round(nan) is a ValueError, round(inf) an OverflowError
        if not (math.isfinite(duration) and 15 <= round(duration) <= 60):
            raise UsageError(f"Azure leases last 15 to 60 seconds, not {duration!r}")
        seconds = round(duration)
        blob = self._container.get_blob_client(self._blob(name))
        try:
            await blob.upload_blob(b"", overwrite=False)
        except ResourceExistsError as exc:
            if _code(exc) != "BlobAlreadyExists":
                raise self._translate(exc, name) from exc
        except AzureError as exc:
            err = self._translate(exc, name)
            # creating a blob that exists and is leased is refused as a lease conflict: fine here
            if not isinstance(err, LeaseHeldError):
                raise err from exc
        client = BlobLeaseClient(blob)
        try:
            await client.acquire(lease_duration=seconds)
        except AzureError as exc:
            raise self._translate(exc, name) from exc
        return AzureLease(name, client, seconds, self.address.container)

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


def _connection_account(connection_string: str) -> str | None:
    """The ``AccountName=`` of a connection string (None for one with only an endpoint and a SAS)."""
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == "accountname":
            return value.strip()
    return None


def _gone(exc: AzureError) -> bool:
    """A 404 about the object itself (``BlobNotFound``), not about its container."""
    status = _status(exc) if isinstance(exc, HttpResponseError) else 0
    return status == 404 and _code(exc) != "ContainerNotFound"


def _tier(tier: Tier) -> Tier:
    try:
        return Tier(tier)
    except ValueError:
        raise UsageError(f"unknown tier {tier!r}") from None


def _sub_error(answer: Any) -> HttpResponseError:
    """A failed Blob Batch sub-response as the SDK would raise it (for ``translate``)."""
    error = HttpResponseError(message=f"Blob Batch sub-request failed: {answer.reason}", response=answer)
    error.error_code = answer.headers.get("x-ms-error-code")  # type: ignore[attr-defined]
    return error


#: closes of credentials scheduled by ``_close_soon``, kept alive until done
_PENDING: set[asyncio.Task[Any]] = set()


def _close_soon(credential: Any) -> None:
    """Close a credential from synchronous code: on the running loop if any, else at once."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(credential.close())
        return
    task = loop.create_task(credential.close())
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)


class _Backoff(ExponentialRetry):
    """The SDK's exponential policy, sleeping ``initial_backoff`` before the first retry and
    ``initial_backoff + increment_base ** (n - 1)`` before the n-th (0.5, 2.5, 4.5, 8.5 s by
    default: docs/azure.md), each give or take ``random_jitter_range``. The SDK's own formula counts
    from the first retry already, so it never waits just ``initial_backoff`` (it would sleep 2.5,
    4.5, 8.5, 16.5 s, and 2 s before a first retry even with ``initial_backoff=0``)."""

    def get_backoff_time(self, settings: dict[str, Any]) -> float:
        n = int(settings["count"])  # this retry's number: 1 for the first
        backoff = self.initial_backoff + (self.increment_base ** (n - 1) if n > 1 else 0)
        jitter = min(self.random_jitter_range, backoff)
        return random.uniform(backoff - jitter, backoff + jitter)


#: bytes per read of a response body (azure-core's connection_data_block_size; its default is 4 KiB)
DOWNLOAD_BLOCK = 1 << 20


class _PooledTransport(AioHttpTransport):  # type: ignore[misc]  # azure-core exports it lazily
    """The SDK's aiohttp transport, with a connection pool of ``limit`` connections (the SDK's own
    has 100): it bounds the requests in flight. Its session is made on first use, inside the event
    loop (aiohttp refuses to make one outside), with the SDK's own settings, and closed with the
    client."""

    def __init__(self, limit: int) -> None:
        # the SDK reads a response body DOWNLOAD_BLOCK bytes at a time, each through an async
        # generator on the event loop: at its default of 4 KiB, a restore from Azurite spent more
        # CPU on the event loop than on decrypting and writing (docs/performance.md)
        super().__init__(connection_data_block_size=DOWNLOAD_BLOCK)
        self._limit = limit

    async def open(self) -> None:
        if getattr(self, "session", None) is None and not self._has_been_opened:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit, limit_per_host=self._limit),
                trust_env=self._use_env_settings,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
            )
        await super().open()


def _md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode("ascii")


async def _body(stream: Any) -> bytes:
    """The bytes of a download. ``readall()`` copies the body of the first GET two or three more times
    (slice, BytesIO, getvalue); ``chunks()`` hands it over as received, in one piece when it is no
    larger than ``max_chunk_get_size``, which covers every range tiervault asks for."""
    parts: list[bytes] = [part async for part in stream.chunks()]
    return parts[0] if len(parts) == 1 else b"".join(parts)
