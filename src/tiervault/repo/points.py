"""Recovery points (``snapshots/<h>``) and items (``items/<h>``): saving, loading, listing and finding
them. Both are sealed JSON objects (docs/format.md, "Snapshots", "Items")."""

from __future__ import annotations

import functools
import json
import logging

from tiervault.backend.base import Backend
from tiervault.core.format import FormatError
from tiervault.core.format.envelope import ObjectType
from tiervault.errors import IntegrityError, NotFoundError, ObjectNotFoundError
from tiervault.repo.objects import SealedObjects, bounded_gather
from tiervault.repo.snapshots import ItemRecord, SnapshotRecord

log = logging.getLogger("tiervault.repo")


class Points:
    """The snapshots and items of one repository."""

    def __init__(self, backend: Backend, objects: SealedObjects) -> None:
        self.backend, self.objects = backend, objects

    # ------------------------------------------------------------------ snapshots

    async def save_snapshot(self, snap: SnapshotRecord) -> str:
        name = await self.objects.save("snapshots/", ObjectType.SNAPSHOT, snap.to_json())
        snap.id = name.removeprefix("snapshots/")
        return snap.id

    async def load_snapshot(self, sid: str) -> SnapshotRecord:
        name = "snapshots/" + sid
        try:
            obj = json.loads(await self.objects.load(name, ObjectType.SNAPSHOT))
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

        loaded = await bounded_gather([functools.partial(load, i) for i in ids])
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
        name = await self.objects.save("items/", ObjectType.ITEM, item.to_json())
        item.id = name.removeprefix("items/")
        if replaces and replaces != item.id:
            await self.backend.delete("items/" + replaces)
        return item.id

    async def list_items(self) -> list[ItemRecord]:
        """The latest version of every item, by name. A damaged item object is skipped with a warning
        naming it (``check`` reports it as an error), as a damaged snapshot is: one bad object must not
        stop the backups of every other item."""
        items, damaged = await self.load_items()
        for exc in damaged:
            log.warning("skipped a damaged item object (check reports it): %s", exc)
        return items

    async def load_items(self) -> tuple[list[ItemRecord], list[IntegrityError]]:
        """(the latest readable version of every item by name, the damaged objects' errors)."""
        names = [info.name async for info in self.backend.list("items/")]

        async def load(name: str) -> ItemRecord | IntegrityError | None:
            try:
                obj = json.loads(await self.objects.load(name, ObjectType.ITEM))
                return ItemRecord.from_json(obj, name.removeprefix("items/"))
            except (FormatError, ValueError) as exc:
                return IntegrityError(name, str(exc))
            except IntegrityError as exc:
                return exc
            except ObjectNotFoundError:  # replaced since it was listed
                return None

        latest: dict[str, ItemRecord] = {}
        damaged: list[IntegrityError] = []
        for it in await bounded_gather([functools.partial(load, n) for n in names]):
            if isinstance(it, IntegrityError):
                damaged.append(it)
            elif it is not None:
                cur = latest.get(it.name)
                if cur is None or (it.updated, it.id) > (cur.updated, cur.id):
                    latest[it.name] = it
        return sorted(latest.values(), key=lambda i: i.name), sorted(damaged, key=lambda e: e.name)
