"""The envelope's addresses are quoted as smtplib.quoteaddr quotes them: a plain address
by a fast path that skips its parser, anything else by smtplib itself. And what connecting
imports: yagmail, without running keyring's import."""

from __future__ import annotations

import smtplib
import sys

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mailer.adapters.sender import _PLAIN_ADDRESS, _quoted, _yagmail


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


def test_importing_yagmail_leaves_keyring_unloaded_until_it_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """yagmail imports keyring for a password it is never asked for; a send must not pay
    for loading keyring's backends, and keyring still works in full when it is used."""
    for name in [n for n in sys.modules if n.split(".")[0] in ("keyring", "yagmail")]:
        monkeypatch.delitem(sys.modules, name)
    yagmail = _yagmail()
    assert yagmail.SMTP is not None
    assert not [n for n in sys.modules if n.split(".")[0] == "keyring"]
    import keyring  # later imports of it are as ever

    assert callable(keyring.get_keyring) and "keyring.core" in sys.modules
