"""When a follow-up is due (pure: no clock, no I/O; the caller passes the times in)."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta

from mailer.model.settings import Wait


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
    if sent_at.tzinfo is not None and (wait.elapsed or wait.duration % timedelta(days=1)):
        # Hours or minutes are time that passes: added to the instant. (Added to a zone's
        # wall clock, "10 minutes" across the October DST change fell due 50 minutes before
        # the apology went, and "24 hours" 25 hours after it.)
        return (sent_at.astimezone(UTC) + wait.duration).astimezone(sent_at.tzinfo)
    # Whole days (and weeks) keep the time of day, as business days do.
    return sent_at + wait.duration


@functools.lru_cache(maxsize=32)
def holidays_for(country: str, years: range) -> frozenset[date]:
    """Public holidays from the ``holidays`` library; an empty country means none. A region
    follows its country after a dash ("GB-ENG": England's, Easter Monday among them)."""
    if not country:
        return frozenset()
    import holidays as hol

    code, region = holiday_place(country)
    found = hol.country_holidays(code, subdiv=region, years=list(years))
    return frozenset(found.keys())


def holiday_place(country: str) -> tuple[str, str | None]:
    """The country code and the region as the ``holidays`` library spells them, from what a
    config says in any case ("gb-eng", "DE-Augsburg", "IT-ANDRIA"): the library's regions are
    mostly codes in capitals, but some are names ("Augsburg", "Zone A") that it takes only as
    it spells them. A region it does not know is returned in capitals (the config reports it)."""
    import holidays as hol

    code, _, region = country.strip().partition("-")
    code = code.upper()
    if not region:
        return code, None
    known = {r.upper(): r for r in hol.list_supported_countries().get(code, [])}
    return code, known.get(region.upper(), region.upper())
