"""The one retry layer above the backends: tenacity around idempotent operations, with a deadline.

Which failures are retried where (docs/architecture.md, "Retries"):

* transport errors, 408 and 5xx — by the Azure SDK's own (shortened) policy, per request; what
  reaches us afterwards carries ``retried=True`` and is not retried again here;
* 429 throttling, which the SDK never retries, and any ``TransientBackendError(retried=False)`` —
  here, with jittered exponential back-off, bounded by attempts and by a deadline;
* everything else (4xx, integrity, not found, permission) — never.

Every operation wrapped here is idempotent: creating a content-addressed object twice, reading,
listing (retried only before its first result), deleting (leftovers of unfinished writes too),
setting a tier, creating the container.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from tiervault.backend.base import Backend, Capabilities, Lease, ObjectInfo, RehydratePriority, Tier
from tiervault.errors import TransientBackendError

log = logging.getLogger("tiervault.backend.retry")
_T = TypeVar("_T")


def retryable(exc: BaseException) -> bool:
    """Only transient failures that no lower layer has retried yet."""
    return isinstance(exc, TransientBackendError) and not exc.retried


def _log(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.warning("retrying after %s (attempt %d)", exc, state.attempt_number)


class RetryingBackend:
    """A ``Backend`` decorator: the same contract, with transient failures retried (see above)."""

    def __init__(
        self, inner: Backend, *, attempts: int = 6, deadline: float = 120.0, max_wait: float = 10.0
    ) -> None:
        self.inner = inner
        self._attempts, self._deadline, self._max_wait = attempts, deadline, max_wait

    def _retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            retry=retry_if_exception(retryable),
            stop=stop_after_attempt(self._attempts) | stop_after_delay(self._deadline),
            wait=wait_random_exponential(multiplier=0.5, max=self._max_wait),
            before_sleep=_log,
            reraise=True,
        )

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        async for attempt in self._retrying():
            with attempt:
                return await fn(*args, **kwargs)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    @property
    def location(self) -> str:
        return self.inner.location

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    async def create_container(self) -> bool:
        created: bool = await self._call(self.inner.create_container)  # idempotent
        return created

    async def put_if_absent(self, name: str, data: bytes | memoryview) -> bool:
        created: bool = await self._call(self.inner.put_if_absent, name, data)
        return created

    async def get(self, name: str, *, offset: int = 0, length: int | None = None) -> bytes:
        data: bytes = await self._call(self.inner.get, name, offset=offset, length=length)
        return data

    async def open_read(
        self, name: str, *, offset: int = 0, length: int | None = None, block_size: int = 4 << 20
    ) -> AsyncIterator[bytes]:
        async for block in self.inner.open_read(name, offset=offset, length=length, block_size=block_size):
            yield block

    async def stat(self, name: str) -> ObjectInfo:
        info: ObjectInfo = await self._call(self.inner.stat, name)
        return info

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        async for attempt in self._retrying():
            with attempt:
                it = self.inner.list(prefix).__aiter__()
                try:
                    first = await it.__anext__()
                except StopAsyncIteration:
                    return
        yield first
        async for info in it:  # once results flow, a failure is the caller's to see
            yield info

    async def delete(self, name: str) -> None:
        await self._call(self.inner.delete, name)

    async def delete_many(self, names: Sequence[str]) -> None:
        await self._call(self.inner.delete_many, names)

    async def set_tier(self, name: str, tier: Tier) -> None:
        await self._call(self.inner.set_tier, name, tier)

    async def set_tier_many(self, names: Sequence[str], tier: Tier) -> None:
        await self._call(self.inner.set_tier_many, names, tier)

    async def rehydrate(self, name: str, *, priority: RehydratePriority = RehydratePriority.STANDARD) -> None:
        await self._call(self.inner.rehydrate, name, priority=priority)

    async def copy_rehydrate(
        self, src: str, dst: str, *, priority: RehydratePriority = RehydratePriority.STANDARD
    ) -> bool:
        started: bool = await self._call(self.inner.copy_rehydrate, src, dst, priority=priority)
        return started  # a retry after a lost response finds ``dst`` and says False: same outcome

    async def acquire_lease(self, name: str, *, duration: float) -> Lease:
        return await self.inner.acquire_lease(name, duration=duration)  # not idempotent: never retried

    async def list_incomplete(self) -> AsyncIterator[ObjectInfo]:
        async for attempt in self._retrying():  # like ``list``: retried only before its first result
            with attempt:
                it = self.inner.list_incomplete().__aiter__()
                try:
                    first = await it.__anext__()
                except StopAsyncIteration:
                    return
        yield first
        async for info in it:
            yield info

    async def delete_incomplete(self, *, older_than: float) -> Sequence[ObjectInfo]:
        removed: Sequence[ObjectInfo] = await self._call(self.inner.delete_incomplete, older_than=older_than)
        return removed

    async def aclose(self) -> None:
        await self.inner.aclose()
