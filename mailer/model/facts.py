"""The facts of one apology, parsed and checked from the strings a user types.

The CLI and (later) campaign entries use the same names: to, interviewer, company, role,
interview, situation, salutation, note, free, interviewer_tz, interviewer_phone, cc, var.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, tzinfo
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

from mailer.errors import InputError
from mailer.model.addresses import typo_warning, validate_address
from mailer.model.values import (
    DOMAIN_MAX,
    NAME_MAX,
    NOTE_MAX,
    PHONE_MAX,
    SHORT_MAX,
    VAR_MAX,
    check_body,
    check_count,
    check_header,
    shown,
)

if TYPE_CHECKING:
    from mailer.model.when import Reading  # (imported on first use: see file_reading)

T = TypeVar("T")

SITUATIONS: dict[str, str] = {
    "illness": "you were (or are) ill",
    "personal": "unforeseen personal circumstances",
    "emergency": "an emergency",
    "transport": "traffic or transport trouble",
    "technical": "technical trouble in a video interview",
    "conflict": "asking in advance to move it because of a clash",
}


class Situations(dict[str, str]):
    """The situations there are templates for (name -> what it is), with ``misnamed``: the
    workspace's template files that are none only because of their names (the name asked
    for, lower-cased -> the file's name and the name to rename it to), so that asking for
    one says why instead of only listing the others."""

    def __init__(
        self, known: Mapping[str, str], misnamed: Mapping[str, tuple[str, str]] | None = None
    ) -> None:
        super().__init__(known)
        self.misnamed = dict(misnamed or {})


# Names a --var may not reuse: they would silently replace a fact.
RESERVED_VARS = frozenset(
    {
        "situation",
        "to",
        "interviewer",
        "salutation",
        "subject_detail",
        "company",
        "role",
        "interview",
        "note",
        "free",
        "interviewer_tz",
        "interviewer_phone",
        "cc",
        "past",
        "sender_name",
        "sender_email",
        "sender_phone",
        "signature",
        "free_times",
        "interview_when",
        "interview_date",
        "interview_time",
        "days_since",
        "original_subject",
        "original_sent",
    }
)
# "[Your Name]", "[Company]": the marks of a template copied from the web and not filled in.
PLACEHOLDER = re.compile(r"\[\s*[A-Z][A-Za-z0-9 _./'’-]{0,40}\]")
# Template markup in a fact ("{{ name }}", "{% if %}"): the check of the rendered apology
# refuses it (composer._JINJA_LEFTOVER, the same marks), but named the template for it. A
# single-brace "{first_name}" is not refused here: "{sic}" or a team called "{code}" are
# words, and a fact refused has no --force.
_MARKUP_IN_FACT = re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}")
# Characters a typed fact may not hold, though they are not controls: a zero-width space
# ("Ana\u200bRuiz" reads as "AnaRuiz"), and the direction overrides and isolates that show a
# name in another order than it is written (U+202E in a To: header). The marks a right-to-left
# name needs (U+200E, U+200F, ZWJ, ZWNJ) are allowed. Checked on what the user types only:
# a thread stored before this check keeps its follow-up.
_INVISIBLE = re.compile("[\u200b\u2060\ufeff\u202a-\u202e\u2066-\u2069]")
_INVISIBLE_NAMES = {
    "\u200b": "a zero-width space",
    "\u2060": "a word joiner",
    "\ufeff": "a zero-width no-break space",
}
_WHEN = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})[ T](\d{1,2}:\d{2})\s*$")
_SLOT = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})[ T](\d{1,2}:\d{2})\s*[-–]\s*(\d{1,2}:\d{2})\s*$")


@dataclass(frozen=True)
class FreeSlot:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Facts:
    situation: str
    to: str
    interviewer: str
    company: str
    role: str
    interview: datetime  # aware
    note: str = ""
    free: tuple[FreeSlot, ...] = ()
    interviewer_tz: str = ""
    interviewer_phone: str = ""
    cc: tuple[str, ...] = ()
    extra: Mapping[str, str] = field(default_factory=dict)
    alt_addresses: tuple[str, ...] = ()  # other addresses the interviewer may answer from
    alt_domains: tuple[str, ...] = ()  # any address at these domains counts as them
    salutation: str = ""  # who "Dear ...," names ("Ms Ruiz"); empty: see composer.salutation
    # For the user's eyes only, never stored: how each date was read ("interview read as
    # Wed 25 Nov 2026 10:00 (Europe/London)") and warnings such as an address typo.
    readings: tuple[str, ...] = field(default=(), compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def reader_tz(self) -> str:
        """The IANA zone the interviewer reads the apology's times in, as the composer shows
        them: theirs when given, else the zone the interview was written in (a campaign
        entry's ``timezone``). "" when that is only an offset: the sender's zone is then
        the best guess. Follow-ups keep this zone's office hours."""
        if self.interviewer_tz:
            return self.interviewer_tz
        key = getattr(self.interview.tzinfo, "key", None)
        return key if isinstance(key, str) else ""

    def to_record(self) -> dict[str, object]:
        """A JSON-able copy, kept with the thread so a follow-up can be composed later."""
        return {
            "situation": self.situation,
            "to": self.to,
            "interviewer": self.interviewer,
            "company": self.company,
            "role": self.role,
            "interview": self.interview.isoformat(),
            "note": self.note,
            "free": [[s.start.isoformat(), s.end.isoformat()] for s in self.free],
            "interviewer_tz": self.interviewer_tz,
            "interviewer_phone": self.interviewer_phone,
            "cc": list(self.cc),
            "extra": dict(self.extra),
            "alt_addresses": list(self.alt_addresses),
            "alt_domains": list(self.alt_domains),
            "salutation": self.salutation,
        }

    @classmethod
    def from_record(cls, r: Mapping[str, object]) -> Facts:
        return cls(
            situation=str(r["situation"]),
            to=str(r["to"]),
            interviewer=str(r["interviewer"]),
            company=str(r["company"]),
            role=str(r["role"]),
            interview=datetime.fromisoformat(str(r["interview"])),
            note=str(r.get("note", "")),
            free=tuple(
                FreeSlot(datetime.fromisoformat(a), datetime.fromisoformat(b))
                for a, b in r.get("free", [])  # type: ignore[union-attr]
            ),
            interviewer_tz=str(r.get("interviewer_tz", "")),
            interviewer_phone=str(r.get("interviewer_phone", "")),
            cc=tuple(r.get("cc", [])),  # type: ignore[arg-type]
            extra=dict(r.get("extra", {})),  # type: ignore[arg-type]
            alt_addresses=tuple(r.get("alt_addresses", [])),  # type: ignore[arg-type]
            alt_domains=tuple(r.get("alt_domains", [])),  # type: ignore[arg-type]
            salutation=str(r.get("salutation", "")),
        )


def zone(name: str, what: str) -> ZoneInfo:
    """The zone ``name`` means (an IANA name, or an unambiguous abbreviation such as CET);
    an unknown one is refused with a suggestion ("did you mean Europe/Berlin?")."""
    from mailer.model.zones import resolve

    return resolve(name, what).tz


def parse_when(text: str, tz: tzinfo, what: str = "--interview") -> datetime:
    m = _WHEN.match(text)
    if not m:
        raise InputError(
            f"{what}: cannot read {text!r}; use 'YYYY-MM-DD HH:MM', e.g. '2026-11-25 10:00'"
        )
    try:
        naive = datetime.fromisoformat(f"{m.group(1)} {m.group(2).zfill(5)}")
    except ValueError as exc:
        raise InputError(f"{what}: {text!r} is not a real date and time: {exc}") from None
    if not _FIRST_YEAR <= naive.year <= _LAST_YEAR:
        # Far from now it is a typo, and near year 1 or 9999 a move into another zone (or
        # into UTC for the duplicate key) overflows.
        raise InputError(
            f"{what}: {text!r} is outside the years {_FIRST_YEAR}-{_LAST_YEAR}; check the year"
        )
    at = naive.replace(tzinfo=tz)
    if (problem := skipped_hour(at, text, what)) is not None:
        raise problem
    return at


def skipped_hour(at: datetime, text: str, what: str) -> InputError | None:
    """The error for a wall time in the hour the clocks skip (it names no instant: the one
    read would be an hour off what was meant), or None."""
    tz = at.tzinfo
    if at.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == at.replace(tzinfo=None):
        return None
    return InputError(
        f"{what}: {text!r}: {at:%H:%M} does not exist on {at.day} {at:%b %Y} in "
        f"{getattr(tz, 'key', tz)} (the clocks go forward); check the time"
    )


_FIRST_YEAR, _LAST_YEAR = 1970, 2199
_FILE_FORMAT = "write it as 'YYYY-MM-DD HH:MM', e.g. '2026-11-25 10:00'"


def file_when(text: str, tz: tzinfo, what: str, locale: str | None = None) -> datetime:
    """An interview time in a campaign file: 'YYYY-MM-DD HH:MM', or a date and time written
    in full as people write them (a spreadsheet's "26/11/2026 11:30", "25 Nov 2026 10am"),
    but never one that moves with the day the file is read ("tomorrow", no year)."""
    return file_reading(text, tz, what, locale).at


def file_reading(text: str, tz: tzinfo, what: str, locale: str | None = None) -> Reading:
    """:func:`file_when`'s reading (a ``when.Reading``: the zone the text named, too)."""
    from mailer.model.when import Reading, read_when

    if _WHEN.match(text):
        return Reading(parse_when(text, tz, what))
    return _fixed(text, what, lambda now: read_when(text, tz, now, locale, what))


def file_slot(text: str, tz: tzinfo, what: str, locale: str | None = None) -> FreeSlot:
    """A free time in a campaign file, read as :func:`file_when` reads an interview."""
    if _SLOT.match(text):
        return parse_slot(text, tz, what)
    from mailer.model.when import read_slot

    reading = _fixed(text, what, lambda now: read_slot(text, tz, now, locale, what))
    return FreeSlot(reading.start, reading.end)


def _fixed(text: str, what: str, read: Callable[[datetime], Any]) -> Any:
    """``read(now)``'s reading of ``text``, if it does not depend on ``now``."""
    from mailer.model.when import EXAMPLES

    try:
        reading = read(datetime.now(UTC))
    except InputError as exc:
        # Its own reason (a weekday that does not match, an hour the clocks skip, "did you
        # mean"), but not examples a file cannot take ("tomorrow 10:00").
        if EXAMPLES not in str(exc):
            raise
        raise InputError(str(exc).replace(EXAMPLES, _FILE_FORMAT)) from None
    moving = [n for n in reading.notes if n.startswith("no year given") or "counted from" in n]
    if moving:
        raise InputError(
            f"{what}: {text!r} would change with the day the file is run ({moving[0]}); "
            + _FILE_FORMAT
        )
    return reading


def parse_slot(text: str, tz: tzinfo, what: str = "--free") -> FreeSlot:
    # Remembered in a zone that equals only itself (a ZoneInfo): a campaign's entries share
    # their free times. (A slot refused is refused again, in the same words.)
    if type(tz) is ZoneInfo and len(text) <= _REMEMBERED_SLOT:
        return _remembered_slot(text, tz, what)
    return _parse_slot(text, tz, what)


_REMEMBERED_SLOT = 200


@lru_cache(maxsize=1024)
def _remembered_slot(text: str, tz: ZoneInfo, what: str) -> FreeSlot:
    return _parse_slot(text, tz, what)


def _parse_slot(text: str, tz: tzinfo, what: str) -> FreeSlot:
    m = _SLOT.match(text)
    if not m:
        raise InputError(
            f"{what}: cannot read {text!r}; use 'YYYY-MM-DD HH:MM-HH:MM', e.g. '2026-12-01 09:00-12:00'"
        )
    pieces = (f"{m.group(1)} {m.group(2)}", f"{m.group(1)} {m.group(3)}")
    try:
        start, end = (parse_when(piece, tz, what) for piece in pieces)
    except InputError as exc:  # named by the whole free time, as the user wrote it
        said = str(exc)
        for piece in pieces:
            said = said.replace(repr(piece), repr(text), 1)
        raise InputError(said) from None
    if end <= start:
        raise InputError(f"{what}: {text!r} ends before it starts")
    return FreeSlot(start, end)


def parse_vars(pairs: Iterable[str], what: str = "--var") -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or len(key) > 64 or not key.isidentifier():
            raise InputError(
                f"{what}: expected key=value with a name like 'team_name', not {pair[:80]!r}"
            )
        if key in RESERVED_VARS:
            raise InputError(f"{what}: {key!r} is a built-in fact; set it with its own option")
        # A template may put any variable in the Subject: each value is a header value.
        out[key] = check_header(value, f"{what} {key}", VAR_MAX)
    return out


def make_facts(
    *,
    situation: str,
    to: str,
    interviewer: str,
    company: str,
    role: str,
    interview: str,
    tz: tzinfo,
    salutation: str = "",
    note: str = "",
    free: Iterable[str] = (),
    interviewer_tz: str = "",
    interviewer_phone: str = "",
    cc: Iterable[str] = (),
    var: Iterable[str] = (),
    alt_address: Iterable[str] = (),
    alt_domain: Iterable[str] = (),
    allow_test_domains: bool = False,
    prefix: str = "--",
    now: datetime | None = None,
    locale: str | None = None,
    require_to: bool = True,
    situations: Iterable[str] | None = None,
) -> Facts:
    """Check every fact and build :class:`Facts`. ``prefix`` names them as the user wrote them.

    Every problem is found, not just the first: the raised InputError's ``problems`` lists
    them all (a campaign shows each entry's problems together).

    With ``now``, dates are read as people write them (:mod:`mailer.model.when`: relative words
    count from ``now``; ``locale``, when the user set one, orders numeric dates). Without
    it, a date written in full (:func:`file_when`) but nothing relative: a campaign file is
    run later than it is written, so "tomorrow" there would drift.
    """
    problems: list[str] = []
    readings: list[str] = []
    warnings: list[str] = []

    def attempt(check: Callable[[], T], default: T) -> T:
        try:
            return check()
        except InputError as exc:
            problems.append(str(exc))
            return default

    def fail(message: str) -> None:
        problems.append(message)

    # What a problem calls a fact: the option on the command line ("--interviewer-tz"), the
    # key in a campaign file ("interviewer_tz", "alt_addresses").
    file_keys = {"alt-address": "alt_addresses", "alt-domain": "alt_domains"}

    def key(name: str) -> str:
        return f"{prefix}{name}" if prefix else file_keys.get(name, name.replace("-", "_"))

    # The built-in situations, and the workspace's own templates (see composer.situations_in).
    known = tuple(SITUATIONS) if situations is None else tuple(situations)
    if situation.strip().lower() in known:
        situation = situation.strip().lower()
    else:
        misnamed = situations.misnamed if isinstance(situations, Situations) else {}
        file = misnamed.get(situation.strip().lower())
        fail(
            f"{prefix}situation: unknown situation {shown(situation, quoted=True)} "
            + (
                f"(templates/{file[0]} is not one: a situation's file name is lower-case "
                f"letters, digits, '-' and '_'; rename it {file[1]}.txt.j2)"
                if file
                else f"(one of: {', '.join(known)})"
            )
        )
    # Sizes and characters first: every later check, the composer and the apology check then
    # work on small, clean values however large the input was, and no value is quoted back.
    for name, value, limit in (
        ("interviewer", interviewer, NAME_MAX),
        ("salutation", salutation, NAME_MAX),
        ("company", company, NAME_MAX),
        ("role", role, NAME_MAX),
        ("interviewer-phone", interviewer_phone, PHONE_MAX),
    ):
        attempt(lambda v=value, n=name, m=limit: check_header(v, key(n), m), None)
    attempt(lambda: check_body(note, f"{prefix}note", NOTE_MAX), None)

    def listed(items: Iterable[str], name: str) -> tuple[str, ...]:
        """The items to check one by one; none if there are too many (one problem says so)."""
        return attempt(lambda: check_count(tuple(items), key(name)), ())

    def short(value: str, name: str) -> str:
        return check_header(value, key(name), SHORT_MAX)

    for name, value in (("interviewer", interviewer), ("company", company), ("role", role)):
        if not value.strip():
            fail(f"{prefix}{name}: must not be empty")
    for name, value, limit in (
        ("interviewer", interviewer, NAME_MAX),
        ("salutation", salutation, NAME_MAX),
        ("company", company, NAME_MAX),
        ("role", role, NAME_MAX),
        ("note", note, NOTE_MAX),
    ):
        if len(value) <= limit and (m := PLACEHOLDER.search(value)):
            fail(f"{prefix}{name}: {m.group(0)!r} is a placeholder; write the real value")
        elif len(value) <= limit and (m := _MARKUP_IN_FACT.search(value)):
            # (The check of the rendered apology named the template for it: a walkthrough.)
            fail(
                f"{prefix}{name}: {m.group(0)!r} is template markup; facts go into the email "
                "as written: write the real words"
            )
        elif len(value) <= limit and (m := _INVISIBLE.search(value)):
            fail(
                f"{prefix}{name}: contains the invisible character U+{ord(m.group(0)):04X} "
                f"({_INVISIBLE_NAMES.get(m.group(0), 'a text-direction control')}), which "
                "changes how it reads; delete it (it comes with text pasted from a web page)"
            )
    if interviewer_tz:
        from mailer.model.zones import resolve

        found = attempt(
            lambda: resolve(short(interviewer_tz, "interviewer-tz"), key("interviewer-tz")),
            None,
        )
        if found is not None:
            interviewer_tz = found.name  # the composer and the store need the IANA name
            if found.note:
                readings.append(f"{key('interviewer-tz')}: {found.note}")
    epoch = datetime(1970, 1, 1, tzinfo=tz)

    def address(a: str, what: str) -> str:
        return validate_address(a, allow_test_domains=allow_test_domains, what=key(what))

    def addressee(a: str, what: str) -> str:
        checked = address(a, what)
        if warning := typo_warning(checked, key(what)):
            warnings.append(warning)
        return checked

    def when(text: str) -> Reading:
        what = f"{prefix}interview"
        if now is None:
            return file_reading(short(text, "interview"), tz, what, locale)
        from mailer.model.when import echo, read_when

        reading = read_when(short(text, "interview"), tz, now, locale, what)
        readings.append(echo("interview", reading))
        return reading

    def slot(text: str) -> FreeSlot:
        what = f"{prefix}free"
        if now is None:
            return file_slot(short(text, "free"), tz, what, locale)
        from mailer.model.when import echo_slot, read_slot

        reading = read_slot(short(text, "free"), tz, now, locale, what)
        readings.append(echo_slot("free time", reading))
        return FreeSlot(reading.start, reading.end)

    read = attempt(lambda: when(interview), None)
    named_zone = read.zone if read is not None else ""  # the zone the interview was written in
    if named_zone and not interviewer_tz and getattr(tz, "key", None) != named_zone:
        # "10:00 CET" was arranged in that zone, and the interviewer reads the email there: its
        # times are shown in it, labelled (they were shown in the sender's zone, unlabelled:
        # a Paris interviewer read them an hour early; a walkthrough).
        interviewer_tz = named_zone
        readings.append(
            f"times in the email are shown in {interviewer_tz}, as the interview was written "
            "(--interviewer-tz to choose another zone)"
        )
    facts = Facts(
        situation=situation,
        # A call script is spoken, not sent: it does not need the address.
        to=attempt(lambda: addressee(to, "to"), to) if to or require_to else "",
        interviewer=interviewer.strip(),
        salutation=_salutation(salutation),
        company=company.strip(),
        role=role.strip(),
        interview=read.at if read is not None else epoch,
        note=note.strip(),
        free=tuple(
            read for text in listed(free, "free") if (read := attempt(lambda t=text: slot(t), None))
        ),
        interviewer_tz=interviewer_tz,
        interviewer_phone=interviewer_phone.strip(),
        cc=tuple(attempt(lambda a=a: addressee(a, "cc"), a) for a in listed(cc, "cc")),
        extra=attempt(lambda: parse_vars(listed(var, "var"), f"{prefix}var"), {}),
        alt_addresses=tuple(
            attempt(lambda a=a: address(a, "alt-address"), a)
            for a in listed(alt_address, "alt-address")
        ),
        alt_domains=tuple(
            attempt(lambda d=d: _domain(d, key("alt-domain")), d)
            for d in listed(alt_domain, "alt-domain")
        ),
        readings=tuple(readings),
        warnings=tuple(warnings),
    )
    if problems:
        error = InputError(problems[0] if len(problems) == 1 else "; ".join(problems))
        error.problems = problems  # type: ignore[attr-defined]
        raise error
    return facts


def _salutation(value: str) -> str:
    """'Ms Ruiz' from 'Ms Ruiz', 'Dear Ms Ruiz,' or 'Hello Ms Ruiz': the template writes the
    'Dear' and the comma itself."""
    # (Any closing mark: "Ms Ruiz!" and "Sra. García:" read "Dear Ms Ruiz!," otherwise.)
    text = " ".join(value.split()).rstrip(",:;! ")
    return re.sub(r"^(?:dear|hello|hi)\b\s*", "", text, flags=re.IGNORECASE).strip()


def _domain(value: str, what: str) -> str:
    d = check_header(value, what, DOMAIN_MAX).strip().lstrip("@").lower()
    if not re.fullmatch(
        r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+", d
    ):
        raise InputError(f"{what}: {value!r} is not a domain name such as acme.example")
    return d


# When a free time may fall in the interviewer's day: outside it, or on their weekend, the
# offer reads as careless (04:00 for them is 09:00 for you).
OFFICE_HOURS = (time(8, 0), time(19, 0))


def odd_hours(slots: Iterable[FreeSlot], interviewer_tz: str) -> list[str]:
    """One line per free time that falls outside OFFICE_HOURS, or on a Saturday or Sunday, in
    the interviewer's zone, with its local times. Without their zone there is nothing to say:
    the weekend check on the sender's own times covers it."""
    if not interviewer_tz:
        return []
    tz = ZoneInfo(interviewer_tz)
    first, last = OFFICE_HOURS
    out = []
    for slot in sorted(slots, key=lambda s: s.start):
        a, b = slot.start.astimezone(tz), slot.end.astimezone(tz)
        local = f"{a:%a %d %b %H:%M}-{b:%H:%M} {a.tzname()}"
        yours = f"{slot.start:%a %d %b %H:%M}-{slot.end:%H:%M}"
        if a.weekday() >= 5:
            out.append(f"--free {yours} is {local} for the interviewer: their weekend")
        elif a.time() < first or b.date() != a.date() or b.time() > last:
            out.append(
                f"--free {yours} is {local} for the interviewer: outside "
                f"{first:%H:%M}-{last:%H:%M} in their zone"
            )
    return out


def check_free_times(slots: Iterable[FreeSlot], now: datetime) -> list[str]:
    """Refuse past or overlapping free times; return warnings (weekend times)."""
    ordered = sorted(slots, key=lambda s: s.start)
    # Every past one at once, as make_facts names every problem (a walkthrough: the second
    # was named only once the first was mended).
    past = [
        f"--free: {slot.start:%Y-%m-%d %H:%M}-{slot.end:%H:%M} is in the past"
        for slot in ordered
        if slot.end <= now
    ]
    if past:
        error = InputError("; ".join(past))
        error.problems = past  # type: ignore[attr-defined]
        raise error
    warnings = []
    for slot in ordered:
        if slot.start.weekday() >= 5:
            warnings.append(
                f"--free: {slot.start:%A %Y-%m-%d} is a weekend day; most "
                "interviewers only meet on weekdays"
            )
    for a, b in itertools.pairwise(ordered):
        if b.start < a.end:
            raise InputError(
                f"--free: {a.start:%Y-%m-%d %H:%M}-{a.end:%H:%M} overlaps "
                f"{b.start:%Y-%m-%d %H:%M}-{b.end:%H:%M}; merge them"
            )
    return warnings
