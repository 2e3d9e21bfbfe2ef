"""Memory stays bounded whatever the file size: a guard against reading whole files into memory.

Measured in a fresh interpreter, because ``ru_maxrss`` is the peak over a process's whole life (the
pytest process has had bigger peaks of its own before this test runs).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.e2e import PASSWORD, MiB

SIZE_MIB = 300
LIMIT_MIB = 250

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, os, resource, sys
    import tiervault

    src, repo, out = sys.argv[1:4]

    def peak_mib():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    async def main():
        async with tiervault.init(repo, password=os.environ["TV_PASSWORD"],
                                  kdf=tiervault.ScryptParams(log_n=10)) as vault:
            await vault.protect(src, name="big")
            base = peak_mib()
            snap = await vault.snapshot("big")
            after_snapshot = peak_mib()
            restored = await vault.restore(snap.point, out, verify=True)
            after_restore = peak_mib()
        print(json.dumps({
            "base": base, "after_snapshot": after_snapshot, "after_restore": after_restore,
            "bytes_read": snap.stats.bytes_read, "bytes_new": snap.stats.bytes_new,
            "errors": list(snap.errors) + list(restored.errors),
            "verified": restored.stats.files_verified,
        }))

    asyncio.run(main())
    """
)


def _write_big_file(path: Path) -> str:
    """SIZE_MIB MiB: one random MiB repeated, each copy changed in a few places (so it does not dedup)."""
    block = random.Random(11).randbytes(MiB)
    h = hashlib.sha256()
    with open(path, "wb") as fh:
        for i in range(SIZE_MIB):
            b = bytearray(block)
            for k in range(8):
                pos = (i * 7919 + k * 131_071) % (MiB - 8)
                b[pos : pos + 8] = (i * 8 + k).to_bytes(8, "little")
            h.update(b)
            fh.write(b)
    return h.hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(4 * MiB):
            h.update(block)
    return h.hexdigest()


@pytest.mark.slow
def test_snapshot_and_restore_of_a_large_file_use_bounded_memory(tmp_path: Path) -> None:
    src, repo, out = tmp_path / "src", tmp_path / "repo", tmp_path / "out"
    src.mkdir()
    digest = _write_big_file(src / "big.bin")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(src), str(repo), str(out)],
        env={**os.environ, "TV_PASSWORD": PASSWORD},
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    r = json.loads(proc.stdout)
    assert r["errors"] == []
    assert r["bytes_read"] == SIZE_MIB * MiB
    assert r["bytes_new"] > SIZE_MIB * MiB * 0.9, "the file deduplicated: the test no longer measures much"
    assert r["verified"] == 1
    assert _sha256(out / "big.bin") == digest
    growth_snapshot = r["after_snapshot"] - r["base"]
    growth_total = r["after_restore"] - r["base"]
    print(f"peak RSS growth: snapshot {growth_snapshot:.0f} MiB, snapshot+restore {growth_total:.0f} MiB")
    assert growth_snapshot < LIMIT_MIB, f"snapshot grew the peak RSS by {growth_snapshot:.0f} MiB"
    assert growth_total < LIMIT_MIB, f"snapshot+restore grew the peak RSS by {growth_total:.0f} MiB"
