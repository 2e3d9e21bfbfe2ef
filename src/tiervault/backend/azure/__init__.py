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

One job per module, each importing only those below it:

* ``backend``: ``AzureBackend``, the contract over one container (and optional prefix);
* ``lease``: ``AzureLease``; ``batch``: Blob Batch (``BATCH_LIMIT`` sub-requests per request);
* ``credentials``: which credential opens an address, the Azurite key, closing a credential we made;
* ``transport``: the SDK pipeline (``Backoff`` retry policy, ``PooledTransport``, client options);
* ``blobs``: tiers and priorities as the SDK's, blob properties as ``ObjectInfo``, bodies, MD5;
* ``errors``: Azure's exceptions to tiervault's (``translate``) and the codes that decide it;
* ``address``: ``parse_url``, ``url_sas``, ``AzureAddress`` (no Azure SDK import).

Importing this package imports the Azure SDK; ``tiervault`` imports it only when an Azure address is
opened (``api._open_backend``).
"""

from __future__ import annotations

from tiervault.backend.azure.address import AZURITE_ACCOUNT as AZURITE_ACCOUNT
from tiervault.backend.azure.address import AZURITE_DEFAULT_PORT as AZURITE_DEFAULT_PORT
from tiervault.backend.azure.address import AzureAddress, parse_url, url_sas
from tiervault.backend.azure.backend import CAPABILITIES as CAPABILITIES
from tiervault.backend.azure.backend import AzureBackend
from tiervault.backend.azure.batch import BATCH_LIMIT as BATCH_LIMIT
from tiervault.backend.azure.credentials import AZURITE_KEY as AZURITE_KEY
from tiervault.backend.azure.credentials import PENDING_CLOSES
from tiervault.backend.azure.errors import translate
from tiervault.backend.azure.lease import AzureLease
from tiervault.backend.azure.transport import AZURITE_API_VERSION as AZURITE_API_VERSION
from tiervault.backend.azure.transport import DOWNLOAD_BLOCK as DOWNLOAD_BLOCK
from tiervault.backend.azure.transport import PooledTransport

__all__ = ["AzureAddress", "AzureBackend", "AzureLease", "parse_url", "translate", "url_sas"]

# the names these had when this backend was one module (``transport`` and ``credentials`` are their homes)
_PooledTransport = PooledTransport
_PENDING = PENDING_CLOSES
