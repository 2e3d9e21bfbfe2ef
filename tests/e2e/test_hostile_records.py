"""Crafted but authentic snapshot and item objects (a compromised host holding the key can write
them): every field is checked when decoded, so such an object is skipped and reported like a
damaged one, and never stops ``points``, ``latest`` or the next backup of any item."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

import tiervault
from tests.e2e import repo_objects
from tiervault.core.format.envelope import ObjectType

BAD_FIELDS: list[tuple[str, Any]] = [
    ("tree", "zz"),
    ("tree", 7),
    ("time", "not-a-time"),
    ("time", "2026-13-01T00:00:00Z"),
    ("stats", {"bytes_total": "1,000"}),
    ("stats", {"files": True}),
    ("stats", []),
    ("parent", "abc"),
    ("tags", "one"),
    ("tags", [1]),
    ("partial", "yes"),
    ("incomplete", 1),
    ("errors", [{"path": 1, "error": "e"}]),
    ("errors", {"path": "x"}),
    ("warnings", ["w"]),
    ("item", ""),
    ("item", None),
    ("host", 3),
    ("source", ["/"]),
    ("root", "dir"),
    ("program", 0),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS, ids=[f"{f}={v!r}" for f, v in BAD_FIELDS])
async def test_a_crafted_snapshot_is_skipped_everywhere(
    vault: tiervault.Vault,
    tmp_path: Path,
    repo_path: Path,
    caplog: pytest.LogCaptureFixture,
    field: str,
    value: Any,
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("data")
    await vault.protect(src, name="app")
    good = (await vault.snapshot("app")).point
    record = await vault._repo.load_snapshot(good.id)
    crafted: dict[str, Any] = {**record.to_json(), field: value}
    crafted["time"] = crafted["time"] if field == "time" else "2999-01-01T00:00:00.000000000Z"  # newest
    name = await vault._repo.objects.save("snapshots/", ObjectType.SNAPSHOT, crafted)
    assert name in repo_objects(repo_path, "snapshots")
    with caplog.at_level(logging.WARNING, "tiervault"):
        assert [p.id for p in await vault.points()] == [good.id]
    assert any(name in r.getMessage() for r in caplog.records)
    assert (await vault.point("latest")).id == good.id
    (src / "g").write_text("more")
    second = await vault.snapshot("app")  # the crafted point is never taken as the parent
    assert second.point.parent == good.id and not second.partial
    result = await vault.check()
    assert [e["object"] for e in result.errors] == [name]
    restored = await vault.restore("latest", tmp_path / "out", verify=True)
    assert restored.ok and (tmp_path / "out" / "g").read_text() == "more"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("created", "yesterday"),
        ("policy", "keep all"),
        ("name", 5),
        ("kind", None),
        ("policy", {"keep_daily": -3}),
    ],
)
async def test_a_crafted_item_is_skipped_and_reported(
    vault: tiervault.Vault, tmp_path: Path, caplog: pytest.LogCaptureFixture, field: str, value: Any
) -> None:
    """A bad item object (or one whose policy is unusable) is skipped with a warning and reported by
    ``check``; the other items are listed, protected and backed up as before."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    item = await vault.protect(src, name="app")
    stored = {
        "v": 1,
        "name": "evil",
        "kind": "folder",
        "source": str(src),
        "policy": item.policy.to_json(),
        "created": item.created,
        "updated": item.updated,
        "host": "h",
        field: value,
    }
    name = await vault._repo.objects.save("items/", ObjectType.ITEM, stored)
    with caplog.at_level(logging.WARNING, "tiervault"):
        assert [i.name for i in await vault.items()] == ["app"]
    assert any(name in r.getMessage() for r in caplog.records)
    assert not (await vault.snapshot("app")).partial
    result = await vault.check()
    assert [e["object"] for e in result.errors] == [name], result.errors
