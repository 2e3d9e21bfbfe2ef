"""Packs by chunk: storing a finished pack (then indexing it), finding a chunk's pack, and reading and
opening one blob (authenticated, decompressed, checked against its keyed id). Writing packs is
``repo/packer.py``'s; this module stores and reads them."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict

from tiervault.backend.base import Backend
from tiervault.core.crypto import AuthenticationFailed, MasterKeys, UnitCipher, chunk_id, object_hash
from tiervault.core.format import FormatError
from tiervault.core.format.indexfile import PackRecord
from tiervault.core.format.pack import FLAG_TREE, PackEntry, PackKind, open_blob
from tiervault.errors import IntegrityError
from tiervault.repo.index import Index, Location, PackInfo, pack_name
from tiervault.repo.indexing import IndexFiles

log = logging.getLogger("tiervault.repo")

#: unit ciphers of packs kept (deriving one costs more than opening a small blob)
CIPHER_CACHE = 256


class Packs:
    """Stored packs of one repository, located through ``index``."""

    def __init__(self, backend: Backend, keys: MasterKeys, index: Index, index_files: IndexFiles) -> None:
        self.backend, self.keys, self.index, self.index_files = backend, keys, index, index_files
        self._ciphers: OrderedDict[bytes, UnitCipher] = OrderedDict()
        self._lock = threading.Lock()

    async def save_pack(
        self, kind: PackKind, salt: bytes, data: bytes | memoryview, entries: list[PackEntry]
    ) -> str:
        """Store a finished pack, then make its chunks known (in memory now, in an index file at the
        next flush). Returns the pack id."""
        pid = await asyncio.to_thread(object_hash, data)
        name = pack_name(kind, pid)
        created = await self.backend.put_if_absent(name, data)
        if not created:
            log.debug("pack %s already stored", pid[:12])
        await self.index_files.add(PackRecord(pid, kind, salt, tuple(entries)))
        return pid

    def cipher(self, salt: bytes) -> UnitCipher:
        """The unit cipher of a pack, cached: deriving it costs more than opening a small blob."""
        cipher = self._ciphers.get(salt)
        if cipher is None:
            cipher = UnitCipher(self.keys.encryption, salt)
            with self._lock:
                self._ciphers[salt] = cipher
                if len(self._ciphers) > CIPHER_CACHE:
                    self._ciphers.popitem(last=False)
        return cipher

    def open_blob(self, pack: PackInfo, entry: PackEntry, sealed: bytes | memoryview) -> bytes:
        """Authenticate, decompress and check the keyed id of one blob (thread-safe, CPU-bound)."""
        name = pack.name
        try:
            plain = open_blob(self.cipher(pack.salt), entry, sealed)
        except AuthenticationFailed as exc:
            raise IntegrityError(
                name, f"chunk {entry.id.hex()[:16]} at offset {entry.offset} failed authentication"
            ) from exc
        except FormatError as exc:
            raise IntegrityError(name, str(exc)) from exc
        key = self.keys.tree_id if entry.flags & FLAG_TREE else self.keys.chunk_id
        if chunk_id(key, plain) != entry.id:
            raise IntegrityError(name, f"chunk {entry.id.hex()[:16]} does not match its id")
        return plain

    def locate(self, cid: bytes) -> Location:
        loc = self.index.lookup(cid)
        if loc is None:
            errors = self.index_files.errors
            where = errors[0].name if errors else "index"
            raise IntegrityError(where, f"chunk {cid.hex()[:16]} is referenced but not in any readable index")
        return loc

    async def read_blob(self, cid: bytes) -> bytes:
        return await self.read_at(self.locate(cid))

    async def read_at(self, loc: Location) -> bytes:
        """One blob's plaintext from the given location (authenticated, checked against its id)."""
        sealed = await self.backend.get(loc.pack.name, offset=loc.entry.offset, length=loc.entry.length)
        if len(sealed) != loc.entry.length:
            raise IntegrityError(loc.pack.name, "pack is shorter than its index says")
        return await asyncio.to_thread(self.open_blob, loc.pack, loc.entry, sealed)
