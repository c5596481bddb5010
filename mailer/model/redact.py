"""Takes every trace of a password out of a server's text before it becomes our error.

A server may echo what it was sent: the ``AUTH PLAIN <base64>`` line, the lines of AUTH
LOGIN, IMAP's ``LOGIN user "password"``, or the credentials it decoded. Its reply then goes
into an error line, the state store and the daemon log, so it is cleaned where it enters
(pure: no I/O). What is removed:

- the argument of an echoed ``AUTH``/``AUTHENTICATE <mechanism>`` and of ``LOGIN <user>``;
- any base64-looking run that holds the password (UTF-8 or Latin-1) at any of the three
  alignments base64 can put it in, or ``\\0user\\0password``, or the user name;
- the password itself, also as the libraries mangle it on the way: quoted, escaped as a
  ``bytes`` repr, its non-ASCII characters stripped or replaced, decoded as Latin-1, or
  percent-encoded as a form or URL carries it.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from urllib.parse import quote, quote_plus

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
# Only after a SASL mechanism's name (RFC 4422; the IANA registry's, in any case): after any
# word it took server prose for a command, "SMTP AUTH extension not supported" becoming
# "SMTP AUTH extension [redacted] supported", the opposite of what the server said.
_MECHANISM = (
    r"(?:PLAIN|LOGIN|XOAUTH2?|OAUTHBEARER|CRAM-MD5|DIGEST-MD5|SCRAM-[A-Z0-9-]+|NTLM|GSSAPI"
    r"|GSS-SPNEGO|EXTERNAL|ANONYMOUS|OTP|SKEY|SRP|KERBEROS_V[45]|SECURID|SAML20|OPENID20"
    r"|PASSDSS-[A-Z0-9-]+|9798-[A-Z0-9-]+|EAP-AES128(?:-PLUS)?)"
)
_AUTH = re.compile(rf"\b(AUTH(?:ENTICATE)?[ \t]+{_MECHANISM})[ \t]+\S+", re.IGNORECASE)
_URLSAFE = str.maketrans("+/", "-_")

# Whitespace is folded when a reply's lines are joined, escaped by repr() and JSON, and
# replaced like any other character when it is not ASCII.
_SPACE = r"(?:\s|\\[tnrfvb]|\\x[0-9a-f]{2}|\\u[0-9a-f]{4}|\ufffd)"


def redact(text: str, user: str, password: str) -> str:
    """``text`` without the password, its base64 forms or any echoed AUTH/LOGIN argument."""
    return redactor(user, password)(text)


@functools.lru_cache(maxsize=16)
def redactor(user: str, password: str) -> Callable[[str], str]:
    """A cleaner for one account's credentials, its patterns compiled once."""
    login = _login_pattern(user)
    encoded = _base64_pattern(user, password)
    starts = _encoded_starts(user, password)
    raw = _raw_pattern(password)

    def secret(run: str) -> bool:
        if encoded is not None and encoded.search(run):
            return True
        # An AUTH argument cut short (a server's echo, a line split): the start of one.
        core = run.rstrip("=")
        return len(core) >= _MIN_CORE and any(s.startswith(core) for s in starts)

    def clean(text: str) -> str:
        # The whole password first: a rule that took only part of it would leave the rest.
        if raw is not None:
            text = raw.sub(MARK, text)
        if encoded is not None or starts:
            text = _B64_RUN.sub(lambda m: MARK if secret(m[0]) else m[0], text)
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
    needles: set[str] = set(_plain_forms(user, password))
    for secret in _encodings(password):
        needles |= _cores(secret)
    for u in _encodings(user):
        form = _b64(u)
        if len(form) >= 2 * _MIN_CORE:  # AUTH LOGIN's first line; short ones are noise
            needles.add(form)
    needles |= {n.translate(_URLSAFE) for n in needles}
    needles = {n for n in needles if n}
    if not needles:
        return None
    alternatives = sorted(map(re.escape, needles), key=len, reverse=True)
    return re.compile("|".join(alternatives), re.IGNORECASE)


def _encoded_starts(user: str, password: str) -> tuple[str, ...]:
    """The whole base64 forms a client sends (AUTH PLAIN's ``[authzid] NUL user NUL
    password``, AUTH LOGIN's password line), in both alphabets: a run that is the start of
    one holds some of the password, or is about to."""
    forms = set(_plain_forms(user, password))
    forms |= {_b64(secret) for secret in _encodings(password)}
    return tuple(forms | {f.translate(_URLSAFE) for f in forms})


