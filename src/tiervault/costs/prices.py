"""Price tables: the list prices of a store's access tiers, shipped as package data, overridable.

The shipped table (``prices/azure-blob-eastus-usd.json``, read with ``importlib.resources`` so that it
loads from an installed wheel too) holds *estimates*: list prices as published on its ``source`` page
around ``prices_taken``. A user file replaces it as a whole (docs/costs.md, "Overriding the prices"):
it is validated strictly, so that a typo cannot silently price a tier at zero. Every field is
required; an unknown field, a missing tier or field, a negative or non-finite price is a
``UsageError`` naming the field (and the file).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, fields
from datetime import date
from importlib import resources
from typing import Any, Final

from tiervault.backend.base import Tier
from tiervault.errors import UsageError

__all__ = [
    "DEFAULT_PRICES",
    "PriceTable",
    "TierPrices",
    "default_prices",
    "load_prices",
    "parse_prices",
]

#: the shipped table, a file of this package's ``prices`` directory
DEFAULT_PRICES: Final = "azure-blob-eastus-usd.json"

#: the fields only the Archive tier has: rehydration by priority
ARCHIVE_ONLY: Final = ("rehydrate_standard_per_gb", "rehydrate_high_per_gb", "read_high_per_10k")
_TOP: Final = ("region", "currency", "prices_taken", "source", "note", "tiers")
_CURRENCY: Final = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True, slots=True)
class TierPrices:
    """One tier's prices, in the table's currency. A GB is 2^30 bytes."""

    storage_per_gb_month: float
    write_per_10k: float
    read_per_10k: float
    list_per_10k: float
    #: per GB read (Cool, Cold); for Archive the Standard rehydration's per-GB charge
    retrieval_per_gb: float
    #: the minimum retention: moving or deleting an object sooner is charged the remaining days
    min_days: int
    #: an object smaller than this is billed as this size (128 KiB in Cool, Cold and Archive)
    min_billable_bytes: int
    #: Archive only (None elsewhere): rehydration per GB at Standard and High priority, and the High
    #: priority read operations per 10k (Standard rehydration reads at ``read_per_10k``)
    rehydrate_standard_per_gb: float | None = None
    rehydrate_high_per_gb: float | None = None
    read_high_per_10k: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Prices per tier, with where and when they were taken. ``note`` says what they are."""

    region: str
    currency: str
    prices_taken: date
    source: str
    note: str
    tiers: dict[Tier, TierPrices]

    def tier(self, tier: Tier) -> TierPrices:
        return self.tiers[tier]

    def to_json(self) -> dict[str, Any]:
        """The table as a price file holds it: ``parse_prices(t.to_json()) == t``."""
        return {
            "region": self.region,
            "currency": self.currency,
            "prices_taken": self.prices_taken.isoformat(),
            "source": self.source,
            "note": self.note,
            "tiers": {t.value: self.tiers[t].to_json() for t in Tier},
        }


def _fail(where: str, what: str) -> UsageError:
    return UsageError(f"price table{where}: {what}")


def _string(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw[key]
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, f"{key!r} must be a non-empty string, not {value!r}")
    return value


def _note(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(where, f"'note' must be a string, not {value!r}")
    return value


def _price(value: object, path: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(where, f"{path} must be a number, not {value!r}")
    if not math.isfinite(value) or value < 0:
        raise _fail(where, f"{path} must be a finite price of 0 or more, not {value!r}")
    return float(value)


def _count(value: object, path: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(where, f"{path} must be a whole number of 0 or more, not {value!r}")
    return value


def _tier_prices(tier: Tier, raw: object, where: str) -> TierPrices:
    path = f"tiers.{tier.value}"
    if not isinstance(raw, dict):
        raise _fail(where, f"{path} must be an object, not {raw!r}")
    known = [f.name for f in fields(TierPrices)]
    required = [k for k in known if tier is Tier.ARCHIVE or k not in ARCHIVE_ONLY]
    for key in raw:
        if key not in known:
            raise _fail(where, f"unknown field {path}.{key} (known: {', '.join(required)})")
        if key not in required:
            raise _fail(where, f"{path}.{key} is an Archive price: only tiers.archive has it")
    missing = [k for k in required if k not in raw]
    if missing:
        raise _fail(where, f"{path} lacks {', '.join(missing)} (every field is required)")
    values: dict[str, Any] = {}
    for key in required:
        check = _count if key in ("min_days", "min_billable_bytes") else _price
        values[key] = check(raw[key], f"{path}.{key}", where)
    return TierPrices(**values)


def parse_prices(raw: object, *, origin: str | None = None) -> PriceTable:
    """A price table from its JSON value; ``origin`` (a file name) goes into the errors."""
    where = f" {origin}" if origin else ""
    if not isinstance(raw, dict):
        raise _fail(where, f"must be a JSON object, not {type(raw).__name__}")
    for key in raw:
        if key not in _TOP:
            raise _fail(where, f"unknown field {key!r} (known: {', '.join(_TOP)})")
    missing = [k for k in _TOP if k not in raw]
    if missing:
        raise _fail(where, f"lacks {', '.join(missing)} (every field is required)")
    currency = _string(raw, "currency", where)
    if not _CURRENCY.fullmatch(currency):
        raise _fail(where, f"'currency' must be an ISO 4217 code such as USD, not {currency!r}")
    taken = _string(raw, "prices_taken", where)
    try:
        prices_taken = date.fromisoformat(taken)
    except ValueError:
        raise _fail(where, f"'prices_taken' must be a date (YYYY-MM-DD), not {taken!r}") from None
    tiers = raw["tiers"]
    if not isinstance(tiers, dict):
        raise _fail(where, f"'tiers' must be an object, not {tiers!r}")
    names = [t.value for t in Tier]
    for key in tiers:
        if key not in names:
            raise _fail(where, f"unknown tier tiers.{key} (known: {', '.join(names)})")
    absent = [n for n in names if n not in tiers]
    if absent:
        raise _fail(where, f"lacks the tier(s) {', '.join(absent)} (every tier is required)")
    return PriceTable(
        region=_string(raw, "region", where),
        currency=currency,
        prices_taken=prices_taken,
        source=_string(raw, "source", where),
        note=_note(raw["note"], where),
        tiers={t: _tier_prices(t, tiers[t.value], where) for t in Tier},
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the field {key!r} appears twice")
        out[key] = value
    return out


def load_prices(path: str | os.PathLike[str]) -> PriceTable:
    """A user's price file (docs/costs.md); a file that cannot be read or parsed is a ``UsageError``."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            text = f.read()
    except OSError as exc:
        raise UsageError(f"cannot read the price file {name}: {exc.strerror or exc}") from exc
    try:
        raw = json.loads(text, object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"the price file {name} is not valid JSON: {exc}") from exc
    return parse_prices(raw, origin=name)


def default_prices() -> PriceTable:
    """The shipped table (estimates; see its ``note`` and ``source``)."""
    data = resources.files("tiervault.costs").joinpath("prices", DEFAULT_PRICES).read_bytes()
    return parse_prices(json.loads(data), origin=f"(shipped) {DEFAULT_PRICES}")
