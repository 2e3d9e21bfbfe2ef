"""Upgrading a repository from format version 1 to 2, and finishing an upgrade a killed run left half
done (docs/format.md, "Upgrading to version 2"; ordering invariant 18).

The steps, each idempotent: (1) ``put_if_absent("config.next", v2)``; (2) delete ``config`` (the
version-1 one); (3) ``put_if_absent("config", v2)``; (4) delete ``config.next``. ``v2`` keeps every
version-1 field and adds ``upgraded_from`` = ``blake3`` of the version-1 bytes, so every key slot,
sealed for those bytes, still vouches for it (``keyring.unlock``). Only ``config`` and ``config.next``
are ever written or deleted here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from tiervault.backend.base import Backend
from tiervault.core.crypto import object_hash
from tiervault.core.format import FormatError
from tiervault.core.format.keyfile import (
    CONFIG_NAME,
    CONFIG_NEXT_NAME,
    decode_config,
    is_upgrade_of,
    upgraded_config,
)
from tiervault.errors import (
    IntegrityError,
    ObjectNotFoundError,
    RepositoryExistsError,
    TransientBackendError,
    UnsupportedFormatError,
)

log = logging.getLogger("tiervault.repo")

#: how often a step re-reads an object that vanished between its put and its read (a racing upgrade)
_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class StoredConfig:
    """The config an opened repository uses: the name it was read from (``config``, or ``config.next``
    while an upgrade is between its steps 2 and 3) and its bytes as stored."""

    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class UpgradeResult:
    """What ``Vault.upgrade`` did. ``upgraded`` is False when the repository already was version 2 (and
    no upgrade was left to finish); ``resumed`` when it finished an upgrade an earlier run began.
    ``upgraded_from`` is the ``blake3`` of the version-1 ``config`` (``None`` for a repository created
    as version 2)."""

    upgraded: bool
    resumed: bool
    from_version: int
    version: int
    upgraded_from: str | None
    location: str

    @property
    def message(self) -> str:
        if not self.upgraded:
            return (
                f"the repository at {self.location} is already format version {self.version}; nothing to do"
            )
        how = "finished the upgrade of" if self.resumed else "upgraded"
        return (
            f"{how} the repository at {self.location} to format version {self.version}; "
            "tiervault versions that only know version 1 can no longer open it"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "upgraded": self.upgraded,
            "resumed": self.resumed,
            "from_version": self.from_version,
            "version": self.version,
            "upgraded_from": self.upgraded_from,
            "location": self.location,
            "message": self.message,
        }


async def upgrade(
    backend: Backend, stored: StoredConfig, unknown_write_features: list[str]
) -> tuple[StoredConfig, UpgradeResult]:
    """Upgrade the repository whose authenticated config is ``stored`` to version 2, or finish an
    upgrade left half done; a version-2 repository is left as it is. Returns the config now stored."""
    config = decode_config(stored.data)
    version = int(config["version"])
    if version >= 2:
        if unknown_write_features:
            raise UnsupportedFormatError(
                f"cannot upgrade: the repository at {backend.location} needs writer features this "
                f"tiervault does not have ({', '.join(unknown_write_features)}); upgrade tiervault"
            )
        settled = await settle(backend, stored)
        done = settled or stored
        return done, _result(backend, done, upgraded=settled is not None, resumed=settled is not None)
    try:
        v2 = upgraded_config(stored.data)
    except FormatError as exc:
        raise UnsupportedFormatError(f"cannot upgrade the repository at {backend.location}: {exc}") from exc
    resumed = False
    for _ in range(_ATTEMPTS):  # step 1
        if await backend.put_if_absent(CONFIG_NEXT_NAME, v2):
            log.info("upgrade %s: stored %s (step 1)", backend.location, CONFIG_NEXT_NAME)
            break
        found = await _get(backend, CONFIG_NEXT_NAME)
        if found is None:
            continue
        if not is_upgrade_of(found, stored.data):
            raise IntegrityError(CONFIG_NEXT_NAME, _stray_next(backend, found))
        v2, resumed = found, True  # an earlier run's (or another tiervault's) upgrade: finish it
        break
    else:
        raise TransientBackendError(f"{CONFIG_NEXT_NAME} keeps vanishing at {backend.location}")
    done = await _finish(backend, stored.data, v2)
    return done, _result(backend, done, upgraded=True, resumed=resumed)


async def settle(backend: Backend, stored: StoredConfig) -> StoredConfig | None:
    """Before a write: finish an upgrade a killed run left half done, and return the config now stored
    (``None``: none was pending). ``stored`` is the authenticated config this session opened with."""
    if stored.name == CONFIG_NEXT_NAME:  # killed after step 2: config.next is all there is
        log.info("upgrade %s: finishing (config absent, %s present)", backend.location, CONFIG_NEXT_NAME)
        return await _finish(backend, None, stored.data)
    config = decode_config(stored.data)
    if config["version"] == 1:
        found = await _get(backend, CONFIG_NEXT_NAME)
        if found is None:
            return None
        if not is_upgrade_of(found, stored.data):  # writing with version-1 rules beside it: no
            raise IntegrityError(CONFIG_NEXT_NAME, _stray_next(backend, found))
        log.info("upgrade %s: finishing (config and %s present)", backend.location, CONFIG_NEXT_NAME)
        return await _finish(backend, stored.data, found)
    if "upgraded_from" in config:
        found = await _get(backend, CONFIG_NEXT_NAME)
        if found == stored.data:  # killed after step 3
            log.info("upgrade %s: finishing (removing %s)", backend.location, CONFIG_NEXT_NAME)
            await backend.delete(CONFIG_NEXT_NAME)
            return stored
        if found is not None:
            log.warning(
                "%s at %s is not this repository's config (%s); left alone",
                CONFIG_NEXT_NAME,
                backend.location,
                _describe(found),
            )
    return None


async def _finish(backend: Backend, v1: bytes | None, v2: bytes) -> StoredConfig:
    """Steps 2-4, with ``v2`` stored as ``config.next``; ``v1``: the version-1 config, unless step 2
    is known to be done. Returns the config now stored."""
    if v1 is not None:  # step 2
        current = await _get(backend, CONFIG_NAME)
        if current == v1:
            await backend.delete(CONFIG_NAME)
            log.info("upgrade %s: deleted the version-1 %s (step 2)", backend.location, CONFIG_NAME)
        elif current is not None and current != v2:
            if not is_upgrade_of(current, v1):
                raise RepositoryExistsError(_conflict(backend, current, v2))
            # another tiervault finished its own upgrade; ours re-created config.next after its step 4
            await backend.delete(CONFIG_NEXT_NAME)
            return StoredConfig(CONFIG_NAME, current)
    for _ in range(_ATTEMPTS):  # step 3
        if await backend.put_if_absent(CONFIG_NAME, v2):
            log.info("upgrade %s: stored the version-2 %s (step 3)", backend.location, CONFIG_NAME)
            break
        current = await _get(backend, CONFIG_NAME)
        if current == v2:  # stored already (a racing upgrade, or our put's response was lost)
            break
        if current is not None:  # a concurrent init: config.next (this repository's) is kept
            raise RepositoryExistsError(_conflict(backend, current, v2))
    else:
        raise TransientBackendError(f"{CONFIG_NAME} keeps vanishing at {backend.location}")
    await backend.delete(CONFIG_NEXT_NAME)  # step 4
    log.info("upgrade %s: deleted %s (step 4); format version 2", backend.location, CONFIG_NEXT_NAME)
    return StoredConfig(CONFIG_NAME, v2)


def _result(backend: Backend, stored: StoredConfig, *, upgraded: bool, resumed: bool) -> UpgradeResult:
    config = decode_config(stored.data)
    up = config.get("upgraded_from")
    return UpgradeResult(
        upgraded=upgraded,
        resumed=resumed,
        from_version=1 if upgraded else int(config["version"]),
        version=int(config["version"]),
        upgraded_from=str(up) if up is not None else None,
        location=backend.location,
    )


async def _get(backend: Backend, name: str) -> bytes | None:
    try:
        return await backend.get(name)
    except ObjectNotFoundError:
        return None


def _describe(data: bytes) -> str:
    """A config in a few words, for error messages: id, version, created; or what it is not."""
    try:
        o = json.loads(data)
    except ValueError:
        o = None
    head = f"blake3 {object_hash(data)[:16]}, {len(data)} bytes"
    if not isinstance(o, dict):
        return f"not a tiervault config; {head}"
    return f"id {str(o.get('id'))[:16]}, version {o.get('version')}, created {o.get('created')}; {head}"


def _conflict(backend: Backend, current: bytes, v2: bytes) -> str:
    return (
        f"upgrade stopped at {backend.location}: {CONFIG_NAME} is not this repository's "
        f"({_describe(current)}), "
        f"while {CONFIG_NEXT_NAME} holds its version-2 config ({_describe(v2)}); a concurrent init? "
        f"Nothing else was changed: keep {CONFIG_NEXT_NAME}, and remove the other {CONFIG_NAME} only if "
        "it is not wanted, then run the upgrade again"
    )


def _stray_next(backend: Backend, found: bytes) -> str:
    return (
        f"is not the version-2 upgrade of the config of the repository at {backend.location} "
        f"({_describe(found)}): no upgrade can finish, and nothing writes beside it with version-1 "
        f"rules; remove {CONFIG_NEXT_NAME} if it is not wanted (reading and restoring work)"
    )
