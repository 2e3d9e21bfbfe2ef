"""Index file encoding."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiervault.core.format import FormatError
from tiervault.core.format.indexfile import PackRecord, decode_index, encode_index
from tiervault.core.format.pack import PackEntry, PackKind

u32 = st.integers(0, 2**32 - 1)
entries = st.builds(
    PackEntry,
    id=st.binary(min_size=32, max_size=32),
    offset=u32,
    length=u32,
    raw_length=u32,
    flags=st.integers(0, 255),
)
records = st.builds(
    PackRecord,
    pack_id=st.binary(min_size=32, max_size=32).map(bytes.hex),
    kind=st.sampled_from(list(PackKind)),
    salt=st.binary(min_size=16, max_size=16),
    entries=st.lists(entries, max_size=8).map(tuple),
)
record_lists = st.lists(records, max_size=6)


@settings(max_examples=100, deadline=None)
@given(recs=record_lists)
def test_roundtrip(recs: list[PackRecord]) -> None:
    data = encode_index(recs)
    assert decode_index(data) == recs
    assert encode_index(decode_index(data)) == data
    assert encode_index(iter(recs)) == data  # any iterable


def test_layout() -> None:
    e = PackEntry(b"\x01" * 32, 24, 100, 84, 1)
    rec = PackRecord("ab" * 32, PackKind.META, b"\x02" * 16, (e,))
    data = encode_index([rec])
    assert data[:4] == (1).to_bytes(4, "little")
    assert data[4:36] == b"\xab" * 32
    assert data[36] == 1
    assert data[37:53] == b"\x02" * 16
    assert data[53:57] == (1).to_bytes(4, "little")
    assert data[57:] == struct.pack("<32sIIIB", e.id, 24, 100, 84, 1)
    assert len(data) == 4 + 53 + 45


@settings(max_examples=100, deadline=None)
@given(recs=record_lists.filter(bool), data=st.data())
def test_truncated_is_a_format_error(recs: list[PackRecord], data: st.DataObject) -> None:
    encoded = encode_index(recs)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(FormatError):
        decode_index(encoded[:cut])


def test_every_truncation_is_a_format_error() -> None:
    e = PackEntry(b"\x01" * 32, 24, 100, 84, 1)
    encoded = encode_index(
        [
            PackRecord("ab" * 32, PackKind.DATA, b"\x02" * 16, (e, e)),
            PackRecord("cd" * 32, PackKind.META, b"\x03" * 16, ()),
        ]
    )
    for cut in range(len(encoded)):
        with pytest.raises(FormatError):
            decode_index(encoded[:cut])


@settings(max_examples=50, deadline=None)
@given(recs=record_lists, extra=st.binary(min_size=1, max_size=50))
def test_trailing_bytes_are_a_format_error(recs: list[PackRecord], extra: bytes) -> None:
    with pytest.raises(FormatError):
        decode_index(encode_index(recs) + extra)


def test_unknown_pack_kind_is_a_format_error() -> None:
    data = bytearray(encode_index([PackRecord("ab" * 32, PackKind.DATA, b"\x02" * 16, ())]))
    data[36] = 7
    with pytest.raises(FormatError):
        decode_index(bytes(data))


def test_huge_counts_are_a_format_error() -> None:
    with pytest.raises(FormatError):
        decode_index(b"\xff\xff\xff\xff")
    data = bytearray(encode_index([PackRecord("ab" * 32, PackKind.DATA, b"\x02" * 16, ())]))
    data[53:57] = b"\xff\xff\xff\xff"
    with pytest.raises(FormatError):
        decode_index(bytes(data))


def test_empty_index() -> None:
    assert encode_index([]) == b"\x00\x00\x00\x00"
    assert decode_index(b"\x00\x00\x00\x00") == []
