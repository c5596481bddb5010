"""Dates, zones, situations and addresses as people write them (issue #12)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from mailer.errors import InputError
from mailer.model.addresses import typo_warning
from mailer.model.facts import make_facts, parse_slot, parse_when
from mailer.model.when import echo, echo_slot, read_slot, read_when
from mailer.model.zones import resolve

LONDON = ZoneInfo("Europe/London")
# Sunday 29 November 2026, noon in London.
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def at(*args: int, tz: ZoneInfo = LONDON) -> datetime:
    return datetime(*args, tzinfo=tz)


@pytest.mark.parametrize(
    ("text", "expected", "note"),
    [
        ("25/11/2026 10am", at(2026, 11, 25, 10), ""),
        (
            "Nov 25 10:00",
            at(2026, 11, 25, 10),
            "no year given: the nearest 25 Nov is in 2026 (4 days ago)",
        ),
        ("tomorrow 10:00", at(2026, 11, 30, 10), "'tomorrow' counted from today, Sun 29 Nov 2026"),
        (
            "next Tuesday 14:00",
            at(2026, 12, 1, 14),
            "'next Tuesday' counted from today, Sun 29 Nov 2026",
        ),
        ("2026-11-25 10:00 CET", at(2026, 11, 25, 9), "CET read as Europe/Paris, 10:00 there"),
        ("2026-11-25 10:00", at(2026, 11, 25, 10), ""),
        ("2026-11-25T10:00:00+01:00", at(2026, 11, 25, 9), "given in UTC+01:00, 10:00 there"),
        ("2026-11-25 10:00Z", at(2026, 11, 25, 10), "Z read as UTC"),
        ("Wed 25 Nov 2026 10:00", at(2026, 11, 25, 10), ""),
        ("25th November 2026 at 3pm", at(2026, 11, 25, 15), ""),
        ("25.11.2026 10.30", at(2026, 11, 25, 10, 30), ""),
        ("12/25/2026 9:00", at(2026, 12, 25, 9), ""),
        (
            "yesterday 9:30pm",
            at(2026, 11, 28, 21, 30),
            "'yesterday' counted from today, Sun 29 Nov 2026",
        ),
        (
            "last Friday noon",
            at(2026, 11, 27, 12),
            "'last Friday' counted from today, Sun 29 Nov 2026",
        ),
        ("Sunday 10:00", at(2026, 11, 29, 10), "'Sunday' counted from today, Sun 29 Nov 2026"),
        ("today 12am", at(2026, 11, 29, 0), "'today' counted from today, Sun 29 Nov 2026"),
    ],
)
def test_dates_are_read_as_people_write_them(text: str, expected: datetime, note: str) -> None:
    """Verify each written form gives the intended instant, and says how when it had to."""
    reading = read_when(text, LONDON, NOW, None)
    assert reading.at == expected
    assert reading.at.tzinfo == LONDON
    assert reading.notes == ((note,) if note else ())


def test_the_echo_names_the_day_and_the_zone() -> None:
    """Verify the echo's exact form: "interview read as Wed 25 Nov 2026 10:00 (Europe/London)"."""
    assert (
        echo("interview", read_when("25/11/2026 10am", LONDON, NOW, None))
        == "interview read as Wed 25 Nov 2026 10:00 (Europe/London)"
    )
    assert echo("interview", read_when("tomorrow 10:00", LONDON, NOW, None)) == (
        "interview read as Mon 30 Nov 2026 10:00 (Europe/London): "
        "'tomorrow' counted from today, Sun 29 Nov 2026"
    )


@pytest.mark.parametrize("key", ["Etc/UTC", "UTC", "Etc/Zulu", "Universal"])
def test_utc_under_any_of_its_tzdata_names_is_labelled_utc(key: str) -> None:
    """Verify a machine set to UTC (often "Etc/UTC") gets the label every other line uses."""
    reading = read_when("25/11/2026 10am", ZoneInfo(key), NOW, None)
    assert echo("interview", reading) == "interview read as Wed 25 Nov 2026 10:00 (UTC)"
    other = read_when("25/11/2026 10am", ZoneInfo("Etc/GMT+5"), NOW, None)
    assert echo("interview", other).endswith("(Etc/GMT+5)")  # not UTC: kept as it is


