"""Stored objects by name: content-addressed puts, reads checked against their names, and the sealed
JSON objects (index files, snapshots, items) that every part of the repository reads and writes.

Every object but ``config`` is named by the BLAKE3 of its bytes (docs/format.md, "Object layout"), so
a read can be checked against its own name before any key is used.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from tiervault.backend.base import Backend
from tiervault.core.crypto import AuthenticationFailed, object_hash
from tiervault.core.format import FormatError
from tiervault.core.format.envelope import ObjectType, open_object, seal_object
from tiervault.errors import IntegrityError

_T = TypeVar("_T")


async def bounded_gather(funcs: Iterable[Callable[[], Awaitable[_T]]], limit: int = 16) -> list[_T]:
    """Run the calls concurrently, at most ``limit`` at a time; their results in order."""
    sem = asyncio.Semaphore(limit)

    async def one(f: Callable[[], Awaitable[_T]]) -> _T:
        async with sem:
            return await f()

    return list(await asyncio.gather(*(one(f) for f in funcs)))


async def get_verified(backend: Backend, name: str) -> bytes:
    """Read a content-addressed object and check it against its name (no key needed)."""
    data = await backend.get(name)
    if object_hash(data) != name.rsplit("/", 1)[-1]:
        raise IntegrityError(name, "content does not match its name (hash mismatch)")
    return data


async def put_hashed(backend: Backend, prefix: str, data: bytes) -> str:
    """Store ``data`` as ``prefix + hash``; return that name (already stored is fine)."""
    name = prefix + object_hash(data)
    await backend.put_if_absent(name, data)
    return name


class SealedObjects:
    """JSON objects sealed with the repository's encryption key, in their envelope."""

    def __init__(self, backend: Backend, encryption_key: bytes) -> None:
        self.backend = backend
        self._key = encryption_key

    async def save(self, prefix: str, otype: ObjectType, obj: Any) -> str:
        """Seal ``obj`` as canonical JSON and store it as ``prefix + hash``; returns that name."""
        plain = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")
        return await self.save_plain(prefix, otype, plain)

    async def save_plain(self, prefix: str, otype: ObjectType, plain: bytes) -> str:
        """Seal ``plain`` (already encoded) and store it as ``prefix + hash``; returns that name."""
        return await put_hashed(self.backend, prefix, seal_object(self._key, otype, plain))

    def seal(self, prefix: str, otype: ObjectType, plain: bytes) -> tuple[str, bytes]:
        """``save_plain`` without the put: the name the sealed bytes will have, and the bytes."""
        data = seal_object(self._key, otype, plain)
        return prefix + object_hash(data), data

    async def load(self, name: str, otype: ObjectType) -> bytes:
        """The plaintext of a sealed object, checked against its name and authenticated."""
        return self.open_bytes(name, await self.backend.get(name), otype)

    def open_bytes(self, name: str, data: bytes, otype: ObjectType) -> bytes:
        """``load`` for bytes already read: checked against ``name``, authenticated, of type ``otype``."""
        if object_hash(data) != name.rsplit("/", 1)[-1]:
            raise IntegrityError(name, "content does not match its name (hash mismatch)")
        try:
            return open_object(self._key, otype, data)
        except AuthenticationFailed as exc:
            raise IntegrityError(name, "authentication failed") from exc
        except FormatError as exc:
            raise IntegrityError(name, str(exc)) from exc
