"""Snapshot -> restore(verify=True) reproduces any tree exactly (property test over generated trees)."""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.e2e import KiB, MiB, init_vault, leftovers
from tests.support.trees import (
    IS_ROOT,
    Dir,
    Entry,
    Fifo,
    File,
    HardLink,
    Sparse,
    Symlink,
    assert_trees_equal,
    build_tree,
    snapshot_tree,
    xattrs_supported,
)

with tempfile.TemporaryDirectory() as _probe:
    XATTRS = xattrs_supported(_probe)

ODD_NAMES = [
    b"with space",
    b" leading and trailing ",
    "ünïcödé-名前-🙂".encode(),
    b"new\nline",
    b"\xff\xfe",
    b"bad-\xc3(-utf8",
    b"tab\there",
    b".hidden",
    b"-dash",
    b"*?[glob]",
    b"back\\slash",
    b"x" * 200,
]
FILE_MODES = [0o644, 0o600, 0o755, 0o4755, 0o444, 0o2750]
DIR_MODES = [0o755, 0o700, 0o750, 0o1777]
UIDS = [0, 1000, 65534, 123456]

names = st.one_of(
    st.sampled_from(ODD_NAMES),
    st.text(alphabet="abcxyz019_-.", min_size=1, max_size=6).map(str.encode),
).filter(lambda n: n not in (b".", b"..") and not n.startswith(b".tiervault-restore-"))
mtimes = st.integers(-(10**18), 4 * 10**18)  # 1938 .. 2096, nanoseconds
xattr_values = st.binary(max_size=64) if XATTRS else st.nothing()


