"""The version-2 ``config`` an upgrade stores (``keyfile.upgraded_config``) and the check that a stored
``config.next`` is an upgrade of a given version-1 ``config`` (``is_upgrade_of``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tiervault.core.crypto import object_hash
from tiervault.core.format import WRITE_FEATURES, FormatError
from tiervault.core.format.keyfile import (
    canonical_json,
    decode_config,
    encode_config,
    is_upgrade_of,
    upgraded_config,
    version1_bytes,
)

CHUNKER = {"algorithm": "fastcdc-2020", "avg_size": 1 << 19, "max_size": 1 << 23, "min_size": 1 << 19}
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
EXTRA = st.dictionaries(
    TEXT.filter(lambda k: k not in ("kind", "version", "write_features", "read_features", "upgraded_from")),
    st.one_of(st.integers(), TEXT, st.booleans(), st.lists(st.integers(), max_size=3)),
    max_size=4,
)


def v1_config(extra: dict[str, Any] | None = None) -> bytes:
    base = json.loads(encode_config("ab" * 32, "2026-01-01T00:00:00.000000000Z", CHUNKER, 1 << 24, version=1))
    return canonical_json({**base, **(extra or {})})


@given(EXTRA)
def test_the_upgrade_keeps_every_version_1_field_and_names_its_hash(extra: dict[str, Any]) -> None:
    v1 = v1_config(extra)
    v2 = upgraded_config(v1)
    doc = decode_config(v2)
    assert doc["version"] == 2 and doc["upgraded_from"] == object_hash(v1)
    assert doc["write_features"] == list(WRITE_FEATURES) and doc["read_features"] == []
    assert version1_bytes(doc) == v1  # what keyring.unlock rebuilds and hashes
    assert v2 == canonical_json(doc)
    assert is_upgrade_of(v2, v1)
    assert upgraded_config(v1) == v2  # deterministic: concurrent upgrades store the same bytes


def test_a_fresh_version_2_config_upgrades_the_same_as_encode_config() -> None:
    v1 = v1_config()
    expected = encode_config(
        "ab" * 32,
        "2026-01-01T00:00:00.000000000Z",
        CHUNKER,
        1 << 24,
        version=2,
        upgraded_from=object_hash(v1),
    )
    assert upgraded_config(v1) == expected


def test_a_config_not_in_canonical_form_is_not_upgraded() -> None:
    v1 = json.dumps(json.loads(v1_config()), indent=1).encode()  # same fields, other bytes
    with pytest.raises(FormatError, match="canonical"):
        upgraded_config(v1)


def test_only_a_version_1_config_is_upgraded() -> None:
    with pytest.raises(FormatError, match="version 2"):
        upgraded_config(upgraded_config(v1_config()))


@pytest.mark.parametrize(
    "change",
    [
        {"pack_size": 1 << 20},  # a version-1 field changed
        {"upgraded_from": "00" * 32},  # the hash of something else
        {"version": 3},
    ],
)
def test_is_upgrade_of_refuses_anything_else(change: dict[str, Any]) -> None:
    v1 = v1_config()
    doc = {**json.loads(upgraded_config(v1)), **change}
    assert not is_upgrade_of(canonical_json(doc), v1)
    assert not is_upgrade_of(b"not json", v1)
    assert not is_upgrade_of(v1, v1)


def test_another_tiervaults_upgrade_with_other_writer_features_is_one() -> None:
    v1 = v1_config()
    doc = {**json.loads(upgraded_config(v1)), "write_features": ["gc-1", "gc-2"]}
    assert is_upgrade_of(canonical_json(doc), v1)