@pytest.mark.parametrize(
    ("text", "readings"),
    [
        ("03/04 10:00", "3 April or 4 March"),
        ("03/04/2026 10:00", "3 April or 4 March"),
        ("1/12/2026 9:00", "1 December or 12 January"),
    ],
)
def test_a_numeric_date_that_could_swap_is_refused_without_a_locale(
    text: str, readings: str
) -> None:
    """Verify "03/04" is refused, with both readings shown, when [sender] locale is not set."""
    with pytest.raises(InputError) as err:
        read_when(text, LONDON, NOW, None)
    assert f"could be {readings}" in str(err.value)
    assert "[sender] locale" in str(err.value)


@pytest.mark.parametrize("text", ["04/04/2026 10:00", "25/11/2026 10:00", "11/25/2026 10:00"])
def test_a_numeric_date_with_one_reading_needs_no_locale(text: str) -> None:
    """Verify a day over 12, or day equal to month, has one reading and is taken."""
    day = read_when(text, LONDON, NOW, None).at
    assert (day.month, day.day) in ((4, 4), (11, 25))


@pytest.mark.parametrize(
    ("locale", "expected"),
    [("en_GB", at(2026, 4, 3, 10)), ("en_US", at(2026, 3, 4, 10)), ("de_DE", at(2026, 4, 3, 10))],
)
def test_a_set_locale_orders_day_and_month(locale: str, expected: datetime) -> None:
    """Verify en_GB reads day first and en_US month first, without refusing."""
    assert read_when("03/04/2026 10:00", LONDON, NOW, locale).at == expected


def test_a_date_impossible_in_the_locale_order_is_refused() -> None:
    """Verify en_US does not silently swap "25/11" into the other order."""
    with pytest.raises(InputError, match="not a real date in month/day order"):
        read_when("25/11/2026 10:00", LONDON, NOW, "en_US")


@pytest.mark.parametrize(
    ("now", "text", "expected", "said"),
    [
        # Around New Year: 2 January written on 31 December is next week, not last January.
        (datetime(2026, 12, 31, 12, tzinfo=UTC), "2 Jan 10:00", at(2027, 1, 2, 10), "2 days ahead"),
        (datetime(2026, 12, 31, 12, tzinfo=UTC), "31 Dec 09:00", at(2026, 12, 31, 9), "today"),
        # ...and 31 December written on 1 January is the interview missed yesterday.
        (datetime(2027, 1, 1, 12, tzinfo=UTC), "Dec 31 10:00", at(2026, 12, 31, 10), "1 day ago"),
        # At 23:30 on New Year's Eve "1 Jan" is tomorrow, not a year away.
        (
            datetime(2026, 12, 31, 23, 30, tzinfo=UTC),
            "1 Jan 10:00",
            at(2027, 1, 1, 10),
            "1 day ahead",
        ),
        # A missed interview, written without its year five days later (newcomer, session 15).
        (
            datetime(2026, 11, 30, 12, tzinfo=UTC),
            "Nov 25 10:00",
            at(2026, 11, 25, 10),
            "5 days ago",
        ),
        (
            datetime(2026, 11, 29, 12, tzinfo=UTC),
            "29 Feb 10:00",
            at(2028, 2, 29, 10),
            "457 days ahead",
        ),
    ],
)
def test_an_interview_without_a_year_is_the_nearest_occurrence(
    now: datetime, text: str, expected: datetime, said: str
) -> None:
    """Verify an interview date without a year is the occurrence nearest today, before or
    after it (a missed interview is usually days ago), and the echo says which."""
    reading = read_when(text, LONDON, now, None)
    assert reading.at == expected
    assert reading.notes == (
        f"no year given: the nearest {expected.day} {expected:%b} is in {expected.year} ({said})",
    )


