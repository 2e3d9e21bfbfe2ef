"""The backend a prune talks through: it counts the requests of each step for the report, and runs
the lease check before every mutating request (docs/format.md, invariant 16), so no step can forget
it. A dry run refuses every mutation but the prune's own heartbeat and lease."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from tiervault.backend.base import Backend, Capabilities, Lease, ObjectInfo, RehydratePriority, Tier
from tiervault.errors import UsageError

#: most names of one ``delete_many`` request a prune makes
DELETE_BATCH = 256

Guard = Callable[[], Awaitable[None]]


async def _no_guard() -> None:
    return None


class PruneBackend:
    """Wraps the repository's backend for one prune run (see the module docstring)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.step = "lease"
        self.requests: Counter[str] = Counter()
        self.guard: Guard = _no_guard
        #: mutations allowed (False in a dry run, except under ``own_objects``)
        self.writable = True
        self._own = False

    def _count(self) -> None:
        self.requests[self.step] += 1

    async def _mutating(self, what: str) -> None:
        if not (self.writable or self._own):
            raise UsageError(f"a dry run does not {what}")  # a bug if ever raised
        await self.guard()
        self._count()

    def own_objects(self, on: bool) -> None:
        """Allow the prune's heartbeat writes in a dry run."""
        self._own = on

    @property
    def location(self) -> str:
        return self.inner.location

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    async def create_container(self) -> bool:
        raise UsageError("a prune never creates a container")

    async def put_if_absent(self, name: str, data: bytes | memoryview) -> bool:
        await self._mutating(f"store {name}")
        return await self.inner.put_if_absent(name, data)

    async def get(self, name: str, *, offset: int = 0, length: int | None = None) -> bytes:
        self._count()
        return await self.inner.get(name, offset=offset, length=length)

    async def open_read(
        self, name: str, *, offset: int = 0, length: int | None = None, block_size: int = 4 << 20
    ) -> AsyncIterator[bytes]:
        self._count()
        async for block in self.inner.open_read(name, offset=offset, length=length, block_size=block_size):
            yield block

    async def stat(self, name: str) -> ObjectInfo:
        self._count()
        return await self.inner.stat(name)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        self._count()
        async for info in self.inner.list(prefix):
            yield info

    async def delete(self, name: str) -> None:
        await self._mutating(f"delete {name}")
        await self.inner.delete(name)

    async def delete_many(self, names: Sequence[str]) -> None:
        names = list(names)
        for i in range(0, len(names), DELETE_BATCH):
            await self._mutating(f"delete {len(names)} objects")
            await self.inner.delete_many(names[i : i + DELETE_BATCH])

    async def set_tier(self, name: str, tier: Tier) -> None:
        raise UsageError("a prune never changes tiers")

    async def set_tier_many(self, names: Sequence[str], tier: Tier) -> None:
        raise UsageError("a prune never changes tiers")

    async def rehydrate(self, name: str, *, priority: RehydratePriority = RehydratePriority.STANDARD) -> None:
        raise UsageError("a prune never rehydrates")

    async def copy_rehydrate(
        self, src: str, dst: str, *, priority: RehydratePriority = RehydratePriority.STANDARD
    ) -> bool:
        raise UsageError("a prune never rehydrates")

    async def acquire_lease(self, name: str, *, duration: float) -> Lease:
        self._count()
        return await self.inner.acquire_lease(name, duration=duration)

    async def list_incomplete(self) -> AsyncIterator[ObjectInfo]:
        self._count()
        async for info in self.inner.list_incomplete():
            yield info

    async def delete_incomplete(self, *, older_than: float) -> Sequence[ObjectInfo]:
        await self._mutating("delete leftovers")
        return await self.inner.delete_incomplete(older_than=older_than)

    async def aclose(self) -> None:
        """The vault owns the inner backend: closing this wrapper closes nothing."""
