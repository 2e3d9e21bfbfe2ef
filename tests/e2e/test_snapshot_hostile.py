"""The snapshot side of the soundness review: what a legitimate host's snapshot does with a crafted
parent point, a directory swapped for a symlink while it is walked, and a source deeper than a
restore plans. Real files, a real repository; crafted points are planted through the real writer
(tests/support/hostile.py)."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

import tiervault
from tests.support.hostile import Planter
from tiervault.archiver import FolderArchiver, walker
from tiervault.core.format.tree import decode_tree_json
from tiervault.repo.provenance import host_name, user_name
from tiervault.repo.treewalk import DEFAULT_MAX_DEPTH, TreeCounter


async def trees_decode(vault: tiervault.Vault, point: tiervault.RecoveryPoint) -> None:
    """Every tree of ``point`` passes the full decoder (an IntegrityError otherwise)."""
    snap = await vault._repo.load_snapshot(point.id)
    await TreeCounter(vault._repo).expansion(bytes.fromhex(snap.tree))


# ------------------------------------------------------------------ a planted parent point


def _zero_hole(obj: dict[str, Any]) -> None:
    obj["content"] = [*obj["content"], 0]  # a hole of length 0: the decoder refuses it


def _bad_xattr(obj: dict[str, Any]) -> None:
    obj["xattrs"] = [{"name": "user.x", "value": "not base64!"}]  # kept while ctime and inode match


def _bad_dir_mode(obj: dict[str, Any]) -> None:
    obj["mode"] = 1 << 40  # a directory a stopped run leaves unvisited is copied whole


@pytest.mark.parametrize("poison", [_zero_hole, _bad_xattr, _bad_dir_mode])
async def test_a_planted_parent_never_poisons_the_next_snapshot(
    vault: tiervault.Vault, tmp_path: Path, poison: Any
) -> None:
    """A compromised host plants an authentic point, with this host's name, whose tree holds a node
    the full decoder refuses, as the parent of this host's next snapshot. That snapshot used to copy
    the node (unchanged file, kept xattrs, a directory left unvisited): check flagged the legitimate
    point and its restore refused. Now the bad parent tree is read from disk, with a warning naming it."""
    src = tmp_path / "src"
    (src / "zdir").mkdir(parents=True)
    (src / "f").write_bytes(b"hello")
    (src / "zdir" / "g").write_bytes(b"world")
    await vault.protect(src, name="it")
    good = await vault._repo.load_snapshot((await vault.snapshot("it")).point.id)

    nodes = decode_tree_json(await vault._repo.load_tree_data(bytes.fromhex(good.tree)))
    by_name = {o["name"]: o for o in nodes}
    poison(by_name["zdir"] if poison is _bad_dir_mode else by_name["f"])
    plant = Planter(vault)
    planted = await plant.tree(nodes)
    root = dict(good.root, subtree=planted)
    await plant.commit(planted, item="it", source=good.source, root=root, host=host_name(), user=user_name())

    legit = await vault.snapshot("it")
    assert not legit.point.partial
    # nothing is taken from a parent tree the decoder refuses: the point says so, naming it
    assert any(planted[:16] in w["warning"] for w in legit.point.warnings), legit.point.warnings
    # not even the subtree ids it holds: everything below it is read again
    assert (legit.stats.files_reused, legit.stats.files_read) == (0, 2)
    await trees_decode(vault, legit.point)
    out = tmp_path / "out"
    assert (await vault.restore(legit.point, out, verify=True)).ok
    assert (out / "f").read_bytes() == (src / "f").read_bytes()
    assert (out / "zdir" / "g").read_bytes() == b"world"
    check = await vault.check(read_data=True)
    assert check.errors and all(planted[:16] in e["error"] for e in check.errors), check.errors


async def test_a_stopped_run_keeps_nothing_of_a_planted_parent(
    vault: tiervault.Vault, tmp_path: Path
) -> None:
    """A run stopped by its deadline keeps, in its checkpoint, the parent's objects of the files it
    did not finish: from a planted parent those would be copied verbatim. The deadline is within the
    reserve, so it has passed once the first file ("a") is read and "b" is cut: from a parent tree the
    decoder refuses nothing is kept, and the checkpoint decodes."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"first")
    (src / "b").write_bytes(b"second")
    await vault.protect(src, name="it")
    good = await vault._repo.load_snapshot((await vault.snapshot("it")).point.id)
    nodes = decode_tree_json(await vault._repo.load_tree_data(bytes.fromhex(good.tree)))
    _zero_hole(nodes[1])  # "b"
    plant = Planter(vault)
    planted = await plant.tree(nodes)
    root = dict(good.root, subtree=planted)
    await plant.commit(planted, item="it", source=good.source, root=root, host=host_name(), user=user_name())
    for name in ("a", "b"):
        (src / name).write_bytes(b"changed " + name.encode())  # both to be read

    stopped = await vault.snapshot("it", deadline=0.5)
    assert stopped.incomplete and stopped.stats.files_read == 1
    assert any(planted[:16] in w["warning"] for w in stopped.point.warnings)
    await trees_decode(vault, stopped.point)
    assert {e.path for e in await vault.ls(stopped.point)} == {"a"}
    done = await vault.snapshot("it")
    assert not done.incomplete and done.stats.files_read == 1
    out = tmp_path / "out"
    assert (await vault.restore(done.point, out, verify=True)).ok
    assert (out / "b").read_bytes() == b"changed b"


