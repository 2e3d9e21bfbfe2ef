"""``SlowRehydration``: a backend wrapper that makes rehydration take time on a fake clock.

Azurite rehydrates at once (docs: AZURE.md, "Azurite"): a Copy Blob out of Archive is readable as
soon as it returns, and Set Blob Tier to Hot switches immediately. Azure takes hours (Standard: up to
15 h; High: about 1 h for objects under 10 GB). This wrapper keeps the real store's behaviour (the
copy is really made, by the real SDK against Azurite) and adds only the delay: an object made by
``copy_rehydrate`` from an archived source, or rehydrated in place by ``rehydrate``, is reported
``ARCHIVE`` + ``rehydrating`` and refuses reads (``ObjectArchivedError``) until the clock reaches
its ready time, which depends on the priority. That is the one difference from real Azure named by
the tests that use it; nothing of the SDK is mocked.

Several wrappers (two "hosts") can share one ``delays`` registry, so that a rehydration started
through one is seen in progress through the other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

from tests.support.memory import FaultyBackend
from tiervault.backend.base import Backend, ObjectInfo, RehydratePriority, Tier
from tiervault.clock import Clock
from tiervault.errors import ObjectArchivedError

#: Azure's documented times (the upper estimates)
DELAYS = {RehydratePriority.STANDARD: 15 * 3600.0, RehydratePriority.HIGH: 3600.0}


class SlowRehydration(FaultyBackend):
    """``inner`` with rehydrations that finish only when ``clock`` reaches their ready time."""

    def __init__(self, inner: Backend, clock: Clock, ready_at: dict[str, float] | None = None) -> None:
        super().__init__(inner)
        self.clock = clock
        #: object name -> the clock time its rehydration finishes (shared between wrappers)
        self.ready_at: dict[str, float] = {} if ready_at is None else ready_at

    def _pending(self, name: str) -> bool:
        until = self.ready_at.get(name)
        return until is not None and self.clock.now() < until

    def _view(self, info: ObjectInfo) -> ObjectInfo:
        if self._pending(info.name):
            return replace(info, tier=Tier.ARCHIVE, rehydrating=True)
        return info

    def _refuse(self, name: str) -> None:
        if self._pending(name):
            raise ObjectArchivedError(f"{name!r} is in the Archive tier and is being rehydrated")

    async def stat(self, name: str) -> ObjectInfo:
        return self._view(await super().stat(name))

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        async for info in super().list(prefix):
            yield self._view(info)

    async def get(self, name: str, *, offset: int = 0, length: int | None = None) -> bytes:
        self._refuse(name)
        return await super().get(name, offset=offset, length=length)

    async def open_read(
        self, name: str, *, offset: int = 0, length: int | None = None, block_size: int = 4 << 20
    ) -> AsyncIterator[bytes]:
        self._refuse(name)
        async for block in super().open_read(name, offset=offset, length=length, block_size=block_size):
            yield block

    async def copy_rehydrate(
        self, src: str, dst: str, *, priority: RehydratePriority = RehydratePriority.STANDARD
    ) -> bool:
        archived = (await self.inner.stat(src)).tier is Tier.ARCHIVE
        started = await super().copy_rehydrate(src, dst, priority=priority)
        if started and archived:
            self.ready_at[dst] = self.clock.now() + DELAYS[RehydratePriority(priority)]
        return started

    async def rehydrate(self, name: str, *, priority: RehydratePriority = RehydratePriority.STANDARD) -> None:
        info = await self.stat(name)
        await super().rehydrate(name, priority=priority)
        if info.tier is Tier.ARCHIVE and not info.rehydrating:
            self.ready_at[name] = self.clock.now() + DELAYS[RehydratePriority(priority)]

    async def delete(self, name: str) -> None:
        await super().delete(name)
        self.ready_at.pop(name, None)
