"""Stored snapshot and item JSON stays strict UTF-8 JSON when paths are not UTF-8: such a ``source``
or ``errors[].path`` is stored as ``*_b64`` (the tree rule), and read back as the same path."""

from __future__ import annotations

import base64
import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

import tiervault
from tests.e2e import init_vault, open_vault
from tiervault.core.format.envelope import ObjectType
from tiervault.repo.repository import Repository
from tiervault.repo.snapshots import ItemRecord, SnapshotRecord


def strict_json(plain: bytes) -> Any:
    """Parse as a strict reader would: UTF-8, and no string holding a lone surrogate."""
    doc = json.loads(plain.decode("utf-8"))

    def walk(value: Any) -> None:
        if isinstance(value, str):
            value.encode("utf-8")  # a lone surrogate (from a "\\udcff" escape) raises here
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(k)
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(doc)
    return doc


async def stored(repo: Repository, name: str, otype: ObjectType) -> Any:
    return strict_json(await repo._load_object(name, otype))


def make_source(source: bytes) -> bytes:
    """A source folder whose own name, a directory and a file name are not UTF-8."""
    os.makedirs(os.path.join(source, b"d\xfe"))
    for name, data in ((b"ok.txt", b"fine"), (b"bad-\xe9.bin", b"secret")):
        fd = os.open(os.path.join(source, b"d\xfe", name), os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, data)
        os.close(fd)
    return source


async def test_non_utf8_source_and_error_path(
    tmp_path: Path, repo_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_source(os.path.join(os.fsencode(tmp_path), b"src-\xff"))
    unreadable = os.path.join(source, b"d\xfe", b"bad-\xe9.bin")
    real_open = os.open

    def refuse(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:  # root reads anything
        if os.fsencode(path) == unreadable:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *args, **kwargs)

    async with init_vault(repo_path) as vault:
        item = await vault.protect(os.fsdecode(source), name="odd")
        monkeypatch.setattr("tiervault.sources.reading.os.open", refuse)
        result = await vault.snapshot("odd")
        monkeypatch.undo()
    assert result.partial
    assert os.fsencode(result.errors[0]["path"]) == b"d\xfe/bad-\xe9.bin"

    async with open_vault(repo_path) as vault:
        repo: Repository = vault._repo
        snap = await stored(repo, f"snapshots/{result.point.id}", ObjectType.SNAPSHOT)
        assert "source" not in snap
        assert os.path.basename(base64.b64decode(snap["source_b64"])) == b"src-\xff"
        (err,) = snap["errors"]
        assert "path" not in err and err["error"] == "Permission denied"
        (item_name,) = [i.name async for i in repo.backend.list("items/")]
        it = await stored(repo, item_name, ObjectType.ITEM)
        assert "source" not in it and "source_b64" in it

        # read back: the same paths as the API had them
        (point,) = await vault.points()
        assert os.fsencode(point.source) == source
        assert os.fsencode(point.errors[0]["path"]) == b"d\xfe/bad-\xe9.bin"
        assert os.fsencode((await vault.item("odd")).source) == source == os.fsencode(item.source)
        again = await vault.snapshot("odd")  # the parent is found by its (decoded) source
        assert again.point.parent == point.id and not again.partial


async def test_utf8_paths_keep_the_string_fields(vault: tiervault.Vault, tmp_path: Path) -> None:
    """UTF-8 paths are stored exactly as before (old readers read new points)."""
    src = tmp_path / "sourcé"
    src.mkdir()
    (src / "f").write_bytes(b"x")
    await vault.protect(src, name="s")
    point = (await vault.snapshot("s")).point
    snap = await stored(vault._repo, f"snapshots/{point.id}", ObjectType.SNAPSHOT)
    assert snap["source"] == str(src) and "source_b64" not in snap


def test_old_and_new_forms_decode_to_the_same_record() -> None:
    base: dict[str, Any] = {
        "v": 1,
        "item": "i",
        "time": "2026-01-01T00:00:00.000000000Z",
        "host": "h",
        "user": "u",
        "tree": "00" * 32,
        "root": {},
    }
    old = SnapshotRecord.from_json({**base, "source": "/a/b", "errors": [{"path": "x", "error": "e"}]}, "1")
    assert old.source == "/a/b" and old.errors == [{"path": "x", "error": "e"}]
    rec = SnapshotRecord.from_json({**base, "source": "/s", "errors": []}, "2")
    rec.source = os.fsdecode(b"/s\xff")
    rec.errors = [{"path": os.fsdecode(b"p\xfe"), "error": os.fsdecode(b"cannot read p\xfe")}]
    doc = strict_json(json.dumps(rec.to_json()).encode())
    assert doc["source_b64"] == "L3P/" and doc["errors"][0]["path_b64"] == "cP4="
    back = SnapshotRecord.from_json(doc, "2")
    assert back.source == rec.source and back.errors[0]["path"] == rec.errors[0]["path"]
    when = "2026-01-01T00:00:00.000000000Z"
    item = ItemRecord("n", "folder", os.fsdecode(b"/\xff"), {}, when, when, "h")
    assert ItemRecord.from_json(strict_json(json.dumps(item.to_json()).encode()), "x").source == item.source


async def test_names_and_tags_must_be_text(vault: tiervault.Vault, tmp_path: Path) -> None:
    """Item names and tags are JSON strings (not paths): a non-UTF-8 one is refused, not stored."""
    (tmp_path / "s").mkdir()
    with pytest.raises(tiervault.UsageError, match="UTF-8"):
        await vault.protect(tmp_path / "s", name=os.fsdecode(b"n\xff"))
    await vault.protect(tmp_path / "s", name="s")
    with pytest.raises(tiervault.UsageError, match="UTF-8"):
        await vault.snapshot("s", tags=[os.fsdecode(b"t\xff")])
    assert await vault.items() == [await vault.item("s")]
    assert await vault.points() == []
