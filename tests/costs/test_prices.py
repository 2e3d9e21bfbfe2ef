"""The price tables: the shipped one loads (as package data) and is what docs/costs.md says; a user
file is validated strictly (unknown, missing, negative, non-finite, mistyped fields are errors naming
the field); hypothesis drives the parser over valid tables and their corruptions."""

from __future__ import annotations

import copy
import fnmatch
import json
import math
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tiervault.costs
from tiervault.backend.base import Tier
from tiervault.costs import PriceTable, default_prices, load_prices, parse_prices
from tiervault.costs.prices import ARCHIVE_ONLY, DEFAULT_PRICES
from tiervault.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
PRICES_DIR = Path(tiervault.costs.__file__).parent / "prices"


def shipped() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PRICES_DIR / DEFAULT_PRICES).read_text())
    return data


# ------------------------------------------------------------------------------- the shipped table


def test_the_shipped_table_loads_with_its_provenance() -> None:
    t = default_prices()
    assert (t.region, t.currency) == ("eastus", "USD")
    assert t.prices_taken == date(2025, 1, 15)
    assert t.source.startswith("https://azure.microsoft.com/")
    assert "ESTIMATES" in t.note
    assert [t.tier(x).min_days for x in Tier] == [0, 30, 90, 180]
    assert [t.tier(x).min_billable_bytes for x in Tier] == [0, 128 << 10, 128 << 10, 128 << 10]
    # colder is cheaper to keep and dearer to touch
    store = [t.tier(x).storage_per_gb_month for x in Tier]
    reads = [t.tier(x).read_per_10k for x in Tier]
    assert store == sorted(store, reverse=True) and reads == sorted(reads)
    archive = t.tier(Tier.ARCHIVE)
    assert archive.rehydrate_high_per_gb is not None and archive.rehydrate_standard_per_gb is not None
    assert archive.rehydrate_high_per_gb > archive.rehydrate_standard_per_gb
    assert archive.read_high_per_10k is not None and archive.read_high_per_10k > archive.read_per_10k
    assert all(t.tier(x).rehydrate_high_per_gb is None for x in (Tier.HOT, Tier.COOL, Tier.COLD))


