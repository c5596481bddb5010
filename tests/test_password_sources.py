"""Passwords beyond ``.env``: a password command, the system keyring (through a test backend),
a terminal prompt; literal passwords in the config refused; ``send --account``.

The sends go to the real sandbox servers; the password reaches them only through the source
under test (the workspace's ``.env`` holds none), and must appear in no output.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from mailer.adapters.config import load_settings
from mailer.errors import ConfigError

from .conftest import ROOT, SENDER, Pair, Stack, run_cli, send_args, write_config
from .test_followup import at

KEYRING_ENV = {
    "PYTHON_KEYRING_BACKEND": "tests.keyring_backend.FileKeyring",
    "PYTHONPATH": str(ROOT),
}


def script(path: Path, body: str) -> str:
    """A small Python program for password_command; returns its path."""
    path.write_text(f"#!{sys.executable}\nimport os, sys, time\n{textwrap.dedent(body)}")
    path.chmod(0o755)
    return str(path)


def with_source(ws: Path, table: str, lines: str) -> None:
    """Add ``lines`` to ``[table]`` of the workspace's config, and empty its .env."""
    config = ws / "config" / "mailer.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace(f"[{table}]\n", f"[{table}]\n{lines}\n", 1), encoding="utf-8")
    (ws / ".env").write_text("", encoding="utf-8")


def everything(ws: Path, *runs: object) -> str:
    """All a run printed plus the whole state store, for the grep tests."""
    text = "".join(r.stdout + r.stderr for r in runs)  # type: ignore[attr-defined]
    db = ws / ".mailer" / "state.db"
    if db.exists():
        con = sqlite3.connect(db)
        try:
            text += "\n".join(con.iterdump())
        finally:
            con.close()
    return text


def logins(stack: Stack, mark: int) -> list[dict]:
    return [e for e in stack.log_since(mark) if e["event"] == "auth"]


# --- password_command -------------------------------------------------------------------------


@pytest.mark.integration
def test_password_command_logs_in_runs_once_and_never_shows_the_password(
    stack: Stack, tmp_path: Path
) -> None:
    """Verify a send with password_command logs in to SMTP and IMAP with the command's first
    line, runs the command once for both, and the password is in no output or stored row."""
    ws = write_config(tmp_path / "ws", stack.info)
    runs = tmp_path / "runs"
    password = stack.info.users[SENDER]
    prog = script(
        tmp_path / "getpw",
        f"""
        with open({str(runs)!r}, "a") as f:
            f.write("run\\n")
        print({password!r})
        print("user: not-the-password")
        """,
    )
    with_source(ws, "smtp", f"password_command = [{prog!r}]")
    mark = stack.log_mark()
    sent = run_cli(ws, *send_args(company="Command Co"), "--debug")
    assert sent.returncode == 0, sent.stderr
    assert "Sent copy: saved" in sent.stdout, sent.stdout  # IMAP logged in too
    assert [e["ok"] for e in logins(stack, mark)] == [True]
    assert runs.read_text().splitlines() == ["run"]  # once, for SMTP and IMAP
    doctor = run_cli(ws, "doctor", "--debug")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert password not in everything(ws, sent, doctor)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # It prints the password and still fails: none of its output may be shown.
        ("print(PW); print(PW, file=sys.stderr); sys.exit(3)", "exited with status 3"),
        ("print(''); print(PW)", "exited with status 0 but printed no password"),
        ("pass", "exited with status 0 but printed no password"),
        ("os.kill(os.getpid(), 9)", "was killed by signal 9"),
    ],
    ids=["non-zero", "empty-first-line", "no-output", "killed"],
)
def test_failing_password_command_is_one_line_naming_key_program_and_status(
    stack: Stack, tmp_path: Path, body: str, expected: str
) -> None:
    """Verify a password command that fails gives one line naming the config key, the
    program and what happened, exit 3, nothing recorded or sent, and none of its output."""
    ws = write_config(tmp_path / "ws", stack.info)
    password = "Sekr1t-Printed-By-Failing-Command"
    prog = script(tmp_path / "getpw", f"PW = {password!r}\n{body}\n")
    with_source(ws, "smtp", f"password_command = [{prog!r}, 'mail/you']")
    mark = stack.log_mark()
    r = run_cli(ws, *send_args(company="Failing Co"))
    assert r.returncode == 3, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert f"mailer.toml: smtp.password_command: {prog!r} {expected}" in lines[0]
    assert password not in everything(ws, r)
    assert not [e for e in stack.log_since(mark) if e["event"] in ("auth", "accepted")]
    assert "No threads yet" in run_cli(ws, "status").stdout


