"""Files that change under the archiver: swapped for a FIFO or a symlink between listing and reading,
truncated while being read, or changing on every read (issue 9, defects 2 and 5).

The changes are made from real hook points the archiver calls at the right moment: ``stat_json``
(after the listing, before the read, as in ``test_partial.py``) and ``RangeReader.readinto`` (the
read itself), never by replacing the code under test.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

import tiervault
from tests.e2e import PASSWORD, MiB, open_vault
from tests.support.trees import File, assert_trees_equal, build_tree, filter_tree, snapshot_tree
from tiervault import cli
from tiervault.core.format import FormatError
from tiervault.repo.snapshots import SnapshotRecord
from tiervault.sources.folder import RangeReader, stat_json
from tiervault.sources.reading import FileChanged, open_regular

#: a guard only: a correct snapshot of this tiny tree takes milliseconds; the old code hung forever
HANG_GUARD_S = 120.0


def _swap_after_listing(
    monkeypatch: pytest.MonkeyPatch, victim: bytes, swap: Callable[[bytes], None]
) -> list[bytes]:
    """Replace ``victim`` by something else once the walker has listed and stat-ed it."""
    swapped: list[bytes] = []

    def stat_then_swap(path, name, st, **kwargs):  # type: ignore[no-untyped-def]
        node = stat_json(path, name, st, **kwargs)
        if name == victim:
            swap(path)
            swapped.append(path)
        return node

    monkeypatch.setattr("tiervault.archiver.walker.stat_json", stat_then_swap)
    return swapped


async def _snapshot_or_unblock(vault: tiervault.Vault, fifo: Path) -> tiervault.SnapshotResult:
    """The snapshot, or a failure if it blocks on the FIFO (then a writer releases the stuck reader,
    so that the test run itself does not hang)."""
    task = asyncio.ensure_future(vault.snapshot("src"))
    done, _ = await asyncio.wait({task}, timeout=HANG_GUARD_S)
    if not done:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # a reader is blocked in open(): this frees it
        os.close(fd)
        await asyncio.wait({task})
        pytest.fail("the snapshot blocked opening a FIFO that replaced a listed file")
    return task.result()


async def test_file_swapped_for_a_fifo_is_recorded_not_waited_for(
    vault: tiervault.Vault, repo_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    build_tree(src, {"a.txt": File(b"a"), "victim.bin": File(b"v" * 5000), "z.txt": File(b"z")})
    expected = filter_tree(snapshot_tree(src), lambda p: p != b"victim.bin")
    await vault.protect(src, name="src")

    def to_fifo(path: bytes) -> None:
        os.unlink(path)
        os.mkfifo(path)

    swapped = _swap_after_listing(monkeypatch, b"victim.bin", to_fifo)
    result = await _snapshot_or_unblock(vault, src / "victim.bin")
    assert swapped, "the hook was never called"
    assert [e["path"] for e in result.errors] == ["victim.bin"]
    assert "fifo" in result.errors[0]["error"]
    assert result.partial and result.stats.files_read == 2
    out = tmp_path / "out"
    assert (await vault.restore(result.point, out, verify=True)).ok
    expected.pop(b".")
    got = snapshot_tree(out)
    got.pop(b".")
    assert_trees_equal(expected, got)


async def test_file_swapped_for_a_symlink_is_not_followed(
    vault: tiervault.Vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"outside the source")
    build_tree(src, {"victim.bin": File(b"v" * 5000)})
    await vault.protect(src, name="src")

    def to_symlink(path: bytes) -> None:
        os.unlink(path)
        os.symlink(secret, path)

    _swap_after_listing(monkeypatch, b"victim.bin", to_symlink)
    result = await vault.snapshot("src")
    assert [e["path"] for e in result.errors] == ["victim.bin"]
    assert "symlink" in result.errors[0]["error"]
    assert [e.path for e in await vault.ls(result.point, recursive=True)] == []


def test_open_regular_refuses_what_is_no_longer_the_listed_file(tmp_path: Path) -> None:
    """The reading primitive itself, on the path of a listed file that became a FIFO (same name, and
    the listed inode): no blocking, a clear ``FileChanged``."""
    path = os.fsencode(tmp_path / "f")
    Path(os.fsdecode(path)).write_bytes(b"x")
    st = os.lstat(path)
    os.unlink(path)
    os.mkfifo(path)
    with pytest.raises(FileChanged, match="fifo"):
        open_regular(path, st.st_ino, st.st_dev)
    os.unlink(path)
    os.mkdir(path)
    with pytest.raises(FileChanged, match="directory"):
        open_regular(path, os.lstat(path).st_ino, st.st_dev)
    os.rmdir(path)
    Path(os.fsdecode(path)).write_bytes(b"y")
    other = os.lstat(path)
    os.link(path, tmp_path / "keep")  # the file stays alive, so its inode cannot be reused
    os.unlink(path)
    Path(os.fsdecode(path)).write_bytes(b"z")  # another regular file under the listed name
    with pytest.raises(FileChanged, match="replaced"):
        open_regular(path, other.st_ino, other.st_dev)
    os.unlink(path)
    os.link(tmp_path / "keep", path)  # the listed file itself again
    fd, now = open_regular(path, other.st_ino, other.st_dev)
    os.close(fd)
    assert now.st_size == 1


def _mutate_on_read(monkeypatch: pytest.MonkeyPatch, path: Path, change: Callable[[int], None]) -> list[int]:
    """Call ``change(n)`` right after the n-th pass over ``path`` read its first block (a pass is one
    read of the whole file; the n-th starts at offset 0 for the n-th time)."""
    target = os.stat(path)
    passes: list[int] = []
    real = RangeReader.readinto

    def readinto(self: RangeReader, buf: memoryview) -> int:
        first = self._pos == 0  # a test hook on the reading primitive
        got = real(self, buf)
        st = os.fstat(self._fd)
        if first and (st.st_ino, st.st_dev) == (target.st_ino, target.st_dev):
            passes.append(got)
            change(len(passes))
        return got

    monkeypatch.setattr(RangeReader, "readinto", readinto)
    return passes


def _set_mtime(path: Path, k: int) -> None:
    """A distinct mtime per change, whatever the file system's timestamp granularity."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, 1_600_000_000_000_000_000 + k * 1_000_000_000))


