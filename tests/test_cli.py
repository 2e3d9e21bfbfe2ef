"""The ``tiervault`` command line, run in-process through ``main`` (plus one run of the console script)."""

from __future__ import annotations

import argparse
import ast
import errno
import getpass
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import tiervault
from tests.support.azurite import Azurite, unique_container_name
from tiervault import cli
from tiervault.cli import ExitCode, context, exit_code_for, main, output, passwords

PASSWORD = "correct horse"
FAST_KDF = ("--kdf-log-n", "10")


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Run = Callable[..., Result]


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the repository goes; the environment points there, with the password set."""
    path = tmp_path / "repo"
    monkeypatch.setenv("TIERVAULT_REPOSITORY", str(path))
    monkeypatch.setenv("TIERVAULT_PASSWORD", PASSWORD)
    for var in ("TIERVAULT_PASSWORD_FILE", "TIERVAULT_NEW_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # never a terminal: no prompt unless a test says so
    return path


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    def go(*argv: str) -> Result:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        assert isinstance(code, int)
        return Result(code, captured.out, captured.err)

    return go


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "docs" / "deep").mkdir(parents=True)
    (src / "hello.txt").write_text("hello, world\n")
    (src / "docs" / "report.txt").write_text("quarterly numbers\n" * 100)
    (src / "docs" / "deep" / "blob.bin").write_bytes(os.urandom(200_000))
    (src / "link").symlink_to("hello.txt")
    return src


@pytest.fixture
def vault(repo: Path, source: Path, run: Run) -> Path:
    """An initialised repository with ``source`` protected as item ``src``."""
    assert run("init", *FAST_KDF).code == 0
    assert run("protect", str(source), "--name", "src").code == 0
    return repo


def snapshot_id(run: Run, *extra: str) -> str:
    res = run("snapshot", "src", "--json", *extra)
    assert res.code == 0, res.err
    point_id: str = res.json()["point"]["id"]
    return point_id


def tree(root: Path) -> dict[str, bytes | str]:
    """Every entry below ``root``: file contents, symlink targets and directories."""
    out: dict[str, bytes | str] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = p.read_bytes()
    return out


# ------------------------------------------------------------------------------------ the happy path


def test_init_protect_snapshot_points_ls_restore_check(
    repo: Path, source: Path, run: Run, tmp_path: Path
) -> None:
    res = run("init", *FAST_KDF, "--json")
    assert res.code == 0, res.err
    info = res.json()
    assert info["location"] == str(repo)
    assert len(info["repository_id"]) == 64
    assert (repo / "config").is_file()

    res = run(
        "protect", str(source), "--name", "src", "--keep-daily", "7", "--cool-after-days", "30", "--json"
    )
    assert res.code == 0, res.err
    assert res.json()["policy"] == {"keep_daily": 7, "cool_after_days": 30}
    assert res.json()["source"] == str(source)

    res = run("items", "--json")
    assert [i["name"] for i in res.json()] == ["src"]

    res = run("snapshot", "src", "--tag", "nightly", "--tag", "manual", "--json")
    assert res.code == 0, res.err
    snap = res.json()
    assert snap["partial"] is False and snap["errors"] == []
    assert snap["stats"]["files"] == 3
    assert snap["stats"]["bytes_total"] == 13 + 1800 + 200_000
    assert snap["point"]["tags"] == ["manual", "nightly"]
    first = snap["point"]["id"]

    # a second point reuses the unchanged files
    res = run("snapshot", "src", "--json")
    assert res.json()["stats"]["files_reused"] == 3
    second = res.json()["point"]["id"]

    # --json is a global flag: before or after the command
    for argv in (("--json", "points"), ("points", "--json")):
        res = run(*argv)
        assert res.code == 0, res.err
        assert [p["id"] for p in res.json()] == [first, second]
    assert [p["id"] for p in run("points", "--tag", "nightly", "--json").json()] == [first]
    assert run("points", "--item", "other", "--json").json() == []

    res = run("ls", first[:8], "--json")
    assert res.code == 0, res.err
    assert sorted(e["path"] for e in res.json()) == ["docs", "hello.txt", "link"]
    res = run("ls", "latest:src", "-R", "--json")
    by_path = {e["path"]: e for e in res.json()}
    assert set(by_path) == {"docs", "docs/deep", "docs/deep/blob.bin", "docs/report.txt", "hello.txt", "link"}
    assert by_path["docs/deep/blob.bin"]["size"] == 200_000
    assert by_path["link"]["type"] == "symlink" and by_path["link"]["target"] == "hello.txt"
    assert [e["path"] for e in run("ls", "latest", "docs/report.txt", "--json").json()] == ["docs/report.txt"]

    target = tmp_path / "restored"
    res = run("restore", first, "--target", str(target), "--verify", "--json")
    assert res.code == 0, res.err
    out = res.json()
    assert out["ok"] is True and out["point"] == first and out["target"] == str(target)
    assert out["stats"]["files_verified"] == 3
    assert tree(target) == tree(source)

    # selective restore
    part = tmp_path / "part"
    res = run("restore", "latest", "--target", str(part), "--path", "docs", "--exclude", "*.bin", "--json")
    assert res.code == 0, res.err
    assert sorted(tree(part)) == ["docs", "docs/deep", "docs/report.txt"]  # the directory, not its file

    res = run("check", "--read-data", "--json")
    assert res.code == 0, res.err
    assert res.json()["ok"] is True
    assert res.json()["snapshots"] == 2
    assert res.json()["packs_read"] >= 2


def test_an_azurite_repository(
    repo: Path, source: Path, run: Run, tmp_path: Path, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same commands with ``-r azurite://HOST:PORT/CONTAINER`` (Azurite: ``tests/conftest.py``);
    ``init`` creates the container. Restore and check run without the disk tier: from Azurite."""
    container = unique_container_name("cli")
    url = f"azurite://127.0.0.1:{azurite.port}/{container}"
    monkeypatch.setenv("TIERVAULT_CACHE_DIR", str(tmp_path / "cache"))  # never the user's own cache
    try:
        res = run("-r", url, "init", *FAST_KDF, "--json")
        assert res.code == 0, res.err
        assert res.json()["location"] == url
        assert run("-r", url, "protect", str(source), "--name", "src").code == 0
        res = run("-r", url, "snapshot", "src", "--json")
        assert res.code == 0, res.err
        assert res.json()["stats"]["files"] == 3
        point = res.json()["point"]["id"]

        target = tmp_path / "restored"
        res = run("-r", url, "--no-cache", "restore", point, "--target", str(target), "--verify", "--json")
        assert res.code == 0, res.err
        assert res.json()["ok"] is True and res.json()["stats"]["files_verified"] == 3
        assert tree(target) == tree(source)

        res = run("-r", url, "--no-cache", "check", "--read-data", "--json")
        assert res.code == 0, res.err
        assert res.json()["ok"] is True and res.json()["packs_read"] >= 2
        with azurite.service_client() as client:
            blobs = [b.name for b in client.get_container_client(container).list_blobs()]
        assert "config" in blobs and any(b.startswith("data/") for b in blobs)
        assert not repo.exists()  # -r wins over TIERVAULT_REPOSITORY

        res = run("-r", url, "init", *FAST_KDF)
        assert res.code == ExitCode.ERROR and "already exists" in one_error_line(res)
        missing = f"azurite://127.0.0.1:{azurite.port}/{unique_container_name('missing')}"
        res = run("-r", missing, "points")
        assert res.code == ExitCode.REPOSITORY_NOT_FOUND and missing in one_error_line(res)
    finally:
        azurite.delete_container(container)


