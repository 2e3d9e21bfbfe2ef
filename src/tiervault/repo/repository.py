"""The repository facade over one ``Backend``: it opens or creates a repository and composes the parts
that hold each concern (docs/architecture.md, "Repository"). It never imports a concrete backend;
``api.py`` hands one in.

    keyring.py   config and key slots        indexing.py  index files, orphan packs
    packs.py     storing and reading packs   trees.py     trees and their memory cache
    points.py    snapshots and items         objects.py   verified and sealed objects

Object names (docs/format.md, "Object layout"): ``config``, ``keys/<h>``, ``items/<h>``,
``snapshots/<h>``, ``index/<h>``, ``data/<h[:2]>/<h>``, ``meta/<h[:2]>/<h>``, where ``<h>`` is the
BLAKE3 of the stored bytes: every object but ``config`` can be checked against its own name.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from tiervault.backend.base import Backend
from tiervault.core.chunker import ChunkerParams
from tiervault.core.crypto import MasterKeys, ScryptParams, object_hash
from tiervault.core.format import REPOSITORY_VERSIONS, WRITE_FEATURES
from tiervault.core.format.envelope import ObjectType
from tiervault.core.format.indexfile import PackRecord
from tiervault.core.format.keyfile import (
    CONFIG_NAME,
    CONFIG_NEXT_NAME,
    canonical_json,
    decode_config,
    encode_config,
)
from tiervault.core.format.pack import PackEntry, PackKind
from tiervault.core.format.tree import Node
from tiervault.errors import (
    IntegrityError,
    ObjectNotFoundError,
    RepositoryExistsError,
    UnsupportedFormatError,
    UsageError,
)
from tiervault.repo.gcstate import GcState, load_gc_state
from tiervault.repo.heartbeat import WriterSessions
from tiervault.repo.index import Index, Location, PackInfo
from tiervault.repo.indexing import INDEX_FLUSH_PACKS, IndexFiles
from tiervault.repo.keyring import Keyring, read_stored_config, unlock
from tiervault.repo.objects import SealedObjects, get_verified
from tiervault.repo.packs import Packs
from tiervault.repo.points import Points
from tiervault.repo.provenance import now_iso
from tiervault.repo.snapshots import ItemRecord, SnapshotRecord
from tiervault.repo.trees import META_CACHE_BYTES, Trees
from tiervault.repo.upgrade import StoredConfig, UpgradeResult, settle, upgrade

__all__ = ["DEFAULT_PACK_SIZE", "INDEX_FLUSH_PACKS", "LOCAL_PACK_SIZE", "META_CACHE_BYTES", "Repository"]

log = logging.getLogger("tiervault.repo")

DEFAULT_PACK_SIZE = 16 << 20
#: the default for a repository on a local file system (``tiervault.init``)
LOCAL_PACK_SIZE = 8 << 20


def view_token(state: GcState) -> tuple[frozenset[str], frozenset[str], int]:
    """What the ranks of a GC view depend on: its plans and GONE records (and damaged objects)."""
    return frozenset(state.plans), frozenset(state.gones), len(state.damaged)


class Repository:
    """An opened repository. Create with :meth:`init` or :meth:`open`."""

    def __init__(self, backend: Backend, config: dict[str, Any], keys: MasterKeys, key_name: str) -> None:
        self.backend, self.config, self.keys = backend, config, keys
        self.id: str = config["id"]
        self.tree_key = keys.tree_id
        self.chunker_params = ChunkerParams.from_json(config["chunker"])
        self.pack_size: int = int(config["pack_size"])
        self.index = Index()
        self.objects = SealedObjects(backend, keys.encryption)
        self.keyring = Keyring(backend, keys, self.id, key_name)
        self.index_files = IndexFiles(backend, self.objects, keys.encryption, self.index)
        self.packs = Packs(backend, keys, self.index, self.index_files)
        self.trees = Trees(backend, self.index, self.packs)
        self.points = Points(backend, self.objects)
        #: the GC state of the last view (format version 2; empty for version 1 or before a load)
        self.gc = GcState()
        #: the snapshot sessions running on this repository and their heartbeat series
        self.sessions = WriterSessions(backend, self.objects)
        #: the config as stored (``open`` and ``init`` set it), and whether a half-done upgrade to
        #: version 2 has been looked for (``finish_upgrade``, before the first write)
        self.stored_config = StoredConfig(CONFIG_NAME, canonical_json(config))
        self._upgrade_settled = False

    @classmethod
    async def init(
        cls,
        backend: Backend,
        password: bytes,
        *,
        chunker: ChunkerParams | None = None,
        pack_size: int = DEFAULT_PACK_SIZE,
        kdf: ScryptParams | None = None,
        version: int = REPOSITORY_VERSIONS[-1],
    ) -> Repository:
        chunker = chunker or ChunkerParams()
        chunker.validate()
        if not 1 << 20 <= pack_size <= 256 << 20:
            raise UsageError("pack_size must be between 1 MiB and 256 MiB")
        if not password:
            raise UsageError("an empty password is not allowed")
        if version not in REPOSITORY_VERSIONS:
            raise UsageError(f"format version must be one of {REPOSITORY_VERSIONS}, not {version!r}")
        for name in (CONFIG_NAME, CONFIG_NEXT_NAME):  # config.next alone: an upgrade was killed
            try:
                await backend.stat(name)
            except ObjectNotFoundError:
                continue
            raise RepositoryExistsError(f"a repository already exists at {backend.location} ({name})")
        config_bytes = encode_config(
            os.urandom(32).hex(), now_iso(), chunker.to_json(), pack_size, version=version
        )
        repo = cls(backend, decode_config(config_bytes), MasterKeys.generate(), "")
        # key first, config last: a repository "exists" only once it can also be opened
        slot = await repo.keyring.write_slot(password, kdf or ScryptParams(), object_hash(config_bytes))
        repo.key_name = slot
        repo.stored_config = StoredConfig(CONFIG_NAME, config_bytes)
        if not await backend.put_if_absent(CONFIG_NAME, config_bytes) and (
            await backend.get(CONFIG_NAME) != config_bytes  # equal: our write, its response was lost
        ):
            await backend.delete(slot)
            raise RepositoryExistsError(f"a repository was created concurrently at {backend.location}")
        log.info("initialised repository %s at %s", repo.id[:8], backend.location)
        return repo

    @classmethod
    async def open(cls, backend: Backend, password: bytes) -> Repository:
        """Check ``config``, find the key slot ``password`` opens, then load every index file."""
        config_name, config_bytes, config = await read_stored_config(backend)
        keys, key_name = await unlock(backend, config_bytes, config, password)
        repo = cls(backend, config, keys, key_name)
        repo.stored_config = StoredConfig(config_name, config_bytes)
        await repo.load_index()
        return repo

    # ------------------------------------------------------------------ format version

    @property
    def format_version(self) -> int:
        return int(self.config["version"])

    @property
    def gc_enabled(self) -> bool:
        """Version 2: the garbage-collection rules apply (heartbeats, plans; docs/format.md, "Garbage
        collection"). In version 1 nothing reads or writes ``gc/`` or ``locks/``, and prune refuses."""
        return self.format_version >= 2

    @property
    def unknown_write_features(self) -> list[str]:
        return sorted(set(self.config.get("write_features", [])) - set(WRITE_FEATURES))

    async def require_writable(self, what: str) -> None:
        """Refuse ``what`` (a snapshot, protect, forget, prune) where this code does not know the rules
        writers must follow: a ``write_features`` entry it lacks, or a version-1 ``config`` beside
        version-2 objects (a ``config`` rolled back from version 2). Reading stays possible. An upgrade
        to version 2 left half done is finished first."""
        await self.finish_upgrade()
        if self.unknown_write_features:
            raise UnsupportedFormatError(
                f"cannot {what}: the repository at {self.backend.location} needs writer features this "
                f"tiervault does not have ({', '.join(self.unknown_write_features)}); upgrade tiervault "
                "to write (reading and restoring work)"
            )
        if not self.gc_enabled:
            for prefix in ("gc/", "locks/"):
                async for info in self.backend.list(prefix):
                    if info.name != "locks/prune":
                        raise UnsupportedFormatError(
                            f"cannot {what}: the repository's config says format version 1, but "
                            f"{info.name} is a version-2 object (a downgraded config?): refusing to "
                            "write with version-1 rules; run check (reading and restoring work)"
                        )

    async def finish_upgrade(self) -> None:
        """Finish an upgrade to version 2 that a killed run left half done, once per session, before
        the first write (docs/format.md, "Upgrading to version 2")."""
        if not self._upgrade_settled:
            settled = await settle(self.backend, self.stored_config)
            if settled is not None:
                self._use_config(settled)
            self._upgrade_settled = True

    async def upgrade(self) -> UpgradeResult:
        """Upgrade the repository to format version 2 (or finish an upgrade; version 2: a no-op)."""
        stored, result = await upgrade(self.backend, self.stored_config, self.unknown_write_features)
        self._use_config(stored)
        self._upgrade_settled = True
        return result

    def _use_config(self, stored: StoredConfig) -> None:
        self.stored_config, self.config = stored, decode_config(stored.data)

    @property
    def put_needs_bytes(self) -> bool:
        """Whether the store copies a ``memoryview`` handed to ``put_if_absent`` into ``bytes`` (Azure):
        a pack writer then converts its buffer itself and frees it, instead of both living through
        the upload."""
        return self.backend.capabilities.put_needs_bytes

    # ------------------------------------------------------------------ delegation: objects, keys

    async def get_verified(self, name: str) -> bytes:
        return await get_verified(self.backend, name)

    async def _load_object(self, name: str, otype: ObjectType) -> bytes:
        return await self.objects.load(name, otype)

    @property
    def key_name(self) -> str:
        return self.keyring.key_name

    @key_name.setter
    def key_name(self, name: str) -> None:
        self.keyring.key_name = name

    async def add_key(self, password: bytes, *, kdf: ScryptParams | None = None) -> str:
        await self.finish_upgrade()  # a new slot seals the hash of ``config`` as stored
        return await self.keyring.add(password, kdf=kdf)

    async def list_keys(self) -> list[dict[str, Any]]:
        return await self.keyring.slots()

    async def remove_key(self, key_id: str) -> None:
        await self.keyring.remove(key_id)

    async def change_password(self, new_password: bytes, *, kdf: ScryptParams | None = None) -> str:
        await self.finish_upgrade()
        return await self.keyring.change_password(new_password, kdf=kdf)

    # ------------------------------------------------------------------ delegation: index, packs

    @property
    def index_errors(self) -> list[IntegrityError]:
        return self.index_files.errors

    async def load_index_file(self, name: str) -> list[PackRecord]:
        return await self.index_files.load_file(name)

    async def load_index(self) -> None:
        """Load every index file; under version 2 after ``gc/``, so that reads prefer a location in a
        pack neither condemned nor gone (a gone pack's only as the last resort)."""
        token = None
        if self.gc_enabled:
            self.gc = await load_gc_state(self.backend, self.objects)
            self.index.set_ranks(self.gc)
            token = view_token(self.gc)
        await self.index_files.load_all(token=token)

    async def refresh_gc_view(self, *, reload_index: bool) -> GcState:
        """Read ``gc/`` again and apply it to the in-memory index (writer rule 2). ``reload_index``:
        the view must show every index file too; if the GC state is what the index's ranks came from,
        the index files written since are loaded into it, else every file is read again into a fresh
        view (so, too, when a failed session left pack records pending: a full reload drops those
        a prune condemned or deleted since). Otherwise the new ranks are applied to the locations
        held."""
        state = await load_gc_state(self.backend, self.objects)
        self.gc = state
        token = view_token(state)
        if not reload_index:
            self.index.set_ranks(state)
        elif (
            self.index_files.view_token == token
            and not self.index_files.has_pending
            and await self.index_files.load_new()
        ):
            self.index.set_ranks(state)  # the same ranks, from the new state's object
        else:
            await self.index_files.reload(state, drop_unusable=True, token=token)
        return state

    async def index_names(self) -> list[str]:
        return await self.index_files.names()

    async def index_orphan_packs(self) -> int:
        return await self.index_files.recover_orphans()

    async def flush_index(self) -> str | None:
        return await self.index_files.flush()

    async def save_pack(
        self, kind: PackKind, salt: bytes, data: bytes | memoryview, entries: list[PackEntry]
    ) -> str:
        return await self.packs.save_pack(kind, salt, data, entries)

    def open_pack_blob(self, pack: PackInfo, entry: PackEntry, sealed: bytes | memoryview) -> bytes:
        return self.packs.open_blob(pack, entry, sealed)

    def locate(self, cid: bytes) -> Location:
        return self.packs.locate(cid)

    async def read_blob(self, cid: bytes) -> bytes:
        return await self.packs.read_blob(cid)

    # ------------------------------------------------------------------ delegation: trees

    def cached_tree(self, tid: bytes) -> list[Node] | None:
        return self.trees.cached(tid)

    def cached_tree_data(self, tid: bytes) -> bytes | None:
        return self.trees.cached_data(tid)

    def tree_error(self, tid: bytes, exc: Exception) -> IntegrityError:
        return self.trees.error(tid, exc)

    async def load_tree(self, tid: bytes) -> list[Node]:
        return await self.trees.load(tid)

    async def load_tree_data(self, tid: bytes) -> bytes:
        return await self.trees.load_data(tid)

    # ------------------------------------------------------------------ delegation: points

    async def save_snapshot(self, snap: SnapshotRecord) -> str:
        return await self.points.save_snapshot(snap)

    async def load_snapshot(self, sid: str) -> SnapshotRecord:
        return await self.points.load_snapshot(sid)

    async def snapshot_ids(self) -> list[str]:
        return await self.points.snapshot_ids()

    async def list_snapshots(self) -> list[SnapshotRecord]:
        return await self.points.list_snapshots()

    async def load_snapshots(self) -> tuple[list[SnapshotRecord], list[IntegrityError]]:
        return await self.points.load_snapshots()

    async def find_snapshot(self, ref: str) -> SnapshotRecord:
        return await self.points.find_snapshot(ref)

    async def save_item(self, item: ItemRecord, *, replaces: str | None = None) -> str:
        return await self.points.save_item(item, replaces=replaces)

    async def list_items(self) -> list[ItemRecord]:
        return await self.points.list_items()

    async def load_items(self) -> tuple[list[ItemRecord], list[IntegrityError]]:
        return await self.points.load_items()