def _plain_forms(user: str, password: str) -> Iterator[str]:
    """AUTH PLAIN's argument, base64 without padding, as clients send it: RFC 4616's
    [authzid] NUL authcid NUL passwd, with no authzid or the user as it."""
    for secret in _encodings(password):
        for u in _encodings(user) or [b""]:
            for plain in (b"\0" + u + b"\0" + secret, u + b"\0" + u + b"\0" + secret):
                yield _b64(plain)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


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
    if not password:
        return None
    # The whole password as each mangling leaves it, longest first; then a pattern that
    # also finds it quoted, cut short, or mangled in ways that combine.
    wholes = sorted(_wholes(password), key=len, reverse=True)
    either = "|".join([*wholes, _pieces(password)])
    if sum(map(_plain, password)) < _MIN_SKELETON:
        # A password this short is found as a word of its own only: inside words it cut
        # the server's prose ("SMTP AUTH e[redacted]tension" for the password "x").
        either = rf"(?<![A-Za-z0-9])(?:{either})(?![A-Za-z0-9])"
    return re.compile(either, re.IGNORECASE)


def _wholes(password: str) -> set[str]:
    utf8 = password.encode("utf-8")
    forms = {
        *_mangled(password),
        utf8.decode("ascii", "ignore"),  # imapclient drops what is not ASCII
        password.encode("ascii", "replace").decode("ascii"),
        # As a form or a URL carries it: an OAuth2 token endpoint may echo the posted body
        # in its error ("refresh_token=1%2F%2F0g..."), and Google's tokens hold "/".
        quote(password, safe=""),
        quote(password),
        quote_plus(password),
    }
    patterns = set()
    for form in forms:
        words = form.split()
        if sum(map(len, words)) >= _MIN_SKELETON:  # shorter would match everywhere
            patterns.add(r"\s+".join(map(re.escape, words)))
    return patterns


def _pieces(password: str) -> str:
    optional = "?" if sum(map(_plain, password)) >= _MIN_SKELETON else ""
    parts = []
    # One atomic part per run of like characters: a failed match must not try every way of
    # sharing a run of '?' or backslashes among the parts (exponential time).
    for kind, run in _runs(password):
        if kind == "space":  # each character may stay, be escaped, or be folded away
            parts.append(f"{_SPACE}{{0,{len(run)}}}")
        elif kind == "plain":
            parts.append("".join(r"\\{0,3}" + re.escape(c) for c in run))
        elif kind == "control":  # kept by every decoding, escaped by repr() and JSON
            parts.append("".join(_either(map(re.escape, _mangled(c))) for c in run))
        else:
            parts.append(_either([*map(re.escape, _mangled(run)), _replaced(run)]) + optional)
    return "".join(f"(?>{part})" for part in parts)


def _either(alternatives: Iterable[str]) -> str:
    return f"(?:{'|'.join(sorted(alternatives, key=len, reverse=True))})"


def _plain(c: str) -> bool:
    return c.isascii() and c.isprintable() and not c.isspace()


def _runs(password: str) -> list[tuple[str, str]]:
    runs: list[tuple[str, str]] = []
    for c in password:
        if c.isspace() or _plain(c):
            kind = "space" if c.isspace() else "plain"
        else:
            kind = "control" if c.isascii() else "other"
        if runs and runs[-1][0] == kind:
            runs[-1] = (kind, runs[-1][1] + c)
        else:
            runs.append((kind, c))
    return runs


def _mangled(text: str) -> set[str]:
    """What characters may have become by the time a reply is text (as literals)."""
    utf8 = text.encode("utf-8")
    latin = text.encode("latin-1", "replace")
    return {
        text,
        repr(text)[1:-1],
        repr(utf8)[2:-1],  # how imaplib shows a reply it cannot take
        repr(latin)[2:-1],
        utf8.decode("latin-1"),  # UTF-8 read as Latin-1
        latin.decode("utf-8", "replace"),  # Latin-1 read as UTF-8
        json.dumps(text)[1:-1],
        json.dumps(text, ensure_ascii=False)[1:-1],
    }


def _replaced(run: str) -> str:
    """Undecodable bytes or unencodable characters replaced."""
    return f"[\ufffd?]{{1,{len(run.encode('utf-8'))}}}"
