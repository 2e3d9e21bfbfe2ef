"""Build file trees from a description, capture everything about a tree, and compare two captures.

    spec = {
        "docs": Dir(mode=0o750, mtime_ns=1_600_000_000_123_456_789),
        "docs/a.txt": File(b"hello", mode=0o644, xattrs={"user.test": b"v"}),
        "docs/big.img": Sparse(10 << 20, islands=[(4096, b"data")]),
        "docs/a-link": HardLink("docs/a.txt"),
        "docs/rel": Symlink(b"a.txt"),
        "fifo": Fifo(),
    }
    build_tree(root, spec)
    before = snapshot_tree(root)
    ...
    assert_trees_equal(before, snapshot_tree(restored))

Paths in a spec are relative, ``/``-separated, ``str`` or ``bytes`` (bytes for names that are not valid
UTF-8); ``"."`` may give the root's own metadata (a ``Dir``). Parent directories that the spec does not
list are created with default metadata. Metadata is applied after all entries exist, directories
deepest first, so the mtimes in the spec are what a capture sees.

``snapshot_tree`` returns ``{relative bytes path: {field: value}}``; the root itself is ``b"."``.
Fields: type, mode (permission bits incl. setuid/setgid/sticky), uid, gid, mtime_ns (lstat), and per
type: size, sha256, sparse, hardlinks (files); target (symlinks); xattrs (``user.*``, files and dirs,
when the file system supports them).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_MTIME_NS",
    "IS_ROOT",
    "Dir",
    "Entry",
    "Fifo",
    "File",
    "HardLink",
    "Snapshot",
    "Spec",
    "Sparse",
    "Symlink",
    "assert_trees_equal",
    "build_tree",
    "diff_trees",
    "filter_tree",
    "snapshot_tree",
    "xattrs_supported",
]

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
DEFAULT_MTIME_NS = 1_500_000_000_123_456_789  # a fixed, non-round time: nanoseconds must survive

Snapshot = dict[bytes, dict[str, Any]]


# ------------------------------------------------------------------------------------ descriptions


@dataclass(frozen=True)
class File:
    """A regular file written densely with ``content``."""

    content: bytes = b""
    mode: int = 0o644
    mtime_ns: int = DEFAULT_MTIME_NS
    xattrs: Mapping[str, bytes] = field(default_factory=dict)
    uid: int | None = None  # only applied when running as root
    gid: int | None = None


@dataclass(frozen=True)
class Sparse:
    """A file of ``size`` bytes that is a hole except for the ``islands`` (offset, data) written into it."""

    size: int
    islands: tuple[tuple[int, bytes], ...] = ()
    mode: int = 0o644
    mtime_ns: int = DEFAULT_MTIME_NS
    xattrs: Mapping[str, bytes] = field(default_factory=dict)
    uid: int | None = None
    gid: int | None = None


@dataclass(frozen=True)
class Dir:
    mode: int = 0o755
    mtime_ns: int = DEFAULT_MTIME_NS
    xattrs: Mapping[str, bytes] = field(default_factory=dict)
    uid: int | None = None
    gid: int | None = None


@dataclass(frozen=True)
class Symlink:
    target: bytes | str
    mtime_ns: int = DEFAULT_MTIME_NS
    uid: int | None = None
    gid: int | None = None


@dataclass(frozen=True)
class HardLink:
    """Another name for the regular file at ``to`` (which must be in the same spec)."""

    to: bytes | str


@dataclass(frozen=True)
class Fifo:
    mode: int = 0o644
    mtime_ns: int = DEFAULT_MTIME_NS
    uid: int | None = None
    gid: int | None = None


Entry = File | Sparse | Dir | Symlink | HardLink | Fifo
Spec = Mapping[str, Entry] | Mapping[bytes, Entry] | Mapping[bytes | str, Entry]


def _b(p: bytes | str) -> bytes:
    return p if isinstance(p, bytes) else os.fsencode(p)


def _norm(rel: bytes | str) -> bytes:
    parts = [x for x in _b(rel).split(b"/") if x not in (b"", b".")]
    if not parts or b".." in parts:
        raise ValueError(f"bad spec path {rel!r}")
    return b"/".join(parts)


def xattrs_supported(path: str | bytes | os.PathLike[str]) -> bool:
    """Can ``user.*`` xattrs be set on a regular file created in directory ``path``?"""
    if not hasattr(os, "setxattr"):
        return False
    probe = os.path.join(os.fsencode(path), b".xattr-probe")
    with open(probe, "wb"):
        pass
    try:
        os.setxattr(probe, "user.probe", b"1")
        return True
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES):
            return False
        raise
    finally:
        os.unlink(probe)


# ----------------------------------------------------------------------------------------- building


def build_tree(root: str | bytes | os.PathLike[str], spec: Spec) -> None:
    """Materialize ``spec`` under ``root`` (created if missing; existing entries are replaced)."""
    broot = os.fsencode(root)
    os.makedirs(broot, exist_ok=True)
    given: dict[bytes, Entry] = {_b(k): v for k, v in spec.items()}
    root_meta = given.pop(b".", None)
    if root_meta is not None and not isinstance(root_meta, Dir):
        raise ValueError("the root entry '.' must be a Dir")
    items = {_norm(k): v for k, v in given.items()}
    # parents first: every parent of an entry exists as a directory before the entry is created
    for rel in sorted(items, key=lambda r: r.count(b"/")):
        entry = items[rel]
        path = os.path.join(broot, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if isinstance(entry, Dir):
            if not os.path.isdir(path) or os.path.islink(path):
                _remove(path)
                os.mkdir(path)
            continue
        if isinstance(entry, HardLink):
            continue  # after every file exists
        _remove(path)
        if isinstance(entry, File):
            with open(path, "wb") as fh:
                fh.write(entry.content)
        elif isinstance(entry, Sparse):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.ftruncate(fd, entry.size)
                for off, data in entry.islands:
                    if off + len(data) > entry.size:
                        raise ValueError(f"island at {off} does not fit in {rel!r} of size {entry.size}")
                    os.pwrite(fd, data, off)
            finally:
                os.close(fd)
        elif isinstance(entry, Symlink):
            os.symlink(_b(entry.target), path)
        elif isinstance(entry, Fifo):
            os.mkfifo(path, 0o600)
        else:  # pragma: no cover - a spec error
            raise TypeError(f"unknown spec entry {entry!r}")
    for rel, entry in items.items():
        if isinstance(entry, HardLink):
            to = _norm(entry.to)
            if not isinstance(items.get(to), File | Sparse):
                raise ValueError(f"hard link {rel!r} must point at a regular file of the spec, not {to!r}")  # noqa: TRY004
            path = os.path.join(broot, rel)
            _remove(path)
            os.link(os.path.join(broot, to), path)
    # metadata: non-directories first, then directories deepest first (creating entries touches mtimes)
    for rel, entry in items.items():
        if not isinstance(entry, Dir | HardLink):
            _apply_meta(os.path.join(broot, rel), entry)
    for rel in sorted((r for r, e in items.items() if isinstance(e, Dir)), key=lambda r: -r.count(b"/")):
        _apply_meta(os.path.join(broot, rel), items[rel])
    if root_meta is not None:
        _apply_meta(broot, root_meta)


def _remove(path: bytes) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        import shutil

        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _apply_meta(path: bytes, entry: Entry) -> None:
    is_link = isinstance(entry, Symlink)
    uid, gid = getattr(entry, "uid", None), getattr(entry, "gid", None)
    if IS_ROOT and (uid is not None or gid is not None):
        os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid, follow_symlinks=False)
    if not is_link:
        os.chmod(path, entry.mode)  # type: ignore[union-attr]  # after chown, which clears setuid
    for name, value in getattr(entry, "xattrs", {}).items():
        os.setxattr(path, name, value, follow_symlinks=False)
    mtime = entry.mtime_ns  # type: ignore[union-attr]
    os.utime(path, ns=(mtime, mtime), follow_symlinks=not is_link)


# --------------------------------------------------------------------------------------- capturing


def _sha256(path: bytes) -> str:
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        while block := os.read(fd, 1 << 20):
            h.update(block)
    finally:
        os.close(fd)
    return h.hexdigest()


def _xattrs(path: bytes) -> tuple[tuple[str, bytes], ...]:
    if not hasattr(os, "listxattr"):
        return ()
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return ()
        raise
    return tuple(
        sorted((n, os.getxattr(path, n, follow_symlinks=False)) for n in names if n.startswith("user."))
    )


def _type(mode: int) -> str:
    for test, name in (
        (stat.S_ISREG, "file"),
        (stat.S_ISDIR, "dir"),
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISCHR, "chardev"),
        (stat.S_ISBLK, "blockdev"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    return "unknown"


def snapshot_tree(root: str | bytes | os.PathLike[str]) -> Snapshot:
    """Capture every entry below ``root`` (and ``root`` itself as ``b"."``), without following links."""
    broot = os.fsencode(root)
    out: Snapshot = {}
    inodes: dict[tuple[int, int], list[bytes]] = {}

    def visit(rel: bytes, path: bytes) -> None:
        st = os.lstat(path)
        kind = _type(st.st_mode)
        info: dict[str, Any] = {
            "type": kind,
            "mode": stat.S_IMODE(st.st_mode),
            "uid": st.st_uid,
            "gid": st.st_gid,
            "mtime_ns": st.st_mtime_ns,
        }
        if kind == "file":
            info["size"] = st.st_size
            info["sha256"] = _sha256(path)
            info["sparse"] = st.st_blocks * 512 < st.st_size
            inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
        elif kind == "symlink":
            info["target"] = os.readlink(path)
        if kind in ("file", "dir"):
            info["xattrs"] = _xattrs(path)
        out[rel] = info
        if kind == "dir":
            for name in sorted(os.listdir(path)):
                visit(name if rel == b"." else rel + b"/" + name, os.path.join(path, name))

    visit(b".", broot)
    for paths in inodes.values():
        group = frozenset(paths)
        for p in paths:
            out[p]["hardlinks"] = group if len(group) > 1 else frozenset()
    return out


def filter_tree(snap: Snapshot, keep: Callable[[bytes], bool]) -> Snapshot:
    """The entries of ``snap`` whose path ``keep`` accepts; hard-link groups are narrowed to match."""
    out = {}
    for p, info in snap.items():
        if not keep(p):
            continue
        kept = dict(info)
        if kept.get("hardlinks"):
            group = frozenset(x for x in kept["hardlinks"] if keep(x))
            kept["hardlinks"] = group if len(group) > 1 else frozenset()
        out[p] = kept
    return out


# --------------------------------------------------------------------------------------- comparing


def _show(key: str, value: Any) -> str:
    if key == "mode" and isinstance(value, int):
        return oct(value)
    if isinstance(value, frozenset):
        return "{" + ", ".join(sorted(repr(v) for v in value)) + "}"
    return repr(value)


def diff_trees(
    expected: Snapshot, actual: Snapshot, *, ignore: Iterable[str] = (), ignore_root: Iterable[str] = ()
) -> list[str]:
    """Human-readable differences (empty if equal). ``ignore`` names fields never compared;
    ``ignore_root`` names fields not compared on the root entry ``b"."``."""
    skip = set(ignore)
    skip_root = skip | set(ignore_root)
    lines = []
    for p in sorted(set(expected) | set(actual)):
        if p not in actual:
            lines.append(f"missing: {p!r} ({expected[p]['type']})")
            continue
        if p not in expected:
            lines.append(f"unexpected: {p!r} ({actual[p]['type']})")
            continue
        e, a = expected[p], actual[p]
        fields = skip_root if p == b"." else skip
        for k in sorted(set(e) | set(a)):
            if k in fields or e.get(k) == a.get(k):
                continue
            if k == "mtime_ns" and isinstance(e.get(k), int) and isinstance(a.get(k), int):
                lines.append(f"{p!r}: mtime_ns expected {e[k]} got {a[k]} (off by {a[k] - e[k]} ns)")
            else:
                want, got = _show(k, e.get(k, "<absent>")), _show(k, a.get(k, "<absent>"))
                lines.append(f"{p!r}: {k} expected {want} got {got}")
    return lines


def assert_trees_equal(
    expected: Snapshot, actual: Snapshot, *, ignore: Iterable[str] = (), ignore_root: Iterable[str] = ()
) -> None:
    """Fail with one line per difference. Field names as in :func:`snapshot_tree`."""
    lines = diff_trees(expected, actual, ignore=ignore, ignore_root=ignore_root)
    if lines:
        shown = lines[:60]
        more = f"\n... and {len(lines) - 60} more" if len(lines) > 60 else ""
        raise AssertionError(f"trees differ ({len(lines)} differences):\n  " + "\n  ".join(shown) + more)
