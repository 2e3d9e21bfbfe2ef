"""Temporary files of killed snapshots: ``check`` reports them (count, bytes, names) and the next
snapshot removes those older than the safe age (one hour by the backend's clock), never younger ones."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import tiervault
from tests.e2e import PASSWORD, KiB, init_vault
from tests.support import FakeClock
from tests.support.trees import File, build_tree
from tiervault.backend.local import LocalBackend
from tiervault.repo.leftovers import SAFE_AGE
from tiervault.repo.repository import Repository

#: ``tiervault snapshot`` SIGKILLed the moment its first object is complete in a temp file
_KILLED_SNAPSHOT = (
    "import os, signal, sys\n"
    "os.link = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
    "from tiervault.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def killed_snapshot(repo: Path, item: str) -> set[Path]:
    """Run a real snapshot in a child that is SIGKILLed mid-put; return the temp files it left
    (one per put in flight: packs are stored concurrently)."""
    src = str(Path(tiervault.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
        "TIERVAULT_PASSWORD": PASSWORD,
    }
    before = set(repo.rglob(".tmp-*"))
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_SNAPSHOT, "-r", str(repo), "snapshot", item],
        env=env,
        capture_output=True,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = set(repo.rglob(".tmp-*")) - before
    assert left
    return left


async def open_with(repo: Path, clock: FakeClock) -> tiervault.Vault:
    """The repository through a local backend on the fake clock (the clock that judges ages)."""
    return tiervault.Vault(await Repository.open(LocalBackend(repo, clock=clock), PASSWORD.encode()))


def leftover_warnings(result: tiervault.CheckResult) -> list[dict[str, str]]:
    return [w for w in result.warnings if "temporary file" in w["warning"]]


async def test_check_reports_and_the_next_snapshot_removes_old_temp_files(
    repo_path: Path, tmp_path: Path
) -> None:
    build_tree(tmp_path / "src", {"a.bin": File(random.Random(1).randbytes(200 * KiB))})
    async with init_vault(repo_path) as vault:
        await vault.protect(tmp_path / "src", name="src")
    old = killed_snapshot(repo_path, "src") | killed_snapshot(repo_path, "src")
    assert list((repo_path / "snapshots").glob("*")) == []  # nothing was committed
    size = sum(p.stat().st_size for p in old)
    assert size > 0

    clock = FakeClock(start=max(p.stat().st_mtime for p in old) + 60)
    vault = await open_with(repo_path, clock)
    try:
        checked = await vault.check()
        assert checked.ok  # leftovers are warnings, not damage
        summary, *each = leftover_warnings(checked)
        assert summary["bytes"] == str(size) and f"{len(old)} temporary file(s)" in summary["warning"]
        assert {w["object"] for w in each} == {str(p.relative_to(repo_path)) for p in old}
        assert sum(int(w["bytes"]) for w in each) == size

        # a minute old: possibly a live writer on another host, so the next snapshot keeps them
        await vault.snapshot("src")
        assert all(p.exists() for p in old)

        clock.advance(SAFE_AGE)
        young = killed_snapshot(repo_path, "src")  # young ones beside the old ones
        for p in young:
            os.utime(p, (clock.now(), clock.now()))  # written "now" by the fake clock
        await vault.snapshot("src")
        assert not any(p.exists() for p in old)
        assert all(p.exists() for p in young)
        summary, *each = leftover_warnings(await vault.check())
        assert {w["object"] for w in each} == {str(p.relative_to(repo_path)) for p in young}
        assert summary["bytes"] == str(sum(p.stat().st_size for p in young))
    finally:
        await vault.aclose()
