"""Raw limits of this machine: the throughput of each pipeline stage as tiervault uses it, alone.

``python bench/bench.py --limits`` (see bench/README.md). Every stage runs over the same deterministic
in-memory buffer (half random bytes, half text-like, interleaved in 4 MiB segments; or a sample of the
files under ``--source``), once on one thread and once on two threads that each take half of the work,
with one chunker / compressor / cipher / pack writer per thread (the C libraries release the GIL). A
figure is the best of ``repeats`` passes, in MB/s (10^6 bytes) of the bytes the stage takes in:

read      os.pread of a file in a temp dir, 16 MiB per call, page cache warm (read once before)
chunk     tiervault.core.chunker.Chunker (default ChunkerParams) cutting the buffer
hash      tiervault.core.crypto.chunk_id (keyed BLAKE3) of every chunk
compress  tiervault.core.compress.compress(level 3) of every chunk (incompressible chunks: sampled, kept raw)
encrypt   UnitCipher.seal (AES-256-GCM) of every compressed chunk (MB/s of compressed bytes)
pack      PackWriter.add of every chunk (compress + seal + copy), 16 MiB packs as the archiver makes them
upload    the bare async Azure SDK to Azurite, 16 MiB blobs: 1 in flight, and 4 in flight (as tiervault's
          pack uploads); Azurite shares the cores. Skipped, with the reason, when Azurite cannot start.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20
MB = 1_000_000
DEFAULT_MIB = 256
SMOKE_MIB = 16
SEGMENT = 4 * MiB
READ_BLOCK = 16 * MiB
BLOB = 16 * MiB
PACK_SIZE = 16 * MiB  # tiervault.repo.repository.DEFAULT_PACK_SIZE
SEED = 20261126
ID_KEY = bytes(range(32))
ENC_KEY = bytes(range(32, 64))
CHUNKER_SEED = 0x5EED_1234_5678

_TEXT = (
    "the of and to in is that for it as was with be by on not he this are or his from at which but have "
    "an had they you were their one all we can her has there been if more when will would who so no "
    "backup snapshot restore chunk pack index tree blob repository encryption compression key value "
    "def return import class self None True False for while async await yield lambda print len range "
    "error warning info debug request response status 200 404 500 GET POST /api/v1/items user id time"
)


def make_buffer(nbytes: int, seed: int = SEED) -> bytearray:
    """Half random bytes, half text-like lines (Zipf-ish word choice), alternating 4 MiB segments."""
    rng = random.Random(seed)
    words = _TEXT.split()
    cum: list[float] = []
    total = 0.0
    for rank in range(len(words)):
        total += 1.0 / (rank + 1)
        cum.append(total)
    buf = bytearray()
    i = 0
    while len(buf) < nbytes:
        want = min(SEGMENT, nbytes - len(buf))
        if i % 2 == 0:
            buf += rng.randbytes(want)
        else:
            seg = bytearray()
            while len(seg) < want:
                picked = rng.choices(words, cum_weights=cum, k=12_000)
                for j in range(0, len(picked), 12):
                    seg += (
                        f"{rng.randrange(100000):05d} ".encode()
                        + " ".join(picked[j : j + 12]).encode()
                        + b"\n"
                    )
            buf += seg[:want]
        i += 1
    return buf


def sample_source(source: Path, nbytes: int) -> bytearray:
    """The first ``nbytes`` of the regular files under ``source``, in sorted path order."""
    buf = bytearray()
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath, name)
            if p.is_symlink() or not p.is_file():
                continue
            with open(p, "rb") as f:
                buf += f.read(nbytes - len(buf))
            if len(buf) >= nbytes:
                return buf
    if not buf:
        raise RuntimeError(f"--source {source}: no readable file data")
    return buf


def _parallel(work: Callable[[int, int], None], nthreads: int) -> float:
    """Wall time of ``work(part, nthreads)`` for every part, each on its own thread, started together."""
    barrier = threading.Barrier(nthreads + 1)
    errors: list[BaseException] = []

    def run(part: int) -> None:
        barrier.wait()
        try:
            work(part, nthreads)
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(p,)) for p in range(nthreads)]
    for th in threads:
        th.start()
    barrier.wait()
    t = time.perf_counter()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t
    if errors:
        raise errors[0]
    return elapsed


def timed(work: Callable[[int, int], None], nthreads: int, repeats: int) -> float:
    """Best wall time of ``repeats`` passes of ``work(part, nparts)`` on ``nthreads`` threads at once."""
    best = float("inf")
    for _ in range(repeats):
        if nthreads == 1:
            t = time.perf_counter()
            work(0, 1)
            best = min(best, time.perf_counter() - t)
        else:
            best = min(best, _parallel(work, nthreads))
    return best


def split(items: Sequence[Any], part: int, nparts: int) -> Sequence[Any]:
    """Part ``part`` of ``nparts`` contiguous parts of ``items``, balanced by byte count."""
    if nparts == 1:
        return items
    total = sum(len(x) for x in items)
    lo, hi, acc, start = total * part // nparts, total * (part + 1) // nparts, 0, None
    end = len(items)
    for i, x in enumerate(items):
        if start is None and acc >= lo:
            start = i
        if acc >= hi:
            end = i
            break
        acc += len(x)
    return items[start if start is not None else end : end]


def cpu_stages(data: bytearray, repeats: int, console: Console) -> dict[str, dict[str, Any]]:
    from tiervault.core import compress as _compress
    from tiervault.core.chunker import Chunker, ChunkerParams
    from tiervault.core.crypto import UnitCipher, chunk_id
    from tiervault.core.format.pack import PackKind, PackWriter

    view = memoryview(data)
    n = len(data)
    params = ChunkerParams()
    bounds: list[tuple[int, int]] = []
    off = 0
    for c in Chunker(params, CHUNKER_SEED).cut(view):
        bounds.append((off, len(c)))
        off += len(c)
    chunks = [view[o : o + ln] for o, ln in bounds]
    packed = [_compress.compress(c, 3)[1] for c in chunks]
    packed_bytes = sum(len(p) for p in packed)
    console.print(
        f"  {len(chunks)} chunks, mean {n / max(1, len(chunks)) / MiB:.2f} MiB; "
        f"compressed to {packed_bytes / n:.1%} at zstd level 3"
    )

    out: dict[str, dict[str, Any]] = {}

    def stage(name: str, nbytes: int, work: Callable[[int, int], None], what: str) -> None:
        t1, t2 = timed(work, 1, repeats), timed(work, 2, repeats)
        one, two = nbytes / t1 / MB, nbytes / t2 / MB
        out[name] = {"mb_s_1": one, "mb_s_2": two, "scaling": two / one, "bytes": nbytes, "input": what}
        console.print(f"  {name:<9} {one:8.0f} MB/s on 1 thread, {two:8.0f} MB/s on 2")

    with tempfile.TemporaryDirectory(prefix="tiervault-limits-") as tmp:
        path = Path(tmp, "buffer.bin")
        path.write_bytes(data)
        fd = os.open(path, os.O_RDONLY)
        try:

            def read(part: int, nparts: int) -> None:
                pos, end = n * part // nparts, n * (part + 1) // nparts
                while pos < end:
                    got = len(os.pread(fd, min(READ_BLOCK, end - pos), pos))
                    if not got:
                        raise OSError("short read")
                    pos += got

            read(0, 1)  # warm the page cache
            stage("read", n, read, "file bytes (page cache warm)")
        finally:
            os.close(fd)

    def chunk(part: int, nparts: int) -> None:
        lo, hi = n * part // nparts, n * (part + 1) // nparts
        for _ in Chunker(params, CHUNKER_SEED).cut(view[lo:hi]):
            pass

    def hash_(part: int, nparts: int) -> None:
        for c in split(chunks, part, nparts):
            chunk_id(ID_KEY, c)

    def compress(part: int, nparts: int) -> None:
        for c in split(chunks, part, nparts):
            _compress.compress(c, 3)

    def encrypt(part: int, nparts: int) -> None:
        cipher = UnitCipher.new(ENC_KEY)
        for i, p in enumerate(split(packed, part, nparts)):
            cipher.seal(0, i, p, b"aad")

    def pack(part: int, nparts: int) -> None:
        cap = 2 * PACK_SIZE + params.max_size
        writer = PackWriter(ENC_KEY, PackKind.DATA, capacity=cap)
        cid = bytes(32)  # ids are the hash stage's work
        for c in split(chunks, part, nparts):
            writer.add(cid, c)
            if writer.size >= PACK_SIZE:
                writer.finish()
                writer = PackWriter(ENC_KEY, PackKind.DATA, capacity=cap)

    stage("chunk", n, chunk, "raw bytes")
    stage("hash", n, hash_, "raw bytes")
    stage("compress", n, compress, "raw bytes")
    stage("encrypt", packed_bytes, encrypt, "compressed bytes")
    stage("pack", n, pack, "raw bytes (compress + seal + copy)")
    return out


async def _upload(conn: str, container: str, blobs: list[bytes], inflight: int) -> float:
    from azure.storage.blob.aio import BlobServiceClient

    async with BlobServiceClient.from_connection_string(conn, retry_total=0) as service:
        cc = service.get_container_client(container)
        await cc.create_container()
        sem = asyncio.Semaphore(inflight)

        async def up(i: int) -> None:
            async with sem:
                await cc.upload_blob(f"limits/{i}", blobs[i], overwrite=True)

        await up(0)  # connection set up, container warm
        t = time.perf_counter()
        await asyncio.gather(*(up(i) for i in range(len(blobs))))
        elapsed = time.perf_counter() - t
        await cc.delete_container()
    return elapsed


def upload_stage(data: bytearray, repeats: int, console: Console) -> dict[str, Any]:
    """The SDK ceiling (as bench/azure_bench.py's sdk_ceiling): 16 MiB blobs, 1 and 4 in flight."""
    sys.path.insert(0, str(ROOT))
    try:
        from tests.support.azurite import Azurite
    except ImportError as exc:
        return {"skipped": f"tests/support/azurite.py not importable: {exc}"}
    blobs = [bytes(data[o : o + BLOB]) for o in range(0, len(data) - BLOB + 1, BLOB)] or [bytes(data)]
    nbytes = sum(len(b) for b in blobs)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="tiervault-limits-az-") as tmp,
            Azurite(Path(tmp, "azurite")) as az,
        ):
            figures = {}
            for inflight in (1, 4):
                best = min(
                    asyncio.run(_upload(az.connection_string, f"limits{inflight}r{r}", blobs, inflight))
                    for r in range(repeats)
                )
                figures[inflight] = nbytes / best / MB
                console.print(f"  upload    {figures[inflight]:8.0f} MB/s with {inflight} in flight")
    except Exception as exc:  # any failure to start or reach Azurite: report it and go on
        return {"skipped": f"Azurite could not start or be reached: {type(exc).__name__}: {exc}"}
    return {
        "mb_s_1": figures[1],
        "mb_s_2": figures[4],
        "scaling": figures[4] / figures[1],
        "bytes": nbytes,
        "input": "16 MiB blobs: 1 in flight / 4 in flight",
    }


