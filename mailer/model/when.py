"""Dates and times as people type them: "25/11/2026 10am", "Nov 25 10:00", "tomorrow 10:00",
"next Tuesday 14:00", "2026-11-25 10:00 CET".

A small fixed grammar rather than dateparser: dateparser reads "03/04" as 4 March without a
word, which is the silent guess this module exists to refuse; it cannot say whether a year
was missing or a word was relative, which must be echoed; and it adds ~0.06 s of import and
~0.1 s for its first parse to every `preview`. Anything outside the grammar is refused with
examples of what is read.

Every reading says how it was made (:attr:`Reading.notes`), so the CLI can echo it back.
"""

from __future__ import annotations

import calendar
import contextlib
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo

from mailer.errors import InputError
from mailer.model.zones import known, may_be_abbreviation, resolve

FIRST_YEAR, LAST_YEAR = 1970, 2199

MONTHS = {
    name: n
    for n, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
WEEKDAYS = {
    name: n
    for n, names in enumerate(
        (
            ("mon", "monday"),
            ("tue", "tues", "tuesday"),
            ("wed", "weds", "wednesday"),
            ("thu", "thur", "thurs", "thursday"),
            ("fri", "friday"),
            ("sat", "saturday"),
            ("sun", "sunday"),
        )
    )
    for name in names
}
RELATIVE_DAYS = {"today": 0, "tomorrow": 1, "yesterday": -1}
_FILLER = {"at", "on", "the", "of"}
_WORDS = {*MONTHS, *WEEKDAYS, *RELATIVE_DAYS, *_FILLER, "next", "last", "this", "am", "pm"}
_WORDS |= {"noon", "midday", "midnight", "to"}

_TIME = r"\d{1,2}(?:[:.]\d{2}(?::\d{2})?\s*(?:am|pm)?|\s*(?:am|pm))|noon|midday|midnight"
_TIME_RE = re.compile(rf"(?<![\w:./-])(?:{_TIME})(?![\w:./])", re.IGNORECASE)
_RANGE_RE = re.compile(
    rf"(?<![\w:./-])({_TIME})\s*(?:-|–|\bto\b)\s*({_TIME})(?![\w:./])", re.IGNORECASE
)
_OFFSET_RE = re.compile(r"^(?:utc|gmt)?([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)
_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_NUMERIC_DATE = re.compile(r"^(\d{1,4})([/.-])(\d{1,2})(?:\2(\d{2,4}))?$")
EXAMPLES = "e.g. '2026-11-25 10:00', '25 Nov 2026 10:00', 'tomorrow 10:00' or 'next Tuesday 14:00'"


@dataclass(frozen=True)
class Reading:
    """One date and time as read: ``at`` is aware, in the sender's zone."""

    at: datetime
    notes: tuple[str, ...] = ()  # relative words, a missing year, an abbreviation
    # The IANA zone the text named ("10:00 CET": Europe/Paris), if it named one (what was
    # read is ``at`` and ``notes``: two readings of one instant are equal).
    zone: str = field(default="", compare=False)


@dataclass(frozen=True)
class SlotReading:
    start: datetime
    end: datetime
    notes: tuple[str, ...] = ()


def day_first(locale: str) -> bool:
    """Whether the locale writes numeric dates day before month (en_GB) or not (en_US)."""
    from babel import Locale  # only for a numeric date: Babel costs start-up time

    pattern = Locale.parse(locale).date_formats["short"].pattern
    return pattern.find("d") < pattern.find("M")


def read_when(
    text: str, tz: tzinfo, now: datetime, locale: str | None, what: str = "--interview"
) -> Reading:
    """Read a date and time such as "25/11/2026 10am" or "tomorrow 10:00 CET".

    ``locale`` (the sender's, when set) orders a numeric date's day and month; None when it
    was not set: then "03/04" is refused with both readings. Relative words count from
    ``now``; the result is in ``tz``.
    """
    body, zone_tz, notes = _split_zone(text, tz, what, glued_offset=True)
    local = zone_tz or tz
    times = list(_TIME_RE.finditer(body))
    if len(times) != 1:
        raise InputError(
            f"{what}: cannot read {text!r}; "
            + ("it has no time of day" if not times else "it has more than one time")
            + f"; {EXAMPLES}"
        )
    m = times[0]
    clock_time = _read_time(m.group(0), text, what)
    rest = body[: m.start()] + " " + body[m.end() :]
    # An interview without a year is the nearest one: "25 Nov" written on 30 Nov is the one
    # missed five days ago, not one a year away.
    day, day_notes = _read_date(rest, text, local, now, locale, what, nearest=True)
    at, fold_notes = _localise(day, clock_time, local, text, what)
    at = at.astimezone(tz)
    notes = (*notes, *fold_notes)
    if zone_tz is not None and at.utcoffset() != at.astimezone(zone_tz).utcoffset():
        notes = tuple(f"{n}, {clock_time:%H:%M} there" for n in notes)
    key = getattr(zone_tz, "key", None)
    if zone_tz is not None and not isinstance(key, str):
        key = offset_zone(zone_tz.utcoffset(None))
    return Reading(at, (*day_notes, *notes), key if isinstance(key, str) else "")


# Zones with no daylight saving time for the offsets that are not whole hours (a whole hour
# has Etc/GMT-N): "10:00 +05:30" was arranged in India.
_HALF_OFFSET_ZONES = {
    (3, 30): "Asia/Tehran",
    (4, 30): "Asia/Kabul",
    (5, 30): "Asia/Kolkata",
    (5, 45): "Asia/Kathmandu",
    (6, 30): "Asia/Yangon",
    (8, 45): "Australia/Eucla",
    (9, 30): "Australia/Darwin",
    (-9, -30): "Pacific/Marquesas",
}


def offset_zone(offset: timedelta | None) -> str | None:
    """An IANA zone that is always at ``offset`` from UTC, for an interview written with an
    offset ("10:00 +09:00"): the interviewer reads its times there, as for a named zone (they
    were shown in the sender's zone, unlabelled: "at 01:00" for one arranged at 10:00). None
    for an offset no such zone has."""
    if offset is None:
        return None
    minutes = int(offset.total_seconds()) // 60
    hours, rest = divmod(abs(minutes), 60)
    # (tzdata's Etc zones reach 14 hours ahead of UTC, 12 behind)
    if not rest and minutes and hours <= (14 if minutes > 0 else 12):
        # (POSIX's sign: Etc/GMT-9 is nine hours ahead of UTC)
        return f"Etc/GMT{'-' if minutes > 0 else '+'}{hours}"
    if not minutes:
        return "Etc/UTC"
    sign = 1 if minutes > 0 else -1
    return _HALF_OFFSET_ZONES.get((sign * hours, sign * rest))


def read_slot(
    text: str, tz: tzinfo, now: datetime, locale: str | None, what: str = "--free"
) -> SlotReading:
    """Read a free time such as "2026-12-01 09:00-12:00" or "next Tuesday 9am-11am"."""
    body, zone_tz, notes = _split_zone(text, tz, what, glued_offset=False)
    local = zone_tz or tz
    m = _RANGE_RE.search(body)
    if not m:
        raise InputError(
            f"{what}: cannot read {text!r}; write a day and two times, e.g. "
            "'2026-12-01 09:00-12:00' or 'next Tuesday 9am-11am'"
        )
    rest = body[: m.start()] + " " + body[m.end() :]
    if _TIME_RE.search(rest):
        raise InputError(f"{what}: cannot read {text!r}; it has more than one time range")
    a, b = _read_time(m.group(1), text, what), _read_time(m.group(2), text, what)
    day, day_notes = _read_date(rest, text, local, now, locale, what)
    start, start_notes = _localise(day, a, local, text, what)
    end, end_notes = _localise(day, b, local, text, what)
    start, end = start.astimezone(tz), end.astimezone(tz)
    notes = (*notes, *start_notes, *end_notes)
    if end <= start:
        raise InputError(f"{what}: {text!r} ends before it starts")
    return SlotReading(start, end, (*day_notes, *notes))


def shown(at: datetime) -> str:
    """ "Wed 25 Nov 2026 10:00 (Europe/London)": the form every echo uses."""
    return f"{at:%a} {at.day} {at:%b %Y %H:%M} ({zone_name(at)})"


# The names tzdata gives UTC itself (a machine set to UTC often says "Etc/UTC"): shown as
# "UTC", as every other line labels it.
_UTC_NAMES = frozenset(
    {"Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"}
)


def zone_name(at: datetime) -> str:
    name = getattr(at.tzinfo, "key", None) or at.tzname() or "UTC"
    return "UTC" if name in _UTC_NAMES else name


def echo(what: str, reading: Reading) -> str:
    line = f"{what} read as {shown(reading.at)}"
    return f"{line}: {'; '.join(reading.notes)}" if reading.notes else line


def echo_slot(what: str, slot: SlotReading) -> str:
    a, b = slot.start, slot.end
    span = f"{a:%a} {a.day} {a:%b %Y %H:%M}-{b:%H:%M}" + (
        "" if a.date() == b.date() else " next day"
    )
    line = f"{what} read as {span} ({zone_name(a)})"
    return f"{line}: {'; '.join(slot.notes)}" if slot.notes else line


def _split_zone(
    text: str, tz: tzinfo, what: str, *, glued_offset: bool
) -> tuple[str, tzinfo | None, tuple[str, ...]]:
    """The text without a trailing zone ("CET", "Europe/Paris", "+01:00", "Z"), and the zone."""
    body = re.sub(r"(\d{4}-\d{1,2}-\d{1,2})[Tt](?=\d)", r"\1 ", text.strip())
    if glued_offset:  # ISO's "10:00+01:00", "10:00Z"; in a slot "09:00-12:00" is a range
        body = re.sub(r"(\d:\d{2}(?::\d{2})?)(?=[+-]\d{2}:?\d{2}$|[Zz]$)", r"\1 ", body)
    words = body.split()
    if len(words) < 2:
        return body, None, ()
    last = words[-1].strip("()")  # "10:00 (Europe/London)", as the echo writes it
    if m := _OFFSET_RE.match(last):
        sign, hours, minutes = m.group(1), int(m.group(2)), int(m.group(3) or 0)
        if hours > 23 or minutes > 59:
            raise InputError(f"{what}: {last!r} in {text!r} is not a UTC offset")
        delta = timedelta(hours=hours, minutes=minutes)
        offset = timezone(-delta if sign == "-" else delta)
        return " ".join(words[:-1]), offset, (f"given in {offset}",)
    looks_like_zone = "/" in last and not any(c.isdigit() for c in last)
    if looks_like_zone or (
        last.isalpha()
        and last.lower() not in _WORDS
        and (known(last) or may_be_abbreviation(last) or not _misspelt_date_word(last))
    ):
        try:
            found = resolve(last, what)
        except InputError as exc:
            said = str(exc)
            if last.islower() and "did you mean" not in said and "ambiguous" not in said:
                # An English word, not a zone ("in 2 days", "at 10 please"): the date's own
                # error, which names the whole text and shows what can be written, is the one.
                return body, None, ()
            raise
        # ZoneInfo instances are cached by name: the same zone is the same object.
        note = found.note or ("" if found.tz is tz else f"given in {found.name}")
        return " ".join(words[:-1]), found.tz, (note,) if note else ()
    return body, None, ()


def _misspelt_date_word(word: str) -> bool:
    """Whether ``word`` looks like a day or date word misspelt ("blursday", "tomorow"): then
    the date's own error, which names the whole text, is the one to give, not "unknown time
    zone" (which told the user to fix the wrong part)."""
    import difflib  # only for a word that is neither a date word nor a known zone's

    return bool(difflib.get_close_matches(word.lower(), _WORDS, n=1, cutoff=0.75))


def _localise(
    day: date, clock_time: time, tz: tzinfo, text: str, what: str
) -> tuple[datetime, tuple[str, ...]]:
    """The instant a wall time names in ``tz``: refused in the hour the clocks skip, and
    noted in the hour they repeat (the first of the two is taken)."""
    from mailer.model.facts import skipped_hour

    at = datetime.combine(day, clock_time, tzinfo=tz)
    if (problem := skipped_hour(at, text, what)) is not None:
        raise problem
    if at.replace(fold=1).utcoffset() != at.utcoffset():
        return at, (
            f"{clock_time:%H:%M} happens twice that night (the clocks go back); "
            f"read as the first, {at:%Z}",
        )
    return at, ()


def _read_time(token: str, text: str, what: str) -> time:
    t = token.lower().replace(" ", "")
    if t in ("noon", "midday"):
        return time(12, 0)
    if t == "midnight":
        return time(0, 0)
    m = re.fullmatch(r"(\d{1,2})(?:[:.](\d{2})(?::(\d{2}))?)?(am|pm)?", t)
    if not m:  # the pattern that found it guarantees a match; kept for safety
        raise InputError(f"{what}: cannot read the time in {text!r}; {EXAMPLES}")
    hour, minute, second = int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0)
    if m.group(4):
        if not 1 <= hour <= 12:
            raise InputError(f"{what}: {token!r} in {text!r} is not a time; use 1-12 with am/pm")
        hour = hour % 12 + (12 if m.group(4) == "pm" else 0)
    if hour > 23 or minute > 59 or second > 59:
        raise InputError(f"{what}: {token!r} in {text!r} is not a time of day")
    return time(hour, minute, second)


# A date with a month name and hyphens, as spreadsheets export it ("26-Nov-2026",
# "2026-Nov-26", "Nov-26-2026"): read as the same words with spaces.
_HYPHENED = re.compile(r"\b(\d{1,4}|[a-z]{3,}\.?)-(\d{1,2}|[a-z]{3,}\.?)-(\d{1,4})\b")


def _spaced(m: re.Match[str]) -> str:
    """A hyphenated date with a month name, its parts apart (an all-digit one is left)."""
    return " ".join(m.groups()) if any(p[0].isalpha() for p in m.groups()) else m.group(0)


def _read_date(
    rest: str,
    text: str,
    tz: tzinfo,
    now: datetime,
    locale: str | None,
    what: str,
    nearest: bool = False,
) -> tuple[date, tuple[str, ...]]:
    """The date in ``rest``; without a year, its next occurrence (a free time), or with
    ``nearest`` the occurrence nearest today, before or after it (an interview)."""
    today = now.astimezone(tz).date()
    words = [
        re.sub(r"^(\d{1,2})(?:st|nd|rd|th)$", r"\1", w)
        for w in re.split(r"[\s,]+", _HYPHENED.sub(_spaced, rest.strip().lower()))
        if w and w not in _FILLER
    ]
    weekday = None
    if words and words[0] in WEEKDAYS and len(words) > 1 and words[-1] not in WEEKDAYS:
        # "Wed 25 Nov": the weekday is a check on the date, not a date of its own.
        weekday, words = WEEKDAYS[words[0]], words[1:]
    day, notes = _date_words(words, text, today, locale, what, nearest)
    if weekday is not None and day.weekday() != weekday:
        raise InputError(
            f"{what}: {text!r}: {day.day} {day:%b %Y} is a {day:%A}, not a "
            f"{calendar.day_name[weekday]}; check the date"
        )
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        # Far from now it is a typo, and near year 1 or 9999 a move into another zone (or
        # into UTC for the duplicate key) overflows.
        raise InputError(
            f"{what}: {text!r} is outside the years {FIRST_YEAR}-{LAST_YEAR}; check the year"
        )
    return day, notes


def _date_words(
    words: list[str], text: str, today: date, locale: str | None, what: str, nearest: bool
) -> tuple[date, tuple[str, ...]]:
    since = f"counted from today, {today:%a} {today.day} {today:%b %Y}"
    if not words:
        raise InputError(f"{what}: {text!r} has no date; {EXAMPLES}")
    if len(words) == 1 and words[0] in RELATIVE_DAYS:
        return today + timedelta(days=RELATIVE_DAYS[words[0]]), (f"{words[0]!r} {since}",)
    if len(words) <= 2 and words[-1] in WEEKDAYS:
        which = words[0] if len(words) == 2 else "this"
        if which not in ("next", "last", "this"):
            raise InputError(f"{what}: cannot read {text!r}; {EXAMPLES}")
        target = WEEKDAYS[words[-1]]
        name = calendar.day_name[target]
        ahead = (target - today.weekday()) % 7
        if which == "next" and ahead == 0:
            ahead = 7
        if which == "last":
            ahead = ahead - 7 if ahead else -7
        said = f"{which} {name}" if len(words) == 2 else name
        if nearest and which == "this" and ahead:
            # An interview on "Monday", written on a Tuesday, is more likely the one missed
            # yesterday than one six days away: the nearest, before or after, as for a date
            # without a year (a walkthrough: it was read as next week's, and the apology asked
            # to move an interview that had not happened).
            if ahead > 3:
                ahead -= 7
            when = {-1: "yesterday", 1: "tomorrow"}.get(
                ahead, f"{-ahead} days ago" if ahead < 0 else f"in {ahead} days"
            )
            other = (
                f"'next {name}' for the one after"
                if ahead < 0
                else f"'last {name}' for the one before"
            )
            return today + timedelta(days=ahead), (
                f"{said!r}: the nearest {name} is {when}, {since} (write {other})",
            )
        return today + timedelta(days=ahead), (f"{said!r} {since}",)
    if len(words) == 1 and (m := _ISO_DATE.match(words[0])):
        return _make(int(m.group(1)), int(m.group(2)), int(m.group(3)), text, what), ()
    if len(words) == 1 and (m := _NUMERIC_DATE.match(words[0])):
        return _numeric(m, text, today, locale, what, nearest)
    months = [w for w in words if w in MONTHS]
    numbers = [w for w in words if w.isdigit()]
    if len(months) == 1 and len(numbers) in (1, 2) and len(months) + len(numbers) == len(words):
        month = MONTHS[months[0]]
        days = [n for n in numbers if len(n) <= 2]
        years = [n for n in numbers if len(n) == 4]
        if len(days) == 1 and len(years) == len(numbers) - 1:
            if years:
                return _make(int(years[0]), month, int(days[0]), text, what), ()
            return _yearless(month, int(days[0]), text, today, what, nearest)
    raise InputError(f"{what}: cannot read {text!r}; {EXAMPLES}")


def _numeric(
    m: re.Match[str], text: str, today: date, locale: str | None, what: str, nearest: bool
) -> tuple[date, tuple[str, ...]]:
    first, second, year = m.group(1), m.group(3), m.group(4)
    if len(first) == 4:  # 2026/11/25: year first is never ambiguous
        if year is None:
            raise InputError(f"{what}: cannot read {text!r}; {EXAMPLES}")
        return _make(int(first), int(second), int(year), text, what), ()
    if len(first) > 2 or (year is not None and len(year) != 4):
        raise InputError(f"{what}: {text!r}: write the year in full, e.g. 25/11/2026")
    a, b = int(first), int(second)
    readings = {"day/month": (b, a), "month/day": (a, b)}  # (month, day)
    if m.group(2) == ".":
        # Dots are day first wherever they are written (05.01.2027 in a German or Russian
        # invitation): en_US read it as 1 May (a walkthrough).
        chosen = ["day/month"]
    elif locale is not None:
        chosen = ["day/month" if day_first(locale) else "month/day"]
    else:
        chosen = [o for o, (mo, d) in readings.items() if _valid(mo, d, year)]
        if len(chosen) == 2 and a != b:
            both = " or ".join(
                f"{d} {date(2000, mo, 1):%B}" for mo, d in (readings[o] for o in chosen)
            )
            raise InputError(
                f"{what}: {text!r} could be {both}; write the month as a word "
                "(e.g. '3 Apr') or the date as YYYY-MM-DD, or set [sender] locale "
                "(en_GB reads day/month, en_US month/day)"
            )
        if not chosen:
            raise InputError(f"{what}: {text!r} is not a real date")
    order = chosen[0]
    month, day = readings[order]
    if not _valid(month, day, year):
        why = (
            "dates with dots are day first"
            if m.group(2) == "."
            else f"the order of [sender] locale = {locale}"
        )
        raise InputError(f"{what}: {text!r} is not a real date in {order} order ({why})")
    if year is not None:
        return _make(int(year), month, day, text, what), ()
    return _yearless(month, day, text, today, what, nearest)


def _valid(month: int, day: int, year: str | None) -> bool:
    try:
        date(int(year) if year else 2000, month, day)  # 2000: a leap year, so 29/02 counts
    except ValueError:
        return False
    return True


def _make(year: int, month: int, day: int, text: str, what: str) -> date:
    try:
        return date(year, month, day)
    except ValueError as exc:
        raise InputError(f"{what}: {text!r} is not a real date: {exc}") from None


def _yearless(
    month: int, day: int, text: str, today: date, what: str, nearest: bool
) -> tuple[date, tuple[str, ...]]:
    """A date without a year: see :func:`_read_date`."""
    if not nearest:
        return _next(month, day, text, today, what)
    candidates = []
    for year in range(today.year - 4, today.year + 5):  # (29 Feb: the nearest leap year)
        with contextlib.suppress(ValueError):
            candidates.append(date(year, month, day))
    if not candidates:
        raise InputError(f"{what}: {text!r} is not a real date")
    # The nearest; of two as near, the one ahead.
    chosen = min(candidates, key=lambda c: (abs((c - today).days), c < today))
    when = "today" if chosen == today else "ago" if chosen < today else "ahead"
    gap = abs((chosen - today).days)
    said = "today" if when == "today" else f"{gap} day{'s' if gap != 1 else ''} {when}"
    return chosen, (f"no year given: the nearest {day} {chosen:%b} is in {chosen.year} ({said})",)


def _next(month: int, day: int, text: str, today: date, what: str) -> tuple[date, tuple[str, ...]]:
    """A date without a year: its next occurrence, today included (29 Feb: the next leap year)."""
    for year in range(today.year, today.year + 9):
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue
        if candidate >= today:
            return candidate, (f"no year given: the next {day} {candidate:%b} is in {year}",)
    raise InputError(f"{what}: {text!r} is not a real date")
