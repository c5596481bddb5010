"""The redaction of credentials from server text (pure: no servers)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mailer.model.redact import MARK, redact

USER = "you@sandbox.test"
# Derandomized: the same cases on every run, so CI cannot fail on a draw no one saw.
_FAST = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# Any text but lone surrogates (a password comes from a UTF-8 .env file).
_text = st.text(st.characters(blacklist_categories=("Cs",)))
# Four bytes or more: below that base64 holds too little of it to be told from other text.
_passwords = _text.filter(lambda p: len(p.strip().encode()) >= 4 and p == p.strip())


def plain_runs(password: str) -> list[str]:
    """Runs of 4+ letters and digits: they survive any mangling of the characters around."""
    return re.findall(r"[A-Za-z0-9]{4,}", password)


def assert_gone(out: str, *secrets: str) -> None:
    rest = out.replace(MARK, " ").lower()
    for s in secrets:
        assert s.lower() not in rest, (s, out)


@_FAST
@given(
    password=_passwords,
    before=st.binary(max_size=9),
    after=st.binary(max_size=9),
    encoding=st.sampled_from(["utf-8", "latin-1"]),
    urlsafe=st.booleans(),
)
def test_password_inside_any_base64_run_is_redacted(
    password: str, before: bytes, after: bytes, encoding: str, urlsafe: bool
) -> None:
    """Verify a base64 run holding the password at any offset, with anything around it
    (an AUTH PLAIN argument, an AUTH LOGIN line), is removed whole."""
    try:
        secret = password.encode(encoding)
    except UnicodeEncodeError:
        secret = password.encode("utf-8")
    assume(len(secret) >= 4)
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    token = encode(before + secret + after).decode("ascii")
    out = redact(f"535 5.7.8 you sent {token} (refused)", USER, password)
    assert MARK in out
    assert_gone(out, token.rstrip("="))


# How a password echoed by a server may look by the time it is text, as (mangling, the part
# to look for): quoting, repr, JSON, non-ASCII characters dropped or replaced.
_MANGLINGS: dict[str, Callable[[str], str]] = {
    "as is": lambda p: p,
    "IMAP quoted": lambda p: p.replace("\\", "\\\\").replace('"', '\\"'),
    "repr of UTF-8 bytes": lambda p: repr(p.encode())[2:-1],
    "repr of text": lambda p: repr(p)[1:-1],
    "JSON": lambda p: json.dumps(p)[1:-1],
    "JSON, UTF-8": lambda p: json.dumps(p, ensure_ascii=False)[1:-1],
    "non-ASCII dropped": lambda p: p.encode().decode("ascii", "ignore"),
    "non-ASCII replaced": lambda p: p.encode("ascii", "replace").decode(),
    "UTF-8 read as Latin-1": lambda p: p.encode().decode("latin-1"),
    "Latin-1 read as UTF-8": lambda p: p.encode("latin-1", "replace").decode("utf-8", "replace"),
    "whitespace folded": lambda p: " ".join(p.split()),
}


@_FAST
@given(password=_passwords, mangling=st.sampled_from(sorted(_MANGLINGS)))
def test_password_in_clear_or_mangled_on_the_way_is_redacted(password: str, mangling: str) -> None:
    """Verify the password is removed as sent and as libraries mangle it on the way."""
    template = "NO [AUTHENTICATIONFAILED] '{}' end"
    # A password whose letters are the reply's own words ("FAIL") cannot be told from them.
    assume(not any(run.lower() in template.lower() for run in plain_runs(password)))
    shown = _MANGLINGS[mangling](password)
    out = redact(template.format(shown), USER, password)
    assert_gone(out, *plain_runs(password))
    if len("".join(shown.split())) >= 4:  # shorter forms would match everywhere
        assert_gone(out, shown.strip())


@pytest.mark.parametrize(
    ("kept", "argument"),
    [
        ("535 5.7.8 bad: AUTH PLAIN", "AGZvbwBiYXI="),
        ("535 5.7.8 bad: auth plain", "AGZvbwBiYX"),  # lower case, cut short
        ("535 5.7.8 bad: AUTH LOGIN", "dXNlcg=="),
        ("a1 NO AUTHENTICATE PLAIN", "AHVzZXIAcGFzcw=="),
        ("a1 NO rejected: LOGIN you@sandbox.test", '"other pass"'),
        ("a1 NO rejected: LOGIN you@sandbox.test", '"cut sho'),
        ("a1 NO rejected: LOGIN someone", "plainword"),
        ('a1 NO rejected: login "you@sandbox.test"', "lower-pw"),
    ],
)
def test_echoed_auth_and_login_arguments_are_redacted(kept: str, argument: str) -> None:
    """Verify the argument of an echoed AUTH/AUTHENTICATE/LOGIN is removed even when it is
    not the configured password (another one, or cut short), and the command stays."""
    out = redact(f"{kept} {argument}", USER, "Zebra42-quonk")
    assert out == f"{kept} {MARK}"


@pytest.mark.parametrize(
    "reply",
    [
        "535 5.7.8 Authentication credentials invalid",
        "NO [AUTHENTICATIONFAILED] Authentication failed.",
        "535-5.7.8 Username and Password not accepted. Learn more at "
        "https://support.google.com/mail/?p=BadCredentials a640c23a62f3a-1234",
        "550 5.1.1 <nobody@sandbox.test>: Recipient address rejected: not a sandbox mailbox",
        "250 2.0.0 OK: queued as 4Q2zYx3KJvz9sWQ",
        "* CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=LOGIN LOGINDISABLED",
        "select failed: [NONEXISTENT] Mailbox doesn't exist: INBOX/Ünïcode",
        # smtplib's own words, and a server's: "auth" followed by words, not a mechanism
        "SMTP AUTH extension not supported by server.",
        "530 5.7.0 Must issue a STARTTLS command first; auth is not allowed here",
        "503 5.5.1 Error: authentication not enabled",
    ],
)
def test_ordinary_replies_are_left_as_they_are(reply: str) -> None:
    """Verify replies that hold no credentials pass unchanged."""
    assert redact(reply, USER, "Zebra42-quonk✓") == reply


@_FAST
@given(text=_text)
def test_text_without_credentials_or_commands_is_unchanged(text: str) -> None:
    """Verify redaction changes nothing in text that holds no credentials or commands."""
    password = "Zebra42-quonk✓ quixotic"
    low = text.lower()
    assume("auth" not in low and "login" not in low)
    assume(not any(r.lower() in low for r in plain_runs(password)))
    assert redact(text, USER, password) == text


@pytest.mark.parametrize("cut", [5, 12, 30])
def test_an_auth_argument_cut_short_on_a_line_of_its_own_is_redacted(cut: int) -> None:
    """Verify the start of an AUTH PLAIN argument (NUL user NUL password) or of an AUTH
    LOGIN password line, echoed cut short on a line of its own, is removed: its end held
    the password's first characters ("\\0sam@example.org\\0corre")."""
    user, password = "sam@example.org", "correct horse battery"
    for plain in (b"\0" + user.encode() + b"\0" + password.encode(), password.encode()):
        start = base64.b64encode(plain).decode()[:cut]
        out = redact(f"500 5.5.2 unrecognised command: AUTH PLAIN\n{start}", user, password)
        assert start not in out and MARK in out, out
    assert redact("250 SMTP AUTH extension not supported", user, password).endswith("supported")


def test_a_very_short_password_is_redacted_only_as_a_word_of_its_own() -> None:
    """Verify a one-letter password does not cut the server's words ("e[redacted]tension"),
    and is still removed where it stands alone."""
    out = redact("SMTP AUTH extension not supported; password 'x' refused", "u", "x")
    assert out == f"SMTP AUTH extension not supported; password '{MARK}' refused"


@_FAST
@given(password=_passwords, form=st.sampled_from(["quote", "quote-slash", "quote_plus"]))
def test_password_percent_encoded_as_a_form_carries_it_is_redacted(
    password: str, form: str
) -> None:
    """Verify the password as a posted form or a URL carries it is removed: an OAuth2 token
    endpoint echoed "refresh_token=1%2F%2F0g..." in its error (a sign-in walkthrough)."""
    from urllib.parse import quote, quote_plus

    encoded = {
        "quote": quote(password, safe=""),
        "quote-slash": quote(password),
        "quote_plus": quote_plus(password),
    }[form]
    out = redact(f"invalid_grant (client_secret={encoded}&grant_type=refresh_token)", "", password)
    assert_gone(out, encoded)
    assert "grant_type=refresh_token" in out