def test_a_free_time_without_a_year_is_its_next_occurrence() -> None:
    """Verify a free time without a year (always ahead) takes its next occurrence: "25 Nov"
    written on 30 Nov is next year's, where an interview's would be five days ago."""
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    reading = read_slot("Nov 25 9am-11am", LONDON, now, None)
    assert reading.notes == ("no year given: the next 25 Nov is in 2027",)
    assert read_when("Nov 25 10:00", LONDON, now, None).at.year == 2026


def test_relative_words_count_from_the_given_clock_not_the_wall_clock() -> None:
    """Verify "tomorrow" moves with the injected clock."""
    for days in (0, 40, 400):
        now = NOW + timedelta(days=days)
        assert (
            read_when("tomorrow 10:00", LONDON, now, None).at.date()
            == (now + timedelta(days=1)).date()
        )


def test_relative_words_use_the_senders_day_not_utcs() -> None:
    """Verify at 23:30 UTC (already tomorrow in Tokyo) "today" is Tokyo's day for a Tokyo sender."""
    tokyo = ZoneInfo("Asia/Tokyo")
    now = datetime(2026, 11, 29, 23, 30, tzinfo=UTC)
    assert read_when("today 10:00", tokyo, now, None).at == at(2026, 11, 30, 10, tz=tokyo)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-11-25", "no time of day"),
        ("10:00", "has no date"),
        ("someday 10:00", "cannot read"),
        ("soon", "no time of day"),
        ("Tue 25 Nov 2026 10:00", "25 Nov 2026 is a Wednesday, not a Tuesday"),
        ("31/02/2026 10:00", "not a real date"),
        ("25/11/26 10:00", "write the year in full"),
        ("2026-11-25 25:00", "not a time of day"),
        ("2026-11-25 13pm", "not a time"),
        ("2026-11-25 10:00 CST", "ambiguous (America/Chicago, Asia/Shanghai, America/Havana)"),
        ("2026-11-25 10:00 Berlin", "did you mean Europe/Berlin?"),
        ("1 Jan 1900 10:00", "outside the years"),
    ],
)
def test_unreadable_dates_are_refused_with_a_reason(text: str, message: str) -> None:
    """Verify what the grammar does not cover is refused, never guessed."""
    with pytest.raises(InputError, match="--interview") as err:
        read_when(text, LONDON, NOW, None)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("next blursday", "--interview: cannot read 'next blursday'; it has no time of day"),
        ("next blursday 10:00", "--interview: cannot read 'next blursday 10:00'; e.g."),
        ("tomorrow 10:00 Tuesdy", "--interview: cannot read 'tomorrow 10:00 Tuesdy'; e.g."),
        ("tomorrow 10:00 Berln", "--interview: unknown time zone 'Berln'; did you mean Europe/"),
        ("tomorrow 10:00 Singapor", "--interview: unknown time zone 'Singapor'; did you mean"),
        ("tomorrow 10:00 Mumbai", "--interview: unknown time zone 'Mumbai'; use an IANA name"),
        ("tomorrow 10:00 GST", "--interview: unknown time zone 'GST'; use an IANA name"),
        # An abbreviation's near miss is another zone, never suggested (it was Australia/ACT).
        ("tomorrow 10:00 ACDX", "--interview: unknown time zone 'ACDX'; use an IANA name"),
    ],
)
def test_a_last_word_is_called_a_time_zone_only_if_it_may_be_one(text: str, message: str) -> None:
    """Verify a misspelt day ("next blursday") is not blamed on a time zone ("unknown time
    zone 'blursday'; use an IANA name" told the user to fix the wrong part), while a place
    or an abbreviation still is, and a word close to a zone's name gets its suggestion."""
    with pytest.raises(InputError) as err:
        read_when(text, LONDON, NOW, None)
    assert str(err.value).startswith(message), str(err.value)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026-12-01 09:00-12:00", at(2026, 12, 1, 9), at(2026, 12, 1, 12)),
        ("next Tuesday 9am-11am", at(2026, 12, 1, 9), at(2026, 12, 1, 11)),
        ("2 Dec 2026 14:00 to 16:30", at(2026, 12, 2, 14), at(2026, 12, 2, 16, 30)),
        ("2026-12-01 10:00-13:00 CET", at(2026, 12, 1, 9), at(2026, 12, 1, 12)),
    ],
)
def test_free_slots_are_read_as_people_write_them(
    text: str, start: datetime, end: datetime
) -> None:
    """Verify a slot is a day and a time range, in any of the date forms."""
    slot = read_slot(text, LONDON, NOW, None)
    assert (slot.start, slot.end) == (start, end)


