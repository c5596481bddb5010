"""When the follow-up falls due (pure)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mailer.schedule import Wait, follow_up_due, holidays_for, parse_wait

TZ = ZoneInfo("Europe/London")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3 business days", Wait(business_days=3)),
        ("1 business day", Wait(business_days=1)),
        ("45s", Wait(duration=timedelta(seconds=45))),
        ("90 minutes", Wait(duration=timedelta(minutes=90))),
        ("2h", Wait(duration=timedelta(hours=2))),
        ("1 week", Wait(duration=timedelta(days=7))),
    ],
)
def test_waits_parse_in_any_unit(text: str, expected: Wait) -> None:
    """Verify business days and plain durations down to seconds are understood."""
    assert parse_wait(text) == expected


@pytest.mark.parametrize("text", ["soon", "0s", "-3 days", "2.5 business days", "3 fortnights"])
def test_unreadable_waits_are_refused(text: str) -> None:
    """Verify nonsense and zero waits raise a clear ValueError."""
    with pytest.raises(ValueError):
        parse_wait(text)


def test_business_days_skip_the_weekend() -> None:
    """Verify Thursday + 3 business days is the next Tuesday, same time."""
    thursday = datetime(2026, 11, 26, 14, 30, tzinfo=TZ)
    assert follow_up_due(thursday, Wait(business_days=3)) == datetime(
        2026, 12, 1, 14, 30, tzinfo=TZ
    )


def test_business_days_skip_public_holidays() -> None:
    """Verify Christmas and Boxing Day (GB) are not business days."""
    eve = datetime(2026, 12, 24, 9, 0, tzinfo=TZ)
    hols = holidays_for("GB", range(2026, 2028))
    assert date(2026, 12, 25) in hols
    assert follow_up_due(eve, Wait(business_days=1), hols).date() == date(2026, 12, 29)


def test_plain_duration_is_added_exactly() -> None:
    """Verify '45s' means 45 seconds after the send."""
    sent = datetime(2026, 11, 28, 23, 59, 30, tzinfo=TZ)
    assert follow_up_due(sent, parse_wait("45s")) == sent + timedelta(seconds=45)
