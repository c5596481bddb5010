"""The OAuth2 flows in mailer.adapters.oauth against the local authorization server over HTTP."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mailer.adapters import oauth
from mailer.adapters.config import OAuth2Settings
from mailer.adapters.tokens import TokenSet, TokenStore
from mailer.errors import SignInError
from mailer.sandbox.oauth import OAuthServer, browser_sign_in

USER, PASSWORD = "flow@sandbox.test", "flow-pw"


@pytest.fixture
def server() -> OAuthServer:
    s = OAuthServer(users=lambda: {USER: PASSWORD})
    s.start()
    yield s
    s.stop()


def cfg(server: Any, flow: str = "pkce") -> OAuth2Settings:
    """The local server's settings (``server``: anything with its ``url``)."""
    return OAuth2Settings(
        provider="generic",
        flow=flow,
        authorization_url=f"{server.url}/authorize",
        device_authorization_url=f"{server.url}/device",
        token_url=f"{server.url}/token",
        client_id="mailer-test",
        scopes=("imap", "smtp"),
        mechanism="xoauth2",
        auth_params=(("access_type", "offline"),),
    )


def test_pkce_login_through_the_loopback_redirect(server: OAuthServer) -> None:
    """The listener is up before the browser opens; the browser's redirect lands on it."""
    landed: list[str] = []

    def browser(url: str) -> bool:
        assert "access_type=offline" in url and "code_challenge_method=S256" in url

        def visit() -> None:
            where = browser_sign_in(url, USER, PASSWORD)
            import urllib.request

            with urllib.request.urlopen(where, timeout=10) as page:  # follow the redirect
                landed.append(page.read().decode())

        visitor = threading.Thread(target=visit, daemon=True)  # detaches, as a browser does
        visitors.append(visitor)
        visitor.start()
        return True

    visitors: list[threading.Thread] = []
    tokens = oauth.pkce_login(
        cfg(server), USER, lambda _: None, open_browser=browser, read_line=lambda: ""
    )
    assert server.introspect(tokens.access_token)["username"] == USER
    assert tokens.refresh_token and tokens.scopes == ("imap", "smtp")
    # The browser reads its page after the login has its code: wait for it to finish.
    for visitor in visitors:
        visitor.join(timeout=10)
    assert landed and "Signed in" in landed[0]


def test_pkce_login_accepts_a_pasted_redirect_without_a_browser(server: OAuthServer) -> None:
    """No browser: the URL is printed, the user signs in elsewhere and pastes the address."""
    said: list[str] = []

    def paste() -> str:
        url = next(line for line in "\n".join(said).split() if "/authorize?" in line)
        return browser_sign_in(url, USER, PASSWORD)

    tokens = oauth.pkce_login(
        cfg(server), USER, said.append, open_browser=lambda _: False, read_line=paste
    )
    assert server.introspect(tokens.access_token)["active"] is True


def test_pasted_redirect_of_another_sign_in_is_refused() -> None:
    """A redirect whose state differs (another attempt, or forged) is not accepted."""
    with pytest.raises(SignInError, match="state differs"):
        oauth.code_from_redirect("http://127.0.0.1:1/?code=abc&state=other", "mine")
    with pytest.raises(SignInError, match="refused: access_denied"):
        oauth.code_from_redirect("http://127.0.0.1:1/?error=access_denied&state=s", "s")


def test_device_login_polls_until_approved_and_slows_down(server: OAuthServer) -> None:
    """Pending polls continue; slow_down adds 5 s to the interval (RFC 8628 3.5)."""
    waits: list[float] = []
    shown: list[str] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:  # the user approves after a while
            url, code = shown[0].split("open ")[1].split(" and enter the code ")
            browser_sign_in(f"{url}?user_code={code}", USER, PASSWORD)

    server.device_interval = 100.0  # polls after the first come "too fast"
    tokens = oauth.device_login(cfg(server, "device"), USER, shown.append, sleep=sleep)
    assert server.introspect(tokens.access_token)["username"] == USER
    assert waits == [100.0, 100.0, 105.0]  # pending first, then too fast: slowed down


