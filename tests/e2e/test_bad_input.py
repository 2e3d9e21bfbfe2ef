"""Bad input gets a clear, specific error, and leaves the repository as it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import tiervault
from tests.e2e import PASSWORD, init_vault, open_vault, repo_listing, repo_objects
from tests.support.trees import File, build_tree
from tiervault.core.chunker import ChunkerParams


@pytest.fixture
async def filled_repo(repo_path: Path, tmp_path: Path) -> Path:
    build_tree(tmp_path / "src", {"a.txt": File(b"a"), "d/b.txt": File(b"b")})
    async with init_vault(repo_path) as vault:
        await vault.protect(tmp_path / "src", name="src")
        await vault.snapshot("src")
    return repo_path


@pytest.mark.parametrize("password", ["wrong", PASSWORD + " ", PASSWORD.upper(), b"\xff" + PASSWORD.encode()])
async def test_wrong_password_writes_nothing(filled_repo: Path, password: str | bytes) -> None:
    before = repo_listing(filled_repo)
    with pytest.raises(tiervault.WrongPasswordError):
        await tiervault.open(filled_repo, password=password)
    with pytest.raises(tiervault.WrongPasswordError):
        async with tiervault.open(filled_repo, password=password):
            pass  # pragma: no cover
    assert repo_listing(filled_repo) == before
    async with open_vault(filled_repo) as vault:  # the right one still works
        assert len(await vault.points()) == 1


async def test_empty_password_is_a_usage_error(filled_repo: Path, tmp_path: Path) -> None:
    with pytest.raises(tiervault.UsageError):
        await tiervault.open(filled_repo, password="")
    with pytest.raises(tiervault.UsageError):
        await tiervault.init(tmp_path / "new", password="")
    assert not (tmp_path / "new").exists() or not any((tmp_path / "new").iterdir())


async def test_open_where_there_is_no_repository(tmp_path: Path) -> None:
    with pytest.raises(tiervault.RepositoryNotFoundError):
        await open_vault(tmp_path / "missing")
    assert not (tmp_path / "missing").exists(), "opening must not create anything"
    (tmp_path / "empty").mkdir()
    with pytest.raises(tiervault.RepositoryNotFoundError):
        await open_vault(tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []
    with pytest.raises(tiervault.RepositoryNotFoundError):
        await open_vault(f"file://{tmp_path}/missing")


async def test_init_over_an_existing_repository(filled_repo: Path) -> None:
    before = repo_listing(filled_repo)
    with pytest.raises(tiervault.RepositoryExistsError):
        await init_vault(filled_repo)
    with pytest.raises(tiervault.RepositoryExistsError):
        await init_vault(filled_repo, password="another password")
    assert repo_listing(filled_repo) == before
    async with open_vault(filled_repo) as vault:
        assert len(await vault.keys()) == 1
        assert len(await vault.points()) == 1


async def test_newer_format_version_is_refused(filled_repo: Path) -> None:
    config = filled_repo / "config"
    doc = json.loads(config.read_bytes())
    assert doc["version"] == 2
    doc["version"] = 3
    config.chmod(0o644)
    config.write_bytes(json.dumps(doc).encode())
    with pytest.raises(tiervault.UnsupportedFormatError, match="version 3"):
        await open_vault(filled_repo)
    with pytest.raises(tiervault.UnsupportedFormatError):  # even before any password is tried
        await tiervault.open(filled_repo, password="wrong")


async def test_a_config_with_unknown_chunker_parameters_is_unsupported(filled_repo: Path) -> None:
    """Stored parameters a reader cannot use are a format problem, not the caller's bad argument."""
    config = filled_repo / "config"
    doc = json.loads(config.read_bytes())
    doc["chunker"]["algorithm"] = "fastcdc-2030"
    config.chmod(0o644)
    config.write_bytes(json.dumps(doc).encode())
    with pytest.raises(tiervault.UnsupportedFormatError, match="fastcdc-2030"):
        await open_vault(filled_repo)


async def test_bad_parameters_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(tiervault.UsageError):
        await tiervault.init(tmp_path / "r", password="pw", kdf=tiervault.ScryptParams(log_n=21))
    with pytest.raises(tiervault.UsageError):
        await tiervault.init(
            tmp_path / "r", password="pw", chunker=ChunkerParams(min_size=1 << 20, avg_size=1 << 19)
        )
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


async def test_a_directory_that_is_not_a_repository(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config").write_text("[core]\nbare = true\n")
    with pytest.raises(tiervault.UnsupportedFormatError):
        await open_vault(tmp_path / "other")


async def test_unsupported_address(tmp_path: Path) -> None:
    with pytest.raises(tiervault.UsageError):
        await open_vault("s3://bucket/repo")


async def test_protect_errors(vault: tiervault.Vault, tmp_path: Path, repo_path: Path) -> None:
    with pytest.raises(tiervault.UsageError):
        await vault.protect(tmp_path / "does-not-exist", name="x")
    (tmp_path / "file").write_bytes(b"not a dir")
    with pytest.raises(tiervault.UsageError):
        await vault.protect(tmp_path / "file", name="x")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir2").mkdir()
    for bad_name in ["", "a/b", " padded", "x" * 201]:
        with pytest.raises(tiervault.UsageError):
            await vault.protect(tmp_path / "dir", name=bad_name)
    await vault.protect(tmp_path / "dir", name="x")
    with pytest.raises(tiervault.UsageError):  # the same name for another source
        await vault.protect(tmp_path / "dir2", name="x")
    assert [i.name for i in await vault.items()] == ["x"]
    assert len(repo_objects(repo_path, "items")) == 1


async def test_snapshot_of_a_deleted_source(vault: tiervault.Vault, tmp_path: Path, repo_path: Path) -> None:
    build_tree(tmp_path / "src", {"a": File(b"a")})
    await vault.protect(tmp_path / "src", name="src")
    shutil.rmtree(tmp_path / "src")
    before = repo_listing(repo_path)
    with pytest.raises(tiervault.UsageError):
        await vault.snapshot("src")
    assert repo_listing(repo_path) == before
    assert await vault.points() == []


async def test_unknown_item(vault: tiervault.Vault, tmp_path: Path) -> None:
    with pytest.raises(tiervault.NotFoundError):
        await vault.snapshot("no-such-item")
    with pytest.raises(tiervault.NotFoundError):
        await vault.item("no-such-item")
    assert await vault.points("no-such-item") == []
