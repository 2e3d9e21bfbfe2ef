"""Protected items (DPM's protection groups): the rules for naming one, its source and its policy."""

from __future__ import annotations

import asyncio
import logging
import os

from tiervault.errors import NotFoundError, UsageError
from tiervault.policy import Policy
from tiervault.repo.provenance import host_name, now_iso
from tiervault.repo.repository import Repository
from tiervault.repo.snapshots import ItemRecord

log = logging.getLogger("tiervault.protection")


def require_text(value: str, what: str) -> None:
    """Names and tags are text, stored as JSON strings: refuse what is not valid UTF-8 (e.g. a
    command-line argument that was not, decoded with surrogate escapes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{what} must be valid UTF-8 text, not {value!r}") from None


def check_item_name(name: str) -> None:
    if not name or "/" in name or name.strip() != name or len(name) > 200:
        raise UsageError("item name must be 1-200 characters, without '/' or surrounding spaces")
    require_text(name, "item name")


def _inspect_source(path: str | os.PathLike[str]) -> tuple[str, bool, bool]:
    source = os.path.abspath(os.path.expanduser(os.fspath(path)))
    return source, os.path.exists(source), os.path.isdir(source)


async def protect(
    repo: Repository, path: str | os.PathLike[str], *, name: str, policy: Policy | None
) -> ItemRecord:
    """Register a folder under ``name``, or update an existing item's policy; the stored record.

    ``policy=None`` keeps an existing item's policy (a new item gets ``Policy()``). Re-protecting a
    name with another path is refused: it would mix two sources in one history. Nothing is written
    when nothing changes.
    """
    check_item_name(name)
    source, exists, is_dir = await asyncio.to_thread(_inspect_source, path)
    if not exists:
        raise UsageError(f"source path {source!r} does not exist")
    if not is_dir:
        raise UsageError(f"source path {source!r} is not a directory (folders are protected today)")
    old = next((i for i in await repo.list_items() if i.name == name), None)  # a bad one is replaced
    if old is not None and old.source != source:
        raise UsageError(f"item {name!r} already protects {old.source!r}, not {source!r}")
    if policy is None:
        policy = Policy.from_json(old.policy) if old is not None else Policy()
    now = now_iso()
    rec = ItemRecord(
        name=name,
        kind="folder",
        source=source,
        policy=policy.to_json(),
        created=old.created if old else now,
        updated=now,
        host=host_name(),
    )
    if old is not None and old.policy == rec.policy:
        return old
    await repo.save_item(rec, replaces=old.id if old else None)
    return rec


def policy_problem(rec: ItemRecord) -> str | None:
    """Why an item's stored policy is unusable (a crafted or future item), or None."""
    try:
        Policy.from_json(rec.policy)
    except UsageError as exc:
        return f"items/{rec.id}: item {rec.name!r} has a policy this tiervault cannot use: {exc}"
    return None


async def usable_items(repo: Repository) -> list[ItemRecord]:
    """Every item whose object reads and whose policy is valid, by name. The others are skipped with
    a warning (``check`` reports them): one bad item never stops the backups of the others."""
    out = []
    for rec in await repo.list_items():
        problem = policy_problem(rec)
        if problem is None:
            out.append(rec)
        else:
            log.warning("skipped an item (check reports it): %s", problem)
    return out


async def find_item(repo: Repository, name: str) -> ItemRecord:
    for rec in await usable_items(repo):
        if rec.name == name:
            return rec
    raise NotFoundError(f"no protected item named {name!r} (see `tiervault protect`)")
