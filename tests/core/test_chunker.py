"""Content-defined chunking: completeness, size bounds, stream/buffer equivalence, boundary stability."""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiervault.core.chunker import Chunker, ChunkerParams
from tiervault.core.crypto import chunk_id
from tiervault.sources.folder import RangeReader

SMALL = ChunkerParams(min_size=256, avg_size=1024, max_size=8192)
#: a small configuration with a larger avg/min ratio: resynchronisation after an edit is quick
STABLE = ChunkerParams(min_size=256, avg_size=2048, max_size=16384)
DEFAULT = ChunkerParams()
ID_KEY = bytes(range(32))

seeds = st.integers(min_value=1, max_value=2**63 - 1)  # MasterKeys.chunker_seed is 63 bits


def pseudo_random(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


@st.composite
def payloads(draw: st.DrawFn, max_size: int = 100_000) -> bytes:
    """Random-looking data (the realistic case), low-entropy data from hypothesis, or a mix."""
    kind = draw(st.sampled_from(["random", "hypothesis", "mixed"]))
    if kind == "hypothesis":
        return draw(st.binary(max_size=max_size // 4))
    size = draw(st.integers(min_value=0, max_value=max_size))
    data = pseudo_random(draw(st.integers(0, 2**32)), size)
    if kind == "mixed" and size:
        # a long run of one byte value: the gear hash is constant there, so cut points are degenerate
        # (none at all, which forces max_size cuts, or one at every position)
        start = draw(st.integers(0, size))
        run = draw(st.integers(0, 40_000))
        data = data[:start] + bytes([draw(st.integers(0, 255))]) * run + data[start:]
    return data


def cut(params: ChunkerParams, seed: int, data: bytes) -> list[bytes]:
    return [bytes(c) for c in Chunker(params, seed).cut(data)]


def assert_well_formed(params: ChunkerParams, data: bytes, chunks: list[bytes]) -> None:
    assert b"".join(chunks) == data
    if not data:
        assert chunks == []
        return
    assert all(chunks), "empty chunk"
    for c in chunks[:-1]:
        assert params.min_size <= len(c) <= params.max_size, len(c)
    assert 0 < len(chunks[-1]) <= params.max_size


@settings(max_examples=150, deadline=None)
@given(data=payloads(), seed=seeds)
def test_chunks_concatenate_and_respect_bounds(data: bytes, seed: int) -> None:
    assert_well_formed(SMALL, data, cut(SMALL, seed, data))


@settings(max_examples=60, deadline=None)
@given(data=payloads(), seed=seeds)
def test_chunking_is_deterministic(data: bytes, seed: int) -> None:
    assert cut(SMALL, seed, data) == cut(SMALL, seed, data)


def test_different_seeds_give_different_cut_points() -> None:
    data = pseudo_random(3, 1 << 20)
    a, b = cut(SMALL, 1, data), cut(SMALL, 2, data)
    assert [len(c) for c in a] != [len(c) for c in b]


@pytest.mark.parametrize("seed", [1, 0xDEADBEEF])
def test_defaults_on_a_few_megabytes(seed: int) -> None:
    data = pseudo_random(seed, 6 << 20)
    chunks = cut(DEFAULT, seed, data)
    assert_well_formed(DEFAULT, data, chunks)
    assert len(chunks) >= 3  # ~1 MiB mean


def test_defaults_uniform_data_is_cut_at_max_size() -> None:
    data = bytes(20 << 20)  # all zeros: no content-defined cut point, only max_size cuts
    chunks = cut(DEFAULT, 7, data)
    assert_well_formed(DEFAULT, data, chunks)
    assert [len(c) for c in chunks] == [DEFAULT.max_size, DEFAULT.max_size, (20 << 20) - 2 * DEFAULT.max_size]


def _file_chunks(params: ChunkerParams, seed: int, prefix: bytes, data: bytes, suffix: bytes) -> list[bytes]:
    """Chunks of ``data`` read from the middle of a file via RangeReader (prefix/suffix must not leak in)."""
    with tempfile.TemporaryFile() as f:
        f.write(prefix + data + suffix)
        f.flush()
        fd = f.fileno()
        it: Iterator[memoryview] = Chunker(params, seed).chunks(
            RangeReader(fd, len(prefix), len(prefix) + len(data))
        )
        # each view is only valid until the next one: copy as we go
        return [bytes(c) for c in it]


@settings(max_examples=60, deadline=None)
@given(
    data=payloads(),
    seed=seeds,
    prefix=st.binary(max_size=3000),
    suffix=st.binary(max_size=3000),
)
def test_stream_and_buffer_give_identical_chunks(
    data: bytes, seed: int, prefix: bytes, suffix: bytes
) -> None:
    assert _file_chunks(SMALL, seed, prefix, data, suffix) == cut(SMALL, seed, data)


@pytest.mark.parametrize("size", [0, 1, 5 << 20, 19 << 20])
def test_stream_and_buffer_identical_with_defaults(size: int) -> None:
    # 19 MiB: larger than max_size twice over, so the stream reader refills its buffer many times
    data = pseudo_random(size + 1, size)
    if size > (8 << 20):
        data = data[: 4 << 20] + bytes(9 << 20) + data[13 << 20 :]  # a forced max_size cut in between
    expected = cut(DEFAULT, 99, data)
    assert _file_chunks(DEFAULT, 99, b"x" * 4097, data, b"y" * 100) == expected
    assert_well_formed(DEFAULT, data, expected)


def test_range_reader_reads_only_its_range() -> None:
    with tempfile.TemporaryFile() as f:
        f.write(b"0123456789")
        f.flush()
        r = RangeReader(f.fileno(), 2, 7)
        buf = bytearray(3)
        assert r.readinto(memoryview(buf)) == 3
        assert buf == b"234"
        assert r.readinto(memoryview(buf)) == 2
        assert buf[:2] == b"56"
        assert r.readinto(memoryview(buf)) == 0


@settings(max_examples=80, deadline=None, derandomize=True)
@given(
    data_seed=st.integers(0, 2**32),
    size=st.integers(min_value=20_000, max_value=120_000),
    seed=seeds,
    where=st.floats(min_value=0.0, max_value=1.0),
    inserted=st.binary(min_size=1, max_size=64),
)
def test_an_insertion_changes_only_a_handful_of_chunks(
    data_seed: int, size: int, seed: int, where: float, inserted: bytes
) -> None:
    data = pseudo_random(data_seed, size)
    pos = int(where * size)
    old = cut(STABLE, seed, data)
    new = cut(STABLE, seed, data[:pos] + inserted + data[pos:])
    # chunks that end before the insertion are untouched (the last one may have been cut by EOF)
    end, before = 0, 0
    for c in old[:-1]:
        end += len(c)
        if end > pos:
            break
        before += 1
    assert new[:before] == old[:before]
    # and the chunker re-synchronises soon after it
    changed = [c for c in new if c not in set(old)]
    assert len(changed) <= 8, (len(changed), len(new))


@pytest.mark.slow
@pytest.mark.parametrize("chunker_seed", [1, 2, 0x7FFF_FFFF_FFFF_FFFF])
def test_seven_byte_insertion_in_50_mib_changes_at_most_3_chunks(chunker_seed: int) -> None:
    data = random.Random(1).randbytes(50 << 20)
    mid = len(data) // 2
    edited = data[:mid] + b"\x07inset!" + data[mid:]
    chunker = Chunker(DEFAULT, chunker_seed)
    old_ids = [chunk_id(ID_KEY, c) for c in chunker.cut(data)]
    new_ids = [chunk_id(ID_KEY, c) for c in chunker.cut(edited)]
    assert len(old_ids) > 20  # sanity: ~1 MiB mean chunks
    changed = set(new_ids) - set(old_ids)
    assert 1 <= len(changed) <= 3, len(changed)
    # the ids that survive are exactly the old ones minus a few around the edit
    assert len(set(old_ids) - set(new_ids)) <= 3


def test_params_validation() -> None:
    ChunkerParams().validate()
    bad = [
        ChunkerParams(algorithm="rabin"),
        ChunkerParams(min_size=32),
        ChunkerParams(min_size=2 << 20),
        ChunkerParams(avg_size=128),
        ChunkerParams(avg_size=8 << 20),
        ChunkerParams(max_size=512),
        ChunkerParams(max_size=32 << 20),
        ChunkerParams(min_size=8192, max_size=8192),
        ChunkerParams(min_size=4096, avg_size=2048, max_size=8192),  # min <= avg <= max
        ChunkerParams(normalization=4),
    ]
    for p in bad:
        with pytest.raises(ValueError):
            p.validate()
        with pytest.raises(ValueError):
            Chunker(p, 1)
    assert ChunkerParams.from_json(SMALL.to_json()) == SMALL
    with pytest.raises(ValueError):
        ChunkerParams.from_json({**SMALL.to_json(), "min_size": 1})
