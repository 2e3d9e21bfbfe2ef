"""The executor writes through the ``RestoreTarget`` protocol only: a target that keeps files in memory
(as later stream and memory targets will) receives exactly the point's content."""

from __future__ import annotations

import threading
from pathlib import Path

import tiervault
from tests.support.trees import File, HardLink, Symlink, build_tree
from tiervault.core.format.tree import Node
from tiervault.restore import Restorer
from tiervault.restore.files import RestoreFile


class MemoryTarget:
    """Files as byte strings, directories and other entries as names; nothing touches the disk."""

    def __init__(self) -> None:
        self.files: dict[bytes, bytearray] = {}
        self.dirs: list[bytes] = []
        self.others: dict[bytes, str] = {}
        self.links: dict[bytes, bytes] = {}
        self.dir_metas: list[bytes] = []
        self._lock = threading.Lock()
        self._written = 0

    @property
    def name(self) -> str:
        return "memory"

    @property
    def files_written(self) -> int:
        return self._written

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def make_dir(self, rel: bytes) -> None:
        self.dirs.append(rel)

    def unchanged(self, f: RestoreFile) -> bool:
        return False

    def write(self, f: RestoreFile, data: bytes, offset: int) -> int:
        buf = self.files.setdefault(f.rel, bytearray(f.node.size))
        buf[offset : offset + len(data)] = data
        f.remaining -= 1
        if f.remaining == 0:
            f.done = True
            with self._lock:
                self._written += 1
        return len(data)

    def discard(self, f: RestoreFile) -> None:
        self.files.pop(f.rel, None)

    def leave_unfinished(self, f: RestoreFile) -> None:
        self.discard(f)

    def finish_empty(self, f: RestoreFile) -> None:
        self.files[f.rel] = bytearray(f.node.size)

    def link(self, f: RestoreFile, first: RestoreFile) -> None:
        self.links[f.rel] = first.rel

    def make_other(self, rel: bytes, node: Node) -> None:
        self.others[rel] = node.type

    def dir_meta(self, rel: bytes, node: Node) -> None:
        self.dir_metas.append(rel)

    def verify(self, f: RestoreFile) -> bool:
        buf = self.files.get(self.links.get(f.rel, f.rel))
        return buf is not None and len(buf) == f.node.size


async def test_a_restore_into_a_memory_target(vault: tiervault.Vault, tmp_path: Path) -> None:
    big = bytes(range(256)) * 40_000  # several chunks
    build_tree(
        tmp_path / "src",
        {
            "a/big.bin": File(big),
            "a/small.txt": File(b"small"),
            "empty": File(b""),
            "hard": HardLink("a/small.txt"),
            "sym": Symlink("a/small.txt"),
        },
    )
    await vault.protect(tmp_path / "src", name="src")
    point = (await vault.snapshot("src")).point
    target = MemoryTarget()
    restorer = Restorer(vault._repo, await vault._record(point), target, verify=True)
    stats, errors = await restorer.run()
    assert errors == []
    assert bytes(target.files[b"a/big.bin"]) == big and bytes(target.files[b"a/small.txt"]) == b"small"
    assert target.files[b"empty"] == b"" and target.links == {b"hard": b"a/small.txt"}
    assert target.others == {b"sym": "symlink"} and target.dirs == [b"a"]
    assert target.dir_metas == [b"a", b""]  # deepest first, the root last
    assert (stats.files_written, stats.hardlinks, stats.symlinks, stats.files_verified) == (2, 1, 1, 4)
    assert stats.bytes_written == len(big) + 5
    assert not (tmp_path / "memory").exists()
