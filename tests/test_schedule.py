"""When the follow-up falls due (pure)."""

from __future__ import annotations

import atexit
import contextlib
import shutil
import tempfile
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mailer.adapters.config import Settings, load_settings
from mailer.model.schedule import follow_up_due, holiday_place, holidays_for
from mailer.model.settings import Wait, parse_wait, parse_window, validate_wait
from mailer.services.sending import due_after

TZ = ZoneInfo("Europe/London")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3 business days", Wait(business_days=3)),
        ("1 business day", Wait(business_days=1)),
        ("45s", Wait(duration=timedelta(seconds=45), elapsed=True)),
        ("90 minutes", Wait(duration=timedelta(minutes=90), elapsed=True)),
        ("2h", Wait(duration=timedelta(hours=2), elapsed=True)),
        ("24 hours", Wait(duration=timedelta(days=1), elapsed=True)),
        ("1 day", Wait(duration=timedelta(days=1))),
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


def test_a_region_after_the_country_adds_its_own_holidays() -> None:
    """Verify "GB-ENG" counts England's Easter Monday and August bank holiday, which "GB"
    alone (the UK-wide days) left as business days (a walkthrough), and is read in any case."""
    uk, england = holidays_for("GB", range(2026, 2027)), holidays_for("gb-eng", range(2026, 2027))
    for day in (date(2026, 4, 6), date(2026, 8, 31)):
        assert day not in uk and day in england
    friday = datetime(2026, 4, 3, 10, 0, tzinfo=TZ)  # Good Friday
    assert follow_up_due(friday, Wait(business_days=1), england).date() == date(2026, 4, 7)


@pytest.mark.parametrize("written", ["DE-Augsburg", "de-augsburg", "DE-AUGSBURG"])
def test_a_region_the_library_names_in_mixed_case_is_found_in_any_case(written: str) -> None:
    """Verify a region that the holidays library spells as a name, not a code in capitals
    ("Augsburg", whose Peace Festival on 8 August Bavaria as a whole does not keep), is
    found however the config writes it; it used to be refused as unknown."""
    assert holiday_place(written) == ("DE", "Augsburg")
    augsburg = holidays_for(written, range(2026, 2027))
    assert date(2026, 8, 8) in augsburg
    assert date(2026, 8, 8) not in holidays_for("DE-BY", range(2026, 2027))


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


@pytest.mark.parametrize(
    ("sent_utc", "wait", "elapsed"),
    [
        # The second 01:30 of London's October change: 10 minutes fell due 50 minutes before.
        (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), "10 minutes", timedelta(minutes=10)),
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), "1 hour", timedelta(hours=1)),
        (datetime(2026, 10, 24, 23, 30, tzinfo=UTC), "2 hours", timedelta(hours=2)),
        (datetime(2026, 3, 29, 0, 30, tzinfo=UTC), "3 hours", timedelta(hours=3)),
        # Whole days written in hours are hours too: they were taken as a day of the wall
        # clock, 25 hours across the October change and 23 across the March one.
        (datetime(2026, 10, 24, 11, 0, tzinfo=UTC), "24 hours", timedelta(hours=24)),
        (datetime(2026, 3, 28, 11, 0, tzinfo=UTC), "48 hours", timedelta(hours=48)),
        (datetime(2026, 10, 24, 11, 0, tzinfo=UTC), "1440 minutes", timedelta(hours=24)),
    ],
)
def test_a_wait_in_hours_or_minutes_is_time_that_passes_across_a_dst_change(
    sent_utc: datetime, wait: str, elapsed: timedelta
) -> None:
    """Verify hours and minutes are added to the instant, not to London's wall clock, where
    a DST change made them longer or shorter (or due before the send); whole days keep
    the time of day."""
    london = ZoneInfo("Europe/London")
    sent = sent_utc.astimezone(london)
    due = follow_up_due(sent, parse_wait(wait))
    assert due.astimezone(UTC) - sent_utc == elapsed
    week = follow_up_due(datetime(2026, 10, 22, 10, 0, tzinfo=london), parse_wait("7 days"))
    assert (week.hour, week.day) == (10, 29)
    day = follow_up_due(datetime(2026, 10, 24, 12, 0, tzinfo=london), parse_wait("1 day"))
    assert (day.hour, day.day) == (12, 25)


# --- every wait that passes validation is usable after the server's 250 ---------------------

_UNIT_SECONDS = {"s": 1, "minutes": 60, "hours": 3600, "days": 86400, "weeks": 604800}


