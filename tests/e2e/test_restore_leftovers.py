"""Temporary files of killed restores: the next restore into the same target removes the old ones.

A restore killed with SIGKILL (a real one, in a child process) leaves ``.tiervault-restore-*`` names
in the target. A later restore removes those whose ctime is at least ``STALE_AGE`` old by its clock
(a fake one here, started at the leftovers' own ctime), reports how many, and never touches a young
one (it may belong to a restore still running). Only directories that existed before the restore
are listed: a fresh restore lists none.
"""

from __future__ import annotations

import functools
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import tiervault
from tests.e2e import PASSWORD, KiB, MiB, leftovers
from tests.support import FakeClock
from tests.support.trees import File, assert_trees_equal, build_tree, snapshot_tree
from tiervault.backend.local import LocalBackend
from tiervault.core.crypto import chunk_id
from tiervault.repo.repository import Repository
from tiervault.restore import DirectoryTarget, Restorer
from tiervault.restore.leftovers import STALE_AGE, remove_stale, temp_name

#: a restore whose second data read never returns; it says so on stdout and waits to be killed
STALLING_RESTORE = r"""
import asyncio, sys
import tiervault
from tiervault.backend.local import LocalBackend
from tiervault.repo.repository import Repository
from tiervault.restore import Restorer

class Stalls:
    def __init__(self, inner):
        self._inner, self._reads = inner, 0
    def __getattr__(self, name):
        return getattr(self._inner, name)
    async def get(self, name, *, offset=0, length=None):
        if name.startswith("data/"):
            self._reads += 1
            if self._reads > 1:
                print("stalled", flush=True)
                await asyncio.Event().wait()
        return await self._inner.get(name, offset=offset, length=length)

async def main(repo_path, password, point, target):
    repo = await Repository.open(Stalls(LocalBackend(repo_path)), password.encode())
    async with tiervault.Vault(repo) as vault:
        record = await vault._record(point)
        await Restorer(repo, record, target, concurrency=1).run()

asyncio.run(main(*sys.argv[1:]))
"""


def kill_a_restore(repo: Path, point: str, target: Path, log: Path) -> None:
    """Run a restore in a child process and SIGKILL it after its first data read was written."""
    src = Path(tiervault.__file__).parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    with log.open("wb") as err:
        child = subprocess.Popen(
            [sys.executable, "-c", STALLING_RESTORE, str(repo), PASSWORD, point, str(target)],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
        )
        try:
            assert child.stdout is not None
            said = child.stdout.readline()  # the child stalls (or exits: then this is b"")
            assert said == b"stalled\n", log.read_text()
            child.send_signal(signal.SIGKILL)
        finally:
            child.kill()
            child.wait()
            child.stdout.close()  # type: ignore[union-attr]
    assert child.returncode == -signal.SIGKILL


async def test_killed_restores_leave_temp_files_that_a_later_restore_removes(
    vault: tiervault.Vault, repo_path: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    rnd = random.Random(5)
    spec = {"big.bin": File(rnd.randbytes(12 * MiB))}  # more than one range: cut short by the kill
    spec.update({f"d/f{i}.txt": File(rnd.randbytes(3 * KiB)) for i in range(5)})
    build_tree(src, spec)
    await vault.protect(src, name="src")
    point = (await vault.snapshot("src")).point
    target = tmp_path / "target"
    await vault.restore(point, target)
    (target / "big.bin").write_bytes(bytes(12 * MiB))  # changed: a restore writes it under a temp name

    for run in range(2):
        kill_a_restore(repo_path, point.id, target, tmp_path / f"child{run}.log")
    left = leftovers(target)
    assert len(left) >= 2, "each killed restore leaves its unfinished file's temporary name"

    clock = FakeClock(start=max(os.lstat(p).st_ctime for p in left))
    repo = await Repository.open(LocalBackend(repo_path), PASSWORD.encode())
    async with tiervault.Vault(repo, clock=clock) as timed:
        young = await timed.restore(point, target, verify=True)
        assert young.ok and young.stats.leftovers_removed == 0
        assert leftovers(target) == left, "a temporary file younger than the safe age was removed"

        clock.advance(STALE_AGE)
        old = await timed.restore(point, target, verify=True)
    assert old.ok and old.stats.leftovers_removed == len(left)
    assert old.stats.files_verified == len(spec)
    assert leftovers(target) == []
    assert_trees_equal(snapshot_tree(src), snapshot_tree(target))


async def test_only_directories_that_existed_are_listed(vault: tiervault.Vault, tmp_path: Path) -> None:
    src = tmp_path / "src"
    build_tree(src, {"a/b/c/x": File(b"x"), "a/y": File(b"y"), "d/z": File(b"z"), "top": File(b"t")})
    await vault.protect(src, name="src")
    point = (await vault.snapshot("src")).point
    repo = vault._repo
    record = await repo.load_snapshot(point.id)
    clock = FakeClock()

    def restore_into(path: Path) -> tuple[Restorer, DirectoryTarget]:
        target = DirectoryTarget(path, functools.partial(chunk_id, repo.keys.chunk_id), clock=clock)
        return Restorer(repo, record, target, clock=clock), target

    restorer, fresh = restore_into(tmp_path / "fresh")
    await restorer.run()
    assert fresh.dirs_listed == 0, "a fresh restore listed directories for leftovers"

    (tmp_path / "part" / "a" / "b").mkdir(parents=True)  # the target, a and a/b exist; a/b/c, d do not
    restorer, part = restore_into(tmp_path / "part")
    await restorer.run()
    assert part.dirs_listed == 3
    assert_trees_equal(snapshot_tree(src), snapshot_tree(tmp_path / "part"))


def test_only_old_temporary_names_of_a_restore_are_removed(tmp_path: Path) -> None:
    """What ``remove_stale`` removes: names a restore makes, not directories, old enough."""
    ours = [temp_name(b"0123456789ab", n) for n in (1, 2, 3)]
    (tmp_path / os.fsdecode(ours[0])).write_bytes(b"part of a file")
    os.symlink("/elsewhere", tmp_path / os.fsdecode(ours[1]))
    os.mkfifo(tmp_path / os.fsdecode(ours[2]))
    kept = [
        ".tiervault-restore-0123456789AB-1",  # not hex as a restore writes it
        ".tiervault-restore-0123456789ab-",
        ".tiervault-restore-0123456789ab-1.txt",
        "tiervault-restore-0123456789ab-1",
        "user-file",
    ]
    for name in kept:
        (tmp_path / name).write_bytes(b"keep")
    (tmp_path / os.fsdecode(temp_name(b"ba9876543210", 7))).mkdir()  # a restore makes no such dir
    kept.append(os.fsdecode(temp_name(b"ba9876543210", 7)))
    made = max(os.lstat(tmp_path / name).st_ctime for name in os.listdir(tmp_path))

    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert remove_stale(fd, made + STALE_AGE - 1) == 0  # too young, all of them
        assert len(os.listdir(tmp_path)) == len(ours) + len(kept)
        assert remove_stale(fd, made + STALE_AGE) == len(ours)
    finally:
        os.close(fd)
    assert sorted(os.listdir(tmp_path)) == sorted(kept)