@pytest.mark.wire  # mailer runs the password program (it fails before connecting)
def test_doctor_asks_a_failing_password_command_once_for_smtp_and_imap(
    offline_workspace: Path, tmp_path: Path
) -> None:
    """Verify doctor, which checks SMTP and IMAP with the one password, runs a failing
    password command once (it ran twice: a pinentry prompt asked twice), and still reports
    both checks as failed."""
    ws = offline_workspace
    runs = tmp_path / "runs"
    prog = script(tmp_path / "fails", f"open({str(runs)!r}, 'a').write('run\\n'); sys.exit(1)")
    with_source(ws, "smtp", f"password_command = [{prog!r}]")
    r = run_cli(ws, "doctor")
    assert r.returncode != 0
    failed = [line for line in r.stdout.splitlines() if line.startswith("FAIL")]
    assert [line.split(":")[0] for line in failed] == ["FAIL  SMTP", "FAIL  IMAP"], r.stdout
    assert all("exited with status 1" in line for line in failed)
    assert runs.read_text().splitlines() == ["run"]


@pytest.mark.wire  # mailer runs the password program (it fails before connecting)
def test_password_command_that_hangs_is_stopped_at_its_timeout(
    offline_workspace: Path, tmp_path: Path
) -> None:
    """Verify a password command that never finishes is killed at
    password_command_timeout, with one line naming the key and program."""
    ws = offline_workspace
    pid_file = tmp_path / "pid"
    prog = script(
        tmp_path / "hang",
        f"""
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        time.sleep(120)
        """,
    )
    with_source(ws, "smtp", f"password_command = [{prog!r}]\npassword_command_timeout = 1")
    r = run_cli(ws, *send_args(company="Hang Co"))
    assert r.returncode == 3, r.stderr
    assert f"smtp.password_command: {prog!r} did not finish within 1 s" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    # On a loaded machine the program may be killed before it wrote its PID: then it is
    # known by its path. Either way, nothing may still be running it.
    pid = pid_file.read_text() if pid_file.exists() else ""
    if pid:
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)  # killed and reaped, not left running
    assert not _running(prog)


@pytest.mark.wire  # mailer runs the password program
def test_a_password_command_stopped_at_its_timeout_leaves_none_of_its_children(
    offline_workspace: Path, tmp_path: Path
) -> None:
    """Verify the programs a hanging password command started (pass -> gpg -> pinentry) are
    stopped with it: they were left running, orphaned (a sign-in walkthrough)."""
    ws = offline_workspace
    pid_file = tmp_path / "child"
    prog = script(
        tmp_path / "hang-with-child",
        f"""
        import subprocess
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        child.wait()
        """,
    )
    with_source(ws, "smtp", f"password_command = [{prog!r}]\npassword_command_timeout = 2")
    r = run_cli(ws, *send_args(company="Hang Co"))
    assert r.returncode == 3, r.stderr
    assert "did not finish within 2 s" in r.stderr
    assert pid_file.exists(), "the command did not get to start its child in 2 s"
    assert not _alive(int(pid_file.read_text()))


@pytest.mark.wire  # a real program, whose own child outlives it
def test_a_password_command_whose_child_keeps_its_output_open_does_not_hang_mailer(
    tmp_path: Path,
) -> None:
    """Verify a timed-out password command whose background child (now init's) holds its
    output open is given up at once: reading that output to its end waited for the child
    (a review of session 17: 12 s for a 12 s child, for ever for a daemon)."""
    import time

    from mailer.adapters.passwords import PasswordSource, _from_command

    source = PasswordSource(
        kind="command",
        key="smtp",
        command=("sh", "-c", "(sleep 60 &); sleep 100"),
        timeout=1.0,
        cwd=tmp_path,
    )
    started = time.monotonic()
    with pytest.raises(ConfigError, match="did not finish within 1 s"):
        _from_command(source)
    assert time.monotonic() - started < 20  # (the child sleeps 60 s)


