"""A cache directory that is full, read-only or gone: backups and restores carry on without the disk
tier, with exactly one warning, and never fail because of it."""

from __future__ import annotations

import errno
import logging
import shutil
from pathlib import Path

import pytest

from tests.cache import Tally, cache_root, cache_warnings, cached, init_vault, open_vault, random_tree
from tests.support.trees import assert_trees_equal, snapshot_tree
from tiervault.cache import files as cache_files


async def _backup_and_restore(tmp_path: Path, src: Path, cache_dir: Path) -> None:
    """init, protect, two snapshots, a restore of each (a second session for the second)."""
    repo = tmp_path / "repo"
    async with init_vault(repo, cache_dir) as vault:
        await vault.protect(src, name="src")
        first = await vault.snapshot("src")
        assert not first.partial
        result = await vault.restore(first.point, tmp_path / "out1")
        assert result.ok
        assert_trees_equal(snapshot_tree(src), snapshot_tree(tmp_path / "out1"))
        random_tree(src / "more", files=2, seed=2)
        second = await vault.snapshot("src")
        stats = await vault.cache_stats()
    assert not stats.enabled and stats.disabled_reason
    async with open_vault(repo, cache_dir) as vault:
        result = await vault.restore(second.point, tmp_path / "out2", verify=True)
    assert result.ok
    assert_trees_equal(snapshot_tree(src), snapshot_tree(tmp_path / "out2"))


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        OSError(errno.EROFS, "Read-only file system"),
        PermissionError(errno.EACCES, "Permission denied"),
    ],
    ids=["ENOSPC", "EDQUOT", "EROFS", "EACCES"],
)
async def test_a_cache_that_cannot_be_written_is_skipped_with_one_warning(
    tmp_path: Path,
    src: Path,
    cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    error: OSError,
) -> None:
    writes: list[str] = []

    def failing_write(path: str, data: bytes | memoryview) -> None:
        writes.append(path)
        raise error

    monkeypatch.setattr(cache_files, "write_file", failing_write)
    caplog.set_level(logging.WARNING, logger="tiervault")
    await _backup_and_restore(tmp_path, src, cache_dir)
    warnings = cache_warnings(caplog.records)
    # one warning per session: the second session (a new process, in real life) tries once more
    assert len(warnings) == 2, warnings
    assert all(error.strerror in w for w in warnings)
    assert len(writes) == 2  # after the first failure, a session does not touch the cache again
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_cache_dir_that_cannot_be_created_is_skipped_with_one_warning(
    tmp_path: Path, src: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A real failure, not a mock: the cache path is a regular file (as root, chmod cannot make a
    directory unwritable, so this is how the test makes it unusable)."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"")
    caplog.set_level(logging.WARNING, logger="tiervault")
    await _backup_and_restore(tmp_path, src, blocker / "cache")
    assert len(cache_warnings(caplog.records)) == 2
    assert blocker.read_bytes() == b""


async def test_the_cache_dir_deleted_mid_snapshot(
    tmp_path: Path, src: Path, cache_dir: Path, cloud: Tally, caplog: pytest.LogCaptureFixture
) -> None:
    """The whole cache directory disappears while a snapshot uploads its packs (someone cleans
    ~/.cache, a mount goes away): the snapshot completes, one warning, and the cache stays off for
    the rest of the session; nothing is lost, restores read from the store."""
    repo = tmp_path / "repo"
    random_tree(src, files=8, seed=3)
    data_puts = 0

    def remove_cache(name: str) -> None:
        nonlocal data_puts
        if name.startswith("data/"):
            data_puts += 1
            if data_puts == 3:  # atomically gone (write-through threads may be busy inside it)
                gone = cache_dir.with_name("gone")
                cache_dir.rename(gone)
                shutil.rmtree(gone, ignore_errors=True)

    caplog.set_level(logging.WARNING, logger="tiervault")
    async with init_vault(repo, cache_dir) as vault:
        await vault.protect(src, name="src")
        cloud.after_put = remove_cache
        result = await vault.snapshot("src")
        cloud.after_put = None
        assert not result.partial and data_puts >= 4
        assert not cached(cache_dir)  # not made again behind the user's back in this session
        restored = await vault.restore(result.point, tmp_path / "out1")
        assert restored.ok and restored.stats.cache_hits == 0 and restored.stats.remote_reads > 0
    assert_trees_equal(snapshot_tree(src), snapshot_tree(tmp_path / "out1"))
    warnings = cache_warnings(caplog.records)
    assert len(warnings) == 1 and "unusable" in warnings[0], warnings

    # the next session starts a new cache there
    async with open_vault(repo, cache_dir) as vault:
        restored = await vault.restore(result.point, tmp_path / "out2")
    assert restored.ok
    assert_trees_equal(snapshot_tree(src), snapshot_tree(tmp_path / "out2"))
    assert cached(cache_dir, "snapshots/")
    assert len(cache_warnings(caplog.records)) == 1


async def test_entries_deleted_mid_restore_are_misses(
    tmp_path: Path, src: Path, cache_dir: Path, cloud: Tally, caplog: pytest.LogCaptureFixture
) -> None:
    """Deleting entries (not the directory) at any moment is not even worth a warning."""
    repo = tmp_path / "repo"
    async with init_vault(repo, cache_dir) as vault:
        await vault.protect(src, name="src")
        point = (await vault.snapshot("src")).point
    caplog.set_level(logging.WARNING, logger="tiervault")
    async with open_vault(repo, cache_dir) as vault:
        for folder in ("data", "meta"):
            shutil.rmtree(cache_root(cache_dir) / folder)
        result = await vault.restore(point, tmp_path / "out")
        assert (await vault.cache_stats()).enabled
    assert result.ok and result.stats.remote_reads > 0
    assert_trees_equal(snapshot_tree(src), snapshot_tree(tmp_path / "out"))
    assert cache_warnings(caplog.records) == []
