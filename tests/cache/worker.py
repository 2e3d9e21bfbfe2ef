"""A separate process sharing a cache directory with another (run by ``test_shared.py``).

    python worker.py '{"repo": ..., "cache": ..., "go": ..., "task": "churn" | "snapshot", ...}'

It opens the repository, waits until the file ``go`` exists (so both processes start their work
together), does its task, and prints its disk-tier counters as JSON. Warnings go to stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from typing import Any

import tiervault

PASSWORD = "cache correct horse"


async def main(args: dict[str, Any]) -> dict[str, Any]:
    async with tiervault.open(args["repo"], password=PASSWORD, cache_dir=args["cache"]) as vault:
        deadline = time.monotonic() + 30
        while not await asyncio.to_thread(os.path.exists, args["go"]):
            if time.monotonic() > deadline:
                raise SystemExit("no go")
            await asyncio.sleep(0.005)
        restored = []
        if args["task"] == "snapshot":
            await vault.protect(args["src"], name=args["item"])
            point = (await vault.snapshot(args["item"])).point
            out = f"{args['out']}-0"
            result = await vault.restore(point, out, verify=True)
            assert result.ok, result.errors
            restored.append(out)
        else:
            point = await vault.point(args["point"])
            for i in range(args["rounds"]):
                if args.get("clear"):
                    await vault.cache_clear()
                if args.get("check", True):  # reads whole packs: fills the cache with data
                    report = await vault.check(read_data=True)
                    assert report.ok, report.errors
                out = f"{args['out']}-{i}"
                result = await vault.restore(point, out, verify=True)
                assert result.ok, result.errors
                restored.append(out)
        stats = await vault.cache_stats()
    return {"counters": stats.counters.to_json(), "enabled": stats.enabled, "restored": restored}


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))