def limits_table(limits: dict[str, Any]) -> Table:
    size, src, repeats = limits["buffer_bytes"] / MiB, limits["source"], limits["repeats"]
    t = Table(
        title=f"raw limits: {size:.0f} MiB buffer ({src}), best of {repeats}",
        caption="MB/s = 10^6 bytes/s of the stage's input; upload: 1 and 4 requests in flight",
    )
    t.add_column("stage")
    t.add_column("input")
    t.add_column("1 thread MB/s", justify="right")
    t.add_column("2 threads MB/s", justify="right")
    t.add_column("scaling", justify="right")
    for name, st in limits["stages"].items():
        if "skipped" in st:
            t.add_row(name, "[yellow]skipped", "-", "-", "-")
            continue
        t.add_row(name, st["input"], f"{st['mb_s_1']:.0f}", f"{st['mb_s_2']:.0f}", f"{st['scaling']:.2f}x")
    return t


def run_limits(
    console: Console, *, smoke: bool, source: Path | None, mib: int | None = None
) -> dict[str, Any]:
    size = (mib or (SMOKE_MIB if smoke else DEFAULT_MIB)) * MiB
    repeats = 1 if smoke else 3
    t = time.perf_counter()
    if source is not None:
        data = sample_source(source, size)
        what = f"files under {source}"
    else:
        data = make_buffer(size)
        what = f"generated, seed {SEED}: half random, half text"
    console.print(f"raw limits: {len(data) / MiB:.0f} MiB buffer ({what}) in {time.perf_counter() - t:.1f} s")
    stages = cpu_stages(data, repeats, console)
    if smoke:
        stages["upload"] = {"skipped": "--smoke: no Azurite"}
    else:
        stages["upload"] = upload_stage(data, repeats, console)
        if "skipped" in stages["upload"]:
            console.print(f"[yellow]  upload skipped: {stages['upload']['skipped']}")
    return {"buffer_bytes": len(data), "source": what, "repeats": repeats, "stages": stages}