def test_the_shipped_tables_are_package_data() -> None:
    """Every shipped table matches pyproject.toml's package-data, so a wheel carries it (the wheel
    itself cannot be built here: no network for the build requirements); ``default_prices`` reads it
    through importlib.resources, as from an installed wheel."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["tiervault"]
    tables = sorted(p.relative_to(ROOT / "src" / "tiervault").as_posix() for p in PRICES_DIR.glob("*.json"))
    assert f"costs/prices/{DEFAULT_PRICES}" in tables
    for rel in tables:
        assert any(fnmatch.fnmatch(rel, pat) for pat in patterns), rel
        parse_prices(json.loads((PRICES_DIR / Path(rel).name).read_text()))


def test_the_shipped_table_is_the_one_docs_costs_shows() -> None:
    doc = (ROOT / "docs" / "costs.md").read_text()
    t = default_prices()
    for x in Tier:
        p = t.tier(x)
        row = next(line for line in doc.splitlines() if line.startswith(f"| {x.value.capitalize()} |"))
        assert f"{p.storage_per_gb_month:g}" in row and f"{p.min_days}" in row, row


def test_a_table_round_trips_through_its_json(tmp_path: Path) -> None:
    t = default_prices()
    assert parse_prices(t.to_json()) == t
    f = tmp_path / "p.json"
    f.write_text(json.dumps(t.to_json()))
    assert load_prices(f) == t


# ------------------------------------------------------------------------------- bad price files


def _bad(raw: Any, *needles: str, tmp_path: Path) -> None:
    f = tmp_path / "prices.json"
    f.write_text(json.dumps(raw) if not isinstance(raw, str) else raw)
    with pytest.raises(UsageError) as err:
        load_prices(f)
    msg = str(err.value)
    assert str(f) in msg
    for n in needles:
        assert n in msg, msg


def _with(path: str, value: Any) -> dict[str, Any]:
    raw = shipped()
    *parents, last = path.split(".")
    node = raw
    for p in parents:
        node = node[p]
    node[last] = value
    return raw


def _without(path: str) -> dict[str, Any]:
    raw = shipped()
    *parents, last = path.split(".")
    node = raw
    for p in parents:
        node = node[p]
    del node[last]
    return raw


@pytest.mark.parametrize(
    ("raw", "needles"),
    [
        (_with("discount", 0.1), ("unknown field 'discount'",)),
        (_with("tiers.cool.storage_per_gb_mnth", 0.1), ("unknown field tiers.cool.storage_per_gb_mnth",)),
        (_with("tiers.premium", {}), ("unknown tier tiers.premium",)),
        (_with("tiers.hot.rehydrate_high_per_gb", 0.1), ("tiers.hot.rehydrate_high_per_gb", "Archive")),
        (_with("tiers.cold.write_per_10k", -0.01), ("tiers.cold.write_per_10k", "-0.01")),
        (_with("tiers.hot.storage_per_gb_month", "0.02"), ("tiers.hot.storage_per_gb_month", "number")),
        (_with("tiers.hot.read_per_10k", True), ("tiers.hot.read_per_10k", "number")),
        (_with("tiers.cool.min_days", 30.5), ("tiers.cool.min_days", "whole number")),
        (_with("tiers.cool.min_billable_bytes", -1), ("tiers.cool.min_billable_bytes",)),
        (_with("tiers.archive", []), ("tiers.archive must be an object",)),
        (_with("tiers", None), ("'tiers' must be an object",)),
        (_with("prices_taken", "last year"), ("prices_taken", "YYYY-MM-DD")),
        (_with("currency", "dollars"), ("currency", "ISO 4217")),
        (_with("region", ""), ("'region'",)),
        (_with("note", 3), ("'note'",)),
        (_without("tiers.cold"), ("lacks the tier(s) cold",)),
        (_without("tiers.archive.read_high_per_10k"), ("tiers.archive lacks read_high_per_10k",)),
        (_without("source"), ("lacks source",)),
        ([1, 2], ("JSON object",)),
    ],
)
def test_bad_price_files_are_refused_naming_the_field(
    raw: dict[str, Any], needles: tuple[str, ...], tmp_path: Path
) -> None:
    _bad(raw, *needles, tmp_path=tmp_path)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_prices_are_refused(token: str, tmp_path: Path) -> None:
    text = json.dumps(shipped()).replace('"storage_per_gb_month": 0.01,', f'"storage_per_gb_month": {token},')
    assert token in text
    _bad(text, "tiers.cool.storage_per_gb_month", "finite", tmp_path=tmp_path)


def test_unreadable_not_json_and_duplicate_fields_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read the price file"):
        load_prices(tmp_path / "absent.json")
    _bad("{not json", "not valid JSON", tmp_path=tmp_path)
    text = json.dumps(shipped()).replace('"region": "eastus",', '"region": "eastus", "region": "westus",')
    _bad(text, "'region' appears twice", tmp_path=tmp_path)


# ------------------------------------------------------------------------------- hypothesis

prices = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False) | st.integers(0, 10**6)
counts = st.integers(min_value=0, max_value=10**9)
words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20).filter(
    str.strip
)


@st.composite
def tables(draw: st.DrawFn) -> dict[str, Any]:
    tiers: dict[str, Any] = {}
    for t in Tier:
        row: dict[str, Any] = {
            k: draw(prices)
            for k in (
                "storage_per_gb_month",
                "write_per_10k",
                "read_per_10k",
                "list_per_10k",
                "retrieval_per_gb",
            )
        }
        row["min_days"] = draw(counts)
        row["min_billable_bytes"] = draw(counts)
        if t is Tier.ARCHIVE:
            row.update({k: draw(prices) for k in ARCHIVE_ONLY})
        tiers[t.value] = row
    return {
        "region": draw(words),
        "currency": draw(st.from_regex(r"[A-Z]{3}", fullmatch=True)),
        "prices_taken": draw(st.dates()).isoformat(),
        "source": draw(words),
        "note": draw(st.text(max_size=30)),
        "tiers": tiers,
    }


def _paths(raw: dict[str, Any]) -> list[str]:
    out = [k for k in raw if k != "tiers"]
    out += [f"tiers.{t}.{k}" for t, row in raw["tiers"].items() for k in row]
    return out


@settings(max_examples=150, deadline=None)
@given(tables())
def test_every_valid_table_parses_and_round_trips(raw: dict[str, Any]) -> None:
    t = parse_prices(raw)
    assert isinstance(t, PriceTable)
    assert t.to_json() == {
        **raw,
        "tiers": {
            k: {f: float(v) if f not in ("min_days", "min_billable_bytes") else v for f, v in row.items()}
            for k, row in raw["tiers"].items()
        },
    }
    assert parse_prices(json.loads(json.dumps(t.to_json()))) == t


@settings(max_examples=150, deadline=None)
@given(tables(), st.data())
def test_an_unknown_field_anywhere_is_named(raw: dict[str, Any], data: st.DataObject) -> None:
    where = data.draw(st.sampled_from([None, *[t.value for t in Tier]]))
    name = data.draw(st.from_regex(r"[a-z_]{1,12}", fullmatch=True))
    bad = copy.deepcopy(raw)
    node = bad if where is None else bad["tiers"][where]
    if name in node or (where is None and name in ("tiers",)) or name in ARCHIVE_ONLY:
        return
    node[name] = 1
    with pytest.raises(UsageError) as err:
        parse_prices(bad)
    assert name in str(err.value)


@settings(max_examples=150, deadline=None)
@given(tables(), st.data())
def test_a_missing_or_bad_value_anywhere_is_named(raw: dict[str, Any], data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(_paths(raw)))
    *parents, last = path.split(".")
    bad = copy.deepcopy(raw)
    node = bad
    for p in parents:
        node = node[p]
    if data.draw(st.booleans()):
        del node[last]
    elif parents:  # a tier field: negative, non-finite or not a number
        node[last] = data.draw(
            st.sampled_from([-1, -0.5, math.nan, math.inf, -math.inf, "1", None, True, [1]])
        )
    else:
        node[last] = data.draw(st.sampled_from([None, 1, [], {}]))
        if last == "note" and isinstance(node[last], str):
            return
    with pytest.raises(UsageError) as err:
        parse_prices(bad)
    assert last in str(err.value)
