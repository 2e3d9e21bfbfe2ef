"""Content-defined chunking: completeness, size bounds, stream/buffer equivalence, boundary stability."""

from __future__ import annotations

import hashlib
import math
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


# ------------------------------------------------------------------------------ pinned cut points
#
# Cut points are part of the repository format: a chunker that cut differently would store every
# file anew instead of deduplicating against existing repositories. The vectors below pin them for
# fixed parameters, seeds and data; the reference implementation follows docs/format.md
# ("Chunking") and must agree with the compiled chunker.


def vector_data(size: int) -> bytes:
    """Deterministic, version-independent pseudo-random bytes (SHAKE-128 of a fixed label)."""
    return hashlib.shake_128(b"tiervault cut vectors v1").digest(size)


def cut_offsets(params: ChunkerParams, seed: int, data: bytes) -> list[int]:
    out, pos = [], 0
    for piece in Chunker(params, seed).cut(data):
        pos += len(piece)
        out.append(pos)
    return out


def _small(nc: int) -> ChunkerParams:
    return ChunkerParams(min_size=256, avg_size=1024, max_size=8192, normalization=nc)


SEED_A, SEED_B, SEED_C = 1, 0xDEADBEEF, 2**63 - 1
CUT_VECTORS: list[tuple[int, int, list[int]]] = [  # (normalization, seed, chunk end offsets)
    (0, SEED_A, [3340, 4543, 5377, 5760, 8793, 9561, 10619, 11945, 12540, 13006, 15504, 16119, 16384]),
    (0, SEED_B, [1557, 3288, 4256, 5700, 6894, 7699, 8208, 8712, 10014, 11060, 11394, 15114, 15928, 16384]),
    (0, SEED_C, [504, 2641, 5972, 6831, 8259, 10031, 10602, 11180, 11579, 13520, 14049, 15510, 16384]),
    (1, SEED_A, [1166, 2300, 4905, 5760, 10042, 11339, 11945, 12540, 13628, 14676, 15504, 16119, 16384]),
    (1, SEED_B, [1365, 1839, 4199, 4557, 6148, 8016, 9336, 10014, 12092, 13673, 15733, 16384]),
    (1, SEED_C, [504, 1897, 3621, 5087, 5972, 7135, 8280, 10045, 11181, 12499, 13885, 15153, 15510, 16384]),
    (
        2,
        SEED_A,
        [1755, 2917, 3417, 4855, 6026, 7125, 8169, 9606, 10683, 11859, 12540, 13893, 15604, 16119, 16384],
    ),
    (2, SEED_B, [1809, 3156, 4219, 5415, 6875, 9062, 10433, 11060, 12270, 13486, 14632, 15911, 16384]),
    (2, SEED_C, [1270, 2566, 4021, 5274, 6634, 7667, 8259, 9387, 10913, 11942, 13211, 14049, 15260, 16384]),
    (
        3,
        SEED_A,
        [
            1043,
            2072,
            3281,
            4376,
            5448,
            6527,
            7676,
            8856,
            9956,
            10995,
            12354,
            13454,
            14499,
            15604,
            16119,
            16384,
        ],
    ),
    (
        3,
        SEED_B,
        [1365, 2456, 3508, 4589, 5779, 7064, 8132, 9164, 10199, 11060, 12436, 14235, 15283, 15928, 16384],
    ),
    (
        3,
        SEED_C,
        [1183, 2486, 3641, 3916, 5119, 6470, 7667, 8741, 9869, 10966, 12087, 13154, 14243, 15354, 16384],
    ),
]
#: the repository defaults on 12 MiB
DEFAULT_SEED = 0x5EED0F7E57
DEFAULT_VECTOR = [
    1150496, 1795346, 2932981, 3486706, 4342138, 5051443, 5976925, 7391565,
    8395924, 9016066, 9993992, 10779179, 11594138, 12216471, 12582912,
]  # fmt: skip

#: FastCDC's masks by bit count (docs/format.md); index = round(log2(avg_size)) +/- normalization
MASKS = {
    5: 0x0000000001804110, 6: 0x0000000001803110, 7: 0x0000000018035100, 8: 0x0000001800035300,
    9: 0x0000019000353000, 10: 0x0000590003530000, 11: 0x0000D90003530000, 12: 0x0000D90103530000,
    13: 0x0000D90303530000, 14: 0x0000D90313530000, 15: 0x0000D90F03530000, 16: 0x0000D90303537000,
    17: 0x0000D90703537000, 18: 0x0000D90707537000, 19: 0x0000D91707537000, 20: 0x0000D91747537000,
    21: 0x0000D91767537000, 22: 0x0000D93767537000, 23: 0x0000D93777537000, 24: 0x0000D93777577000,
    25: 0x0000DB3777577000,
}  # fmt: skip
#: SHA-256 of the unseeded gear table, 256 entries as little-endian u64 (docs/format.md)
GEAR_SHA256 = "91a3061015ae351cd3701852712bcd6aa4a1ce26c8a231d3969432b00f028f88"
U64 = (1 << 64) - 1


@pytest.mark.parametrize(("nc", "seed", "offsets"), CUT_VECTORS)
def test_cut_vectors(nc: int, seed: int, offsets: list[int]) -> None:
    assert cut_offsets(_small(nc), seed, vector_data(16384)) == offsets


def test_cut_vector_with_the_defaults() -> None:
    assert cut_offsets(DEFAULT, DEFAULT_SEED, vector_data(12 << 20)) == DEFAULT_VECTOR


def _base_gear() -> list[int]:
    from pyfastcdc.py.constants import GEAR  # the table the compiled chunker uses too

    table = list(GEAR)
    assert hashlib.sha256(b"".join(g.to_bytes(8, "little") for g in table)).hexdigest() == GEAR_SHA256
    return table


def test_the_gear_table_is_the_specified_one() -> None:
    assert len(_base_gear()) == 256


def reference_cuts(params: ChunkerParams, seed: int, data: bytes) -> list[int]:
    """FastCDC 2020 as docs/format.md specifies it, one byte at a time (slow; for small inputs)."""
    gear = [g ^ seed for g in _base_gear()]
    bits = math.floor(math.log2(params.avg_size) + 0.5)
    mask_s, mask_l = MASKS[bits + params.normalization], MASKS[bits - params.normalization]
    out, start = [], 0
    while start < len(data):
        n = len(data) - start
        length = n
        if n > params.min_size:
            end = min(n, params.max_size)
            center = min(params.avg_size, end)
            h = 0
            for i in range(params.min_size // 2 * 2, end // 2 * 2):
                h = ((h << 1) + gear[data[start + i]]) & U64
                if not h & (mask_s if i < center // 2 * 2 else mask_l):
                    length = i
                    break
            else:
                length = end
        start += length
        out.append(start)
    return out


@pytest.mark.parametrize(("nc", "seed", "offsets"), CUT_VECTORS)
def test_reference_implementation_gives_the_vectors(nc: int, seed: int, offsets: list[int]) -> None:
    assert reference_cuts(_small(nc), seed, vector_data(16384)) == offsets


@settings(max_examples=40, deadline=None)
@given(data=payloads(max_size=20_000), seed=seeds, nc=st.integers(0, 3))
def test_chunker_agrees_with_the_reference(data: bytes, seed: int, nc: int) -> None:
    assert cut_offsets(_small(nc), seed, data) == reference_cuts(_small(nc), seed, data)
