"""``check`` reports the packs no recovery point reads from as *unused*, with their bytes (issue 11,
item 5): not errors, in every repository; and a point that reads from a missing pack is an error
naming both."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import tiervault
from tests.e2e import KDF, PASSWORD, KiB, flip_byte, repo_objects
from tests.support.trees import File, build_tree
from tiervault.backend.local import LocalBackend
from tiervault.repo.repository import Repository


def _sizes(repo: Path, names: set[str]) -> int:
    return sum((repo / n).stat().st_size for n in names)


def _packs(repo: Path) -> set[str]:
    return set(repo_objects(repo, "data")) | set(repo_objects(repo, "meta"))


@pytest.fixture
async def two_points(vault: tiervault.Vault, tmp_path: Path, repo_path: Path) -> set[str]:
    """Item ``src`` with two points of wholly different content; returns the packs of the first."""
    src = tmp_path / "src"
    build_tree(src, {"a.bin": File(random.Random(1).randbytes(300 * KiB))})
    await vault.protect(src, name="src")
    await vault.snapshot("src")
    first = _packs(repo_path)
    build_tree(src, {"a.bin": File(random.Random(2).randbytes(300 * KiB))})
    await vault.snapshot("src")
    assert first < _packs(repo_path)
    return first


async def test_packs_a_forget_left_are_unused_with_their_bytes(
    vault: tiervault.Vault, two_points: set[str], repo_path: Path
) -> None:
    before = await vault.check()
    assert before.ok and before.unused == [] and before.unused_bytes == 0
    await vault.forget("src", policy=tiervault.Policy(keep_last=1))
    after = await vault.check(read_data=True)
    assert after.ok, after.errors  # unused is not an error
    assert after.warnings == []
    assert {u["object"] for u in after.unused or []} == two_points
    assert after.unused_packs == len(two_points)
    assert after.unused_bytes == _sizes(repo_path, two_points)
    assert {u["object"]: u["bytes"] for u in after.unused or []} == {
        n: (repo_path / n).stat().st_size for n in two_points
    }
    js = after.to_json()
    assert js["unused_packs"] == len(two_points) and js["unused_bytes"] == after.unused_bytes


async def test_a_damaged_point_leaves_unused_unknown(
    vault: tiervault.Vault, two_points: set[str], repo_path: Path
) -> None:
    """A point that does not open may reference any pack: nothing is called unused then."""
    await vault.forget("src", policy=tiervault.Policy(keep_last=1))
    (snap,) = repo_objects(repo_path, "snapshots")
    flip_byte(repo_path / snap, -1)
    result = await vault.check()
    assert not result.ok
    assert result.unused is None and result.to_json()["unused_packs"] is None


async def test_a_point_reading_from_a_missing_pack_is_an_error_naming_both(
    vault: tiervault.Vault, two_points: set[str], repo_path: Path
) -> None:
    latest = (await vault.points())[-1]
    data = [n for n in _packs(repo_path) - two_points if n.startswith("data/")]
    assert len(data) == 1
    (repo_path / data[0]).unlink()
    result = await vault.check()
    errors = {(e["object"], e["error"]) for e in result.errors}
    assert (data[0], "pack is indexed but missing from storage") in errors
    assert any(
        obj == f"snapshots/{latest.id}" and data[0] in err and "missing from storage" in err
        for obj, err in errors
    ), result.errors
    # the first point still reads everything it needs from its own packs: not named
    assert all(latest.id in obj or obj == data[0] for obj, _err in errors)


async def test_a_version_1_repository_gets_unused_too_and_gc_objects_there_are_an_error(
    repo_path: Path, tmp_path: Path
) -> None:
    """Unused packs are reported in every repository. In version 1 nothing writes ``gc/``: an object
    there is not read, but one error says the config may have been downgraded (writes refuse)."""
    repo = await Repository.init(LocalBackend(repo_path), PASSWORD.encode(), kdf=KDF, version=1)
    async with tiervault.Vault(repo) as vault:
        assert not repo.gc_enabled
        src = tmp_path / "src"
        build_tree(src, {"a.bin": File(random.Random(1).randbytes(300 * KiB))})
        await vault.protect(src, name="src")
        await vault.snapshot("src")
        first = _packs(repo_path)
        build_tree(src, {"a.bin": File(random.Random(2).randbytes(300 * KiB))})
        await vault.snapshot("src")
        await vault.forget("src", policy=tiervault.Policy(keep_last=1))
        await repo.backend.put_if_absent("gc/" + "0" * 64, b"not a plan")
        result = await vault.check()
        assert result.warnings == [] and result.condemned == []
        assert [e["object"] for e in result.errors] == ["gc/" + "0" * 64]
        assert "downgraded config" in result.errors[0]["error"]
        assert {u["object"] for u in result.unused or []} == first
        assert result.unused_bytes == _sizes(repo_path, first)
