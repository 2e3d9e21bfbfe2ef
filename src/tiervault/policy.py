"""Protection policies: what to keep, when to tier, when to run. Pure data and decisions, no I/O.

The policy is stored with each protected item (``items/``). Applying retention (forget/prune) and
tiering is the job of the maintenance commands; this module only describes and validates.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

from tiervault.errors import ParameterError

_DURATION_RE = re.compile(r"(?:(\d+)y)?(?:(\d+)m)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?")


class Duration(NamedTuple):
    """A ``keep_within`` span in calendar units (years, months, weeks, days, hours)."""

    years: int
    months: int
    weeks: int
    days: int
    hours: int


def parse_duration(text: str) -> Duration:
    """``keep_within``: restic's syntax, numbers each followed by a unit, in this order, each at most
    once: ``y`` years, ``m`` months, ``w`` weeks, ``d`` days, ``h`` hours; e.g. ``7d``, ``12h``,
    ``2w``, ``1y2m3d``. At least one unit, not all zero."""
    m = _DURATION_RE.fullmatch(text) if isinstance(text, str) else None
    if m is None or not text or len(text) > 64:
        raise ParameterError(
            f"keep_within {text!r:.40} is not a duration such as 7d, 12h, 2w or 1y2m3d "
            "(y years, m months, w weeks, d days, h hours, in that order)"
        )
    parts = Duration(*(int(g) if g else 0 for g in m.groups()))
    if not any(parts):
        raise ParameterError(f"keep_within {text!r} is empty: give a duration longer than zero")
    return parts


@dataclass(frozen=True, slots=True)
class Policy:
    """Retention (restic-style keep-* counts, ``keep_within`` a duration, ``keep_tags``), tier
    thresholds in days, and a schedule hint.

    ``None`` means "no rule" (a count of 0 too, as in restic). A policy with no keep rule keeps
    every recovery point.
    """

    keep_last: int | None = None
    keep_hourly: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    keep_yearly: int | None = None
    #: keep every point within this span of the item's newest point (``parse_duration``)
    keep_within: str | None = None
    #: keep every point having any of these tags (stored sorted and unique)
    keep_tags: tuple[str, ...] | None = None
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
            if f.name == "keep_within":
                if value is not None:
                    parse_duration(value)
                continue
            if f.name == "keep_tags":
                if value is not None:
                    if isinstance(value, str) or not isinstance(value, list | tuple | frozenset | set):
                        raise ParameterError("keep_tags must be a list of tags")
                    if not all(isinstance(t, str) and t for t in value):
                        raise ParameterError("keep_tags must hold non-empty strings")
                    object.__setattr__(self, "keep_tags", tuple(sorted(set(value))))
                continue
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ParameterError(f"{f.name} must be a non-negative integer")
        tiers = [self.cool_after_days, self.cold_after_days, self.archive_after_days]
        set_tiers = [t for t in tiers if t is not None]
        if set_tiers != sorted(set_tiers):
            raise ParameterError(
                "tier thresholds must grow: cool_after_days <= cold_after_days <= archive_after_days"
            )

    @property
    def has_keep_rule(self) -> bool:
        """Whether any retention rule is set (a count of 0 and an empty tag list are none)."""
        counts = (self.keep_last, self.keep_hourly, self.keep_daily, self.keep_weekly, self.keep_monthly)
        return any((*counts, self.keep_yearly)) or self.keep_within is not None or bool(self.keep_tags)

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if v is not None}
        if "keep_tags" in out:
            out["keep_tags"] = list(out["keep_tags"])
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Policy:
        """Read a stored policy. Fields a newer tiervault added are ignored (and kept out of the result),
        so an older reader never fails on a newer item."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in known})
