"""Pack files: many sealed chunks, then a sealed header listing them (docs/format.md, "Packs").

    prelude   24 bytes   magic "TVPK" | version u8 | kind u8 (0 data, 1 meta) | reserved u16 | salt 16
    blob i    n_i + 16   AES-256-GCM(unit key(salt), nonce=(0, offset of the blob),
                                     plaintext=stored payload, aad=chunk id (32) | flags (1))
    header    h + 16     AES-256-GCM(unit key(salt), nonce=(1, 0), plaintext=entries, aad=prelude)
    trailer   8 bytes    header length h+16 as u32 LE | magic "TVPH"

Header plaintext: u32 LE count, then ``count`` entries of 45 bytes:
chunk id (32) | offset u32 LE | stored length u32 LE (ciphertext incl. tag) | raw length u32 LE | flags u8.
Flags: bits 0-1 compression (0 raw, 1 zstd), bit 7 tree chunk. A pack is named by the BLAKE3 of its bytes.
"""

from __future__ import annotations

import enum
import mmap
import struct
from typing import NamedTuple

from tiervault.core import compress as _compress
from tiervault.core.crypto import ID_SIZE, SALT_SIZE, TAG_SIZE, UnitCipher
from tiervault.core.format import FORMAT_VERSION, FormatError

MAGIC = b"TVPK"
TRAILER_MAGIC = b"TVPH"
_PRELUDE = struct.Struct("<4sBBH16s")
PRELUDE_SIZE = _PRELUDE.size  # 24
_TRAILER = struct.Struct("<I4s")
TRAILER_SIZE = _TRAILER.size  # 8
_ENTRY = struct.Struct("<32sIIIB")
ENTRY_SIZE = _ENTRY.size  # 45
_COUNT = struct.Struct("<I")

FLAG_COMPRESSION_MASK = 0x03
FLAG_TREE = 0x80
BLOB_DOMAIN = 0
HEADER_DOMAIN = 1


class PackKind(enum.IntEnum):
    DATA = 0
    META = 1

    @property
    def prefix(self) -> str:
        return "data" if self is PackKind.DATA else "meta"


class PackEntry(NamedTuple):
    """One blob of a pack. A named tuple, so that index files decode without a Python call per entry."""

    id: bytes
    offset: int
    length: int
    raw_length: int
    flags: int


def blob_aad(cid: bytes, flags: int) -> bytes:
    return cid + bytes((flags,))


#: a pack is also finished once it holds this many chunks, which bounds its header
MAX_ENTRIES = 65536