def _content(seed: int, size: int, style: str) -> bytes:
    if style == "text":
        return (b"tiervault compressible line %d\n" % seed * (size // 20 + 1))[:size]
    return random.Random(seed).randbytes(size)


@st.composite
def file_sizes(draw: st.DrawFn) -> int:
    """Mostly small; the chunker's edges (min 512 KiB, max 8 MiB) now and then."""
    r = draw(st.integers(0, 99))
    if r < 15:
        return 0
    if r < 25:
        return 1
    if r < 86:
        return draw(st.integers(2, 96 * KiB))
    if r < 90:
        return 512 * KiB - 1
    if r < 94:
        return 512 * KiB
    if r < 98:
        return 512 * KiB + 1
    return 8 * MiB


@st.composite
def meta(draw: st.DrawFn, modes: list[int], *, xattrs: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"mode": draw(st.sampled_from(modes)), "mtime_ns": draw(mtimes)}
    if IS_ROOT:
        out["uid"] = draw(st.sampled_from(UIDS))
        out["gid"] = draw(st.sampled_from(UIDS))
    if xattrs and XATTRS and draw(st.booleans()):
        out["xattrs"] = {"user.test": draw(xattr_values)}
    return out


@st.composite
def sparse_files(draw: st.DrawFn) -> Sparse:
    shape = draw(st.sampled_from(["islands", "all-hole", "trailing-hole", "leading-hole"]))
    size = draw(st.sampled_from([4096, 64 * KiB, 1 * MiB + 17, 3 * MiB, 16 * MiB]))
    islands: list[tuple[int, bytes]] = []
    if shape == "islands":
        for _ in range(draw(st.integers(1, 4))):
            off = draw(st.integers(0, size - 1))
            n = min(draw(st.integers(1, 20 * KiB)), size - off)
            islands.append((off, random.Random(off).randbytes(n)))
    elif shape == "trailing-hole":
        islands.append((0, random.Random(size).randbytes(min(size // 3, 300 * KiB) or 1)))
    elif shape == "leading-hole":
        n = min(size // 4, 100 * KiB) or 1
        islands.append((size - n, random.Random(n).randbytes(n)))
    m = draw(meta(FILE_MODES, xattrs=True))
    return Sparse(size, tuple(islands), **m)


@st.composite
def trees(draw: st.DrawFn) -> dict[bytes, Entry]:
    spec: dict[bytes, Entry] = {b".": Dir(**draw(meta(DIR_MODES, xattrs=True)))}
    dirs = [b""]
    files: list[bytes] = []
    for _ in range(draw(st.integers(1, 14))):
        parent = draw(st.sampled_from(dirs))
        path = parent + b"/" + draw(names) if parent else draw(names)
        if path in spec or any(path.startswith(f + b"/") for f in files):
            continue
        kind = draw(
            st.sampled_from(["file", "file", "file", "dir", "dir", "sparse", "hardlink", "symlink", "fifo"])
        )
        if kind == "hardlink" and not files:
            kind = "file"
        if kind == "file":
            size = draw(file_sizes())
            seed = draw(st.integers(0, 3))  # small range: identical contents happen (dedup inside a point)
            style = draw(st.sampled_from(["random", "text"]))
            spec[path] = File(_content(seed, size, style), **draw(meta(FILE_MODES, xattrs=True)))
            files.append(path)
        elif kind == "sparse":
            spec[path] = draw(sparse_files())
            files.append(path)
        elif kind == "dir":
            spec[path] = Dir(**draw(meta(DIR_MODES, xattrs=True)))
            dirs.append(path)
        elif kind == "hardlink":
            spec[path] = HardLink(draw(st.sampled_from(files)))
        elif kind == "symlink":
            up = b"../" * (parent.count(b"/") + 1 if parent else 0)  # from the link's directory to the root
            if draw(st.booleans()):
                target = up + draw(st.sampled_from(files + dirs[1:] or [b"x"]))  # relative, usually resolving
            else:
                target = draw(
                    st.sampled_from(
                        [b"/etc/hostname", b"/nonexistent/abs/\xff", b"dangling", b"./a/../b", b"\xff\xfe"]
                    )
                )
            m = draw(meta([0o777], xattrs=False))
            del m["mode"]
            spec[path] = Symlink(target, **m)
        else:
            spec[path] = Fifo(**draw(meta([0o644, 0o600, 0o666], xattrs=False)))
    return spec


# every kind of entry at least once, whatever hypothesis draws
KITCHEN_SINK: dict[bytes, Entry] = {
    b".": Dir(mode=0o750, mtime_ns=1_234_567_890_123_456_789),
    b"empty-dir": Dir(mode=0o700, mtime_ns=1_000_000_000_000_000_001),
    b"a/b/c/deep-empty": Dir(mtime_ns=999_999_999_999_999_999),
    b"a/zero": File(b""),
    b"a/one": File(b"1", mode=0o600),
    b"a/b/small": File(_content(7, 1234, "random"), mode=0o444),
    b"a/b/text": File(_content(7, 100 * KiB, "text"), mode=0o755),
    b"a/512k-1": File(_content(1, 512 * KiB - 1, "random")),
    b"a/512k": File(_content(1, 512 * KiB, "random")),
    b"a/512k+1": File(_content(1, 512 * KiB + 1, "random")),
    b"a/8m": File(_content(2, 8 * MiB, "random"), mode=0o4755),
    b"sparse/islands": Sparse(4 * MiB, ((0, b"head"), (1 * MiB + 5, b"x" * 5000), (3 * MiB, b"tail" * 100))),
    b"sparse/all-hole": Sparse(5 * MiB),
    b"sparse/trailing-hole": Sparse(2 * MiB, ((0, _content(3, 200 * KiB, "random")),)),
    b"links/hard1": HardLink(b"a/b/small"),
    b"links/hard2": HardLink(b"a/b/small"),
    b"links/rel": Symlink(b"../a/one"),
    b"links/abs": Symlink(b"/etc/hostname"),
    b"links/dangling": Symlink(b"nowhere/\xff"),
    b"odd/with space": File(b"space"),
    "odd/ünïcödé".encode(): File(b"unicode"),
    b"odd/new\nline": File(b"newline"),
    b"odd/\xff\xfe": File(b"invalid utf-8"),
    b"odd/dir \xff": Dir(mode=0o1777),
    b"odd/dir \xff/inner": File(b"inner"),
    b"fifo": Fifo(mode=0o600),
}
if XATTRS:
    KITCHEN_SINK[b"a/one"] = File(b"1", mode=0o600, xattrs={"user.test": b"value\x00\xff"})
    KITCHEN_SINK[b"empty-dir"] = Dir(mode=0o700, mtime_ns=10**18, xattrs={"user.test": b""})
if IS_ROOT:
    KITCHEN_SINK[b"a/b/text"] = File(_content(7, 100 * KiB, "text"), mode=0o755, uid=1234, gid=5678)
    KITCHEN_SINK[b"a/8m"] = File(_content(2, 8 * MiB, "random"), mode=0o4755, uid=1000, gid=1000)


async def _roundtrip(spec: dict[bytes, Entry], workdir: str) -> None:
    src, dst, repo = (os.path.join(workdir, x) for x in ("src", "dst", "repo"))
    build_tree(src, spec)
    before = snapshot_tree(src)
    async with init_vault(repo) as vault:
        await vault.protect(src, name="tree")
        snap = await vault.snapshot("tree")
        assert snap.errors == ()
        assert not snap.partial and not snap.point.partial
        n_files = sum(1 for info in before.values() if info["type"] == "file")
        assert snap.stats.files == n_files
        listed = {os.fsencode(e.path) for e in await vault.ls(snap.point, recursive=True)}
        assert listed == set(before) - {b"."}
        result = await vault.restore(snap.point, dst, verify=True)
        assert result.ok, result.errors
        assert result.stats.files_verified == n_files
    after = snapshot_tree(dst)
    assert_trees_equal(before, after)
    assert leftovers(dst) == []
    assert snapshot_tree(src) == before, "taking a snapshot changed the source"


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@example(spec=KITCHEN_SINK)
@given(spec=trees())
def test_snapshot_then_restore_reproduces_the_tree(spec: dict[bytes, Entry]) -> None:
    with tempfile.TemporaryDirectory(prefix="tv-e2e-") as workdir:
        asyncio.run(_roundtrip(spec, workdir))


async def test_many_small_files_and_deep_nesting(tmp_path: Path) -> None:
    """More files than the walker's queue bound, and a path deeper than any pending-directory window."""
    rnd = random.Random(5)
    spec: dict[bytes, Entry] = {}
    for i in range(2000):
        spec[b"d%02d/e%d/f%04d" % (i % 40, i % 3, i)] = File(rnd.randbytes(rnd.randint(0, 3000)), mtime_ns=i)
    deep = b"/".join(b"n%d" % i for i in range(60))
    spec[deep + b"/leaf"] = File(b"deep")
    spec[deep] = Dir(mode=0o700)
    await _roundtrip(spec, str(tmp_path))