def test_a_slot_echo_shows_the_range_and_zone() -> None:
    """Verify the slot echo form."""
    slot = read_slot("next Tuesday 9am-11am", LONDON, NOW, None)
    assert echo_slot("free time", slot) == (
        "free time read as Tue 1 Dec 2026 09:00-11:00 (Europe/London): "
        "'next Tuesday' counted from today, Sun 29 Nov 2026"
    )


@pytest.mark.parametrize("text", ["2026-12-01 12:00-09:00", "2026-12-01 09:00", "03/04 9:00-10:00"])
def test_bad_slots_are_refused(text: str) -> None:
    """Verify backwards, single-time and ambiguous slots are refused."""
    with pytest.raises(InputError, match="--free"):
        read_slot(text, LONDON, NOW, None)


@pytest.mark.parametrize(
    ("written", "zone", "note"),
    [
        ("Europe/Berlin", "Europe/Berlin", ""),
        ("EST", "America/New_York", "EST read as America/New_York"),
        ("edt", "America/New_York", "edt read as America/New_York"),
        ("CET", "Europe/Paris", "CET read as Europe/Paris"),
        ("PST", "America/Los_Angeles", "PST read as America/Los_Angeles"),
        ("JST", "Asia/Tokyo", "JST read as Asia/Tokyo"),
        ("AEST", "Australia/Sydney", "AEST read as Australia/Sydney"),
        ("GMT", "UTC", "GMT read as UTC"),
        ("UTC", "UTC", ""),
    ],
)
def test_zone_names_and_unambiguous_abbreviations(written: str, zone: str, note: str) -> None:
    """Verify IANA names pass, and abbreviations map to one zone with a note saying which."""
    found = resolve(written, "--interviewer-tz")
    assert (found.name, found.note) == (zone, note)


@pytest.mark.parametrize(
    ("written", "candidates"),
    [
        ("CST", "America/Chicago, Asia/Shanghai, America/Havana"),
        ("IST", "Asia/Kolkata, Europe/Dublin, Asia/Jerusalem"),
        ("bst", "Europe/London, Asia/Dhaka"),
    ],
)
def test_ambiguous_abbreviations_are_refused_with_the_candidates(
    written: str, candidates: str
) -> None:
    """Verify CST, IST and BST are never guessed."""
    with pytest.raises(InputError, match="ambiguous") as err:
        resolve(written, "--interviewer-tz")
    assert f"({candidates})" in str(err.value)


@pytest.mark.parametrize(
    ("written", "suggestion"),
    [
        ("Berlin", "Europe/Berlin"),
        ("Europe/berlin", "Europe/Berlin"),
        ("new york", "America/New_York"),
        ("Europe/Berln", "Europe/Berlin"),
    ],
)
def test_an_unknown_zone_gets_a_suggestion(written: str, suggestion: str) -> None:
    """Verify "did you mean Europe/Berlin?" for a city or a miscased name."""
    with pytest.raises(InputError) as err:
        resolve(written, "--interviewer-tz")
    assert str(err.value).endswith(f"did you mean {suggestion}?")


