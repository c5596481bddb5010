"""The settings the pure layer reads, as values: who the sender is, when a follow-up may go
(the window), how long to wait (the wait), what to watch. Loaded and checked by
mailer.adapters.config, which imports these value types and no policy."""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from datetime import time, timedelta

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# The sender's locales whose dates the composer writes without Babel, with the day pattern it
# uses (British usage drops the comma CLDR puts after the weekday: "Thursday 3 December").
# Here, not in the composer, so that checking a config's locale loads no composer.
DAY_PATTERNS = {"en_GB": "EEEE d MMMM", "en_IE": "EEEE d MMMM"}


@dataclass(frozen=True)
class Window:
    """When a follow-up may be sent, in the recipient's time zone."""

    start: time = time(9, 0)
    end: time = time(17, 0)  # time(0, 0) with start 00:00 means the whole day
    days: frozenset[int] = frozenset(range(5))
    always: bool = False

    def __str__(self) -> str:
        if self.always:
            return "any time"
        days = ",".join(_DAYS[d] for d in sorted(self.days))
        return f"{days} {self.start:%H:%M}-{self.end:%H:%M}"


def parse_window(hours: str, days: str = "mon-fri") -> Window:
    """``"09:00-17:00"`` and ``"mon-fri"`` (or ``"mon,wed,fri"``); ``"always"`` for tests."""
    if hours.strip().lower() == "always":
        return Window(always=True)
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", hours)
    if not m:
        raise ValueError(f"cannot read the window {hours!r} (use 'HH:MM-HH:MM' or 'always')")
    h1, m1, h2, m2 = (int(x) for x in m.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"the window {hours!r} is not a time of day")
    start, end = time(h1, m1), time(0, 0) if h2 == 24 else time(h2, m2)
    if end != time(0, 0) and end <= start:
        raise ValueError(f"the window {hours!r} ends before it starts")
    return Window(start=start, end=end, days=_parse_days(days))


def _parse_days(text: str) -> frozenset[int]:
    out: set[int] = set()
    for part in text.lower().replace(" ", "").split(","):
        a, _, b = part.partition("-")
        if a not in _DAYS or (b and b not in _DAYS):
            raise ValueError(f"cannot read the days {text!r} (use 'mon-fri' or 'mon,wed,fri')")
        i, j = _DAYS.index(a), _DAYS.index(b or a)
        out.update(range(i, j + 1) if i <= j else [*range(i, 7), *range(0, j + 1)])
    return frozenset(out)


@dataclass(frozen=True)
class SenderSettings:
    name: str
    address: str
    phone: str = ""
    signature: str = ""
    timezone: str = ""  # IANA name; empty means the machine's local zone
    locale: str = "en_GB"  # how dates are written: "Tuesday 1 December" / "Tuesday, December 1"
    # Whether the user wrote a locale: only then does it order a typed numeric date ("03/04");
    # the en_GB default still formats the email's dates.
    locale_set: bool = False


@dataclass(frozen=True)
class FollowUpSettings:
    wait: str = "3 business days"
    max_follow_ups: int = 1
    holidays_country: str = ""
    window: Window = field(default_factory=Window)
    quote_original: bool = True
    # A follow-up that could not go until this long after its first chance (mailer was not
    # running: a laptop shut for a holiday) waits for the user's word: "never" sends it anyway.
    hold_if_late: str = "7 days"


@dataclass(frozen=True)
class WatchSettings:
    folders: tuple[str, ...] = ("INBOX",)
    idle: bool = True
    poll_seconds: float = 60.0
    notify: bool = False  # email yourself when the interviewer replies


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
    # Written in seconds, minutes or hours: time that passes, even a whole day of it ("24
    # hours" is 23 or 25 hours of the wall clock across a DST change; "1 day" keeps the time).
    elapsed: bool = False

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
    return _duration(seconds, unit)


@functools.lru_cache(maxsize=8)
def late_limit(text: str) -> Wait | None:
    """``[follow_up] hold_if_late``: how late a follow-up may go without the user's word,
    or None ("never": it goes however late). A ``ValueError`` says what is wrong. Cached:
    every thread's policy asks for it, with the one text of the config."""
    if text.strip().lower() == "never":
        return None
    return validate_wait(text)


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
    return _duration(min(seconds, MAX_WAIT.total_seconds()), unit)


def _duration(seconds: float, unit: str) -> Wait:
    return Wait(duration=timedelta(seconds=seconds), elapsed=_UNITS[unit] < _UNITS["day"])


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
