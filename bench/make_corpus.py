#!/usr/bin/env python3
# fmt: off
# ruff: noqa
# Vendored copy of the shared corpus generator: /work/shared/bench/make_corpus.py (outside this
# repository), kept here so that a clean clone can run bench/bench.py. Everything below these five
# comment lines is byte-identical to that file; to refresh it, copy the file again and re-add them.
"""Deterministic synthetic corpus generator for backup benchmarks (stdlib only).

Usage:
  make_corpus.py --out DIR --seed N --profile tree,large,image --scale S
  make_corpus.py --out DIR --seed N --mutate          # deterministic change set

Profiles (sizes at --scale 1):
  tree   ~20k files of 1-64 KiB (log-uniform) in nested dirs, ~300 MB of
         text-like data: shared boilerplate headers, ~3% exact duplicate files.
  large  4 binary files of 64-256 MiB (mix of incompressible random, text,
         structured records, zero runs, intra- and cross-file repeated segments)
         plus a 32 MiB log file; ~600 MB.
  image  one 1 GiB raw "disk image": sparse holes, zero runs, embedded
         4 KiB-aligned copies of tree-profile files and large-profile segments,
         random and text regions.

--mutate (on an existing corpus, for each profile present):
  tree   edit 1% of files, delete 0.5%, add 0.5% new files
  large  insert 1-16 bytes at 3 random offsets in the middle of every .bin file
         (tests content-defined chunking shift resistance); append ~2% to the log
  image  rewrite 2% of 4 KiB blocks, in clustered runs of 1-256 blocks

Same --seed/--profile/--scale always gives byte-identical output; --mutate
with the same seed always applies the same change set.
"""
import argparse
import hashlib
import os
import random
import sys
import time

KiB = 1024
MiB = 1024 * KiB
BLOCK = 4 * KiB
EPOCH = 1704067200  # 2024-01-01T00:00:00Z, fixed mtimes for reproducibility

SYLL = ["ka", "to", "ri", "en", "al", "or", "de", "mi", "su", "ne", "ba", "lo",
        "qu", "ex", "th", "in", "er", "an", "st", "re", "co", "ve", "pa", "ti"]
CODE = ["def", "return", "self", "import", "class", "if", "else", "for", "in",
        "None", "True", "False", "=", "==", "(", ")", "{", "}", "[", "]", ":",
        "->", "int", "str", "bytes", "async", "await", "yield", "with", "try",
        "except", "raise", "#", "//", "/*", "*/", "const", "let", "var", "fn"]
EXTS = [".py", ".txt", ".md", ".json", ".c", ".h", ".html", ".csv", ".yaml", ".rst"]


def rng(*parts):
    return random.Random("/".join(str(p) for p in parts))