class PackWriter:
    """Builds one pack in one buffer. Not thread-safe.

    With ``capacity`` the buffer is an anonymous memory map: pages cost nothing until written (no
    zero-filling of tens of MiB per pack) and go back to the system when the pack is dropped.
    """

    def __init__(
        self, master_encryption_key: bytes, kind: PackKind, *, compression_level: int = 3, capacity: int = 0
    ) -> None:
        self.kind = kind
        self._cipher = UnitCipher.new(master_encryption_key)
        self._prelude = _PRELUDE.pack(MAGIC, FORMAT_VERSION, int(kind), 0, self._cipher.salt)
        self._buf: bytearray | mmap.mmap = mmap.mmap(-1, capacity) if capacity else bytearray(1 << 16)
        self._buf[:PRELUDE_SIZE] = self._prelude
        self._len = PRELUDE_SIZE
        self._level = compression_level
        self.entries: list[PackEntry] = []

    @property
    def salt(self) -> bytes:
        return self._cipher.salt

    @property
    def size(self) -> int:
        return self._len

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def full(self) -> bool:
        return len(self.entries) >= MAX_ENTRIES

    def _reserve(self, n: int) -> memoryview:
        end = self._len + n
        if end > len(self._buf):
            grown = bytearray(max(end, len(self._buf) + len(self._buf) // 2))
            grown[: self._len] = self._buf[: self._len]
            self._buf = grown
        view = memoryview(self._buf)[self._len : end]
        self._len = end
        return view

    def add(self, cid: bytes, plaintext: bytes | memoryview) -> PackEntry:
        method, payload = _compress.compress(plaintext, self._level)
        flags = method | (FLAG_TREE if self.kind is PackKind.META else 0)
        offset = self._len
        out = self._reserve(len(payload) + TAG_SIZE)
        self._cipher.seal_into(BLOB_DOMAIN, offset, payload, blob_aad(cid, flags), out)
        out.release()
        entry = PackEntry(cid, offset, len(payload) + TAG_SIZE, len(plaintext), flags)
        self.entries.append(entry)
        return entry

    def finish(self) -> memoryview:
        """Append the sealed header and trailer; return the pack's bytes. The writer is spent."""
        plain = bytearray(_COUNT.pack(len(self.entries)))
        for e in self.entries:
            plain += _ENTRY.pack(e.id, e.offset, e.length, e.raw_length, e.flags)
        sealed = self._cipher.seal(HEADER_DOMAIN, 0, bytes(plain), self._prelude)
        out = self._reserve(len(sealed) + TRAILER_SIZE)
        out[: len(sealed)] = sealed
        out[len(sealed) :] = _TRAILER.pack(len(sealed), TRAILER_MAGIC)
        out.release()
        buf, self._buf = self._buf, bytearray()
        return memoryview(buf)[: self._len]  # keeps the buffer alive for as long as it is used


def parse_prelude(data: bytes | memoryview) -> tuple[PackKind, bytes]:
    if len(data) < PRELUDE_SIZE:
        raise FormatError("pack too short")
    magic, version, kind, _res, salt = _PRELUDE.unpack_from(data)
    if magic != MAGIC:
        raise FormatError("not a pack (bad magic)")
    if version != FORMAT_VERSION:
        raise FormatError(f"pack format version {version} is not supported")
    try:
        return PackKind(kind), bytes(salt)
    except ValueError as exc:
        raise FormatError(f"unknown pack kind {kind}") from exc


def header_length(trailer: bytes | memoryview) -> int:
    """Sealed header length from the last 8 bytes of a pack."""
    if len(trailer) != TRAILER_SIZE:
        raise FormatError("bad pack trailer")
    length, magic = _TRAILER.unpack(trailer)
    if magic != TRAILER_MAGIC:
        raise FormatError("bad pack trailer magic")
    return int(length)


def read_header(
    master_encryption_key: bytes, pack: bytes | memoryview
) -> tuple[PackKind, bytes, list[PackEntry]]:
    """Authenticate and parse a whole pack's header. Raises FormatError / AuthenticationFailed."""
    kind, salt = parse_prelude(pack)
    if len(pack) < PRELUDE_SIZE + TRAILER_SIZE + TAG_SIZE:
        raise FormatError("pack too short")
    hlen = header_length(pack[-TRAILER_SIZE:])
    start = len(pack) - TRAILER_SIZE - hlen
    if start < PRELUDE_SIZE:
        raise FormatError("pack header length out of range")
    entries = open_header(
        master_encryption_key, pack[:PRELUDE_SIZE], pack[start : len(pack) - TRAILER_SIZE], start
    )
    return kind, salt, entries


def open_header(
    master_encryption_key: bytes, prelude: bytes | memoryview, sealed: bytes | memoryview, start: int
) -> list[PackEntry]:
    """Authenticate and parse a header read on its own (ranged reads of prelude, header and trailer);
    ``start`` is the header's offset in the pack, which bounds every entry."""
    _kind, salt = parse_prelude(prelude)
    plain = UnitCipher(master_encryption_key, salt).open(
        HEADER_DOMAIN, 0, sealed, bytes(prelude[:PRELUDE_SIZE])
    )
    return decode_entries(plain, limit=start)


def decode_entries(plain: bytes, *, limit: int) -> list[PackEntry]:
    if len(plain) < _COUNT.size:
        raise FormatError("pack header too short")
    (count,) = _COUNT.unpack_from(plain)
    if len(plain) != _COUNT.size + count * ENTRY_SIZE:
        raise FormatError("pack header size does not match its entry count")
    out = []
    for i in range(count):
        cid, off, length, raw, flags = _ENTRY.unpack_from(plain, _COUNT.size + i * ENTRY_SIZE)
        if off < PRELUDE_SIZE or off + length > limit or length < TAG_SIZE:
            raise FormatError("pack entry out of range")
        out.append(PackEntry(cid, off, length, raw, flags))
    return out


def open_blob(cipher: UnitCipher, entry: PackEntry, sealed: bytes | memoryview) -> bytes:
    """Authenticate and decompress one blob; the caller then checks its keyed id."""
    payload = cipher.open(BLOB_DOMAIN, entry.offset, sealed, blob_aad(entry.id, entry.flags))
    try:
        return _compress.decompress(entry.flags & FLAG_COMPRESSION_MASK, payload, entry.raw_length)
    except Exception as exc:
        raise FormatError(f"chunk payload does not decompress: {exc}") from exc


__all__ = ["ID_SIZE", "SALT_SIZE", "PackEntry", "PackKind", "PackWriter"]