async def test_file_truncated_while_read_is_read_again(
    vault: tiervault.Vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20 MiB truncated to 5 MiB of new content after the first 16 MiB were read: the old code stored
    16 MiB (11 of them stale) with no flag; now the change is seen and the file read again."""
    src = tmp_path / "src"
    rnd = random.Random(11)
    build_tree(src, {"big.bin": File(rnd.randbytes(20 * MiB)), "small.txt": File(b"small")})
    await vault.protect(src, name="src")
    big = src / "big.bin"
    new_content = rnd.randbytes(5 * MiB)

    def truncate(n: int) -> None:
        if n == 1:
            with open(big, "r+b") as f:
                f.truncate(5 * MiB)
                f.seek(0)
                f.write(new_content)
            _set_mtime(big, 1)

    passes = _mutate_on_read(monkeypatch, big, truncate)
    result = await vault.snapshot("src")
    assert len(passes) == 2, "the changed file was not read again"
    assert passes[0] == 16 * MiB
    assert result.errors == () and result.warnings == ()
    [entry] = [e for e in await vault.ls(result.point) if e.name == "big.bin"]
    assert entry.size == 5 * MiB
    out = tmp_path / "out"
    assert (await vault.restore(result.point, out, paths=["big.bin"], verify=True)).ok
    assert (out / "big.bin").read_bytes() == new_content


async def test_file_changing_on_every_read_is_stored_with_a_warning(
    vault: tiervault.Vault, repo_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    rnd = random.Random(12)
    build_tree(src, {"log.bin": File(rnd.randbytes(3 * MiB)), "calm.txt": File(b"calm")})
    await vault.protect(src, name="src")
    log = src / "log.bin"

    def shrink(n: int) -> None:  # each pass sees the file lose another MiB
        os.truncate(log, (3 - n) * MiB)
        _set_mtime(log, n)

    passes = _mutate_on_read(monkeypatch, log, shrink)
    result = await vault.snapshot("src")
    assert len(passes) == 2, "read once and again, then stored as read"
    assert result.errors == () and not result.partial
    assert [w["path"] for w in result.warnings] == ["log.bin"]
    assert "changed while" in result.warnings[0]["warning"]
    assert list(result.point.warnings) == list(result.warnings)
    # what was read the second time (2 MiB), never the size the file had when listed (3 MiB)
    [entry] = [e for e in await vault.ls(result.point) if e.name == "log.bin"]
    assert entry.size == 2 * MiB
    async with open_vault(repo_path) as again:  # stored in the point, for a fresh session too
        [stored] = await again.points("src")
        assert [w["path"] for w in stored.warnings] == ["log.bin"]
    monkeypatch.undo()

    # the next snapshot reads it again (its ctime moved on) and has nothing to warn about
    later = await vault.snapshot("src")
    assert later.warnings == () and later.stats.files_read == 1
    out = tmp_path / "out"
    assert (await vault.restore(later.point, out, verify=True)).ok
    assert (out / "log.bin").read_bytes() == log.read_bytes()


def test_cli_prints_the_warnings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo, src = tmp_path / "repo", tmp_path / "src"
    build_tree(src, {"log.bin": File(random.Random(13).randbytes(3 * MiB))})
    monkeypatch.setenv("TIERVAULT_REPOSITORY", str(repo))
    monkeypatch.setenv("TIERVAULT_PASSWORD", PASSWORD)
    monkeypatch.delenv("TIERVAULT_PASSWORD_FILE", raising=False)
    assert cli.main(["init", "--kdf-log-n", "10"]) == 0
    assert cli.main(["protect", str(src), "--name", "src"]) == 0
    log = src / "log.bin"

    def grow(n: int) -> None:
        with open(log, "ab") as f:
            f.write(b"more")
        _set_mtime(log, n)

    _mutate_on_read(monkeypatch, log, grow)
    capsys.readouterr()
    assert cli.main(["snapshot", "src"]) == 0
    text = capsys.readouterr().out
    assert "log.bin" in text and "changed while" in text
    assert cli.main(["snapshot", "src", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [w["path"] for w in doc["warnings"]] == ["log.bin"]
    assert doc["point"]["warnings"] == doc["warnings"]


def test_snapshot_record_warnings_are_optional_in_the_stored_json() -> None:
    """``warnings`` is written only when there are some; a point without it (every point written
    before it existed) reads as having none."""
    rec = SnapshotRecord("i", "2026-01-01T00:00:00.000000000Z", "h", "u", "/s", "ab" * 32, {"type": "dir"})
    stored = rec.to_json()
    assert "warnings" not in stored
    assert SnapshotRecord.from_json(stored, "x").warnings == []
    rec.warnings = [{"path": "log.bin", "warning": "changed"}]
    again = SnapshotRecord.from_json(rec.to_json(), "x")
    assert again.warnings == [{"path": "log.bin", "warning": "changed"}]
    with pytest.raises(FormatError):
        SnapshotRecord.from_json({**stored, "warnings": [1]}, "x")
