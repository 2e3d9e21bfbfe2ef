"""Unit encryption, keyed chunk ids, scrypt parameters, key wrapping."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiervault.core.crypto import (
    ID_SIZE,
    KEY_SIZE,
    SALT_SIZE,
    TAG_SIZE,
    AuthenticationFailed,
    MasterKeys,
    ScryptParams,
    UnitCipher,
    chunk_id,
    object_hash,
    unwrap,
    wrap,
)

KEY = bytes(range(32))
SALT = bytes(range(16))

keys = st.binary(min_size=KEY_SIZE, max_size=KEY_SIZE)
salts = st.binary(min_size=SALT_SIZE, max_size=SALT_SIZE)
domains = st.integers(0, 2**32 - 1)
counters = st.integers(0, 2**64 - 1)


@settings(max_examples=100, deadline=None)
@given(
    key=keys,
    salt=salts,
    domain=domains,
    counter=counters,
    plain=st.binary(max_size=4096),
    aad=st.binary(max_size=64),
)
def test_seal_open_roundtrip(
    key: bytes, salt: bytes, domain: int, counter: int, plain: bytes, aad: bytes
) -> None:
    sealed = UnitCipher(key, salt).seal(domain, counter, plain, aad)
    assert len(sealed) == len(plain) + TAG_SIZE
    # a fresh cipher from the same key and salt opens it (the unit key is derived, not random)
    assert UnitCipher(key, salt).open(domain, counter, sealed, aad) == plain
    assert UnitCipher(key, salt).open(domain, counter, memoryview(sealed), aad) == plain


def test_different_salts_give_different_ciphertexts() -> None:
    plain = b"same plaintext" * 10
    a = UnitCipher(KEY, b"\x00" * 16).seal(0, 0, plain, b"")
    b = UnitCipher(KEY, b"\x01" + b"\x00" * 15).seal(0, 0, plain, b"")
    assert a != b
    assert UnitCipher.new(KEY).seal(0, 0, plain, b"") != UnitCipher.new(KEY).seal(0, 0, plain, b"")
    with pytest.raises(AuthenticationFailed):
        UnitCipher(KEY, b"\x01" + b"\x00" * 15).open(0, 0, a, b"")


def test_different_master_keys_give_different_ciphertexts() -> None:
    a = UnitCipher(KEY, SALT).seal(0, 0, b"x" * 32, b"")
    b = UnitCipher(bytes(32), SALT).seal(0, 0, b"x" * 32, b"")
    assert a != b
    with pytest.raises(AuthenticationFailed):
        UnitCipher(bytes(32), SALT).open(0, 0, a, b"")


def test_new_makes_random_salts() -> None:
    salts_seen = {UnitCipher.new(KEY).salt for _ in range(20)}
    assert len(salts_seen) == 20
    assert all(len(s) == SALT_SIZE for s in salts_seen)


def test_salt_size_is_enforced() -> None:
    for bad in (b"", b"x" * 15, b"x" * 17):
        with pytest.raises(ValueError):
            UnitCipher(KEY, bad)


@settings(max_examples=100, deadline=None)
@given(plain=st.binary(max_size=300), aad=st.binary(max_size=40), data=st.data())
def test_any_tampering_fails_authentication(plain: bytes, aad: bytes, data: st.DataObject) -> None:
    cipher = UnitCipher(KEY, SALT)
    sealed = cipher.seal(3, 7, plain, aad)
    what = data.draw(st.sampled_from(["ciphertext", "aad", "domain", "counter", "truncate", "extend"]))
    domain, counter, ct, ad = 3, 7, bytearray(sealed), aad
    if what == "ciphertext":
        i = data.draw(st.integers(0, len(ct) - 1))
        ct[i] ^= data.draw(st.integers(1, 255))
    elif what == "aad":
        ad = data.draw(st.binary(max_size=40).filter(lambda x: x != aad))
    elif what == "domain":
        domain = data.draw(domains.filter(lambda d: d != 3))
    elif what == "counter":
        counter = data.draw(counters.filter(lambda n: n != 7))
    elif what == "truncate":
        ct = ct[: data.draw(st.integers(0, len(ct) - 1))]
    else:
        ct += data.draw(st.binary(min_size=1, max_size=8))
    with pytest.raises(AuthenticationFailed):
        cipher.open(domain, counter, bytes(ct), ad)


def test_nonces_differ_by_domain_and_counter() -> None:
    cipher = UnitCipher(KEY, SALT)
    outs = {cipher.seal(d, n, b"\x00" * 32, b"") for d in range(3) for n in range(3)}
    assert len(outs) == 9


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=2048), k1=keys, k2=keys)
def test_chunk_id_is_keyed(data: bytes, k1: bytes, k2: bytes) -> None:
    a = chunk_id(k1, data)
    assert len(a) == ID_SIZE
    assert chunk_id(k1, data) == a
    assert chunk_id(k1, memoryview(data)) == a
    if k1 != k2:
        assert chunk_id(k2, data) != a
    assert a != bytes.fromhex(object_hash(data))  # keyed, not the plain hash


def test_chunk_id_distinguishes_data() -> None:
    assert chunk_id(KEY, b"a") != chunk_id(KEY, b"b")
    assert chunk_id(KEY, b"") != chunk_id(KEY, b"\x00")


def test_object_hash_is_unkeyed_blake3_hex() -> None:
    h = object_hash(b"abc")
    assert h == "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"  # BLAKE3("abc")
    assert object_hash(memoryview(b"abc")) == h


def test_master_keys_generate() -> None:
    a, b = MasterKeys.generate(), MasterKeys.generate()
    assert len(a.encryption) == len(a.chunk_id) == KEY_SIZE
    assert a.encryption != a.chunk_id
    assert a != b
    assert 0 < a.chunker_seed < 2**63  # FastCDC takes a 63-bit seed


def test_tree_id_key_is_derived_and_distinct() -> None:
    a = MasterKeys(encryption=KEY, chunk_id=bytes(32), chunker_seed=1)
    b = MasterKeys(encryption=KEY, chunk_id=b"\x01" * 32, chunker_seed=1)
    assert len(a.tree_id) == KEY_SIZE
    assert a.tree_id == MasterKeys(encryption=bytes(32), chunk_id=bytes(32), chunker_seed=2).tree_id
    assert a.tree_id != a.chunk_id
    assert a.tree_id != b.tree_id
    # a tree and a file chunk with the same bytes get different ids
    assert chunk_id(a.tree_id, b"{}") != chunk_id(a.chunk_id, b"{}")


@pytest.mark.parametrize(
    "params",
    [
        {"log_n": 9},
        {"log_n": 21},
        {"log_n": 10, "r": 0},
        {"log_n": 10, "r": 17},
        {"log_n": 10, "p": 0},
        {"log_n": 10, "p": 17},
        {"log_n": 20, "r": 16},  # 2 GiB of memory: a hostile key slot must not get that
    ],
)
def test_scrypt_params_out_of_range(params: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        ScryptParams(**params)


def test_scrypt_derive() -> None:
    p = ScryptParams(log_n=10)
    k = p.derive(b"password", b"salt" * 4)
    assert len(k) == KEY_SIZE
    assert p.derive(b"password", b"salt" * 4) == k
    assert p.derive(b"passwore", b"salt" * 4) != k
    assert p.derive(b"password", b"salz" * 4) != k
    assert ScryptParams(log_n=11).derive(b"password", b"salt" * 4) != k
    assert ScryptParams(log_n=10, r=1, p=2).derive(b"password", b"salt" * 4) != k


def test_scrypt_matches_rfc7914_vector() -> None:
    # RFC 7914 section 12, second vector: P="password", S="NaCl", N=1024, r=8, p=16 (first 32 bytes)
    k = ScryptParams(log_n=10, r=8, p=16).derive(b"password", b"NaCl")
    assert k.hex() == "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"


def test_wrap_unwrap() -> None:
    kek = os.urandom(32)
    nonce, ct = wrap(kek, b"master keys", b"aad")
    assert len(nonce) == 12
    assert unwrap(kek, nonce, ct, b"aad") == b"master keys"
    nonce2, ct2 = wrap(kek, b"master keys", b"aad")
    assert nonce2 != nonce and ct2 != ct  # random nonces
    with pytest.raises(AuthenticationFailed):
        unwrap(os.urandom(32), nonce, ct, b"aad")
    with pytest.raises(AuthenticationFailed):
        unwrap(kek, nonce, ct, b"other aad")
    with pytest.raises(AuthenticationFailed):
        unwrap(kek, nonce2, ct, b"aad")
    bad = bytearray(ct)
    bad[0] ^= 1
    with pytest.raises(AuthenticationFailed):
        unwrap(kek, nonce, bytes(bad), b"aad")
