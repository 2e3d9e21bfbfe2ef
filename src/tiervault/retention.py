"""Retention: which recovery points a policy keeps, and why. Pure decisions, no I/O.

The rules are restic's (docs/format.md, "Retention"). Points are taken per item, newest first.
``keep_last N`` keeps the N newest; ``keep_hourly`` … ``keep_yearly N`` keep the newest point of each
of the N most recent hours, days, ISO weeks, months or years that hold one (a point may count for
several rules at once); ``keep_within D`` keeps every point whose time is after the item's newest
point minus D; ``keep_tags`` keeps every point having one of the tags. Times are bucketed in UTC
unless a time zone is given.

Incomplete points (a deadline ran out) are checkpoints: one older than the item's newest complete
point is removed, a newer one is kept (the next snapshot resumes from it); neither counts for the
rules. A policy with no rule keeps every point, and says so.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol

from tiervault.policy import Duration, Policy, parse_duration

NO_RULE = "no retention rule: every point is kept"
NO_MATCH = "no rule keeps it"


class Candidate(Protocol):
    """What retention looks at in a point (``RecoveryPoint`` has it)."""

    @property
    def id(self) -> str: ...
    @property
    def item(self) -> str: ...
    @property
    def time(self) -> datetime: ...
    @property
    def tags(self) -> Sequence[str]: ...
    @property
    def incomplete(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class RetentionDecision:
    """One point's fate under a policy: ``keep`` or not, with every reason (``"last 3"``,
    ``"daily 2026-11-30"``, ``"weekly 2026-W48"``, ``"within 7d"``, ``"tag release"``; for a removed
    point why it goes)."""

    id: str
    item: str
    time: datetime
    keep: bool
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "item": self.item,
            "time": self.time.isoformat(),
            "keep": self.keep,
            "reasons": list(self.reasons),
        }


def _hour(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H")


def _day(t: datetime) -> str:
    return t.strftime("%Y-%m-%d")


def _week(t: datetime) -> str:
    year, week, _ = t.isocalendar()
    return f"{year:04d}-W{week:02d}"


def _month(t: datetime) -> str:
    return t.strftime("%Y-%m")


def _year(t: datetime) -> str:
    return f"{t.year:04d}"


#: the bucket rules: the policy field, the reason's word, the bucket of a (zoned) time
BUCKETS: tuple[tuple[str, str, Callable[[datetime], str]], ...] = (
    ("keep_hourly", "hourly", _hour),
    ("keep_daily", "daily", _day),
    ("keep_weekly", "weekly", _week),
    ("keep_monthly", "monthly", _month),
    ("keep_yearly", "yearly", _year),
)


def _minus_months(t: datetime, months: int) -> datetime:
    """``t`` that many calendar months earlier, the day clamped to the target month's length."""
    total = t.year * 12 + (t.month - 1) - months
    year, month = divmod(total, 12)
    month += 1
    if year < 1:
        return datetime.min.replace(tzinfo=t.tzinfo)
    return t.replace(year=year, month=month, day=min(t.day, calendar.monthrange(year, month)[1]))


def cutoff(newest: datetime, span: Duration) -> datetime:
    """The time ``span`` before ``newest`` (calendar years and months, then weeks, days, hours)."""
    t = _minus_months(newest, span.years * 12 + span.months)
    try:
        return t - timedelta(weeks=span.weeks, days=span.days, hours=span.hours)
    except OverflowError:
        return datetime.min.replace(tzinfo=newest.tzinfo)


def decide(
    points: Iterable[Candidate], policy: Policy, *, tz: tzinfo | None = None
) -> list[RetentionDecision]:
    """The decision for every point, oldest first (by time, then id), each item on its own."""
    by_item: dict[str, list[Candidate]] = {}
    for p in points:
        by_item.setdefault(p.item, []).append(p)
    out: list[RetentionDecision] = []
    for item_points in by_item.values():
        out.extend(_decide_item(item_points, policy, tz or UTC))
    return sorted(out, key=lambda d: (d.time, d.id))


def _decide_item(points: list[Candidate], policy: Policy, tz: tzinfo) -> list[RetentionDecision]:
    newest_first = sorted(points, key=lambda p: (p.time, p.id), reverse=True)
    if not policy.has_keep_rule:
        return [_decision(p, True, [NO_RULE]) for p in newest_first]
    complete = [p for p in newest_first if not p.incomplete]
    newest_complete = complete[0] if complete else None
    reasons: dict[str, list[str]] = {p.id: [] for p in newest_first}

    for rank, p in enumerate(complete[: policy.keep_last or 0], start=1):
        reasons[p.id].append(f"last {rank}")
    for field, word, bucket_of in BUCKETS:
        left = getattr(policy, field) or 0
        last_bucket: str | None = None
        for p in complete:
            if left <= 0:
                break
            bucket = bucket_of(p.time.astimezone(tz))
            if bucket != last_bucket:
                reasons[p.id].append(f"{word} {bucket}")
                last_bucket = bucket
                left -= 1
    if policy.keep_within is not None and newest_complete is not None:
        since = cutoff(newest_complete.time.astimezone(tz), parse_duration(policy.keep_within))
        for p in complete:
            if p.time > since:
                reasons[p.id].append(f"within {policy.keep_within}")
    for tag in policy.keep_tags or ():
        for p in complete:
            if tag in p.tags:
                reasons[p.id].append(f"tag {tag}")

    out = []
    for p in newest_first:
        if p.incomplete:
            if newest_complete is not None and (p.time, p.id) < (newest_complete.time, newest_complete.id):
                why = f"incomplete, superseded by complete point {newest_complete.id[:8]}"
                out.append(_decision(p, False, [why]))
            else:
                out.append(_decision(p, True, ["incomplete: the checkpoint the next snapshot resumes from"]))
        elif reasons[p.id]:
            out.append(_decision(p, True, reasons[p.id]))
        else:
            out.append(_decision(p, False, [NO_MATCH]))
    return out


def _decision(p: Candidate, keep: bool, reasons: list[str]) -> RetentionDecision:
    return RetentionDecision(p.id, p.item, p.time, keep, tuple(reasons))