def test_human_output(vault: Path, run: Run, tmp_path: Path) -> None:
    point = snapshot_id(run)
    res = run("points")
    assert res.code == 0 and point[:8] in res.out and "1 recovery point" in res.out
    res = run("items")
    assert "src" in res.out and "keep all" in res.out
    res = run("ls", "latest", "-R")
    assert "docs/deep/blob.bin" in res.out and "200,000" in res.out and "link -> hello.txt" in res.out
    assert "drwx" in res.out
    res = run("snapshot", "src")
    assert res.code == 0 and "saved" in res.out and "3 unchanged" in res.out
    res = run("restore", point[:8], "--target", str(tmp_path / "r"), "--verify")
    assert res.code == 0 and "3 verified" in res.out
    res = run("check")
    assert res.code == 0 and "no errors found" in res.out
    assert res.err == ""


def test_protect_without_policy_options_keeps_the_policy(vault: Path, source: Path, run: Run) -> None:
    assert run("protect", str(source), "--name", "src", "--keep-last", "3").code == 0
    res = run("protect", str(source), "--name", "src", "--json")
    assert res.code == 0, res.err
    assert res.json()["policy"] == {"keep_last": 3}
    res = run("protect", str(source), "--name", "src", "--keep-daily", "5", "--json")
    assert res.json()["policy"] == {"keep_daily": 5}  # given options replace the whole policy


# ------------------------------------------------------------------------------------ exit codes


def test_exit_code_table() -> None:
    assert exit_code_for(tiervault.TiervaultError("x")) == 1
    assert exit_code_for(tiervault.BackendError("x")) == 1
    assert exit_code_for(tiervault.ObjectNotFoundError("x")) == 1
    assert exit_code_for(tiervault.UsageError("x")) == 2
    assert exit_code_for(tiervault.NotFoundError("x")) == 2
    assert exit_code_for(tiervault.RepositoryNotFoundError("x")) == 10
    assert exit_code_for(tiervault.WrongPasswordError("x")) == 11
    assert exit_code_for(tiervault.IntegrityError("data/x", "bad")) == 12
    assert exit_code_for(tiervault.UnsupportedFormatError("x")) == 13
    assert exit_code_for(tiervault.ObjectArchivedError("x")) == 14
    assert exit_code_for(tiervault.RehydrationNeededError("x")) == 14
    assert exit_code_for(KeyboardInterrupt()) == 130
    assert exit_code_for(ValueError("x")) == 1
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 130]


