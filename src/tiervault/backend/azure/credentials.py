"""Which credential opens an Azure address (``choose_credential``), the Azurite development account's
well-known key, and closing a credential we made from synchronous code (``close_soon``).

``azure.identity`` is imported only when ``DefaultAzureCredential`` is the credential chosen (it is
slow to import).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from tiervault.backend.azure.address import AZURITE_ACCOUNT, AzureAddress, url_sas

__all__ = ["AZURITE_KEY", "PENDING_CLOSES", "choose_credential", "close_soon", "connection_account"]

AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def choose_credential(
    address: AzureAddress,
    url: str,
    *,
    credential: Any,
    connection_string: str | None,
    account_key: str | None,
    sas_token: str | None,
) -> dict[str, Any]:
    """The first credential found for ``address`` (parsed from ``url``), as ``AzureBackend``'s keyword
    arguments, in this order: ``credential``; a SAS token in an ``https://`` address's query;
    ``connection_string`` or ``AZURE_STORAGE_CONNECTION_STRING``; ``account_key`` or
    ``AZURE_STORAGE_KEY``; ``sas_token`` or ``AZURE_STORAGE_SAS_TOKEN``; a new
    ``DefaultAzureCredential`` (then ``owns_credential=True``: the caller closes it if it cannot
    build the backend). ``azurite://`` addresses use the development account's well-known key (or
    ``connection_string``, for the same account).
    """
    in_url = url_sas(url)  # a SAS in the address names exactly this store
    if address.azurite:
        conn = (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={address.endpoint};"
        )
        return {"connection_string": connection_string or conn}
    if credential is not None:
        return {"credential": credential}
    if in_url:
        return {"credential": in_url}
    connection_string = connection_string or os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if connection_string:
        return {"connection_string": connection_string}
    account_key = account_key or os.environ.get("AZURE_STORAGE_KEY")
    if account_key:
        return {"credential": {"account_name": address.account, "account_key": account_key}}
    sas_token = sas_token or os.environ.get("AZURE_STORAGE_SAS_TOKEN")
    if sas_token:
        return {"credential": sas_token.lstrip("?")}
    from azure.identity.aio import DefaultAzureCredential  # lazily: slow to import

    return {"credential": DefaultAzureCredential(), "owns_credential": True}


def connection_account(connection_string: str) -> str | None:
    """The ``AccountName=`` of a connection string (None for one with only an endpoint and a SAS)."""
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == "accountname":
            return value.strip()
    return None


#: closes of credentials scheduled by ``close_soon``, kept alive until done
PENDING_CLOSES: set[asyncio.Task[Any]] = set()


def close_soon(credential: Any) -> None:
    """Close a credential from synchronous code: on the running loop if any, else at once."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(credential.close())
        return
    task = loop.create_task(credential.close())
    PENDING_CLOSES.add(task)
    task.add_done_callback(PENDING_CLOSES.discard)