async def test_a_stop_keeps_no_unvisited_subtree_of_a_planted_parent(
    vault: tiervault.Vault, tmp_path: Path
) -> None:
    """A stop keeps the directories it leaves unvisited by their parent subtree ids, unread: from a
    planted parent whose root is sound but whose "zdir" tree is not (or is deeper than a restore
    plans), the checkpoint referenced it. The archiver runs as ``backup.take`` runs it, past its stop
    time and with a new file already finished (a stop at its first entry that needs work, "a")."""
    src = tmp_path / "src"
    (src / "zdir").mkdir(parents=True)
    (src / "zdir" / "g").write_bytes(b"world")
    (src / "zdeep").mkdir()
    (src / "a").write_bytes(b"first")
    plant = Planter(vault)
    bad = await plant.tree([dict(plant.file("g", b"world"), content=[plant.chunk(b"world"), 0])])
    deep = await plant.tree([])
    for _ in range(DEFAULT_MAX_DEPTH):
        deep = await plant.tree([plant.dir("d", deep)])
    root = await plant.tree([plant.file("a", b"old"), plant.dir("zdeep", deep), plant.dir("zdir", bad)])
    await plant.flush()

    archiver = FolderArchiver(
        vault._repo,
        asyncio.get_running_loop(),
        os.fsencode(src),
        parent_tree=bytes.fromhex(root),
        stop_at=0.0,
    )
    archiver._stop.file_done(new=True)  # the setup: progress made, the stop time passed
    outcome = await asyncio.to_thread(archiver.run)
    await vault._repo.flush_index()
    assert outcome.incomplete
    warned = {w["path"]: w["warning"] for w in outcome.warnings}
    assert bad in warned["zdir"] and "deeper than 512 names" in warned["zdeep"], warned
    nodes = await vault._repo.load_tree(outcome.tree)
    assert [n.name for n in nodes] == [b"a"]  # "a": the parent's, kept while it is read next run
    await TreeCounter(vault._repo).expansion(outcome.tree)


# ------------------------------------------------------------------ a directory swapped while walked


@pytest.mark.parametrize("swap", ["symlink", "other dir"])
async def test_a_directory_swapped_after_its_listing_is_never_followed(
    vault: tiervault.Vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swap: str
) -> None:
    """``sub`` is listed as a directory, then replaced (by a symlink to a directory outside the
    source, or by another directory) before it is read: the archiver used to follow the symlink and
    back up the outside directory. Now ``sub`` is an error entry naming it and nothing below it is
    stored."""
    src, secret = tmp_path / "src", tmp_path / "secret"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "own").write_bytes(b"mine")
    (src / "keep").write_bytes(b"kept")
    secret.mkdir()
    (secret / "shadow").write_bytes(b"root:$6$secret")
    await vault.protect(src, name="it")
    real_list_dir = walker.list_dir
    swapped = []

    def swap_then_list(path: bytes, *ident: tuple[int, int] | None) -> Any:
        if path == os.fsencode(src / "sub") and not swapped:  # the race, made deterministic
            if swap == "symlink":
                os.symlink(secret, tmp_path / "new")
            else:
                shutil.copytree(secret, tmp_path / "new")  # made first: it cannot reuse the inode
            shutil.rmtree(src / "sub")
            os.rename(tmp_path / "new", src / "sub")
            swapped.append(path)
        return real_list_dir(path, *ident)

    monkeypatch.setattr(walker, "list_dir", swap_then_list)
    result = await vault.snapshot("it")
    assert swapped
    assert result.point.partial
    assert [e["path"] for e in result.point.errors] == ["sub"]
    what = "directory replaced by a symlink" if swap == "symlink" else "directory was replaced"
    assert result.point.errors[0]["error"].startswith(what), result.point.errors
    names = {e.path for e in await vault.ls(result.point, recursive=True)}
    assert names == {"keep"}
    out = tmp_path / "out"
    assert (await vault.restore(result.point, out, verify=True)).ok
    assert sorted(os.listdir(out)) == ["keep"]
    assert (await vault.check(read_data=True)).ok


# ------------------------------------------------------------------ a source deeper than a restore plans


async def test_a_source_deeper_than_a_restore_plans_is_stored_to_that_depth(
    vault: tiervault.Vault, tmp_path: Path
) -> None:
    """A source 600 directories deep crashed the snapshot (RecursionError: the walk recursed), and a
    restore refuses paths of more than DEFAULT_MAX_DEPTH names. The walk is iterative now, and stores
    the directory at that depth without its contents, with an error entry naming it."""
    src = tmp_path / "src"
    deep = src.joinpath(*["d"] * 600)
    deep.mkdir(parents=True)
    (deep / "bottom").write_bytes(b"too deep")
    (src.joinpath(*["d"] * 300) / "middle").write_bytes(b"deep enough")
    (src / "top").write_bytes(b"top")
    await vault.protect(src, name="it")
    cut = "/".join(["d"] * DEFAULT_MAX_DEPTH)
    for run in range(2):  # the second from the first as its parent
        result = await vault.snapshot("it")
        assert result.point.partial and not result.incomplete
        error = f"deeper than {DEFAULT_MAX_DEPTH} names: not backed up"
        assert list(result.point.errors) == [{"path": cut, "error": error}]
        assert result.stats.files_reused == (0, 2)[run]
    out = tmp_path / "out"
    assert (await vault.restore(result.point, out, verify=True)).ok
    assert (out / "top").read_bytes() == b"top"
    assert (out.joinpath(*["d"] * 300) / "middle").read_bytes() == b"deep enough"
    assert os.listdir(out.joinpath(*["d"] * DEFAULT_MAX_DEPTH)) == []
    check = await vault.check(read_data=True)
    assert check.ok and not check.warnings, (check.errors, check.warnings)
