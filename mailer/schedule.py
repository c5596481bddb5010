"""When a follow-up is due (pure: no clock, no I/O; the caller passes the times in)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

_UNITS = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "week": 604800,
    "weeks": 604800,
}
_WAIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(business\s+days?|[a-z]+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Wait:
    """Either a number of business days or a plain duration."""

    business_days: int = 0
    duration: timedelta = timedelta(0)

    def __str__(self) -> str:
        if self.business_days:
            return f"{self.business_days} business day{'s' if self.business_days != 1 else ''}"
        return f"{int(self.duration.total_seconds())}s"


def parse_wait(text: str) -> Wait:
    """Parse ``"3 business days"``, ``"45s"``, ``"2 hours"``, ``"1 week"``."""
    m = _WAIT.match(text)
    if not m:
        raise ValueError(f"cannot read the duration {text!r} (try '3 business days' or '45s')")
    number, unit = float(m.group(1)), re.sub(r"\s+", " ", m.group(2).lower())
    if unit.startswith("business"):
        if number != int(number) or number < 1:
            raise ValueError(f"business days must be a whole number of at least 1, not {text!r}")
        return Wait(business_days=int(number))
    if unit not in _UNITS:
        raise ValueError(f"unknown unit {m.group(2)!r} in {text!r} (use s, minutes, hours, days)")
    seconds = number * _UNITS[unit]
    if seconds <= 0:
        raise ValueError(f"the wait must be longer than zero, not {text!r}")
    return Wait(duration=timedelta(seconds=seconds))


def is_business_day(day: date, holidays: frozenset[date] | set[date] = frozenset()) -> bool:
    return day.weekday() < 5 and day not in holidays


def add_business_days(
    start: datetime, n: int, holidays: frozenset[date] | set[date] = frozenset()
) -> datetime:
    """The same time of day, n business days later (weekends and holidays skipped)."""
    current = start
    added = 0
    while added < n:
        current += timedelta(days=1)
        if is_business_day(current.date(), holidays):
            added += 1
    return current


def follow_up_due(
    sent_at: datetime, wait: Wait, holidays: frozenset[date] | set[date] = frozenset()
) -> datetime:
    if wait.business_days:
        return add_business_days(sent_at, wait.business_days, holidays)
    return sent_at + wait.duration


@functools.lru_cache(maxsize=32)
def holidays_for(country: str, years: range) -> frozenset[date]:
    """Public holidays from the ``holidays`` library; an empty country means none."""
    if not country:
        return frozenset()
    import holidays as hol

    return frozenset(hol.country_holidays(country, years=list(years)).keys())
