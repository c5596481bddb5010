"""Time-zone names as people write them: IANA names, city names and abbreviations.

An abbreviation is not a zone: "CST" is Chicago, Shanghai or Havana. The unambiguous ones map
to one representative IANA zone (with a note saying which, since its summer-time rules are
that zone's); the ambiguous ones are refused with their candidates. tzdata's own "EST" and
"MST" are fixed offsets with no summer time, a trap this table avoids by checking first.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from mailer.errors import InputError

ABBREVIATIONS: dict[str, str] = {
    "UTC": "UTC",
    "GMT": "UTC",
    "Z": "UTC",
    "EST": "America/New_York",
    "EDT": "America/New_York",
    "ET": "America/New_York",
    "CDT": "America/Chicago",
    "MST": "America/Denver",
    "MDT": "America/Denver",
    "PST": "America/Los_Angeles",
    "PDT": "America/Los_Angeles",
    "PT": "America/Los_Angeles",
    "AKST": "America/Anchorage",
    "HST": "Pacific/Honolulu",
    "WET": "Europe/Lisbon",
    "WEST": "Europe/Lisbon",
    "CET": "Europe/Paris",
    "CEST": "Europe/Paris",
    "MEZ": "Europe/Berlin",
    "MESZ": "Europe/Berlin",
    "EET": "Europe/Athens",
    "EEST": "Europe/Athens",
    "MSK": "Europe/Moscow",
    "JST": "Asia/Tokyo",
    "KST": "Asia/Seoul",
    "HKT": "Asia/Hong_Kong",
    "SGT": "Asia/Singapore",
    "AEST": "Australia/Sydney",
    "AEDT": "Australia/Sydney",
    "ACST": "Australia/Adelaide",
    "AWST": "Australia/Perth",
    "NZST": "Pacific/Auckland",
    "NZDT": "Pacific/Auckland",
    "CT": "America/Chicago",
    "MT": "America/Denver",
    "AKDT": "America/Anchorage",
    "BRT": "America/Sao_Paulo",
    "AET": "Australia/Sydney",
    "ACDT": "Australia/Adelaide",
    "SAST": "Africa/Johannesburg",
    "EAT": "Africa/Nairobi",
    "WAT": "Africa/Lagos",
    "CAT": "Africa/Maputo",
    "PKT": "Asia/Karachi",
    "WIB": "Asia/Jakarta",
    "ICT": "Asia/Bangkok",
    "PHT": "Asia/Manila",
}
AMBIGUOUS: dict[str, tuple[str, ...]] = {
    "CST": ("America/Chicago", "Asia/Shanghai", "America/Havana"),
    "IST": ("Asia/Kolkata", "Europe/Dublin", "Asia/Jerusalem"),
    "BST": ("Europe/London", "Asia/Dhaka"),
    "AST": ("America/Halifax", "Asia/Riyadh"),
    "ADT": ("America/Halifax", "Asia/Baghdad"),
}


@dataclass(frozen=True)
class Zone:
    tz: ZoneInfo
    note: str = ""  # how an abbreviation was read, to echo back

    @property
    def name(self) -> str:
        return self.tz.key


def resolve(name: str, what: str) -> Zone:
    """The zone ``name`` means, or an InputError that suggests the right spelling."""
    text = name.strip()
    upper = text.upper()
    if upper in AMBIGUOUS:
        raise InputError(
            f"{what}: {text!r} is ambiguous ({', '.join(AMBIGUOUS[upper])}); "
            "write the IANA name of the one you mean"
        )
    if upper in ABBREVIATIONS:
        key = ABBREVIATIONS[upper]
        return Zone(ZoneInfo(key), "" if upper == key else f"{text} read as {key}")
    tz = load(text)
    # Linux file systems are case-sensitive, so a name that loads is spelt right; elsewhere
    # "Europe/berlin" loads too, and would be stored and then fail on another machine.
    if tz is not None and (sys.platform.startswith("linux") or text in _names() or not _names()):
        return Zone(tz)
    guess = suggest(text)
    hint = f"did you mean {guess}?" if guess else "use an IANA name such as Europe/Berlin"
    raise InputError(f"{what}: unknown time zone {text!r}; {hint}")


def known(word: str) -> bool:
    """Whether ``word`` names a zone as it is (an abbreviation we read, or a tzdata name)."""
    upper = word.strip().upper()
    return upper in ABBREVIATIONS or upper in AMBIGUOUS or load(word.strip()) is not None


def may_be_abbreviation(word: str) -> bool:
    """Two to five capitals ("AET", "SAST"): written as a zone's abbreviation, so taken for a
    zone even when it is not one we know (its error then says so)."""
    return 2 <= len(word) <= 5 and word.isalpha() and word.isupper()


def suggest(text: str) -> str:
    """The IANA name closest to ``text``: same name in another case, a city, or a near miss."""
    names = _names()
    folded = {n.lower(): n for n in names}
    key = text.strip().replace(" ", "_").lower()
    if key in folded:
        return folded[key]
    cities = {n.rsplit("/", 1)[-1].lower(): n for n in sorted(names) if "/" in n}
    if key.rsplit("/", 1)[-1] in cities:
        return cities[key.rsplit("/", 1)[-1]]
    if may_be_abbreviation(text.strip()):
        # An abbreviation's near miss is another zone, not a spelling: "ACDT" is not
        # Australia/ACT (Canberra), "CT" is not UCT (UTC).
        return ""
    import difflib  # only for a near miss: not worth its import on every start

    close = difflib.get_close_matches(key, list(folded), n=1, cutoff=0.8)
    if close:
        return folded[close[0]]
    close = difflib.get_close_matches(key, list(cities), n=1, cutoff=0.8)
    return cities[close[0]] if close else ""


@cache
def _names() -> frozenset[str]:
    # Empty when the platform cannot list its zones: resolve() then accepts whatever loads.
    return frozenset(available_timezones())


def load(name: str) -> ZoneInfo | None:
    """``ZoneInfo(name)``, or None when it does not exist (for callers that only probe)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory, "Europe"
        return None
