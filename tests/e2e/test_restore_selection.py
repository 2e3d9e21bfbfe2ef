"""The planner's selection over the one tree walker agrees with a plain model: an entry is planned
when it is selected and every directory above it may contain a selected path; a directory is planned
when it is selected or something below it is (paths, include and exclude in any combination)."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tiervault
from tests.e2e import KDF, PASSWORD
from tests.support.trees import File, build_tree
from tiervault.restore import Selection, plan_restore

SPEC = {
    "a/x.txt": File(b"1"),
    "a/b/y.txt": File(b"2"),
    "a/b/c/z.bin": File(b"3"),
    "a/empty/.keep": File(b""),
    "b/x.txt": File(b"4"),
    "b/a/w.txt": File(b"5"),
    "top.txt": File(b"6"),
    "x/deep/er/e.txt": File(b"7"),
}
PATHS = ["a", "a/b", "a/b/c/z.bin", "b/a", "x/deep", "top.txt", "nope", "a/nope"]
PATTERNS = ["*.txt", "a", "b", "x*", "c", "*.bin", "er", "a/b/*", ".keep"]


@pytest.fixture(scope="module")
def point() -> Iterator[tuple[Path, str, list[tuple[bytes, bool]]]]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_tree(root / "src", SPEC)
        entries = sorted(
            (os.fsencode(os.path.relpath(os.path.join(d, n), root / "src")), n in dirs)
            for d, dirs, files in os.walk(root / "src")
            for n in dirs + files
        )

        async def snap() -> str:
            async with tiervault.init(root / "repo", password=PASSWORD, kdf=KDF) as v:
                await v.protect(root / "src", name="s")
                return (await v.snapshot("s")).point.id

        yield root / "repo", asyncio.run(snap()), entries


def _model(sel: Selection, entries: list[tuple[bytes, bool]]) -> tuple[set[bytes], set[bytes]]:
    is_dir = dict(entries)

    def reachable(rel: bytes) -> bool:
        parts = rel.split(b"/")
        return all(sel.may_contain(b"/".join(parts[:i])) for i in range(1, len(parts)))

    chosen = {
        rel for rel, d in entries if reachable(rel) and sel.selected(rel) and (not d or sel.may_contain(rel))
    }
    dirs = {
        rel
        for rel, d in entries
        if d
        and reachable(rel)
        and sel.may_contain(rel)
        and (rel in chosen or any(c.startswith(rel + b"/") for c in chosen))
    }
    return {c for c in chosen if not is_dir[c]}, dirs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    paths=st.none() | st.lists(st.sampled_from(PATHS), max_size=3),
    include=st.lists(st.sampled_from(PATTERNS), max_size=2),
    exclude=st.lists(st.sampled_from(PATTERNS), max_size=2),
)
def test_the_plan_selects_like_the_model(
    point: tuple[Path, str, list[tuple[bytes, bool]]],
    paths: list[str] | None,
    include: list[str],
    exclude: list[str],
) -> None:
    repo, pid, entries = point
    sel = Selection(paths, include, exclude)
    want_files, want_dirs = _model(sel, entries)

    async def plan() -> tuple[set[bytes], set[bytes]] | None:
        async with tiervault.open(repo, password=PASSWORD) as v:
            try:
                p = await plan_restore(v._repo, await v._record(pid), sel)
            except tiervault.NotFoundError:
                return None
        return {f.rel for f in p.files}, {d for d, _ in p.dirs}

    got = asyncio.run(plan())
    if got is None:  # nothing selected, with a selection
        assert not sel.whole and not want_files and not want_dirs
    else:
        assert got == (want_files, want_dirs)
