"""Azure addresses: parsing them (``parse_url``), the SAS an ``https://`` address may carry
(``url_sas``), and their canonical, secret-free form (``AzureAddress.location``).

Accepted forms:

* ``https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX][?SAS]`` — the Azure-native URL (also with
  another cloud's suffix, ``ACCOUNT.blob.core.chinacloudapi.cn``, or path-style for emulators:
  ``http://127.0.0.1:10000/devstoreaccount1/CONTAINER`` is Azurite); the same as:
* ``az://ACCOUNT/CONTAINER[/PREFIX]`` — ``https://ACCOUNT.blob.core.windows.net``;
* ``az://ACCOUNT/CONTAINER[/PREFIX]?endpoint=URL`` — the same on another endpoint (sovereign clouds,
  private endpoints, the emulator);
* ``azurite://HOST[:PORT]/CONTAINER[/PREFIX]`` — the Azurite development account (port 10000 by
  default).

Nothing here imports the Azure SDK.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from tiervault.backend.base import validate_prefix
from tiervault.errors import UsageError

__all__ = ["AZURITE_ACCOUNT", "AZURITE_DEFAULT_PORT", "AzureAddress", "parse_url", "url_sas"]

AZURITE_ACCOUNT = "devstoreaccount1"

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
