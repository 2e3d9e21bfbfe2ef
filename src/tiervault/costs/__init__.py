"""Storage costs: the price tables of the access tiers (``prices``) and the pure cost model over them
(``model``). Estimates from list prices, never a bill (docs/costs.md)."""

from tiervault.costs.model import (
    DAYS_PER_MONTH,
    GB,
    TierUsage,
    billable_bytes,
    early_delete_charge,
    rehydration_cost,
    storage_cost,
)
from tiervault.costs.prices import PriceTable, TierPrices, default_prices, load_prices, parse_prices

__all__ = [
    "DAYS_PER_MONTH",
    "GB",
    "PriceTable",
    "TierPrices",
    "TierUsage",
    "billable_bytes",
    "default_prices",
    "early_delete_charge",
    "load_prices",
    "parse_prices",
    "rehydration_cost",
    "storage_cost",
]
