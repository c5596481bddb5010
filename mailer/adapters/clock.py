"""The clock, injected everywhere so that tests never depend on today's date."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def default_clock() -> Clock:
    """``MAILER_NOW`` (an ISO time) sets the clock for tests and demos; it then runs on."""
    pinned = os.environ.get("MAILER_NOW")
    if not pinned:
        return system_clock
    fixed = datetime.fromisoformat(pinned)
    if fixed.tzinfo is None:
        fixed = fixed.replace(tzinfo=UTC)
    shift = fixed - datetime.now(UTC)
    return lambda: datetime.now(UTC) + shift
