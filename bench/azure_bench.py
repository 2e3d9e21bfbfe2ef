#!/usr/bin/env python3
"""tiervault to and from Azurite, as a fraction of what the bare SDK does on the same machine, in one run.

1. The ceiling: the async SDK alone uploads and downloads 16 MiB blobs (random bytes, generated
   before timing) with 4 requests in flight, as tiervault's pack uploads do.
2. tiervault: snapshot of a corpus into an ``azurite://`` repository, then a full restore of it
   (verified byte for byte afterwards, outside the timing) with an empty local target.
3. The ratios: tiervault MB/s (corpus bytes for the snapshot, restored bytes for the restore) over the
   ceiling's MB/s (bytes moved), and the same for the bytes tiervault actually stored / fetched.

    python bench/azure_bench.py --source /path/to/corpus   # e.g. make_corpus.py --profile tree,large
    python bench/azure_bench.py --smoke                     # a tiny generated tree: seconds

Azurite (3.37.0 on Node 22) is installed and started by ``tests/support/azurite.py``, on disk in a temp
dir, and stopped at the end. Both sides share the 2 cores with Azurite itself: ratios, not absolute
numbers, are the result.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.azurite import Azurite  # noqa: E402

import tiervault  # noqa: E402

BLOB = 16 << 20
INFLIGHT = 4
PASSWORD = "tiervault-azure-bench"


async def sdk_ceiling(conn: str, container: str, total: int) -> dict[str, float]:
    from azure.storage.blob.aio import BlobServiceClient

    n = max(4, total // BLOB)
    payloads = [os.urandom(BLOB) for _ in range(min(n, 8))]
    async with BlobServiceClient.from_connection_string(conn, retry_total=0) as service:
        cc = service.get_container_client(container)
        await cc.create_container()
        sem = asyncio.Semaphore(INFLIGHT)

        async def up(i: int) -> None:
            async with sem:
                await cc.upload_blob(f"ceiling/{i}", payloads[i % len(payloads)], overwrite=True)

        t = time.perf_counter()
        await asyncio.gather(*(up(i) for i in range(n)))
        up_s = time.perf_counter() - t

        async def down(i: int) -> None:
            async with sem:
                stream = await cc.download_blob(f"ceiling/{i}")
                await stream.readall()

        t = time.perf_counter()
        await asyncio.gather(*(down(i) for i in range(n)))
        down_s = time.perf_counter() - t
        await cc.delete_container()
    moved = n * BLOB
    return {"upload_MBps": moved / up_s / 1e6, "download_MBps": moved / down_s / 1e6, "bytes": moved}


def tree_digest(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "l:" + os.readlink(p)
            elif p.is_file():
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    while block := f.read(1 << 20):
                        h.update(block)
                out[rel] = h.hexdigest()
            else:
                out[rel] = "d"
    return out


async def tiervault_run(port: int, container: str, source: Path, work: Path) -> dict[str, Any]:
    """Snapshot and cold restore without the disk tier (against the ceiling), then a warm restore
    through a disk tier filled by a snapshot's write-through (the tier's own benefit)."""
    url = f"azurite://127.0.0.1:{port}/{container}"
    async with tiervault.init(url, password=PASSWORD, cache_dir=False) as vault:
        await vault.protect(source, name="corpus")
        t = time.perf_counter()
        snap = await vault.snapshot("corpus")
        snap_s = time.perf_counter() - t
    async with tiervault.open(url, password=PASSWORD, cache_dir=False) as vault:
        target = work / "restore"
        t = time.perf_counter()
        restored = await vault.restore(snap.point, target)
        restore_s = time.perf_counter() - t
    if not restored.ok:
        raise SystemExit(f"restore reported errors: {restored.errors[:3]}")
    # warm: a second repository whose snapshot writes its packs through to the disk tier, then restore
    cache = work / "cache"
    warm_url = f"{url}-warm"
    async with tiervault.init(warm_url, password=PASSWORD, cache_dir=cache, cache_max_bytes=4 << 30) as vault:
        await vault.protect(source, name="corpus")
        warm_snap = await vault.snapshot("corpus")
        t = time.perf_counter()
        warm = await vault.restore(warm_snap.point, work / "restore-warm")
        warm_s = time.perf_counter() - t
    shutil.rmtree(work / "restore-warm", ignore_errors=True)
    return {
        "corpus_bytes": snap.stats.bytes_total,
        "stored_bytes": snap.stats.stored_new,
        "fetched_bytes": restored.stats.bytes_fetched,
        "read_requests": restored.stats.read_requests,
        "snapshot_s": snap_s,
        "restore_s": restore_s,
        "warm_restore_s": warm_s,
        "warm_remote_reads": warm.stats.remote_reads,
        "target": str(target),
    }


def make_smoke_tree(root: Path) -> None:
    rnd = os.urandom
    for i in range(200):
        d = root / f"d{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.txt").write_bytes((f"line {i}\n" * (i * 20 + 1)).encode())
    (root / "big.bin").write_bytes(rnd(24 << 20))


def main() -> int:
    tiervault.tune_allocator()  # as the CLI does (tiervault/memory.py)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, help="tree to back up (default with --smoke: a generated one)")
    ap.add_argument("--smoke", action="store_true", help="a tiny generated tree, for CI")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "azure.json")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tiervault-azbench-"))
    try:
        source = a.source
        if source is None:
            if not a.smoke:
                ap.error("give --source DIR (e.g. a make_corpus.py tree) or --smoke")
            source = work / "source"
            make_smoke_tree(source)
        with Azurite(work / "azurite") as az:
            total = sum(f.stat().st_size for f in source.rglob("*") if f.is_file() and not f.is_symlink())
            ceiling = asyncio.run(sdk_ceiling(az.connection_string, "ceiling", min(total, 512 << 20)))
            tv = asyncio.run(tiervault_run(az.port, "tiervault", source, work))
        ok = tree_digest(source) == tree_digest(Path(tv["target"]))
        snap_mbps = tv["corpus_bytes"] / tv["snapshot_s"] / 1e6
        rest_mbps = tv["corpus_bytes"] / tv["restore_s"] / 1e6
        result = {
            "ceiling": ceiling,
            "tiervault": {k: v for k, v in tv.items() if k != "target"},
            "snapshot_MBps": snap_mbps,
            "restore_MBps": rest_mbps,
            "snapshot_stored_MBps": tv["stored_bytes"] / tv["snapshot_s"] / 1e6,
            "restore_fetched_MBps": tv["fetched_bytes"] / tv["restore_s"] / 1e6,
            "restore_verified": ok,
        }
        result["snapshot_ratio"] = snap_mbps / ceiling["upload_MBps"]
        result["restore_ratio"] = rest_mbps / ceiling["download_MBps"]
        result["snapshot_stored_ratio"] = result["snapshot_stored_MBps"] / ceiling["upload_MBps"]
        result["restore_fetched_ratio"] = result["restore_fetched_MBps"] / ceiling["download_MBps"]
        print(
            f"SDK ceiling (16 MiB blobs, {INFLIGHT} in flight): upload {ceiling['upload_MBps']:.0f} MB/s, "
            f"download {ceiling['download_MBps']:.0f} MB/s"
        )
        print(
            f"tiervault snapshot: {tv['corpus_bytes'] / 1e6:.0f} MB of source in {tv['snapshot_s']:.2f} s = "
            f"{snap_mbps:.0f} MB/s (ratio {result['snapshot_ratio']:.2f}); stored "
            f"{tv['stored_bytes'] / 1e6:.0f} MB = {result['snapshot_stored_MBps']:.0f} MB/s on the wire "
            f"(ratio {result['snapshot_stored_ratio']:.2f})"
        )
        print(
            f"tiervault restore:  {tv['corpus_bytes'] / 1e6:.0f} MB in {tv['restore_s']:.2f} s = "
            f"{rest_mbps:.0f} MB/s (ratio {result['restore_ratio']:.2f}); fetched "
            f"{tv['fetched_bytes'] / 1e6:.0f} MB in {tv['read_requests']} requests = "
            f"{result['restore_fetched_MBps']:.0f} MB/s on the wire "
            f"(ratio {result['restore_fetched_ratio']:.2f})"
        )
        print(
            f"warm restore (disk tier filled by write-through): {tv['warm_restore_s']:.2f} s, "
            f"{tv['warm_remote_reads']} read requests to Azurite; cold/warm time "
            f"{tv['restore_s'] / tv['warm_restore_s']:.2f}x"
        )
        print(f"restore verification: {'PASS' if ok else 'FAIL'}")
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=2))
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
