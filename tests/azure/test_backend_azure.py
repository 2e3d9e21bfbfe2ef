"""``tiervault.backend.azure`` beyond the shared contract (``tests/backend/test_conformance.py`` runs
that on Azurite): addresses, error translation, Blob Batch, containers, credentials, leases on real
time, and the lost-response hazard, against Azurite and the real SDK."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import aiohttp
import pytest
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
from azure.storage.blob import StandardBlobTier, StorageErrorCode
from azure.storage.blob.aio import BlobLeaseClient, ContainerClient

import tiervault.backend.azure as azure_mod
from tests.azure.conftest import NO_RETRIES, azurite_url, blob_names, unclosed_sessions
from tests.support.azurite import ACCOUNT_KEY, Azurite
from tiervault.backend.azure import AzureAddress, AzureBackend, parse_url, translate
from tiervault.backend.base import Tier
from tiervault.errors import (
    BackendError,
    LeaseHeldError,
    ObjectArchivedError,
    ObjectNotFoundError,
    PermissionDeniedError,
    TiervaultError,
    TransientBackendError,
    UsageError,
)

AZURITE_PORT_URL = "http://127.0.0.1:{port}/devstoreaccount1"


# ------------------------------------------------------------------------------------ addresses


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "az://myaccount/backups",
            AzureAddress("myaccount", "backups", "", "https://myaccount.blob.core.windows.net"),
        ),
        (
            "az://myaccount/backups/app1/",
            AzureAddress("myaccount", "backups", "app1/", "https://myaccount.blob.core.windows.net"),
        ),
        (
            "az://myaccount/backups/some/deep/prefix",
            AzureAddress(
                "myaccount", "backups", "some/deep/prefix/", "https://myaccount.blob.core.windows.net"
            ),
        ),
        (
            "az://myaccount/backups/pre%20fix?endpoint=https://myaccount.blob.core.chinacloudapi.cn/",
            AzureAddress(
                "myaccount",
                "backups",
                "pre fix/",
                "https://myaccount.blob.core.chinacloudapi.cn",
                custom_endpoint=True,
            ),
        ),
        (
            "azurite://127.0.0.1:10123/my-container/p",
            AzureAddress(
                "devstoreaccount1",
                "my-container",
                "p/",
                "http://127.0.0.1:10123/devstoreaccount1",
                azurite=True,
                host="127.0.0.1:10123",
            ),
        ),
        (
            "azurite://localhost/c00",  # Azurite's default blob port
            AzureAddress(
                "devstoreaccount1",
                "c00",
                "",
                "http://localhost:10000/devstoreaccount1",
                azurite=True,
                host="localhost:10000",
            ),
        ),
    ],
)
def test_parse_url(url: str, expected: AzureAddress) -> None:
    address = parse_url(url)
    assert address == expected
    assert parse_url(address.location) == address  # the location is an address of the same store


def test_locations() -> None:
    assert parse_url("az://acct/cont").location == "az://acct/cont"
    assert parse_url("az://acct/cont/a/b/").location == "az://acct/cont/a/b"
    assert parse_url("azurite://127.0.0.1:1234/cont/p").location == "azurite://127.0.0.1:1234/cont/p"
    assert (
        parse_url("az://acct/cont?endpoint=http://127.0.0.1:9/devstoreaccount1").location
        == "az://acct/cont?endpoint=http://127.0.0.1:9/devstoreaccount1"
    )


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("s3://bucket/x", "az://ACCOUNT/CONTAINER"),
        ("az://account", "az://ACCOUNT/CONTAINER"),
        ("az://account/", "az://ACCOUNT/CONTAINER"),
        ("az:///container", "az://ACCOUNT/CONTAINER"),
        ("az://account/My_Container", "container name 'My_Container'"),
        ("az://account/ab", "container name 'ab'"),
        ("az://account/a--b", "container name"),
        ("az://account/-abc", "container name"),
        ("az://MyAccount/backups", "storage account name 'MyAccount'"),
        ("az://a/backups", "storage account name"),
        ("az://account/backups/../escape", "'..'"),
        ("az://account/backups/a/./b", "'.'"),
        ("az://account/backups?sas=secret", "unknown option 'sas'"),
        ("az://account/backups?endpoint=ftp://host", "endpoint="),
        ("az://account/backups?endpoint=https://host/?sv=secret", "endpoint="),
        ("azurite://127.0.0.1:99999/backups", "out of range"),
        ("azurite://127.0.0.1:10000/backups?endpoint=http://x", "no options"),
    ],
)
def test_parse_url_errors(url: str, match: str) -> None:
    with pytest.raises(UsageError, match=match) as info:
        parse_url(url)
    assert "secret" not in str(info.value)  # an address's query may hold a SAS: never echoed


# ------------------------------------------------------------------------------------ translate


class _Response:
    """The parts of an HTTP response that azure-core's exceptions read."""

    def __init__(self, status: int, code: str | None) -> None:
        self.status_code = status
        self.reason = "Reason"
        self.headers = {"x-ms-error-code": code} if code else {}
        self.content_type = "application/xml"

    def text(self, encoding: str | None = None) -> str:
        return ""

    def body(self) -> bytes:
        return b""


