"""Damaged objects are detected, and the error names the damaged object."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest

import tiervault
from tests.e2e import KiB, flip_byte, init_vault, leftovers, open_vault, repo_objects
from tests.support.trees import File, assert_trees_equal, build_tree, snapshot_tree

PRELUDE = 24  # a pack's first blob starts right after its prelude


def _errors_name(result: tiervault.CheckResult, name: str) -> bool:
    return any(e["object"] == name for e in result.errors)


@pytest.fixture
async def one_point(repo_path: Path, tmp_path: Path) -> tiervault.RecoveryPoint:
    """A flat source (one tree, so one meta blob) of one file (one worker, so one data pack)."""
    build_tree(tmp_path / "src", {"a.bin": File(random.Random(1).randbytes(300 * KiB))})
    async with init_vault(repo_path) as vault:
        await vault.protect(tmp_path / "src", name="src")
        point: tiervault.RecoveryPoint = (await vault.snapshot("src")).point
        assert (await vault.check(read_data=True)).ok
    assert len(repo_objects(repo_path, "data")) == 1 and len(repo_objects(repo_path, "meta")) == 1
    return point


async def test_damaged_data_pack(one_point: tiervault.RecoveryPoint, repo_path: Path, tmp_path: Path) -> None:
    (pack,) = repo_objects(repo_path, "data")
    flip_byte(repo_path / pack, PRELUDE + 100)
    async with open_vault(repo_path) as vault:
        out = tmp_path / "out"
        with pytest.raises(tiervault.IntegrityError) as info:
            await vault.restore(one_point, out)
        assert info.value.name == pack
        checked = await vault.check(read_data=True)
        assert not checked.ok
        assert _errors_name(checked, pack), checked.errors
        assert checked.packs_read == 2
        # metadata is intact: browsing still works
        assert [e.name for e in await vault.ls(one_point)] == ["a.bin"]


async def test_failed_restore_leaves_no_temp_files(
    one_point: tiervault.RecoveryPoint, repo_path: Path, tmp_path: Path
) -> None:
    (pack,) = repo_objects(repo_path, "data")
    flip_byte(repo_path / pack, PRELUDE + 100)
    out = tmp_path / "out"
    async with open_vault(repo_path) as vault:
        with pytest.raises(tiervault.IntegrityError):
            await vault.restore(one_point, out)
    assert leftovers(out) == []


async def test_damaged_meta_pack(one_point: tiervault.RecoveryPoint, repo_path: Path, tmp_path: Path) -> None:
    (pack,) = repo_objects(repo_path, "meta")
    flip_byte(repo_path / pack, PRELUDE + 10)
    async with open_vault(repo_path) as vault:
        with pytest.raises(tiervault.IntegrityError) as info:
            await vault.ls(one_point)
        assert info.value.name == pack
        with pytest.raises(tiervault.IntegrityError) as info:
            await vault.restore(one_point, tmp_path / "out")
        assert info.value.name == pack
        checked = await vault.check()  # metadata packs are always read
        assert not checked.ok
        assert _errors_name(checked, pack), checked.errors


async def test_damaged_snapshot_is_skipped_reported_and_never_stops_a_backup(
    one_point: tiervault.RecoveryPoint, repo_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One damaged snapshot object: ``points`` warns and lists the others, every later snapshot of
    every item still works (parent selection skips it), ``latest`` skips it, ``check`` reports it."""
    name = f"snapshots/{one_point.id}"
    build_tree(tmp_path / "other", {"b.bin": File(random.Random(2).randbytes(50 * KiB))})
    async with open_vault(repo_path) as vault:
        await vault.protect(tmp_path / "other", name="other")
        good = (await vault.snapshot("other")).point
    flip_byte(repo_path / name, 40)
    async with open_vault(repo_path) as vault:
        with caplog.at_level(logging.WARNING, logger="tiervault"):
            assert [p.id for p in await vault.points()] == [good.id]
        assert any(name in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
        with pytest.raises(tiervault.IntegrityError) as info:
            await vault.point(one_point.id)  # asked for by id: the damage is the answer
        assert info.value.name == name
        with pytest.raises(tiervault.NotFoundError):
            await vault.point("latest:src")  # the only point of "src" is damaged: none is usable
        # a backup of the damaged point's item, and of another item, both succeed
        again = await vault.snapshot("src")
        assert again.point.parent is None and not again.partial
        other = await vault.snapshot("other")
        assert other.point.parent == good.id
        assert (await vault.point("latest:src")).id == again.point.id
        assert (await vault.point("latest")).id == other.point.id
        await vault.restore("latest:src", tmp_path / "out", verify=True)
        assert_trees_equal(snapshot_tree(tmp_path / "src"), snapshot_tree(tmp_path / "out"))
        checked = await vault.check()
        assert not checked.ok
        assert [e["object"] for e in checked.errors] == [name], checked.errors
        assert checked.snapshots == 3


async def test_latest_skips_a_damaged_newer_point(
    one_point: tiervault.RecoveryPoint, repo_path: Path, tmp_path: Path
) -> None:
    async with open_vault(repo_path) as vault:
        (tmp_path / "src" / "new.txt").write_bytes(b"newer")
        newer = (await vault.snapshot("src")).point
    flip_byte(repo_path / f"snapshots/{newer.id}", 40)
    async with open_vault(repo_path) as vault:
        assert (await vault.point("latest:src")).id == one_point.id
        assert (await vault.point("latest")).id == one_point.id
        third = await vault.snapshot("src")  # the parent is the newest readable point
        assert third.point.parent == one_point.id


async def test_damaged_index(repo_path: Path, tmp_path: Path) -> None:
    """Two points with disjoint content, one index file each; the second index is damaged."""
    build_tree(tmp_path / "one", {"x.bin": File(random.Random(1).randbytes(100 * KiB))})
    build_tree(tmp_path / "two", {"y.bin": File(random.Random(2).randbytes(100 * KiB))})
    async with init_vault(repo_path) as vault:
        await vault.protect(tmp_path / "one", name="one")
        await vault.protect(tmp_path / "two", name="two")
        p1 = (await vault.snapshot("one")).point
        (index1,) = repo_objects(repo_path, "index")
        p2 = (await vault.snapshot("two")).point
        (index2,) = set(repo_objects(repo_path, "index")) - {index1}
    flip_byte(repo_path / index2, -5)

    async with open_vault(repo_path) as vault:  # opening still works
        checked = await vault.check()
        assert not checked.ok
        assert _errors_name(checked, index2), checked.errors
        # the point whose chunks the intact index lists restores exactly
        await vault.restore(p1, tmp_path / "out1", verify=True)
        assert_trees_equal(snapshot_tree(tmp_path / "one"), snapshot_tree(tmp_path / "out1"))
        # the other one fails, naming the damaged index
        with pytest.raises(tiervault.IntegrityError) as info:
            await vault.restore(p2, tmp_path / "out2")
        assert info.value.name == index2


async def test_missing_data_pack(one_point: tiervault.RecoveryPoint, repo_path: Path, tmp_path: Path) -> None:
    (pack,) = repo_objects(repo_path, "data")
    (repo_path / pack).unlink()
    async with open_vault(repo_path) as vault:
        checked = await vault.check()
        assert _errors_name(checked, pack), checked.errors
        with pytest.raises(tiervault.ObjectNotFoundError):
            await vault.restore(one_point, tmp_path / "out")


async def test_damaged_pack_trailer_is_found_by_check(
    one_point: tiervault.RecoveryPoint, repo_path: Path, tmp_path: Path
) -> None:
    """Damage outside every blob: restores still work (each blob is authenticated), check finds it."""
    (pack,) = repo_objects(repo_path, "data")
    flip_byte(repo_path / pack, -1)
    async with open_vault(repo_path) as vault:
        result = await vault.restore(one_point, tmp_path / "out", verify=True)
        assert result.ok
        assert_trees_equal(snapshot_tree(tmp_path / "src"), snapshot_tree(tmp_path / "out"))
        checked = await vault.check(read_data=True)
        assert _errors_name(checked, pack), checked.errors


async def test_tampered_config_is_refused(one_point: tiervault.RecoveryPoint, repo_path: Path) -> None:
    """A config that still parses but differs from the one the keys were sealed with."""
    config = repo_path / "config"
    doc = json.loads(config.read_bytes())
    doc["pack_size"] = doc["pack_size"] * 2
    config.chmod(0o644)
    config.write_bytes(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())
    with pytest.raises(tiervault.IntegrityError) as info:
        await open_vault(repo_path)
    assert info.value.name == "config"
