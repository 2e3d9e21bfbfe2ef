"""The main job on an embedded default: a local repository in a temporary directory.

Protects a generated sample tree, snapshots it, changes some files, snapshots again, restores both
recovery points, checks them byte for byte against what was backed up, and prints a short summary.

    python3 -m nox -s demo            # or: python samples/demo.py [--size-mb 256] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import tiervault


def make_tree(root: Path, size_mb: int, seed: int = 2026) -> None:
    """A deterministic tree: many small text-like files, a few large binaries, links, an empty dir."""
    rng = random.Random(seed)
    words = [bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(2000)]
    small_budget = size_mb * (1 << 20) // 4
    n = 0
    while small_budget > 0:
        d = root / f"docs/{n % 37:02d}/{n % 5}"
        d.mkdir(parents=True, exist_ok=True)
        body = b" ".join(rng.choices(words, k=rng.randint(10, 3000))) + b"\n"
        (d / f"note-{n:05d}.txt").write_bytes(body)
        small_budget -= len(body)
        n += 1
    big = root / "images"
    big.mkdir()
    remaining = size_mb * (1 << 20) - size_mb * (1 << 20) // 4
    i = 0
    while remaining > 0:
        size = min(remaining, 64 << 20)
        block = rng.randbytes(1 << 20)
        with open(big / f"disk-{i}.img", "wb") as f:
            for j in range(size >> 20):
                # partly repetitive, like a real disk image: compresses and dedups somewhat
                f.write(block if j % 3 else rng.randbytes(1 << 20))
        remaining -= size
        i += 1
    (root / "empty-dir").mkdir()
    (root / "latest-image").symlink_to("images/disk-0.img")
    os.link(root / "docs/00/0/note-00000.txt", root / "hard-link-to-first-note.txt")


def mutate(root: Path, seed: int = 7) -> int:
    """Change a few files in place, add one, delete one. Returns the number of touched files."""
    rng = random.Random(seed)
    notes = sorted(root.glob("docs/*/*/*.txt"))
    touched = 0
    for p in rng.sample(notes, k=max(1, len(notes) // 50)):
        p.write_bytes(p.read_bytes() + b"edited\n")
        touched += 1
    img = root / "images/disk-0.img"
    with open(img, "r+b") as f:
        f.seek(img.stat().st_size // 2)
        f.write(rng.randbytes(4096))
    (root / "docs/new-report.txt").write_text("quarterly numbers\n" * 1000)
    notes[-1].unlink()
    return touched + 3


def digest_tree(root: Path) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("symlink", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir", "")
            else:
                out[rel] = ("file", hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


async def run(work: Path, size_mb: int) -> int:
    src, repo = work / "source", work / "repo"
    src.mkdir()
    t = time.perf_counter()
    make_tree(src, size_mb)
    print(f"generated {size_mb} MiB sample tree in {time.perf_counter() - t:.1f} s: {src}")
    password = "demo-password"
    async with tiervault.init(repo, password=password) as vault:
        await vault.protect(src, name="app-data", policy=tiervault.Policy(keep_daily=7, keep_weekly=4))
        expected = []
        t = time.perf_counter()
        first = await vault.snapshot("app-data", tags=["demo"])
        t1 = time.perf_counter() - t
        expected.append(digest_tree(src))
        touched = mutate(src)
        t = time.perf_counter()
        second = await vault.snapshot("app-data", tags=["demo"])
        t2 = time.perf_counter() - t
        expected.append(digest_tree(src))
        restore_secs = []
        for i, res in enumerate((first, second)):
            target = work / f"restore-{i}"
            t = time.perf_counter()
            rr = await vault.restore(res.point, target, verify=True)
            restore_secs.append(time.perf_counter() - t)
            if not rr.ok or digest_tree(target) != expected[i]:
                print(f"FAIL: restore of point {res.point.short_id} differs from the source", file=sys.stderr)
                return 1
        check = await vault.check(read_data=True)
        if not check.ok:
            print(f"FAIL: check found problems: {check.errors}", file=sys.stderr)
            return 1
    stored = sum(f.stat().st_size for f in repo.rglob("*") if f.is_file())
    total = first.stats.bytes_total + second.stats.bytes_total
    s1, s2 = first.stats, second.stats
    print()
    print(
        f"snapshot 1  {first.point.short_id}  {s1.files:,} files  {mb(s1.bytes_total)}  in {t1:.2f} s "
        f"= {s1.bytes_total / t1 / 1e6:,.0f} MB/s"
    )
    print(
        f"snapshot 2  {second.point.short_id}  {touched} files changed; read {mb(s2.bytes_read)}, "
        f"new {mb(s2.bytes_new)}  in {t2:.2f} s"
    )
    for i, (res, secs) in enumerate(zip((first, second), restore_secs, strict=True)):
        print(
            f"restore {i + 1}   {res.point.short_id}  {mb(res.stats.bytes_total)} in {secs:.2f} s "
            f"= {res.stats.bytes_total / secs / 1e6:,.0f} MB/s, verified byte for byte"
        )
    print(
        f"repository  {mb(stored)} stored for {mb(total)} across both points "
        f"(dedup+compression ratio {total / stored:.2f}x); check --read-data: ok"
    )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=256, help="size of the generated tree (default 256)")
    ap.add_argument("--keep", type=Path, help="work in this directory and keep it (default: a temp dir)")
    args = ap.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=False)
        return asyncio.run(run(args.keep, args.size_mb))
    work = Path(tempfile.mkdtemp(prefix="tiervault-demo-"))
    try:
        return asyncio.run(run(work, args.size_mb))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