def one_error_line(res: Result) -> str:
    lines = res.err.strip().splitlines()
    assert len(lines) == 1, res.err
    assert lines[0].startswith("tiervault: error: ")
    assert "Traceback" not in res.err
    return lines[0]


def test_wrong_password(vault: Path, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERVAULT_PASSWORD", "not the password")
    res = run("points")
    assert res.code == 11
    assert "wrong password" in one_error_line(res)
    assert res.out == ""


def test_missing_repository(repo: Path, run: Run, tmp_path: Path) -> None:
    res = run("points")
    assert res.code == 10
    assert str(repo) in one_error_line(res)
    assert not repo.exists()  # looking did not create it
    res = run("-r", str(tmp_path / "elsewhere"), "items")
    assert res.code == 10


def test_no_repository_given(repo: Path, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIERVAULT_REPOSITORY")
    res = run("points")
    assert res.code == 2
    assert "TIERVAULT_REPOSITORY" in one_error_line(res)


def test_repo_option_overrides_environment(vault: Path, run: Run, tmp_path: Path) -> None:
    other = tmp_path / "other"
    assert run("init", "-r", str(other), *FAST_KDF).code == 0
    assert (other / "config").is_file()
    assert run("points", "--repo", str(other), "--json").json() == []
    assert run("-r", str(other), "items", "--json").json() == []
    assert [i["name"] for i in run("items", "--json").json()] == ["src"]


def test_unsupported_format(repo: Path, run: Run) -> None:
    repo.mkdir()
    (repo / "config").write_bytes(b"this is not a tiervault config")
    res = run("items")
    assert res.code == 13
    one_error_line(res)


@pytest.mark.parametrize("log_n", ["9", "21", "22"])
def test_kdf_log_n_outside_scrypts_own_limits_is_refused(repo: Path, run: Run, log_n: str) -> None:
    res = run("init", "--kdf-log-n", log_n)
    assert res.code == 2
    assert "between 10 and 20" in one_error_line(res)
    assert not repo.exists()


def test_init_over_existing_repository(vault: Path, run: Run) -> None:
    res = run("init", *FAST_KDF)
    assert res.code == 1
    assert "already exists" in one_error_line(res)


def flip_byte(path: Path) -> None:
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_check_finds_a_corrupted_data_pack(vault: Path, run: Run) -> None:
    snapshot_id(run)
    packs = [p for p in (vault / "data").rglob("*") if p.is_file()]
    assert packs
    flip_byte(packs[0])
    # without --read-data, data packs are not read
    res = run("check", "--json")
    assert res.code == 0, res.err
    res = run("check", "--read-data", "--json")
    assert res.code == 12
    out = res.json()
    assert out["ok"] is False
    assert any(packs[0].name in e["object"] for e in out["errors"])
    res = run("check", "--read-data")
    assert res.code == 12 and "1 error" in res.out


def test_corrupted_snapshot_is_a_warning_and_a_check_error(vault: Path, run: Run) -> None:
    snapshot_id(run)
    [snap] = (vault / "snapshots").iterdir()
    flip_byte(snap)
    res = run("points", "--json")
    assert res.code == 0, res.err
    assert res.json() == []
    assert "warning" in res.err and f"snapshots/{snap.name}" in res.err
    res = run("snapshot", "src", "--json")  # the damaged point is no parent: the backup goes on
    assert res.code == 0, res.err
    assert res.json()["point"]["parent"] is None
    assert [p["id"] for p in run("points", "--json").json()] == [res.json()["point"]["id"]]
    res = run("check", "--json")
    assert res.code == 12
    assert [e["object"] for e in res.json()["errors"]] == [f"snapshots/{snap.name}"]


def test_check_warnings_have_their_own_heading_and_say_what_is_true(vault: Path, run: Run) -> None:
    """An unindexed pack (its index file lost, as after an interrupted snapshot) is a warning, printed
    under a "Warning" heading, and its advice holds: the next snapshot indexes it."""
    snapshot_id(run)
    for index in (vault / "index").iterdir():
        index.chmod(0o644)
        index.unlink()
    res = run("check", "--json")
    assert res.code == 12  # the point's chunks are in no index: errors, and the packs are warnings
    warnings = res.json()["warnings"]
    assert warnings and all("prune" not in w["warning"] for w in warnings)
    assert all("the next snapshot indexes it" in w["warning"] for w in warnings)
    text = run("check").out
    errors_at = text.index(" error")
    warning_part, error_part = text[:errors_at], text[errors_at:]
    assert "warning" in warning_part
    assert "Warning" in warning_part and "Error" not in warning_part
    assert "Error" in error_part and "Warning" not in error_part
    snapshot_id(run)  # indexes the packs it finds unindexed, as the warning says
    res = run("check", "--json")
    assert res.code == 0, res.out
    assert res.json()["warnings"] == []


def test_check_reports_unused_packs_with_their_bytes(vault: Path, source: Path, run: Run) -> None:
    """After a forget, the packs only the forgotten point read are unused: a summary line, and the
    list in --json; not an error (exit 0)."""
    snapshot_id(run)
    first = {
        p.relative_to(vault).as_posix()
        for k in ("data", "meta")
        for p in (vault / k).rglob("*")
        if p.is_file()
    }
    (source / "docs" / "deep" / "blob.bin").write_bytes(os.urandom(200_000))
    snapshot_id(run)
    assert "unused: 0 packs, 0 bytes" in run("check").out
    assert run("forget", "src", "--keep-last", "1").code == 0
    res = run("check", "--json")
    assert res.code == 0, res.out
    out = res.json()
    unused = {u["object"] for u in out["unused"]}
    assert unused and unused < first  # the old trees' pack (the small files are still read from theirs)
    assert out["unused_packs"] == len(out["unused"])
    assert out["unused_bytes"] == sum((vault / u["object"]).stat().st_size for u in out["unused"])
    text = run("check").out
    n = len(out["unused"])
    assert f"unused: {n} pack{'s' if n > 1 else ''}, {out['unused_bytes']:,} bytes" in text
    assert "no errors found" in text


def test_partial_snapshot(vault: Path, source: Path, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    unreadable = os.fsencode(source / "docs" / "report.txt")
    real_open = os.open

    def fake_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if os.fsencode(path) == unreadable:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr("tiervault.sources.reading.os.open", fake_open)
    res = run("snapshot", "src", "--json")
    assert res.code == 3
    out = res.json()  # the result is still printed
    assert out["partial"] is True
    assert out["errors"] == [{"path": "docs/report.txt", "error": "Permission denied"}]
    assert out["point"]["partial"] is True
    assert "tiervault: warning: skipped" in res.err  # the archiver's warning, concisely
    assert "Traceback" not in res.err
    # the point exists, without the unreadable file
    [point] = run("points", "--json").json()
    assert point["id"] == out["point"]["id"] and point["partial"] is True
    paths = {e["path"] for e in run("ls", "latest", "-R", "--json").json()}
    assert "docs/report.txt" not in paths and "hello.txt" in paths

    res = run("snapshot", "src")
    assert res.code == 3
    assert "PARTIAL" in res.out and "docs/report.txt" in res.out


def test_partial_restore(vault: Path, run: Run, tmp_path: Path) -> None:
    snapshot_id(run)
    target = tmp_path / "target"
    (target / "hello.txt" / "in-the-way").mkdir(parents=True)  # a non-empty directory where a file goes
    res = run("restore", "latest", "--target", str(target), "--json")
    assert res.code == 3
    out = res.json()
    assert out["ok"] is False
    assert [e["path"] for e in out["errors"]] == ["hello.txt"]
    assert (target / "docs" / "report.txt").is_file()
    assert out["stats"]["files"] == 3
    assert out["stats"]["files_written"] == 2  # what was written, not what was planned
    res = run("restore", "latest", "--target", str(target))
    assert res.code == 3
    assert "0 written, 2 unchanged" in res.out


def test_restore_into_a_read_only_target_is_an_error(vault: Path, run: Run, tmp_path: Path) -> None:
    snapshot_id(run)
    target = tmp_path / "read-only"
    target.mkdir()
    if os.geteuid() == 0:
        argv = ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(target)]
        if subprocess.run(argv, check=False).returncode != 0:
            pytest.skip("SKIPPED LOUDLY: as root, a read-only directory needs a mount, which failed")
    else:
        target.chmod(0o555)
    try:
        res = run("restore", "latest", "--target", str(target))
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(target)], check=True)
        target.chmod(0o755)
    assert res.code == ExitCode.ERROR, (res.out, res.err)
    assert "read-only" in res.err or "not writable" in res.err
    assert "Traceback" not in res.err