def _storage_error(
    cls: type[HttpResponseError], status: int, code: Any, *, attribute: bool = True
) -> AzureError:
    """An error as ``azure.storage.blob`` raises it: the response, and ``error_code`` set from it."""
    error = cls(message=f"{status} {code}", response=_Response(status, str(getattr(code, "value", code))))
    error.error_code = code if attribute else None  # type: ignore[attr-defined]
    return error


E = _storage_error
HRE, RNF = HttpResponseError, ResourceNotFoundError


@pytest.mark.parametrize(
    ("error", "expected", "retried", "words"),
    [
        (E(ClientAuthenticationError, 403, "AuthenticationFailed"), PermissionDeniedError, None,
         ["access denied", "AuthenticationFailed"]),
        (E(HRE, 403, "AuthorizationPermissionMismatch"), PermissionDeniedError, None,
         ["AuthorizationPermissionMismatch"]),
        (E(HRE, 401, "NoAuthenticationInformation"), PermissionDeniedError, None, []),
        (E(RNF, 404, "ContainerNotFound"), ObjectNotFoundError, None,
         ["container 'backups' does not exist"]),
        (E(RNF, 404, StorageErrorCode.CONTAINER_NOT_FOUND), ObjectNotFoundError,
         None, ["container 'backups'"]),
        (E(RNF, 404, "BlobNotFound"), ObjectNotFoundError, None, ["no such object"]),
        (E(HRE, 409, "BlobArchived"), ObjectArchivedError, None, ["rehydrate"]),
        (E(HRE, 409, StorageErrorCode.BLOB_ARCHIVED), ObjectArchivedError, None, []),
        (E(HRE, 409, "BlobArchived", attribute=False), ObjectArchivedError, None, []),
        (E(HRE, 409, "LeaseAlreadyPresent"), LeaseHeldError, None, []),
        (E(HRE, 412, "LeaseIdMissing"), LeaseHeldError, None, []),
        (E(HRE, 429, "TooManyRequests"), TransientBackendError, False, ["429"]),
        (E(HRE, 503, "ServerBusy"), TransientBackendError, True, ["503 ServerBusy"]),
        (E(HRE, 500, "InternalError"), TransientBackendError, True, []),
        (E(HRE, 408, "OperationTimedOut"), TransientBackendError, True, []),
        (E(HRE, 501, "NotImplemented"), BackendError, None, ["501"]),
        (E(HRE, 400, "InvalidHeaderValue"), BackendError, None, ["400"]),
        (E(ResourceExistsError, 409, "ContainerBeingDeleted"), BackendError, None, []),
        (ServiceRequestError("connection refused"), TransientBackendError, True, ["cannot reach"]),
        (ServiceResponseError("connection reset"), TransientBackendError, True, ["cannot reach"]),
        (IncompleteReadError("cut short"), TransientBackendError, True, ["cut short"]),
        (AzureError("something else"), BackendError, None, ["something else"]),
    ],
)  # fmt: skip
def test_translate(
    error: AzureError, expected: type[BackendError], retried: bool | None, words: list[str]
) -> None:
    translated = translate(error, "data/ab/pack", container="backups")
    assert type(translated) is expected
    assert "data/ab/pack" in str(translated)
    for word in words:
        assert word in str(translated)
    if retried is not None:
        assert isinstance(translated, TransientBackendError)
        assert translated.retried is retried


