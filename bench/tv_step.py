"""Run ONE tiervault benchmark step through the public API, in its own process.

``bench/bench.py`` starts this file as a subprocess for every timed step so that tiervault is measured
exactly like restic: wall time, CPU (user + sys) and peak RSS of a whole process, interpreter start-up
and ``import tiervault`` included. It prints one JSON object (the step's own figures) on stdout.

    python bench/tv_step.py init     --repo R --source DIR --name ITEM
    python bench/tv_step.py snapshot --repo R --name ITEM
    python bench/tv_step.py restore  --repo R --target DIR

The password comes from ``$TIERVAULT_BENCH_PASSWORD``. Exit status: 0 ok, 3 the step completed with
errors (partial snapshot, restore errors), anything else a crash.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import tiervault

PARTIAL = 3


async def _init(repo: str, source: str, name: str) -> tuple[dict[str, Any], bool]:
    async with tiervault.init(repo, password=_password()) as vault:
        item = await vault.protect(source, name=name)
        return {"repository_id": vault.repository_id, "item": item.name, "source": item.source}, True


async def _snapshot(repo: str, name: str) -> tuple[dict[str, Any], bool]:
    async with tiervault.open(repo, password=_password()) as vault:
        result = await vault.snapshot(name)
        out = {"point": result.point.id, "stats": result.stats.to_json(), "errors": list(result.errors)}
        return out, not result.partial


async def _restore(repo: str, target: str) -> tuple[dict[str, Any], bool]:
    async with tiervault.open(repo, password=_password()) as vault:
        point = await vault.point("latest")
        result = await vault.restore(point, target)
        stats = {k: getattr(result.stats, k) for k in result.stats.__slots__}
        return {"point": point.id, "stats": stats, "errors": list(result.errors)}, result.ok


def _password() -> str:
    password = os.environ.get("TIERVAULT_BENCH_PASSWORD")
    if not password:
        raise SystemExit("tv_step: set TIERVAULT_BENCH_PASSWORD")
    return password


def main(argv: list[str] | None = None) -> int:
    tiervault.tune_allocator()  # as the CLI does, and as a service opts in (tiervault/memory.py)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["init", "snapshot", "restore"])
    ap.add_argument("--repo", required=True)
    ap.add_argument("--source")
    ap.add_argument("--name", default="corpus")
    ap.add_argument("--target")
    a = ap.parse_args(argv)
    if a.step == "init":
        if not a.source:
            ap.error("init needs --source")
        out, ok = asyncio.run(_init(a.repo, a.source, a.name))
    elif a.step == "snapshot":
        out, ok = asyncio.run(_snapshot(a.repo, a.name))
    else:
        if not a.target:
            ap.error("restore needs --target")
        out, ok = asyncio.run(_restore(a.repo, a.target))
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0 if ok else PARTIAL


if __name__ == "__main__":
    sys.exit(main())
