"""A file that cannot be read mid-snapshot: the point is committed without it, marked partial."""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path

import pytest

import tiervault
from tests.e2e import MiB, open_vault
from tests.support.trees import (
    Dir,
    Entry,
    File,
    Snapshot,
    assert_trees_equal,
    build_tree,
    filter_tree,
    snapshot_tree,
)
from tiervault.sources.folder import list_dir, stat_json

SPEC: dict[str, Entry] = {
    "keep.txt": File(b"keep me"),
    "big.bin": File(random.Random(5).randbytes(2 * MiB)),
    "sub": Dir(),
    "sub/bad.bin": File(random.Random(6).randbytes(300_000)),
    "sub/fine.txt": File(b"fine"),
    "sub/deeper/also.txt": File(b"also"),
}


async def _check_partial(
    vault: tiervault.Vault,
    repo_path: Path,
    tmp_path: Path,
    result: tiervault.SnapshotResult,
    expected: Snapshot,
    bad: str,
    reason: str,
) -> None:
    assert result.partial
    assert [e["path"] for e in result.errors] == [bad]
    assert reason in result.errors[0]["error"].lower()
    assert result.point.partial
    assert result.stats.files == 5  # seen ...
    assert result.stats.files_read == 4  # ... but one could not be read
    # the stored point says so too, also for a fresh session
    async with open_vault(repo_path) as again:
        (stored,) = await again.points("src")
        assert stored.partial
        assert [e["path"] for e in stored.errors] == [bad]
    names = {e.path for e in await vault.ls(result.point, recursive=True)}
    assert bad not in names and "sub/fine.txt" in names
    out = tmp_path / "out"
    restored = await vault.restore(result.point, out, verify=True)
    assert restored.ok and restored.stats.files_verified == 4
    assert_trees_equal(expected, snapshot_tree(out))


async def test_unreadable_file_is_recorded_and_the_rest_restores(
    vault: tiervault.Vault, repo_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    build_tree(src, SPEC)
    expected = filter_tree(snapshot_tree(src), lambda p: p != b"sub/bad.bin")
    await vault.protect(src, name="src")
    bad_path = os.fsencode(src / "sub" / "bad.bin")
    real_open = os.open
    refused = []

    def fake_open(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if os.fsencode(path) == bad_path:
            refused.append(path)
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr("tiervault.sources.reading.os.open", fake_open)
        result = await vault.snapshot("src")
    assert refused, "the hook was never called: the archiver no longer opens files with os.open"
    await _check_partial(vault, repo_path, tmp_path, result, expected, "sub/bad.bin", "permission denied")

    # the next snapshot (file readable again) is complete and includes it
    again = await vault.snapshot("src")
    assert not again.partial and not again.point.partial
    assert again.stats.files_read == 1  # only the file missing from the parent point
    await vault.restore(again.point, tmp_path / "out2", verify=True)
    assert_trees_equal(snapshot_tree(src), snapshot_tree(tmp_path / "out2"))


async def test_file_vanishing_between_listing_and_reading(
    vault: tiervault.Vault, repo_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    build_tree(src, SPEC)
    expected = filter_tree(snapshot_tree(src), lambda p: p != b"sub/bad.bin")
    await vault.protect(src, name="src")
    vanished = []

    def stat_then_delete(path, name, st, **kwargs):  # type: ignore[no-untyped-def]
        node = stat_json(path, name, st, **kwargs)
        if name == b"bad.bin":
            os.unlink(path)  # listed and stat-ed, gone before a worker opens it
            vanished.append(path)
        return node

    monkeypatch.setattr("tiervault.archiver.walker.stat_json", stat_then_delete)
    result = await vault.snapshot("src")
    assert vanished, "the hook was never called"
    # ``expected`` holds sub's mtime from before the delete: the walker had stat-ed sub already
    await _check_partial(vault, repo_path, tmp_path, result, expected, "sub/bad.bin", "no such file")


async def test_unreadable_directory_is_recorded(
    vault: tiervault.Vault, repo_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory that cannot be listed: recorded, the rest is backed up."""
    src = tmp_path / "src"
    build_tree(src, SPEC)
    await vault.protect(src, name="src")
    locked = os.fsencode(src / "sub" / "deeper")

    def refuse(path, ident=None):  # type: ignore[no-untyped-def]
        if path == locked:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return list_dir(path, ident)

    monkeypatch.setattr("tiervault.archiver.walker.list_dir", refuse)
    result = await vault.snapshot("src")
    assert result.partial and result.point.partial
    assert [e["path"] for e in result.errors] == ["sub/deeper"]
    names = {e.path for e in await vault.ls(result.point, recursive=True)}
    assert "sub/bad.bin" in names and "sub/deeper/also.txt" not in names