# ------------------------------------------------------------------------------------ on Azurite


async def test_reading_an_archived_blob(backend: AzureBackend, sdk: ContainerClient) -> None:
    await backend.put_if_absent("data/p", b"archived bytes")
    await sdk.get_blob_client("data/p").set_standard_blob_tier(StandardBlobTier.ARCHIVE)
    reads: list[Callable[[], Awaitable[object]]] = [
        lambda: backend.get("data/p"),
        lambda: backend.get("data/p", offset=3, length=2),
        lambda: backend.get("data/p", length=0),
        lambda: anext(backend.open_read("data/p")),
    ]
    for read in reads:
        with pytest.raises(ObjectArchivedError, match="data/p"):
            await read()
    with pytest.raises(ObjectArchivedError) as info:
        await backend.get("data/p")
    cause = info.value.__cause__
    assert isinstance(cause, HttpResponseError) and cause.status_code == 409  # Azure's own answer
    assert (await backend.stat("data/p")).tier is Tier.ARCHIVE


async def test_a_missing_container_is_named(azurite: Azurite, new_container: str) -> None:
    async with AzureBackend.from_url(azurite_url(azurite, new_container), **NO_RETRIES) as b:
        checks: list[Callable[[], Awaitable[object]]] = [
            lambda: b.get("config"),
            lambda: b.stat("config"),
            lambda: b.put_if_absent("config", b"x"),
            lambda: b.delete("config"),
            lambda: b.delete_many(["a", "b"]),
            lambda: b.set_tier_many(["a"], Tier.COOL),
            lambda: b.acquire_lease("locks/l", duration=15),
            lambda: anext(b.list("snapshots/")),
        ]
        for check in checks:
            with pytest.raises(ObjectNotFoundError, match=f"container '{new_container}' does not exist"):
                await check()


async def test_create_container_is_idempotent(azurite: Azurite, new_container: str) -> None:
    async with AzureBackend.from_url(azurite_url(azurite, new_container), **NO_RETRIES) as b:
        assert await b.create_container() is True
        assert await b.create_container() is False
        assert await b.put_if_absent("config", b"c") is True
        assert await b.create_container() is False
        assert await b.get("config") == b"c"  # an existing container is left as it is


async def test_batches_of_more_than_256(
    backend: AzureBackend, sdk: ContainerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"data/{i % 7:02x}/p{i:03d}" for i in range(300)]
    assert all(await asyncio.gather(*(backend.put_if_absent(n, n.encode()) for n in names)))
    await backend.put_if_absent("keep", b"k")
    sent: list[tuple[str, int]] = []

    def spy(method: str) -> None:
        real = getattr(backend._container, method)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            blobs = args[1:] if method == "set_standard_blob_tier_blobs" else args  # after the tier
            sent.append((method, len(blobs)))
            return await real(*args, **kwargs)

        monkeypatch.setattr(backend._container, method, counted)

    spy("set_standard_blob_tier_blobs")
    spy("delete_blobs")

    await backend.set_tier_many(names, Tier.COOL)
    assert sent == [("set_standard_blob_tier_blobs", 256), ("set_standard_blob_tier_blobs", 44)]
    tiers = {b.name: b.blob_tier async for b in sdk.list_blobs()}
    assert {tiers[n] for n in names} == {"Cool"} and tiers["keep"] == "Hot"

    # a missing object in the second batch: every batch is still sent, then the failure is raised
    sent.clear()
    with pytest.raises(ObjectNotFoundError, match="data/ff/missing"):
        await backend.set_tier_many([*names[:280], "data/ff/missing", *names[280:]], Tier.ARCHIVE)
    assert [n for _, n in sent] == [256, 45]
    tiers = {b.name: b.blob_tier async for b in sdk.list_blobs()}
    assert {tiers[n] for n in names} == {"Archive"}

    sent.clear()
    await backend.delete_many([*names, "data/ff/never-existed"])  # absent ones are fine
    assert sent == [("delete_blobs", 256), ("delete_blobs", 45)]
    assert await blob_names(sdk) == ["keep"]
    await backend.delete_many(names)  # again: nothing left to delete, no error
    assert await blob_names(sdk) == ["keep"]


