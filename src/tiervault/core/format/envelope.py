"""Sealed objects: index files, snapshots, items, checkpoints, gc, heartbeats, rehydrations.

offset size  field
0      4     magic "TVOB"
4      1     format version (1)
5      1     object type (ObjectType)
6      1     compression of the plaintext (0 raw, 1 zstd)
7      1     reserved, 0
8      16    salt
24     n+16  AES-256-GCM(unit key(salt), nonce=(0,0), plaintext, aad=bytes 0..24)
"""

from __future__ import annotations

import enum
import struct

import zstandard

from tiervault.core import compress as _compress
from tiervault.core.crypto import SALT_SIZE, TAG_SIZE, AuthenticationFailed, UnitCipher
from tiervault.core.format import FORMAT_VERSION, FormatError

MAGIC = b"TVOB"
_HEAD = struct.Struct("<4sBBBB16s")
HEADER_SIZE = _HEAD.size
#: decompressed objects are bounded (a hostile frame cannot make us allocate without limit)
MAX_PLAINTEXT = 1 << 30


class ObjectType(enum.IntEnum):
    INDEX = 1
    SNAPSHOT = 2
    ITEM = 3
    CHECKPOINT = 4
    PLAN = 5  #: format version 2: gc/<h>, packs a prune condemned
    GONE = 6  #: format version 2: gc/<h>, packs a sweep deletes
    HEARTBEAT = 7  #: format version 2: locks/<h>, a writer or prune making itself known
    REHYDRATION = 8  #: restore/<h>, a restore from Archive in progress (its staging copies)


def seal_object(master_encryption_key: bytes, otype: ObjectType, plaintext: bytes) -> bytes:
    method, payload = _compress.compress(plaintext, level=3)
    cipher = UnitCipher.new(master_encryption_key)
    head = _HEAD.pack(MAGIC, FORMAT_VERSION, int(otype), method, 0, cipher.salt)
    return head + cipher.seal(0, 0, payload, head)


def open_object(master_encryption_key: bytes, otype: ObjectType, data: bytes) -> bytes:
    """Authenticate and decode; raises FormatError (not ours / damaged) or AuthenticationFailed."""
    if len(data) < HEADER_SIZE + TAG_SIZE:
        raise FormatError("too short for a sealed object")
    magic, version, found_type, method, _reserved, salt = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise FormatError("bad magic")
    if version != FORMAT_VERSION:
        raise FormatError(f"object format version {version} is not supported")
    if found_type != otype:
        raise FormatError(f"expected object type {otype.name}, found {found_type}")
    assert len(salt) == SALT_SIZE
    payload = UnitCipher(master_encryption_key, salt).open(
        0, 0, memoryview(data)[HEADER_SIZE:], data[:HEADER_SIZE]
    )
    try:
        if method == _compress.ZSTD:
            _compress.bounded_decompress(payload, MAX_PLAINTEXT)
            out: bytes = zstandard.ZstdDecompressor().decompress(payload, max_output_size=MAX_PLAINTEXT)
            return out
        if method == _compress.RAW:
            return payload
    except (zstandard.ZstdError, ValueError) as exc:
        raise FormatError(f"bad compressed payload: {exc}") from exc
    raise FormatError(f"unknown compression {method}")


__all__ = ["AuthenticationFailed", "ObjectType", "open_object", "seal_object"]
