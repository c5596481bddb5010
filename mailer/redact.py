"""Takes every trace of a password out of a server's text before it becomes our error.

A server may echo what it was sent: the ``AUTH PLAIN <base64>`` line, the lines of AUTH
LOGIN, IMAP's ``LOGIN user "password"``, or the credentials it decoded. Its reply then goes
into an error line, the state store and the daemon log, so it is cleaned where it enters
(pure: no I/O). What is removed:

- the argument of an echoed ``AUTH``/``AUTHENTICATE <mechanism>`` and of ``LOGIN <user>``;
- any base64-looking run that holds the password (UTF-8 or Latin-1) at any of the three
  alignments base64 can put it in, or ``\\0user\\0password``, or the user name;
- the password itself, also as the libraries mangle it on the way: quoted, escaped as a
  ``bytes`` repr, its non-ASCII characters stripped or replaced, or decoded as Latin-1.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Callable

MARK = "[redacted]"

# Fewer base64 characters than this hold under 3 bytes of the password and would match
# ordinary words; the exact forms below still cover such short passwords.
_MIN_CORE = 4
# A password whose ASCII part is this long is also matched with its other characters lost
# (imapclient drops them when a reply is not ASCII); a shorter one would match everywhere.
_MIN_SKELETON = 4

_B64_RUN = re.compile(r"[A-Za-z0-9+/_-]+=*")
# The user name argument of LOGIN: a quoted string, a literal or an atom.
_ARG = r'(?:"(?:[^"\\]|\\.)*"|\{\d+\+?\}|[^\s"]\S*)'
_AUTH = re.compile(r"\b(AUTH(?:ENTICATE)?[ \t]+[A-Za-z0-9_-]+)[ \t]+\S+", re.IGNORECASE)
_URLSAFE = str.maketrans("+/", "-_")


def redact(text: str, user: str, password: str) -> str:
    """``text`` without the password, its base64 forms or any echoed AUTH/LOGIN argument."""
    return redactor(user, password)(text)


@functools.lru_cache(maxsize=16)
def redactor(user: str, password: str) -> Callable[[str], str]:
    """A cleaner for one account's credentials, its patterns compiled once."""
    login = _login_pattern(user)
    encoded = _base64_pattern(user, password)
    raw = _raw_pattern(password)

    def clean(text: str) -> str:
        # The whole password first: a rule that took only part of it would leave the rest.
        if raw is not None:
            text = raw.sub(MARK, text)
        if encoded is not None:
            text = _B64_RUN.sub(lambda m: MARK if encoded.search(m[0]) else m[0], text)
        text = _AUTH.sub(rf"\1 {MARK}", text)
        return login.sub(rf"\1 {MARK}", text)

    return clean


def _login_pattern(user: str) -> re.Pattern[str]:
    # Clients send the command in capitals; in any case it counts when our user name follows.
    keyword = "LOGIN"
    if user:
        keyword += rf'|(?i:login)(?=[ \t]+"?{re.escape(user)})'
    # The password is the rest of the command line: cut short, or quoted again by repr() (which
    # doubles its backslashes), it has no reliable end of its own.
    return re.compile(rf"\b((?:{keyword})[ \t]+{_ARG})[ \t]+[^\r\n]*")


def _base64_pattern(user: str, password: str) -> re.Pattern[str] | None:
    needles: set[str] = set()
    for secret in _encodings(password):
        needles |= _cores(secret)
        for u in _encodings(user) or [b""]:
            # RFC 4616: [authzid] NUL authcid NUL passwd; clients send no authzid or the user.
            for plain in (b"\0" + u + b"\0" + secret, u + b"\0" + u + b"\0" + secret):
                needles.add(base64.b64encode(plain).decode("ascii").rstrip("="))
    for u in _encodings(user):
        form = base64.b64encode(u).decode("ascii").rstrip("=")
        if len(form) >= 2 * _MIN_CORE:  # AUTH LOGIN's first line; short ones are noise
            needles.add(form)
    needles |= {n.translate(_URLSAFE) for n in needles}
    needles = {n for n in needles if n}
    if not needles:
        return None
    alternatives = sorted(map(re.escape, needles), key=len, reverse=True)
    return re.compile("|".join(alternatives), re.IGNORECASE)


def _encodings(text: str) -> list[bytes]:
    if not text:
        return []
    forms = [text.encode("utf-8")]
    try:
        latin = text.encode("latin-1")
    except UnicodeEncodeError:
        return forms
    return forms if latin == forms[0] else [*forms, latin]


def _cores(secret: bytes) -> set[str]:
    """The base64 characters that depend on ``secret`` alone, for each of the three offsets
    (mod 3) it can start at inside a longer encoded string."""
    cores = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + secret).decode("ascii")
        first = -(-8 * shift // 6)  # the first character whose 6 bits all come from secret
        last = 8 * (shift + len(secret)) // 6
        core = encoded[first:last]
        if len(core) >= _MIN_CORE:
            cores.add(core)
    return cores


def _raw_pattern(password: str) -> re.Pattern[str] | None:
    password = password.strip()
    skeleton = [c for c in password if c.isascii() and not c.isspace()]
    if not password:
        return None
    optional = "?" if len(skeleton) >= _MIN_SKELETON else ""
    parts = []
    for c in password:
        if c.isspace():
            parts.append(r"(?:\s|\\[tnr])*")  # whitespace is folded when replies are joined
        elif c.isascii():
            parts.append(r"\\{0,3}" + re.escape(c))  # IMAP quoting and repr() add backslashes
        else:
            parts.append(f"(?:{'|'.join(_mangled(c))}){optional}")
    return re.compile("".join(parts), re.IGNORECASE)


def _mangled(c: str) -> list[str]:
    """What a non-ASCII character may have become by the time a reply is text."""
    utf8 = c.encode("utf-8")
    forms = [
        re.escape(c),
        "".join(rf"\\x{b:02x}" for b in utf8),  # repr() of the UTF-8 bytes
        re.escape(utf8.decode("latin-1")),  # UTF-8 read as Latin-1
        rf"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else rf"\\U{ord(c):08x}",  # repr()
        _json_escape(c),
        "\ufffd{1,4}",  # undecodable bytes replaced
        r"\?{1,4}",  # unencodable characters replaced
    ]
    if ord(c) < 0x100:
        forms.append(rf"\\x{ord(c):02x}")  # repr() of the Latin-1 byte
    return forms


def _json_escape(c: str) -> str:
    units = c.encode("utf-16-be")
    return "".join(rf"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2))
