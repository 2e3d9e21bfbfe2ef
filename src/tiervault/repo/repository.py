"""The repository facade over one ``Backend``: config, key slots, the index, packs, trees, snapshots
and items. It never imports a concrete backend; ``api.py`` hands one in.

Object names (docs/format.md, "Object layout"): ``config``, ``keys/<h>``, ``items/<h>``,
``snapshots/<h>``, ``index/<h>``, ``data/<h[:2]>/<h>``, ``meta/<h[:2]>/<h>``, where ``<h>`` is the
BLAKE3 of the stored bytes: every object but ``config`` can be checked against its own name.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from tiervault.backend.base import Backend
from tiervault.core.chunker import ChunkerParams
from tiervault.core.crypto import (
    TAG_SIZE,
    AuthenticationFailed,
    MasterKeys,
    ScryptParams,
    UnitCipher,
    chunk_id,
    object_hash,
)
from tiervault.core.format import FORMAT_VERSION, FormatError
from tiervault.core.format.envelope import ObjectType, open_object, seal_object
from tiervault.core.format.indexfile import PackRecord, decode_index, encode_index
from tiervault.core.format.keyfile import (
    CONFIG_NAME,
    KeySlot,
    decode_config,
    encode_config,
    open_keys,
    seal_keys,
)
from tiervault.core.format.pack import (
    FLAG_TREE,
    PRELUDE_SIZE,
    TRAILER_SIZE,
    PackEntry,
    PackKind,
    header_length,
    open_blob,
    open_header,
    parse_prelude,
)
from tiervault.core.format.tree import Node, decode_tree
from tiervault.errors import (
    IntegrityError,
    NotFoundError,
    ObjectNotFoundError,
    RepositoryExistsError,
    RepositoryNotFoundError,
    UnsupportedFormatError,
    UsageError,
    WrongPasswordError,
)
from tiervault.repo.index import Index, Location, PackInfo, pack_name
from tiervault.repo.provenance import host_name, now_iso, user_name
from tiervault.repo.snapshots import ItemRecord, SnapshotRecord

log = logging.getLogger("tiervault.repo")

DEFAULT_PACK_SIZE = 16 << 20
#: the default for a repository on a local file system (``tiervault.init``)
LOCAL_PACK_SIZE = 8 << 20
#: an index file is written after this many new packs (~512 MiB), not only at the end of a snapshot
INDEX_FLUSH_PACKS = 32
#: metadata packs kept in memory while trees are walked
META_CACHE_BYTES = 64 << 20
_T = TypeVar("_T")


async def _bounded_gather(funcs: Iterable[Callable[[], Awaitable[_T]]], limit: int = 16) -> list[_T]:
    sem = asyncio.Semaphore(limit)

    async def one(f: Callable[[], Awaitable[_T]]) -> _T:
        async with sem:
            return await f()

    return list(await asyncio.gather(*(one(f) for f in funcs)))


class Repository:
    """An opened repository. Create with :meth:`init` or :meth:`open`."""

    def __init__(self, backend: Backend, config: dict[str, Any], keys: MasterKeys, key_name: str) -> None:
        self.backend = backend
        self.config = config
        self.keys = keys
        self.key_name = key_name
        self.id: str = config["id"]
        self.tree_key = keys.tree_id
        self.chunker_params = ChunkerParams.from_json(config["chunker"])
        self.pack_size: int = int(config["pack_size"])
        self.index = Index()
        self.index_errors: list[IntegrityError] = []
        self._pending: list[PackRecord] = []
        self._pending_lock = asyncio.Lock()
        self._flush_lock = asyncio.Lock()
        self._trees: OrderedDict[bytes, list[Node]] = OrderedDict()
        self._tree_cache_size = 1024
        self._meta_packs: OrderedDict[str, bytes] = OrderedDict()
        self._meta_bytes = 0
        self._cache_lock = threading.Lock()
        self._ciphers: OrderedDict[bytes, UnitCipher] = OrderedDict()

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def init(
        cls,
        backend: Backend,
        password: bytes,
        *,
        chunker: ChunkerParams | None = None,
        pack_size: int = DEFAULT_PACK_SIZE,
        kdf: ScryptParams | None = None,
    ) -> Repository:
        chunker = chunker or ChunkerParams()
        chunker.validate()
        if not 1 << 20 <= pack_size <= 256 << 20:
            raise UsageError("pack_size must be between 1 MiB and 256 MiB")
        if not password:
            raise UsageError("an empty password is not allowed")
        try:
            await backend.stat(CONFIG_NAME)
        except ObjectNotFoundError:
            pass
        else:
            raise RepositoryExistsError(f"a repository already exists at {backend.location}")
        repo_id = os.urandom(32).hex()
        config_bytes = encode_config(repo_id, now_iso(), chunker.to_json(), pack_size)
        keys = MasterKeys.generate()
        config = decode_config(config_bytes)
        repo = cls(backend, config, keys, "")
        # key first, config last: a repository "exists" only once it can also be opened
        repo.key_name = await repo._write_key_slot(password, kdf or ScryptParams(), object_hash(config_bytes))
        if not await backend.put_if_absent(CONFIG_NAME, config_bytes) and (
            await backend.get(CONFIG_NAME) != config_bytes  # equal: our write, its response was lost
        ):
            await backend.delete(repo.key_name)
            raise RepositoryExistsError(f"a repository was created concurrently at {backend.location}")
        log.info("initialised repository %s at %s", repo_id[:8], backend.location)
        return repo

    @classmethod
    async def open(cls, backend: Backend, password: bytes) -> Repository:
        try:
            config_bytes = await backend.get(CONFIG_NAME)
        except ObjectNotFoundError as exc:
            why = f" ({exc})" if "container" in str(exc) else ""
            raise RepositoryNotFoundError(f"no tiervault repository at {backend.location}{why}") from exc
        try:
            config = decode_config(config_bytes)
        except FormatError as exc:
            raise UnsupportedFormatError(f"{backend.location} is not a tiervault repository: {exc}") from exc
        if config["version"] != FORMAT_VERSION:
            raise UnsupportedFormatError(
                f"repository format version {config['version']} is not supported by this tiervault "
                f"(it reads version {FORMAT_VERSION}); upgrade tiervault"
            )
        try:
            ChunkerParams.from_json(config["chunker"])
        except (ValueError, KeyError, TypeError) as exc:  # ParameterError is a ValueError
            raise UnsupportedFormatError(
                f"{backend.location}: config has unusable chunker parameters: {exc}"
            ) from exc
        repo_id = str(config.get("id", ""))
        slots = [info.name async for info in backend.list("keys/")]
        if not slots:
            raise IntegrityError("keys/", "the repository has no key slots")
        damaged: list[IntegrityError] = []
        for name in sorted(slots):
            try:
                slot = KeySlot.from_bytes(await repo_get_verified(backend, name))
            except IntegrityError as exc:
                damaged.append(exc)
                continue
            except FormatError as exc:
                damaged.append(IntegrityError(name, str(exc)))
                continue
            try:
                keys, config_hash = await asyncio.to_thread(open_keys, slot, repo_id, password)
            except AuthenticationFailed:
                continue
            if config_hash != object_hash(config_bytes):
                raise IntegrityError(CONFIG_NAME, "config does not match the hash sealed in the key slot")
            repo = cls(backend, config, keys, name)
            await repo.load_index()
            return repo
        if damaged and len(damaged) == len(slots):
            raise damaged[0]
        for problem in damaged:
            log.error("skipped a damaged key slot: %s", problem)
        raise WrongPasswordError("wrong password: no key slot of this repository opens with it")

    # ------------------------------------------------------------------ raw objects

    async def get_verified(self, name: str) -> bytes:
        return await repo_get_verified(self.backend, name)

    async def _put_hashed(self, prefix: str, data: bytes) -> str:
        name = prefix + object_hash(data)
        await self.backend.put_if_absent(name, data)
        return name

    async def _save_object(self, prefix: str, otype: ObjectType, obj: Any) -> str:
        plain = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")
        return await self._put_hashed(prefix, seal_object(self.keys.encryption, otype, plain))

    async def _load_object(self, name: str, otype: ObjectType) -> bytes:
        data = await self.get_verified(name)
        try:
            return open_object(self.keys.encryption, otype, data)
        except AuthenticationFailed as exc:
            raise IntegrityError(name, "authentication failed") from exc
        except FormatError as exc:
            raise IntegrityError(name, str(exc)) from exc

    # ------------------------------------------------------------------ keys

    async def _write_key_slot(
        self, password: bytes, kdf: ScryptParams, config_hash: str | None = None
    ) -> str:
        if config_hash is None:
            config_hash = object_hash(await self.backend.get(CONFIG_NAME))
        slot = await asyncio.to_thread(
            seal_keys,
            self.keys,
            config_hash,
            self.id,
            password,
            kdf,
            salt=os.urandom(32),
            created=now_iso(),
            host=host_name(),
            user=user_name(),
        )
        return await self._put_hashed("keys/", slot.to_bytes())

    async def add_key(self, password: bytes, *, kdf: ScryptParams | None = None) -> str:
        if not password:
            raise UsageError("an empty password is not allowed")
        return (await self._write_key_slot(password, kdf or ScryptParams())).removeprefix("keys/")

    async def list_keys(self) -> list[dict[str, Any]]:
        out = []
        async for info in self.backend.list("keys/"):
            kid = info.name.removeprefix("keys/")
            try:
                slot = KeySlot.from_bytes(await self.get_verified(info.name))
            except (IntegrityError, FormatError) as exc:
                out.append(
                    {"id": kid, "current": False, "created": "", "host": "", "user": "", "damaged": str(exc)}
                )
                continue
            out.append(
                {
                    "id": kid,
                    "current": info.name == self.key_name,
                    "created": slot.created,
                    "host": slot.host,
                    "user": slot.user,
                }
            )
        return sorted(out, key=lambda k: k["created"])

    async def remove_key(self, key_id: str) -> None:
        keys = await self.list_keys()
        matches = [k for k in keys if k["id"].startswith(key_id)] if key_id else []
        if len(matches) != 1:
            raise NotFoundError(f"no single key matches {key_id!r}")
        if matches[0]["current"]:
            raise UsageError("refusing to remove the key this session opened with (use passwd)")
        await self.backend.delete("keys/" + matches[0]["id"])

    async def change_password(self, new_password: bytes, *, kdf: ScryptParams | None = None) -> str:
        """Write a new key slot for ``new_password``, then remove the one this session opened with."""
        new_id = await self.add_key(new_password, kdf=kdf)
        old = self.key_name
        self.key_name = "keys/" + new_id
        await self.backend.delete(old)
        return new_id

    # ------------------------------------------------------------------ index and packs

    async def load_index_file(self, name: str) -> list[PackRecord]:
        plain = await self._load_object(name, ObjectType.INDEX)
        try:
            return decode_index(plain)
        except FormatError as exc:
            raise IntegrityError(name, str(exc)) from exc

    async def load_index(self) -> None:
        """Load every index file. A damaged one is logged and kept in ``index_errors`` (``check``
        reports it; a restore that needs a chunk only it listed fails naming it) instead of making
        the whole repository unusable."""
        names = await self.index_names()

        async def load(name: str) -> list[PackRecord]:
            try:
                return await self.load_index_file(name)
            except IntegrityError as exc:
                log.error("%s", exc)
                self.index_errors.append(exc)
                return []

        for records in await _bounded_gather([functools.partial(load, n) for n in names]):
            for rec in records:
                self.index.add_record(rec)

    async def index_names(self) -> list[str]:
        return [info.name async for info in self.backend.list("index/")]

    @property
    def put_needs_bytes(self) -> bool:
        """Whether the store copies a ``memoryview`` handed to ``put_if_absent`` into ``bytes`` (Azure):
        a pack writer then converts its buffer itself and frees it, instead of both living through
        the upload."""
        return self.backend.capabilities.put_needs_bytes

    async def save_pack(
        self, kind: PackKind, salt: bytes, data: bytes | memoryview, entries: list[PackEntry]
    ) -> str:
        """Store a finished pack, then make its chunks known (in memory now, in an index file at the
        next :meth:`flush_index`). Returns the pack id."""
        pid = await asyncio.to_thread(object_hash, data)
        name = pack_name(kind, pid)
        created = await self.backend.put_if_absent(name, data)
        if not created:
            log.debug("pack %s already stored", pid[:12])
        rec = PackRecord(pid, kind, salt, tuple(entries))
        self.index.add_record(rec)
        async with self._pending_lock:
            self._pending.append(rec)
            due = len(self._pending) >= INDEX_FLUSH_PACKS
        if due:  # a long snapshot indexes its packs as it goes: an interruption loses little
            await self.flush_index()
        return pid

    async def index_orphan_packs(self) -> int:
        """Index packs that reached storage but not an index file (an interrupted snapshot), so the
        next snapshot reuses their chunks instead of uploading them again. Reads only each orphan's
        prelude, header and trailer. A pack whose header does not authenticate is left to ``check``.
        Returns how many packs were recovered."""
        known = self.index.pack_ids()
        orphans = []
        for kind in PackKind:
            async for info in self.backend.list(kind.prefix + "/"):
                pid = info.name.rsplit("/", 1)[-1]
                if pid not in known and len(pid) == 64:
                    orphans.append((kind, pid, info.size))

        async def recover(kind: PackKind, pid: str, size: int) -> PackRecord | None:
            name = pack_name(kind, pid)
            try:
                if size < PRELUDE_SIZE + TRAILER_SIZE + TAG_SIZE:
                    raise FormatError("too short for a pack")
                prelude = await self.backend.get(name, offset=0, length=PRELUDE_SIZE)
                hlen = header_length(
                    await self.backend.get(name, offset=size - TRAILER_SIZE, length=TRAILER_SIZE)
                )
                start = size - TRAILER_SIZE - hlen
                if start < PRELUDE_SIZE:
                    raise FormatError("header length out of range")
                sealed = await self.backend.get(name, offset=start, length=hlen)
                entries = await asyncio.to_thread(open_header, self.keys.encryption, prelude, sealed, start)
                found_kind, salt = parse_prelude(prelude)
                if found_kind is not kind:
                    raise FormatError("pack kind does not match its folder")
            except (FormatError, AuthenticationFailed) as exc:
                log.warning("unindexed pack %s is unreadable (check reports it): %s", name, exc)
                return None
            return PackRecord(pid, kind, salt, tuple(entries))

        records = await _bounded_gather([functools.partial(recover, *o) for o in orphans])
        recovered = [r for r in records if r is not None]
        for rec in recovered:
            self.index.add_record(rec)
        if recovered:
            async with self._pending_lock:
                self._pending.extend(recovered)
            await self.flush_index()
            log.info("indexed %d pack(s) left by an interrupted snapshot", len(recovered))
        return len(recovered)

    async def flush_index(self) -> str | None:
        """Write one index file for the packs stored since the last flush."""
        # One flush at a time, and the lock is held until the file is stored: a session that finds
        # nothing pending knows that everything it may have reused from another session is indexed.
        async with self._flush_lock:
            async with self._pending_lock:
                records, self._pending = self._pending, []
            if not records:
                return None
            try:
                data = await asyncio.to_thread(
                    lambda: seal_object(self.keys.encryption, ObjectType.INDEX, encode_index(records))
                )
                return await self._put_hashed("index/", data)
            except BaseException:
                async with self._pending_lock:
                    self._pending[:0] = records
                raise

    def _cipher(self, salt: bytes) -> UnitCipher:
        """The unit cipher of a pack, cached: deriving it costs more than opening a small blob."""
        cipher = self._ciphers.get(salt)
        if cipher is None:
            cipher = UnitCipher(self.keys.encryption, salt)
            with self._cache_lock:
                self._ciphers[salt] = cipher
                if len(self._ciphers) > 256:
                    self._ciphers.popitem(last=False)
        return cipher

    def open_pack_blob(self, pack: PackInfo, entry: PackEntry, sealed: bytes | memoryview) -> bytes:
        """Authenticate, decompress and check the keyed id of one blob (thread-safe, CPU-bound)."""
        name = pack.name
        try:
            plain = open_blob(self._cipher(pack.salt), entry, sealed)
        except AuthenticationFailed as exc:
            raise IntegrityError(
                name, f"chunk {entry.id.hex()[:16]} at offset {entry.offset} failed authentication"
            ) from exc
        except FormatError as exc:
            raise IntegrityError(name, str(exc)) from exc
        key = self.tree_key if entry.flags & FLAG_TREE else self.keys.chunk_id
        if chunk_id(key, plain) != entry.id:
            raise IntegrityError(name, f"chunk {entry.id.hex()[:16]} does not match its id")
        return plain

    def locate(self, cid: bytes) -> Location:
        loc = self.index.lookup(cid)
        if loc is None:
            where = self.index_errors[0].name if self.index_errors else "index"
            raise IntegrityError(where, f"chunk {cid.hex()[:16]} is referenced but not in any readable index")
        return loc

    async def read_blob(self, cid: bytes) -> bytes:
        loc = self.locate(cid)
        sealed = await self.backend.get(loc.pack.name, offset=loc.entry.offset, length=loc.entry.length)
        if len(sealed) != loc.entry.length:
            raise IntegrityError(loc.pack.name, "pack is shorter than its index says")
        return await asyncio.to_thread(self.open_pack_blob, loc.pack, loc.entry, sealed)

    def cached_tree(self, tid: bytes) -> list[Node] | None:
        """A tree without I/O, if it or its whole metadata pack is in memory (thread-safe).

        Walking a tree of thousands of directories then costs one read per metadata pack instead of
        one round trip through the event loop per directory.
        """
        with self._cache_lock:
            hit = self._trees.get(tid)
            if hit is not None:
                self._trees.move_to_end(tid)
                return hit
        data = self.cached_tree_data(tid)
        return None if data is None else self._remember_tree(tid, data)

    def cached_tree_data(self, tid: bytes) -> bytes | None:
        """A tree's authenticated plaintext without I/O, if its metadata pack is in memory (thread-safe)."""
        with self._cache_lock:
            loc = self.index.lookup(tid)
            pack = self._meta_packs.get(loc.pack.id) if loc is not None else None
            if pack is not None:
                self._meta_packs.move_to_end(loc.pack.id)  # type: ignore[union-attr]
        if loc is None or pack is None:
            return None
        sealed = memoryview(pack)[loc.entry.offset : loc.entry.offset + loc.entry.length]
        return self.open_pack_blob(loc.pack, loc.entry, sealed)

    def _remember_tree(self, tid: bytes, data: bytes) -> list[Node]:
        try:
            nodes = decode_tree(data)
        except FormatError as exc:
            raise self.tree_error(tid, exc) from exc
        with self._cache_lock:
            self._trees[tid] = nodes
            if len(self._trees) > self._tree_cache_size:
                self._trees.popitem(last=False)
        return nodes

    def tree_error(self, tid: bytes, exc: Exception) -> IntegrityError:
        loc = self.index.lookup(tid)
        return IntegrityError(loc.pack.name if loc else "tree", f"tree {tid.hex()[:16]}: {exc}")

    async def load_tree(self, tid: bytes) -> list[Node]:
        """A tree by id. Its whole metadata pack is read once, checked against its name, and kept
        in memory (up to ``META_CACHE_BYTES``) for the trees that follow."""
        nodes = self.cached_tree(tid)
        if nodes is not None:
            return nodes
        return self._remember_tree(tid, await self.load_tree_data(tid))

    async def load_tree_data(self, tid: bytes) -> bytes:
        """A tree's authenticated plaintext (see ``load_tree``; nothing is decoded)."""
        data = self.cached_tree_data(tid)
        if data is not None:
            return data
        loc = self.locate(tid)
        if loc.pack.kind is not PackKind.META:
            return await self.read_blob(tid)
        pack = await self.backend.get(loc.pack.name)
        if await asyncio.to_thread(object_hash, pack) != loc.pack.id:
            raise IntegrityError(loc.pack.name, "content does not match its name (hash mismatch)")
        with self._cache_lock:
            self._meta_packs[loc.pack.id] = pack
            self._meta_bytes += len(pack)
            while self._meta_bytes > META_CACHE_BYTES and len(self._meta_packs) > 1:
                _, old = self._meta_packs.popitem(last=False)
                self._meta_bytes -= len(old)
        sealed = memoryview(pack)[loc.entry.offset : loc.entry.offset + loc.entry.length]
        return await asyncio.to_thread(self.open_pack_blob, loc.pack, loc.entry, sealed)

    # ------------------------------------------------------------------ snapshots

    async def save_snapshot(self, snap: SnapshotRecord) -> str:
        name = await self._save_object("snapshots/", ObjectType.SNAPSHOT, snap.to_json())
        snap.id = name.removeprefix("snapshots/")
        return snap.id

    async def load_snapshot(self, sid: str) -> SnapshotRecord:
        name = "snapshots/" + sid
        try:
            obj = json.loads(await self._load_object(name, ObjectType.SNAPSHOT))
            return SnapshotRecord.from_json(obj, sid)
        except (FormatError, ValueError) as exc:
            raise IntegrityError(name, str(exc)) from exc

    async def snapshot_ids(self) -> list[str]:
        return [info.name.removeprefix("snapshots/") async for info in self.backend.list("snapshots/")]

    async def list_snapshots(self) -> list[SnapshotRecord]:
        """Every readable snapshot, oldest first. A damaged one is skipped with a warning naming it
        (``check`` reports it as an error): one bad object must not hide the others, nor stop a
        backup that looks for its parent among them."""
        snaps, damaged = await self.load_snapshots()
        for exc in damaged:
            log.warning("skipped a damaged recovery point (check reports it): %s", exc)
        return snaps

    async def load_snapshots(self) -> tuple[list[SnapshotRecord], list[IntegrityError]]:
        """(the readable snapshots oldest first, the damaged ones' errors); nothing is logged."""
        ids = await self.snapshot_ids()

        async def load(sid: str) -> SnapshotRecord | IntegrityError | None:
            try:
                return await self.load_snapshot(sid)
            except IntegrityError as exc:
                return exc
            except ObjectNotFoundError:  # removed since it was listed
                return None

        loaded = await _bounded_gather([functools.partial(load, i) for i in ids])
        snaps = [s for s in loaded if isinstance(s, SnapshotRecord)]
        damaged = sorted((e for e in loaded if isinstance(e, IntegrityError)), key=lambda e: e.name)
        return sorted(snaps, key=lambda s: (s.time, s.id)), damaged

    async def find_snapshot(self, ref: str) -> SnapshotRecord:
        """A snapshot by full id or unique id prefix (at least 4 hex digits)."""
        ids = await self.snapshot_ids()
        matches = [i for i in ids if i.startswith(ref)] if len(ref) >= 4 else []
        if len(matches) != 1:
            more = "is ambiguous" if len(matches) > 1 else "matches no recovery point"
            raise NotFoundError(f"recovery point {ref!r} {more}")
        return await self.load_snapshot(matches[0])

    # ------------------------------------------------------------------ items

    async def save_item(self, item: ItemRecord, *, replaces: str | None = None) -> str:
        name = await self._save_object("items/", ObjectType.ITEM, item.to_json())
        item.id = name.removeprefix("items/")
        if replaces and replaces != item.id:
            await self.backend.delete("items/" + replaces)
        return item.id

    async def list_items(self) -> list[ItemRecord]:
        names = [info.name async for info in self.backend.list("items/")]

        async def load(name: str) -> ItemRecord:
            try:
                obj = json.loads(await self._load_object(name, ObjectType.ITEM))
                return ItemRecord.from_json(obj, name.removeprefix("items/"))
            except (FormatError, ValueError) as exc:
                raise IntegrityError(name, str(exc)) from exc

        latest: dict[str, ItemRecord] = {}
        for it in await _bounded_gather([functools.partial(load, n) for n in names]):
            cur = latest.get(it.name)
            if cur is None or (it.updated, it.id) > (cur.updated, cur.id):
                latest[it.name] = it
        return sorted(latest.values(), key=lambda i: i.name)


async def repo_get_verified(backend: Backend, name: str) -> bytes:
    """Read a content-addressed object and check it against its name (no key needed)."""
    data = await backend.get(name)
    if object_hash(data) != name.rsplit("/", 1)[-1]:
        raise IntegrityError(name, "content does not match its name (hash mismatch)")
    return data
