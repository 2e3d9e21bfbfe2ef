"""Build a golden repository that pins an on-storage format version: ``tests/fixtures/golden-v1`` (format
version 1) and ``tests/fixtures/golden-v2`` (format version 2, a repository created as version 2).

    .venv/bin/python tests/support/make_golden.py [--format-version N] [--out DIR] [--force]

The source tree is deterministic (fixed content, modes and mtimes); the repository is not (keys, salts,
ids are random), which is why the result is generated once and committed: ``tests/test_golden.py``
reads those committed bytes forever, so any change that makes tiervault unable to read format v1 or v2
breaks it. Both versions hold the same source tree and the same two recovery points; the repository is
created with ``Repository.init(..., version=N)`` and 16 MiB packs (what ``golden-v1`` was made with),
then written through the public API. ``manifest.json`` describes, for each recovery point in order,
every entry of the source tree as it was when the point was taken; it is derived from the files on
disk, not from the repository.

Never regenerate the fixture to make a failing golden test pass: that would hide exactly the
incompatibility the test exists to catch. Regenerate only for a new format version, into a new directory.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

import tiervault
from tiervault.backend.local import LocalBackend
from tiervault.repo.repository import DEFAULT_PACK_SIZE, Repository

PASSWORD = "golden-password"
ITEM = "golden"
KDF = tiervault.ScryptParams(log_n=10)
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
#: the format versions a golden fixture exists for (``FIXTURES / f"golden-v{N}"``)
VERSIONS = (1, 2)

BIG_SIZE = 1536 * 1024  # 1.5 MiB of random bytes: at least two chunks with the default chunker
SPARSE_HOLE = 4 << 20
BASE_MTIME_NS = 1_700_000_000_123_456_789  # 2023-11-14T22:13:20.123456789Z
LATIN1_NAME = b"caf\xe9 latin-1.txt"  # not UTF-8
DANGLING_TARGET = b"nowhere/\xff\xfe-target"  # not UTF-8 either


def _write(path: bytes, data: bytes, mode: int) -> None:
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def build_source(root: bytes) -> None:
    """The tree of the first recovery point."""
    j = os.path.join
    os.makedirs(root, exist_ok=True)
    os.mkdir(j(root, b"docs"), 0o755)
    os.mkdir(j(root, b"empty-dir"), 0o700)
    os.mkdir(j(root, b"scripts"), 0o750)
    # the same text in every fixture: this is the source tree, not the format
    _write(j(root, b"README.txt"), b"tiervault golden repository, format v1\n", 0o644)
    _write(j(root, b"docs", b"notes.md"), b"# Notes\n\nFirst version of the notes.\n", 0o644)
    _write(j(root, b"docs", b"empty.txt"), b"", 0o600)
    lorem = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 400  # ~23 KB, compresses well
    _write(j(root, b"docs", b"lorem.txt"), lorem, 0o644)
    _write(j(root, b"scripts", b"run.sh"), b"#!/bin/sh\necho golden\n", 0o755)
    _write(j(root, b"big.bin"), random.Random(20261126).randbytes(BIG_SIZE), 0o644)
    _write(j(root, LATIN1_NAME), b"a file whose name is not UTF-8\n", 0o640)
    # a sparse file: 4 KiB of data, a 4 MiB hole, 4 KiB of data
    sparse = j(root, b"sparse.img")
    fd = os.open(sparse, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.pwrite(fd, b"HEAD" * 1024, 0)
        os.pwrite(fd, b"TAIL" * 1024, 4096 + SPARSE_HOLE)
    finally:
        os.close(fd)
    os.chmod(sparse, 0o640)
    os.symlink(b"docs/notes.md", j(root, b"link-to-notes"))
    os.symlink(DANGLING_TARGET, j(root, b"dangling"))
    # extended attributes in the user namespace, one with a name that is not UTF-8
    os.setxattr(j(root, b"README.txt"), b"user.golden", b"format v1")
    os.setxattr(j(root, LATIN1_NAME), b"user.caf\xe9", b"\x00\xff binary value")
    os.setxattr(j(root, b"docs"), b"user.dir-note", b"a directory attribute")
    for d in (b"docs", b"empty-dir", b"scripts"):  # mkdir's mode is subject to the umask
        os.chmod(j(root, d), {b"docs": 0o755, b"empty-dir": 0o700, b"scripts": 0o750}[d])
    os.chmod(root, 0o755)


def modify_source(root: bytes) -> None:
    """The one change between the first and the second recovery point (appending to a file leaves its
    directory's mtime alone)."""
    path = os.path.join(root, b"docs", b"notes.md")
    with open(path, "ab") as f:
        f.write(b"\nSecond version: one more line.\n")
    ns = BASE_MTIME_NS + 86_400_000_000_000 + 42
    os.utime(path, ns=(ns, ns))


def walk(root: bytes) -> list[bytes]:
    """Every path below ``root`` (relative, b"" for the root itself), parents before children, sorted."""
    out = [b""]
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        base = b"" if rel == b"." else rel
        for name in sorted(dirnames + filenames):
            out.append(os.path.join(base, name) if base else name)
    return sorted(out)


def set_times(root: bytes) -> None:
    """Fixed mtimes (and atimes), distinct per entry and with nanoseconds; directories last, deepest
    first, because creating an entry in a directory changes the directory's mtime."""
    paths = walk(root)
    order = sorted(
        range(len(paths)),
        key=lambda i: (
            stat.S_ISDIR(os.lstat(_full(root, paths[i])).st_mode),
            -paths[i].count(b"/") - (paths[i] != b""),
        ),
    )
    for i in order:
        ns = BASE_MTIME_NS + i * 1_000_000_007
        os.utime(_full(root, paths[i]), ns=(ns, ns), follow_symlinks=False)


def _full(root: bytes, rel: bytes) -> bytes:
    return os.path.join(root, rel) if rel else root


def describe(root: bytes, rel: bytes) -> dict[str, Any]:
    """One manifest entry, from the file system."""
    full = _full(root, rel)
    st = os.lstat(full)
    entry: dict[str, Any] = {
        "path": rel.decode("utf-8", "backslashreplace") or ".",
        "path_hex": rel.hex(),
        "type": None,
        "mode": None,
        "mtime_ns": st.st_mtime_ns,
        "size": None,
        "sha256": None,
        "target": None,
        "target_hex": None,
        "sparse": False,
        "xattrs": user_xattrs(full),
    }
    if stat.S_ISDIR(st.st_mode):
        entry.update(type="dir", mode=stat.S_IMODE(st.st_mode))
    elif stat.S_ISLNK(st.st_mode):
        target = os.readlink(full)
        entry.update(
            type="symlink", target=target.decode("utf-8", "backslashreplace"), target_hex=target.hex()
        )
    elif stat.S_ISREG(st.st_mode):
        with open(full, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        entry.update(
            type="file",
            mode=stat.S_IMODE(st.st_mode),
            size=st.st_size,
            sha256=digest,
            sparse=st.st_blocks * 512 < st.st_size,
        )
    else:
        raise AssertionError(f"unexpected file type at {full!r}")
    return entry


def user_xattrs(path: bytes) -> list[list[str]]:
    """[name hex, value hex] of the ``user.`` attributes (others depend on the system, e.g. SELinux)."""
    if stat.S_ISLNK(os.lstat(path).st_mode):
        return []  # Linux allows no user attributes on symlinks
    names = sorted(n for n in os.listxattr(path) if n.startswith("user."))
    return [[os.fsencode(n).hex(), os.getxattr(path, n).hex()] for n in names]


def manifest_of(root: bytes) -> list[dict[str, Any]]:
    return [describe(root, rel) for rel in walk(root)]


async def _tree_nodes(vault: tiervault.Vault, point: tiervault.RecoveryPoint) -> dict[bytes, Any]:
    """Top-level nodes of a point (reaches into the repository: this is a test tool)."""
    repo = vault._repo
    rec = await repo.load_snapshot(point.id)
    return {n.name: n for n in await repo.load_tree(bytes.fromhex(rec.tree))}


async def build_repository(repo_dir: Path, src: bytes, version: int) -> list[list[dict[str, Any]]]:
    manifests = []
    async with LocalBackend(repo_dir) as backend:
        await Repository.init(
            backend, PASSWORD.encode(), kdf=KDF, pack_size=DEFAULT_PACK_SIZE, version=version
        )
    async with tiervault.open(repo_dir, password=PASSWORD) as vault:
        if vault._repo.format_version != version:
            raise RuntimeError(f"made format version {vault._repo.format_version}, not {version}")
        await vault.protect(os.fsdecode(src), name=ITEM)
        for generation in range(2):
            if generation:
                modify_source(src)
            else:
                set_times(src)
            manifests.append(manifest_of(src))
            result = await vault.snapshot(ITEM)
            if result.errors:
                raise RuntimeError(f"snapshot {generation} is partial: {result.errors}")
            nodes = await _tree_nodes(vault, result.point)
            big = [c for c in nodes[b"big.bin"].content if isinstance(c, bytes)]
            if len(big) < 2:
                raise _Retry(f"big.bin is a single chunk ({len(big)})")
            if nodes[LATIN1_NAME].xattrs != [(b"user.caf\xe9", b"\x00\xff binary value")]:
                raise RuntimeError(f"xattrs were not stored as expected: {nodes[LATIN1_NAME].xattrs}")
            if not any(isinstance(c, int) for c in nodes[b"sparse.img"].content):
                raise RuntimeError(
                    "sparse.img was stored without a hole: does this file system support holes?"
                )
        points = await vault.points()
        assert len(points) == 2
        check = await vault.check(read_data=True)
        assert check.ok, check.errors
    return manifests


class _Retry(Exception):
    pass


def generate(out: Path, version: int) -> None:
    for _attempt in range(20):
        with tempfile.TemporaryDirectory(prefix="tiervault-golden-") as tmp:
            src = os.fsencode(os.path.join(tmp, "source"))
            repo_dir = Path(tmp) / "repo"
            build_source(src)
            if not (os.lstat(os.path.join(src, b"sparse.img")).st_blocks * 512 < SPARSE_HOLE):
                raise RuntimeError("this file system does not keep holes; generate the fixture elsewhere")
            try:
                manifests = asyncio.run(build_repository(repo_dir, src, version))
            except _Retry as exc:  # the chunker seed is random per repository
                print(f"retrying: {exc}", file=sys.stderr)
                continue
            out.mkdir(parents=True, exist_ok=True)
            shutil.copytree(repo_dir, out / "repo", symlinks=True)
        break
    else:
        raise RuntimeError("could not build a repository where big.bin spans two chunks")
    manifest = {
        "description": f"tiervault golden repository, format v{version}: see tests/support/make_golden.py",
        "format_version": version,
        "password": PASSWORD,
        "kdf": {"log_n": KDF.log_n, "r": KDF.r, "p": KDF.p},
        "item": ITEM,
        "snapshots": [{"entries": m} for m in manifests],
    }
    (out / "manifest.json").write_text(
        json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    # keep git from touching the bytes (line endings, diffs of binary objects)
    (out / ".gitattributes").write_text("repo/** -text -diff\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--format-version", type=int, choices=VERSIONS, default=VERSIONS[-1])
    parser.add_argument("--out", type=Path, default=None, help="default: tests/fixtures/golden-vN")
    parser.add_argument(
        "--force", action="store_true", help="replace an existing fixture (see the warning above)"
    )
    args = parser.parse_args(argv)
    out: Path = args.out or FIXTURES / f"golden-v{args.format_version}"
    if out.exists():
        if not args.force:
            parser.error(f"{out} exists; the golden fixture is generated once (use --force to replace it)")
        shutil.rmtree(out)
    generate(out, args.format_version)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
