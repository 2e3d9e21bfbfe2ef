"""Format version 2 (docs/format.md, "config"): new repositories are version 2; a reader that lacks a
``read_features`` entry refuses before any password is used; one that lacks a ``write_features`` entry
reads and restores but refuses every write; a version-1 ``config`` beside version-2 objects (rolled
back) refuses writes too. Version-1 repositories stay readable and writable."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import tiervault
from tests.e2e import KDF, PASSWORD, init_vault, open_vault, repo_objects
from tiervault.backend.local import LocalBackend
from tiervault.core.crypto import object_hash
from tiervault.repo.repository import Repository

NEW_PASSWORD = "the slot sealed for the edited config"


def _source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"alpha\n" * 100)
    return src


async def _edit_config(repo_path: Path, **change: object) -> None:
    """Rewrite ``config`` with ``change`` and add a key slot that seals the new bytes, as a newer
    tiervault writing such a config would (the old slots no longer vouch for it)."""
    doc = json.loads((repo_path / "config").read_bytes())
    doc.update(change)
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    async with open_vault(repo_path) as v:
        await v._repo.keyring.write_slot(NEW_PASSWORD.encode(), KDF, object_hash(data))
    os.chmod(repo_path / "config", 0o644)
    (repo_path / "config").write_bytes(data)


async def test_a_new_repository_is_version_2(repo_path: Path) -> None:
    async with init_vault(repo_path) as v:
        assert v._repo.format_version == 2 and v._repo.gc_enabled
    doc = json.loads((repo_path / "config").read_bytes())
    assert doc["version"] == 2 and doc["write_features"] == ["gc-1"] and doc["read_features"] == []


async def test_an_unknown_write_feature_reads_and_restores_but_refuses_writes(
    repo_path: Path, tmp_path: Path
) -> None:
    src = _source(tmp_path)
    async with init_vault(repo_path) as v:
        await v.protect(src, name="docs")
        point = (await v.snapshot("docs")).point
    await _edit_config(repo_path, write_features=["gc-1", "gc-9"])
    async with tiervault.open(repo_path, password=NEW_PASSWORD) as v:
        assert [p.id for p in await v.points()] == [point.id]
        await v.restore(point.id, tmp_path / "out")
        assert (tmp_path / "out" / "a.txt").read_bytes() == (src / "a.txt").read_bytes()
        before = repo_objects(repo_path, "snapshots") + repo_objects(repo_path, "items")
        for write in (
            v.snapshot("docs"),
            v.protect(src, name="other"),
            v.forget("docs", policy=tiervault.Policy(keep_last=1)),
        ):
            with pytest.raises(tiervault.UnsupportedFormatError, match=r"gc-9.*upgrade tiervault"):
                await write
        assert repo_objects(repo_path, "snapshots") + repo_objects(repo_path, "items") == before
        # a dry run writes nothing, so it is allowed
        assert await v.forget("docs", policy=tiervault.Policy(keep_last=1), dry_run=True)


async def test_an_unknown_read_feature_is_refused_before_any_password(repo_path: Path) -> None:
    async with init_vault(repo_path):
        pass
    await _edit_config(repo_path, read_features=["sparse-trees"])
    for password in (NEW_PASSWORD, "wrong"):
        with pytest.raises(tiervault.UnsupportedFormatError, match="sparse-trees"):
            await tiervault.open(repo_path, password=password)


async def test_a_version_1_repository_stays_readable_and_writable(repo_path: Path, tmp_path: Path) -> None:
    src = _source(tmp_path)
    async with LocalBackend(repo_path) as backend:
        await Repository.init(backend, PASSWORD.encode(), kdf=KDF, version=1)
    async with open_vault(repo_path) as v:
        assert v._repo.format_version == 1 and not v._repo.gc_enabled
        await v.protect(src, name="docs")
        point = (await v.snapshot("docs")).point
        await v.restore(point.id, tmp_path / "out")
    assert json.loads((repo_path / "config").read_bytes())["version"] == 1
    assert not (repo_path / "gc").exists() and not (repo_path / "locks").exists()


async def test_a_version_1_config_beside_version_2_objects_refuses_writes(
    repo_path: Path, tmp_path: Path
) -> None:
    """A ``config`` rolled back from version 2 (its version-1 bytes are reconstructible) must not let
    version-1 rules write beside plans and heartbeats."""
    src = _source(tmp_path)
    async with LocalBackend(repo_path) as backend:
        await Repository.init(backend, PASSWORD.encode(), kdf=KDF, version=1)
    async with open_vault(repo_path) as v:
        await v.protect(src, name="docs")
        (repo_path / "gc").mkdir()
        (repo_path / "gc" / ("ab" * 32)).write_bytes(b"a plan")
        with pytest.raises(tiervault.UnsupportedFormatError, match="downgraded"):
            await v.snapshot("docs")
        assert repo_objects(repo_path, "snapshots") == []


async def test_init_refuses_an_unknown_format_version(repo_path: Path) -> None:
    async with LocalBackend(repo_path) as backend:
        with pytest.raises(tiervault.UsageError, match="format version"):
            await Repository.init(backend, PASSWORD.encode(), kdf=KDF, version=3)
