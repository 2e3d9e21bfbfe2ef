"""Run one prune on a local repository through ``KillingBackend``; it kills this process at the
chosen request. Usage: ``python -m tests.prune.kill_driver REPO METHOD PREFIX NTH``. Exits 0 if the
prune finished without reaching that request."""

from __future__ import annotations

import asyncio
import sys

from tests.e2e import PASSWORD
from tests.support.killer import KillingBackend
from tiervault.backend.local import LocalBackend
from tiervault.prune import prune
from tiervault.repo.repository import Repository


async def main(repo_path: str, method: str, prefix: str, nth: int) -> int:
    backend = KillingBackend(LocalBackend(repo_path), method=method, prefix=prefix, nth=nth)
    repo = await Repository.open(backend, PASSWORD.encode())
    report = await prune(repo)
    print(report.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))))
