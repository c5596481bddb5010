"""Passwords: never shown, logged or stored, even when a server echoes them; and non-ASCII
passwords log in (AUTH PLAIN in UTF-8) over SMTP and IMAP against the real servers.

The echo tests use the tiny hostile servers of :mod:`tests.hostile`; everything the tool
wrote (stdout, stderr, the state store's files, the daemon log) is searched for the password,
its base64 forms, its ASCII runs (which survive any mangling of the rest) and every argument
of the login as the server received it.
"""

from __future__ import annotations

import base64
import itertools
import re
import sqlite3
import textwrap
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

import pytest

from mailer.model.redact import MARK
from mailer.sandbox.stack import StackInfo

from .conftest import INTERVIEWER, SENDER, Pair, Stack, run_cli, send_args, write_config
from .hostile import HOST, EchoImap, EchoSmtp
from .test_daemon import Daemon
from .test_followup import at, send

pytestmark = pytest.mark.integration

ASCII_SECRET = 'Zebra42-"quonk\\ quixotic Fjord'
UTF8_SECRET = 'Zebra42-"Ŝquonk✓\\ quixotic Fjörd'
_ids = itertools.count(1)


def needles(user: str, password: str, echoed: Iterable[str]) -> set[str]:
    """Every form of the secret that must appear nowhere."""
    out = {password, *re.findall(r"[A-Za-z0-9]{5,}", password), *echoed}
    for secret in (password, f"\0{user}\0{password}", user):
        out.add(base64.b64encode(secret.encode()).decode().rstrip("="))
    return {n for n in out if n.strip()}


def assert_no_leak(haystack: str, user: str, password: str, echoed: Iterable[str]) -> None:
    echoed = list(echoed)
    assert echoed, "the server saw no login: the test proves nothing"
    low = haystack.lower()
    for needle in needles(user, password, echoed):
        at = low.find(needle.lower())
        assert at < 0, f"{needle!r} leaked: ...{haystack[max(0, at - 200) : at + 200]}..."


def stored(ws: Path) -> str:
    """The whole state store: a dump of every table and the raw bytes of its files."""
    db = ws / ".mailer" / "state.db"
    if not db.exists():
        return ""
    con = sqlite3.connect(db)
    try:
        dump = "\n".join(con.iterdump())
    finally:
        con.close()
    raw = b"".join(p.read_bytes() for p in db.parent.glob("state.db*"))
    return dump + raw.decode("utf-8", "replace")


def server_block(name: str, port: int, security: str, info: StackInfo) -> str:
    ca = f'ca_file = "{info.ca_file}"' if security != "plain" else ""
    return f"""
[{name}]
host = "{HOST}"
port = {port}
security = "{security}"
timeout = 10
{ca}
"""


def configure(
    ws: Path,
    info: StackInfo,
    *,
    smtp: tuple[int, str],
    imap: tuple[int, str],
    smtp_password: str,
    imap_password: str | None = None,
    sender: str = SENDER,
    extra: str = "",
) -> Path:
    """A workspace whose servers may be hostile ones (plain text to loopback)."""
    (ws / "config").mkdir(parents=True, exist_ok=True)
    (ws / "config" / "mailer.toml").write_text(
        textwrap.dedent(f"""\
        [sender]
        name = "Sam Candidate"
        address = "{sender}"
        timezone = "Europe/London"

        [addresses]
        allow_test_domains = true
        """)
        + server_block("smtp", *smtp, info)
        + server_block("imap", *imap, info)
        + extra,
        encoding="utf-8",
    )
    env = f"MAILER_SMTP_PASSWORD={smtp_password}\n"
    if imap_password is not None:
        env += f"MAILER_IMAP_PASSWORD={imap_password}\n"
    (ws / ".env").write_text(env, encoding="utf-8")
    (ws / ".env").chmod(0o600)
    return ws


def real_imap(stack: Stack) -> tuple[int, str]:
    return stack.info.imaps_port, "ssl"


