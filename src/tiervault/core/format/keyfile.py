"""Config and key slots (docs/format.md, "config" and "Keys").

``config`` is plaintext canonical JSON so that the format version can be checked before any password
is asked. Its BLAKE3 hash is sealed inside the master keys, so a modified config is detected on open.
A key slot is JSON: scrypt parameters and salt, and the master keys sealed with AES-256-GCM under the
scrypt-derived key, with the repository id as associated data.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from tiervault.core.crypto import MasterKeys, ScryptParams, object_hash, unwrap, wrap
from tiervault.core.format import REPOSITORY_VERSIONS, WRITE_FEATURES, FormatError

CONFIG_NAME = "config"
#: the version-2 ``config`` while an upgrade from version 1 runs (docs/format.md, "Upgrading to version 2")
CONFIG_NEXT_NAME = "config.next"
REPOSITORY_KIND = "tiervault-repository"


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _unb64(s: Any) -> bytes:
    return base64.b64decode(str(s), validate=True)


@dataclass(frozen=True, slots=True)
class KeySlot:
    params: ScryptParams
    salt: bytes
    nonce: bytes
    sealed: bytes
    created: str
    host: str
    user: str

    def to_bytes(self) -> bytes:
        return canonical_json(
            {
                "v": 1,
                "kdf": "scrypt",
                "log_n": self.params.log_n,
                "r": self.params.r,
                "p": self.params.p,
                "salt": _b64(self.salt),
                "nonce": _b64(self.nonce),
                "data": _b64(self.sealed),
                "created": self.created,
                "host": self.host,
                "user": self.user,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> KeySlot:
        try:
            o = json.loads(data)
            if not isinstance(o, dict):
                raise FormatError("key slot is not a JSON object")
            if o.get("v") != 1 or o.get("kdf") != "scrypt":
                raise FormatError(f"unsupported key slot (v={o.get('v')}, kdf={o.get('kdf')})")
            return cls(
                params=ScryptParams(int(o["log_n"]), int(o["r"]), int(o["p"])),
                salt=_unb64(o["salt"]),
                nonce=_unb64(o["nonce"]),
                sealed=_unb64(o["data"]),
                created=str(o.get("created", "")),
                host=str(o.get("host", "")),
                user=str(o.get("user", "")),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if isinstance(exc, FormatError):
                raise
            raise FormatError(f"bad key slot: {exc}") from exc


def _aad(repository_id: str) -> bytes:
    return b"tiervault key slot v1:" + repository_id.encode("ascii")


def seal_keys(
    master: MasterKeys,
    config_hash: str,
    repository_id: str,
    password: bytes,
    params: ScryptParams,
    *,
    salt: bytes,
    created: str,
    host: str,
    user: str,
) -> KeySlot:
    kek = params.derive(password, salt)
    body = canonical_json(
        {
            "encryption": _b64(master.encryption),
            "chunk_id": _b64(master.chunk_id),
            "chunker_seed": master.chunker_seed,
            "config_hash": config_hash,
        }
    )
    nonce, sealed = wrap(kek, body, _aad(repository_id))
    return KeySlot(params, salt, nonce, sealed, created, host, user)


def open_keys(slot: KeySlot, repository_id: str, password: bytes) -> tuple[MasterKeys, str]:
    """Return (master keys, sealed config hash); raises AuthenticationFailed on a wrong password."""
    kek = slot.params.derive(password, slot.salt)
    body = json.loads(unwrap(kek, slot.nonce, slot.sealed, _aad(repository_id)))
    master = MasterKeys(_unb64(body["encryption"]), _unb64(body["chunk_id"]), int(body["chunker_seed"]))
    return master, str(body["config_hash"])


def encode_config(
    repository_id: str,
    created: str,
    chunker: dict[str, Any],
    pack_size: int,
    *,
    version: int = REPOSITORY_VERSIONS[-1],
    upgraded_from: str | None = None,
) -> bytes:
    """``config`` as stored. Version 2 adds ``write_features``, ``read_features`` and, for a repository
    upgraded from version 1, ``upgraded_from`` (docs/format.md, "config")."""
    extra: dict[str, Any] = {}
    if version >= 2:
        extra = {"write_features": list(WRITE_FEATURES), "read_features": []}
        if upgraded_from is not None:
            extra["upgraded_from"] = upgraded_from
    return canonical_json(
        {
            **extra,
            "kind": REPOSITORY_KIND,
            "version": version,
            "id": repository_id,
            "created": created,
            "chunker": chunker,
            "chunk_hash": "blake3-keyed",
            "object_hash": "blake3",
            "cipher": "aes-256-gcm",
            "kdf": "scrypt",
            "compression": "zstd",
            "pack_size": pack_size,
        }
    )


def decode_config(data: bytes) -> dict[str, Any]:
    """Parse config; raises FormatError for non-repositories, and returns the version for the caller
    to check (a newer version is an UnsupportedFormatError, not a damaged object)."""
    try:
        o = json.loads(data)
    except ValueError as exc:
        raise FormatError(f"config is not JSON: {exc}") from exc
    if not isinstance(o, dict) or o.get("kind") != REPOSITORY_KIND or type(o.get("version")) is not int:
        raise FormatError("not a tiervault config")
    if o["version"] >= 2:
        for key in ("write_features", "read_features"):
            value = o.get(key)
            if not isinstance(value, list) or not all(isinstance(f, str) for f in value):
                raise FormatError(f"config {key} must be a list of strings")
        up = o.get("upgraded_from")
        if up is not None and not (isinstance(up, str) and len(up) == 64):
            raise FormatError("config upgraded_from must be 64 hex digits")
    return o


def version1_bytes(config: dict[str, Any]) -> bytes:
    """The version-1 ``config`` a version-2 one was upgraded from: the same fields, ``version`` 1,
    without the version-2 fields, in canonical JSON (docs/format.md, "Opening a repository", step 5)."""
    old = {k: v for k, v in config.items() if k not in ("write_features", "read_features", "upgraded_from")}
    return canonical_json({**old, "version": 1})


def upgraded_config(v1_bytes: bytes) -> bytes:
    """The version-2 ``config`` an upgrade stores for the version-1 ``config`` ``v1_bytes``: every field
    kept, ``version`` 2, this code's ``write_features``, no ``read_features``, and ``upgraded_from``
    (``blake3`` of ``v1_bytes``, the hash its key slots sealed). Raises FormatError unless
    ``version1_bytes`` of the result gives back ``v1_bytes`` exactly (a config not in canonical form),
    since key slots sealed for ``v1_bytes`` would then no longer open."""
    old = decode_config(v1_bytes)
    if old["version"] != 1:
        raise FormatError(f"config is version {old['version']}, not 1")
    new = canonical_json(
        {
            **old,
            "version": 2,
            "write_features": list(WRITE_FEATURES),
            "read_features": [],
            "upgraded_from": object_hash(v1_bytes),
        }
    )
    if version1_bytes(decode_config(new)) != v1_bytes:
        raise FormatError(
            "config is not in canonical JSON form, so the key slots could not vouch for its upgrade"
        )
    return new


def is_upgrade_of(v2_bytes: bytes, v1_bytes: bytes) -> bool:
    """Whether ``v2_bytes`` is a version-2 ``config`` upgraded from ``v1_bytes``, by this or another
    tiervault (whose ``write_features`` may differ): the same version-1 fields, and their hash."""
    try:
        new = decode_config(v2_bytes)
    except FormatError:
        return False
    return (
        new["version"] == 2
        and new.get("upgraded_from") == object_hash(v1_bytes)
        and version1_bytes(new) == v1_bytes
    )