def _wait_text() -> st.SearchStrategy[str]:
    """Wait texts in every unit, whole and fractional: mostly up to and at the documented
    bounds (a year, 260 business days), some far beyond them, which validation must refuse."""
    year = 365 * 86400

    def in_unit(unit: str, seconds: int, top: float) -> st.SearchStrategy[str]:
        return st.one_of(
            st.integers(1, int(top // seconds)).map(str),
            st.floats(1 / seconds, top / seconds).map(lambda x: f"{x:.3f}"),
        ).map(lambda n: f"{n} {unit}")

    units = sorted(_UNIT_SECONDS.items())
    plain = st.sampled_from(units).flatmap(lambda u: in_unit(*u, top=year))
    business = st.integers(1, 260).map(lambda n: f"{n} business days")
    beyond = st.one_of(
        st.sampled_from(units).flatmap(lambda u: in_unit(*u, top=10**6 * year)),
        st.integers(1, 10**7).map(lambda n: f"{n} business days"),
    )
    return st.one_of(plain, plain, business, business, beyond)


_WINDOWS = [
    ("always", "mon-fri"),
    ("09:00-17:00", "mon-fri"),
    ("00:00-24:00", "sun"),
    ("23:59-24:00", "sat"),
    ("08:30-09:00", "fri-mon"),
    ("12:00-13:00", "wed"),
]
_ZONES = ["Europe/London", "Pacific/Apia", "America/St_Johns", "Asia/Kathmandu", "UTC"]


@lru_cache(maxsize=1)
def _base_settings() -> Settings:
    d = Path(tempfile.mkdtemp(prefix="mlr-due-"))
    atexit.register(shutil.rmtree, d, True)  # (cached for the run: a fixture cannot be)
    (d / "config").mkdir()
    (d / "config" / "mailer.toml").write_text(
        '[sender]\nname = "Sam"\naddress = "sam@sandbox.test"\n'
        '[smtp]\nhost = "127.0.0.1"\n[imap]\nhost = "127.0.0.1"\n',
        encoding="utf-8",
    )
    return load_settings(d / "config" / "mailer.toml")


@settings(max_examples=400, derandomize=True, deadline=None, database=None)
@given(
    wait=_wait_text(),
    max_follow_ups=st.integers(0, 5),
    window=st.sampled_from(_WINDOWS),
    country=st.sampled_from(["", "GB", "US", "DE"]),
    zone=st.sampled_from(_ZONES),
    sent_at=st.datetimes(datetime(2000, 1, 1), datetime(2100, 12, 31), timezones=st.just(UTC)),
)
def test_every_readable_policy_gives_a_follow_up_time_within_about_a_year(
    wait: str,
    max_follow_ups: int,
    window: tuple[str, str],
    country: str,
    zone: str,
    sent_at: datetime,
) -> None:
    """Verify due_after, run after the 250, never raises for a wait that passed validation,
    nor for one an older version stored beyond today's bounds."""
    try:
        stored = parse_wait(wait)  # how a thread's wait is read when its follow-up is due
    except ValueError:
        assume(False)  # "0.000 weeks": refused when it was stored, so never in a thread
    with contextlib.suppress(ValueError):
        assert validate_wait(wait) == stored  # accepted values are never cut
    base = _base_settings()
    policy = replace(
        base,
        sender=replace(base.sender, timezone=zone),
        follow_up=replace(
            base.follow_up,
            wait=wait,
            max_follow_ups=max_follow_ups,
            window=parse_window(*window),
            holidays_country=country,
        ),
    )
    due = due_after(policy, sent_at)
    if max_follow_ups == 0:
        assert due is None
    else:
        assert due is not None
        assert sent_at <= due <= sent_at + timedelta(days=400)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1000000 weeks", Wait(duration=timedelta(days=365))),
        ("1" + "0" * 400 + " weeks", Wait(duration=timedelta(days=365))),
        ("3000000 business days", Wait(business_days=260)),
        ("1" + "0" * 400 + " business days", Wait(business_days=260)),
        ("400 days", Wait(duration=timedelta(days=365))),
    ],
)
def test_a_stored_wait_beyond_the_bounds_is_cut_to_them(text: str, expected: Wait) -> None:
    """Verify a thread's wait from an older version is read within today's bounds."""
    assert parse_wait(text) == expected
    with pytest.raises(ValueError):
        validate_wait(text)
