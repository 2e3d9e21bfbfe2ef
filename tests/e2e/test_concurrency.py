"""Several writers at once, in one process and in several: every point is complete and restorable."""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import textwrap
import time
from asyncio.subprocess import PIPE
from pathlib import Path

import pytest

import tiervault
from tests.e2e import PASSWORD, KiB, MiB, init_vault, open_vault, repo_objects
from tests.support.trees import Entry, File, Sparse, assert_trees_equal, build_tree, snapshot_tree

SHARED = random.Random(0).randbytes(1 * MiB + 77)  # in every tree: both writers may store it at once


def _spec(seed: int) -> dict[str, Entry]:
    rnd = random.Random(seed)
    spec: dict[str, Entry] = {
        "shared.bin": File(SHARED),
        "big.bin": File(rnd.randbytes(3 * MiB)),
        "sparse": Sparse(4 * MiB, ((MiB, rnd.randbytes(10 * KiB)),)),
    }
    for i in range(30):
        spec[f"d{i % 4}/f{i}.txt"] = File(rnd.randbytes(rnd.randint(0, 40 * KiB)))
    return spec


async def _check_all(repo: Path, expected: dict[str, dict[bytes, dict[str, Entry]]], tmp_path: Path) -> None:
    """check(read_data=True) is clean and every point restores exactly its tree (in a fresh session)."""
    async with open_vault(repo) as vault:
        checked = await vault.check(read_data=True)
        assert checked.ok, checked.errors
        points = await vault.points()
        assert sorted(p.id for p in points) == sorted(expected)
        for p in points:
            out = tmp_path / f"out-{p.short_id}"
            result = await vault.restore(p, out, verify=True)
            assert result.ok, result.errors
            assert_trees_equal(expected[p.id], snapshot_tree(out))


async def test_two_items_at_once_in_one_process(
    vault: tiervault.Vault, tmp_path: Path, repo_path: Path
) -> None:
    build_tree(tmp_path / "a", _spec(1))
    build_tree(tmp_path / "b", _spec(2))
    trees = {"a": snapshot_tree(tmp_path / "a"), "b": snapshot_tree(tmp_path / "b")}
    await vault.protect(tmp_path / "a", name="a")
    await vault.protect(tmp_path / "b", name="b")
    ra, rb = await asyncio.gather(vault.snapshot("a"), vault.snapshot("b"))
    assert not ra.partial and not rb.partial
    assert (ra.point.item, rb.point.item) == ("a", "b")
    await _check_all(repo_path, {ra.point.id: trees["a"], rb.point.id: trees["b"]}, tmp_path)


async def test_same_item_twice_at_once_in_one_process(
    vault: tiervault.Vault, tmp_path: Path, repo_path: Path
) -> None:
    build_tree(tmp_path / "a", _spec(3))
    tree = snapshot_tree(tmp_path / "a")
    await vault.protect(tmp_path / "a", name="a")
    r1, r2 = await asyncio.gather(vault.snapshot("a", tags=["one"]), vault.snapshot("a", tags=["two"]))
    assert r1.point.id != r2.point.id
    await _check_all(repo_path, {r1.point.id: tree, r2.point.id: tree}, tmp_path)
    # the next snapshot has a complete parent to reuse from
    async with open_vault(repo_path) as again:
        r3 = await again.snapshot("a")
        assert r3.stats.files_reused == r3.stats.files


WRITER = textwrap.dedent(
    """
    import asyncio, json, os, sys, time
    import tiervault

    repo, item, ready, go = sys.argv[1:5]

    async def main():
        async with tiervault.open(repo, password=os.environ["TV_PASSWORD"]) as vault:
            open(ready, "w").close()
            deadline = time.monotonic() + 60
            while not os.path.exists(go):
                if time.monotonic() > deadline:
                    raise SystemExit("never told to go")
                await asyncio.sleep(0.005)
            result = await vault.snapshot(item)
            print(json.dumps({"id": result.point.id, "errors": list(result.errors)}))

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("same_item", [False, True], ids=["two-items", "same-item"])
async def test_two_processes_at_once(tmp_path: Path, repo_path: Path, same_item: bool) -> None:
    items = ["a", "a"] if same_item else ["a", "b"]
    trees = {}
    async with init_vault(repo_path) as vault:
        for name, seed in (("a", 4), ("b", 5)):
            build_tree(tmp_path / name, _spec(seed))
            trees[name] = snapshot_tree(tmp_path / name)
            await vault.protect(tmp_path / name, name=name)
    go = tmp_path / "go"
    env = {**os.environ, "TV_PASSWORD": PASSWORD}
    procs = []
    for i, item in enumerate(items):
        ready = tmp_path / f"ready-{i}"
        args = [str(repo_path), item, str(ready), str(go)]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WRITER, *args, env=env, stdout=PIPE, stderr=PIPE
        )
        procs.append((ready, proc))
    deadline = time.monotonic() + 60
    while not all(r.exists() for r, _ in procs):
        for _, p in procs:
            if p.returncode is not None:
                _out, err = await p.communicate()
                pytest.fail(f"a writer died before starting: {err.decode()}")
        assert time.monotonic() < deadline, "writers did not get ready"
        await asyncio.sleep(0.01)
    go.touch()  # both are open and waiting: start them together
    outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for _, p in procs)), timeout=120)
    for (_, p), (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err.decode()
    results = [json.loads(out) for out, _ in outputs]
    assert all(r["errors"] == [] for r in results)
    assert len(repo_objects(repo_path, "index")) >= 2  # one index file per writer session
    expected = {r["id"]: trees[item] for r, item in zip(results, items, strict=True)}
    assert len(expected) == 2
    await _check_all(repo_path, expected, tmp_path)
