"""``check`` in a version-2 repository reads ``gc/`` and ``locks/`` (docs/format.md, "check"): plans
and GONE records written with the real codecs, heartbeats, foreign names; condemned packs are
reported with their deletion time (not as unused), gone packs never make a missing-pack error, and a
point reading from a gone pack is an error naming both."""

from __future__ import annotations

import asyncio
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import tiervault
from tests.e2e import PASSWORD, KiB, repo_objects
from tests.support.interleave import repack_and_delete
from tests.support.trees import File, build_tree
from tiervault.cli import main
from tiervault.core.format.envelope import ObjectType
from tiervault.core.format.gcobjects import CondemnedPack, GoneRecord, HeartbeatRecord, PlanRecord
from tiervault.repo.repository import Repository


def _pid(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _condemned(names: list[str], reason: str = "unreferenced") -> tuple[CondemnedPack, ...]:
    return tuple(CondemnedPack(_pid(n), n.split("/", 1)[0], reason) for n in sorted(names, key=_pid))


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


@pytest.fixture
async def repo(vault: tiervault.Vault, tmp_path: Path) -> Repository:
    """A version-2 repository with item ``src`` and two points of wholly different content."""
    repo: Repository = vault._repo
    assert repo.gc_enabled
    src = tmp_path / "src"
    build_tree(src, {"a.bin": File(random.Random(1).randbytes(300 * KiB))})
    await vault.protect(src, name="src")
    await vault.snapshot("src")
    build_tree(src, {"a.bin": File(random.Random(2).randbytes(300 * KiB))})
    await vault.snapshot("src")
    return repo


async def _plan(repo: Repository, names: list[str], reason: str = "unreferenced") -> str:
    rec = PlanRecord(_condemned(names, reason), (), "host-a", 4242)
    return (await repo.objects.save_plain("gc/", ObjectType.PLAN, rec.to_bytes())).removeprefix("gc/")


async def _gone(repo: Repository, plan: str, names: list[str]) -> str:
    rec = GoneRecord(plan, _condemned(names), False, None)
    return (await repo.objects.save_plain("gc/", ObjectType.GONE, rec.to_bytes())).removeprefix("gc/")


async def test_condemned_packs_are_reported_with_their_deletion_time_not_as_unused(
    vault: tiervault.Vault, repo: Repository, repo_path: Path
) -> None:
    await vault.forget("src", policy=tiervault.Policy(keep_last=1))
    unused = [u["object"] for u in (await vault.check()).unused or []]
    assert unused
    plan = await _plan(repo, unused)
    after = (_mtime(repo_path / "gc" / plan) + timedelta(hours=1)).isoformat(timespec="seconds")
    result = await vault.check()
    assert result.ok, result.errors
    assert result.unused == [] and result.warnings == []
    assert {c["object"]: (c["plan"], c["reason"], c["after"]) for c in result.condemned} == {
        n: (plan, "unreferenced", after) for n in unused
    }
    assert all(c["note"] == f"condemned, deleted by the next prune after {after}" for c in result.condemned)
    assert sum(c["bytes"] for c in result.condemned) == sum((repo_path / n).stat().st_size for n in unused)


async def test_a_sweep_done_by_the_rules_leaves_a_repository_check_accepts(
    vault: tiervault.Vault, repo: Repository, repo_path: Path
) -> None:
    """Repack the latest point's data pack, condemn the old one, store the GONE, delete it: the old
    pack is still listed by its index file, which is not an error; the copy is used."""
    await vault.forget("src", policy=tiervault.Policy(keep_last=1))
    first = {u["object"] for u in (await vault.check()).unused or []}
    (old,) = set(repo_objects(repo_path, "data")) - first  # the latest point's data pack
    other = await Repository.open(repo.backend, PASSWORD.encode())
    plan = await _plan(repo, [old], "repacked")
    gone = await _gone(repo, plan, [old])
    (copy,) = await repack_and_delete(other, [old])
    await repo.backend.delete(f"gc/{plan}")
    result = await vault.check(read_data=True)
    assert result.ok, result.errors
    assert result.warnings == [] and result.condemned == []
    assert copy not in {u["object"] for u in result.unused or []}
    assert {u["object"] for u in result.unused or []} == first
    assert (repo_path / "gc" / gone).exists()


async def test_a_gone_pack_still_stored_is_a_warning(
    vault: tiervault.Vault, repo: Repository, repo_path: Path
) -> None:
    await vault.forget("src", policy=tiervault.Policy(keep_last=1))
    unused = [u["object"] for u in (await vault.check()).unused or []]
    plan = await _plan(repo, unused)
    await _gone(repo, plan, unused)  # a sweep killed before its first delete
    result = await vault.check()
    assert result.ok, result.errors
    assert {w["object"] for w in result.warnings} == set(unused)
    assert all("gone" in w["warning"] and plan[:16] in w["warning"] for w in result.warnings)
    assert result.unused == [] and result.condemned == []  # swept plan: not condemned any more


async def test_a_point_reading_from_a_gone_pack_is_an_error_naming_both(
    vault: tiervault.Vault, repo: Repository, repo_path: Path
) -> None:
    """The residual risk of the scheme (a lapsed writer killed in its commit), crafted: a GONE names
    a pack the latest point needs, and the pack was deleted."""
    latest = (await vault.points())[-1]
    data = repo_objects(repo_path, "data")
    plan = await _plan(repo, data)
    await _gone(repo, plan, data)
    for name in data:
        await repo.backend.delete(name)
    result = await vault.check()
    assert not result.ok
    assert not any("indexed but missing" in e["error"] for e in result.errors)  # gone: expected
    mine = [e for e in result.errors if e["object"] == f"snapshots/{latest.id}"]
    assert len(mine) == 1 and "gone (deleted by a prune)" in mine[0]["error"]
    assert any(n in mine[0]["error"] for n in data)


async def test_gc_objects_that_do_not_open_are_errors_and_foreign_names_warnings(
    vault: tiervault.Vault, repo: Repository
) -> None:
    bad = await repo.objects.save_plain("gc/", ObjectType.PLAN, b'{"v":1,"packs":"all"}')
    await repo.backend.put_if_absent("gc/notes.txt", b"hello")
    await repo.backend.put_if_absent("locks/other-tool", b"x")
    bad_beat = await repo.objects.save_plain("locks/", ObjectType.HEARTBEAT, b'{"v":2}')
    result = await vault.check()
    assert [e["object"] for e in result.errors] == [bad]
    warned = {w["object"]: w["warning"] for w in result.warnings}
    assert set(warned) == {"gc/notes.txt", "locks/other-tool", bad_beat}
    assert "not an object of this repository's format" in warned["gc/notes.txt"]


async def test_a_dead_heartbeat_is_a_warning_a_live_one_is_not(
    vault: tiervault.Vault, repo: Repository, repo_path: Path
) -> None:
    def beat(session: str) -> bytes:
        return HeartbeatRecord(session, 0, "snapshot", "host-b", 99, "u", "tiervault", None).to_bytes()

    dead = await repo.objects.save_plain("locks/", ObjectType.HEARTBEAT, beat("a" * 32))
    live = await repo.objects.save_plain("locks/", ObjectType.HEARTBEAT, beat("b" * 32))
    assert (await vault.check()).warnings == []  # both as new as everything else
    when = (repo_path / live).stat().st_mtime - 36 * 60  # older than E + MAX_SKEW = 35 min
    os.utime(repo_path / dead, (when, when))
    result = await vault.check()
    assert result.ok
    assert [w["object"] for w in result.warnings] == [dead]
    assert "dead heartbeat of a snapshot on host-b (pid 99)" in result.warnings[0]["warning"]


async def test_the_command_line_shows_condemned_packs_per_plan_and_the_unused_line(
    vault: tiervault.Vault,
    repo: Repository,
    repo_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await vault.forget("src", policy=tiervault.Policy(keep_last=1))
    unused = [u["object"] for u in (await vault.check()).unused or []]
    plan = await _plan(repo, unused[:1])
    size = (repo_path / unused[0]).stat().st_size
    after = (_mtime(repo_path / "gc" / plan) + timedelta(hours=1)).isoformat(timespec="seconds")
    monkeypatch.setenv("TIERVAULT_PASSWORD", PASSWORD)
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["-r", str(repo_path), "check"])
    out = capsys.readouterr().out
    assert code == 0, out
    left = sum((repo_path / n).stat().st_size for n in unused[1:])
    assert f"unused: {len(unused) - 1} pack{'s' if len(unused) > 2 else ''}, {left:,} bytes" in out
    assert (
        f"condemned: 1 pack, {size:,} bytes, by plan {plan[:16]}: deleted by the next prune after {after}"
        in out
    )