async def test_put_if_absent_when_the_blob_is_already_there(
    backend: AzureBackend, sdk: ContainerClient
) -> None:
    """What a retry after a lost response finds: the blob exists. The answer is False, and nothing
    is overwritten (callers of content-addressed names check the size)."""
    await sdk.upload_blob("index/ab12", b"the first upload")
    assert await backend.put_if_absent("index/ab12", b"the first upload") is False
    assert await backend.put_if_absent("index/ab12", b"something else") is False
    assert await (await sdk.download_blob("index/ab12")).readall() == b"the first upload"


async def test_put_if_absent_with_the_sdk_retrying_a_lost_response(
    container_url: str, sdk: ContainerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real path: Azure stores the blob, the response is lost, the SDK's retry policy sends the
    Put Blob again and gets 409: the object is there, and put_if_absent says so (False)."""
    real_send = azure_mod._PooledTransport.send
    lost: list[int] = []

    async def lossy(self: Any, request: Any, **kwargs: Any) -> Any:
        response = await real_send(self, request, **kwargs)
        if request.method == "PUT" and request.url.split("?")[0].endswith("/index/lost") and not lost:
            lost.append(response.status_code)
            raise ServiceResponseError("connection reset by peer (the response never arrived)")
        return response

    monkeypatch.setattr(azure_mod._PooledTransport, "send", lossy)
    async with AzureBackend.from_url(container_url, retry_total=1, retry_backoff=0) as backend:
        assert await backend.put_if_absent("index/lost", b"payload") is False
        assert lost == [201]  # the first attempt did create it
        assert await backend.put_if_absent("index/other", b"fine") is True
    assert await (await sdk.download_blob("index/lost")).readall() == b"payload"


async def test_an_upload_damaged_in_flight_is_refused_by_its_md5(
    container_url: str, sdk: ContainerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """put_if_absent sends a Content-MD5 header (hashed off the event loop): a body changed after
    hashing is refused by the service and nothing is stored; an intact one keeps that MD5."""
    real_send = azure_mod._PooledTransport.send

    async def damaging(self: Any, request: Any, **kwargs: Any) -> Any:
        if request.method == "PUT" and request.url.split("?")[0].endswith("/data/damaged"):
            body = bytearray(request.data)
            body[100] ^= 0x01  # one bit, same length
            request.data = bytes(body)
        return await real_send(self, request, **kwargs)

    monkeypatch.setattr(azure_mod._PooledTransport, "send", damaging)
    payload = bytes(range(256)) * 64
    async with AzureBackend.from_url(container_url, retry_total=0) as backend:
        with pytest.raises(TiervaultError):
            await backend.put_if_absent("data/damaged", payload)
        assert await backend.put_if_absent("data/intact", payload) is True
    assert "data/damaged" not in await blob_names(sdk)
    props = await sdk.get_blob_client("data/intact").get_blob_properties()
    assert bytes(props.content_settings.content_md5) == hashlib.md5(payload).digest()


@pytest.mark.usefixtures("no_unclosed_sessions")
async def test_a_prefix_keeps_objects_under_it(azurite: Azurite, azure_container: tuple[str, str]) -> None:
    _, container = azure_container
    url = azurite_url(azurite, container, "some/prefix")
    async with (
        AzureBackend.from_url(url, **NO_RETRIES) as b,
        ContainerClient.from_connection_string(azurite.connection_string, container, **NO_RETRIES) as sdk,
    ):
        assert b.location == url
        for name in ("some/prefixed", "other/x", "some/prefix"):  # outside the prefix
            await sdk.upload_blob(name, b"outside")
        await b.put_if_absent("config", b"c")
        await b.put_if_absent("data/ab/p1", b"p1")
        await b.put_if_absent("data/ab/p2", b"p2")
        lease = await b.acquire_lease("locks/prune", duration=15)
        assert await blob_names(sdk, "some/prefix/") == [
            "some/prefix/config",
            "some/prefix/data/ab/p1",
            "some/prefix/data/ab/p2",
            "some/prefix/locks/prune",
        ]
        assert sorted([i.name async for i in b.list()]) == [
            "config",
            "data/ab/p1",
            "data/ab/p2",
            "locks/prune",
        ]
        assert sorted([i.name async for i in b.list("data/")]) == ["data/ab/p1", "data/ab/p2"]
        await b.set_tier_many(["data/ab/p1"], Tier.COOL)
        assert (await sdk.get_blob_client("some/prefix/data/ab/p1").get_blob_properties()).blob_tier == "Cool"
        await b.delete_many(["data/ab/p1", "data/ab/p2"])
        await b.delete("config")
        await lease.release()
        assert await blob_names(sdk) == ["other/x", "some/prefix", "some/prefix/locks/prune", "some/prefixed"]


@pytest.mark.usefixtures("no_unclosed_sessions")
async def test_the_az_form_with_an_endpoint_and_an_account_key(
    azurite: Azurite, azure_container: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_SAS_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_KEY", ACCOUNT_KEY)
    endpoint = AZURITE_PORT_URL.format(port=azurite.port)
    url = f"az://devstoreaccount1/{azure_container[1]}/p?endpoint={endpoint}"
    async with AzureBackend.from_url(url, **NO_RETRIES) as b:
        assert b.location == url
        assert await b.put_if_absent("config", b"via the account key") is True
        assert await b.get("config") == b"via the account key"
    wrong = "A" * 86 + "=="
    async with AzureBackend.from_url(url, account_key=wrong, **NO_RETRIES) as b:
        with pytest.raises(PermissionDeniedError, match="access denied"):
            await b.get("config")
        with pytest.raises(PermissionDeniedError):
            await b.put_if_absent("other", b"x")


@pytest.mark.usefixtures("no_unclosed_sessions")
async def test_a_connection_string_for_another_account_is_refused(
    azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)  # devstoreaccount1
    with pytest.raises(UsageError, match=r"'devstoreaccount1'.*'otheraccount'"):
        AzureBackend.from_url("az://otheraccount/backups")
    with pytest.raises(UsageError, match="bad Azure Storage connection string"):
        AzureBackend.from_url("az://otheraccount/backups", connection_string="nonsense")
    # an endpoint (a custom domain) and a SAS, no account name: nothing to compare
    custom = "BlobEndpoint=https://backups.example.com/;SharedAccessSignature=sv=2026-06-06&sig=x"
    backend = AzureBackend.from_url("az://otheraccount/backups", connection_string=custom)
    assert backend._service.primary_hostname == "backups.example.com"
    await backend.aclose()


# ------------------------------------------------------------------------------------ credentials


class FakeCredential:
    """An async token credential that records being closed (and is never asked for a token here)."""

    instances: ClassVar[list[FakeCredential]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.closed = 0
        FakeCredential.instances.append(self)

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        raise AssertionError("no request is made in this test")

    async def close(self) -> None:
        self.closed += 1

    async def __aenter__(self) -> FakeCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


@pytest.fixture
def no_azure_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.usefixtures("no_azure_env", "no_unclosed_sessions")
async def test_a_credential_passed_in_is_not_closed(
    monkeypatch: pytest.MonkeyPatch, azurite: Azurite
) -> None:
    # a connection string in the environment does not win over a credential passed in
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    mine = FakeCredential()
    backend = AzureBackend.from_url("az://myaccount/backups", credential=mine)
    assert backend._service.credential is mine
    await backend.aclose()
    await backend.aclose()
    assert mine.closed == 0


@pytest.mark.usefixtures("no_azure_env", "no_unclosed_sessions")
async def test_a_default_credential_it_made_is_closed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("azure.identity.aio.DefaultAzureCredential", FakeCredential)
    FakeCredential.instances.clear()
    backend = AzureBackend.from_url("az://myaccount/backups")
    (made,) = FakeCredential.instances
    assert backend._service.credential is made
    assert made.closed == 0
    await backend.aclose()
    assert made.closed == 1
    await backend.aclose()
    assert made.closed == 1
    with pytest.raises(UsageError, match="closed"):
        await backend.get("config")


@pytest.mark.usefixtures("no_azure_env", "no_unclosed_sessions")
async def test_a_default_credential_is_closed_if_the_backend_cannot_be_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("azure.identity.aio.DefaultAzureCredential", FakeCredential)
    FakeCredential.instances.clear()
    with pytest.raises(UsageError):
        AzureBackend.from_url("az://myaccount/backups", max_connections=0)
    scheduled = set(azure_mod._PENDING)  # the close was scheduled on this loop: wait for it to end
    assert scheduled
    await asyncio.gather(*scheduled)
    (made,) = FakeCredential.instances
    assert made.closed == 1


# ------------------------------------------------------------------------------------ sessions


@pytest.mark.usefixtures("no_unclosed_sessions")
def test_built_outside_an_event_loop(container_url: str) -> None:
    """aiohttp makes sessions only inside a running loop: the backend makes its own on first use."""
    backend = AzureBackend.from_url(container_url, **NO_RETRIES)

    async def use() -> bytes:
        async with backend:
            await backend.put_if_absent("x", b"y")
            return await backend.get("x")

    assert asyncio.run(use()) == b"y"


async def test_the_connection_pool_is_bounded_and_closed(container_url: str) -> None:
    async with AzureBackend.from_url(container_url, max_connections=3, **NO_RETRIES) as backend:
        assert backend._transport.session is None  # nothing made before the first request
        await asyncio.gather(*(backend.put_if_absent(f"o/{i}", b"x" * i) for i in range(12)))
        session = backend._transport.session
        assert isinstance(session, aiohttp.ClientSession)
        assert (session.connector.limit, session.connector.limit_per_host) == (3, 3)
    assert session.closed


@pytest.mark.usefixtures("no_unclosed_sessions")
@pytest.mark.leaks_on_purpose
async def test_the_leak_check_sees_an_unclosed_session() -> None:
    """The check every test here runs (``no_unclosed_sessions``) does find a forgotten session."""
    with unclosed_sessions() as found:
        session = aiohttp.ClientSession()
        del session
    assert any("Unclosed client session" in w for w in found), found
    with unclosed_sessions() as found:
        async with AzureBackend.from_url("azurite://127.0.0.1:1/never-used"):
            pass
        forgotten = AzureBackend.from_url("azurite://127.0.0.1:1/never-used")
        del forgotten  # never used: it made no session, so there is nothing to leak
    assert found == []


@pytest.mark.usefixtures("no_unclosed_sessions")
def test_the_sdk_retry_schedule() -> None:
    """docs/azure.md: about 0.5, 2.5, 4.5, 8.5 s between the SDK's attempts, with jitter."""
    backend = AzureBackend.from_url("azurite://127.0.0.1:1/c00", retry_total=4, retry_backoff=0.5)
    policy = backend._retry_policy
    for n, expected in [(1, 0.5), (2, 2.5), (3, 4.5), (4, 8.5)]:
        waits = [policy.get_backoff_time({"count": n}) for _ in range(200)]
        assert expected - 0.5 <= min(waits) and max(waits) <= expected + 0.5, (n, min(waits), max(waits))
        assert max(waits) - min(waits) > 0.5  # jittered
    quick = AzureBackend.from_url("azurite://127.0.0.1:1/c00", retry_total=1, retry_backoff=0)
    assert quick._retry_policy.get_backoff_time({"count": 1}) == 0


# ------------------------------------------------------------------------------------ leases


async def test_a_lost_lease_cannot_harm_the_new_holder(backend: AzureBackend, sdk: ContainerClient) -> None:
    first = await backend.acquire_lease("locks/prune", duration=15)
    # Azure ends it (as a lapse would, without waiting 15 s): a break with no grace period
    await BlobLeaseClient(sdk.get_blob_client("locks/prune")).break_lease(lease_break_period=0)
    second = await backend.acquire_lease("locks/prune", duration=15)
    with pytest.raises(LeaseHeldError):
        await first.renew()
    await first.release()  # refused by Azure (not its lease any more): harmless, and no error
    with pytest.raises(LeaseHeldError, match="LeaseAlreadyPresent"):
        await backend.acquire_lease("locks/prune", duration=15)
    await second.renew()
    await second.release()
    third = await backend.acquire_lease("locks/prune", duration=15)
    await third.release()


@pytest.mark.parametrize("duration", [14, 14.4, 61, 3600])
async def test_lease_durations_outside_azures_range(backend: AzureBackend, duration: float) -> None:
    with pytest.raises(UsageError, match="15 to 60"):
        await backend.acquire_lease("locks/l", duration=duration)
    assert [i async for i in backend.list()] == []


async def lease_state(sdk: ContainerClient, name: str) -> tuple[str, str]:
    """Azure's own account of the lease on ``name``: (state, duration), e.g. ("leased", "fixed")."""
    lease = (await sdk.get_blob_client(name).get_blob_properties()).lease
    return str(lease.state), str(lease.duration)


async def until_lapsed(sdk: ContainerClient, name: str, limit: float = 120.0) -> None:
    """Poll until Azure itself says the lease on ``name`` lapsed. A bounded wait for a real state
    (``limit`` is only a guard against a hang), never a fixed sleep with a margin."""
    async with asyncio.timeout(limit):
        while (state := (await lease_state(sdk, name))[0]) == "leased":  # noqa: ASYNC110 - remote state
            await asyncio.sleep(0.05)
    assert state == "expired", state


async def test_a_lease_lapses_unless_renewed(backend: AzureBackend, sdk: ContainerClient) -> None:
    """On Azurite's real clock (about 30 s), but ordered by Azure's own lapses, not by our sleeps.

    ``renewed`` (30 s) is taken first, then ``witness`` (30 s), then ``pacer`` (15 s). When the pacer
    has lapsed (about 15 s in), ``renewed`` is renewed. When the witness has lapsed, ``renewed`` would
    have lapsed too without its renewal (it was taken earlier, for as long): it must still be held.
    The witness, never renewed, is free again by itself, and its old holder cannot renew it."""
    renewed = await backend.acquire_lease("locks/renewed", duration=30)
    witness = await backend.acquire_lease("locks/witness", duration=30)
    pacer = await backend.acquire_lease("locks/pacer", duration=15)
    for name in ("locks/renewed", "locks/witness", "locks/pacer"):  # finite leases: they can lapse
        assert await lease_state(sdk, name) == ("leased", "fixed")

    await until_lapsed(sdk, "locks/pacer")
    assert (await lease_state(sdk, "locks/renewed"))[0] == "leased"  # half way: not lapsed yet
    await renewed.renew()
    await until_lapsed(sdk, "locks/witness")  # past the time `renewed` would have lapsed
    assert await lease_state(sdk, "locks/renewed") == ("leased", "fixed")
    with pytest.raises(LeaseHeldError):
        await backend.acquire_lease("locks/renewed", duration=15)

    taken = await backend.acquire_lease("locks/witness", duration=15)  # its holder "died": free again
    with pytest.raises(LeaseHeldError):
        await witness.renew()
    await witness.release()  # refused by Azure (not its lease any more): harmless
    with pytest.raises(LeaseHeldError):
        await backend.acquire_lease("locks/witness", duration=15)
    for lease in (taken, renewed, pacer):
        await lease.release()
    for name in ("locks/renewed", "locks/witness", "locks/pacer"):
        assert (await lease_state(sdk, name))[0] == "available"
