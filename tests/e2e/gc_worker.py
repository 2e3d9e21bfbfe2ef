"""A separate process on a shared repository (run by ``test_gc_processes.py``)::

    python -m tests.e2e.gc_worker '{"url": ..., "jumps": [[ISO, HOURS], ...], "go": PATH,
                                    "task": "snapshot" | "forget-prune", "item": ..., "keep_last": N}'

It opens the repository on a ``ClockJumpBackend`` (the store clock jumped HOURS forward at each
ISO time: see ``tests/support/clockjump.py``), waits until the file ``go`` exists so that both
processes start together, does its task, and prints the outcome as JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from datetime import datetime, timedelta
from typing import Any

import tiervault
from tests.support.clockjump import ClockJumpBackend
from tiervault.backend.base import Backend
from tiervault.backend.local import LocalBackend
from tiervault.repo.repository import Repository
from tiervault.vault import Vault

PASSWORD = "gc processes correct horse"


def concrete(url: str) -> Backend:
    if url.startswith("azurite://"):
        from tiervault.backend.azure import AzureBackend

        return AzureBackend.from_url(url, retry_total=0)
    return LocalBackend(url)


def jumps(spec: list[list[Any]]) -> list[tuple[datetime, timedelta]]:
    return [(datetime.fromisoformat(at), timedelta(hours=hours)) for at, hours in spec]


async def open_jumped(url: str, spec: list[list[Any]]) -> Vault:
    backend = ClockJumpBackend(concrete(url), jumps=jumps(spec))
    return Vault(await Repository.open(backend, PASSWORD.encode()))  # type: ignore[arg-type]


async def main(args: dict[str, Any]) -> dict[str, Any]:
    async with await open_jumped(args["url"], args["jumps"]) as vault:
        deadline = time.monotonic() + 60
        while not await asyncio.to_thread(os.path.exists, args["go"]):
            if time.monotonic() > deadline:
                raise SystemExit("no go")
            await asyncio.sleep(0.005)
        if args["task"] == "snapshot":
            result = await vault.snapshot(args["item"])
            point = result.point
            return {"point": point.id, "errors": list(result.errors), "warnings": list(point.warnings)}
        decisions = await vault.forget(args["item"], policy=tiervault.Policy(keep_last=args["keep_last"]))
        report = await vault.prune()
        return {"removed": [d.id for d in decisions if not d.keep], "prune": report.to_json()}


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))
