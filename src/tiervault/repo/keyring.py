"""The key slots (``keys/<h>``) and the ``config`` they seal: reading and checking the config, finding
the slot a password opens, and writing, listing and removing slots (docs/format.md, "Keys").
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from tiervault.backend.base import Backend
from tiervault.core.chunker import ChunkerParams
from tiervault.core.crypto import AuthenticationFailed, MasterKeys, ScryptParams, object_hash
from tiervault.core.format import READ_FEATURES, REPOSITORY_VERSIONS, FormatError
from tiervault.core.format.keyfile import (
    CONFIG_NAME,
    CONFIG_NEXT_NAME,
    KeySlot,
    decode_config,
    open_keys,
    seal_keys,
    version1_bytes,
)
from tiervault.errors import (
    IntegrityError,
    NotFoundError,
    ObjectNotFoundError,
    RepositoryNotFoundError,
    UnsupportedFormatError,
    UsageError,
    WrongPasswordError,
)
from tiervault.repo.objects import get_verified, put_hashed
from tiervault.repo.provenance import host_name, now_iso, user_name

log = logging.getLogger("tiervault.repo")


async def read_config(backend: Backend) -> tuple[bytes, dict[str, Any]]:
    """``config`` as stored and decoded (see :func:`read_stored_config`)."""
    _name, config_bytes, config = await read_stored_config(backend)
    return config_bytes, config


async def read_stored_config(backend: Backend) -> tuple[str, bytes, dict[str, Any]]:
    """The name ``config`` was read from, its bytes and its decoding, checked before any key is tried:
    a repository, of a format version this code reads, with chunker parameters it can use. Without
    ``config``, an upgrade stopped between its steps 2 and 3 left the version-2 one in ``config.next``:
    that one is read (docs/format.md, "Upgrading to version 2"); ``unlock`` checks it as any config."""
    name = CONFIG_NAME
    try:
        config_bytes = await backend.get(CONFIG_NAME)
    except ObjectNotFoundError as exc:
        try:
            name, config_bytes = CONFIG_NEXT_NAME, await backend.get(CONFIG_NEXT_NAME)
        except ObjectNotFoundError:
            why = f" ({exc})" if "container" in str(exc) else ""
            raise RepositoryNotFoundError(f"no tiervault repository at {backend.location}{why}") from exc
    try:
        config = decode_config(config_bytes)
    except FormatError as exc:
        raise UnsupportedFormatError(f"{backend.location} is not a tiervault repository: {exc}") from exc
    if config["version"] not in REPOSITORY_VERSIONS:
        raise UnsupportedFormatError(
            f"repository format version {config['version']} is not supported by this tiervault "
            f"(it reads versions {', '.join(map(str, REPOSITORY_VERSIONS))}); upgrade tiervault"
        )
    unknown = sorted(set(config.get("read_features", [])) - set(READ_FEATURES))
    if unknown:
        raise UnsupportedFormatError(
            f"repository at {backend.location} needs reader features this tiervault does not have "
            f"({', '.join(unknown)}); upgrade tiervault"
        )
    try:
        ChunkerParams.from_json(config["chunker"])
    except (ValueError, KeyError, TypeError) as exc:  # ParameterError is a ValueError
        raise UnsupportedFormatError(
            f"{backend.location}: config has unusable chunker parameters: {exc}"
        ) from exc
    if name == CONFIG_NEXT_NAME and (config["version"] != 2 or "upgraded_from" not in config):
        raise UnsupportedFormatError(
            f"{backend.location} has no config, and its {CONFIG_NEXT_NAME} is not an upgraded "
            "version-2 config"
        )
    return name, config_bytes, config


async def unlock(
    backend: Backend, config_bytes: bytes, config: dict[str, Any], password: bytes
) -> tuple[MasterKeys, str]:
    """Try every key slot with ``password`` (scrypt in a thread), skipping damaged slots; check the
    config hash sealed in the slot that opens. Returns the keys and that slot's name."""
    repo_id = str(config.get("id", ""))
    slots = [info.name async for info in backend.list("keys/")]
    if not slots:
        raise IntegrityError("keys/", "the repository has no key slots")
    damaged: list[IntegrityError] = []
    for name in sorted(slots):
        try:
            slot = KeySlot.from_bytes(await get_verified(backend, name))
        except IntegrityError as exc:
            damaged.append(exc)
            continue
        except FormatError as exc:
            damaged.append(IntegrityError(name, str(exc)))
            continue
        try:
            keys, config_hash = await asyncio.to_thread(open_keys, slot, repo_id, password)
        except AuthenticationFailed:
            continue
        if config_hash != object_hash(config_bytes) and not _upgraded_from(config, config_hash):
            raise IntegrityError(CONFIG_NAME, "config does not match the hash sealed in the key slot")
        return keys, name
    if damaged and len(damaged) == len(slots):
        raise damaged[0]
    for problem in damaged:
        log.error("skipped a damaged key slot: %s", problem)
    raise WrongPasswordError("wrong password: no key slot of this repository opens with it")