def test_restore_inside_the_protected_source_needs_force(
    vault: Path, run: Run, source: Path, tmp_path: Path
) -> None:
    snapshot_id(run)
    inside = source / "restored"
    res = run("restore", "latest", "--target", str(inside))
    assert res.code == ExitCode.USAGE
    assert "inside the protected source" in res.err and "--force" in res.err
    assert not inside.exists()
    res = run("restore", "latest", "--target", str(inside), "--force")
    assert res.code == ExitCode.OK, res.err
    assert "warning" in res.err and "inside the protected source" in res.err
    assert (inside / "hello.txt").read_text() == "hello, world\n"


def test_max_entries_bounds_restore_and_ls(vault: Path, run: Run, tmp_path: Path) -> None:
    """The source holds 6 entries (hello.txt, link, docs/, docs/report.txt, docs/deep/, .../blob.bin)."""
    snapshot_id(run)
    res = run("restore", "latest", "--target", str(tmp_path / "t"), "--max-entries", "5")
    assert res.code == ExitCode.USAGE and "--max-entries" in res.err and "6 entries" in res.err
    assert not (tmp_path / "t").exists()
    assert run("restore", "latest", "--target", str(tmp_path / "t"), "--max-entries", "6").code == 0
    # a path counts only what it selects: docs/ and the three entries below it
    res = run("restore", "latest", "--target", str(tmp_path / "d"), "--path", "docs", "--max-entries", "4")
    assert res.code == 0, res.err
    assert run("ls", "latest", "-R", "--max-entries", "5").code == ExitCode.USAGE
    assert len(run("ls", "latest", "-R", "--max-entries", "6", "--json").json()) == 6
    assert run("restore", "latest", "--target", str(tmp_path / "x"), "--max-entries", "0").code == 2


