"""Tests of the local disk tier (``tiervault.cache``): the local backend plays the cloud, wrapped by a
counting wrapper, so a test can prove how many read requests reached "the store".

Shared helpers live here; fixtures in ``conftest.py``.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tiervault
from tests.support.trees import File, build_tree
from tiervault.backend.base import Backend, Capabilities, ObjectInfo

PASSWORD = "cache correct horse"
KDF = tiervault.ScryptParams(log_n=10)  # fast key derivation: tests, not security
PACK_SIZE = 1 << 20  # the smallest pack size: several packs from a few MiB
MiB = 1 << 20
KiB = 1 << 10
READS = ("get", "open_read", "stat", "list")


@dataclass
class Tally:
    """What every :class:`CountingBackend` of a test saw (one per opened vault)."""

    calls: Counter[str] = field(default_factory=Counter)
    #: (name, offset, length) of every get
    gets: list[tuple[str, int, int | None]] = field(default_factory=list)
    #: called with the object name after each successful put (e.g. to delete the cache mid-run)
    after_put: Callable[[str], None] | None = None

    @property
    def reads(self) -> int:
        """Read requests that reached the store: get, open_read, stat and list."""
        return sum(self.calls[m] for m in READS)

    def reset(self) -> None:
        self.calls.clear()
        self.gets.clear()


class CountingBackend:
    """Wraps the "cloud" backend and counts the requests that reach it."""

    def __init__(self, inner: Backend, tally: Tally) -> None:
        self.inner = inner
        self.tally = tally

    def __getattr__(self, attr: str) -> Any:  # everything not counted passes through
        return getattr(self.inner, attr)

    @property
    def location(self) -> str:
        return self.inner.location

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    async def get(self, name: str, *, offset: int = 0, length: int | None = None) -> bytes:
        self.tally.calls["get"] += 1
        self.tally.gets.append((name, offset, length))
        return await self.inner.get(name, offset=offset, length=length)

    async def open_read(self, name: str, **kwargs: Any) -> AsyncIterator[bytes]:
        self.tally.calls["open_read"] += 1
        async for block in self.inner.open_read(name, **kwargs):
            yield block

    async def stat(self, name: str) -> ObjectInfo:
        self.tally.calls["stat"] += 1
        return await self.inner.stat(name)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        self.tally.calls["list"] += 1
        async for info in self.inner.list(prefix):
            yield info

    async def put_if_absent(self, name: str, data: bytes | memoryview) -> bool:
        self.tally.calls["put_if_absent"] += 1
        created = await self.inner.put_if_absent(name, data)
        if self.tally.after_put is not None:
            self.tally.after_put(name)
        return created


def random_tree(root: Path, *, files: int = 6, size: int = 700 * KiB, seed: int = 1) -> int:
    """``files`` incompressible files of ``size`` bytes in two directories; returns the total."""
    rnd = random.Random(seed)
    build_tree(root, {f"d{i % 2}/f{i:02}.bin": File(rnd.randbytes(size)) for i in range(files)})
    return files * size


def init_vault(url: str | os.PathLike[str], cache: Path | bool | None, **kw: Any):  # type: ignore[no-untyped-def]
    return tiervault.init(url, password=PASSWORD, kdf=KDF, pack_size=PACK_SIZE, cache_dir=cache, **kw)


def open_vault(url: str | os.PathLike[str], cache: Path | bool | None, **kw: Any):  # type: ignore[no-untyped-def]
    return tiervault.open(url, password=PASSWORD, cache_dir=cache, **kw)


def cache_root(cache_dir: Path) -> Path:
    """The one repository folder inside a cache directory."""
    (root,) = [p for p in cache_dir.iterdir() if p.is_dir()]
    return root


def cached(cache_dir: Path, prefix: str = "") -> dict[str, int]:
    """Cached object names (under ``prefix``) and their sizes, without temporary files."""
    if not cache_dir.exists():
        return {}
    root = cache_root(cache_dir)
    return {
        str(p.relative_to(root)): p.stat().st_size
        for p in root.rglob("*")
        if p.is_file()
        and not p.name.startswith(".tmp-")
        and p.name != "CACHEDIR.TAG"
        and str(p.relative_to(root)).startswith(prefix)
    }


def stored(repo: Path, prefix: str = "") -> dict[str, int]:
    """Objects of a local repository (under ``prefix``) and their sizes."""
    return {
        str(p.relative_to(repo)): p.stat().st_size
        for p in repo.rglob("*")
        if p.is_file()
        and not any(part.startswith((".tmp-", ".tv-")) for part in p.relative_to(repo).parts)
        and str(p.relative_to(repo)).startswith(prefix)
    }


def cache_warnings(records: list[Any]) -> list[str]:
    return [r.getMessage() for r in records if r.name == "tiervault.cache" and r.levelname == "WARNING"]
