"""Packs: many sealed chunks and a sealed header that lists them."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiervault.core import compress
from tiervault.core.crypto import TAG_SIZE, AuthenticationFailed, UnitCipher, chunk_id
from tiervault.core.format import FORMAT_VERSION, FormatError
from tiervault.core.format.pack import (
    FLAG_COMPRESSION_MASK,
    FLAG_TREE,
    MAGIC,
    PRELUDE_SIZE,
    TRAILER_MAGIC,
    TRAILER_SIZE,
    PackEntry,
    PackKind,
    PackWriter,
    header_length,
    open_blob,
    parse_prelude,
    read_header,
)

KEY = bytes(range(32))
ID_KEY = bytes(range(32, 64))

chunk_data = st.one_of(
    st.binary(min_size=0, max_size=3000),
    st.builds(lambda n, b: bytes([b]) * n, st.integers(64, 20_000), st.integers(0, 255)),
    st.builds(lambda seed, n: random.Random(seed).randbytes(n), st.integers(0, 999), st.integers(1, 6000)),
)
chunk_lists = st.lists(chunk_data, min_size=0, max_size=12, unique=True)


def build(kind: PackKind, chunks: list[bytes], capacity: int = 0) -> tuple[bytes, bytes, list[PackEntry]]:
    w = PackWriter(KEY, kind, capacity=capacity)
    for c in chunks:
        w.add(chunk_id(ID_KEY, c), c)
    assert len(w) == len(chunks)
    entries = list(w.entries)
    salt = w.salt
    return bytes(w.finish()), salt, entries


def open_all(pack: bytes) -> dict[bytes, bytes]:
    """What a reader gets: read the header, then open every blob (raises on any damage)."""
    _kind, salt, entries = read_header(KEY, pack)
    cipher = UnitCipher(KEY, salt)
    return {e.id: open_blob(cipher, e, pack[e.offset : e.offset + e.length]) for e in entries}


@settings(max_examples=100, deadline=None)
@given(
    chunks=chunk_lists,
    kind=st.sampled_from(list(PackKind)),
    capacity=st.sampled_from([0, 4096, 1 << 20]),  # growable buffer; memory map, outgrown or not
)
def test_header_lists_what_was_written_and_every_blob_opens(
    chunks: list[bytes], kind: PackKind, capacity: int
) -> None:
    pack, salt, entries = build(kind, chunks, capacity)
    got_kind, got_salt, got_entries = read_header(KEY, pack)
    assert (got_kind, got_salt, got_entries) == (kind, salt, entries)
    cipher = UnitCipher(KEY, salt)
    for e, plain in zip(entries, chunks, strict=True):
        assert e.id == chunk_id(ID_KEY, plain)
        assert e.raw_length == len(plain)
        assert bool(e.flags & FLAG_TREE) == (kind is PackKind.META)
        assert e.flags & FLAG_COMPRESSION_MASK in (compress.RAW, compress.ZSTD)
        assert open_blob(cipher, e, pack[e.offset : e.offset + e.length]) == plain
        assert open_blob(cipher, e, memoryview(pack)[e.offset : e.offset + e.length]) == plain


@settings(max_examples=60, deadline=None)
@given(chunks=chunk_lists)
def test_layout_offsets_and_nonces_are_unique(chunks: list[bytes]) -> None:
    pack, _salt, entries = build(PackKind.DATA, chunks)
    assert pack[:4] == MAGIC and pack[4] == FORMAT_VERSION
    assert pack[-4:] == TRAILER_MAGIC
    # blobs are laid end to end from the prelude on: offsets (the blob nonces) are strictly increasing
    pos = PRELUDE_SIZE
    for e in entries:
        assert e.offset == pos
        assert e.length >= TAG_SIZE
        pos += e.length
    assert len({e.offset for e in entries}) == len(entries)
    # then the header (nonce domain 1, so it never shares a nonce with a blob) and the trailer
    assert pos + header_length(pack[-TRAILER_SIZE:]) + TRAILER_SIZE == len(pack)


def test_writers_use_fresh_salts() -> None:
    a, b = PackWriter(KEY, PackKind.DATA), PackWriter(KEY, PackKind.DATA)
    assert a.salt != b.salt
    pa, _, ea = build(PackKind.DATA, [b"same chunk" * 10])
    pb, _, eb = build(PackKind.DATA, [b"same chunk" * 10])
    assert pa != pb
    assert ea == eb  # same id, offset and lengths: only the key (salt) differs


def test_size_tracks_the_buffer() -> None:
    w = PackWriter(KEY, PackKind.DATA)
    assert w.size == PRELUDE_SIZE
    e = w.add(b"\x01" * 32, random.Random(1).randbytes(1000))
    assert w.size == PRELUDE_SIZE + e.length == PRELUDE_SIZE + 1000 + TAG_SIZE
    assert e.flags & FLAG_COMPRESSION_MASK == compress.RAW


def test_compressible_chunk_is_stored_compressed() -> None:
    pack, _salt, [e] = build(PackKind.META, [b"a" * 10_000])
    assert e.flags == compress.ZSTD | FLAG_TREE
    assert e.length < 1000
    assert open_all(pack) == {e.id: b"a" * 10_000}


def test_empty_pack() -> None:
    pack, salt, entries = build(PackKind.DATA, [])
    assert entries == []
    assert read_header(KEY, pack) == (PackKind.DATA, salt, [])


def test_wrong_key_fails() -> None:
    pack, _, _ = build(PackKind.DATA, [b"x" * 100])
    with pytest.raises(AuthenticationFailed):
        read_header(bytes(32), pack)


def test_blob_bound_to_its_entry() -> None:
    pack, salt, [a, b] = build(PackKind.DATA, [b"first chunk" * 20, b"second chunk" * 20])
    cipher = UnitCipher(KEY, salt)
    blob_a = pack[a.offset : a.offset + a.length]
    # same bytes opened under another entry (other id, offset or flags) never authenticate
    for other in (
        PackEntry(b.id, a.offset, a.length, a.raw_length, a.flags),
        PackEntry(a.id, b.offset, a.length, a.raw_length, a.flags),
        PackEntry(a.id, a.offset, a.length, a.raw_length, a.flags ^ FLAG_TREE),
    ):
        with pytest.raises(AuthenticationFailed):
            open_blob(cipher, other, blob_a)
    # an authentic blob with a raw length that does not match is a format error, not wrong data
    assert a.flags & FLAG_COMPRESSION_MASK == compress.ZSTD
    with pytest.raises(FormatError):
        open_blob(cipher, PackEntry(a.id, a.offset, a.length, a.raw_length + 1, a.flags), blob_a)


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(chunk_data, min_size=1, max_size=6, unique=True), data=st.data())
def test_any_flipped_byte_is_detected(chunks: list[bytes], data: st.DataObject) -> None:
    pack, _salt, _entries = build(data.draw(st.sampled_from(list(PackKind))), chunks)
    expected = {chunk_id(ID_KEY, c): c for c in chunks}
    damaged = bytearray(pack)
    n = len(pack)
    # the structural parts (prelude, trailer) are tiny: draw them often, but every byte can be drawn
    pos = data.draw(
        st.one_of(
            st.integers(0, PRELUDE_SIZE - 1), st.integers(n - TRAILER_SIZE, n - 1), st.integers(0, n - 1)
        )
    )
    damaged[pos] ^= data.draw(st.integers(1, 255))
    damaged_bytes = bytes(damaged)
    try:
        _kind, salt, entries = read_header(KEY, damaged_bytes)
    except (AuthenticationFailed, FormatError):
        return  # detected at the header
    # the header still authenticates, so it is the original one; the damage is in a blob
    assert {e.id for e in entries} == set(expected)
    cipher = UnitCipher(KEY, salt)
    failures = 0
    for e in entries:
        try:
            plain = open_blob(cipher, e, damaged_bytes[e.offset : e.offset + e.length])
        except (AuthenticationFailed, FormatError):
            failures += 1
            continue
        assert plain == expected[e.id], "a damaged pack returned wrong plaintext"
    assert failures >= 1, f"flipping byte {pos} of {n} went unnoticed"


def test_truncated_pack_is_detected() -> None:
    pack, _, _ = build(PackKind.DATA, [b"abc" * 100, b"def" * 100])
    for cut in (0, 10, PRELUDE_SIZE, PRELUDE_SIZE + 20, len(pack) - TRAILER_SIZE, len(pack) - 1):
        with pytest.raises((AuthenticationFailed, FormatError)):
            read_header(KEY, pack[:cut])


def test_prelude_and_trailer_parsing() -> None:
    pack, salt, _ = build(PackKind.META, [b"x"])
    assert parse_prelude(pack) == (PackKind.META, salt)
    with pytest.raises(FormatError):
        parse_prelude(pack[:10])
    with pytest.raises(FormatError):
        parse_prelude(b"TVOB" + pack[4:])
    bad_kind = bytearray(pack)
    bad_kind[5] = 9
    with pytest.raises(FormatError):
        parse_prelude(bytes(bad_kind))
    bad_version = bytearray(pack)
    bad_version[4] = FORMAT_VERSION + 1
    with pytest.raises(FormatError, match="version"):
        parse_prelude(bytes(bad_version))
    with pytest.raises(FormatError):
        header_length(pack[-7:])
    with pytest.raises(FormatError):
        header_length(pack[-TRAILER_SIZE:-4] + b"XXXX")


def test_header_length_pointing_before_the_prelude_is_rejected() -> None:
    pack = bytearray(build(PackKind.DATA, [b"x" * 10])[0])
    pack[-TRAILER_SIZE : -TRAILER_SIZE + 4] = (len(pack)).to_bytes(4, "little")
    with pytest.raises(FormatError):
        read_header(KEY, bytes(pack))
