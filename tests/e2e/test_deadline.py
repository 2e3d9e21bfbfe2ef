"""Time-boxed snapshots: stop before the deadline, commit an incomplete point, resume from it."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import tiervault
from tests.e2e import KiB, MiB
from tests.support.trees import File, assert_trees_equal, build_tree, filter_tree, snapshot_tree
from tiervault.archiver import FolderArchiver


def _stop_after(monkeypatch: pytest.MonkeyPatch, nbytes: int) -> None:
    """Make the archiver's deadline fire once ``nbytes`` were read (deterministic, no clock)."""

    def stopping(self: FolderArchiver) -> bool:
        if self.progress.bytes_done >= nbytes:
            self.incomplete = True
        return self.incomplete

    monkeypatch.setattr(FolderArchiver, "_stopping", stopping)


async def test_deadline_commits_an_incomplete_point_and_the_next_run_resumes(
    vault: tiervault.Vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    rnd = random.Random(3)
    spec = {f"d{i % 4}/f{i:03d}.bin": File(rnd.randbytes(64 * KiB)) for i in range(120)}
    # last in walk order: had it been read first, its 6 MiB alone would trip the byte trigger before
    # any small file was done (a race that made this test fail about 1 run in 12)
    spec["zbig.bin"] = File(rnd.randbytes(6 * MiB))
    build_tree(src, spec)
    await vault.protect(src, name="src")

    with monkeypatch.context() as m:
        _stop_after(m, 40 * 64 * KiB)
        first = await vault.snapshot("src", deadline=600)
    assert first.incomplete and first.point.incomplete
    done = first.stats.files_read
    assert 0 < done < 121
    with pytest.raises(tiervault.NotFoundError):
        await vault.point("latest")  # an incomplete point is never "latest"
    [listed] = await vault.points()
    assert listed.incomplete

    # the incomplete point restores explicitly: exactly the files it holds
    part = tmp_path / "part"
    assert (await vault.restore(first.point, part, verify=True)).ok
    got = snapshot_tree(part)
    files = [p for p, e in got.items() if e["type"] == "file"]
    assert len(files) == done
    assert_trees_equal(
        filter_tree(snapshot_tree(src), lambda p: p in got and got[p]["type"] == "file"),
        filter_tree(got, lambda p: got[p]["type"] == "file"),
    )

    second = await vault.snapshot("src", deadline=600)
    assert not second.incomplete
    assert second.stats.files_reused == done, "files finished by the first run were read again"
    assert second.stats.files_read == 121 - done
    out = tmp_path / "out"
    assert (await vault.restore("latest", out, verify=True)).ok
    assert_trees_equal(snapshot_tree(src), snapshot_tree(out))
    assert (await vault.check(read_data=True)).ok


async def test_deadline_validation(vault: tiervault.Vault, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    await vault.protect(tmp_path / "src", name="src")
    with pytest.raises(tiervault.UsageError):
        await vault.snapshot("src", deadline=0)
    with pytest.raises(tiervault.UsageError):
        await vault.snapshot("src", deadline=datetime.now() + timedelta(minutes=1))  # naive
    ok = await vault.snapshot("src", deadline=datetime.now().astimezone() + timedelta(minutes=5))
    assert not ok.incomplete
