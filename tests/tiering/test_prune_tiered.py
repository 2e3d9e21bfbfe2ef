"""Prune on a tiered repository: a partly used pack in Archive cannot be read, so it is not
repacked (a warning says so) instead of failing the whole prune; it stays, archived, for the points
that still need it. (Inside Archive's minimum retention it is not even tried: early deletion.)"""

from __future__ import annotations

from pathlib import Path

import tiervault
from tests.prune.helpers import memory_vault, tail_changed, write_files
from tests.support import FakeClock, MemoryBackend
from tiervault.backend.base import Tier


async def test_prune_leaves_an_archived_partly_used_pack(tmp_path: Path) -> None:
    clock = FakeClock()
    vault, repo = await memory_vault(clock)
    backend = repo.backend
    assert isinstance(backend, MemoryBackend)
    src = tmp_path / "src"
    write_files(src, {"a.bin": tail_changed(1)})
    await vault.protect(src, name="src")
    await vault.snapshot("src")
    (pack,) = [n for n in backend.objects if n.startswith("data/")]
    await backend.set_tier_many([pack], Tier.ARCHIVE)
    write_files(src, {"a.bin": tail_changed(2)})
    await vault.snapshot("src")
    await vault.forget(policy=tiervault.Policy(keep_last=1))  # the old tail's chunks are unused
    pid = pack.rsplit("/", 1)[-1]
    inside = await vault.prune(max_unused=0.0)  # inside Archive's 180 days: not even tried
    assert pid not in inside.repacked and [e.pack for e in inside.early_deferred] == [pid]
    clock.advance(181 * 86400)
    report = await vault.prune(max_unused=0.0)
    assert report.ok and pid not in report.repacked
    assert pid not in {c[0] for c in report.condemned}  # still needed: kept, not condemned
    assert any(pid in w and "not repacked" in w and "Archive" in w for w in report.warnings)
    assert (await backend.stat(pack)).tier is Tier.ARCHIVE
    assert (await vault.check()).ok
