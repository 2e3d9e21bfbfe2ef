"""One process of a restore from Archive (run by ``test_restore_archive.py``)::

    python -m tests.e2e.rehydrate_worker '{"repo": PATH, "clock": FILE, "target": DIR,
                                           "paths": [...] | null, "priority": "standard",
                                           "kill_at_copy": N | null, "wait": false}'

It opens the repository on a ``LocalBackend`` whose rehydrations take ``REHYDRATE_SECONDS`` of a
``FileClock`` shared with the test (tests/support/fileclock.py), runs ``restore(rehydrate=True)`` and
prints the result as JSON. With ``kill_at_copy`` it SIGKILLs itself just before that staging copy is
started (tests/support/killer.py): a restore interrupted after its record was stored.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import tiervault
from tests.support.fileclock import FileClock
from tests.support.killer import KillingBackend
from tiervault.backend.base import Backend
from tiervault.backend.local import LocalBackend
from tiervault.repo.repository import Repository

PASSWORD = "rehydrate worker correct horse"
REHYDRATE_SECONDS = 3600.0


async def main(args: dict[str, Any]) -> dict[str, Any]:
    clock = FileClock(args["clock"])
    backend: Backend = LocalBackend(args["repo"], clock=clock, rehydrate_seconds=REHYDRATE_SECONDS)
    if args.get("kill_at_copy"):
        backend = KillingBackend(
            backend, method="copy_rehydrate", prefix="staging/", nth=args["kill_at_copy"]
        )
    vault = tiervault.Vault(await Repository.open(backend, PASSWORD.encode()), clock=clock)
    polls: list[dict[str, Any]] = []
    try:
        result = await vault.restore(
            "latest",
            args["target"],
            paths=args.get("paths"),
            rehydrate=True,
            priority=args.get("priority", "standard"),
            wait=bool(args.get("wait")),
            poll_seconds=600,
            progress=lambda p: polls.append(p.to_json()),
        )
    finally:
        await vault.aclose()
    return {"result": result.to_json(), "polls": polls}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))
