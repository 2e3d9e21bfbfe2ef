"""``tiervault cache stats | prune | clear``, the cache options, and the per-tier reads of
``tiervault restore --json``."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cache import MiB, cached, random_tree, stored
from tests.support.trees import assert_trees_equal, snapshot_tree
from tiervault.cli import ExitCode, main

Run = Callable[..., tuple[int, Any, str]]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """``run(*argv)`` -> (exit code, parsed JSON or stdout text, stderr), repository and password
    from the environment."""
    monkeypatch.setenv("TIERVAULT_REPOSITORY", str(tmp_path / "repo"))
    monkeypatch.setenv("TIERVAULT_PASSWORD", "cli correct horse")
    monkeypatch.delenv("TIERVAULT_PASSWORD_FILE", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))

    def go(*argv: str) -> tuple[int, Any, str]:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        out: Any = captured.out
        if "--json" in argv and code in (ExitCode.OK, ExitCode.PARTIAL):
            out = json.loads(captured.out)
        return code, out, captured.err

    return go


def test_cache_commands_and_restore_tiers(run: Run, tmp_path: Path, src: Path) -> None:
    cache = tmp_path / "cache"
    opt = ("--cache-dir", str(cache))
    assert run("init", "--kdf-log-n", "10", *opt)[0] == ExitCode.OK
    assert run("protect", str(src), "--name", "src", *opt)[0] == ExitCode.OK
    assert run("snapshot", "src", *opt)[0] == ExitCode.OK

    code, st, _ = run("cache", "stats", "--json", *opt)
    assert code == ExitCode.OK
    assert st["enabled"] and st["directory"].startswith(str(cache)) and st["max_bytes"] == 2 << 30
    on_disk = cached(cache)
    assert st["usage"]["entries"] == len(on_disk) and st["usage"]["bytes"] == sum(on_disk.values())
    assert st["usage"]["data_entries"] == len(stored(tmp_path / "repo", "data/")) > 0

    # a restore right after the snapshot: everything from the disk tier
    code, res, _ = run("restore", "latest", "--target", str(tmp_path / "out1"), "--json", *opt)
    assert code == ExitCode.OK
    assert res["stats"]["remote_reads"] == 0 and res["stats"]["remote_bytes"] == 0
    assert res["stats"]["cache_hits"] > 0 and res["stats"]["cache_bytes"] >= res["stats"]["bytes_fetched"]
    assert_trees_equal(snapshot_tree(src), snapshot_tree(tmp_path / "out1"))

    code, text, _ = run("cache", "stats", *opt)
    assert code == ExitCode.OK and "disk tier: on" in text and str(cache) in text

    # prune to a smaller bound: data packs go, metadata stays
    code, pruned, _ = run("cache", "prune", "--cache-size", "64K", "--json", *opt)
    assert code == ExitCode.OK and pruned["removed_entries"] >= st["usage"]["data_entries"]
    assert not cached(cache, "data/") and cached(cache, "snapshots/")

    code, cleared, _ = run("cache", "clear", "--json", *opt)
    assert code == ExitCode.OK and cleared["removed_entries"] > 0
    assert cleared["usage"]["entries"] == 0 and cached(cache) == {}
    code, text, _ = run("cache", "clear", *opt)
    assert code == ExitCode.OK and "removed" in text

    # a cold restore: everything from the store (but the snapshot object: resolving "latest" had
    # just read it, before the restore began)
    code, res, _ = run("restore", "latest", "--target", str(tmp_path / "out2"), "--json", *opt)
    assert code == ExitCode.OK
    assert res["stats"]["cache_hits"] <= 1 and res["stats"]["remote_reads"] > 0
    assert res["stats"]["remote_bytes"] >= res["stats"]["bytes_fetched"] > 0
    assert_trees_equal(snapshot_tree(src), snapshot_tree(tmp_path / "out2"))

    # the text report names both tiers
    code, text, _ = run("restore", "latest", "--target", str(tmp_path / "out3"), *opt)
    assert code == ExitCode.OK and "from the disk tier" in text and "from the repository" in text


def test_local_repositories_have_no_cache_unless_asked(run: Run, tmp_path: Path, src: Path) -> None:
    assert run("init", "--kdf-log-n", "10")[0] == ExitCode.OK
    code, st, _ = run("cache", "stats", "--json")
    assert code == ExitCode.OK and not st["enabled"] and st["directory"] is None
    code, text, _ = run("cache", "stats")
    assert "off" in text
    assert run("protect", str(src), "--name", "src")[0] == ExitCode.OK
    assert run("snapshot", "src")[0] == ExitCode.OK
    code, res, _ = run("restore", "latest", "--target", str(tmp_path / "out"), "--json")
    assert code == ExitCode.OK and res["stats"]["cache_hits"] == 0 and res["stats"]["remote_reads"] > 0
    code, cleared, _ = run("cache", "clear", "--json")
    assert code == ExitCode.OK and cleared["removed_entries"] == 0


def test_cache_options_are_checked(run: Run, tmp_path: Path) -> None:
    code, _, err = run("cache", "stats", "--no-cache", "--cache-dir", str(tmp_path / "c"))
    assert code == ExitCode.USAGE and "exclude each other" in err
    code, _, err = run("cache", "stats", "--cache-size", "lots")
    assert code == ExitCode.USAGE and "invalid size" in err
    code, _, err = run("cache", "frobnicate")
    assert code == ExitCode.USAGE


def test_no_cache_turns_an_explicit_cache_off(run: Run, tmp_path: Path, src: Path) -> None:
    random_tree(src / "x", files=1, size=MiB, seed=4)
    assert run("init", "--kdf-log-n", "10", "--no-cache")[0] == ExitCode.OK
    code, st, _ = run("cache", "stats", "--json", "--no-cache")
    assert code == ExitCode.OK and not st["enabled"]
    code, st, _ = run("cache", "stats", "--json", "--cache-dir", str(tmp_path / "c"), "--cache-size", "1G")
    assert st["enabled"] and st["max_bytes"] == 1 << 30
