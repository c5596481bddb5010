"""The envelope's addresses are quoted as smtplib.quoteaddr quotes them: a plain address
by a fast path that skips its parser, anything else by smtplib itself."""

from __future__ import annotations

import smtplib

from hypothesis import example, given
from hypothesis import strategies as st

from mailer.adapters.sender import _PLAIN_ADDRESS, _quoted


@given(st.emails() | st.from_regex(_PLAIN_ADDRESS, fullmatch=True) | st.text(max_size=40))
@example("you@sandbox.test")
@example("first.last+tag@sub.example.org")
@example("")
@example("<already@quoted.test>")
@example("Name <name@example.com>")
@example('"odd local"@example.com')
@example("josé@example.com")
@example("a@b@c")
@example("a..b@.c.")
@example(".@-")
def test_an_envelope_address_is_quoted_as_smtplib_quotes_it(address: str) -> None:
    assert _quoted(address) == smtplib.quoteaddr(address)
