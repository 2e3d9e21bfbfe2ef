"""Protection policies: what to keep, when to tier, when to run. Pure data and decisions, no I/O.

The policy is stored with each protected item (``items/``). Applying retention (forget/prune) and
tiering is the job of the maintenance commands; this module only describes and validates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from tiervault.errors import ParameterError


@dataclass(frozen=True, slots=True)
class Policy:
    """Retention (restic-style keep-* counts), tier thresholds in days, and a schedule hint.

    ``None`` means "no rule". A policy with no keep rule keeps every recovery point.
    """

    keep_last: int | None = None
    keep_hourly: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    keep_yearly: int | None = None
    cool_after_days: int | None = None
    cold_after_days: int | None = None
    archive_after_days: int | None = None
    #: a 6-field NCRONTAB or 5-field cron expression, as a hint for schedulers (e.g. Azure Functions)
    schedule: str | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "schedule":
                if value is not None and (not isinstance(value, str) or len(value.split()) not in (5, 6)):
                    raise ParameterError("schedule must be a 5- or 6-field cron expression")
                continue
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ParameterError(f"{f.name} must be a non-negative integer")
        tiers = [self.cool_after_days, self.cold_after_days, self.archive_after_days]
        set_tiers = [t for t in tiers if t is not None]
        if set_tiers != sorted(set_tiers):
            raise ParameterError(
                "tier thresholds must grow: cool_after_days <= cold_after_days <= archive_after_days"
            )

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Policy:
        """Read a stored policy. Fields a newer tiervault added are ignored (and kept out of the result),
        so an older reader never fails on a newer item."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in known})