def test_a_zone_with_nothing_close_gets_the_general_hint() -> None:
    """Verify no suggestion is invented for nonsense."""
    with pytest.raises(InputError, match="use an IANA name such as Europe/Berlin"):
        resolve("Mars/Olympus", "--interviewer-tz")


@pytest.mark.parametrize(
    ("address", "warning"),
    [
        ("ana@gmial.com", "--to: ana@gmial.com: did you mean gmail.com?"),
        ("ana@gmail.co", "--to: ana@gmail.co: did you mean gmail.com?"),
        ("ana@hotmial.co.uk", "--to: ana@hotmial.co.uk: did you mean hotmail.co.uk?"),
        ("ana@yaho.com", "--to: ana@yaho.com: did you mean yahoo.com?"),
        ("ana@outlok.com", "--to: ana@outlok.com: did you mean outlook.com?"),
        ("ana@gmail.com", ""),
        ("ana@protonmail.ch", ""),
        ("ana@acme.com", ""),
        ("ana@mc.com", ""),
        ("ana@smallfirm.de", ""),
    ],
)
def test_address_typos_of_big_providers_are_flagged(address: str, warning: str) -> None:
    """Verify near misses of the big providers' domains warn; correct and unknown ones do not."""
    assert typo_warning(address, "--to") == warning


def _typo_warning_over_every_provider(address: str, what: str) -> str:
    """typo_warning as it was before it skipped names of another length: every provider."""
    from mailer.model.addresses import PROVIDER_DOMAINS, _distance

    domain = address.rpartition("@")[2].lower()
    if not domain or domain in PROVIDER_DOMAINS:
        return ""
    best = min(PROVIDER_DOMAINS, key=lambda d: _distance(domain, d))
    limit = 0 if len(best) <= 6 else 1 if len(best) <= 8 else 2
    return "" if _distance(domain, best) > limit else f"{what}: {address}: did you mean {best}?"


def _near_provider_domains() -> st.SearchStrategy[str]:
    from mailer.model.addresses import PROVIDER_DOMAINS

    letters = st.sampled_from("abcdefghilmnoqrtuy.-")
    edit = st.tuples(st.integers(0, 20), st.sampled_from(["drop", "add", "swap", "set"]), letters)

    def apply(domain: str, edits: list[tuple[int, str, str]]) -> str:
        for at, kind, c in edits:
            i = at % (len(domain) + 1)
            if kind == "drop":
                domain = domain[:i] + domain[i + 1 :]
            elif kind == "add":
                domain = domain[:i] + c + domain[i:]
            elif kind == "swap" and i + 1 < len(domain):
                domain = domain[:i] + domain[i + 1] + domain[i] + domain[i + 2 :]
            else:
                domain = domain[:i] + c + domain[i + 1 :]
        return domain

    return st.builds(apply, st.sampled_from(PROVIDER_DOMAINS), st.lists(edit, max_size=4))


@given(domain=st.one_of(_near_provider_domains(), st.text("abcmo.", max_size=30)))
@example(domain="htmail.co.k")  # two letters short, two edits: still a near miss
@example(domain="ggmail.comm")  # two letters long
def test_typo_warning_skipping_other_lengths_warns_as_comparing_every_provider(
    domain: str,
) -> None:
    """Verify the length shortcut changes no warning: the same as measuring every provider
    (near misses of one to four edits, and random short names)."""
    address = f"ana@{domain}"
    assert typo_warning(address, "--to") == _typo_warning_over_every_provider(address, "--to")


