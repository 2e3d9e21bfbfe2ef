"""``RecordingBackend``: wraps any backend, records every call in order, and runs test hooks.

Tests prove *orderings* with it (what was stored before what was read) without patching the code
under test, and act at a chosen moment of a run (a hook runs before the matching call reaches the
inner backend)::

    rec = RecordingBackend(MemoryBackend(clock=clock))
    rec.on("put_if_absent", "index/", sweep_a_pack)   # once, before the first index file is stored
    ...
    rec.first("put_if_absent", "locks/") < rec.first("get", "index/")
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from tiervault.backend.base import Backend, Capabilities, Lease, ObjectInfo, RehydratePriority, Tier

Hook = Callable[[str], Awaitable[None]]


@dataclass(slots=True)
class _Hook:
    method: str
    prefix: str
    action: Hook
    once: bool


class RecordingBackend:
    """A transparent wrapper: ``calls`` lists ``(method, name or prefix)`` in call order (a ``*_many``
    call as its single calls; ``batches`` lists each one as ``(method, number of names)``); ``stored``
    keeps the bytes of every ``put_if_absent`` whose name starts with one of ``keep`` ("locks/")."""

    def __init__(self, inner: Backend, *, keep: Sequence[str] = ("locks/",)) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str]] = []
        self.stored: dict[str, bytes] = {}
        self.batches: list[tuple[str, int]] = []
        self._keep = tuple(keep)
        self._hooks: list[_Hook] = []

    def __repr__(self) -> str:
        return f"RecordingBackend({self.inner!r})"

    def on(self, method: str, prefix: str, action: Hook, *, once: bool = True) -> None:
        """Run ``await action(name)`` before each (``once``: the next) call of ``method`` whose name
        (for ``list``: prefix) starts with ``prefix``."""
        self._hooks.append(_Hook(method, prefix, action, once))

    def first(self, method: str, prefix: str = "") -> int:
        """Position in ``calls`` of the first ``method`` call on a name starting with ``prefix``;
        ``len(calls)`` if none (so ``a < b`` comparisons read naturally)."""
        for i, (m, name) in enumerate(self.calls):
            if m == method and name.startswith(prefix):
                return i
        return len(self.calls)

    def names(self, method: str, prefix: str = "") -> list[str]:
        """The names of the ``method`` calls on names starting with ``prefix``, in call order."""
        return [name for m, name in self.calls if m == method and name.startswith(prefix)]

    async def _before(self, method: str, name: str) -> None:
        self.calls.append((method, name))
        for hook in list(self._hooks):
            if hook.method == method and name.startswith(hook.prefix):
                if hook.once:
                    self._hooks.remove(hook)
                await hook.action(name)

    # ---------------------------------------------------------------------------- contract

    @property
    def location(self) -> str:
        return self.inner.location

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    async def create_container(self) -> bool:
        await self._before("create_container", "")
        return await self.inner.create_container()

    async def put_if_absent(self, name: str, data: bytes | memoryview) -> bool:
        await self._before("put_if_absent", name)
        if name.startswith(self._keep):
            self.stored[name] = bytes(data)
        return await self.inner.put_if_absent(name, data)

    async def get(self, name: str, *, offset: int = 0, length: int | None = None) -> bytes:
        await self._before("get", name)
        return await self.inner.get(name, offset=offset, length=length)

    async def open_read(
        self, name: str, *, offset: int = 0, length: int | None = None, block_size: int = 4 << 20
    ) -> AsyncIterator[bytes]:
        await self._before("open_read", name)
        async for block in self.inner.open_read(name, offset=offset, length=length, block_size=block_size):
            yield block

    async def stat(self, name: str) -> ObjectInfo:
        await self._before("stat", name)
        return await self.inner.stat(name)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        await self._before("list", prefix)
        async for info in self.inner.list(prefix):
            yield info

    async def list_incomplete(self) -> AsyncIterator[ObjectInfo]:
        await self._before("list_incomplete", "")
        async for info in self.inner.list_incomplete():
            yield info

    async def delete_incomplete(self, *, older_than: float) -> Sequence[ObjectInfo]:
        await self._before("delete_incomplete", "")
        return await self.inner.delete_incomplete(older_than=older_than)

    async def delete(self, name: str) -> None:
        await self._before("delete", name)
        await self.inner.delete(name)

    async def delete_many(self, names: Sequence[str]) -> None:
        self.batches.append(("delete_many", len(names)))
        for name in names:
            await self.delete(name)

    async def set_tier(self, name: str, tier: Tier) -> None:
        await self._before("set_tier", name)
        await self.inner.set_tier(name, tier)

    async def set_tier_many(self, names: Sequence[str], tier: Tier) -> None:
        self.batches.append(("set_tier_many", len(names)))
        for name in names:
            await self.set_tier(name, tier)

    async def rehydrate(self, name: str, *, priority: RehydratePriority = RehydratePriority.STANDARD) -> None:
        await self._before("rehydrate", name)
        await self.inner.rehydrate(name, priority=priority)

    async def copy_rehydrate(
        self, src: str, dst: str, *, priority: RehydratePriority = RehydratePriority.STANDARD
    ) -> bool:
        await self._before("copy_rehydrate", dst)
        return await self.inner.copy_rehydrate(src, dst, priority=priority)

    async def acquire_lease(self, name: str, *, duration: float) -> Lease:
        await self._before("acquire_lease", name)
        return await self.inner.acquire_lease(name, duration=duration)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
