"""Every kind of bad input: non-zero exit, one line on stderr saying where, no traceback,
no password in any output, and nothing delivered."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailer.sandbox.stack import StackInfo, free_ports

from .conftest import INTERVIEWER, SENDER, USERS, Stack, run_cli, send_args

CONFIG = Path("config") / "mailer.toml"


Setup = Callable[[Path, Stack, dict], None]


def edit_config(old: str, new: str) -> Setup:
    def apply(ws: Path, stack: Stack, fields: dict) -> None:
        path = ws / CONFIG
        text = path.read_text()
        assert old.format(**fields) in text
        path.write_text(text.replace(old.format(**fields), new.format(**fields), 1))

    return apply


def template_override(ws: Path, stack: Stack, fields: dict) -> None:
    (ws / "templates").mkdir()
    (ws / "templates" / "illness.txt.j2").write_text(
        "Subject: Sorry\n\nDear {{ interviewer }}, I love {{ hobby }}.\n"
    )


def no_password(ws: Path, stack: Stack, fields: dict) -> None:
    (ws / ".env").write_text("# empty\n")


def faults(**f: object) -> Setup:
    def apply(ws: Path, stack: Stack, fields: dict) -> None:
        edit_config("timeout = 10", "timeout = 10\nretries = 1")(ws, stack, fields)
        stack.set_faults(**f)

    return apply


@pytest.fixture(scope="module")
def dropping_server() -> Iterator[int]:
    """A TCP server that accepts and hangs up at once, like a dying relay."""
    yield from _serve(b"")


@pytest.fixture(scope="module")
def garbage_server() -> Iterator[int]:
    """A TCP server that greets with a line that is not SMTP (another service on the port),
    then hangs up."""
    yield from _serve(b"garbage !!!\r\n")


def _serve(greeting: bytes) -> Iterator[int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    stop = threading.Event()

    def loop() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            if greeting:
                conn.sendall(greeting)
            conn.close()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    srv.close()


CASES = [
    ("broken-toml", edit_config("[smtp]", "[smtp\n"), [], "config/mailer.toml: invalid TOML"),
    (
        "wrong-type",
        edit_config("port = {smtp_port}", 'port = "five"'),
        [],
        "mailer.toml: smtp.port: must be int",
    ),
    (
        "unknown-key",
        edit_config("[addresses]", "[addresses]\ncolour = 'red'"),
        [],
        "mailer.toml: addresses.colour: unknown setting",
    ),
    (
        "plain-remote",
        edit_config(
            'host = "{host}"\nport = {smtp_port}\nsecurity = "starttls"',
            'host = "mail.acme.example"\nport = 25\nsecurity = "plain"',
        ),
        [],
        "smtp.security",
    ),
    (
        "oauth-provider",
        edit_config("[sender]", 'provider = "microsoft365"\n[sender]'),
        [],
        "needs OAuth2",
    ),
    ("missing-template-field", template_override, [], "illness.txt.j2:3: 'hobby' is undefined"),
    (
        "leftover-placeholder",
        None,
        ["--note", "Best, [Your Name]"],
        "--note: '[Your Name]' is a placeholder",
    ),
    ("invalid-address", None, ["--to", "ana.ruiz@@acme"], "--to: invalid email address"),
    (
        "placeholder-fact",
        None,
        ["--interviewer", "[Interviewer Name]"],
        "--interviewer: '[Interviewer Name]' is a placeholder",
    ),
    (
        "crlf-in-header",
        None,
        ["--company", "Acme\r\nBcc: victim@example.com"],
        "--company: contains a line break",
    ),
    (
        "lf-in-interviewer",
        None,
        ["--interviewer", "Ana\nRuiz"],
        "--interviewer: contains a line break",
    ),
    ("bad-date", None, ["--interview", "next tuesday"], "--interview: cannot read 'next tuesday'"),
    (
        "bad-timezone",
        None,
        ["--interviewer-tz", "Mars/Olympus"],
        "--interviewer-tz: unknown time zone",
    ),
    (
        "unknown-situation",
        None,
        ["--situation", "hangover"],
        "--situation: unknown situation 'hangover'",
    ),
    (
        "conflict-in-past",
        None,
        ["--situation", "conflict"],
        "conflict asks to move an interview that is still ahead",
    ),
    ("no-password", no_password, [], "MAILER_SMTP_PASSWORD: not set"),
    (
        "wrong-password",
        lambda ws, st, f: (ws / ".env").write_text("MAILER_SMTP_PASSWORD=hunter2-wrong\n"),
        [],
        "SMTP {host}:{smtp_port}: authentication failed for user 'you@sandbox.test'",
    ),
    (
        "connection-refused",
        edit_config("port = {smtp_port}", "port = {closed_port}"),
        [],
        "SMTP {host}:{closed_port}: connection refused",
    ),
    (
        "connection-dropped",
        edit_config("port = {smtp_port}", "port = {dropping_port}"),
        [],
        "SMTP {host}:{dropping_port}:",
    ),
    (
        "not-smtp",
        edit_config("port = {smtp_port}", "port = {garbage_port}"),
        [],
        "SMTP {host}:{garbage_port}: the answer to login is not SMTP (no reply code) "
        "(check smtp.port and smtp.security)",
    ),
    (
        "temporary-4xx",
        faults(rcpt=["450 4.2.1 mailbox busy"] * 2),
        [],
        "SMTP {host}:{smtp_port}: RCPT TO <interviewer@sandbox.test> refused with 450 4.2.1",
    ),
    (
        "permanent-5xx",
        faults(mail=["550 5.7.1 sender not allowed"]),
        [],
        "SMTP {host}:{smtp_port}: MAIL FROM refused with 550 5.7.1",
    ),
    ("untrusted-cert", edit_config('ca_file = "{ca_file}"', ""), [], "TLS certificate not trusted"),
]


@pytest.mark.integration
@pytest.mark.parametrize(("name", "setup", "args", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_clear_line(
    stack: Stack,
    workspace: Path,
    dropping_server: int,
    garbage_server: int,
    name: str,
    setup: Setup | None,
    args: list[str],
    expected: str,
) -> None:
    """Verify each bad input: exit != 0, one stderr line naming where, no traceback, no secret."""
    fields = {
        **vars(stack.info),
        "closed_port": free_ports(1)[0],
        "dropping_port": dropping_server,
        "garbage_port": garbage_server,
    }
    if setup is not None:
        setup(workspace, stack, fields)
    base = send_args(company=f"Bad {name}")
    for i in range(0, len(args), 2):
        if args[i] in base:
            base[base.index(args[i]) + 1] = args[i + 1]
        else:
            base += args[i : i + 2]
    mark = stack.log_mark()
    r = run_cli(workspace, *base)
    assert r.returncode != 0, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert expected.format(**fields) in lines[0]
    assert "Traceback" not in r.stderr
    for password in (*USERS.values(), "hunter2-wrong"):
        assert password not in r.stdout + r.stderr
    assert not [e for e in stack.log_since(mark) if e["event"] == "accepted"]


def test_every_config_problem_is_reported_at_once(
    offline_info: StackInfo, offline_workspace: Path
) -> None:
    """Verify three problems in one file give three lines, each with file and key."""
    path = offline_workspace / CONFIG
    text = path.read_text().replace(f"port = {offline_info.smtp_port}", "port = 99999", 1)
    text = text.replace('security = "starttls"', 'security = "tls1.3"', 1)
    text = text.replace(f'address = "{SENDER}"', 'address = "not an address"', 1)
    path.write_text(text)
    # send --dry-run reads every setting; preview needs only [sender] (issue 12).
    r = run_cli(offline_workspace, *send_args()[:-1], "--dry-run")
    assert r.returncode == 3
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 3, r.stderr
    assert all(str(path) in line for line in lines)
    joined = "\n".join(lines)
    for key in ("smtp.port", "smtp.security", "sender.address"):
        assert key in joined


@pytest.mark.integration
def test_send_without_terminal_requires_yes(stack: Stack, workspace: Path) -> None:
    """Verify nothing is sent when there is no terminal to confirm on and no --yes."""
    mark = stack.log_mark()
    args = [a for a in send_args(company="No Yes") if a != "--yes"]
    r = run_cli(workspace, *args)
    assert r.returncode == 2
    assert "refusing to send without --yes" in r.stderr
    assert "Subject:" not in r.stdout, r.stdout  # refused before the message is shown
    assert not [e for e in stack.log_since(mark) if e["event"] in ("connect", "accepted")]


@pytest.mark.integration
@pytest.mark.process
def test_send_and_campaign_run_with_stdin_closed_refuse_in_one_line(
    stack: Stack, workspace: Path
) -> None:
    """Verify a closed stdin (``<&-``: Python's sys.stdin is None) gets the same refusal as
    a pipe, exit 2, not an internal error, and nothing connects."""
    import os
    import subprocess
    import sys

    from .conftest import NOW

    campaign = workspace / "config" / "campaigns" / "closed.toml"
    campaign.parent.mkdir(parents=True, exist_ok=True)
    campaign.write_text(
        '[defaults]\nsituation = "illness"\nnote = "I was ill."\n\n[[entries]]\n'
        f'to = "{INTERVIEWER}"\ninterviewer = "Ana Ruiz"\ncompany = "Closed Co"\n'
        'role = "Data Engineer"\ninterview = "2026-11-24 10:00"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    mark = stack.log_mark()
    for args in (
        [a for a in send_args(company="Closed Stdin") if a != "--yes"],
        ["campaign", "run", "closed"],
    ):
        r = subprocess.run(
            [sys.executable, "-m", "mailer.cli.main", *args],
            cwd=workspace,
            env={**env, "MAILER_NOW": NOW},
            text=True,
            capture_output=True,
            stdin=None,
            preexec_fn=lambda: os.close(0),  # (Python then has sys.stdin = None)
            timeout=60,
        )
        assert r.returncode == 2, r.stderr
        assert r.stderr.strip().splitlines() == [
            "mailer: error: refusing to send without --yes: there is no terminal to confirm on"
        ], r.stderr
    assert not [e for e in stack.log_since(mark) if e["event"] in ("connect", "accepted")]


@pytest.mark.integration
def test_dry_run_never_connects(stack: Stack, workspace: Path) -> None:
    """Verify --dry-run shows the message and opens no connection."""
    mark = stack.log_mark()
    r = run_cli(workspace, *send_args(company="Dry Run"), "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "Subject: Apologies for missing our interview" in r.stdout
    assert "nothing was sent" in r.stdout
    assert stack.log_since(mark) == []


@pytest.mark.integration
def test_debug_shows_traceback_but_never_the_password(stack: Stack, workspace: Path) -> None:
    """Verify --debug adds a traceback for a failure and still hides the password."""
    (workspace / ".env").write_text("MAILER_SMTP_PASSWORD=hunter2-debug\n")
    r = run_cli(workspace, "--debug", *send_args(company="Debug Co"))
    assert r.returncode != 0
    assert "Traceback" in r.stderr
    assert "hunter2-debug" not in r.stdout + r.stderr


@pytest.mark.integration
def test_debug_keeps_the_exit_code_of_a_duplicate(stack: Stack, workspace: Path) -> None:
    """Verify a refused duplicate exits 7 with --debug too, and still shows the traceback."""
    first = run_cli(workspace, *send_args(company="Debug Duplicate"))
    assert first.returncode == 0, first.stderr
    again = run_cli(workspace, "--debug", *send_args(company="Debug Duplicate"))
    assert again.returncode == 7, again.stderr
    assert "Traceback" in again.stderr
    assert "DuplicateError" in again.stderr


@pytest.mark.integration
def test_debug_keeps_the_exit_code_of_a_network_error(stack: Stack, workspace: Path) -> None:
    """Verify a refused connection exits 5 with --debug too (subcommand flag and group flag)."""
    closed = free_ports(1)[0]
    edit_config("port = {smtp_port}", f"port = {closed}")(workspace, stack, vars(stack.info))
    for args in (
        ["--debug", *send_args(company="Debug Net")],
        [*send_args(company="Debug Net"), "--debug"],
    ):
        r = run_cli(workspace, *args)
        assert r.returncode == 5, r.stderr
        assert "Traceback" in r.stderr
        assert f"{stack.info.host}:{closed}: connection refused" in r.stderr


@pytest.mark.process
@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ("send", "--situation", "illness", "--to", "a@b.example", "--company", "Acme"),
            "Missing options '--interviewer', '--role', '--interview' (see 'mailer send --help')",
        ),
        (
            ("call-script", "-s", "illness", "--interviewer", "Ana", "--company", "Acme"),
            "Missing options '--role', '--interview' (see 'mailer call-script --help')",
        ),
        (("status", "--colour"), "No such option '--colour' (see 'mailer status --help')"),
        (("campaign", "run"), "Missing argument 'FILE' (see 'mailer campaign run --help')"),
        (("sendd",), "No such command 'sendd'. Did you mean 'send'? (see 'mailer --help')"),
    ],
)
def test_a_usage_error_is_one_line_naming_the_help_to_read(
    tmp_path: Path, args: tuple[str, ...], said: str
) -> None:
    """Verify click's own usage errors, from the real entry point, are one line (as every
    other error is) with exit code 2, naming the command's --help; the facts an apology
    needs are named all at once, not one a try (newcomer, session 15); a bare group still
    shows its help."""
    r = run_cli(tmp_path, *args)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [f"mailer: error: {said}"]
    bare = run_cli(tmp_path, "campaign")
    assert bare.returncode == 2 and "Usage: mailer campaign [OPTIONS] COMMAND" in bare.stderr


@pytest.mark.integration
def test_a_server_whose_status_answer_says_nothing_is_still_watched_through_select(
    stack: Stack, tmp_path: Path
) -> None:
    """Verify `check` against a server whose STATUS answer lacks its data (imapclient cannot
    parse it) selects the folder instead, as on a first look, and succeeds: no internal
    error, and the account is still watched."""
    from .hostile import TerseImap
    from .test_secrets import configure

    with TerseImap() as imap:
        ws = configure(
            tmp_path / "ws",
            stack.info,
            smtp=(stack.info.smtp_plain_port, "plain"),
            imap=(imap.port, "plain"),
            smtp_password=stack.info.users[SENDER],
            imap_password="any",
        )
        first = run_cli(ws, "check")  # the first look selects the folder
        assert first.returncode == 0, first.stdout + first.stderr
        looked = imap.saw(b"EXAMINE") + imap.saw(b"SELECT")
        r = run_cli(ws, "check")  # later ones ask STATUS whether anything is new
        assert imap.saw(b"STATUS") == 1, imap.commands
        assert imap.saw(b"EXAMINE") + imap.saw(b"SELECT") == looked + 1  # and so select
    assert r.returncode == 0, r.stdout + r.stderr
    assert "internal error" not in r.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("status", "99"),
        ("release", "99"),
        ("resolve", "99", "--sent"),
        ("cancel", "99"),
        ("mark-replied", "99"),
        ("preview", "--follow-up", "99"),
    ],
)
def test_a_thread_that_is_not_there_is_bad_input_whichever_command_names_it(
    offline_workspace: Path, args: tuple[str, ...]
) -> None:
    """Verify every command given a thread ID the store does not hold says so in one line
    with the same exit code (2, bad input), not a store error (1) for some of them."""
    r = run_cli(offline_workspace, *args)
    assert r.returncode == 2, r.stdout + r.stderr
    (line,) = r.stderr.splitlines()
    assert line.startswith("mailer: error: no thread 99 in ")


def test_a_parse_error_is_the_servers_only_when_the_imap_client_raised_it() -> None:
    """Verify Mailbox._call calls an IndexError inside imapclient the server's answer (one
    line naming host and port) but lets one raised in our own code go out as it is (a bug of
    ours must not be blamed on the server, and --debug must show where it came from)."""
    from imapclient.response_parser import parse_message_list

    from mailer.adapters.config import ImapSettings
    from mailer.adapters.mailbox import Mailbox
    from mailer.errors import DeliveryError

    box = Mailbox(ImapSettings("127.0.0.1", 993, "ssl", "u@x", None, 5.0, auth="oauth2"))

    def ours() -> None:
        raise IndexError("our own bug")

    with pytest.raises(IndexError, match="our own bug"):
        box._call("read ours", ours)
    with pytest.raises(DeliveryError, match=r"^IMAP 127\.0\.0\.1:993: cannot parse it: "):
        box._call("parse it", parse_message_list, [])  # ValueError inside imapclient


def test_a_usage_error_never_passes_a_typed_control_character_to_the_terminal(
    tmp_path: Path,
) -> None:
    """Verify an unknown option holding an escape sequence is shown escaped, in one line."""
    r = run_cli(tmp_path, "status", "--x\x1b[2J\ny")
    assert r.returncode == 2
    (line,) = r.stderr.splitlines()
    assert "\x1b" not in line and line.startswith("mailer: error: No such option")
