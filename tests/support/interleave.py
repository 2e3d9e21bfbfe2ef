"""Deterministic interleavings with another process's work, at a chosen request.

``BeforeGet`` wraps a backend and runs an action once, just before the first ``get`` (or ``stat``)
of an object the test chose, then lets that call reach the store: "a prune swept this pack right before the
restore read it", with no timing involved. ``repack_and_delete`` is such an action, done as a prune
does it through a second ``Repository`` on the same store (another process): copy every blob of
some packs into new packs (new salts) through the real pack writer, store them and their index
file, then delete the old packs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from tests.support.memory import FaultyBackend
from tiervault.backend.base import Backend, ObjectInfo
from tiervault.core.format.pack import PackWriter, read_header
from tiervault.repo.index import PackInfo
from tiervault.repo.repository import Repository


class BeforeGet(FaultyBackend):
    """Runs ``action`` once, before the first ``method`` call (``get`` or ``stat``) whose name
    ``matches`` (other such calls wait for it to finish); records the listings of each prefix
    (``lists_after``) and the reads (``gets_after``) made after it began."""

    def __init__(
        self,
        inner: Backend,
        matches: Callable[[str], bool],
        action: Callable[[], Awaitable[None]],
        *,
        method: str = "get",
    ) -> None:
        super().__init__(inner)
        self.matches, self.action, self.method = matches, action, method
        self.fired = False
        self._done = asyncio.Event()
        self.lists_after: dict[str, int] = {}
        #: names of the objects read (``get``) after the action began, in order
        self.gets_after: list[str] = []

    async def _interleave(self, method: str, name: str) -> None:
        if method == self.method and self.matches(name):
            if not self.fired:
                self.fired = True
                try:
                    await self.action()
                finally:
                    self._done.set()
            await self._done.wait()  # a concurrent call for a match waits until the action is done

    async def get(self, name: str, *, offset: int = 0, length: int | None = None) -> bytes:
        await self._interleave("get", name)
        if self.fired:
            self.gets_after.append(name)
        return await super().get(name, offset=offset, length=length)

    async def stat(self, name: str) -> ObjectInfo:
        await self._interleave("stat", name)
        return await super().stat(name)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        if self.fired:
            self.lists_after[prefix] = self.lists_after.get(prefix, 0) + 1
        async for info in super().list(prefix):
            yield info


async def repack_and_delete(repo: Repository, names: Sequence[str], *, delete: bool = True) -> list[str]:
    """Copy every blob of the packs ``names`` into one new pack each, index them, delete the old
    packs (unless not ``delete``); returns the new packs' names."""
    out = []
    for name in names:
        data = await repo.backend.get(name)
        kind, salt, header = read_header(repo.keys.encryption, data)
        old = PackInfo(name.rsplit("/", 1)[-1], kind, salt)
        writer = PackWriter(repo.keys.encryption, kind)
        view = memoryview(data)
        for e in header:
            writer.add(e.id, repo.open_pack_blob(old, e, view[e.offset : e.offset + e.length]))
        pid = await repo.save_pack(kind, writer.salt, bytes(writer.finish()), list(writer.entries))
        out.append(PackInfo(pid, kind, writer.salt).name)
    assert await repo.flush_index() is not None
    for name in names if delete else ():
        await repo.backend.delete(name)
    return out
