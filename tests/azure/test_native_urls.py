"""Azure-native addresses (``https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]``, other clouds,
path-style emulator URLs) and ``credential=`` given as the Azure SDK takes it."""

from __future__ import annotations

import pytest

import tiervault
from tests.e2e import KDF
from tests.support.azurite import Azurite
from tiervault.backend.azure import AzureAddress, AzureBackend, parse_url, url_sas


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://myaccount.blob.core.windows.net/backups",
            AzureAddress("myaccount", "backups", "", "https://myaccount.blob.core.windows.net"),
        ),
        (
            "https://MyAccount.blob.core.windows.net/backups/app1/daily/",
            AzureAddress("myaccount", "backups", "app1/daily/", "https://myaccount.blob.core.windows.net"),
        ),
        (
            "https://myaccount.blob.core.chinacloudapi.cn/backups/p",
            AzureAddress(
                "myaccount",
                "backups",
                "p/",
                "https://myaccount.blob.core.chinacloudapi.cn",
                custom_endpoint=True,
            ),
        ),
        (
            "https://myaccount.blob.core.windows.net/backups?sv=2024-01-01&ss=b&sig=c2VjcmV0",
            AzureAddress("myaccount", "backups", "", "https://myaccount.blob.core.windows.net"),
        ),
        (
            "http://127.0.0.1:10123/devstoreaccount1/my-container/p",
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
            "https://10.1.2.3/myaccount/backups",  # a path-style private endpoint
            AzureAddress("myaccount", "backups", "", "https://10.1.2.3/myaccount", custom_endpoint=True),
        ),
    ],
)
def test_native_urls_parse_to_the_same_store(url: str, expected: AzureAddress) -> None:
    address = parse_url(url)
    assert address == expected
    assert parse_url(address.location) == address  # the canonical az:// / azurite:// form
    assert "sig" not in address.location


def test_the_public_cloud_url_and_az_form_are_one_store() -> None:
    assert parse_url("https://acct1.blob.core.windows.net/cont/x") == parse_url("az://acct1/cont/x")


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("https://myaccount.blob.core.windows.net", "name a container"),
        ("https://myaccount.blob.core.windows.net/", "name a container"),
        ("https://myaccount.blob.core.windows.net/Bad_Name", "container name"),
        ("https://x.blob.core.windows.net/backups", "storage account name 'x'"),
        ("https://myaccount.blob.core.windows.net/backups?foo=secret", "only be a SAS"),
        ("https://user:secret@myaccount.blob.core.windows.net/backups", "https://ACCOUNT"),
        ("https://myaccount.blob.core.windows.net:99999/backups", "out of range"),
        ("https://example.com/backups", "https://ACCOUNT"),
        ("https://myaccount.blob.core.windows.net/backups/../x", "'..'"),
    ],
)
def test_bad_native_urls(url: str, match: str) -> None:
    with pytest.raises(tiervault.UsageError, match=match) as info:
        parse_url(url)
    assert "secret" not in str(info.value)


def test_a_sas_in_the_url_is_the_credential() -> None:
    url = "https://myaccount.blob.core.windows.net/backups?sv=2024-01-01&sr=c&sp=racwdl&sig=abc%2Bdef"
    assert url_sas(url) == "sv=2024-01-01&sr=c&sp=racwdl&sig=abc%2Bdef"
    assert url_sas("https://myaccount.blob.core.windows.net/backups") is None
    assert url_sas("az://myaccount/backups") is None


def test_credential_is_taken_once() -> None:
    with pytest.raises(tiervault.UsageError, match="once"):
        tiervault.open(
            "az://acct1/cont",
            password="pw",
            credential=object(),
            azure=tiervault.AzureOptions(credential=object()),
        )


async def test_credential_for_a_local_repository_is_refused(tmp_path: object) -> None:
    with pytest.raises(tiervault.UsageError, match="not on Azure"):
        await tiervault.open(f"{tmp_path}/repo", password="pw", credential=object())


async def test_native_url_reaches_azurite(azurite: Azurite, azure_container: tuple[str, str]) -> None:
    """The path-style URL of the emulator opens the same repository as its azurite:// address."""
    _, container = azure_container
    native = f"http://127.0.0.1:{azurite.port}/devstoreaccount1/{container}/app"
    async with tiervault.init(native, password="pw", kdf=KDF, cache_dir=False) as vault:
        assert vault.location == f"azurite://127.0.0.1:{azurite.port}/{container}/app"
        rid = vault.repository_id
    async with tiervault.open(vault.location, password="pw", cache_dir=False) as again:
        assert again.repository_id == rid


async def test_credential_given_directly_is_used_and_not_closed(
    azurite: Azurite, azure_container: tuple[str, str]
) -> None:
    """``credential=`` reaches the SDK client as given (an account-key credential for Azurite's
    development account), exactly as ``AzureOptions(credential=)``; tiervault does not close it."""
    from azure.core.credentials import AzureNamedKeyCredential

    from tiervault.backend.azure import AZURITE_ACCOUNT, AZURITE_KEY

    _, container = azure_container
    url = f"az://{AZURITE_ACCOUNT}/{container}?endpoint=http://127.0.0.1:{azurite.port}/{AZURITE_ACCOUNT}"
    cred = AzureNamedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY)
    async with tiervault.init(url, password="pw", kdf=KDF, credential=cred, cache_dir=False) as vault:
        assert vault.repository_id
    async with AzureBackend.from_url(url, credential=cred, retry_total=0) as backend:
        assert [i.name async for i in backend.list("config")] == ["config"]