def test_usage_errors(vault: Path, run: Run, tmp_path: Path) -> None:
    res = run("protect", str(tmp_path / "missing"), "--name", "m")
    assert res.code == 2
    assert "does not exist" in one_error_line(res)
    assert run("snapshot", "no-such-item").code == 2
    assert run("ls", "ffffffff").code == 2
    assert run("ls", "latest").code == 2  # no points yet
    snapshot_id(run)
    assert run("ls", "latest", "no/such/path").code == 2
    assert run("restore", "latest", "--target", str(tmp_path / "t"), "--path", "nope").code == 2
    assert run("protect", str(tmp_path), "--name", "x", "--keep-daily", "-1").code == 2
    assert run("protect", str(tmp_path), "--name", "x", "--schedule", "daily").code == 2
    # argparse errors: one line, status 2
    for argv in (
        [],
        ["frobnicate"],
        ["snapshot"],
        ["restore", "latest"],
        ["points", "--bogus"],
        ["init", "--kdf-log-n", "5"],
        ["protect", ".", "--name", "x", "--keep-daily", "many"],
    ):
        res = run(*argv)
        assert res.code == 2, argv
        one_error_line(res)
    res = run("--help")
    assert res.code == 0 and "snapshot" in res.out
    res = run("init", "--help")
    assert res.code == 0 and "kdf" not in res.out  # hidden option
    res = run("--version")
    assert res.code == 0 and tiervault.__version__ in res.out


