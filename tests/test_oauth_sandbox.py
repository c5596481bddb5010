"""The test session's OAuth2 server, and the sandbox servers that check tokens against it."""

from __future__ import annotations

import base64
import hashlib
import json
import smtplib
import ssl
import urllib.parse
import urllib.request

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from mailer.sandbox.oauth import DEVICE_GRANT, OAuthServer, browser_sign_in

from .conftest import SENDER, USERS, Stack

pytestmark = pytest.mark.integration


def _post(url: str, form: dict[str, str]) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode())
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _imap_xoauth2(stack: Stack, user: str, token: str) -> None:
    ctx = ssl.create_default_context(cafile=stack.info.ca_file)
    with IMAPClient(
        stack.info.host, port=stack.info.imaps_port, ssl=True, ssl_context=ctx, timeout=10
    ) as c:
        c.oauth2_login(user, token)


def test_device_grant_issues_tokens_after_browser_approval(oauth_server: OAuthServer) -> None:
    """The device code is pending until approved through the activation page, then redeemed."""
    url = oauth_server.url
    status, dev = _post(f"{url}/device", {"client_id": "mailer-test", "scope": "imap smtp"})
    assert status == 200
    form = {
        "grant_type": DEVICE_GRANT,
        "device_code": dev["device_code"],
        "client_id": "mailer-test",
    }
    status, pending = _post(f"{url}/token", form)
    assert (status, pending["error"]) == (400, "authorization_pending")
    page = browser_sign_in(dev["verification_uri_complete"], SENDER, USERS[SENDER])
    assert "approved" in page
    status, tokens = _post(f"{url}/token", form)
    assert status == 200 and tokens["scope"] == "imap smtp"
    info = oauth_server.introspect(tokens["access_token"])
    assert info["active"] is True and info["username"] == SENDER


def test_pkce_code_needs_the_matching_verifier(oauth_server: OAuthServer) -> None:
    """An authorization code is redeemed only with the verifier of its S256 challenge, once."""
    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    redirect = "http://127.0.0.1:9/cb"
    q = {
        "response_type": "code",
        "client_id": "mailer-test",
        "redirect_uri": redirect,
        "scope": "imap",
        "state": "s1",
        "code_challenge": challenge.decode().rstrip("="),
        "code_challenge_method": "S256",
    }
    where = browser_sign_in(
        f"{oauth_server.url}/authorize?{urllib.parse.urlencode(q)}", SENDER, USERS[SENDER]
    )
    got = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(where).query))
    assert where.startswith(redirect) and got["state"] == "s1"
    form = {
        "grant_type": "authorization_code",
        "code": got["code"],
        "client_id": "mailer-test",
        "redirect_uri": redirect,
        "code_verifier": "w" * 50,
    }
    assert _post(f"{oauth_server.url}/token", form)[1]["error"] == "invalid_grant"
    where = browser_sign_in(
        f"{oauth_server.url}/authorize?{urllib.parse.urlencode(q)}", SENDER, USERS[SENDER]
    )
    form["code"] = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(where).query))["code"]
    form["code_verifier"] = verifier
    assert _post(f"{oauth_server.url}/token", form)[0] == 200
    assert _post(f"{oauth_server.url}/token", form)[1]["error"] == "invalid_grant"  # used


def test_dovecot_takes_a_valid_token_and_refuses_others(
    stack: Stack, oauth_server: OAuthServer
) -> None:
    """Real Dovecot signs in with XOAUTH2 only for the token's own user, scope and lifetime."""
    good = oauth_server.issue(SENDER, "imap smtp")
    _imap_xoauth2(stack, SENDER, good["access_token"])
    with pytest.raises(LoginError):
        _imap_xoauth2(stack, "zoe@sandbox.test", good["access_token"])  # another user's
    with pytest.raises(LoginError):
        _imap_xoauth2(stack, SENDER, oauth_server.issue(SENDER, "smtp")["access_token"])
    oauth_server.revoke_user(SENDER)
    with pytest.raises(LoginError):
        _imap_xoauth2(stack, SENDER, good["access_token"])


def test_dovecot_never_takes_a_password_as_a_token(stack: Stack) -> None:
    """A failed token is not compared with the password ("auth=Bearer <password>")."""
    with pytest.raises(LoginError):
        _imap_xoauth2(stack, SENDER, USERS[SENDER])


def test_sandbox_smtp_checks_xoauth2_against_introspection(
    stack: Stack, oauth_server: OAuthServer
) -> None:
    """AUTH XOAUTH2 succeeds with an smtp-scoped token; a token without it gets 535 after the
    RFC 7628 challenge."""
    ctx = ssl.create_default_context(cafile=stack.info.ca_file)

    def login(token: str) -> tuple[int, bytes]:
        with smtplib.SMTP(stack.info.host, stack.info.smtp_port, timeout=10) as s:
            s.starttls(context=ctx)
            s.ehlo()
            line = f"user={SENDER}\x01auth=Bearer {token}\x01\x01"
            try:
                return s.auth("XOAUTH2", lambda c=None: line if c is None else "")
            except smtplib.SMTPAuthenticationError as exc:
                return exc.smtp_code, exc.smtp_error

    assert login(oauth_server.issue(SENDER, "smtp")["access_token"])[0] == 235
    code, text = login(oauth_server.issue(SENDER, "imap")["access_token"])
    assert code == 535 and b"scope" in text
