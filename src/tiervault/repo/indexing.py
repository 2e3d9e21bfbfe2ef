"""Index files (``index/<h>``): loading every one into the in-memory ``Index`` (damaged ones recorded,
not fatal), the pack records waiting for the next index file, and indexing packs an interrupted
snapshot stored without one (docs/format.md, "Index files")."""

from __future__ import annotations

import asyncio
import functools
import logging

from tiervault.backend.base import Backend
from tiervault.core.crypto import TAG_SIZE, AuthenticationFailed
from tiervault.core.format import FormatError
from tiervault.core.format.envelope import ObjectType, seal_object
from tiervault.core.format.indexfile import PackRecord, decode_index, encode_index
from tiervault.core.format.pack import (
    PRELUDE_SIZE,
    TRAILER_SIZE,
    PackKind,
    header_length,
    open_header,
    parse_prelude,
)
from tiervault.errors import IntegrityError, ObjectNotFoundError
from tiervault.repo.index import NORMAL, Index, PackRanks, pack_name
from tiervault.repo.objects import SealedObjects, bounded_gather, put_hashed

log = logging.getLogger("tiervault.repo")

#: an index file is written after this many new packs (~512 MiB), not only at the end of a snapshot
INDEX_FLUSH_PACKS = 32


class IndexFiles:
    """The index files of one repository, feeding ``index``; ``errors`` lists the damaged ones."""

    def __init__(self, backend: Backend, objects: SealedObjects, encryption_key: bytes, index: Index) -> None:
        self.backend, self.objects, self.index = backend, objects, index
        self._key = encryption_key
        self.errors: list[IntegrityError] = []
        self._pending: list[PackRecord] = []
        self._pending_lock = asyncio.Lock()
        self._flush_lock = asyncio.Lock()
        #: the index files read into ``index`` (and written by this process) since the last full load
        self.loaded: set[str] = set()
        #: which GC view ``index``'s ranks come from (``Repository.refresh_gc_view``), None if unknown
        self.view_token: object = None

    async def names(self) -> list[str]:
        return [info.name async for info in self.backend.list("index/")]

    async def load_file(self, name: str) -> list[PackRecord]:
        plain = await self.objects.load(name, ObjectType.INDEX)
        try:
            return decode_index(plain)
        except FormatError as exc:
            raise IntegrityError(name, str(exc)) from exc

    async def load_all(self, *, token: object = None) -> None:
        """Load every index file. A damaged one is logged and kept in ``errors`` (``check`` reports
        it; a restore that needs a chunk only it listed fails naming it) instead of making the whole
        repository unusable. ``token`` names the GC view the index's ranks come from (``view_token``)."""
        errors, self.loaded = await self._load_into(self.index)
        self.errors.extend(errors)
        self.view_token = token

    async def _load_into(
        self, index: Index, skip: set[str] | None = None
    ) -> tuple[list[IntegrityError], set[str]]:
        """Load every index file (but those in ``skip``) into ``index``; returns the damaged ones and
        the names read. A file listed but absent when read was replaced by a consolidation, which
        stored its successors first: ``index/`` is listed again and what is new is loaded too."""
        errors: list[IntegrityError] = []
        seen: set[str] = set(skip or ())
        absent = True

        async def load(name: str) -> list[PackRecord]:
            nonlocal absent
            try:
                return await self.load_file(name)
            except IntegrityError as exc:
                log.error("%s", exc)
                errors.append(exc)
            except ObjectNotFoundError:
                absent = True
            return []

        while absent:
            absent = False
            names = [n for n in await self.names() if n not in seen]
            seen.update(names)
            for records in await bounded_gather([functools.partial(load, n) for n in names]):
                for rec in records:
                    index.add_record(rec)
        return errors, seen

    async def reload(
        self, ranks: PackRanks | None, *, drop_unusable: bool = False, token: object = None
    ) -> None:
        """A fresh view (format version 2, writer rule 2): every index file read again into a new
        ``Index`` under ``ranks``, with the records not yet in an index file, then swapped into
        ``self.index``. No flush runs meanwhile, so no stored pack is missed. ``drop_unusable`` (no
        session runs): records left pending by a failed session whose packs a prune has condemned
        or swept since are dropped, as an orphan would not be adopted (writer rule 4); so are those
        whose pack is no longer stored (checked after ``ranks`` was read: a full GC cycle may have
        deleted it and retired its GONE, so that no rank shows it). ``token`` as for ``load_all``."""
        async with self._flush_lock:
            fresh = Index(ranks)
            errors, loaded = await self._load_into(fresh)
            absent = await self._absent(list(self._pending)) if drop_unusable else set()
            async with self._pending_lock:
                if drop_unusable:
                    self._pending = [
                        r
                        for r in self._pending
                        if fresh.pack_rank(r.pack_id) == NORMAL and r.pack_id not in absent
                    ]
                for rec in self._pending:
                    fresh.add_record(rec)
                self.index.replace(fresh)
                self.errors[:] = errors
                self.loaded, self.view_token = loaded, token

    @property
    def has_pending(self) -> bool:
        """Whether pack records wait for an index file (between sessions: a failed session's)."""
        return bool(self._pending)

    async def _absent(self, records: list[PackRecord]) -> set[str]:
        """The ids of the packs of ``records`` that are not stored (any more)."""

        async def gone(rec: PackRecord) -> str | None:
            try:
                await self.backend.stat(pack_name(rec.kind, rec.pack_id))
            except ObjectNotFoundError:
                return rec.pack_id
            return None

        return {p for p in await bounded_gather([functools.partial(gone, r) for r in records]) if p}

    async def load_new(self) -> bool:
        """Load the index files written since the view was loaded (others' new packs): what a reload
        would add while the GC view is the same (no pack's rank changed, so no location held is
        worse than one a reload would pick). Returns False, loading nothing, if an index file the
        view read is gone: a prune consolidated the index, and may have deleted packs the view still
        lists once their GONE was retired (a GC state equal to the view's proves nothing then), so
        only a full reload is right."""
        async with self._flush_lock:
            if not self.loaded <= set(await self.names()):
                return False
            errors, self.loaded = await self._load_into(self.index, self.loaded)
            self.errors.extend(errors)
            return True

    async def add(self, rec: PackRecord) -> None:
        """A stored pack: known in memory now, in an index file at the next ``flush`` (which comes by
        itself every ``INDEX_FLUSH_PACKS`` packs)."""
        async with self._pending_lock:  # with the record, so that a reload never misses it
            self.index.add_record(rec)
            self._pending.append(rec)
            due = len(self._pending) >= INDEX_FLUSH_PACKS
        if due:  # a long snapshot indexes its packs as it goes: an interruption loses little
            await self.flush()

    async def flush(self) -> str | None:
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
                    lambda: seal_object(self._key, ObjectType.INDEX, encode_index(records))
                )
                name = await put_hashed(self.backend, "index/", data)
            except BaseException:
                async with self._pending_lock:
                    self._pending[:0] = records
                raise
            self.loaded.add(name)
            return name

    async def recover_orphans(self) -> int:
        """Index packs that reached storage but not an index file (an interrupted snapshot), so the
        next snapshot reuses their chunks instead of uploading them again. Reads only each orphan's
        prelude, header and trailer. A pack whose header does not authenticate is left to ``check``.
        Returns how many packs were recovered. Under format version 2 only packs neither condemned nor
        gone in the current view are adopted (writer rule 4)."""
        known = self.index.pack_ids()
        orphans = []
        for kind in PackKind:
            async for info in self.backend.list(kind.prefix + "/"):
                pid = info.name.rsplit("/", 1)[-1]
                # version 2: a pack a prune condemned (or swept) is left to it (writer rule 4)
                if pid not in known and len(pid) == 64 and self.index.pack_rank(pid) == NORMAL:
                    orphans.append((kind, pid, info.size))

        records = await bounded_gather([functools.partial(self._recover, *o) for o in orphans])
        recovered = [r for r in records if r is not None]
        for rec in recovered:
            self.index.add_record(rec)
        if recovered:
            async with self._pending_lock:
                self._pending.extend(recovered)
            await self.flush()
            log.info("indexed %d pack(s) left by an interrupted snapshot", len(recovered))
        return len(recovered)

    async def read_pack_header(self, kind: PackKind, pid: str, size: int) -> PackRecord | str:
        """The pack record of a stored pack read from its own prelude, header and trailer (three
        ranged reads), or why it cannot be (prune: an unindexed pack whose header does not
        authenticate is unprovable)."""
        rec = await self._recover(kind, pid, size)
        return "its header does not authenticate or is malformed" if rec is None else rec

    async def _recover(self, kind: PackKind, pid: str, size: int) -> PackRecord | None:
        name = pack_name(kind, pid)
        get = self.backend.get
        try:
            if size < PRELUDE_SIZE + TRAILER_SIZE + TAG_SIZE:
                raise FormatError("too short for a pack")
            prelude = await get(name, offset=0, length=PRELUDE_SIZE)
            hlen = header_length(await get(name, offset=size - TRAILER_SIZE, length=TRAILER_SIZE))
            start = size - TRAILER_SIZE - hlen
            if start < PRELUDE_SIZE:
                raise FormatError("header length out of range")
            sealed = await get(name, offset=start, length=hlen)
            entries = await asyncio.to_thread(open_header, self._key, prelude, sealed, start)
            found_kind, salt = parse_prelude(prelude)
            if found_kind is not kind:
                raise FormatError("pack kind does not match its folder")
        except (FormatError, AuthenticationFailed) as exc:
            log.warning("unindexed pack %s is unreadable (check reports it): %s", name, exc)
            return None
        return PackRecord(pid, kind, salt, tuple(entries))
