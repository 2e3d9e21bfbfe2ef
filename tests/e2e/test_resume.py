"""An interrupted snapshot leaves a valid repository, and the next one reuses what it stored."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import tiervault
from tests.e2e import MiB, repo_objects
from tests.support.trees import File, assert_trees_equal, build_tree, snapshot_tree
from tiervault.repo.repository import Repository


async def test_packs_of_an_interrupted_snapshot_are_reused(
    vault: tiervault.Vault, repo_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    rnd = random.Random(7)
    build_tree(src, {f"f{i}.bin": File(rnd.randbytes(6 * MiB)) for i in range(6)})
    await vault.protect(src, name="src")

    async def crash(self: Repository) -> None:
        raise RuntimeError("killed before any index file was written")

    with monkeypatch.context() as m:
        m.setattr(Repository, "flush_index", crash)
        with pytest.raises(RuntimeError):
            await vault.snapshot("src")
    stored = repo_objects(repo_path, "data")
    assert stored and not repo_objects(repo_path, "index"), "packs reached storage, no index did"
    assert (await vault.check()).ok  # unindexed packs are only a warning
    assert not await vault.points()

    result = await vault.snapshot("src")
    assert result.stats.bytes_new < 1 * MiB, "the data already stored was uploaded again"
    assert repo_objects(repo_path, "data") == stored
    out = tmp_path / "out"
    restored = await vault.restore(result.point, out, verify=True)
    assert restored.ok
    assert_trees_equal(snapshot_tree(src), snapshot_tree(out))
    report = await vault.check(read_data=True)
    assert report.ok and not report.warnings
