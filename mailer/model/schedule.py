"""When a follow-up is due (pure: no clock, no I/O; the caller passes the times in)."""

from __future__ import annotations

import functools
import math
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
# ASCII digits only: \d would let in "²" and other Unicode digits that float() refuses.
_WAIT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(business\s+days?|[a-z]+)\s*$", re.IGNORECASE)
# Bounds, so every wait that passes validation can be added to a date without overflowing
# and counted out day by day quickly, long after the server has accepted the apology.
MIN_WAIT = timedelta(seconds=1)
MAX_WAIT = timedelta(days=365)
MAX_BUSINESS_DAYS = 260  # about a year of working days


@dataclass(frozen=True)
class Wait:
    """Either a number of business days or a plain duration."""

    business_days: int = 0
    duration: timedelta = timedelta(0)

    def __str__(self) -> str:
        if self.business_days:
            return f"{self.business_days} business day{'s' if self.business_days != 1 else ''}"
        return f"{int(self.duration.total_seconds())}s"


def validate_wait(text: str, *, maximum: timedelta = MAX_WAIT) -> Wait:
    """A wait from a config or campaign file, or a ``ValueError`` saying what is wrong.

    A plain duration must lie between :data:`MIN_WAIT` and ``maximum``; business days
    between 1 and :data:`MAX_BUSINESS_DAYS`.
    """
    number, unit = _read(text)
    if unit.startswith("business"):
        if not number.is_integer() or not 1 <= number <= MAX_BUSINESS_DAYS:
            raise ValueError(
                f"business days must be a whole number from 1 to {MAX_BUSINESS_DAYS}, "
                f"not {_brief(text)}"
            )
        return Wait(business_days=int(number))
    seconds = number * _UNITS[unit]  # a float: inf for absurdly long digit strings
    if not MIN_WAIT.total_seconds() <= seconds <= maximum.total_seconds():
        raise ValueError(
            f"the duration must be between {_span(MIN_WAIT)} and {_span(maximum)}, "
            f"not {_brief(text)}"
        )
    return Wait(duration=timedelta(seconds=seconds))


def parse_wait(text: str) -> Wait:
    """Read ``"3 business days"``, ``"45s"``, ``"2 hours"``, ``"1 week"``, as kept with a
    thread, when its follow-up is computed (after the server has accepted the message).

    A wait stored by an older version may be beyond today's bounds: it is cut to them, so
    adding it to a date can never fail. Unreadable text, or a wait of zero, is a ValueError.
    """
    number, unit = _read(text)
    if unit.startswith("business"):
        if number < 1 or (math.isfinite(number) and not number.is_integer()):
            raise ValueError(
                f"business days must be a whole number of at least 1, not {_brief(text)}"
            )
        return Wait(business_days=int(min(number, MAX_BUSINESS_DAYS)))
    seconds = number * _UNITS[unit]
    if seconds <= 0:
        raise ValueError(f"the wait must be longer than zero, not {_brief(text)}")
    return Wait(duration=timedelta(seconds=min(seconds, MAX_WAIT.total_seconds())))


def _read(text: str) -> tuple[float, str]:
    """The number and the unit (``"business days"`` or a key of ``_UNITS``) of a wait."""
    m = _WAIT.match(text)
    if not m:
        raise ValueError(
            f"cannot read the duration {_brief(text)} (try '3 business days' or '45s')"
        )
    number, unit = float(m.group(1)), re.sub(r"\s+", " ", m.group(2).lower())
    if not unit.startswith("business") and unit not in _UNITS:
        raise ValueError(
            f"unknown unit {_brief(m.group(2))} in {_brief(text)} (use s, minutes, hours, days)"
        )
    return number, unit


def _span(d: timedelta) -> str:
    seconds = int(d.total_seconds())
    for name, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {name if n != 1 else name[:-1]}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def _brief(text: str, limit: int = 40) -> str:
    """A value for an error message: quoted, on one line, and not a screenful."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


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
