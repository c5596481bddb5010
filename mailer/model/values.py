"""What a typed value may contain before it goes into a message. Pure.

Two rules, used at every entry point (CLI facts and ``--var``, campaign entries and CSV cells,
config ``[sender]`` and ``[accounts.NAME.sender]``) and again by the composer:

- a *header* value (names, company, role, phone, ``--var`` values, which a template may put in
  the Subject) may hold no control character at all except TAB, and no RFC 2047 encoded word;
- a *body* value (the note, the signature) may also hold LF.

Encoded words are refused, not decoded: Python's email library decodes
``=?utf-8?q?Ivy=0D=0AReply-To:...?=`` in a display name or Subject while serialising and
writes the CR/LF out as a header break (CVE-2024-6923), so the raw text looked harmless.
The decoded form is checked as well, in case the library decodes something else.

Every limit is checked first, so a 10 MB value costs nothing before it is refused.
"""

from __future__ import annotations

import re
from functools import lru_cache

from mailer.errors import InputError

NAME_MAX = 200  # a person's or a company's name, a role
PHONE_MAX = 50
VAR_MAX = 500  # a --var value: a template may put it in the Subject
SHORT_MAX = 200  # dates, time zones, durations, account names
NOTE_MAX = 2000
SIGNATURE_MAX = 2000
ADDRESS_MAX = 254  # RFC 5321's limit on a path
DOMAIN_MAX = 253
HEADER_MAX = 998  # RFC 5322's line limit: no single header value may be longer
LIST_MAX = 50  # addresses, free times, variables: each list of one message

# C0 controls but TAB, DEL, C1 controls, and the Unicode line and paragraph separators
# (str.splitlines() breaks lines at all of them).
# (And lone surrogates: bytes of a command line or file that were not UTF-8, which no
# message can be encoded with.)
_HEADER_BAD = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_BODY_BAD = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def header_problem(value: str, limit: int) -> str | None:
    """Why ``value`` may not go into a header, or None. Remembered for short values: a
    campaign checks the same names, company, role and addresses in entry after entry, some
    twenty a message (the bound keeps the cache's memory small)."""
    if problem := _length_problem(value, limit):
        return problem
    if len(value) <= _REMEMBERED_MAX:
        return _remembered_header_problem(value)
    return _header_problem(value)


_REMEMBERED_MAX = 256


@lru_cache(maxsize=1024)
def _remembered_header_problem(value: str) -> str | None:
    return _header_problem(value)


def _header_problem(value: str) -> str | None:
    """Why ``value``, within its limit, may not go into a header, or None."""
    if m := _HEADER_BAD.search(value):
        return _control_problem(m.group(0), header=True)
    return _encoded_word_problem(value)


def body_problem(value: str, limit: int) -> str | None:
    """Why ``value`` may not go into a body, or None. LF is fine; CR is not (a body's line
    breaks are written by the email library, never taken from the user)."""
    if problem := _length_problem(value, limit):
        return problem
    if m := _BODY_BAD.search(value):
        return _control_problem(m.group(0), header=False)
    # A template may also put a body value into the Subject.
    return _encoded_word_problem(value)


def check_header(value: str, what: str, limit: int = NAME_MAX) -> str:
    """``value`` unchanged, or InputError('WHAT: why')."""
    if problem := header_problem(value, limit):
        raise InputError(f"{what}: {problem}")
    return value


def check_body(value: str, what: str, limit: int = NOTE_MAX) -> str:
    """``value`` unchanged, or InputError('WHAT: why')."""
    if problem := body_problem(value, limit):
        raise InputError(f"{what}: {problem}")
    return value


def check_count(items: tuple[str, ...], what: str, limit: int = LIST_MAX) -> tuple[str, ...]:
    """``items`` unchanged, or InputError if there are more than ``limit``."""
    if len(items) > limit:
        raise InputError(f"{what}: {len(items):,} given; at most {limit} are allowed")
    return items


def shown(value: object, limit: int = 80, *, quoted: bool = False) -> str:
    """``value`` as an error message may quote it: as typed (``repr`` if ``quoted``) when short
    and clean, else the escaped start of it (a message must stay one line, and not replay a
    10 MB cell or a terminal escape sequence)."""
    text = value if isinstance(value, str) else "?" if value is None else repr(value)
    if len(text) <= limit and not _HEADER_BAD.search(text):
        return repr(text) if quoted else text
    escaped = repr(text[:limit])
    return escaped if len(escaped) <= limit and len(text) <= limit else escaped[:limit] + "…"


def has_encoded_word(value: str) -> bool:
    """True if ``value`` holds '=?' followed later by '?=': the outline of every RFC 2047
    encoded word, however its charset and encoding are written. Two scans, so linear."""
    start = value.find("=?")
    return start >= 0 and value.find("?=", start + 2) >= 0


def decoded_forms(value: str) -> list[str]:
    """``value`` as the email library's two RFC 2047 decoders read it."""
    from email.header import decode_header
    from email.policy import default

    parts = []
    for chunk, charset in decode_header(value):
        if isinstance(chunk, bytes):
            chunk = chunk.decode(charset or "ascii", errors="replace")
        parts.append(chunk)
    return ["".join(parts), str(default.header_factory("X-Check", value))]


def _length_problem(value: str, limit: int) -> str | None:
    if len(value) > limit:
        return f"is {len(value):,} characters long; at most {limit:,} are allowed"
    return None


def _control_problem(char: str, *, header: bool) -> str:
    if char in "\r\n" and header:
        return "contains a line break (CR/LF), which is not allowed in a header"
    if char == "\r":
        return "contains a carriage return"
    if char in "\u2028\u2029":
        return f"contains a line or paragraph separator (U+{ord(char):04X})"
    if "\ud800" <= char <= "\udfff":
        return "is not UTF-8 text (a byte your terminal or file gave in another encoding)"
    return f"contains the control character U+{ord(char):04X}"


def _encoded_word_problem(value: str) -> str | None:
    if has_encoded_word(value):
        return (
            "contains RFC 2047 encoded-word syntax ('=?...?='), which mail programs would "
            "decode; write the text itself"
        )
    for decoded in decoded_forms(value) if "=?" in value else ():
        if m := _HEADER_BAD.search(decoded):
            return f"decodes to the control character U+{ord(m.group(0)):04X}"
    return None