def facts(**extra: object):
    args: dict[str, object] = {
        "situation": "illness",
        "to": "ana@acme.example",
        "interviewer": "Ana",
        "company": "Acme",
        "role": "Engineer",
        "interview": "2026-11-25 10:00",
        "tz": LONDON,
        "allow_test_domains": True,
        **extra,
    }
    return make_facts(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize("written", ["Illness", "ILLNESS", " illness "])
def test_situation_names_are_case_insensitive(written: str) -> None:
    """Verify --situation Illness is the illness situation."""
    assert facts(situation=written).situation == "illness"


def test_make_facts_reads_people_dates_when_given_the_clock() -> None:
    """Verify make_facts with now= reads free-form dates and records how, and warns of typos."""
    f = facts(
        interview="tomorrow 10am",
        free=["next Tuesday 9am-11am"],
        cc=["boss@gmial.com"],
        interviewer_tz="EST",
        now=NOW,
    )
    assert f.interview == at(2026, 11, 30, 10)
    assert f.free[0].start == at(2026, 12, 1, 9)
    assert f.interviewer_tz == "America/New_York"
    assert f.readings == (
        "--interviewer-tz: EST read as America/New_York",
        "interview read as Mon 30 Nov 2026 10:00 (Europe/London): "
        "'tomorrow' counted from today, Sun 29 Nov 2026",
        "free time read as Tue 1 Dec 2026 09:00-11:00 (Europe/London): "
        "'next Tuesday' counted from today, Sun 29 Nov 2026",
    )
    assert f.warnings == ("--cc: boss@gmial.com: did you mean gmail.com?",)


@pytest.mark.parametrize("text", ["tomorrow 10:00", "next Tuesday 14:00", "Nov 25 10:00"])
def test_make_facts_without_the_clock_refuses_a_date_that_moves(text: str) -> None:
    """Verify campaigns (no clock given) refuse a date that would change with the day the
    file is run, and say how to write it."""
    with pytest.raises(InputError, match="would change with the day the file is run") as caught:
        facts(interview=text)
    assert "write it as 'YYYY-MM-DD HH:MM'" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("26/11/2026 11:30", at(2026, 11, 26, 11, 30)),
        ("25 Nov 2026 10am", at(2026, 11, 25, 10)),
        ("2026-11-25 10:00", at(2026, 11, 25, 10)),
    ],
)
def test_make_facts_without_the_clock_reads_a_date_written_in_full(
    text: str, expected: datetime
) -> None:
    """Verify campaigns read a date written in full as a spreadsheet exports it, as the
    command line does (newcomer, session 15: "26/11/2026 11:30" was refused)."""
    assert facts(interview=text).interview == expected


def test_make_facts_without_the_clock_orders_numeric_dates_by_the_locale() -> None:
    """Verify an ambiguous numeric date in a campaign is refused with both readings, and
    read by [sender] locale when one is set."""
    with pytest.raises(InputError, match="could be 3 April or 4 March"):
        facts(interview="03/04/2026 10:00")
    assert facts(interview="03/04/2026 10:00", locale="en_GB").interview == at(2026, 4, 3, 10)
    assert facts(interview="03/04/2026 10:00", locale="en_US").interview == at(2026, 3, 4, 10)


def test_the_same_instant_written_two_ways_is_the_same_interview() -> None:
    """Verify the dedupe key's input (the UTC instant) is the same however it is written."""
    a = facts(interview="2026-11-25 10:00", now=NOW).interview
    b = facts(interview="25 Nov 2026 11:00 CET", now=NOW).interview
    c = facts(interview="2026-11-25T05:00-05:00", now=NOW).interview
    assert a.astimezone(UTC) == b.astimezone(UTC) == c.astimezone(UTC)


@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2198, 12, 31),
        timezones=st.sampled_from(
            [ZoneInfo("Europe/London"), ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata"), UTC]
        ),
        allow_imaginary=False,
    )
)
def test_iso_and_day_month_year_read_back_the_same_instant(moment: datetime) -> None:
    """Verify ISO (with offset) and 'DD/MM/YYYY HH:MM' under en_GB read back the same instant."""
    moment = moment.replace(second=0, microsecond=0)
    # A wall time in the repeated hour of a clock change names two instants; the written
    # form cannot say which, so only unrepeated times can round-trip.
    assume(moment.replace(fold=1).utcoffset() == moment.replace(fold=0).utcoffset())
    tz = moment.tzinfo
    assert isinstance(tz, ZoneInfo | timezone)
    iso = read_when(moment.isoformat(), tz, NOW, None).at
    written = read_when(f"{moment:%d/%m/%Y %H:%M}", tz, NOW, "en_GB").at
    assert iso == moment and written == moment
    assert iso.utcoffset() == moment.utcoffset()


