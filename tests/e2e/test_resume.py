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


async def test_sigkill_mid_snapshot_then_resume(tmp_path: Path) -> None:
    """A snapshot process killed with SIGKILL: the repository stays valid, the next run uploads
    nothing that already reached storage, and the point restores exactly."""
    import asyncio
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.e2e import KDF, PASSWORD

    src, repo = tmp_path / "src", tmp_path / "repo"
    rnd = random.Random(11)
    build_tree(src, {f"f{i:02d}.bin": File(rnd.randbytes(3 * MiB)) for i in range(16)})
    async with tiervault.init(repo, password=PASSWORD, kdf=KDF, pack_size=1 << 20) as vault:
        await vault.protect(src, name="src")
    script = (
        "import asyncio, sys, tiervault\n"
        "async def main():\n"
        "    async with tiervault.open(sys.argv[1], password=sys.argv[2]) as v:\n"
        "        await v.snapshot('src')\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(repo), PASSWORD])  # noqa: ASYNC220
    deadline = time.monotonic() + 60
    try:
        while len(repo_objects(repo, "data")) < 6:
            assert proc.poll() is None, "the snapshot finished before it could be killed"
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    stored = set(repo_objects(repo, "data"))
    async with tiervault.open(repo, password=PASSWORD) as vault:
        assert not await vault.points()
        assert (await vault.check()).ok
        result = await vault.snapshot("src")
        assert result.stats.bytes_new <= 48 * MiB - (len(stored) - 2) * MiB, (
            "stored packs were uploaded again"
        )
        assert stored <= set(repo_objects(repo, "data"))
        out = tmp_path / "out"
        assert (await vault.restore(result.point, out, verify=True)).ok
        assert_trees_equal(snapshot_tree(src), snapshot_tree(out))
        assert (await vault.check(read_data=True)).ok
