"""Upgrading a repository from format version 1 to 2 (docs/format.md, "Upgrading to version 2"; ordering
invariant 18): every key slot still opens, every point restores byte for byte, version 1 readers are
locked out; an upgrade killed after any step reads on and is finished by the next write; a config
whose version-1 fields were changed is refused; the CLI; a second upgrade is a no-op.

A kill after step N is the state the steps' own effects leave on storage, so those states are made
here by performing exactly those effects through the backend, then opening the repository."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import tiervault
from tests.e2e import KDF, PASSWORD, open_vault
from tests.support.memory import MemoryBackend
from tiervault.backend.base import Backend
from tiervault.backend.local import LocalBackend
from tiervault.cli import main
from tiervault.core.crypto import object_hash
from tiervault.core.format.keyfile import CONFIG_NEXT_NAME, upgraded_config, version1_bytes
from tiervault.repo.repository import Repository
from tiervault.vault import Vault

SECOND = "the second password"
THIRD = "a password added after the upgrade"


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _fill(src: Path, generation: int) -> None:
    if generation == 0:
        (src / "sub").mkdir(parents=True, exist_ok=True)
        (src / "a.txt").write_bytes(b"alpha\n" * 1000)
        (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 900)
    else:
        (src / "a.txt").write_bytes(b"alpha, changed\n" * 700)
        (src / "c.txt").write_bytes(b"new in the second point\n")


async def _make_v1(backend: Backend, src: Path) -> tuple[Repository, list[tuple[str, dict[str, bytes]]]]:
    """A version-1 repository with two key slots and two points of ``src`` (changed in between);
    returns it and, per point, its id and the tree it holds."""
    _fill(src, 0)
    repo = await Repository.init(backend, PASSWORD.encode(), kdf=KDF, version=1)
    vault = Vault(repo)
    await vault.add_key(SECOND, kdf=KDF)
    await vault.protect(src, name="docs")
    points = []
    for i in range(2):
        if i:
            _fill(src, i)
        points.append(((await vault.snapshot("docs")).point.id, _tree(src)))
    return repo, points


async def _local_v1(repo_path: Path, src: Path) -> tuple[bytes, list[tuple[str, dict[str, bytes]]]]:
    async with LocalBackend(repo_path) as backend:
        _repo, points = await _make_v1(backend, src)
    return (repo_path / "config").read_bytes(), points


async def _assert_restores(
    vault: tiervault.Vault, points: list[tuple[str, dict[str, bytes]]], out: Path
) -> None:
    for i, (pid, tree) in enumerate(points):
        target = out / f"restore-{i}-{pid[:8]}"
        result = await vault.restore(pid, target, verify=True)
        assert result.ok, result.errors
        assert _tree(target) == tree


def _assert_upgraded(repo_path: Path, v1: bytes) -> None:
    stored = (repo_path / "config").read_bytes()
    doc = json.loads(stored)
    assert doc["version"] == 2 and doc["write_features"] == ["gc-1"] and doc["read_features"] == []
    assert doc["upgraded_from"] == object_hash(v1)
    assert version1_bytes(doc) == v1  # every version-1 field kept, so the old slots vouch for it
    assert not (repo_path / CONFIG_NEXT_NAME).exists()
    # a tiervault that reads only version 1 checks ``version in (1,)`` before any password: refused
    assert doc["version"] not in (1,)


# ---------------------------------------------------------------------------------------------- upgrade


async def test_upgrade_keeps_every_password_and_every_point(repo_path: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    v1, points = await _local_v1(repo_path, src)
    async with open_vault(repo_path) as v:
        assert v._repo.format_version == 1
        result = await v.upgrade()
        assert (result.upgraded, result.resumed, result.from_version, result.version) == (True, False, 1, 2)
        assert result.upgraded_from == object_hash(v1)
        assert v._repo.format_version == 2 and v._repo.gc_enabled  # this session writes by version 2 now
    _assert_upgraded(repo_path, v1)
    for password in (PASSWORD, SECOND):
        async with tiervault.open(repo_path, password=password) as v:
            assert [p.id for p in await v.points()] == [pid for pid, _tree in points]
            await _assert_restores(v, points, tmp_path / password.replace(" ", "-"))
    async with tiervault.open(repo_path, password=SECOND) as v:
        (src / "d.txt").write_bytes(b"after the upgrade\n")
        points.append(((await v.snapshot("docs")).point.id, _tree(src)))
        await v.add_key(THIRD, kdf=KDF)
        await v.change_password("second, changed", kdf=KDF)
        check = await v.check(read_data=True)
        assert check.ok, check.errors
    for password in (PASSWORD, THIRD, "second, changed"):
        async with tiervault.open(repo_path, password=password) as v:
            await _assert_restores(v, points, tmp_path / ("after-" + password.replace(" ", "-")))
    with pytest.raises(tiervault.WrongPasswordError):
        await tiervault.open(repo_path, password=SECOND)  # replaced by change_password


async def test_upgrading_twice_is_a_no_op_that_says_so(repo_path: Path, tmp_path: Path) -> None:
    v1, _points = await _local_v1(repo_path, tmp_path / "src")
    async with open_vault(repo_path) as v:
        assert (await v.upgrade()).upgraded
    upgraded = (repo_path / "config").read_bytes()
    async with open_vault(repo_path) as v:
        again = await v.upgrade()
        assert (again.upgraded, again.resumed, again.from_version, again.version) == (False, False, 2, 2)
        assert again.upgraded_from == object_hash(v1)
        assert "already format version 2" in again.message
        assert (await v.upgrade()).upgraded is False  # and again, in the same session
    assert (repo_path / "config").read_bytes() == upgraded
    assert not (repo_path / CONFIG_NEXT_NAME).exists()


async def test_upgrading_a_new_repository_changes_nothing(repo_path: Path) -> None:
    async with tiervault.init(repo_path, password=PASSWORD, kdf=KDF) as v:
        before = (repo_path / "config").read_bytes()
        result = await v.upgrade()
    assert (result.upgraded, result.upgraded_from, result.version) == (False, None, 2)
    assert (repo_path / "config").read_bytes() == before
    assert not (repo_path / CONFIG_NEXT_NAME).exists()


async def test_a_repository_needing_unknown_writer_features_refuses_the_upgrade(repo_path: Path) -> None:
    async with tiervault.init(repo_path, password=PASSWORD, kdf=KDF):
        pass
    doc = json.loads((repo_path / "config").read_bytes())
    doc["write_features"] = ["gc-1", "gc-9"]
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    async with open_vault(repo_path) as v:  # a newer tiervault's slot for its config
        await v._repo.keyring.write_slot(THIRD.encode(), KDF, object_hash(data))
    (repo_path / "config").chmod(0o644)
    (repo_path / "config").write_bytes(data)
    async with tiervault.open(repo_path, password=THIRD) as v:
        with pytest.raises(tiervault.UnsupportedFormatError, match="gc-9"):
            await v.upgrade()
    assert (repo_path / "config").read_bytes() == data
    assert not (repo_path / CONFIG_NEXT_NAME).exists()


async def test_changed_version_1_fields_under_the_old_hash_are_refused(
    repo_path: Path, tmp_path: Path
) -> None:
    await _local_v1(repo_path, tmp_path / "src")
    async with open_vault(repo_path) as v:
        await v.upgrade()
    config = repo_path / "config"
    doc = json.loads(config.read_bytes())
    doc["pack_size"] = doc["pack_size"] // 2  # upgraded_from still names the original bytes
    config.chmod(0o644)
    config.write_bytes(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())
    for password in (PASSWORD, SECOND):
        with pytest.raises(tiervault.IntegrityError, match="config does not match") as info:
            await tiervault.open(repo_path, password=password)
        assert info.value.name == "config"


# ---------------------------------------------------------------------------------------------- killed


async def _kill_after(backend: Backend, v1: bytes, step: int) -> bytes:
    """Leave storage as an upgrade killed right after ``step`` leaves it; returns the version-2 bytes."""
    v2 = upgraded_config(v1)
    assert await backend.put_if_absent(CONFIG_NEXT_NAME, v2)
    if step >= 2:
        await backend.delete("config")
    if step >= 3:
        assert await backend.put_if_absent("config", v2)
    return v2


async def _snapshot(v: tiervault.Vault) -> None:
    await v.snapshot("docs")


async def _upgrade(v: tiervault.Vault) -> None:
    result = await v.upgrade()
    assert result.upgraded and result.resumed and result.version == 2


async def _add_key(v: tiervault.Vault) -> None:
    await v.add_key(THIRD, kdf=KDF)


async def _protect(v: tiervault.Vault) -> None:
    item = await v.item("docs")
    await v.protect(item.source, name="docs", policy=tiervault.Policy(keep_last=5))


async def _forget(v: tiervault.Vault) -> None:
    decisions = await v.forget(policy=tiervault.Policy(keep_last=5))  # keeps every point
    assert all(d.keep for d in decisions)


FINISHERS: dict[str, Callable[[tiervault.Vault], Awaitable[None]]] = {
    "snapshot": _snapshot,
    "upgrade": _upgrade,
    "add_key": _add_key,
    "protect": _protect,
    "forget": _forget,
}


@pytest.mark.parametrize("finisher", sorted(FINISHERS))
@pytest.mark.parametrize("step", [1, 2, 3])
async def test_an_upgrade_killed_after_a_step_reads_on_and_a_write_finishes_it(
    repo_path: Path, tmp_path: Path, step: int, finisher: str
) -> None:
    v1, points = await _local_v1(repo_path, tmp_path / "src")
    async with LocalBackend(repo_path) as backend:
        v2 = await _kill_after(backend, v1, step)
    stored = {
        n: (repo_path / n).read_bytes() for n in ("config", CONFIG_NEXT_NAME) if (repo_path / n).exists()
    }
    for password in (PASSWORD, SECOND):  # reading changes nothing
        async with tiervault.open(repo_path, password=password) as v:
            assert [p.id for p in await v.points()] == [pid for pid, _tree in points]
            await _assert_restores(v, points[-1:], tmp_path / f"read-{password.replace(' ', '-')}")
            assert (await v.check()).ok
    assert {n: (repo_path / n).read_bytes() for n in stored} == stored
    async with open_vault(repo_path) as v:
        await FINISHERS[finisher](v)
        assert v._repo.format_version == 2
    _assert_upgraded(repo_path, v1)
    assert (repo_path / "config").read_bytes() == v2
    for password in (PASSWORD, SECOND) + ((THIRD,) if finisher == "add_key" else ()):
        async with tiervault.open(repo_path, password=password) as v:
            await _assert_restores(v, points, tmp_path / f"after-{password.replace(' ', '-')}")
            check = await v.check(read_data=True)
            assert check.ok, check.errors


class _InitAfterDelete(LocalBackend):
    """A local store where another repository is initialised at the same place the moment ``config``
    is deleted: a concurrent ``init`` in the upgrade's window between steps 2 and 3, by a tiervault
    that knows nothing of ``config.next`` (a version-1 one): its key slot, then its ``config``."""

    elsewhere: Path

    async def delete(self, name: str) -> None:
        await super().delete(name)
        if name == "config":
            async with LocalBackend(self.elsewhere) as other:
                await Repository.init(other, b"someone else", kdf=KDF, version=1)
                for info in [i async for i in other.list("keys/")] + [await other.stat("config")]:
                    assert await self.put_if_absent(info.name, await other.get(info.name))


async def test_a_concurrent_init_stops_the_upgrade_and_both_configs_are_reported(
    repo_path: Path, tmp_path: Path
) -> None:
    v1, _points = await _local_v1(repo_path, tmp_path / "src")
    async with _InitAfterDelete(repo_path) as backend:
        backend.elsewhere = tmp_path / "elsewhere"
        v = Vault(await Repository.open(backend, PASSWORD.encode()))
        with pytest.raises(tiervault.RepositoryExistsError) as info:
            await v.upgrade()
    foreign = json.loads((repo_path / "config").read_bytes())
    message = str(info.value)
    assert foreign["id"][:16] in message and json.loads(v1)["id"][:16] in message
    assert "concurrent init" in message
    assert (repo_path / CONFIG_NEXT_NAME).read_bytes() == upgraded_config(v1)  # this repository's, kept


async def test_a_stray_config_next_refuses_writes_but_not_reads(repo_path: Path, tmp_path: Path) -> None:
    await _local_v1(repo_path, tmp_path / "src")
    (repo_path / CONFIG_NEXT_NAME).write_bytes(b'{"kind":"something else"}')
    async with open_vault(repo_path) as v:
        assert len(await v.points()) == 2
        for write in (v.snapshot("docs"), v.upgrade()):
            with pytest.raises(tiervault.IntegrityError, match="not the version-2 upgrade") as info:
                await write
            assert info.value.name == CONFIG_NEXT_NAME
    assert json.loads((repo_path / "config").read_bytes())["version"] == 1


# ---------------------------------------------------------------------------------------------- memory


@pytest.mark.parametrize("step", [0, 1, 2, 3])
async def test_upgrade_on_the_memory_backend(tmp_path: Path, step: int) -> None:
    """The same on the test memory backend: 0 is a whole upgrade, 1-3 a kill after that step."""
    backend = MemoryBackend()
    repo, points = await _make_v1(backend, tmp_path / "src")
    v1 = await backend.get("config")
    if step:
        await _kill_after(backend, v1, step)
        reader = Vault(await Repository.open(backend, SECOND.encode()))
        await _assert_restores(reader, points, tmp_path / "read")
        await reader.snapshot("docs")
    else:
        assert (await Vault(repo).upgrade()).upgraded
    assert sorted(n for n in backend.objects if n.startswith("config")) == ["config"]
    assert (await backend.get("config")) == upgraded_config(v1)
    for password in (PASSWORD, SECOND):
        v = Vault(await Repository.open(backend, password.encode()))
        assert v._repo.format_version == 2
        await _assert_restores(v, points, tmp_path / f"after-{password.replace(' ', '-')}")


async def test_sessions_opened_before_another_upgrade_finished(tmp_path: Path) -> None:
    """Two sessions open the version-1 repository; both upgrade, concurrently: both succeed with the
    same config, and ``config.next`` is gone. A third, opened at version 1 too, then writes: it finds
    the version-2 config already there and writes by its rules."""
    backend = MemoryBackend()
    _repo, points = await _make_v1(backend, tmp_path / "src")
    v1 = await backend.get("config")
    a, b, c = [Vault(await Repository.open(backend, pw.encode())) for pw in (PASSWORD, SECOND, PASSWORD)]
    results = await asyncio.gather(a.upgrade(), b.upgrade())
    assert all(r.upgraded and r.version == 2 and r.upgraded_from == object_hash(v1) for r in results)
    assert sorted(n for n in backend.objects if n.startswith("config")) == ["config"]
    assert await backend.get("config") == upgraded_config(v1)
    assert c._repo.format_version == 1
    await c.snapshot("docs")
    assert c._repo.format_version == 1  # it opened version 1 and found no config.next: version-1 rules
    assert sorted(n for n in backend.objects if n.startswith("config")) == ["config"]
    reader = Vault(await Repository.open(backend, SECOND.encode()))
    await _assert_restores(reader, points, tmp_path / "after")


# ---------------------------------------------------------------------------------------------- CLI


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_upgrade_and_json(
    repo_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    v1, points = asyncio.run(_local_v1(repo_path, tmp_path / "src"))
    copy = tmp_path / "copy"
    shutil.copytree(repo_path, copy)
    monkeypatch.setenv("TIERVAULT_PASSWORD", PASSWORD)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # never a terminal: no prompt
    code, out, _err = _cli(capsys, "-r", str(repo_path), "upgrade")
    assert code == 0
    assert "upgraded the repository" in out and "format version 2" in out
    code, out, _err = _cli(capsys, "-r", str(repo_path), "upgrade")
    assert code == 0 and "already format version 2; nothing to do" in out
    _assert_upgraded(repo_path, v1)
    code, out, _err = _cli(capsys, "-r", str(copy), "upgrade", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["upgraded"] is True and doc["resumed"] is False
    assert (doc["from_version"], doc["version"], doc["upgraded_from"]) == (1, 2, object_hash(v1))
    code, out, _err = _cli(capsys, "-r", str(copy), "upgrade", "--json")
    assert code == 0 and json.loads(out)["upgraded"] is False
    monkeypatch.setenv("TIERVAULT_PASSWORD", SECOND)
    code, out, _err = _cli(capsys, "-r", str(copy), "points", "--json")
    assert code == 0 and [p["id"] for p in json.loads(out)] == [pid for pid, _tree in points]


# ---------------------------------------------------------------------------------------------- refusals


async def test_init_refuses_a_place_where_an_upgrade_was_killed(repo_path: Path, tmp_path: Path) -> None:
    """Killed after step 2, only ``config.next`` is there: an init must not put a second repository."""
    v1, _points = await _local_v1(repo_path, tmp_path / "src")
    async with LocalBackend(repo_path) as backend:
        await _kill_after(backend, v1, 2)
    with pytest.raises(tiervault.RepositoryExistsError, match=r"config\.next"):
        await tiervault.init(repo_path, password="someone else", kdf=KDF)
    assert not (repo_path / "config").exists()
    async with open_vault(repo_path) as v:
        await v.upgrade()
    _assert_upgraded(repo_path, v1)


async def test_without_config_a_config_next_that_is_no_upgrade_is_refused(
    repo_path: Path, tmp_path: Path
) -> None:
    v1, _points = await _local_v1(repo_path, tmp_path / "src")
    (repo_path / "config").rename(repo_path / CONFIG_NEXT_NAME)  # a version-1 config under that name
    with pytest.raises(tiervault.UnsupportedFormatError, match="not an upgraded version-2 config"):
        await tiervault.open(repo_path, password=PASSWORD)
    assert (repo_path / CONFIG_NEXT_NAME).read_bytes() == v1


async def test_a_config_not_in_canonical_form_is_not_upgraded(repo_path: Path, tmp_path: Path) -> None:
    """Its key slots vouch for its exact bytes, which the version-2 config could not give back."""
    v1, _points = await _local_v1(repo_path, tmp_path / "src")
    loose = json.dumps(json.loads(v1), indent=1).encode()
    async with open_vault(repo_path) as v:
        await v._repo.keyring.write_slot(THIRD.encode(), KDF, object_hash(loose))
    (repo_path / "config").chmod(0o644)
    (repo_path / "config").write_bytes(loose)
    async with tiervault.open(repo_path, password=THIRD) as v:
        with pytest.raises(tiervault.UnsupportedFormatError, match="canonical"):
            await v.upgrade()
        await v.snapshot("docs")  # still a writable version-1 repository
    assert (repo_path / "config").read_bytes() == loose
    assert not (repo_path / CONFIG_NEXT_NAME).exists()
