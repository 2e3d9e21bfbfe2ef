"""``StatAfterListing``: a ``RecordingBackend`` whose ``list`` behaves like a directory listing of
the local backend (``os.scandir``, then a ``stat`` per entry, skipping one deleted meanwhile): the
names are taken first, then test hooks run, then each name is ``stat``-ed. An object stored by the
hook is not in that listing, and one it deleted is left out, which is what a listing concurrent
with a heartbeat renewal may return::

    store = StatAfterListing(MemoryBackend(clock=clock))
    store.between("locks/", renew_a_heartbeat)   # once, in the next listing of locks/
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from tests.support.recording import Hook, RecordingBackend
from tiervault.backend.base import ObjectInfo
from tiervault.errors import ObjectNotFoundError


class StatAfterListing(RecordingBackend):
    """See the module docstring."""

    _between: list[tuple[str, Hook]]

    def between(self, prefix: str, action: Hook) -> None:
        """Run ``await action(prefix)`` once, in the next listing of a prefix starting with
        ``prefix``, after its names were taken and before they are ``stat``-ed."""
        if not hasattr(self, "_between"):
            self._between = []
        self._between.append((prefix, action))

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        names = [info.name async for info in super().list(prefix)]
        for hook in list(getattr(self, "_between", [])):
            if prefix.startswith(hook[0]):
                self._between.remove(hook)
                await hook[1](prefix)
        for name in names:
            try:
                info = await self.inner.stat(name)
            except ObjectNotFoundError:
                continue  # deleted while listed
            yield info
