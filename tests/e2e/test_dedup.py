"""Deduplication: unchanged files are not read again, equal content is stored once."""

from __future__ import annotations

import random
from pathlib import Path

import tiervault
from tests.e2e import MiB, init_vault, open_vault, repo_objects
from tests.support.trees import Dir, Entry, File, Sparse, assert_trees_equal, build_tree, snapshot_tree


def _spec() -> dict[str, Entry]:
    rnd = random.Random(42)
    return {
        "a.bin": File(rnd.randbytes(2 * MiB + 123)),
        "b.txt": File(b"hello\n" * 1000),
        "sub": Dir(),
        "sub/c.bin": File(rnd.randbytes(700_000)),
        "sub/empty": File(b""),
        "sub/sparse": Sparse(3 * MiB, ((MiB, b"island"),)),
    }


async def test_unchanged_second_snapshot_reads_nothing_and_adds_no_packs(
    vault: tiervault.Vault, tmp_path: Path, repo_path: Path
) -> None:
    src = tmp_path / "src"
    build_tree(src, _spec())
    await vault.protect(src, name="src")
    first = await vault.snapshot("src")
    assert first.stats.files == 5
    assert first.stats.files_read == 5 and first.stats.files_reused == 0
    assert first.stats.packs_new >= 2  # at least one data and one meta pack
    data_before, meta_before = repo_objects(repo_path, "data"), repo_objects(repo_path, "meta")
    index_before = repo_objects(repo_path, "index")
    assert data_before and meta_before

    second = await vault.snapshot("src")

    s = second.stats
    assert second.point.parent == first.point.id
    assert (s.files, s.files_reused, s.files_read) == (5, 5, 0)
    assert s.bytes_read == 0
    assert s.bytes_reused == s.bytes_total == first.stats.bytes_total
    assert (s.chunks_new, s.bytes_new, s.packs_new, s.stored_new) == (0, 0, 0, 0)
    assert repo_objects(repo_path, "data") == data_before
    assert repo_objects(repo_path, "meta") == meta_before
    assert repo_objects(repo_path, "index") == index_before
    assert len(repo_objects(repo_path, "snapshots")) == 2
    # the recorded stats are the same numbers
    assert second.point.stats["files_reused"] == 5 and second.point.stats["packs_new"] == 0

    # and the reused point is complete: it restores exactly
    before = snapshot_tree(src)
    await vault.restore(second.point, tmp_path / "out", verify=True)
    assert_trees_equal(before, snapshot_tree(tmp_path / "out"))


async def test_same_content_under_two_names_is_stored_once(
    vault: tiervault.Vault, tmp_path: Path, repo_path: Path
) -> None:
    blob = random.Random(3).randbytes(3 * MiB)  # incompressible
    src = tmp_path / "src"
    build_tree(src, {"one.bin": File(blob), "deeper/two.bin": File(blob, mode=0o600)})
    await vault.protect(src, name="src")
    result = await vault.snapshot("src")

    s = result.stats
    assert s.bytes_total == 6 * MiB and s.bytes_read == 6 * MiB
    # bytes_new counts the new chunks' plain bytes: the file content once, plus two small trees
    assert 3 * MiB <= s.bytes_new < 3 * MiB + 64 * 1024, s.bytes_new
    stored_data = sum((repo_path / name).stat().st_size for name in repo_objects(repo_path, "data"))
    assert 3 * MiB <= stored_data < 3 * MiB + 256 * 1024, stored_data
    assert result.point.stats["bytes_new"] == s.bytes_new

    before = snapshot_tree(src)
    await vault.restore(result.point, tmp_path / "out", verify=True)
    assert_trees_equal(before, snapshot_tree(tmp_path / "out"))


async def test_force_rehash_reads_everything_but_stores_nothing_new(
    vault: tiervault.Vault, tmp_path: Path, repo_path: Path
) -> None:
    src = tmp_path / "src"
    build_tree(src, _spec())
    await vault.protect(src, name="src")
    first = await vault.snapshot("src")
    data_before = repo_objects(repo_path, "data")

    again = await vault.snapshot("src", force_rehash=True)

    s = again.stats
    assert (s.files, s.files_read, s.files_reused) == (5, 5, 0)
    # every byte of data is read again (holes are not data: they are never read)
    assert s.bytes_read == first.stats.bytes_read > 0
    assert (s.chunks_new, s.bytes_new, s.packs_new) == (0, 0, 0)
    assert repo_objects(repo_path, "data") == data_before
    assert await vault.ls(again.point, recursive=True) == await vault.ls(first.point, recursive=True)


async def test_dedup_across_items_and_after_reopen(tmp_path: Path, repo_path: Path) -> None:
    """A second item with content the repository already holds stores no data, even in a new session."""
    blob = random.Random(9).randbytes(2 * MiB)
    build_tree(tmp_path / "one", {"x.bin": File(blob)})
    build_tree(tmp_path / "two", {"renamed/y.bin": File(blob)})
    async with init_vault(repo_path) as vault:
        await vault.protect(tmp_path / "one", name="one")
        await vault.snapshot("one")
    data_before = repo_objects(repo_path, "data")
    async with open_vault(repo_path) as vault:
        await vault.protect(tmp_path / "two", name="two")
        result = await vault.snapshot("two")
        assert result.stats.files_read == 1 and result.stats.bytes_read == 2 * MiB
        assert result.stats.bytes_new < 64 * 1024  # only the trees
    assert repo_objects(repo_path, "data") == data_before
