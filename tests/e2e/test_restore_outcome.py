"""What a restore reports and refuses: counts of what was really written, a target where nothing can
be written, a non-empty directory in the way of a symlink, a target inside the protected source."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import tiervault
from tests.e2e import leftovers
from tests.support.trees import IS_ROOT, File, Symlink, assert_trees_equal, build_tree, snapshot_tree

SPEC = {
    "a.txt": File(b"a"),
    "b.txt": File(b"b"),
    "sub/c.txt": File(b"c"),
    "links/l": Symlink(b"../a.txt"),
}


@pytest.fixture
async def point(vault: tiervault.Vault, tmp_path: Path) -> tiervault.RecoveryPoint:
    src = tmp_path / "src"
    build_tree(src, SPEC)
    await vault.protect(src, name="src")
    return (await vault.snapshot("src")).point


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """An empty directory nothing can be written to: a read-only tmpfs as root, else mode 0555."""
    d = tmp_path / "read-only"
    d.mkdir()
    if not IS_ROOT:
        d.chmod(0o555)
        yield d
        d.chmod(0o755)
        return
    argv = ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(d)]
    mount = subprocess.run(argv, check=False, capture_output=True)
    if mount.returncode != 0:
        pytest.skip(f"SKIPPED LOUDLY: as root, a read-only directory needs a mount: {mount.stderr!r}")
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=True)


async def test_written_counts_what_was_written(
    vault: tiervault.Vault, point: tiervault.RecoveryPoint, tmp_path: Path
) -> None:
    target = tmp_path / "target"
    build_tree(target, {"b.txt/keep.txt": File(b"mine")})  # b.txt cannot be written
    result = await vault.restore(point, target, verify=True)
    assert [e["path"] for e in result.errors] == ["b.txt"]
    assert result.stats.files == 3
    assert result.stats.files_written == 2
    assert result.stats.files_verified == 2
    assert result.stats.symlinks == 1


async def test_non_empty_directory_in_the_way_of_a_symlink_is_reported_and_leaves_no_temp_file(
    vault: tiervault.Vault, point: tiervault.RecoveryPoint, tmp_path: Path
) -> None:
    target = tmp_path / "target"
    build_tree(target, {"links/l/keep.txt": File(b"mine")})
    result = await vault.restore(point, target)
    assert result.errors == ({"path": "links/l", "error": "a non-empty directory is in the way"},)
    assert (target / "links" / "l" / "keep.txt").read_bytes() == b"mine"
    assert result.stats.symlinks == 0
    assert leftovers(target) == []


async def test_read_only_target_is_an_error_not_a_partial_restore(
    vault: tiervault.Vault, point: tiervault.RecoveryPoint, read_only_dir: Path
) -> None:
    for target in (read_only_dir, read_only_dir / "absent"):
        with pytest.raises(tiervault.TiervaultError, match=r"read-only|not writable|cannot create") as info:
            await vault.restore(point, target)
        assert not isinstance(info.value, tiervault.UsageError | tiervault.IntegrityError)
    assert os.listdir(read_only_dir) == []


async def test_restore_where_nothing_can_be_written_is_an_error(
    vault: tiervault.Vault, point: tiervault.RecoveryPoint, tmp_path: Path
) -> None:
    target = tmp_path / "target"
    build_tree(target, {"b.txt/keep.txt": File(b"mine")})
    with pytest.raises(tiervault.TiervaultError, match=r"nothing could be restored.*non-empty directory"):
        await vault.restore(point, target, paths=["b.txt"])
    assert (target / "b.txt" / "keep.txt").read_bytes() == b"mine"
    assert leftovers(target) == []


async def test_target_inside_the_protected_source_needs_force(
    vault: tiervault.Vault, point: tiervault.RecoveryPoint, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = tmp_path / "src"
    before = snapshot_tree(src)
    for inside in (src / "restored", src / "sub" / "deeper"):
        with pytest.raises(tiervault.UsageError, match=r"inside the protected source.*force"):
            await vault.restore(point, inside)
        assert not inside.exists()
    assert snapshot_tree(src) == before
    # also through a symlink that leads into the source
    (tmp_path / "alias").symlink_to(src / "sub")
    with pytest.raises(tiervault.UsageError, match="inside the protected source"):
        await vault.restore(point, tmp_path / "alias" / "restored")

    with caplog.at_level(logging.WARNING, logger="tiervault"):
        forced = await vault.restore(point, src / "restored", force=True, verify=True)
    assert forced.ok
    assert any("inside the protected source" in r.getMessage() for r in caplog.records)
    assert_trees_equal(before, snapshot_tree(src / "restored"))

    # restoring over the source itself (in place) does not double the next snapshot: allowed
    caplog.clear()
    (src / "a.txt").write_bytes(b"damaged")
    os.utime(src / "a.txt", ns=(5, 5))
    in_place = await vault.restore(point, src, verify=True)
    assert in_place.ok and (src / "a.txt").read_bytes() == b"a"
    assert not [r for r in caplog.records if "inside the protected source" in r.getMessage()]


async def test_target_that_is_a_symlink_to_a_directory_is_followed_a_fifo_refused(
    vault: tiervault.Vault, point: tiervault.RecoveryPoint, tmp_path: Path
) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)
    result = await vault.restore(point, tmp_path / "alias", verify=True)  # the caller named it
    assert result.ok and (real / "sub" / "c.txt").read_bytes() == b"c"
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(tiervault.UsageError, match="not a directory"):
        await vault.restore(point, tmp_path / "fifo")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(tiervault.UsageError, match="not a directory"):
        await vault.restore(point, tmp_path / "dangling")
    assert not (tmp_path / "nowhere").exists()
