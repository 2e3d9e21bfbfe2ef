"""The Azure SDK pipeline tiervault builds: its retry policy (``Backoff``, the one layer that retries
single requests), its aiohttp transport with a bounded connection pool (``PooledTransport``), and the
client options that go with them (``client_options``).

Retries (docs/architecture.md, "Retries"): the SDK's own policy, shortened, retries single requests
that failed with a transport error, 408 or a 5xx; errors that reach us after it are final for this
layer and are marked ``retried=True`` (``errors.translate``).
"""

from __future__ import annotations

import random
from typing import Any

import aiohttp
from azure.core.pipeline.transport import AioHttpTransport

# ExponentialRetry from .aio: the sync one (``azure.storage.blob.ExponentialRetry``) in an aio pipeline
# never awaits the transport and fails every request with an AttributeError on a coroutine.
from azure.storage.blob.aio import ExponentialRetry

__all__ = ["AZURITE_API_VERSION", "DOWNLOAD_BLOCK", "Backoff", "PooledTransport", "client_options"]

#: the newest API version released Azurite (3.37) accepts; the SDK's default is newer
AZURITE_API_VERSION = "2026-06-06"


class Backoff(ExponentialRetry):
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

    @classmethod
    def budget(cls, retry_total: int, retry_backoff: float) -> Backoff:
        """At most ``retry_total`` retries of any kind, from ``retry_backoff`` seconds (also the
        jitter)."""
        return cls(
            initial_backoff=retry_backoff,  # type: ignore[arg-type]
            increment_base=2,
            retry_total=retry_total,
            # the SDK caps each kind at 3 by default whatever retry_total says: one budget for all
            retry_connect=retry_total,
            retry_read=retry_total,
            retry_status=retry_total,
            random_jitter_range=retry_backoff,  # type: ignore[arg-type]
        )


#: bytes per read of a response body (azure-core's connection_data_block_size; its default is 4 KiB)
DOWNLOAD_BLOCK = 1 << 20


class PooledTransport(AioHttpTransport):  # type: ignore[misc]  # azure-core exports it lazily
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


def client_options(
    retry_policy: Backoff, transport: PooledTransport, api_version: str | None
) -> dict[str, Any]:
    """The keyword arguments of a ``BlobServiceClient`` using ``retry_policy`` and ``transport``."""
    options: dict[str, Any] = {
        # one layer per failure: the SDK's policy, shortened (its default sleeps 15 s, 18 s, 24 s)
        "retry_policy": retry_policy,
        "max_single_put_size": 256 << 20,  # a pack goes up as one Put Blob
        "max_single_get_size": 256 << 20,
        # and chunks() hands it over in one piece (see blobs.body)
        "max_chunk_get_size": 256 << 20,
        "connection_timeout": 20,
        "read_timeout": 120,
        # the aiohttp session is made on first use, inside the event loop, and closed with the client
        "transport": transport,
    }
    if api_version:
        options["api_version"] = api_version
    return options