class Gen:
    """All content is a pure function of (seed, name): ordering-independent."""

    def __init__(self, seed):
        self.seed = seed
        self.pool = hashlib.shake_128(b"tiervault-pool-%d" % seed).digest(64 * MiB)
        self.text = self._text_pool(16 * MiB)
        r = rng(seed, "headers")
        self.headers = [self._header(r, i) for i in range(24)]
        r = rng(seed, "library")
        # segments shared between large files and the image (cross-file dedup)
        self.library = [self.mixed(r, r.randint(1, 4) * MiB) for _ in range(8)]

    # -- primitives -------------------------------------------------------
    def _text_pool(self, n):
        r = rng(self.seed, "textpool")
        vocab = ["".join(r.choices(SYLL, k=r.randint(1, 4))) for _ in range(6000)]
        vocab += CODE
        weights = [1.0 / (i + 1) for i in range(len(vocab))]
        r.shuffle(vocab)
        out, size = [], 0
        while size < n:
            words = r.choices(vocab, weights, k=20000)
            lines = []
            i = 0
            while i < len(words):
                k = r.randint(4, 14)
                lines.append(" " * (4 * r.randint(0, 3)) + " ".join(words[i:i + k]))
                i += k
            s = ("\n".join(lines) + "\n").encode()
            out.append(s)
            size += len(s)
        return b"".join(out)[:n]

    def _header(self, r, i):
        body = self.textish(r, r.randint(300, 2000))
        return (b"# ---- generated header %d ----\n# Copyright (c) 2024 Example Corp.\n"
                b"# SPDX-License-Identifier: Apache-2.0\n" % i) + body + b"# ----\n"

    def rand(self, r, n):
        """Incompressible, non-repeating bytes (pool XOR pool at random shifts)."""
        out = bytearray()
        pool = self.pool
        while n > 0:
            k = min(n, 4 * MiB)
            a = r.randrange(len(pool) - k)
            b = r.randrange(len(pool) - k)
            c = r.getrandbits(64) | 1
            x = int.from_bytes(pool[a:a + k], "little") ^ int.from_bytes(pool[b:b + k], "little")
            out += (x ^ c).to_bytes(k, "little")
            n -= k
        return bytes(out)

    def textish(self, r, n):
        """Text-like bytes: line-aligned pieces of the text pool + unique id lines."""
        t = self.text
        out, size = [], 0
        while size < n:
            if r.random() < 0.08:
                s = b"id=%016x seq=%d val=%.4f\n" % (r.getrandbits(64), r.getrandbits(20), r.random())
            else:
                a = r.randrange(len(t) - 8192)
                a = t.find(b"\n", a) + 1
                s = t[a:a + r.randint(128, 4096)]
            out.append(s)
            size += len(s)
        return b"".join(out)[:n]

    def records(self, r, n):
        """Structured db-page-like data: fixed layout, random fields (~2x compressible)."""
        out, size = [], 0
        while size < n:
            page = bytearray(b"PAGE" + r.getrandbits(32).to_bytes(4, "little") + bytes(56))
            while len(page) < BLOCK - 64:
                page += (b"\x01\x00rec" + r.getrandbits(64).to_bytes(8, "little")
                         + r.randint(0, 999).to_bytes(4, "little") + b"\x00" * 6
                         + r.choice([b"active  ", b"deleted ", b"pending "]))
            page = bytes(page[:BLOCK])
            out.append(page)
            size += BLOCK
        return b"".join(out)[:n]

    def mixed(self, r, n):
        out, size = [], 0
        while size < n:
            k = min(n - size, r.randint(64 * KiB, 1 * MiB))
            out.append(self.rand(r, k) if r.random() < 0.5 else self.textish(r, k))
            size += k
        return b"".join(out)

    # -- tree ---------------------------------------------------------------
    def tree_size(self, i):
        r = rng(self.seed, "tsize", i)
        return int(2 ** r.uniform(10, 16))  # 1..64 KiB log-uniform

    def tree_file(self, i):
        r = rng(self.seed, "tree", i)
        if i > 50 and r.random() < 0.03:  # exact duplicate of an earlier file
            return self.tree_file(r.randrange(i))
        n = self.tree_size(i)
        parts = []
        if r.random() < 0.7:
            parts.append(self.headers[min(int(r.expovariate(0.3)), 23)])
        body = self.textish(r, max(0, n - sum(len(p) for p in parts)))
        parts.append(body)
        return b"".join(parts)[:max(n, 64)]

    def tree_path(self, i, ndirs):
        r = rng(self.seed, "tpath", i)
        d = r.randrange(ndirs)
        return self.dir_path(d) + "/f%05d_%s%s" % (i, self.word(rng(self.seed, "fw", i)), r.choice(EXTS))

    def dir_path(self, d):
        parts = []
        while True:
            r = rng(self.seed, "dir", d)
            parts.append("d%04d_%s" % (d, self.word(r)))
            if d == 0:
                break
            d = r.randrange(0, d) if d > 8 and len(parts) < 4 else 0
        return "/".join(reversed(parts))

    def word(self, r):
        return "".join(r.choices(SYLL, k=r.randint(1, 3)))

    # -- large ----------------------------------------------------------------
    def large_file(self, name, n):
        r = rng(self.seed, "large", name)
        buf = bytearray()
        while len(buf) < n:
            k = min(n - len(buf), r.randint(64 * KiB, 8 * MiB))
            p = r.random()
            if p < 0.45:
                buf += self.rand(r, k)
            elif p < 0.65:
                buf += self.textish(r, k)
            elif p < 0.75:
                buf += self.records(r, k)
            elif p < 0.80:
                buf += bytes(k)
            elif p < 0.90 and len(buf) > 2 * MiB:  # intra-file repeat
                a = r.randrange(len(buf) - MiB)
                buf += buf[a:a + min(k, len(buf) - a)]
            else:  # cross-file repeat from the shared library
                buf += r.choice(self.library)
        return bytes(buf[:n])

    def log_lines(self, r, n, t0):
        lvl = ["INFO ", "INFO ", "INFO ", "DEBUG", "WARN ", "ERROR"]
        paths = ["/api/v1/items", "/api/v1/users", "/healthz", "/api/v2/search", "/static/app.js"]
        out, size, t = [], 0, t0
        while size < n:
            t += r.randint(1, 900)
            s = ("%s.%03dZ %s [worker-%d] req=%016x %s %s status=%d dur=%dms\n" % (
                time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(EPOCH + t // 1000)), t % 1000,
                r.choice(lvl), r.randint(0, 15), r.getrandbits(64), r.choice(["GET", "POST", "PUT"]),
                r.choice(paths), r.choice([200, 200, 200, 201, 304, 404, 500]), r.randint(1, 4000))).encode()
            out.append(s)
            size += len(s)
        return b"".join(out), t


LARGE = [("vm-archive.bin", 256), ("dataset.bin", 128), ("media.bin", 96), ("db.sqlite", 64)]
LOG_MIB = 32


def write(path, data, mtime=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def make_tree(g, out, scale):
    nfiles = max(10, round(20000 * scale))
    ndirs = max(3, nfiles // 15)
    total = 0
    for i in range(nfiles):
        data = g.tree_file(i)
        write(os.path.join(out, "tree", g.tree_path(i, ndirs)), data, EPOCH + i)
        total += len(data)
    return nfiles, total


def make_large(g, out, scale):
    total = 0
    for name, mib in LARGE:
        n = max(MiB, int(mib * MiB * scale))
        data = g.large_file(name, n)
        write(os.path.join(out, "large", name), data, EPOCH)
        total += len(data)
    data, _ = g.log_lines(rng(g.seed, "log"), max(MiB // 4, int(LOG_MIB * MiB * scale)), 0)
    write(os.path.join(out, "large", "logs", "app.log"), data, EPOCH)
    return len(LARGE) + 1, total + len(data)


def make_image(g, out, scale):
    n = max(16 * MiB, int(1024 * MiB * scale)) // BLOCK * BLOCK
    r = rng(g.seed, "image")
    path = os.path.join(out, "image", "disk.img")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ntree = max(10, round(20000 * scale))
    written = 0
    with open(path, "wb") as f:
        pos = 0
        while pos < n:
            k = min(n - pos, r.randint(1, 64) * MiB)
            p = r.random()
            if p < 0.30:  # hole (sparse)
                pos += k
                continue
            if p < 0.40:
                data = bytes(k)  # explicit zero run
            elif p < 0.65:  # filesystem-like: 4 KiB aligned copies of tree files
                parts, size = [], 0
                while size < k:
                    d = g.tree_file(r.randrange(ntree))
                    d += bytes(-len(d) % BLOCK)
                    parts.append(d)
                    size += len(d)
                data = b"".join(parts)[:k]
            elif p < 0.85:
                data = g.rand(r, k)
            elif p < 0.95:
                data = g.textish(r, k)
            else:
                parts, size = [], 0
                while size < k:
                    d = r.choice(g.library)
                    parts.append(d)
                    size += len(d)
                data = b"".join(parts)[:k]
            f.seek(pos)
            f.write(data)
            written += len(data)
            pos += k
        f.truncate(n)
    os.utime(path, (EPOCH, EPOCH))
    return 1, n


# -- mutation ---------------------------------------------------------------
def list_files(root):
    res = []
    for dp, dn, fn in os.walk(root):
        dn.sort()
        for f in sorted(fn):
            res.append(os.path.join(dp, f))
    res.sort()
    return res


def mutate(g, out, seed):
    r = rng(seed, "mutate")
    stats = {}
    troot = os.path.join(out, "tree")
    if os.path.isdir(troot):
        files = list_files(troot)
        n = len(files)
        pick = r.sample(range(n), max(3, n * 2 // 100))
        n_edit, n_del = max(1, n // 100), max(1, n // 200)
        edit, dele = pick[:n_edit], pick[n_edit:n_edit + n_del]
        for i in edit:
            p = files[i]
            with open(p, "rb") as f:
                data = f.read()
            mode = r.random()
            new = g.textish(r, r.randint(16, 2048))
            if mode < 0.4:
                data = data + new
            elif mode < 0.7:
                a = r.randrange(len(data) + 1)
                b = min(len(data), a + r.randint(0, 512))
                data = data[:a] + new + data[b:]
            else:
                data = new + data
            write(p, data)
        for i in dele:
            os.unlink(files[i])
        dirs = sorted({os.path.dirname(p) for p in files})
        n_add = max(1, n // 200)
        for k in range(n_add):
            d = r.choice(dirs)
            data = g.textish(r, int(2 ** r.uniform(10, 16)))
            write(os.path.join(d, "new_s%d_%05d%s" % (seed, k, r.choice(EXTS))), data)
        stats["tree"] = "edited %d, deleted %d, added %d of %d files" % (len(edit), len(dele), n_add, n)
    lroot = os.path.join(out, "large")
    if os.path.isdir(lroot):
        msgs = []
        for p in list_files(lroot):
            if p.endswith(".bin") or p.endswith(".sqlite"):
                with open(p, "rb") as f:
                    data = f.read()
                offs = sorted(r.randrange(len(data) // 4, 3 * len(data) // 4) for _ in range(3))
                parts, last = [], 0
                for o in offs:
                    parts.append(data[last:o])
                    parts.append(r.randbytes(r.randint(1, 16)))
                    last = o
                parts.append(data[last:])
                write(p, b"".join(parts))
                msgs.append("%s +3 inserts" % os.path.basename(p))
            elif p.endswith(".log"):
                sz = os.path.getsize(p)
                data, _ = g.log_lines(r, max(4 * KiB, sz // 50), 10 ** 9 + r.randint(0, 10 ** 6))
                with open(p, "ab") as f:
                    f.write(data)
                msgs.append("%s +%d bytes appended" % (os.path.basename(p), len(data)))
        stats["large"] = ", ".join(msgs)
    ipath = os.path.join(out, "image", "disk.img")
    if os.path.exists(ipath):
        n = os.path.getsize(ipath) // BLOCK
        target = max(1, n * 2 // 100)
        done = 0
        with open(ipath, "r+b") as f:
            while done < target:
                run = min(target - done, r.randint(1, 256))
                b = r.randrange(0, n - run + 1)
                f.seek(b * BLOCK)
                f.write(g.rand(r, run * BLOCK) if r.random() < 0.6 else g.textish(r, run * BLOCK))
                done += run
        stats["image"] = "rewrote %d of %d 4KiB blocks in clustered runs" % (done, n)
    return stats


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--profile", default="tree,large",
                    help="comma list of tree,large,image or 'all' (default tree,large)")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--mutate", action="store_true",
                    help="apply the deterministic change set for --seed to the corpus in --out")
    a = ap.parse_args()
    t0 = time.time()
    profiles = ["tree", "large", "image"] if a.profile == "all" else a.profile.split(",")
    # the generator's base content depends only on the corpus seed; a mutation
    # uses its own seed for the change set (content pool stays seed 1-based)
    if a.mutate:
        g = Gen(int(open(os.path.join(a.out, ".corpus_seed")).read()) if os.path.exists(
            os.path.join(a.out, ".corpus_seed")) else a.seed)
        for k, v in mutate(g, a.out, a.seed).items():
            print("mutate %-5s %s" % (k, v))
        print("mutate done in %.1fs" % (time.time() - t0))
        return
    g = Gen(a.seed)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, ".corpus_seed"), "w") as f:
        f.write(str(a.seed))
    fn = {"tree": make_tree, "large": make_large, "image": make_image}
    for p in profiles:
        t1 = time.time()
        nfiles, nbytes = fn[p](g, a.out, a.scale)
        print("%-5s files=%d bytes=%d (%.1f MB) in %.1fs" % (p, nfiles, nbytes, nbytes / 1e6, time.time() - t1))
    print("done in %.1fs" % (time.time() - t0))


if __name__ == "__main__":
    sys.exit(main())