def test_strict_parse_when_is_unchanged() -> None:
    """Verify the campaign parser still refuses anything but ISO."""
    with pytest.raises(InputError):
        parse_when("25/11/2026 10:00", LONDON)


def test_the_echo_can_be_pasted_back_as_input() -> None:
    """Verify "Wed 25 Nov 2026 10:00 (Europe/London)", the echo's own form, reads back."""
    reading = read_when("Wed 25 Nov 2026 10:00 (Europe/London)", LONDON, NOW, None)
    assert reading == read_when("2026-11-25 10:00", LONDON, NOW, None)
    paris = read_when("Wed 25 Nov 2026 10:00 (Europe/Paris)", LONDON, NOW, None)
    assert paris.at == at(2026, 11, 25, 9)
    assert paris.notes == ("given in Europe/Paris, 10:00 there",)


def test_a_time_the_clocks_skip_is_refused() -> None:
    """Verify 01:30 on the night summer time starts (it never happens in London) is refused."""
    with pytest.raises(InputError, match="01:30 does not exist on 29 Mar 2026 in Europe/London"):
        read_when("29 Mar 2026 01:30", LONDON, NOW, None)
    with pytest.raises(InputError, match="does not exist"):
        read_slot("29 Mar 2026 00:30-01:30", LONDON, NOW, None)


def test_a_time_the_clocks_skip_is_refused_in_the_file_format_too() -> None:
    """Verify the 'YYYY-MM-DD HH:MM' reading (campaign files, free times) refuses the hour
    summer time skips as the free-form reading does."""
    with pytest.raises(InputError, match="01:30 does not exist on 29 Mar 2026 in Europe/London"):
        parse_when("2026-03-29 01:30", LONDON, "interview")
    with pytest.raises(InputError, match="free: '2026-03-29 01:00-02:30': 01:00 does not exist"):
        parse_slot("2026-03-29 01:00-02:30", LONDON, "free")
    assert parse_when("2026-03-29 02:30", LONDON, "interview").utcoffset() == timedelta(hours=1)


@pytest.mark.parametrize(
    "text", ["26-Nov-2026 11:30", "2026-Nov-26 11:30", "Nov-26-2026 11:30", "Thu 26-nov-2026 11:30"]
)
def test_a_date_with_a_month_name_and_hyphens_reads_as_with_spaces(text: str) -> None:
    """Verify a spreadsheet's dd-mmm-yyyy (and its orders) reads as "26 Nov 2026" does, and
    all-digit dates with hyphens still read as before (walkthrough, session 16)."""
    assert (
        read_when(text, LONDON, NOW, None).at
        == read_when("26 Nov 2026 11:30", LONDON, NOW, None).at
    )
    assert read_when("2026-11-26 11:30", LONDON, NOW, None).at.day == 26


def test_a_time_the_clocks_repeat_is_read_as_the_first_and_says_so() -> None:
    """Verify 01:30 on the night summer time ends is the BST one, with a note."""
    reading = read_when("25 Oct 2026 01:30", LONDON, NOW, None)
    assert reading.at.utcoffset() == timedelta(hours=1)
    assert reading.notes == (
        "01:30 happens twice that night (the clocks go back); read as the first, BST",
    )


