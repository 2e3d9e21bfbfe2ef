"""Two processes sharing one cache directory at the same time: neither ever reads a torn entry (each
would be caught by the hash check and counted as ``dropped``, with a warning), and both succeed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tests.cache import cached, init_vault, random_tree
from tests.support.trees import assert_trees_equal, snapshot_tree
from tiervault.core.crypto import object_hash

WORKER = Path(__file__).with_name("worker.py")


def _spawn(args: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Observer(threading.Thread):
    """A third reader: reads every entry under its final name, again and again, and records any
    whose content is not the object its name says (a torn or partial file)."""

    def __init__(self, cache: Path) -> None:
        super().__init__(daemon=True)
        self.cache, self.torn, self.checked = cache, set[str](), 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for folder, _dirs, files in os.walk(self.cache):  # os.walk skips folders that vanish
                for name in files:
                    if len(name) != 64:
                        continue  # temporary files, CACHEDIR.TAG
                    try:
                        with open(os.path.join(folder, name), "rb") as f:
                            data = f.read()
                    except FileNotFoundError:
                        continue  # removed by a clear: fine
                    self.checked += 1
                    if object_hash(data) != name:
                        self.torn.add(name)


def _run_together(go: Path, cache: Path, *jobs: dict[str, Any]) -> list[dict[str, Any]]:
    procs = [_spawn(job) for job in jobs]
    observer = Observer(cache)
    observer.start()
    go.write_text("go")  # they open the repository first, then wait for this
    outcomes = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            assert "tiervault.cache" not in err, err  # no damaged entry, no unusable cache
            outcomes.append(json.loads(out))
    finally:
        observer.stop.set()
        observer.join()
    assert observer.checked > 0
    assert not observer.torn, f"torn entries seen under their final names: {sorted(observer.torn)}"
    return outcomes


async def test_two_processes_fill_and_read_one_cache_dir_at_once(tmp_path: Path) -> None:
    src, repo, cache = tmp_path / "src", tmp_path / "repo", tmp_path / "cache"
    random_tree(src, files=24, size=300 * 1024, seed=7)
    async with init_vault(repo, False) as vault:  # the cache starts empty
        await vault.protect(src, name="src")
        point = (await vault.snapshot("src")).point.id
    common = {"repo": str(repo), "cache": str(cache), "go": str(tmp_path / "go"), "point": point}
    jobs = [
        {**common, "task": "churn", "rounds": 4, "clear": True, "out": str(tmp_path / "a")},
        {**common, "task": "churn", "rounds": 4, "clear": True, "out": str(tmp_path / "b")},
    ]
    outcomes = await asyncio.to_thread(_run_together, tmp_path / "go", cache, *jobs)
    expected = snapshot_tree(src)
    for outcome in outcomes:
        assert outcome["enabled"]
        assert outcome["counters"]["dropped"] == 0
        assert outcome["counters"]["cache_writes"] > 0  # both filled the cache (racing each other)
        for out in outcome["restored"]:
            assert_trees_equal(expected, snapshot_tree(out))
    assert sum(o["counters"]["cache_hits"] for o in outcomes) > 0
    assert cached(cache, "data/")


async def test_a_snapshot_and_a_restore_in_two_processes_at_once(tmp_path: Path) -> None:
    src, repo, cache = tmp_path / "src", tmp_path / "repo", tmp_path / "cache"
    random_tree(src, files=8, size=300 * 1024, seed=8)
    random_tree(tmp_path / "src2", files=8, size=300 * 1024, seed=9)
    async with init_vault(repo, cache) as vault:
        await vault.protect(src, name="src")
        point = (await vault.snapshot("src")).point.id
    common = {"repo": str(repo), "cache": str(cache), "go": str(tmp_path / "go")}
    jobs = [
        {
            **common,
            "task": "snapshot",
            "item": "src2",
            "src": str(tmp_path / "src2"),
            "out": str(tmp_path / "a"),
        },
        # no check here: one that runs while another process adds a point reports that point's new
        # trees as unindexed (its index was loaded before they existed)
        {
            **common,
            "task": "churn",
            "point": point,
            "rounds": 3,
            "clear": True,
            "check": False,
            "out": str(tmp_path / "b"),
        },
    ]
    snap, churn = await asyncio.to_thread(_run_together, tmp_path / "go", cache, *jobs)
    assert snap["counters"]["remote_reads"] >= 0 and snap["counters"]["dropped"] == 0
    assert churn["counters"]["dropped"] == 0
    assert_trees_equal(snapshot_tree(tmp_path / "src2"), snapshot_tree(snap["restored"][0]))
    for out in churn["restored"]:
        assert_trees_equal(snapshot_tree(src), snapshot_tree(out))