@pytest.mark.wire  # a real program, whose own child outlives it
def test_a_password_command_that_exits_leaving_a_program_on_its_output_is_read_at_once(
    tmp_path: Path,
) -> None:
    """Verify a password command that printed the password and exited, leaving a program it
    started (an agent) holding its output open, gives its password at once: it was reported
    as "did not finish within N s" after waiting all N. The agent is left running."""
    import time

    from mailer.adapters.passwords import PasswordSource, _from_command

    pid_file = tmp_path / "agent"
    source = PasswordSource(
        kind="command",
        key="smtp",
        command=("sh", "-c", f"echo s3cret; sleep 60 & echo $! > {pid_file}"),
        timeout=30.0,
        cwd=tmp_path,
    )
    started = time.monotonic()
    try:
        assert _from_command(source) == "s3cret"
        assert time.monotonic() - started < 10  # (not the 30 s timeout, nor the agent's 60)
        assert _alive(int(pid_file.read_text()))
    finally:
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)


@pytest.mark.wire  # real programs
def test_on_windows_a_password_commands_output_is_read_to_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify the early read after exit is POSIX only: on Windows a timeout carries no
    output and closing a pipe a reader thread holds hangs, so the output is read to its end
    there, as before (a review)."""
    import subprocess

    from mailer.adapters import passwords

    monkeypatch.setattr(passwords.sys, "platform", "win32")
    done = subprocess.Popen(
        [sys.executable, "-c", "print('s3cret')"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert passwords._output(done, 30) == b"s3cret\n"
    hung = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert passwords._output(hung, 0.5) is None
    finally:
        hung.kill()
        hung.communicate()


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for a parent that does not reap is not)."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _running(program: str) -> list[int]:
    """The PIDs of live processes whose command line names ``program``."""
    found: list[int] = []
    if not Path("/proc").is_dir():  # (not Linux: the PID check above is all there is)
        return found
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        if program.encode() in argv:
            found.append(int(proc.name))
    return found


@pytest.mark.wire  # mailer runs the password program
def test_missing_password_program_is_named(tmp_path: Path) -> None:
    """Verify a password command whose program does not exist is one line naming it."""
    ws = _offline_workspace(tmp_path, '[smtp]\npassword_command = ["no-such-pw-program-xyz"]')
    r = run_cli(ws, *send_args(company="Missing Co"))
    assert r.returncode == 3
    assert "smtp.password_command: program 'no-such-pw-program-xyz' not found" in r.stderr


def _offline_workspace(tmp_path: Path, extra: str) -> Path:
    """A workspace whose servers are never reached (the tests fail before connecting)."""
    ws = tmp_path / "ws"
    (ws / "config").mkdir(parents=True)
    (ws / "config" / "mailer.toml").write_text(
        textwrap.dedent("""\
        [sender]
        name = "Sam Candidate"
        address = "you@sandbox.test"

        [imap]
        host = "127.0.0.1"
        port = 9

        [addresses]
        allow_test_domains = true
        """)
        + extra.replace("[smtp]", '[smtp]\nhost = "127.0.0.1"\nport = 9', 1)
        + "\n",
        encoding="utf-8",
    )
    return ws


# --- keyring ----------------------------------------------------------------------------------


@pytest.mark.process
@pytest.mark.integration
def test_keyring_password_set_with_set_password_is_used_by_send(
    stack: Stack, tmp_path: Path
) -> None:
    """Verify 'auth set-password' (stdin) stores the password in the keyring backend and a
    send with password_source = "keyring" logs in with it; it is shown nowhere."""
    ws = write_config(tmp_path / "ws", stack.info)
    with_source(ws, "smtp", 'password_source = "keyring"')
    env = {**KEYRING_ENV, "TEST_KEYRING_FILE": str(tmp_path / "keyring.json")}
    password = stack.info.users[SENDER]
    before = run_cli(ws, *send_args(company="Keyring Co"), env=env)
    assert before.returncode == 3 and "mailer auth set-password" in before.stderr, before.stderr
    stored = run_cli(ws, "auth", "set-password", input=password + "\n", env=env)
    assert stored.returncode == 0, stored.stderr
    keyring = json.loads((tmp_path / "keyring.json").read_text())
    assert keyring == {
        f"mailer/main:smtp:{SENDER}": password,
        f"mailer/main:imap:{SENDER}": password,
    }
    mark = stack.log_mark()
    sent = run_cli(ws, *send_args(company="Keyring Co"), "--debug", env=env)
    assert sent.returncode == 0, sent.stderr
    assert "Sent copy: saved" in sent.stdout
    assert [e["ok"] for e in logins(stack, mark)] == [True]
    assert password not in everything(ws, before, stored, sent)


def test_set_password_refuses_empty_input(tmp_path: Path) -> None:
    """Verify set-password with nothing on stdin stores nothing and says so."""
    ws = _offline_workspace(tmp_path, "[smtp]")
    env = {**KEYRING_ENV, "TEST_KEYRING_FILE": str(tmp_path / "keyring.json")}
    r = run_cli(ws, "auth", "set-password", input="", env=env)
    assert r.returncode == 2 and "no password given" in r.stderr
    assert not (tmp_path / "keyring.json").exists()


# --- prompt -----------------------------------------------------------------------------------


def test_prompt_without_a_terminal_is_one_clear_error(tmp_path: Path) -> None:
    """Verify password_source = "prompt" with no terminal fails with one line, before
    anything is recorded."""
    ws = _offline_workspace(tmp_path, '[smtp]\npassword_source = "prompt"')
    r = run_cli(ws, *send_args(company="Prompt Co"))
    assert r.returncode == 3
    assert r.stderr.strip().splitlines() == [
        f'mailer: error: {ws.resolve()}/config/mailer.toml: smtp.password_source: "prompt" '
        'needs a terminal to ask on, and there is none; use "keyring" or "command" for '
        "unattended runs"
    ]


@pytest.mark.parametrize("table", ["smtp", "imap", "accounts.bea.smtp"])
def test_daemon_refuses_a_prompt_source_at_start_up(tmp_path: Path, table: str) -> None:
    """Verify the daemon refuses any server with password_source = "prompt", naming it."""
    accounts = (
        '\n[accounts.bea.sender]\nname = "Bea"\naddress = "bea@sandbox.test"\n'
        '[accounts.bea.smtp]\nhost = "127.0.0.1"\n[accounts.bea.imap]\nhost = "127.0.0.1"\n'
    )
    ws = _offline_workspace(tmp_path, "[smtp]\n" + accounts)
    with_source(ws, table, 'password_source = "prompt"')
    (ws / ".env").write_text(
        "MAILER_SMTP_PASSWORD=x\nMAILER_ACCOUNT_BEA_SMTP_PASSWORD=y\n", encoding="utf-8"
    )
    r = run_cli(ws, "daemon", timeout=30)
    assert r.returncode == 3
    assert f': {table}.password_source: "prompt" is for one-shot commands' in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# --- literal passwords ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "smtp.password",
        "imap.pass",
        "smtp.secret",
        "accounts.bea.smtp.password",
        "accounts.bea.imap.app_password",
        "sender.password",
        "password",
        "smtp.Passwd",
        "imap.access_token",
    ],
)
def test_literal_password_key_is_refused_with_a_pointer_to_the_sources(
    tmp_path: Path, key: str
) -> None:
    """Verify a password (pass, secret, token...) written into the TOML is refused, at any
    depth, pointing to the sources, and its value is never quoted."""
    secret = "Literal-Hunter2-In-Toml"
    *tables, name = key.split(".")
    config = tmp_path / "config" / "mailer.toml"
    config.parent.mkdir(parents=True)
    base = textwrap.dedent("""\
        [sender]
        name = "Sam"
        address = "you@sandbox.test"
        [smtp]
        host = "127.0.0.1"
        [imap]
        host = "127.0.0.1"
        [accounts.bea.sender]
        name = "Bea"
        address = "bea@sandbox.test"
        [accounts.bea.smtp]
        host = "127.0.0.1"
        [accounts.bea.imap]
        host = "127.0.0.1"
        """)
    line = f'{name} = "{secret}"\n'
    if tables:
        header = f"[{'.'.join(tables)}]\n"
        base = base.replace(header, header + line, 1)
    else:
        base = line + base
    config.write_text(base, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(config)
    found = [p for p in err.value.problems if f": {key}: " in p]
    assert len(err.value.problems) == 1 and found, err.value.problems
    assert "does not belong in the config file" in found[0]
    assert 'password_source = "env"' in found[0] and "set-password" in found[0]
    assert secret not in str(err.value)


def test_password_source_keys_are_checked(tmp_path: Path) -> None:
    """Verify an unknown source, a command that is not a list, a source/command clash and
    a bad timeout are each reported, all at once."""
    config = tmp_path / "config" / "mailer.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        textwrap.dedent("""\
        [sender]
        name = "Sam"
        address = "you@sandbox.test"
        [smtp]
        host = "127.0.0.1"
        password_source = "vault"
        [imap]
        host = "127.0.0.1"
        password_command = "pass show mail"
        password_command_timeout = 0
        [accounts.bea.sender]
        name = "Bea"
        address = "bea@sandbox.test"
        [accounts.bea.smtp]
        host = "127.0.0.1"
        password_source = "keyring"
        password_command = ["pass"]
        [accounts.bea.imap]
        host = "127.0.0.1"
        password_source = "command"
        """),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_settings(config)
    keys = sorted(re.search(r": ([\w.]+): ", p)[1] for p in err.value.problems)
    assert keys == [
        "accounts.bea.imap.password_command",
        "accounts.bea.smtp.password_command",
        "imap.password_command",
        "imap.password_command_timeout",
        "smtp.password_source",
    ], err.value.problems


# --- send --account ---------------------------------------------------------------------------


@pytest.mark.integration
def test_send_account_sends_from_that_account_and_its_follow_up_too(
    stack: Stack, tmp_path: Path
) -> None:
    """Verify 'send --account bea' goes out from bea's mailbox (logged in as bea, with her
    password from a command), the thread records the account, and its follow-up goes from
    bea too."""
    main, bea = Pair(stack, tmp_path / "ws"), Pair(stack, tmp_path / "unused")
    prog = script(tmp_path / "bea-pw", f"print({f'pw-{bea.candidate}'!r})")
    ca = stack.info.ca_file
    accounts = f"""