@pytest.mark.parametrize(
    ("word", "zone"),
    [
        ("AET", "Australia/Sydney"),
        ("ACDT", "Australia/Adelaide"),
        ("SAST", "Africa/Johannesburg"),
        ("CT", "America/Chicago"),
        ("Japan", "Japan"),  # a tzdata name close to "jan": still a zone
    ],
)
def test_more_zones_are_read_as_people_write_them(word: str, zone: str) -> None:
    """Verify abbreviations that used to be unknown ("ACDT" was even suggested as Canberra's
    Australia/ACT, "CT" as UCT) are read as their zone."""
    reading = read_when(f"2026-11-25 10:00 {word}", LONDON, NOW, None)
    assert reading.at == datetime(2026, 11, 25, 10, 0, tzinfo=ZoneInfo(zone))


@pytest.mark.parametrize("text", ["in 2 days", "10:00 in two days"])
def test_a_trailing_english_word_gets_the_dates_error_not_an_unknown_zone(text: str) -> None:
    """Verify a trailing lowercase word that is no zone and suggests none ("days") is read
    as part of an unreadable date, whose error shows what can be written, not as an unknown
    time zone (newcomer, session 15); a capitalised one is still taken for a zone."""
    with pytest.raises(InputError) as caught:
        read_when(text, LONDON, NOW, None)
    assert f"cannot read {text!r}" in str(caught.value) and "zone" not in str(caught.value)
    with pytest.raises(InputError, match="unknown time zone 'Bogus'"):
        read_when("2026-11-25 10:00 Bogus", LONDON, NOW, None)


@pytest.mark.parametrize("word", ["bst", "ist", "cst"])
def test_a_lowercase_ambiguous_zone_is_still_called_ambiguous(word: str) -> None:
    """Verify a lowercase zone abbreviation with several meanings is refused as ambiguous,
    with its candidates, not read as a word of the date (review of session 15)."""
    with pytest.raises(InputError, match="ambiguous"):
        read_when(f"25 Nov 2026 10:00 {word}", LONDON, NOW, None)


@pytest.mark.parametrize(
    ("text", "expected", "note"),
    [
        (
            "Friday 10:00",
            at(2026, 11, 27, 10),
            "'Friday': the nearest Friday is 2 days ago, counted from today, Sun 29 Nov 2026 "
            "(write 'next Friday' for the one after)",
        ),
        (
            "Mon 9:00",
            at(2026, 11, 30, 9),
            "'Monday': the nearest Monday is tomorrow, counted from today, Sun 29 Nov 2026 "
            "(write 'last Monday' for the one before)",
        ),
        (
            "this Wednesday 10:00",
            at(2026, 12, 2, 10),
            "'this Wednesday': the nearest Wednesday is in 3 days, counted from today, Sun 29 "
            "Nov 2026 (write 'last Wednesday' for the one before)",
        ),
    ],
)
def test_an_interview_on_a_bare_weekday_is_the_nearest_one(
    text: str, expected: datetime, note: str
) -> None:
    """Verify an interview on "Friday", written on a Sunday, is the one missed two days ago,
    not next week's (it was read as next week's, and the apology asked to move an interview
    that had not happened; a walkthrough), and the note says how to pick the other."""
    reading = read_when(text, LONDON, NOW, None)
    assert reading.at == expected
    assert reading.notes == (note,)


def test_a_free_time_on_a_bare_weekday_is_still_the_next_one() -> None:
    """Verify a free time on "Friday" is the coming one: a free time is never in the past."""
    slot = read_slot("Friday 9am-11am", LONDON, NOW, None)
    assert slot.start == at(2026, 12, 4, 9)


@pytest.mark.parametrize("locale", [None, "en_GB", "en_US", "en_CA"])
def test_a_date_with_dots_is_day_first_whatever_the_locale(locale: str | None) -> None:
    """Verify "05.01.2027" is 5 January for every locale, and is not refused as ambiguous
    without one: dots are day first wherever they are written (en_US read it as 1 May; a
    walkthrough). "13.13.2026" says why it is not a date."""
    assert read_when("05.01.2027 10:00", LONDON, NOW, locale).at == at(2027, 1, 5, 10)
    with pytest.raises(InputError, match="dates with dots are day first"):
        read_when("13.13.2026 10:00", LONDON, NOW, locale)
