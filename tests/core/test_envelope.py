"""Sealed objects (index files, snapshots, items, checkpoints)."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiervault.core.crypto import AuthenticationFailed
from tiervault.core.format import FORMAT_VERSION, FormatError
from tiervault.core.format.envelope import HEADER_SIZE, MAGIC, ObjectType, open_object, seal_object

KEY = bytes(range(32))

plaintexts = st.one_of(
    st.binary(max_size=2000),
    st.builds(lambda n, b: bytes([b]) * n, st.integers(0, 50_000), st.integers(0, 255)),  # compressible
    st.builds(lambda seed, n: random.Random(seed).randbytes(n), st.integers(0, 999), st.integers(0, 5000)),
)


@pytest.mark.parametrize("otype", list(ObjectType))
@pytest.mark.parametrize("plain", [b"", b"{}", b'{"a":1}' * 5000, os.urandom(3000)])
def test_roundtrip_each_type(otype: ObjectType, plain: bytes) -> None:
    sealed = seal_object(KEY, otype, plain)
    assert sealed[:4] == MAGIC
    assert sealed[4] == FORMAT_VERSION
    assert sealed[5] == int(otype)
    assert open_object(KEY, otype, sealed) == plain


@settings(max_examples=100, deadline=None)
@given(plain=plaintexts, otype=st.sampled_from(list(ObjectType)))
def test_roundtrip_property(plain: bytes, otype: ObjectType) -> None:
    assert open_object(KEY, otype, seal_object(KEY, otype, plain)) == plain


def test_each_seal_uses_a_fresh_salt() -> None:
    a = seal_object(KEY, ObjectType.SNAPSHOT, b"same")
    b = seal_object(KEY, ObjectType.SNAPSHOT, b"same")
    assert a != b
    assert a[8:24] != b[8:24]


@pytest.mark.parametrize("otype", list(ObjectType))
def test_wrong_type_is_a_format_error(otype: ObjectType) -> None:
    sealed = seal_object(KEY, otype, b"payload")
    for other in ObjectType:
        if other is not otype:
            with pytest.raises(FormatError):
                open_object(KEY, other, sealed)


def test_wrong_key_fails_authentication() -> None:
    sealed = seal_object(KEY, ObjectType.INDEX, b"payload")
    with pytest.raises(AuthenticationFailed):
        open_object(bytes(32), ObjectType.INDEX, sealed)


def test_not_an_object() -> None:
    for data in (b"", b"TVOB", b"x" * 100, b"TVPK" + bytes(60)):
        with pytest.raises(FormatError):
            open_object(KEY, ObjectType.INDEX, data)


def test_other_version_is_a_format_error() -> None:
    sealed = bytearray(seal_object(KEY, ObjectType.ITEM, b"x"))
    sealed[4] = FORMAT_VERSION + 1
    with pytest.raises(FormatError, match="version"):
        open_object(KEY, ObjectType.ITEM, bytes(sealed))


@settings(max_examples=300, deadline=None)
@given(plain=plaintexts, otype=st.sampled_from(list(ObjectType)), data=st.data())
def test_any_flipped_byte_is_detected(plain: bytes, otype: ObjectType, data: st.DataObject) -> None:
    sealed = bytearray(seal_object(KEY, otype, plain))
    # bias towards the header, where the parsing happens, but cover every byte
    pos = data.draw(st.one_of(st.integers(0, HEADER_SIZE - 1), st.integers(0, len(sealed) - 1)))
    sealed[pos] ^= data.draw(st.integers(1, 255))
    with pytest.raises((AuthenticationFailed, FormatError)):
        open_object(KEY, otype, bytes(sealed))


@settings(max_examples=100, deadline=None)
@given(plain=plaintexts, data=st.data())
def test_truncated_or_extended_is_detected(plain: bytes, data: st.DataObject) -> None:
    sealed = seal_object(KEY, ObjectType.SNAPSHOT, plain)
    if data.draw(st.booleans()):
        damaged = sealed[: data.draw(st.integers(0, len(sealed) - 1))]
    else:
        damaged = sealed + data.draw(st.binary(min_size=1, max_size=32))
    with pytest.raises((AuthenticationFailed, FormatError)):
        open_object(KEY, ObjectType.SNAPSHOT, damaged)
