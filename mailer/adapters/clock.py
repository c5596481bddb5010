"""The clock, injected everywhere so that tests never depend on today's date."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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


def local_zone(name: str = "") -> tzinfo:
    """The sender's zone: the configured IANA name, else the machine's."""
    if name:
        # As facts.zone reads it, without importing the facts module (a tenth of what a
        # listing imports otherwise).
        from mailer.model.zones import resolve

        return resolve(name, "sender.timezone").tz
    return system_zone()


def system_zone() -> tzinfo:
    """The machine's zone as a real IANA zone, so summer time is right for future dates
    (a fixed UTC offset taken from today would be an hour off across a change)."""
    import os
    import sys
    from pathlib import Path

    candidates = [os.environ.get("TZ", "").lstrip(":")]
    if sys.platform == "win32":  # no /etc/localtime: tzlocal maps Windows' zone to IANA
        with contextlib.suppress(Exception):
            import tzlocal

            candidates.append(tzlocal.get_localzone_name())
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text().strip())
    try:
        target = str(Path("/etc/localtime").resolve())
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    for name in candidates:
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return datetime.now().astimezone().tzinfo  # type: ignore[return-value]
