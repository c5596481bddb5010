"""How fast a campaign sends: a steady rate with jitter, slowing down when the server asks,
and a daily cap per account. Pure: the clock and the sleep are handed in.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo

SLOW_DOWN_FIRST = 30.0  # seconds to wait after the first "too many" answer
SLOW_DOWN_MAX = 600.0


class Pacer:
    """Spaces messages ``60 / per_minute`` seconds apart plus up to ``jitter`` seconds.

    ``slow_down()`` after a 421/454 "too many" answer: the pause before the next try grows
    (30 s, 60 s, ... up to 10 minutes), and the steady interval doubles for the rest of the
    run, so the run goes on more slowly instead of failing.
    """

    def __init__(
        self,
        per_minute: float,
        jitter: float,
        clock: Callable[[], datetime],
        sleep: Callable[[float], None],
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.interval = 60.0 / per_minute if per_minute > 0 else 0.0
        self.jitter = jitter
        self.clock = clock
        self.sleep = sleep
        self.rng = rng
        self.last: datetime | None = None
        self.hold_until: datetime | None = None
        self.slow_downs = 0

    def immediate(self) -> bool:
        """True if :meth:`wait` would not pause now: no rate, no jitter, no slow-down."""
        return (
            not self.interval
            and not self.jitter
            and (self.hold_until is None or self.hold_until <= self.clock())
        )

    def wait(self) -> float:
        """Sleep until the next message may go; returns the seconds slept."""
        now = self.clock()
        ready = now
        if self.last is not None:
            gap = self.interval + (self.rng() * self.jitter if self.jitter else 0.0)
            ready = self.last + timedelta(seconds=gap)
        if self.hold_until is not None and self.hold_until > ready:
            ready = self.hold_until
        pause = max(0.0, (ready - now).total_seconds())
        if pause:
            self.sleep(pause)
        self.last = self.clock()
        return pause

    def slow_down(self) -> float:
        """The server said "too many": back off, and send more slowly from now on."""
        self.slow_downs += 1
        pause = min(SLOW_DOWN_FIRST * 2 ** (self.slow_downs - 1), SLOW_DOWN_MAX)
        self.interval = max(self.interval * 2, 1.0)
        self.hold_until = self.clock() + timedelta(seconds=pause)
        return pause


def start_of_day(now: datetime, tz: tzinfo) -> datetime:
    """Midnight of ``now``'s day in the account's zone: where a daily cap starts counting."""
    local = now.astimezone(tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def effective_cap(*caps: int) -> int:
    """The tightest of several caps, where 0 means no cap (and so is 0 if none is set)."""
    set_caps = [c for c in caps if c > 0]
    return min(set_caps) if set_caps else 0


def too_many(code: int | None, text: str) -> bool:
    """A 421/454, or a 4xx that says it is about rate: slow down rather than fail."""
    if code in (421, 454):
        return True
    lowered = text.lower()
    if "recipients" in lowered:  # 452 "too many recipients" is about one message, not rate
        return False
    return (
        code is not None
        and 400 <= code < 500
        and any(w in lowered for w in ("too many", "rate limit", "throttl", "slow down"))
    )
