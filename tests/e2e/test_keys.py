"""Key slots: several passwords open one repository; passwords change; the current key is protected."""

from __future__ import annotations

from pathlib import Path

import pytest

import tiervault
from tests.e2e import KDF, PASSWORD, flip_byte, init_vault, open_vault, repo_objects
from tests.support.trees import File, assert_trees_equal, build_tree, snapshot_tree


@pytest.fixture
async def repo_with_point(repo_path: Path, tmp_path: Path) -> Path:
    build_tree(tmp_path / "src", {"a.txt": File(b"a"), "d/b.bin": File(b"b" * 100_000)})
    async with init_vault(repo_path) as vault:
        await vault.protect(tmp_path / "src", name="src")
        await vault.snapshot("src")
    return repo_path


async def test_add_key_then_open_with_it(repo_with_point: Path, tmp_path: Path) -> None:
    async with open_vault(repo_with_point) as vault:
        (first,) = await vault.keys()
        assert first.current
        new_id = await vault.add_key("second password", kdf=KDF)
        keys = {k.id: k for k in await vault.keys()}
        assert set(keys) == {first.id, new_id}
        assert keys[first.id].current and not keys[new_id].current
    async with open_vault(repo_with_point, "second password") as vault:
        assert [k.id for k in await vault.keys() if k.current] == [new_id]
        (point,) = await vault.points()
        await vault.restore(point, tmp_path / "out", verify=True)
    assert_trees_equal(snapshot_tree(tmp_path / "src"), snapshot_tree(tmp_path / "out"))
    async with open_vault(repo_with_point) as vault:  # the first password still works
        assert len(await vault.keys()) == 2


async def test_change_password(repo_with_point: Path) -> None:
    async with open_vault(repo_with_point) as vault:
        old_id = (await vault.keys())[0].id
        new_id = await vault.change_password("new password", kdf=KDF)
        keys = await vault.keys()
        assert [k.id for k in keys] == [new_id]
        assert keys[0].current
        assert len(await vault.points()) == 1  # the session goes on working
    assert repo_objects(repo_with_point, "keys") == [f"keys/{new_id}"]
    assert old_id != new_id
    with pytest.raises(tiervault.WrongPasswordError):
        await open_vault(repo_with_point, PASSWORD)
    async with open_vault(repo_with_point, "new password") as vault:
        assert len(await vault.points()) == 1


async def test_change_password_keeps_other_keys(repo_with_point: Path) -> None:
    async with open_vault(repo_with_point) as vault:
        other = await vault.add_key("other", kdf=KDF)
        await vault.change_password("new password", kdf=KDF)
        assert other in {k.id for k in await vault.keys()}
    async with open_vault(repo_with_point, "other"):
        pass
    with pytest.raises(tiervault.WrongPasswordError):
        await open_vault(repo_with_point, PASSWORD)


async def test_remove_key(repo_with_point: Path) -> None:
    async with open_vault(repo_with_point) as vault:
        (current,) = await vault.keys()
        with pytest.raises(tiervault.UsageError):
            await vault.remove_key(current.id)
        with pytest.raises(tiervault.UsageError):  # by unique prefix, too
            await vault.remove_key(current.id[:8])
        assert len(await vault.keys()) == 1
        other = await vault.add_key("other", kdf=KDF)
        with pytest.raises(tiervault.NotFoundError):
            await vault.remove_key("")
        with pytest.raises(tiervault.NotFoundError):
            await vault.remove_key("not-a-key-id")
        await vault.remove_key(other)
        assert [k.id for k in await vault.keys()] == [current.id]
    with pytest.raises(tiervault.WrongPasswordError):
        await open_vault(repo_with_point, "other")
    # the other side: a session opened with the second key cannot remove it, but can remove the first
    async with open_vault(repo_with_point) as vault:
        other = await vault.add_key("other", kdf=KDF)
    async with open_vault(repo_with_point, "other") as vault:
        with pytest.raises(tiervault.UsageError):
            await vault.remove_key(other)
        await vault.remove_key(current.id)
    with pytest.raises(tiervault.WrongPasswordError):
        await open_vault(repo_with_point, PASSWORD)


async def test_empty_password_for_a_new_key(repo_with_point: Path) -> None:
    async with open_vault(repo_with_point) as vault:
        with pytest.raises(tiervault.UsageError):
            await vault.add_key("")
        with pytest.raises(tiervault.UsageError):
            await vault.change_password(b"")
        assert len(await vault.keys()) == 1


async def test_a_damaged_key_slot(repo_with_point: Path) -> None:
    async with open_vault(repo_with_point) as vault:
        (first,) = await vault.keys()
        await vault.add_key("second", kdf=KDF)
    flip_byte(repo_with_point / "keys" / first.id, 30)
    async with open_vault(repo_with_point, "second") as vault:  # the intact slot still opens it
        assert len(await vault.points()) == 1
    with pytest.raises((tiervault.WrongPasswordError, tiervault.IntegrityError)):
        await open_vault(repo_with_point)
    (second_slot,) = set(repo_objects(repo_with_point, "keys")) - {f"keys/{first.id}"}
    (repo_with_point / second_slot).unlink()
    with pytest.raises(tiervault.IntegrityError) as info:  # only the damaged one is left
        await open_vault(repo_with_point, "second")
    assert info.value.name == f"keys/{first.id}"


async def test_keys_are_typed(repo_with_point: Path) -> None:
    """``keys()`` returns :class:`tiervault.KeyInfo` objects, a damaged slot included, with JSON forms."""
    async with open_vault(repo_with_point) as vault:
        (first,) = await vault.keys()
        second = await vault.add_key("second", kdf=KDF)
    assert isinstance(first, tiervault.KeyInfo)
    assert first.current and first.created is not None and first.created.tzinfo is not None
    assert first.host and first.user and first.damaged is None
    assert first.to_json()["created"] == first.created.isoformat()
    flip_byte(repo_with_point / "keys" / first.id, 30)
    async with open_vault(repo_with_point, "second") as vault:
        by_id = {k.id: k for k in await vault.keys()}
    assert by_id[second].current and by_id[first.id].damaged and by_id[first.id].created is None
    assert not by_id[first.id].current
