"""Config and key slots."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiervault.core.crypto import AuthenticationFailed, MasterKeys, ScryptParams
from tiervault.core.format import FormatError
from tiervault.core.format.keyfile import (
    REPOSITORY_KIND,
    KeySlot,
    canonical_json,
    decode_config,
    encode_config,
    open_keys,
    seal_keys,
    version1_bytes,
)

FAST = ScryptParams(log_n=10)
REPO_ID = "ab" * 32
TEXT = st.characters(blacklist_categories=("Cs",))  # str that can be UTF-8 encoded
MASTER = MasterKeys(encryption=bytes(range(32)), chunk_id=bytes(range(32, 64)), chunker_seed=123456789)


def slot(password: bytes = b"secret", repo_id: str = REPO_ID, salt: bytes = b"s" * 32) -> KeySlot:
    return seal_keys(
        MASTER,
        "c0ffee",
        repo_id,
        password,
        FAST,
        salt=salt,
        created="2026-01-01T00:00:00Z",
        host="host",
        user="user",
    )


def test_seal_open_roundtrip() -> None:
    keys, config_hash = open_keys(slot(), REPO_ID, b"secret")
    assert keys == MASTER
    assert config_hash == "c0ffee"


def test_slot_survives_serialisation() -> None:
    s = slot()
    data = s.to_bytes()
    assert KeySlot.from_bytes(data) == s
    assert open_keys(KeySlot.from_bytes(data), REPO_ID, b"secret") == (MASTER, "c0ffee")
    doc = json.loads(data)
    assert doc["v"] == 1 and doc["kdf"] == "scrypt" and doc["log_n"] == 10
    assert b"secret" not in data
    assert canonical_json(doc) == data


def test_wrong_password() -> None:
    with pytest.raises(AuthenticationFailed):
        open_keys(slot(), REPO_ID, b"Secret")
    with pytest.raises(AuthenticationFailed):
        open_keys(slot(), REPO_ID, b"")


def test_other_repository_id() -> None:
    with pytest.raises(AuthenticationFailed):
        open_keys(slot(), "cd" * 32, b"secret")


def test_slot_of_another_repository_does_not_open_here() -> None:
    other = slot(repo_id="cd" * 32)
    with pytest.raises(AuthenticationFailed):
        open_keys(other, REPO_ID, b"secret")


def test_tampered_slot() -> None:
    s = slot()
    bad = bytearray(s.sealed)
    bad[3] ^= 0x40
    with pytest.raises(AuthenticationFailed):
        open_keys(
            KeySlot(s.params, s.salt, s.nonce, bytes(bad), s.created, s.host, s.user), REPO_ID, b"secret"
        )
    with pytest.raises(AuthenticationFailed):
        open_keys(
            KeySlot(s.params, b"t" * 32, s.nonce, s.sealed, s.created, s.host, s.user), REPO_ID, b"secret"
        )
    with pytest.raises(AuthenticationFailed):
        open_keys(
            KeySlot(ScryptParams(log_n=11), s.salt, s.nonce, s.sealed, s.created, s.host, s.user),
            REPO_ID,
            b"secret",
        )


def test_salts_and_nonces_differ_between_slots() -> None:
    a, b = slot(salt=b"a" * 32), slot(salt=b"a" * 32)
    assert a.nonce != b.nonce and a.sealed != b.sealed
    assert slot(salt=b"b" * 32).sealed != a.sealed


@settings(max_examples=100, deadline=None)
@given(
    log_n=st.integers(10, 16),
    r=st.integers(1, 16),
    p=st.integers(1, 16),
    salt=st.binary(min_size=16, max_size=64),
    nonce=st.binary(min_size=12, max_size=12),
    sealed=st.binary(max_size=300),
    created=st.text(alphabet=TEXT, max_size=30),
    host=st.text(alphabet=TEXT, max_size=30),
    user=st.text(alphabet=TEXT, max_size=30),
)
def test_key_slot_bytes_roundtrip(
    log_n: int, r: int, p: int, salt: bytes, nonce: bytes, sealed: bytes, created: str, host: str, user: str
) -> None:
    s = KeySlot(ScryptParams(log_n, r, p), salt, nonce, sealed, created, host, user)
    assert KeySlot.from_bytes(s.to_bytes()) == s


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe",
        b"{}",
        b'{"v":2,"kdf":"scrypt"}',
        b'{"v":1,"kdf":"argon2id"}',
        b'{"v":1,"kdf":"scrypt","log_n":10,"r":8,"p":1,"salt":"!!","nonce":"","data":""}',
        b'{"v":1,"kdf":"scrypt","log_n":"x","r":8,"p":1,"salt":"","nonce":"","data":""}',
        b'{"v":1,"kdf":"scrypt","r":8,"p":1,"salt":"","nonce":"","data":""}',
        b"[]",
    ],
)
def test_bad_key_slots_are_format_errors(data: bytes) -> None:
    with pytest.raises(FormatError):
        KeySlot.from_bytes(data)


def test_config_roundtrip() -> None:
    chunker = {"min_size": 1, "avg_size": 2, "max_size": 3, "normalization": 1, "algorithm": "fastcdc-2020"}
    data = encode_config(REPO_ID, "2026-01-01T00:00:00Z", chunker, 16 << 20)
    cfg = decode_config(data)
    assert cfg["kind"] == REPOSITORY_KIND
    assert cfg["version"] == 2  # new repositories are version 2
    assert cfg["write_features"] == ["gc-1"] and cfg["read_features"] == []
    assert cfg["id"] == REPO_ID
    assert cfg["chunker"] == chunker
    assert cfg["pack_size"] == 16 << 20
    assert canonical_json(cfg) == data  # canonical: its hash is sealed in the key slots


def test_config_of_another_version_decodes_for_the_caller_to_refuse() -> None:
    data = encode_config(REPO_ID, "x", {}, 1 << 20).replace(b'"version":2', b'"version":3')
    assert decode_config(data)["version"] == 3


def test_a_version_1_config_has_no_version_2_fields() -> None:
    cfg = decode_config(encode_config(REPO_ID, "x", {}, 1 << 20, version=1))
    assert cfg["version"] == 1 and "write_features" not in cfg and "read_features" not in cfg


def test_version1_bytes_rebuild_the_config_an_upgrade_started_from() -> None:
    v1 = encode_config(REPO_ID, "x", {"a": 1}, 1 << 20, version=1)
    v2 = decode_config(encode_config(REPO_ID, "x", {"a": 1}, 1 << 20, version=2, upgraded_from="0" * 64))
    assert version1_bytes(v2) == v1


@pytest.mark.parametrize(
    ("key", "bad"),
    [("read_features", "gc-1"), ("read_features", [1]), ("write_features", None), ("upgraded_from", "ab")],
)
def test_a_version_2_config_with_bad_version_2_fields_is_refused(key: str, bad: object) -> None:
    cfg = json.loads(encode_config(REPO_ID, "x", {}, 1 << 20))
    with pytest.raises(FormatError):
        decode_config(json.dumps({**cfg, key: bad}).encode())


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"\xff",
        b"[]",
        b"null",
        b'"tiervault-repository"',
        b"{}",
        b'{"kind":"restic","version":1}',
        b'{"kind":"tiervault-repository"}',
        b'{"kind":"tiervault-repository","version":"1"}',
        b'{"kind":"tiervault-repository","version":1.0}',
        b'{"version":1,"id":"x"}',
        b'{"kind":"tiervault-repository","version":true}',
    ],
)
def test_decode_config_rejects_non_tiervault(data: bytes) -> None:
    with pytest.raises(FormatError):
        decode_config(data)


def test_key_slot_with_hostile_scrypt_cost_is_a_format_error() -> None:
    """A slot asking for 2 GiB of scrypt memory is refused before any derivation."""
    slot = (
        b'{"v":1,"kdf":"scrypt","log_n":20,"r":16,"p":1,"salt":"","nonce":"","data":"",'
        b'"created":"","host":"","user":""}'
    )
    with pytest.raises(FormatError):
        KeySlot.from_bytes(slot)
