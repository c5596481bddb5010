"""The sender's own settings that the pure layer reads: who they are, when a follow-up may
go (the window), how long to wait, what to watch. Loaded and checked by mailer.adapters.config."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import time

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


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


@dataclass(frozen=True)
class WatchSettings:
    folders: tuple[str, ...] = ("INBOX",)
    idle: bool = True
    poll_seconds: float = 60.0
    notify: bool = False  # email yourself when the interviewer replies
