"""What a prune does to a repository, done by hand for the writer-side tests (the prune engine is
another module's): condemn packs in a PLAN, sweep them (GONE stored, packs deleted, PLAN deleted),
repack chunks into a new pack. All through a second ``Repository`` on the same store, as another
process would; plus reading what the index files say."""

from __future__ import annotations

from collections.abc import Iterable

from tests.e2e import PASSWORD
from tiervault.backend.base import Backend
from tiervault.core.format.envelope import ObjectType
from tiervault.core.format.gcobjects import CondemnedPack, GoneRecord, PlanRecord
from tiervault.core.format.pack import FLAG_TREE, PackKind
from tiervault.repo.index import Index
from tiervault.repo.packer import Packer
from tiervault.repo.repository import Repository
from tiervault.repo.treewalk import referenced_chunks


def _pack(name: str, reason: str) -> CondemnedPack:
    kind, _, pid = name.split("/")
    return CondemnedPack(pid, kind, reason)


async def pack_names(backend: Backend, *kinds: str) -> set[str]:
    return {i.name for k in kinds or ("data", "meta") async for i in backend.list(k + "/")}


async def condemn(backend: Backend, names: Iterable[str], reason: str = "unreferenced") -> str:
    """Store a PLAN condemning the packs ``names`` (``data/..``/``meta/..``); returns its id."""
    repo = await Repository.open(backend, PASSWORD.encode())
    packs = tuple(sorted((_pack(n, reason) for n in names), key=lambda p: p.id))
    plan = PlanRecord(packs, (), "gcsim", 1)
    return (await repo.objects.save_plain("gc/", ObjectType.PLAN, plan.to_bytes())).removeprefix("gc/")


async def mark_gone(backend: Backend, plan: str, names: Iterable[str]) -> str:
    """Store the GONE of ``plan`` for ``names`` (a sweep's first step); returns its id."""
    repo = await Repository.open(backend, PASSWORD.encode())
    packs = tuple(sorted((_pack(n, "unreferenced") for n in names), key=lambda p: p.id))
    gone = GoneRecord(plan, packs, unlisted=False, supersedes=None)
    return (await repo.objects.save_plain("gc/", ObjectType.GONE, gone.to_bytes())).removeprefix("gc/")


async def sweep(backend: Backend, names: Iterable[str]) -> None:
    """Condemn and sweep ``names`` at once, as a prune's plan and its later sweep would leave them."""
    names = sorted(names)
    plan = await condemn(backend, names)
    await mark_gone(backend, plan, names)
    await backend.delete_many(names)
    await backend.delete("gc/" + plan)


async def repack(backend: Backend, names: Iterable[str]) -> set[str]:
    """Copy every chunk of the packs ``names`` into new packs and their index file (a repack's
    copy step); returns the new packs' names."""
    repo = await Repository.open(backend, PASSWORD.encode())
    wanted = {n.rsplit("/", 1)[-1] for n in names}
    chunks = [
        (e.id, bool(e.flags & FLAG_TREE))
        for pid, es in repo.index.entries_by_pack().items()
        if pid in wanted
        for e in es
    ]
    blobs = [(cid, tree, await repo.read_blob(cid)) for cid, tree in chunks]
    before = await pack_names(backend)
    repo.index.replace(Index())  # a copy is wanted: nothing counts as stored
    async with Packer(repo) as packer:
        for cid, tree, data in blobs:
            await packer.add(PackKind.META if tree else PackKind.DATA, cid, data)
    await repo.flush_index()
    return await pack_names(backend) - before


async def locations(backend: Backend) -> dict[bytes, set[str]]:
    """Every chunk's packs, as the index files list them."""
    repo = await Repository.open(backend, PASSWORD.encode())
    out: dict[bytes, set[str]] = {}
    for name in await repo.index_names():
        for rec in await repo.load_index_file(name):
            for e in rec.entries:
                out.setdefault(e.id, set()).add(f"{rec.kind.prefix}/{rec.pack_id[:2]}/{rec.pack_id}")
    return out


async def indexed_packs(backend: Backend) -> set[str]:
    return {p for packs in (await locations(backend)).values() for p in packs}


async def chunks_of(backend: Backend, point_id: str) -> set[bytes]:
    repo = await Repository.open(backend, PASSWORD.encode())
    snap = await repo.load_snapshot(point_id)
    return await referenced_chunks(repo, [bytes.fromhex(snap.tree)])