[follow_up]
wait = "60s"
window = "always"

[accounts.bea.sender]
name = "Bea Candidate"
address = "{bea.candidate}"
[accounts.bea.smtp]
host = "{stack.info.host}"
port = {stack.info.smtp_port}
security = "starttls"
ca_file = "{ca}"
password_command = ["{prog}"]
[accounts.bea.imap]
host = "{stack.info.host}"
port = {stack.info.imaps_port}
security = "ssl"
ca_file = "{ca}"
"""
    ws = write_config(main.ws, stack.info, sender=main.candidate, extra=accounts)
    mark = stack.log_mark()
    r = run_cli(
        ws,
        *send_args(to=main.interviewer, company="Account Co"),
        "--account",
        "bea",
        env={"MAILER_NOW": at(timedelta(0))},
    )
    assert r.returncode == 0, r.stderr
    assert f"From: Bea Candidate <{bea.candidate}>" in r.stdout
    thread = int(re.search(r"thread (\d+)", r.stdout)[1])
    root = re.search(r"Message-ID (<[^>]+>)", r.stdout)[1]
    assert [(e["user"], e["ok"]) for e in logins(stack, mark)] == [(bea.candidate, True)]
    assert stack.messages_with_id(bea.candidate, root, "Sent")  # filed in bea's Sent
    with sqlite3.connect(ws / ".mailer" / "state.db") as con:
        assert con.execute("SELECT account FROM threads WHERE id = ?", (thread,)).fetchone() == (
            "bea",
        )
    mark = stack.log_mark()
    checked = run_cli(ws, "check", env={"MAILER_NOW": at(timedelta(minutes=5))})
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 follow-up(s) sent" in checked.stdout
    accepted = [e for e in stack.log_since(mark) if e["event"] == "accepted"]
    assert [e["mail_from"] for e in accepted] == [bea.candidate]
    assert len(main.follow_ups_received(root)) == 1


def test_send_account_unknown_name_is_refused(tmp_path: Path) -> None:
    """Verify 'send --account nobody' names the missing account and sends nothing."""
    ws = _offline_workspace(tmp_path, "[smtp]")
    (ws / ".env").write_text("MAILER_SMTP_PASSWORD=x\n", encoding="utf-8")
    r = run_cli(ws, *send_args(company="Nobody Co"), "--account", "nobody")
    assert r.returncode == 3
    assert "accounts.nobody: no such account" in r.stderr


@pytest.mark.integration
def test_password_from_a_command_is_redacted_from_a_server_that_echoes_it(
    stack: Stack, tmp_path: Path
) -> None:
    """Verify a password fetched by password_command is cut out of a 535 reply that repeats
    the AUTH lines and the decoded password, in send and doctor output and the store."""
    from .hostile import EchoSmtp
    from .test_secrets import UTF8_SECRET, assert_no_leak, configure, real_imap, stored

    prog = script(tmp_path / "getpw", f"print({UTF8_SECRET!r})")
    with EchoSmtp("PLAIN") as smtp:
        ws = configure(
            tmp_path / "ws",
            stack.info,
            smtp=(smtp.port, "plain"),
            imap=real_imap(stack),
            smtp_password="unused",
        )
        with_source(ws, "smtp", f"password_command = [{prog!r}]")
        (ws / ".env").write_text(f"MAILER_IMAP_PASSWORD={stack.info.users[SENDER]}\n")
        sent = run_cli(ws, *send_args(company="Echo Command Co"))
        doctor = run_cli(ws, "doctor")
    assert sent.returncode == 5 and "authentication failed" in sent.stderr, sent.stderr
    output = sent.stdout + sent.stderr + doctor.stdout + doctor.stderr + stored(ws)
    assert_no_leak(output, SENDER, UTF8_SECRET, smtp.arguments)


@pytest.mark.integration
def test_refused_login_hint_names_the_password_source(stack: Stack, tmp_path: Path) -> None:
    """Verify a wrong password from a command is refused with a hint naming the command's
    key (not MAILER_SMTP_PASSWORD, which the user never set), and the password not shown."""
    ws = write_config(tmp_path / "ws", stack.info)
    wrong = "Wr0ng-From-Command"
    prog = script(tmp_path / "getpw", f"print({wrong!r})")
    with_source(ws, "smtp", f"password_command = [{prog!r}]")
    r = run_cli(ws, *send_args(company="Wrong Co"))
    assert r.returncode == 5, r.stderr
    assert "authentication failed" in r.stderr
    assert "(check what smtp.password_command prints (Gmail needs" in r.stderr
    assert wrong not in everything(ws, r)


@pytest.mark.process
@pytest.mark.integration
def test_campaign_run_fetches_every_password_it_needs_before_the_first_send(
    stack: Stack, tmp_path: Path
) -> None:
    """Verify a campaign whose IMAP password cannot be had (an empty keyring) is refused
    before anything is sent, rather than sending and then failing to file the Sent copies."""
    from .test_campaign import entry, write_campaign

    pair = Pair(stack, tmp_path / "ws")
    ws = write_config(pair.ws, stack.info, sender=pair.candidate)
    config = ws / "config" / "mailer.toml"
    config.write_text(
        config.read_text().replace("[imap]\n", '[imap]\npassword_source = "keyring"\n', 1)
    )
    write_campaign(ws, entry(pair.interviewer, 1, key="one"))
    env = {**KEYRING_ENV, "TEST_KEYRING_FILE": str(tmp_path / "keyring.json")}
    mark = stack.log_mark()
    r = run_cli(ws, "campaign", "run", "week49", "--yes", env=env)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "imap.password_source: the keyring has no password for" in r.stderr
    assert not [e for e in stack.log_since(mark) if e["event"] in ("auth", "accepted")]


def run_on_terminal(ws: Path, args: list[str], typed: str) -> tuple[int, str]:
    """Run mailer on a pseudo-terminal, typing ``typed`` at each password prompt; returns
    the exit status and everything shown on the terminal."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes mailer, with the pty as its terminal
        os.chdir(ws)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
        os.execve(sys.executable, [sys.executable, "-m", "mailer.cli.main", *args], env)
    shown, answered = b"", 0
    while True:
        try:
            data = os.read(fd, 1024)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        shown += data
        while shown.count(b"password for") > answered:
            os.write(fd, typed.encode() + b"\n")
            answered += 1
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), shown.decode("utf-8", "replace")


