"""``ClockJumpBackend``: a store whose clock jumped forward at a given moment.

Neither Azurite nor a local disk can make an object an hour older, and Azurite runs on real time;
the prune rules count store time (``ObjectInfo.modified``) only. This wrapper takes ``jumps``, pairs
``(cutoff, jump)``, and reports for every object last modified at or after ``cutoff`` a ``modified``
``jump`` later than the store says (summed over the jumps that apply): as if the store's clock had
jumped forward by ``jump`` at each ``cutoff``. Store time stays monotonic, and every process that
wraps its backend with the same jumps sees the same store clock. That is the one difference from the
store; everything else passes through to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from tiervault.backend.base import Backend, ObjectInfo


class ClockJumpBackend:
    def __init__(self, inner: Backend, *, jumps: list[tuple[datetime, timedelta]]) -> None:
        self.inner, self.jumps = inner, list(jumps)

    def __repr__(self) -> str:
        return f"ClockJumpBackend({self.inner!r}, jumps={self.jumps})"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _shift(self, info: ObjectInfo) -> ObjectInfo:
        shift = sum((jump for cutoff, jump in self.jumps if info.modified >= cutoff), timedelta())
        return replace(info, modified=info.modified + shift) if shift else info

    async def stat(self, name: str) -> ObjectInfo:
        return self._shift(await self.inner.stat(name))

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        async for info in self.inner.list(prefix):
            yield self._shift(info)

    async def aclose(self) -> None:
        await self.inner.aclose()