@pytest.mark.parametrize(
    ("mechanisms", "password"),
    [("PLAIN", ASCII_SECRET), ("LOGIN", ASCII_SECRET), ("PLAIN LOGIN", UTF8_SECRET)],
)
def test_smtp_login_refusal_echoing_credentials_leaks_nothing(
    stack: Stack, tmp_path: Path, mechanisms: str, password: str
) -> None:
    """Verify a 535 that repeats the AUTH lines and the decoded password is redacted from
    `send` and `doctor` output and from the stored error."""
    with EchoSmtp(mechanisms) as smtp:
        ws = configure(
            tmp_path / "ws",
            stack.info,
            smtp=(smtp.port, "plain"),
            imap=real_imap(stack),
            smtp_password=password,
            imap_password=stack.info.users[SENDER],
        )
        sent = run_cli(ws, *send_args(company="Echo Corp"))
        doctor = run_cli(ws, "doctor")
    everything = sent.stdout + sent.stderr + doctor.stdout + doctor.stderr + stored(ws)
    assert_no_leak(everything, SENDER, password, smtp.arguments)
    assert sent.returncode == 5 and doctor.returncode != 0
    assert f"SMTP {HOST}:{smtp.port}: authentication failed" in sent.stderr
    assert "FAIL  SMTP" in doctor.stdout and "OK    IMAP" in doctor.stdout
    # The reply is still shown, with the secret cut out.
    assert MARK in sent.stderr and MARK in doctor.stdout and MARK in stored(ws)


@pytest.mark.parametrize("password", [ASCII_SECRET, UTF8_SECRET])
def test_smtp_later_reply_echoing_credentials_leaks_nothing(
    stack: Stack, tmp_path: Path, password: str
) -> None:
    """Verify a server that accepts the login and then repeats it in its MAIL FROM refusal
    has it redacted from `send` output and from messages.error."""
    with EchoSmtp("PLAIN", accept=True) as smtp:
        ws = configure(
            tmp_path / "ws",
            stack.info,
            smtp=(smtp.port, "plain"),
            imap=real_imap(stack),
            smtp_password=password,
            imap_password=stack.info.users[SENDER],
        )
        sent = run_cli(ws, *send_args(company="Echo Later"))
    assert_no_leak(sent.stdout + sent.stderr + stored(ws), SENDER, password, smtp.arguments)
    assert sent.returncode == 5, sent.stderr
    assert "MAIL FROM refused with 550" in sent.stderr and smtp.saw(b"MAIL") == 1
    assert MARK in sent.stderr and MARK in stored(ws)


@pytest.mark.parametrize(
    ("accept", "password"),
    [(False, ASCII_SECRET), (False, UTF8_SECRET), (True, ASCII_SECRET), (True, UTF8_SECRET)],
)
def test_imap_replies_echoing_credentials_leak_nothing_from_doctor_and_check(
    stack: Stack, tmp_path: Path, accept: bool, password: str
) -> None:
    """Verify an IMAP server that repeats LOGIN/AUTHENTICATE in its NO (to the login, or to
    every later command) has it redacted from `doctor` and `check` output and the store."""
    with EchoImap(accept=accept) as imap:
        ws = configure(
            tmp_path / "ws",
            stack.info,
            smtp=(stack.info.smtp_plain_port, "plain"),
            imap=(imap.port, "plain"),
            smtp_password=stack.info.users[SENDER],
            imap_password=password,
        )
        doctor = run_cli(ws, "doctor")
        check = run_cli(ws, "check")
    everything = doctor.stdout + doctor.stderr + check.stdout + check.stderr + stored(ws)
    assert_no_leak(everything, SENDER, password, imap.arguments)
    assert doctor.returncode != 0 and check.returncode == 5
    assert "OK    SMTP" in doctor.stdout and "FAIL  IMAP" in doctor.stdout
    assert f"IMAP {HOST}:{imap.port}" in doctor.stdout
    assert "cannot look for replies" in check.stderr
    assert MARK in doctor.stdout and MARK in check.stderr


@pytest.mark.parametrize("password", [ASCII_SECRET, UTF8_SECRET])
def test_check_follow_up_refusal_echoing_credentials_leaks_nothing(
    pair: Pair, password: str
) -> None:
    """Verify a follow-up refused by a server that repeats the login is recorded (message
    error, thread event) and reported by `check` without the password."""
    thread, _ = send(pair)
    with EchoSmtp("PLAIN LOGIN", accept=True) as smtp:
        configure(
            pair.ws,
            pair.stack.info,
            smtp=(smtp.port, "plain"),
            imap=real_imap(pair.stack),
            sender=pair.candidate,
            smtp_password=password,
            imap_password=pair.stack.info.users[pair.candidate],
            extra='\n[follow_up]\nwait = "60s"\nwindow = "always"\n',
        )
        check = run_cli(pair.ws, "check", env={"MAILER_NOW": at(timedelta(minutes=5))})
    everything = check.stdout + check.stderr + stored(pair.ws)
    assert_no_leak(everything, pair.candidate, password, smtp.arguments)
    assert check.returncode == 5, check.stdout + check.stderr
    assert f"thread {thread}: follow-up refused" in check.stderr and MARK in check.stderr
    assert "follow_up_error" in stored(pair.ws)


