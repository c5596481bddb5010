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
    (a fixed UTC offset taken from today would be an hour off across a change).

    Reading it costs file reads (a tenth of a millisecond), once per message of a campaign;
    so an IANA zone found is remembered while ``TZ`` and the zone files stay as they are. A
    laptop that changes zone replaces /etc/localtime, and a running daemon sees the new one.
    The fixed offset of the last resort is never remembered: it is today's only.
    """
    import sys

    if sys.platform == "win32":  # the zone is in the registry: no file to watch
        return _read_system_zone()
    key = (
        os.environ.get("TZ", ""),
        _file_key(ZONE_LINK),
        # A link to a link: the chain's end too, as _read_system_zone follows it.
        _file_key(os.path.realpath(ZONE_LINK), follow=True),
        _file_key(ZONE_NAME_FILE),
    )
    if _remembered_zone[0] == key:
        return _remembered_zone[1]  # type: ignore[return-value]
    zone = _read_system_zone()
    _remembered_zone[:] = [key, zone] if isinstance(zone, ZoneInfo) else [None, None]
    return zone


_remembered_zone: list[object] = [None, None]
# Where Linux and macOS keep the machine's zone (module names, so tests can point elsewhere).
ZONE_LINK, ZONE_NAME_FILE = "/etc/localtime", "/etc/timezone"


def _file_key(path: str, follow: bool = False) -> tuple[str, int, int, int, int] | None:
    """What changes when the file (or the link itself) is replaced or rewritten."""
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except OSError:
        return None
    return (path, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


def _read_system_zone() -> tzinfo:
    import sys
    from pathlib import Path

    candidates = [os.environ.get("TZ", "").lstrip(":")]
    if sys.platform == "win32":  # no /etc/localtime: tzlocal maps Windows' zone to IANA
        with contextlib.suppress(Exception):
            import tzlocal

            candidates.append(tzlocal.get_localzone_name())
    with contextlib.suppress(OSError):
        candidates.append(Path(ZONE_NAME_FILE).read_text().strip())
    try:
        target = str(Path(ZONE_LINK).resolve())
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
