"""The public entry points: ``init`` / ``open`` a repository, giving a :class:`~tiervault.vault.Vault`.

This is the only module that builds concrete backends (``_backend_for``) and the only place where
backend decorators are stacked: ``CacheBackend(RetryingBackend(concrete))``.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import unquote, urlparse

from tiervault.backend.base import Backend
from tiervault.cache import DEFAULT_MAX_BYTES as DEFAULT_CACHE_BYTES
from tiervault.cache import CacheBackend, cache_key, default_cache_dir
from tiervault.clock import SYSTEM_CLOCK, Clock
from tiervault.core.chunker import ChunkerParams
from tiervault.core.crypto import ScryptParams
from tiervault.errors import UsageError
from tiervault.repo.cachepolicy import REPOSITORY_CACHE_POLICY
from tiervault.repo.repository import DEFAULT_PACK_SIZE, LOCAL_PACK_SIZE, Repository
from tiervault.vault import Password, Vault, password_bytes


@dataclass(frozen=True, slots=True)
class AzureOptions:
    """How to reach Azure Blob Storage (only for Azure addresses: ``https://...blob...``, ``az://``,
    ``azurite://``). ``tiervault.open(url, credential=...)`` is the short form of ``credential`` here.

    With none of ``credential``, ``connection_string``, ``account_key`` or ``sas_token`` (nor a SAS in an
    ``https://`` address), the environment is used (``AZURE_STORAGE_CONNECTION_STRING``/``_KEY``/
    ``_SAS_TOKEN``), then
    ``azure.identity.aio.DefaultAzureCredential``. A credential passed in is never closed by tiervault.
    """

    credential: Any = None
    connection_string: str | None = None
    account_key: str | None = None
    sas_token: str | None = None
    max_connections: int = 16
    retry_total: int = 4
    retry_backoff: float = 0.5
    validate_content: bool = True


CacheOption = str | os.PathLike[str] | bool | None


def _is_remote(url: str | os.PathLike[str]) -> bool:
    """An Azure address (``az://``, ``azurite://`` or an ``https://`` blob URL), not a local path:
    which backend to build. Once built, a backend says itself whether it is remote
    (``capabilities.remote``)."""
    return urlparse(os.fspath(url)).scheme in ("az", "azurite", "http", "https")


def _azure_options(azure: AzureOptions | None, credential: Any) -> AzureOptions | None:
    """``credential=`` given directly (as the Azure SDK takes it) means ``AzureOptions(credential=)``."""
    if credential is None:
        return azure
    if azure is not None:
        if azure.credential is not None:
            raise UsageError("give the credential once: credential= or AzureOptions(credential=), not both")
        return replace(azure, credential=credential)
    return AzureOptions(credential=credential)


def _open_backend(url: str | os.PathLike[str], azure: AzureOptions | None) -> Backend:
    """Build the concrete backend for an address (no decorators)."""
    text = os.fspath(url)
    parsed = urlparse(text)
    if _is_remote(text):
        from tiervault.backend.azure import AzureBackend

        o = azure or AzureOptions()
        return AzureBackend.from_url(
            text,
            credential=o.credential,
            connection_string=o.connection_string,
            account_key=o.account_key,
            sas_token=o.sas_token,
            max_connections=o.max_connections,
            retry_total=o.retry_total,
            retry_backoff=o.retry_backoff,
            validate_content=o.validate_content,
        )
    if azure is not None:
        raise UsageError("Azure options were given for a repository that is not on Azure")
    from tiervault.backend.local import LocalBackend

    if parsed.scheme == "file":
        return LocalBackend(unquote(parsed.path))
    if parsed.scheme == "":
        return LocalBackend(os.path.abspath(os.path.expanduser(text)))
    raise UsageError(
        f"unsupported repository address {text!r}: use a local path, file:///path, "
        "https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX], az://ACCOUNT/CONTAINER[/PREFIX] "
        "or azurite://HOST:PORT/CONTAINER"
    )


def _cache_dir(cache_dir: str | os.PathLike[str] | bool) -> Path | None:
    """Where an explicit choice puts the disk tier, or None (``False``: off). Without a choice
    (``None``), ``_backend_for`` turns it on for remote stores only."""
    if cache_dir is False:
        return None
    if cache_dir is True:
        return default_cache_dir()
    text = os.fspath(cache_dir)
    if not text:
        raise UsageError("cache_dir must not be empty (use cache_dir=False to turn the disk tier off)")
    return Path(os.path.abspath(os.path.expanduser(text)))


class _Stack(NamedTuple):
    """What ``_backend_for`` built: the top of the stack (what the repository uses), and the disk
    tier in it (kept, so that nobody has to search the stack for it)."""

    backend: Backend
    cache: CacheBackend


def _backend_for(
    url: str | os.PathLike[str],
    azure: AzureOptions | None,
    *,
    cache_dir: CacheOption = None,
    cache_max_bytes: int = DEFAULT_CACHE_BYTES,
) -> _Stack:
    """Build the concrete backend for an address and stack its decorators (the only place):
    ``CacheBackend(RetryingBackend(concrete))`` (the cache counts reads per tier even when off)."""
    from tiervault.backend.retry import RetryingBackend

    if not isinstance(cache_max_bytes, int) or cache_max_bytes <= 0:
        raise UsageError(f"cache_max_bytes must be a positive number of bytes, not {cache_max_bytes!r}")
    where = None if cache_dir is None else _cache_dir(cache_dir)  # checked before a backend exists
    concrete = _open_backend(url, azure)
    if cache_dir is None and concrete.capabilities.remote:
        where = default_cache_dir()  # on by default for a remote store
    cache = CacheBackend(
        RetryingBackend(concrete),
        where,
        policy=REPOSITORY_CACHE_POLICY,
        max_bytes=cache_max_bytes,
        repository_key=cache_key(concrete.location),
    )
    return _Stack(cache, cache)


class _Opening:
    """What ``init``/``open`` return: await it, or use it with ``async with`` (closes the vault)."""

    def __init__(self, factory: Callable[[], Awaitable[Vault]]) -> None:
        self._factory = factory
        self._vault: Vault | None = None

    def __await__(self) -> Generator[Any, None, Vault]:
        return self._factory().__await__()

    async def __aenter__(self) -> Vault:
        self._vault = await self._factory()
        return self._vault

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._vault is not None:
            await self._vault.aclose()


def open(
    url: str | os.PathLike[str],
    *,
    password: Password,
    credential: Any = None,
    azure: AzureOptions | None = None,
    cache_dir: CacheOption = None,
    cache_max_bytes: int = DEFAULT_CACHE_BYTES,
    clock: Clock | None = None,
) -> _Opening:
    """Open an existing repository: a local path, ``file://``, an Azure blob URL
    (``https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]``, optionally with a SAS), ``az://`` or
    ``azurite://`` address.

    ``credential`` is any ``azure.identity.aio`` credential (or what the SDK accepts as one), as an
    Azure SDK client takes it; tiervault never closes a credential it did not create. Without one, see
    :class:`AzureOptions` for the order in which the environment is tried.

    The disk tier (``docs/architecture.md``, "Disk tier") is on by default for Azure repositories,
    in :func:`tiervault.cache.default_cache_dir`, and off for local ones. ``cache_dir`` names its
    directory (``True``: the default one, also for a local repository); ``cache_dir=False`` turns it
    off. ``cache_max_bytes`` bounds what it keeps of this repository (2 GiB). ``clock`` is what
    snapshot deadlines are measured by (the system clock; tests pass a fake one).
    """

    options = _azure_options(azure, credential)

    async def go() -> Vault:
        backend, cache = _backend_for(url, options, cache_dir=cache_dir, cache_max_bytes=cache_max_bytes)
        try:
            repo = await Repository.open(backend, password_bytes(password))
            return Vault(repo, cache=cache, clock=clock or SYSTEM_CLOCK)
        except BaseException:
            await backend.aclose()
            raise

    return _Opening(go)


def init(
    url: str | os.PathLike[str],
    *,
    password: Password,
    pack_size: int | None = None,
    chunker: ChunkerParams | None = None,
    kdf: ScryptParams | None = None,
    credential: Any = None,
    azure: AzureOptions | None = None,
    create_container: bool = True,
    cache_dir: CacheOption = None,
    cache_max_bytes: int = DEFAULT_CACHE_BYTES,
    clock: Clock | None = None,
) -> _Opening:
    """Create a repository and open it. On Azure the container is created first when
    ``create_container`` (and the credential may do so). ``credential``, ``cache_dir``,
    ``cache_max_bytes`` and ``clock`` as for :func:`open`. ``pack_size`` defaults to 8 MiB on a local
    file system and 16 MiB elsewhere."""
    options = _azure_options(azure, credential)

    async def go() -> Vault:
        backend, cache = _backend_for(url, options, cache_dir=cache_dir, cache_max_bytes=cache_max_bytes)
        try:
            can = backend.capabilities
            # packs are buffered in memory until stored: a local disk needs no large ones, a remote
            # store pays per request and lists per object (docs/performance.md, "Memory")
            size = pack_size
            if size is None:
                size = DEFAULT_PACK_SIZE if can.remote else LOCAL_PACK_SIZE
            if create_container and can.create_container:
                await backend.create_container()
            repo = await Repository.init(
                backend, password_bytes(password), chunker=chunker, pack_size=size, kdf=kdf
            )
            return Vault(repo, cache=cache, clock=clock or SYSTEM_CLOCK)
        except BaseException:
            await backend.aclose()
            raise

    return _Opening(go)


__all__ = ["AzureOptions", "init", "open"]
