"""Real processes: a snapshot of a large tree that changed (and brings back content only forgotten
points held, in packs the last prune condemned) runs in one process while ``forget`` + ``prune`` run
in another and sweep those packs. Both succeed, the new point restores exactly, ``check`` accepts the
repository, and a later prune keeps it that way. The Azurite variant is in
``tests/azure/test_gc_processes_azure.py``.

Store time cannot be made older on a local disk or on Azurite, so both processes see the store through
``ClockJumpBackend`` (``tests/support/clockjump.py``): its clock jumped two hours forward just after
the first prune, which is what lets the concurrent prune sweep that prune's plan.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tiervault
from tests.e2e import KDF
from tests.e2e.gc_worker import PASSWORD, open_jumped

ROOT = Path(__file__).resolve().parents[2]
FILES = 160


def tree(src: Path, variants: list[int]) -> dict[str, bytes]:
    """File ``i`` holds content variant ``variants[i]`` (0: absent); sizes 8 KiB ... 1.5 MiB."""
    files = {}
    for i, v in enumerate(variants):
        path = src / f"d{i % 8}" / f"f{i}.bin"
        if not v:
            path.unlink(missing_ok=True)
            continue
        size = 8 << 10 if i % 20 else 1536 << 10
        data = random.Random(i * 1000 + v).randbytes(size + i)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files[str(path.relative_to(src))] = data
    return files


def restored(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}


async def worker(args: dict[str, Any]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.e2e.gc_worker",
        json.dumps(args),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


async def outcome(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out)
    return result


async def scenario(url: str, tmp: Path) -> None:
    src = tmp / "src"
    async with tiervault.init(url, password=PASSWORD, kdf=KDF, cache_dir=False, pack_size=1 << 20) as v:
        src.mkdir()
        await v.protect(src, name="big")
        for variant in (1, 2, 3):
            tree(src, [variant if i % 3 or variant == 1 else 1 for i in range(FILES)])
            await v.snapshot("big")
    jumps: list[list[Any]] = []
    async with await open_jumped(url, jumps) as v:
        await v.forget("big", policy=tiervault.Policy(keep_last=1))
        first = await v.prune()  # condemns the packs only the two forgotten points needed
        assert first.to_json()["condemned"], first.to_json()
    jumps.append([datetime.now(UTC).isoformat(), 2])
    # the new tree: variant 1 of many files again (in condemned packs only), and new content
    expected = tree(src, [1 if i % 2 else 4 for i in range(FILES)])
    go = tmp / "go"
    common = {"url": url, "jumps": jumps, "go": str(go), "item": "big"}
    procs = [
        await worker({**common, "task": "snapshot"}),
        await worker({**common, "task": "forget-prune", "keep_last": 1}),
    ]
    await asyncio.sleep(0.5)
    go.touch()
    snap, pruned = [await outcome(p) for p in procs]
    assert not snap["errors"] and not snap["warnings"], snap

    for round_ in range(3):  # after the concurrent run; after a prune that condemns; after its sweep
        jumps.append([datetime.now(UTC).isoformat(), 2])
        async with await open_jumped(url, jumps) as v:
            report = await v.check()
            assert report.ok, (report.errors, pruned)
            assert snap["point"] in {p.id for p in await v.points()}
            out = tmp / f"out-{round_}"
            result = await v.restore(snap["point"], out)
            assert result.ok, result.errors
            assert restored(out) == expected
            await v.prune()


def test_a_snapshot_while_forget_and_prune_run_in_another_process(tmp_path: Path) -> None:
    asyncio.run(scenario(str(tmp_path / "repo"), tmp_path))