def test_refresh_happens_before_expiry_and_keeps_the_refresh_token(
    server: OAuthServer, tmp_path: Path
) -> None:
    """A token within its last quarter (or minute) is refreshed; a fresh one is reused."""
    c = cfg(server)
    issued = server.issue(USER, "imap smtp")
    now = 1_000_000.0
    tokens = oauth.tokens_from(issued, c, USER, now)
    assert not oauth.needs_refresh(tokens, now + 3600 - 61)
    assert oauth.needs_refresh(tokens, now + 3600 - 59)
    short = oauth.tokens_from({**issued, "expires_in": 4}, c, USER, now)
    assert not oauth.needs_refresh(short, now + 2.9) and oauth.needs_refresh(short, now + 3.1)
    fresh = oauth.refresh(c, tokens, lambda: now)
    assert fresh.access_token != tokens.access_token
    assert fresh.refresh_token == tokens.refresh_token


def test_revoked_refresh_names_the_account_and_the_command(server: OAuthServer) -> None:
    """The one line: "account anna: sign-in expired; run `mailer auth login --account anna`"."""
    c = OAuth2Settings(**{**cfg(server).__dict__, "account": "anna"})
    tokens = oauth.tokens_from(server.issue(USER, "imap"), c, USER, 0.0)
    server.revoke_user(USER)
    with pytest.raises(SignInError) as info:
        oauth.refresh(c, tokens, lambda: 0.0)
    assert (
        str(info.value) == "account anna: sign-in expired; run `mailer auth login --account anna`"
    )


def test_a_refusal_that_echoes_the_posted_form_shows_no_secret_in_any_encoding() -> None:
    """Verify a token endpoint's error that quotes the form it was sent (percent-encoded)
    names neither the refresh token nor the client secret: Google's refresh tokens hold "/",
    and the encoded form got through into errors and the state store (a walkthrough)."""
    from urllib.parse import urlencode

    token, secret = "1//0gREFRESH+TOK/SECRET=6666", "Cli/Secret+ECHO=777"
    nowhere = SimpleNamespace(url="http://127.0.0.1:1")  # (no request is made)
    c = OAuth2Settings(**{**cfg(nowhere, "device").__dict__, "client_secret": secret})
    body = urlencode({"client_secret": secret, "refresh_token": token, "grant_type": "x"})
    error = oauth._refused(c, "token refresh", {"error": body, "error_description": body}, token)
    shown = str(error)
    assert "grant_type=x" in shown  # the rest of the server's words are kept
    for s in (token, secret):
        for form in (s, urlencode({"k": s})[2:]):
            assert form.lower() not in shown.lower(), shown


def test_a_refused_client_names_the_client_settings_and_the_step_s_own_address(
    server: OAuthServer,
) -> None:
    """Verify a device sign-in refused as invalid_client names the device endpoint (it named
    the token endpoint) and what to check; a refresh refused so is not "sign-in expired",
    which sent the user to log in again, to fail the same way (a sign-in walkthrough)."""
    bad = OAuth2Settings(**{**cfg(server, "device").__dict__, "client_id": "nobody"})
    with pytest.raises(SignInError) as info:
        oauth.device_login(bad, USER, lambda _: None, sleep=lambda _: None)
    assert str(info.value).startswith(f"{server.url}/device: device authorization refused")
    assert "MAILER_OAUTH2_CLIENT_SECRET" in str(info.value.hint)
    tokens = oauth.tokens_from(server.issue(USER, "imap"), cfg(server), USER, 0.0)
    with pytest.raises(SignInError) as info:
        oauth.refresh(bad, tokens, lambda: 0.0)
    assert "sign-in expired" not in str(info.value) and "invalid_client" in str(info.value)