@pytest.mark.integration
def test_prompt_asks_once_on_a_terminal_and_the_typed_password_logs_in(
    stack: Stack, tmp_path: Path
) -> None:
    """Verify password_source = "prompt" asks once on a terminal (IMAP takes the SMTP
    answer), both servers accept the typed password, and it is not echoed."""
    ws = write_config(tmp_path / "ws", stack.info)
    with_source(ws, "smtp", 'password_source = "prompt"')
    password = stack.info.users[SENDER]
    code, shown = run_on_terminal(ws, ["doctor"], password)
    assert code == 0, shown
    assert shown.count("SMTP password for you@sandbox.test at") == 1, shown
    assert "OK    SMTP" in shown and "OK    IMAP" in shown
    assert password not in shown


def test_keyring_imported_on_another_thread_waits_while_yagmail_is_imported_without_it() -> None:
    """Verify an import of keyring (a token store, a password source) on another thread in
    the moment yagmail is imported without it waits, then gets the real module: it must
    not fail as if keyring were not installed (tokens would go to the file store)."""
    import threading

    from mailer.adapters.passwords import keyring_module, without_keyring

    got: list[object] = []
    with without_keyring():
        other = threading.Thread(target=lambda: got.append(keyring_module()))
        other.start()
        other.join(timeout=0.3)
        still_waiting = other.is_alive()
    other.join(timeout=30)
    assert still_waiting
    assert got and callable(getattr(got[0], "get_keyring", None))
