"""The writer side of garbage collection (docs/format.md, "Writers (snapshot) under version 2", rules
1-6, ordering invariants 10 and 15), through the real snapshot on a memory store (and the local one)
whose store times come from a ``FakeClock``. What a prune does is done by hand (``gcsim``)."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import tiervault
from tests.e2e import KDF, PASSWORD, KiB
from tests.e2e.gcsim import chunks_of, condemn, indexed_packs, locations, mark_gone, pack_names, repack, sweep
from tests.support import FakeClock, MemoryBackend
from tests.support.recording import RecordingBackend
from tests.support.trees import File, assert_trees_equal, build_tree, snapshot_tree
from tiervault.backend.base import Backend
from tiervault.backend.local import LocalBackend
from tiervault.core.format.envelope import ObjectType
from tiervault.core.format.gcobjects import HeartbeatRecord
from tiervault.errors import LapsedWriterError, TransientBackendError
from tiervault.repo.gcstate import LAPSE
from tiervault.repo.repository import Repository

PAST_LAPSE = LAPSE.total_seconds() + 60


@dataclass
class Setup:
    clock: FakeClock
    store: Backend  #: the store itself (what a prune in another process sees)
    rec: RecordingBackend  #: the writer's view of it
    repo: Repository
    vault: tiervault.Vault
    src: Path
    local: bool


@pytest.fixture(params=["memory", "local"])
async def setup(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Setup]:
    clock = FakeClock()
    store: Backend = (
        MemoryBackend(clock=clock) if request.param == "memory" else LocalBackend(tmp_path / "repo")
    )
    rec = RecordingBackend(store)
    repo = await Repository.init(rec, PASSWORD.encode(), kdf=KDF)
    src = tmp_path / "src"
    rnd = random.Random(5)
    build_tree(
        src,
        {
            "a.bin": File(rnd.randbytes(300 * KiB)),
            "b.txt": File(b"some text\n" * 500),
            "sub/c.bin": File(rnd.randbytes(200 * KiB)),
            "sub/deeper/d.txt": File(b"deep\n"),
        },
    )
    vault = tiervault.Vault(repo, clock=clock)
    await vault.protect(src, name="src")
    yield Setup(clock, store, rec, repo, vault, src, request.param == "local")
    await vault.aclose()


async def restores_exactly(s: Setup, point: str, out: Path) -> None:
    """A freshly opened vault (another process) restores ``point`` exactly."""
    fresh = tiervault.Vault(await Repository.open(s.store, PASSWORD.encode()))  # not closed: shares the store
    result = await fresh.restore(point, out, verify=True)
    assert result.ok
    assert_trees_equal(snapshot_tree(s.src), snapshot_tree(out))


async def locks(store: Backend) -> list[str]:
    return [i.name async for i in store.list("locks/")]


async def test_heartbeat_before_any_view_and_deleted_after_the_snapshot(setup: Setup) -> None:
    s = setup
    s.rec.calls.clear()
    point = (await s.vault.snapshot("src")).point
    calls = s.rec
    beat = calls.first("put_if_absent", "locks/")
    assert beat < calls.first("list", "gc/") and beat < calls.first("get", "gc/")
    assert beat < calls.first("list", "index/") and beat < calls.first("get", "index/")
    assert beat < calls.first("list", "data/"), "orphans were looked for before the heartbeat"
    beats = calls.names("put_if_absent", "locks/")  # seq 0, and the commit's renewal
    assert len(beats) == 2
    assert calls.first("stat", beats[0]) < calls.first("list", "index/")
    assert calls.first("put_if_absent", beats[1]) < calls.first("put_if_absent", "snapshots/")
    assert calls.first("put_if_absent", "snapshots/") < calls.first("delete", beats[1])
    assert await locks(s.store) == []
    assert [p.id for p in await s.vault.points()] == [point.id]


async def test_renewed_every_interval_during_a_snapshot(setup: Setup) -> None:
    s = setup

    async def later(name: str) -> None:  # the host spends an interval on this pack
        s.clock.advance(300)
        for _ in range(1000):  # the renewal task runs; no real time passes
            if len(s.rec.names("put_if_absent", "locks/")) == 2 and len(await locks(s.store)) == 1:
                return
            await asyncio.sleep(0)

    s.rec.on("put_if_absent", "data/", later)
    await s.vault.snapshot("src")
    first, second, _commit = s.rec.names("put_if_absent", "locks/")
    assert (
        s.rec.first("stat", second)
        < s.rec.first("delete", first)
        < s.rec.first("put_if_absent", "snapshots/")
    )
    assert await locks(s.store) == []


@pytest.mark.parametrize("how", ["failed", "cancelled"])
async def test_heartbeat_deleted_after_a_failed_or_cancelled_snapshot(setup: Setup, how: str) -> None:
    s = setup
    task = asyncio.current_task()
    assert task is not None
    running = asyncio.ensure_future(s.vault.snapshot("src"))

    async def stop(name: str) -> None:
        assert await locks(s.store), "no heartbeat while the snapshot runs"
        if how == "cancelled":
            running.cancel()
            await asyncio.sleep(0)
        else:
            raise TransientBackendError("injected: the store went away")

    s.rec.on("put_if_absent", "data/", stop)
    with pytest.raises(asyncio.CancelledError if how == "cancelled" else TransientBackendError):
        await running
    assert await locks(s.store) == []
    assert await s.vault.points() == []


async def test_concurrent_sessions_share_one_series(setup: Setup, tmp_path: Path) -> None:
    s = setup
    other = tmp_path / "other"
    build_tree(other, {"x.bin": File(random.Random(9).randbytes(100 * KiB))})
    await s.vault.protect(other, name="other")
    await asyncio.gather(s.vault.snapshot("src"), s.vault.snapshot("other"))
    beats = [
        HeartbeatRecord.from_bytes(s.repo.objects.open_bytes(n, s.rec.stored[n], ObjectType.HEARTBEAT))
        for n in s.rec.names("put_if_absent", "locks/")
    ]
    assert len({b.session for b in beats}) == 1, "each session started its own series"
    assert [b.seq for b in beats] == [0, 1, 2]  # seq 0 and one renewal per commit
    assert len(await s.vault.points()) == 2
    assert await locks(s.store) == []


async def test_no_new_reference_to_a_condemned_pack(setup: Setup, tmp_path: Path) -> None:
    """Rule 3: a point taken after a plan condemns every pack of the parent stores its data and
    trees again (reuse from the parent and dedup both refuse the condemned packs), and restores
    exactly once those packs are swept."""
    s = setup
    await s.vault.snapshot("src")
    old = await pack_names(s.store)
    plan = await condemn(s.store, old)
    second = await s.vault.snapshot("src")
    assert second.stats.files_reused == 0 and second.stats.files_read == 4
    where = await locations(s.store)
    for cid in await chunks_of(s.store, second.point.id):
        assert where[cid] - old, f"chunk {cid.hex()[:12]} is only in a condemned pack"
    await mark_gone(s.store, plan, old)  # the sweep: GONE, then the packs go
    await s.store.delete_many(sorted(old))
    await restores_exactly(s, second.point.id, tmp_path / "out")


async def test_without_a_plan_the_parent_is_reused(setup: Setup) -> None:
    """The control of the test above: the same second point with no plan reads nothing again."""
    s = setup
    await s.vault.snapshot("src")
    second = await s.vault.snapshot("src")
    assert second.stats.files_reused == 4 and second.stats.packs_new == 0


@pytest.mark.parametrize("state", ["condemned", "gone"])
async def test_orphans_a_prune_condemned_are_not_adopted(setup: Setup, tmp_path: Path, state: str) -> None:
    s = setup

    async def killed(name: str) -> None:
        raise TransientBackendError("injected: killed before the index file")

    s.rec.on("put_if_absent", "index/", killed)
    with pytest.raises(TransientBackendError):
        await s.vault.snapshot("src")
    orphans = await pack_names(s.store)
    assert orphans and await indexed_packs(s.store) == set()
    plan = await condemn(s.store, orphans, "orphan")
    if state == "gone":
        await mark_gone(s.store, plan, orphans)  # a sweep killed before its deletes
    point = (await s.vault.snapshot("src")).point
    assert not (await indexed_packs(s.store)) & orphans, "an orphan the prune condemned was adopted"
    await s.store.delete_many(sorted(orphans))
    await restores_exactly(s, point.id, tmp_path / "out")


async def test_orphans_are_adopted_when_no_plan_names_them(setup: Setup) -> None:
    s = setup

    async def killed(name: str) -> None:
        raise TransientBackendError("injected: killed before the index file")

    s.rec.on("put_if_absent", "index/", killed)
    with pytest.raises(TransientBackendError):
        await s.vault.snapshot("src")
    orphans = await pack_names(s.store)
    result = await s.vault.snapshot("src")
    assert orphans <= await indexed_packs(s.store) and result.stats.packs_new == 0


async def _second_point_with_a_new_file(s: Setup) -> None:
    await s.vault.snapshot("src")
    (s.src / "new.bin").write_bytes(random.Random(3).randbytes(100 * KiB))


@pytest.mark.parametrize("kinds", [("data",), ("data", "meta")])
async def test_lapsed_writer_rescues_chunks_whose_pack_was_swept(
    setup: Setup, tmp_path: Path, kinds: tuple[str, ...]
) -> None:
    """Mid-snapshot the host is suspended past LAPSE; meanwhile a prune repacked the parent's packs
    (data, or trees too: the unchanged subdirectory's), swept them, and condemned the copies too. The
    commit finds it lapsed, copies the chunks out of the condemned copies (or the trees it holds in
    memory) into new packs, and the point restores once those are swept."""
    s = setup
    await _second_point_with_a_new_file(s)
    used = await pack_names(s.store, *kinds)
    copies = await repack(s.store, used)
    assert copies

    async def suspended_while_pruned(name: str) -> None:
        s.clock.advance(PAST_LAPSE)
        await sweep(s.store, used)
        await condemn(s.store, copies)

    s.rec.on("put_if_absent", "index/", suspended_while_pruned)
    point = (await s.vault.snapshot("src")).point
    await sweep(s.store, copies)
    await restores_exactly(s, point.id, tmp_path / "out")
    assert await locks(s.store) == []


async def test_lapsed_writer_fails_when_no_pack_holds_a_chunk(setup: Setup) -> None:
    s = setup
    await _second_point_with_a_new_file(s)
    [before] = await s.vault.points()
    used = await pack_names(s.store, "data")

    async def suspended_while_pruned(name: str) -> None:
        s.clock.advance(PAST_LAPSE)
        await sweep(s.store, used)

    s.rec.on("put_if_absent", "index/", suspended_while_pruned)
    with pytest.raises(LapsedWriterError, match="pruned while the writer was suspended"):
        await s.vault.snapshot("src")
    assert [p.id for p in await s.vault.points()] == [before.id], "a point was left behind"
    assert await locks(s.store) == []


async def test_not_lapsed_no_check(setup: Setup) -> None:
    """The control: the same prune with no suspension is not the writer's to detect (its heartbeat
    holds the sweep back), and the commit reads nothing back."""
    s = setup
    await _second_point_with_a_new_file(s)
    s.rec.calls.clear()
    await s.vault.snapshot("src")
    renewal = s.rec.names("put_if_absent", "locks/")[-1]
    commit = s.rec.calls[
        s.rec.calls.index(("put_if_absent", renewal)) : s.rec.first("put_if_absent", "snapshots/")
    ]
    assert not [c for c in commit if c[0] in ("list", "get")], "the lapsed check ran for a live writer"


async def test_snapshot_stored_late_is_withdrawn_when_a_chunk_was_swept(setup: Setup) -> None:
    """The commit's renewal was in time, but the snapshot's put came LAPSE later (the writer may
    have been declared dead meanwhile): checked again, and withdrawn since a chunk is gone."""
    s = setup
    if s.local:
        pytest.skip("store times of the local backend are the file system's, not the fake clock's")
    await _second_point_with_a_new_file(s)
    [before] = await s.vault.points()
    used = await pack_names(s.store, "data")

    async def stalled_while_pruned(name: str) -> None:
        s.clock.advance(PAST_LAPSE)
        await sweep(s.store, used)

    s.rec.on("put_if_absent", "snapshots/", stalled_while_pruned)
    with pytest.raises(LapsedWriterError):
        await s.vault.snapshot("src")
    assert s.rec.first("delete", "snapshots/") < len(s.rec.calls), "the late snapshot was not withdrawn"
    assert [p.id for p in await s.vault.points()] == [before.id]


async def test_version_1_writes_nothing_under_locks_or_gc(tmp_path: Path) -> None:
    clock = FakeClock()
    store = MemoryBackend(clock=clock)
    rec = RecordingBackend(store)
    repo = await Repository.init(rec, PASSWORD.encode(), kdf=KDF, version=1)
    build_tree(tmp_path / "src", {"a.txt": File(b"a" * 5000)})
    async with tiervault.Vault(repo, clock=clock) as vault:
        await vault.protect(tmp_path / "src", name="src")
        await vault.snapshot("src")
        clock.advance(3600)
        await vault.snapshot("src")
    assert not [n for m, n in rec.calls if m != "list" and n.startswith(("locks/", "gc/"))]
    assert not [n for n in store.objects if n.startswith(("locks/", "gc/"))]


async def test_a_stopped_run_keeps_no_parent_subtree_from_a_condemned_pack(
    setup: Setup, tmp_path: Path
) -> None:
    """A checkpoint (deadline) keeps the parent's unvisited directories by reference: not when their
    trees or chunks are only in condemned packs (they are left for the next run instead)."""
    s = setup
    wide = tmp_path / "wide"
    rnd = random.Random(8)
    # more large files than the readers queue (8 per worker): the walk waits for one to finish, and
    # the deadline stops it before it reaches zz/, which the checkpoint would keep by reference
    files = 8 * (os.cpu_count() or 2) + 4
    spec = {f"f{i:03d}.bin": File(rnd.randbytes(260 * KiB)) for i in range(files)}
    spec["zz/inner/x.txt"] = File(b"kept by reference\n")
    build_tree(wide, spec)
    await s.vault.protect(wide, name="wide")
    await s.vault.snapshot("wide")
    old = await pack_names(s.store)
    await condemn(s.store, old)
    stopped = await s.vault.snapshot("wide", deadline=0.5)
    assert stopped.point.incomplete
    where = await locations(s.store)
    for cid in await chunks_of(s.store, stopped.point.id):
        assert where[cid] - old, f"chunk {cid.hex()[:12]} is only in a condemned pack"
    assert [w["path"] for w in stopped.warnings if "condemned" in w["warning"]] == ["zz"]


async def test_a_damaged_gc_object_makes_every_commit_check(setup: Setup) -> None:
    """A GONE that does not open may hide swept packs: the commit checks the packs it uses."""
    s = setup
    await _second_point_with_a_new_file(s)
    await s.store.put_if_absent("gc/" + "ab" * 32, b"not a sealed object")
    s.rec.calls.clear()
    await s.vault.snapshot("src")
    renewal = s.rec.names("put_if_absent", "locks/")[-1]
    commit = s.rec.calls[s.rec.calls.index(("put_if_absent", renewal)) :]
    assert ("list", "data/") in commit and ("list", "gc/") in commit


async def test_a_session_sees_other_writers_index_files_and_reads_only_those(
    setup: Setup, tmp_path: Path
) -> None:
    """With the GC state unchanged, a new session's view adds the index files written since (another
    process's, here) without reading again those it holds; the other writer's chunks dedup."""
    s = setup
    await s.vault.snapshot("src")
    mine = {n for _, n in [c for c in s.rec.calls if c[0] == "put_if_absent"] if n.startswith("index/")}
    shared = random.Random(4).randbytes(150 * KiB)
    other_src, again = tmp_path / "o", tmp_path / "again"
    build_tree(other_src, {"shared.bin": File(shared)})
    build_tree(again, {"copy.bin": File(shared)})
    other = tiervault.Vault(await Repository.open(s.store, PASSWORD.encode()), clock=s.clock)
    await other.protect(other_src, name="other")
    await other.snapshot("other")
    theirs = {i.name async for i in s.store.list("index/")} - mine
    assert theirs
    await s.vault.protect(again, name="again")
    s.rec.calls.clear()
    result = await s.vault.snapshot("again")
    assert result.stats.chunks_new == 1, "the other writer's chunks were stored again"  # the new root tree
    assert set(s.rec.names("get", "index/")) == theirs


async def test_after_an_upgrade_in_the_same_process_the_next_snapshot_follows_version_2(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    store = MemoryBackend(clock=clock)
    rec = RecordingBackend(store)
    repo = await Repository.init(rec, PASSWORD.encode(), kdf=KDF, version=1)
    build_tree(tmp_path / "src", {"a.txt": File(b"a" * 5000)})
    vault = tiervault.Vault(repo, clock=clock)
    await vault.protect(tmp_path / "src", name="src")
    await vault.snapshot("src")
    assert not rec.names("put_if_absent", "locks/")
    assert (await vault.upgrade()).upgraded
    rec.calls.clear()
    await vault.snapshot("src")
    assert rec.first("put_if_absent", "locks/") < rec.first("list", "gc/") < len(rec.calls)
    assert await locks(store) == []
