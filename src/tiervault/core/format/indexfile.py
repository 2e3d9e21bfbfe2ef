"""Index files: which chunk lives where (docs/format.md, "Index files"). Sealed in an envelope (type 1).

Plaintext: u32 LE pack count, then per pack:
pack id (32 raw bytes, the BLAKE3 of the pack) | kind u8 | salt (16) | u32 LE entry count |
entries of 45 bytes exactly as in the pack header.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from tiervault.core.format import FormatError
from tiervault.core.format.pack import ENTRY_SIZE, PackEntry, PackKind

_PACK = struct.Struct("<32sB16sI")
_ENTRY = struct.Struct("<32sIIIB")
_make_entry = functools.partial(tuple.__new__, PackEntry)
_COUNT = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class PackRecord:
    pack_id: str  # hex
    kind: PackKind
    salt: bytes
    entries: tuple[PackEntry, ...]


def encode_index(packs: Iterable[PackRecord]) -> bytes:
    plist = list(packs)
    out = bytearray(_COUNT.pack(len(plist)))
    for p in plist:
        out += _PACK.pack(bytes.fromhex(p.pack_id), int(p.kind), p.salt, len(p.entries))
        for e in p.entries:
            out += _ENTRY.pack(e.id, e.offset, e.length, e.raw_length, e.flags)
    return bytes(out)


def decode_index(data: bytes) -> list[PackRecord]:
    try:
        (npacks,) = _COUNT.unpack_from(data)
        pos = _COUNT.size
        out = []
        for _ in range(npacks):
            pid, kind, salt, count = _PACK.unpack_from(data, pos)
            pos += _PACK.size
            if pos + count * ENTRY_SIZE > len(data):
                raise FormatError("index truncated")
            raw = memoryview(data)[pos : pos + count * ENTRY_SIZE]
            entries = tuple(map(_make_entry, _ENTRY.iter_unpack(raw)))  # all in C: no call per entry
            pos += count * ENTRY_SIZE
            out.append(PackRecord(pid.hex(), PackKind(kind), salt, entries))
    except (struct.error, ValueError) as exc:
        raise FormatError(f"bad index: {exc}") from exc
    if pos != len(data):
        raise FormatError("trailing bytes in index")
    return out