def test_token_store_file_is_private_and_hides_tokens_in_repr(tmp_path: Path) -> None:
    """Without a keyring: a 0600 file in a 0700 directory; repr() never shows a token."""
    store = TokenStore(tmp_path / ".mailer", keyring=None)
    t = TokenSet("u", "c", "http://127.0.0.1/t", ("imap",), 5.0, 5.0, "ACCESS-x", "REFRESH-y")
    store.save("anna", t)
    assert (store.path("anna").stat().st_mode & 0o777) == 0o600
    assert (store.directory.stat().st_mode & 0o777) == 0o700
    assert store.load("anna") == t
    assert "ACCESS-x" not in repr(t) and "REFRESH-y" not in repr(t)
    assert store.delete("anna") and store.load("anna") is None


def test_token_store_uses_the_keyring_when_there_is_one(tmp_path: Path) -> None:
    """With a keyring backend the tokens go there, and no file is written."""

    class MemoryKeyring:
        def __init__(self) -> None:
            self.items: dict[tuple[str, str], str] = {}

        def get_password(self, service: str, key: str) -> str | None:
            return self.items.get((service, key))

        def set_password(self, service: str, key: str, value: str) -> None:
            self.items[(service, key)] = value

        def delete_password(self, service: str, key: str) -> None:
            del self.items[(service, key)]

    ring = MemoryKeyring()
    store = TokenStore(tmp_path / ".mailer", keyring=ring)
    t = TokenSet("u", "c", "http://127.0.0.1/t", ("imap",), 5.0, 5.0, "A", "R")
    store.save("", t)
    assert store.load("") == t and len(ring.items) == 1
    assert not store.path("").exists() and store.where == "the system keyring"


def test_sasl_strings_carry_the_user_and_token() -> None:
    """XOAUTH2 and OAUTHBEARER (with the authzid Dovecot requires) as the RFCs lay them out."""
    assert oauth.xoauth2("a@x", "T") == "user=a@x\x01auth=Bearer T\x01\x01"
    assert oauth.oauthbearer("a,b=@x", "T") == "n,a=a=2Cb=3D@x,\x01auth=Bearer T\x01\x01"


def test_idle_watcher_log_line_never_quotes_the_access_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An IMAP error quoting the OAuth2 token, lost from the IDLE connection, is cleaned."""
    import threading

    from imapclient.exceptions import IMAPClientError

    from mailer.adapters.config import ImapSettings
    from mailer.model.redact import redactor
    from mailer.services.daemon import IdleWatcher

    token = "ya29.A0ARrdaM-secret-token-value"
    stop = threading.Event()

    class Box:
        def __init__(self, settings: ImapSettings) -> None:
            self._scrub = redactor(settings.username, token)

        def connect(self) -> None:
            self.client = self

        def idle_capable(self) -> bool:
            stop.set()  # one round only
            raise IMAPClientError(f"BAD auth=Bearer {token} was not expected")

        def close(self) -> None:
            pass

    settings = ImapSettings("h", 993, "ssl", "u@x", None, 5.0, auth="oauth2")
    with caplog.at_level("WARNING", logger="mailer.services.daemon"):
        IdleWatcher(settings, lambda: None, stop, mailbox=Box).run()
    assert "IMAP watch connection lost" in caplog.text and token not in caplog.text


def test_a_closed_or_empty_stdin_is_said_when_the_redirect_is_awaited(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Verify `oauth login --no-browser` waiting for the pasted redirect says that nothing
    was pasted when stdin is closed (sys.stdin is None) or ends, instead of an internal
    error or a redirect "of another sign-in"."""
    import io
    import sys

    from mailer.cli.oauth import _read_redirect
    from mailer.errors import InputError

    for stdin in (None, io.StringIO(""), io.StringIO("\n")):
        monkeypatch.setattr(sys, "stdin", stdin)
        with pytest.raises(InputError, match="no redirect address was pasted"):
            _read_redirect()
    monkeypatch.setattr(sys, "stdin", io.StringIO("http://127.0.0.1/cb?code=x&state=y\n"))
    assert _read_redirect().startswith("http://127.0.0.1/cb?code=x")
