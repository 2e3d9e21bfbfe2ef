"""zstd with a raw fallback."""

from __future__ import annotations

import random
import tracemalloc

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from tiervault.core import compress as c


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=20_000), level=st.integers(1, 9))
def test_roundtrip(data: bytes, level: int) -> None:
    method, payload = c.compress(data, level)
    assert method in (c.RAW, c.ZSTD)
    if method == c.ZSTD:
        assert len(payload) < len(data)
    else:
        assert bytes(payload) == data
    assert c.decompress(method, bytes(payload), len(data)) == data


def test_compressible_data_is_compressed() -> None:
    data = b"tiervault " * 10_000
    method, payload = c.compress(data)
    assert method == c.ZSTD
    assert len(payload) < len(data) // 10
    assert c.decompress(method, bytes(payload), len(data)) == data


@pytest.mark.parametrize("size", [64, 4096, 1 << 20])
def test_incompressible_data_is_stored_raw(size: int) -> None:
    data = random.Random(size).randbytes(size)
    method, payload = c.compress(data)
    assert method == c.RAW
    assert bytes(payload) == data


def test_tiny_inputs_are_stored_raw() -> None:
    for data in (b"", b"a" * 63):
        method, payload = c.compress(data)
        assert (method, bytes(payload)) == (c.RAW, data)


def test_memoryview_input() -> None:
    data = b"abc" * 1000
    method, payload = c.compress(memoryview(data))
    assert c.decompress(method, bytes(payload), len(data)) == data


@pytest.mark.parametrize("delta", [-1, 1, -2999, 10**6])
def test_zstd_with_wrong_raw_length_raises(delta: int) -> None:
    data = b"x" * 3000
    method, payload = c.compress(data)
    assert method == c.ZSTD
    with pytest.raises((ValueError, zstandard.ZstdError)):
        c.decompress(method, bytes(payload), len(data) + delta)


def test_zstd_frame_without_content_size_and_wrong_raw_length_raises() -> None:
    data = b"y" * 3000
    frame = zstandard.ZstdCompressor(write_content_size=False).compress(data)
    assert c.decompress(c.ZSTD, frame, len(data)) == data
    for wrong in (len(data) - 1, len(data) + 1, 10):
        with pytest.raises((ValueError, zstandard.ZstdError)):
            c.decompress(c.ZSTD, frame, wrong)


@pytest.mark.parametrize("wrong", [0, 2, 4])
def test_raw_with_wrong_raw_length_raises(wrong: int) -> None:
    with pytest.raises(ValueError):
        c.decompress(c.RAW, b"abc", wrong)


def test_hostile_frame_cannot_balloon() -> None:
    declared = 64 << 20
    comp = zstandard.ZstdCompressor()
    frame = comp.compress(bytes(declared))  # 64 MiB of zeros in a few KiB, content size in the header
    tracemalloc.start()
    try:
        with pytest.raises((ValueError, zstandard.ZstdError)):
            c.decompress(c.ZSTD, frame, 1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"decompressing allocated {peak} bytes for a 1000-byte chunk"


def test_unknown_method_raises() -> None:
    with pytest.raises(ValueError):
        c.decompress(2, b"abc", 3)


def test_garbage_zstd_payload_raises() -> None:
    with pytest.raises((ValueError, zstandard.ZstdError)):
        c.decompress(c.ZSTD, b"\x28\xb5\x2f\xfd" + b"garbage" * 10, 100)


def test_incompressible_chunks_are_stored_raw_without_a_full_pass() -> None:
    rnd = random.Random(5).randbytes(1 << 20)
    assert c.looks_incompressible(rnd)
    method, payload = c.compress(rnd)
    assert method == c.RAW and payload == rnd
    text = b"the same line of text, again and again\n" * 30000
    assert not c.looks_incompressible(text)
    method, payload = c.compress(text)
    assert method == c.ZSTD and c.decompress(method, bytes(payload), len(text)) == text