def _upgraded_from(config: dict[str, Any], sealed_hash: str) -> bool:
    """Whether a slot sealed for the version-1 ``config`` this version-2 one was upgraded from still
    vouches for it: only if the version-1 bytes rebuilt from it hash to what the slot sealed, so no
    version-1 field can have changed (docs/format.md, "Opening a repository", step 5)."""
    up = config.get("upgraded_from")
    return (
        config.get("version") == 2
        and up == sealed_hash
        and object_hash(version1_bytes(config)) == sealed_hash
    )


class Keyring:
    """The key slots of an opened repository; ``key_name`` is the slot this session opened with."""

    def __init__(self, backend: Backend, keys: MasterKeys, repo_id: str, key_name: str) -> None:
        self.backend, self.keys, self.repo_id, self.key_name = backend, keys, repo_id, key_name

    async def write_slot(self, password: bytes, kdf: ScryptParams, config_hash: str | None = None) -> str:
        """A new slot sealing the master keys under ``password``; returns its object name."""
        if config_hash is None:
            config_hash = object_hash(await self.backend.get(CONFIG_NAME))
        slot = await asyncio.to_thread(
            seal_keys,
            self.keys,
            config_hash,
            self.repo_id,
            password,
            kdf,
            salt=os.urandom(32),
            created=now_iso(),
            host=host_name(),
            user=user_name(),
        )
        return await put_hashed(self.backend, "keys/", slot.to_bytes())

    async def add(self, password: bytes, *, kdf: ScryptParams | None = None) -> str:
        if not password:
            raise UsageError("an empty password is not allowed")
        return (await self.write_slot(password, kdf or ScryptParams())).removeprefix("keys/")

    async def slots(self) -> list[dict[str, Any]]:
        out = []
        async for info in self.backend.list("keys/"):
            kid = info.name.removeprefix("keys/")
            try:
                slot = KeySlot.from_bytes(await get_verified(self.backend, info.name))
            except (IntegrityError, FormatError) as exc:
                out.append(
                    {"id": kid, "current": False, "created": "", "host": "", "user": "", "damaged": str(exc)}
                )
                continue
            out.append(
                {
                    "id": kid,
                    "current": info.name == self.key_name,
                    "created": slot.created,
                    "host": slot.host,
                    "user": slot.user,
                }
            )
        return sorted(out, key=lambda k: k["created"])

    async def remove(self, key_id: str) -> None:
        keys = await self.slots()
        matches = [k for k in keys if k["id"].startswith(key_id)] if key_id else []
        if len(matches) != 1:
            raise NotFoundError(f"no single key matches {key_id!r}")
        if matches[0]["current"]:
            raise UsageError("refusing to remove the key this session opened with (use passwd)")
        await self.backend.delete("keys/" + matches[0]["id"])

    async def change_password(self, new_password: bytes, *, kdf: ScryptParams | None = None) -> str:
        """Write a new key slot for ``new_password``, then remove the one this session opened with."""
        new_id = await self.add(new_password, kdf=kdf)
        old = self.key_name
        self.key_name = "keys/" + new_id
        await self.backend.delete(old)
        return new_id
