"""zstd compression with a raw fallback. One compressor per thread: zstd contexts are not thread-safe."""

from __future__ import annotations

import threading

import zstandard

RAW = 0
ZSTD = 1

_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "c", None)
    if cache is None:
        cache = _local.c = {}
    comp = cache.get(level)
    if comp is None:
        comp = cache[level] = zstandard.ZstdCompressor(level=level)
    return comp


def _decompressor() -> zstandard.ZstdDecompressor:
    d: zstandard.ZstdDecompressor | None = getattr(_local, "d", None)
    if d is None:
        d = _local.d = zstandard.ZstdDecompressor()
    return d


#: chunks at least this large are sampled first: incompressible data (media, encrypted or already
#: compressed files) is stored raw without paying for a full zstd pass that would be thrown away
SAMPLE_FROM = 256 * 1024
_SAMPLE = 16 * 1024


def looks_incompressible(data: bytes | memoryview, level: int = 3) -> bool:
    """Three 16 KiB windows (start, middle, end) that zstd cannot shrink by 3 %."""
    n = len(data)
    mid = n // 2
    sample = bytes(data[:_SAMPLE]) + bytes(data[mid : mid + _SAMPLE]) + bytes(data[n - _SAMPLE :])
    return len(_compressor(level).compress(sample)) > 0.97 * len(sample)


def compress(data: bytes | memoryview, level: int = 3) -> tuple[int, bytes | memoryview]:
    """Return (method, payload): zstd when it shrinks the data, the data itself (RAW) otherwise."""
    if len(data) < 64:
        return RAW, data
    if len(data) >= SAMPLE_FROM and looks_incompressible(data, level):
        return RAW, data
    packed: bytes = _compressor(level).compress(data)
    if len(packed) >= len(data):
        return RAW, data
    return ZSTD, packed


def bounded_decompress(payload: bytes | memoryview, limit: int) -> None:
    """Refuse a frame that declares more than ``limit`` bytes *before* anything is allocated
    (zstandard trusts a declared content size over ``max_output_size``)."""
    declared = zstandard.frame_content_size(payload)  # -1: not declared, then max_output_size bounds it
    if declared > limit:
        raise ValueError(f"zstd frame declares {declared} bytes, more than the {limit} allowed")


def decompress(method: int, payload: bytes, raw_length: int) -> bytes:
    """Inverse of :func:`compress`; ``raw_length`` bounds the output (a hostile frame cannot balloon)."""
    if method == RAW:
        if len(payload) != raw_length:
            raise ValueError(f"raw payload of {len(payload)} bytes, expected {raw_length}")
        return payload
    if method == ZSTD:
        bounded_decompress(payload, raw_length)
        out: bytes = _decompressor().decompress(payload, max_output_size=raw_length)
        if len(out) != raw_length:
            raise ValueError(f"decompressed {len(out)} bytes, expected {raw_length}")
        return out
    raise ValueError(f"unknown compression method {method}")