@pytest.mark.parametrize("password", [ASCII_SECRET, UTF8_SECRET])
def test_daemon_log_never_holds_an_echoed_password(pair: Pair, password: str) -> None:
    """Verify the daemon's log (a pass's problems and the IDLE watcher's reconnect lines)
    carries no password when the IMAP server repeats the login in every reply."""
    send(pair)
    with EchoImap(accept=True) as imap:
        configure(
            pair.ws,
            pair.stack.info,
            smtp=(pair.stack.info.smtp_plain_port, "plain"),
            imap=(imap.port, "plain"),
            sender=pair.candidate,
            smtp_password=pair.stack.info.users[pair.candidate],
            imap_password=password,
            extra='\n[watch]\npoll_interval = "1s"\n',
        )
        d = Daemon(pair.ws, at(timedelta(seconds=30)))
        try:
            d.wait_log("IMAP watch connection lost")
            d.wait_log("cannot look for replies")
            d.stop()
        finally:
            if d.proc.poll() is None:
                d.kill()
    assert_no_leak(d.text() + stored(pair.ws), pair.candidate, password, imap.arguments)
    assert MARK in d.text()


# --- non-ASCII passwords -----------------------------------------------------------------


def sent_copies(stack: Stack, user: str, password: str, message_id: str) -> int:
    """How many copies of a message the user's Sent folder holds (logging in with PLAIN)."""
    import ssl

    from imapclient import IMAPClient

    info = stack.info
    ctx = ssl.create_default_context(cafile=info.ca_file)
    with IMAPClient(info.host, port=info.imaps_port, ssl_context=ctx, timeout=10) as c:
        c.plain_login(user, password)
        c.select_folder("Sent", readonly=True)
        return len(c.search(["HEADER", "Message-ID", message_id]))


@pytest.fixture
def utf8_workspace(stack: Stack, tmp_path: Path) -> tuple[Path, str]:
    """A workspace whose sender's password is not ASCII (on the real servers, over TLS)."""
    user = f"utf8pw{next(_ids)}@sandbox.test"
    password = "pässwörd-ü✓"
    stack.stack.add_user(user, password)
    return write_config(tmp_path / "ws", stack.info, sender=user, password=password), user


def test_non_ascii_password_logs_in_to_smtp_and_imap(
    stack: Stack, utf8_workspace: tuple[Path, str]
) -> None:
    """Verify `send` and `doctor` log in with a UTF-8 password over STARTTLS SMTP and IMAPS
    (AUTH PLAIN, RFC 4616): the apology arrives and its copy is filed in Sent."""
    ws, user = utf8_workspace
    mark = stack.log_mark()
    doctor = run_cli(ws, "doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "OK    SMTP: logged in" in doctor.stdout and "OK    IMAP: logged in" in doctor.stdout
    sent = run_cli(ws, *send_args(company="Unicode Ltd"))
    assert sent.returncode == 0, sent.stderr
    message_id = re.search(r"Message-ID (<[^>]+>)", sent.stdout).group(1)
    assert len(stack.messages_with_id(INTERVIEWER, message_id)) == 1
    assert sent_copies(stack, user, "pässwörd-ü✓", message_id) == 1
    logins = [e for e in stack.log_since(mark) if e["event"] == "auth"]
    assert [(e["ok"], e["mechanism"]) for e in logins] == [(True, "PLAIN")] * 2


@pytest.mark.parametrize("command", ["send", "doctor"])
def test_non_ascii_password_without_auth_plain_is_one_clear_line(
    stack: Stack, tmp_path: Path, command: str
) -> None:
    """Verify that when the servers offer no PLAIN (the only mechanism that carries UTF-8),
    a non-ASCII password gives one line naming host and port, not an internal error."""
    with EchoSmtp("LOGIN CRAM-MD5") as smtp, EchoImap("IMAP4rev1 AUTH=LOGIN") as imap:
        ws = configure(
            tmp_path / "ws",
            stack.info,
            smtp=(smtp.port, "plain"),
            imap=(imap.port, "plain"),
            smtp_password=UTF8_SECRET,
        )
        args = send_args(company="No Plain") if command == "send" else ["doctor"]
        r = run_cli(ws, *args)
    assert r.returncode != 0
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    assert smtp.saw(b"AUTH") == 0 and imap.saw(b"LOGIN") == 0
    wanted = [f"SMTP {HOST}:{smtp.port}: the user name or password has non-ASCII characters"]
    if command == "send":
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert r.returncode == 5
        assert wanted[0] in r.stderr
    else:
        wanted.append(f"IMAP {HOST}:{imap.port}: the user name or password has non-ASCII")
        for line in wanted:
            assert any(out.startswith("FAIL") and line in out for out in r.stdout.splitlines())
