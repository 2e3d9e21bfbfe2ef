"""Time-boxed restores: stop before the deadline, then resume into the same target."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import tiervault
from tests.e2e import KiB, MiB
from tests.support.trees import File, assert_trees_equal, build_tree, snapshot_tree


async def test_restore_deadline_then_resume_into_the_same_target(
    vault: tiervault.Vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    rnd = random.Random(9)
    spec = {f"d{i % 3}/f{i:02d}.bin": File(rnd.randbytes(900 * KiB)) for i in range(40)}
    spec["big.bin"] = File(rnd.randbytes(12 * MiB))
    build_tree(src, spec)
    await vault.protect(src, name="src")
    point = (await vault.snapshot("src")).point
    out = tmp_path / "out"

    from tiervault.restorer import Restorer

    ticks = {"n": 0}

    def passed(self: Restorer) -> bool:  # the deadline passes after the first 3 range reads
        ticks["n"] += 1
        self.incomplete = self.incomplete or ticks["n"] > 3
        return self.incomplete

    with monkeypatch.context() as m:
        m.setattr(Restorer, "_deadline_passed", passed)
        first = await vault.restore(point, out, deadline=60, verify=True)
    assert first.incomplete and first.ok, first.errors
    assert first.stats.read_requests == 3
    assert not [p for p in out.rglob(".tiervault-restore-*")], "temporary files left behind"

    second = await vault.restore(point, out, verify=True)
    assert not second.incomplete and second.ok
    assert second.stats.files_unchanged > 0, "files finished by the first run were written again"
    assert_trees_equal(snapshot_tree(src), snapshot_tree(out))
