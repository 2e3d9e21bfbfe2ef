"""A service protecting and restoring a folder through the tiervault API.

Run it:  python samples/protect_and_restore.py  (it works in a temporary directory and cleans up).
A test runs this file (tests/test_samples.py), so it cannot rot.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import tiervault


async def main(work: Path) -> None:
    data = work / "app-data"
    (data / "reports/2026").mkdir(parents=True)
    (data / "reports/2026/q1.csv").write_text("region,revenue\nnorth,10\n")
    (data / "config.toml").write_text("[service]\nport = 8080\n")

    password = os.environ.get("TIERVAULT_PASSWORD", "sample-password")
    async with tiervault.init(work / "repo", password=password) as vault:
        # register the folder with a policy that later issues apply (retention, tiering)
        await vault.protect(
            data,
            name="app-data",
            policy=tiervault.Policy(keep_daily=7, keep_weekly=4, keep_monthly=12, cool_after_days=30),
        )
        result = await vault.snapshot("app-data", tags=["nightly"])
        print(
            f"recovery point {result.point.short_id}: {result.stats.files} files, "
            f"{result.stats.bytes_new} new bytes, partial={result.partial}"
        )

    # a later run of the service: open the repository, browse, restore one folder
    async with tiervault.open(work / "repo", password=password) as vault:
        latest = await vault.point("latest:app-data")
        for entry in await vault.ls(latest, "reports/2026"):
            print(f"  {entry.path}  {entry.size} bytes")
        restored = await vault.restore(latest, work / "restored", paths=["reports/2026"], verify=True)
        print(f"restored {restored.stats.files} file(s), verified {restored.stats.files_verified}")
        assert (work / "restored/reports/2026/q1.csv").read_text() == "region,revenue\nnorth,10\n"
        assert not (work / "restored/config.toml").exists()
        report = await vault.check(read_data=True)
        print("check:", "ok" if report.ok else report.errors)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="tiervault-sample-") as tmp:
        asyncio.run(main(Path(tmp)))
