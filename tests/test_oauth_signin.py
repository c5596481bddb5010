"""OAuth2 sign-in over the wire: the local OAuth2 server, real Dovecot and the SMTP server,
and mailer run as a user runs it. Synchronisation is by polling, never by fixed sleeps."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from mailer.sandbox.oauth import OAuthServer, browser_sign_in

from .conftest import NOW, Pair, run_cli
from .test_daemon import Daemon, wait_for
from .test_followup import at, check_at, send, status

pytestmark = pytest.mark.integration


def oauth2_config(pair: Pair, server: OAuthServer, scopes: str = '"imap", "smtp"') -> None:
    """The pair's workspace, signing in with OAuth2 against the local server; no password."""
    path = pair.ws / "config" / "mailer.toml"
    path.write_text(
        'auth = "oauth2"\n'
        + path.read_text(encoding="utf-8")
        + f"""
[oauth2]
flow = "device"
device_authorization_url = "{server.url}/device"
token_url = "{server.url}/token"
client_id = "mailer-test"
scopes = [{scopes}]
""",
        encoding="utf-8",
    )
    (pair.ws / ".env").write_text("", encoding="utf-8")  # no password anywhere


def login(pair: Pair, as_user: str | None = None) -> str:
    """``mailer auth login`` in its own process; approves its code in the 'browser' as
    ``as_user`` (the candidate by default). Returns everything it printed."""
    user = as_user or pair.candidate
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailer.cli.main", "auth", "login"],
        cwd=pair.ws,
        env={**env, "MAILER_NOW": NOW, "MAILER_TOKEN_STORE": "file"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    m = re.search(r"open (\S+) and enter the code (\w+)", first)
    assert m, first
    page = browser_sign_in(f"{m[1]}?user_code={m[2]}", user, pair.stack.info.users[user.lower()])
    assert "approved" in page
    rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, first + rest
    return first + rest


@pytest.fixture
def oauth_pair(pair: Pair, oauth_server: OAuthServer) -> Iterator[Pair]:
    oauth2_config(pair, oauth_server)
    lifetime = oauth_server.access_lifetime
    yield pair
    oauth_server.access_lifetime = lifetime


def cli(pair: Pair, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli(pair.ws, *args, env={"MAILER_TOKEN_STORE": "file", **env})


def test_send_sent_copy_watch_and_follow_up_all_with_oauth2(oauth_pair: Pair) -> None:
    """With no password anywhere: the apology and its Sent copy, a watch pass, one follow-up."""
    pair = oauth_pair
    login(pair)
    thread, root = send(pair)
    assert len(pair.stack.messages_with_id(pair.candidate, root, "Sent")) == 1
    assert len(pair.stack.messages_with_id(pair.interviewer, root)) == 1
    out = check_at(pair, timedelta(seconds=30))  # a watch pass: not due yet
    assert pair.follow_ups_received(root) == [], out
    out = check_at(pair, timedelta(minutes=5))
    assert "1 follow-up(s) sent" in out
    assert len(pair.follow_ups_received(root)) == 1
    assert status(pair, thread)["follow_ups_sent"] == 1
    logins = [e for e in pair.stack.log_since(0) if e.get("user") == pair.candidate.lower()]
    assert logins and {e["mechanism"] for e in logins} == {"XOAUTH2"}


def test_access_token_expiring_during_a_daemon_run_is_refreshed(
    oauth_pair: Pair, oauth_server: OAuthServer
) -> None:
    """Access tokens living 2 s: the daemon refreshes before connecting; nothing fails."""
    pair = oauth_pair
    oauth_server.access_lifetime = 2
    login(pair)
    thread, root = send(pair)
    refreshes = oauth_server.token_requests.count("refresh_token")
    d = Daemon(pair.ws, at(timedelta(seconds=55)), {"MAILER_TOKEN_STORE": "file"})
    try:
        wait_for(lambda: len(pair.follow_ups_received(root)) == 1, "the follow-up", 60)
        wait_for(lambda: status(pair, thread)["follow_ups_sent"] == 1, "the follow-up recorded")
    finally:
        d.stop()
    assert oauth_server.token_requests.count("refresh_token") > refreshes
    assert "fail" not in d.text().lower() and "sign-in expired" not in d.text()


def test_revoked_refresh_token_gives_one_line_and_leaves_the_follow_up_queued(
    oauth_pair: Pair, oauth_server: OAuthServer
) -> None:
    """Consent revoked: one line naming the fix; the follow-up waits, then goes after login."""
    pair = oauth_pair
    oauth_server.access_lifetime = 1  # the stored access token is stale by the check
    login(pair)
    thread, root = send(pair)
    assert oauth_server.revoke_user(pair.candidate) >= 1
    r = cli(pair, "check", MAILER_NOW=at(timedelta(minutes=5)))
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "Traceback" not in out
    assert "the main account: sign-in expired; run `mailer auth login`" in out
    assert sum("sign-in expired" in line for line in out.splitlines()) == 1
    assert pair.follow_ups_received(root) == []
    assert status(pair, thread)["state"] != "failed"
    login(pair)
    out = check_at(pair, timedelta(minutes=6))
    assert "1 follow-up(s) sent" in out
    assert len(pair.follow_ups_received(root)) == 1


def test_token_for_another_user_is_refused_clearly(oauth_pair: Pair) -> None:
    """Signed in as someone else in the browser: both servers refuse, and doctor says why."""
    pair = oauth_pair
    login(pair, as_user=pair.alternate)
    r = cli(pair, "doctor")
    assert r.returncode != 0
    assert f"the OAuth2 token for '{pair.candidate}' was refused" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr


def test_token_without_the_servers_scope_is_refused_clearly(
    pair: Pair, oauth_server: OAuthServer
) -> None:
    """A token lacking the SMTP scope: the SMTP refusal names the scope the server wants."""
    oauth2_config(pair, oauth_server, scopes='"imap"')
    login(pair)
    r = cli(pair, "doctor")
    assert r.returncode != 0
    assert "the server wants the scope 'smtp'" in r.stdout
    assert re.search(r"OK +IMAP", r.stdout)


def test_no_token_in_any_output_log_or_state_and_the_file_is_0600(
    oauth_pair: Pair, oauth_server: OAuthServer
) -> None:
    """Every token issued to the candidate is absent from outputs, logs and the state DB."""
    pair = oauth_pair
    oauth_server.access_lifetime = 1
    outputs = [login(pair)]
    thread, _ = send(pair)
    for args in (["auth", "status"], ["--debug", "doctor"], ["status", str(thread)], ["check"]):
        r = cli(pair, *args)
        outputs.append(r.stdout + r.stderr)
    assert "OK    sign-in" in outputs[2]
    oauth_server.revoke_user(pair.candidate)
    r = cli(pair, "--debug", "check")
    outputs.append(r.stdout + r.stderr)
    assert "sign-in expired" in outputs[-1]
    tokens = [t for t, a in oauth_server._access.items() if a.grant.user == pair.candidate]
    tokens += [t for t, g in oauth_server._refresh.items() if g.user == pair.candidate]
    assert len(tokens) >= 3
    info = pair.stack.info
    files = [pair.stack.info.smtp_log, Path(info.dir) / "dovecot.log"]
    files += [
        p for p in (pair.ws / ".mailer").rglob("*") if p.is_file() and "oauth2" not in p.parts
    ]
    blobs = [o.encode() for o in outputs] + [f.read_bytes() for f in files]
    for token in tokens:
        assert not any(token.encode() in blob for blob in blobs)
    token_file = pair.ws / ".mailer" / "oauth2" / "-.json"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
    assert "signed in as" in outputs[1] and "expires" in outputs[1]


def test_doctor_explains_microsoft_smtp_auth_switched_off(oauth_pair: Pair) -> None:
    """Microsoft's 535 5.7.139 is explained in those words: SMTP AUTH is switched off."""
    pair = oauth_pair
    login(pair)
    pair.stack.set_faults(
        # Twice: a refused token is refreshed once and tried again.
        auth=["535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled"] * 2
    )
    r = cli(pair, "doctor")
    assert r.returncode != 0
    assert "OAuth2 (generic, XOAUTH2); token refreshed" in r.stdout
    assert "535 5.7.139" in r.stdout
    assert "SMTP AUTH is switched off for this Microsoft 365 tenant or mailbox" in r.stdout


def test_token_echoed_by_the_smtp_server_is_redacted(oauth_pair: Pair) -> None:
    """A refusal quoting the access token, raw or inside the base64 XOAUTH2 line, is cleaned."""
    import base64
    import json

    pair = oauth_pair
    login(pair)
    token = json.loads((pair.ws / ".mailer" / "oauth2" / "-.json").read_text())["access_token"]
    line = base64.b64encode(f"user={pair.candidate}\x01auth=Bearer {token}\x01\x01".encode())
    # Twice: a refused token is refreshed once and tried again.
    pair.stack.set_faults(auth=[f"535 5.7.8 you sent {line.decode()} ({token})"] * 2)
    r = cli(
        pair,
        "send",
        "--situation",
        "illness",
        "--to",
        pair.interviewer,
        "--interviewer",
        "Ana",
        "--company",
        "Echo",
        "--role",
        "Eng",
        "--interview",
        "2026-11-25 10:00",
        "--yes",
    )
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "535 5.7.8" in out and "[redacted]" in out
    assert token not in out and line.decode()[20:60] not in out