def test_keyboard_interrupt(vault: Path, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    async def interrupted(self: tiervault.Vault) -> list[tiervault.Item]:
        raise KeyboardInterrupt

    monkeypatch.setattr(tiervault.Vault, "items", interrupted)
    res = run("items")
    assert res.code == 130
    assert "interrupted" in one_error_line(res)


def test_unexpected_error_and_debug(vault: Path, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(self: tiervault.Vault) -> list[tiervault.Item]:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(tiervault.Vault, "items", broken)
    res = run("items")
    assert res.code == 1
    assert "ZeroDivisionError: boom" in one_error_line(res)
    res = run("items", "--debug")
    assert res.code == 1
    assert "Traceback" in res.err and res.err.rstrip().splitlines()[-1].startswith("tiervault: error:")

    monkeypatch.setenv("TIERVAULT_PASSWORD", "wrong")
    res = run("--debug", "points")
    assert res.code == 11 and "WrongPasswordError" in res.err


# ------------------------------------------------------------------------------------ passwords and keys


def test_password_file_and_environment(
    repo: Path, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pwfile = tmp_path / "pw"
    pwfile.write_bytes(b"from a file\n")
    monkeypatch.delenv("TIERVAULT_PASSWORD")
    assert run("init", *FAST_KDF, "--password-file", str(pwfile)).code == 0
    # exactly one trailing newline is stripped
    assert run("points", "--password-file", str(pwfile)).code == 0
    monkeypatch.setenv("TIERVAULT_PASSWORD", "from a file")
    assert run("points").code == 0
    monkeypatch.delenv("TIERVAULT_PASSWORD")
    monkeypatch.setenv("TIERVAULT_PASSWORD_FILE", str(pwfile))
    assert run("points").code == 0
    pwfile.write_bytes(b"from a file\n\n")
    assert run("points").code == 11
    res = run("points", "--password-file", str(tmp_path / "missing"))
    assert res.code == 2 and "password file" in one_error_line(res)


def test_no_password_without_a_terminal(vault: Path, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIERVAULT_PASSWORD")
    res = run("points")
    assert res.code == 2
    assert "TIERVAULT_PASSWORD" in one_error_line(res)


@pytest.fixture
def prompts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Answers for getpass, as if stdin were a terminal; the test appends them."""
    answers: list[str] = []
    asked: list[str] = []

    def fake_getpass(prompt: str = "Password: ", stream: Any = None) -> str:
        asked.append(prompt)
        return answers.pop(0)

    monkeypatch.delenv("TIERVAULT_PASSWORD", raising=False)
    monkeypatch.setattr(passwords, "stdin_is_tty", lambda: True)
    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    yield answers
    assert not answers, "not every prepared answer was asked for"


def test_prompt_asks_twice_on_init(repo: Path, run: Run, prompts: list[str]) -> None:
    prompts += ["secret", "secrte"]
    res = run("init", *FAST_KDF)
    assert res.code == 2 and "do not match" in one_error_line(res)
    assert not repo.exists()
    prompts += ["secret", "secret"]
    assert run("init", *FAST_KDF).code == 0
    prompts += ["secret"]  # opening asks once
    assert run("points", "--json").json() == []
    prompts += ["wrong"]
    assert run("points").code == 11


def test_key_add_list_remove_passwd(
    vault: Path, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = run("key", "list", "--json").json()
    assert len(keys) == 1 and keys[0]["current"] is True
    original = keys[0]["id"]

    monkeypatch.setenv("TIERVAULT_NEW_PASSWORD", "second password")
    res = run("key", "add", *FAST_KDF, "--json")
    assert res.code == 0, res.err
    added = res.json()["id"]
    assert {k["id"] for k in run("key", "list", "--json").json()} == {original, added}
    assert "*" in run("key", "list").out

    # the new password opens the repository too, with its own key current
    monkeypatch.setenv("TIERVAULT_PASSWORD", "second password")
    assert [k["id"] for k in run("key", "list", "--json").json() if k["current"]] == [added]
    # the key in use cannot be removed
    res = run("key", "remove", added[:12])
    assert res.code == 2
    one_error_line(res)
    assert run("key", "remove", "zzzz").code == 2
    res = run("key", "remove", original[:12], "--json")
    assert res.code == 0, res.err
    assert res.json() == {"removed": [original]}
    monkeypatch.setenv("TIERVAULT_PASSWORD", PASSWORD)
    assert run("points").code == 11

    # passwd replaces the key in use
    monkeypatch.setenv("TIERVAULT_PASSWORD", "second password")
    newpw = tmp_path / "newpw"
    newpw.write_text("third password\n")
    monkeypatch.delenv("TIERVAULT_NEW_PASSWORD")
    res = run("key", "passwd", *FAST_KDF, "--new-password-file", str(newpw), "--json")
    assert res.code == 0, res.err
    third = res.json()["id"]
    assert run("points").code == 11
    monkeypatch.setenv("TIERVAULT_PASSWORD", "third password")
    assert [k["id"] for k in run("key", "list", "--json").json()] == [third]
    assert run("points", "--json").json() == []


def test_new_password_prompt(
    vault: Path, run: Run, prompts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts += [PASSWORD, "new one", "new one"]
    assert run("key", "add", *FAST_KDF).code == 0
    prompts += [PASSWORD, "new one", "typo"]
    assert run("key", "passwd", *FAST_KDF).code == 2
    prompts += ["new one"]
    assert len(run("key", "list", "--json").json()) == 2


# ------------------------------------------------------------------------------------ progress


def test_progress_only_on_a_terminal(vault: Path, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output, "PROGRESS_INTERVAL", 0.01)
    res = run("snapshot", "src", "--json")
    assert res.code == 0 and res.err == ""
    monkeypatch.setattr(context, "stderr_is_tty", lambda: True)
    res = run("snapshot", "src", "--force-rehash")
    assert res.code == 0, res.err
    assert "files" in res.err and "snapshot src" in res.err  # the live display, drawn on stderr
    assert "saved" in res.out
    res = run("snapshot", "src", "--json")  # --json: never a progress display
    assert res.code == 0 and res.err == ""
    json.loads(res.out)


# ------------------------------------------------------------------------------------ the console script


def test_console_script(tmp_path: Path, source: Path) -> None:
    exe = shutil.which("tiervault", path=os.path.dirname(sys.executable))
    command = [exe] if exe else [sys.executable, "-m", "tiervault.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERVAULT_")}
    env["TIERVAULT_REPOSITORY"] = str(tmp_path / "repo")

    def tv(*argv: str, password: bool = True) -> subprocess.CompletedProcess[str]:
        e = dict(env, TIERVAULT_PASSWORD=PASSWORD) if password else env
        return subprocess.run(
            [*command, *argv],
            env=e,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert tv("init", *FAST_KDF).returncode == 0
    assert tv("protect", str(source), "--name", "src").returncode == 0
    done = tv("--json", "snapshot", "src")
    assert done.returncode == 0, done.stderr
    point = json.loads(done.stdout)["point"]["id"]
    assert [p["id"] for p in json.loads(tv("points", "--json").stdout)] == [point]
    failed = tv("points", password=False)
    assert failed.returncode == 2
    assert failed.stderr.startswith("tiervault: error: ") and "Traceback" not in failed.stderr
    assert tv("-r", str(tmp_path / "nothing"), "points").returncode == 10


def test_snapshot_deadline_exit_code(vault: Path, source: Path, run: Run) -> None:
    """--deadline: an incomplete point is saved and the exit code says so; the next run completes."""
    # a budget within the reserve: the run stops as soon as it has finished one of the three files
    res = run("snapshot", "src", "--deadline", "0.5", "--json")
    assert res.code == 4
    assert res.json()["incomplete"] is True
    res = run("snapshot", "src", "--deadline", "300", "--json")
    assert res.code == 0 and res.json()["incomplete"] is False
    assert run("snapshot", "src", "--deadline", "0").code == 2


# ------------------------------------------------------------------------------------ the package's shape

CLI_PACKAGE = Path(cli.__file__).parent
MAX_MODULE_LINES = 400
COMMANDS = {
    ("init",),
    ("protect",),
    ("items",),
    ("snapshot",),
    ("points",),
    ("forget",),
    ("prune",),
    ("tier",),
    ("ls",),
    ("restore",),
    ("plan-restore",),
    ("check",),
    ("stats",),
    ("key", "list"),
    ("key", "add"),
    ("key", "remove"),
    ("key", "passwd"),
    ("upgrade",),
    ("cache", "stats"),
    ("cache", "prune"),
    ("cache", "clear"),
}


def leaf_commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command that runs (``key list``, not ``key``), with its parser."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups and path:
        yield path, parser
    for group in groups:
        for name, sub in group.choices.items():
            yield from leaf_commands(sub, (*path, name))


def test_every_command_has_a_handler() -> None:
    """Each command group's ``register`` adds its commands with a handler; losing a group or a handler
    fails here rather than as an unexpected error when the command is run."""
    parser = cli.build_parser()
    leaves = dict(leaf_commands(parser))
    assert set(leaves) == COMMANDS
    for path, leaf in leaves.items():
        assert callable(leaf.get_default("handler")), f"'tiervault {' '.join(path)}' has no handler"
    # what main dispatches on: the parsed command's handler is its own
    args = parser.parse_args(["key", "remove", "abcd"])
    assert args.handler is leaves["key", "remove"].get_default("handler")


def test_a_parser_without_handlers_is_caught() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    sub.add_parser("run").set_defaults(handler=print)
    sub.add_parser("lost")
    leaves = dict(leaf_commands(parser))
    assert {p for p, lp in leaves.items() if not callable(lp.get_default("handler"))} == {("lost",)}


def test_cli_modules_are_small() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in CLI_PACKAGE.glob("*.py")}
    assert len(sizes) > 10  # the package, not a single module
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def internal_imports(root: Path) -> list[str]:
    """Imports of tiervault other than the public API (``tiervault``) and the cli package itself."""
    found = []
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            found += [
                f"{path.name}:{node.lineno}: {m}"
                for m in modules
                if m.split(".")[0] == "tiervault" and m != "tiervault" and not m.startswith("tiervault.cli")
            ]
    return found


def test_cli_uses_only_the_public_api(tmp_path: Path) -> None:
    assert internal_imports(CLI_PACKAGE) == []
    (tmp_path / "m.py").write_text(
        "import tiervault\nfrom tiervault import Vault\nfrom . import output\n"
        "from tiervault.cli import main\nfrom tiervault.repo import repository\nimport tiervault.api\n"
    )
    assert internal_imports(tmp_path) == ["m.py:5: tiervault.repo", "m.py:6: tiervault.api"]


def test_python_dash_m() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tiervault.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"tiervault {tiervault.__version__}"


def test_json_output_is_strict_utf8_for_non_utf8_names(repo: Path, run: Run, tmp_path: Path) -> None:
    """Names whose bytes are not UTF-8 appear in --json output as \\xNN escapes: every line parses with
    a strict reader (no lone surrogates), and nothing else changes."""
    src = tmp_path / os.fsdecode(b"src\xff")
    src.mkdir()
    (src / os.fsdecode(b"f\xfe")).write_text("x")
    assert run("init", *FAST_KDF).code == 0
    assert run("protect", str(src), "--name", "s").code == 0
    for argv in (["items"], ["snapshot", "s"], ["points"], ["ls", "latest"]):
        res = run(*argv, "--json")
        assert res.code == 0, res.err
        doc = json.loads(res.out.encode("utf-8", "strict"))
        text = json.dumps(doc, ensure_ascii=False)
        text.encode("utf-8", "strict")  # no lone surrogate anywhere
        assert "\\udc" not in res.out
    assert "src\\\\xff" in run("items", "--json").out
    assert "f\\\\xfe" in run("ls", "latest", "--json").out


# ------------------------------------------------------------------------------------ point times


def test_snapshot_at_a_given_time(vault: Path, run: Run) -> None:
    later = snapshot_id(run)
    earlier = snapshot_id(run, "--time", "2024-02-29T23:59:58+01:00")
    points = run("points", "--json").json()
    assert [p["id"] for p in points] == [earlier, later]
    assert points[0]["time"] == "2024-02-29T22:59:58+00:00"
    assert points[0]["committed"] > points[1]["time"]
    for bad, says in (("last tuesday", "not an ISO 8601 time"), ("2024-02-29T23:59:58", "no time zone")):
        res = run("snapshot", "src", "--time", bad)
        assert res.code == ExitCode.USAGE, res.err
        assert says in res.err


# ------------------------------------------------------------------------------------ forget


def test_forget_with_options_a_table_and_json(vault: Path, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line
    ids = [
        snapshot_id(run, "--time", f"2026-11-{d:02d}T12:00:00Z", *(("--tag", "release") if d == 1 else ()))
        for d in range(1, 6)
    ]
    res = run("forget", "src", "--keep-last", "2", "--keep-tag", "release", "--dry-run")
    assert res.code == 0, res.err
    assert "tag release" in res.out and "last 2" in res.out and "remove" in res.out
    assert "3 points kept, 2 points would be removed (dry run: nothing deleted)" in res.out
    assert len(run("points", "--json").json()) == 5
    res = run("forget", "--keep-last", "2", "--keep-tag", "release", "--json")
    assert res.code == 0, res.err
    got = res.json()
    assert got["dry_run"] is False
    assert [(p["id"], p["keep"], p["reasons"]) for p in got["points"]] == [
        (ids[0], True, ["tag release"]),
        (ids[1], False, ["no rule keeps it"]),
        (ids[2], False, ["no rule keeps it"]),
        (ids[3], True, ["last 2"]),
        (ids[4], True, ["last 1"]),
    ]
    assert got["points"][0]["time"] == "2026-11-01T12:00:00+00:00"
    assert [p["id"] for p in run("points", "--json").json()] == [ids[0], ids[3], ids[4]]


def test_forget_without_options_uses_the_items_policy(vault: Path, source: Path, run: Run) -> None:
    first, second = snapshot_id(run), snapshot_id(run)
    res = run("forget", "--json")  # the item has no rule: everything stays, and it says so
    assert [p["reasons"] for p in res.json()["points"]] == [["no retention rule: every point is kept"]] * 2
    assert run("protect", str(source), "--name", "src", "--keep-last", "1").code == 0
    assert [p["keep"] for p in run("forget", "--json").json()["points"]] == [False, True]
    assert [p["id"] for p in run("points", "--json").json()] == [second]
    assert first != second


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (("forget", "nope"), "no protected item named 'nope'"),
        (("forget", "--keep-within", "a week"), "keep_within"),
        (("forget", "--keep-within", "0d"), "keep_within"),
        (("forget", "--keep-last", "-1"), "keep_last"),
        (("forget", "--keep-last", "x"), "invalid int"),
    ],
)
def test_forget_bad_input(vault: Path, run: Run, argv: tuple[str, ...], says: str) -> None:
    snapshot_id(run)
    res = run(*argv)
    assert res.code == ExitCode.USAGE, (res.out, res.err)
    assert says in res.err
    assert len(run("points", "--json").json()) == 1


@pytest.mark.parametrize("limit", [("--max-unused", "5%"), ("--max-repack-bytes", "1G")])
def test_forget_with_prune_limits_but_no_prune_is_refused_before_deleting(
    vault: Path, run: Run, limit: tuple[str, str]
) -> None:
    snapshot_id(run)
    snapshot_id(run)
    res = run("forget", "--keep-last", "1", *limit)
    assert res.code == ExitCode.USAGE, (res.out, res.err)
    assert "add --prune" in res.err
    assert len(run("points", "--json").json()) == 2  # nothing was forgotten


def test_forget_prune_with_a_bad_price_file_forgets_nothing(vault: Path, run: Run, tmp_path: Path) -> None:
    snapshot_id(run)
    snapshot_id(run)
    bad = tmp_path / "prices.json"
    bad.write_text('{"region": "x"}')
    res = run("forget", "--keep-last", "1", "--prune", "--prices", str(bad))
    assert res.code == ExitCode.USAGE, (res.out, res.err)
    assert str(bad) in res.err
    assert len(run("points", "--json").json()) == 2  # refused before anything was forgotten


def test_protect_stores_keep_within_and_tags_and_points_explains(
    vault: Path, source: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line
    res = run("protect", str(source), "--name", "src", "--keep-within", "2d", "--keep-tag", "gold", "--json")
    assert res.json()["policy"] == {"keep_within": "2d", "keep_tags": ["gold"]}
    old = snapshot_id(run, "--time", "2026-01-01T00:00:00Z", "--tag", "gold")
    gone = snapshot_id(run, "--time", "2026-01-02T00:00:00Z")
    new = snapshot_id(run, "--time", "2026-02-01T00:00:00Z")
    got = {p["id"]: p["retention"] for p in run("points", "--explain", "--json").json()}
    assert got == {
        old: {"keep": True, "reasons": ["tag gold"]},
        gone: {"keep": False, "reasons": ["no rule keeps it"]},
        new: {"keep": True, "reasons": ["within 2d"]},
    }
    res = run("points", "--explain")
    assert res.code == 0 and "remove: no rule keeps it" in res.out and "keep: tag gold" in res.out
    assert len(run("points", "--json").json()) == 3
    assert run("protect", str(source), "--name", "src", "--keep-within", "soon").code == ExitCode.USAGE


def test_forget_buckets_in_a_given_time_zone(vault: Path, run: Run) -> None:
    late = snapshot_id(run, "--time", "2026-11-30T23:30:00Z")
    early = snapshot_id(run, "--time", "2026-11-30T10:00:00Z")
    utc = run("forget", "--keep-daily", "2", "--dry-run", "--json").json()["points"]
    assert [(p["id"], p["reasons"]) for p in utc] == [
        (early, ["no rule keeps it"]),
        (late, ["daily 2026-11-30"]),
    ]
    zoned = run("forget", "--keep-daily", "2", "--tz", "Etc/GMT-2", "--dry-run", "--json").json()["points"]
    assert [p["reasons"] for p in zoned] == [["daily 2026-11-30"], ["daily 2026-12-01"]]
    res = run("forget", "--keep-daily", "2", "--tz", "Mars/Olympus")
    assert res.code == ExitCode.USAGE and "not a known time zone" in res.err
    assert run("points", "--explain", "--tz", "Etc/GMT-2").code == 0
