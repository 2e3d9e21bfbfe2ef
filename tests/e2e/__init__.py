"""End-to-end tests: the public API against the real local backend, on real file trees.

Shared helpers live here (fixtures in ``conftest.py``): a fast KDF, opening helpers, and listings of
the repository directory used to prove what an operation did or did not write.
"""

from __future__ import annotations

import os
from pathlib import Path

import tiervault

PASSWORD = "e2e correct horse"
KDF = tiervault.ScryptParams(log_n=10)  # fast key derivation: tests, not security
MiB = 1 << 20
KiB = 1 << 10


def init_vault(path: str | os.PathLike[str], password: str = PASSWORD):  # type: ignore[no-untyped-def]
    return tiervault.init(path, password=password, kdf=KDF)


def open_vault(path: str | os.PathLike[str], password: str = PASSWORD):  # type: ignore[no-untyped-def]
    return tiervault.open(path, password=password)


def repo_objects(repo: str | os.PathLike[str], prefix: str) -> list[str]:
    """Object names under ``prefix`` (e.g. ``"data"``), as stored on disk, without temp files."""
    base = Path(repo) / prefix
    if not base.exists():
        return []
    return sorted(
        str(p.relative_to(repo))
        for p in base.rglob("*")
        if p.is_file() and not any(part.startswith(".tmp-") for part in p.parts)
    )


def repo_listing(repo: str | os.PathLike[str]) -> dict[str, tuple[str, int, int]]:
    """Every path under the repository directory (hidden ones too): (kind, size, mtime_ns)."""
    out: dict[str, tuple[str, int, int]] = {}
    root = os.fspath(repo)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            kind = "dir" if name in dirnames else "file"
            out[os.path.relpath(p, root)] = (kind, st.st_size if kind == "file" else 0, st.st_mtime_ns)
    return out


def flip_byte(path: str | os.PathLike[str], offset: int) -> None:
    """Corrupt one byte of a stored object in place (negative offsets count from the end)."""
    p = Path(path)
    data = bytearray(p.read_bytes())
    data[offset] ^= 0x5A
    os.chmod(p, 0o644)
    p.write_bytes(bytes(data))


def leftovers(target: str | os.PathLike[str]) -> list[str]:
    """Temporary files a restore left behind under ``target``."""
    return sorted(
        os.path.join(d, n)
        for d, dirs, files in os.walk(target)
        for n in dirs + files
        if n.startswith(".tiervault-restore-")
    )
