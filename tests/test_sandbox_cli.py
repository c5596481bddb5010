"""`mailer sandbox`: the user-facing local mail server, and sending through it."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from .conftest import NOW, SENDER, Pair, Stack, run_cli, send_args
from .users import OrdinaryUser, unavailable

pytestmark = [pytest.mark.integration, pytest.mark.process]


@pytest.fixture
def sandbox_ws(tmp_path: Path):
    ws = tmp_path / "ws"
    ws.mkdir()
    assert run_cli(ws, "init", ".").returncode == 0
    yield ws
    run_cli(ws, "sandbox", "stop")


def test_sandbox_start_send_read_and_stop(sandbox_ws: Path) -> None:
    """Verify a new user can start the sandbox, send an apology and read it over IMAP."""
    ws = sandbox_ws
    start = run_cli(ws, "sandbox", "start")
    assert start.returncode == 0, start.stderr
    assert "Sandbox running" in start.stdout
    assert (ws / ".mailer" / "sandbox" / ".env").stat().st_mode & 0o777 == 0o600
    sent = run_cli(
        ws,
        "--sandbox",
        "send",
        "--situation",
        "emergency",
        "--to",
        "interviewer@sandbox.test",
        "--interviewer",
        "Ana Ruiz",
        "--company",
        "Sandbox Co",
        "--role",
        "Analyst",
        "--interview",
        "2026-11-25 10:00",
        "--yes",
        # The user's real passwords, exported in their shell: the sandbox uses its own (the
        # real one was sent to the sandbox, whose sign-in then failed: a walkthrough).
        env={"MAILER_SMTP_PASSWORD": "RealAccountPw-321", "MAILER_IMAP_PASSWORD": "RealPw-654"},
    )
    assert sent.returncode == 0, sent.stderr
    assert "Sent copy: saved" in sent.stdout, sent.stdout
    inbox = run_cli(ws, "sandbox", "inbox", "interviewer@sandbox.test")
    assert (
        "Apologies for missing our interview at Sandbox Co on Wednesday 25 November" in inbox.stdout
    )
    # Sandbox threads live in the sandbox's own store, never in the real one.
    assert (ws / ".mailer" / "sandbox" / "state.db").exists()
    assert not (ws / ".mailer" / "state.db").exists()
    assert "Sandbox Co" in run_cli(ws, "--sandbox", "status").stdout
    assert run_cli(ws, "sandbox", "stop").returncode == 0
    assert run_cli(ws, "sandbox", "status").returncode == 1


def test_stopping_when_no_sandbox_runs_says_so_plainly_and_succeeds(sandbox_ws: Path) -> None:
    """Verify a stray stop says no sandbox is running, exits 0 (nothing is left running, as
    the user wanted) and does not suggest starting one."""
    stop = run_cli(sandbox_ws, "sandbox", "stop")
    assert (stop.returncode, stop.stdout, stop.stderr) == (
        0,
        "No sandbox is running; nothing to stop.\n",
        "",
    )


def test_stopping_a_sandbox_whose_servers_are_gone_removes_what_it_left(sandbox_ws: Path) -> None:
    """Verify a stop finding the sandbox's record but no servers says no sandbox was running,
    removes its files and exits 0."""
    from mailer.sandbox.stack import StackInfo, sandbox_dir

    left = sandbox_dir(sandbox_ws) / "stack"
    left.mkdir(parents=True)
    (left / "dovecot.log").write_text("")
    StackInfo(str(left), "127.0.0.1", 1, 2, 3, 4, 5, 6, str(left / "ca.pem"), {}).save(
        sandbox_dir(sandbox_ws) / "stack.json"
    )
    stop = run_cli(sandbox_ws, "sandbox", "stop")
    assert (stop.returncode, stop.stdout, stop.stderr) == (
        0,
        "No sandbox was running; removed what a stopped one left behind.\n",
        "",
    )
    assert not left.exists() and not (sandbox_dir(sandbox_ws) / "stack.json").exists()


@pytest.mark.wire  # a real process stands in for the program that took over the PIDs
def test_stopping_after_a_reboot_leaves_the_programs_that_took_the_pids_alone(
    sandbox_ws: Path,
) -> None:
    """Verify a stop whose record names PIDs that now run other programs (as after a reboot:
    same numbers, other start times) stops neither of them and removes the files."""
    import subprocess
    import sys

    from mailer.adapters import process
    from mailer.sandbox.stack import StackInfo, sandbox_dir

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        real = process.start_mark(other.pid)
        assert real != "-"
        left = sandbox_dir(sandbox_ws) / "stack"
        left.mkdir(parents=True)
        info = StackInfo(str(left), "127.0.0.1", 1, 2, 3, 4, 5, 6, str(left / "ca.pem"), {})
        info.smtp_pid = info.dovecot_pid = other.pid
        # Started long before (Linux marks are clock ticks, others seconds):
        earlier = str(int(real) - 1000) if real.isdigit() else f"{float(real) - 1000:.2f}"
        info.smtp_mark = info.dovecot_mark = earlier
        info.save(sandbox_dir(sandbox_ws) / "stack.json")
        stop = run_cli(sandbox_ws, "sandbox", "stop")
        assert stop.returncode == 0, stop.stderr
        assert "No sandbox was running" in stop.stdout
        assert other.poll() is None  # still running: not ours to stop
        assert not left.exists()
    finally:
        other.kill()
        other.wait()


def test_the_sandbox_is_not_stopped_under_a_daemon_working_on_it(sandbox_ws: Path) -> None:
    """Verify 'sandbox stop' while a daemon holds the sandbox store's lock is refused,
    naming it (exit 8): the daemon went on retrying the gone servers, and a second one could
    start on the same store once the lock file went with the sandbox (a walkthrough)."""
    from mailer.adapters.lock import store_lock

    ws = sandbox_ws
    assert run_cli(ws, "sandbox", "start").returncode == 0
    url = f"sqlite:///{ws / '.mailer' / 'sandbox' / 'state.db'}"
    held = store_lock(url, ws, "mailer --sandbox daemon").acquire()
    try:
        refused = run_cli(ws, "sandbox", "stop")
        assert refused.returncode == 8, refused.stdout + refused.stderr
        assert "held by mailer --sandbox daemon" in refused.stderr
        assert "stop it first" in refused.stderr
        assert run_cli(ws, "sandbox", "status").returncode == 0  # still running
    finally:
        held.release()
    assert run_cli(ws, "sandbox", "stop").returncode == 0


def test_a_start_after_a_crash_says_what_it_removes_and_waits_for_a_daemon_on_it(
    sandbox_ws: Path,
) -> None:
    """Verify a start over a sandbox whose servers died says its threads were removed (they
    went silently: a walkthrough lost 40 threads), and is refused while a daemon still
    works on that store (exit 8), which would have had its store deleted under it."""
    from mailer.adapters.lock import store_lock
    from mailer.adapters.store import Store
    from mailer.sandbox.stack import StackInfo, sandbox_dir

    from .test_status_reads import _sent

    ws = sandbox_ws
    left = sandbox_dir(ws) / "stack"
    left.mkdir(parents=True)
    StackInfo(str(left), "127.0.0.1", 1, 2, 3, 4, 5, 6, str(left / "ca.pem"), {}).save(
        sandbox_dir(ws) / "stack.json"
    )
    url = f"sqlite:///{sandbox_dir(ws) / 'state.db'}"
    store = Store(url)
    for i in (1, 2):
        _sent(store, i)
    store.close()
    held = store_lock(url, ws, "mailer --sandbox daemon").acquire()
    try:
        refused = run_cli(ws, "sandbox", "start")
        assert refused.returncode == 8 and "mailer sandbox start" in refused.stderr
    finally:
        held.release()
    started = run_cli(ws, "sandbox", "start")
    assert started.returncode == 0, started.stderr
    assert "The earlier sandbox's mail and its 2 thread(s) were removed" in started.stdout
    assert "No threads yet" in run_cli(ws, "--sandbox", "status").stdout
    assert run_cli(ws, "sandbox", "stop").returncode == 0


@pytest.mark.process  # a crash point ends the send's process
def test_sandbox_reply_answers_only_an_apology_that_arrived(sandbox_ws: Path) -> None:
    """Verify the pretend interviewer answers a thread whose apology is in their mailbox,
    and refuses one whose send was cut off before the server took it: that reply told
    mailer the apology was delivered (a walkthrough)."""
    ws = sandbox_ws
    assert run_cli(ws, "sandbox", "start").returncode == 0
    to = "interviewer@sandbox.test"
    sent = run_cli(ws, "--sandbox", *send_args(to=to, company="Arrived Co"))
    assert sent.returncode == 0, sent.stderr
    cut = run_cli(
        ws,
        "--sandbox",
        *send_args(to=to, company="Cut Co", interview="2026-11-24 10:00"),
        env={"MAILER_CRASH_AT": "after-queued"},
        process=True,
    )
    assert cut.returncode != 0
    answered = run_cli(ws, "--sandbox", "sandbox", "reply", "1")
    assert answered.returncode == 0 and "answered thread 1" in answered.stdout, answered.stderr
    refused = run_cli(ws, "--sandbox", "sandbox", "reply", "2")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "has not received thread 2's apology" in refused.stderr
    inbox = run_cli(ws, "sandbox", "inbox", "you@sandbox.test")
    assert inbox.stdout.count("Re: ") == 1
    assert run_cli(ws, "sandbox", "stop").returncode == 0


def test_starting_twice_is_a_clear_error(sandbox_ws: Path) -> None:
    """Verify a second start gives one line and a non-zero exit."""
    ws = sandbox_ws
    assert run_cli(ws, "sandbox", "start").returncode == 0
    again = run_cli(ws, "sandbox", "start")
    assert again.returncode != 0
    assert len(again.stderr.strip().splitlines()) == 1
    assert "already running" in again.stderr


def test_sandbox_flag_without_a_running_sandbox_is_refused(sandbox_ws: Path) -> None:
    """Verify --sandbox never falls back to the real config when the sandbox is down."""
    r = run_cli(sandbox_ws, "--sandbox", "status")
    assert r.returncode != 0
    assert f"the sandbox of {sandbox_ws} is not running" in r.stderr
    assert "started outside any workspace" not in r.stderr  # no other one runs


def _one_entry_campaign(ws: Path) -> Path:
    """A campaign file of one apology to the sandbox's interviewer."""
    camp = ws / "camp.toml"
    camp.write_text(
        '[defaults]\nsituation = "illness"\n\n[[entries]]\nto = "interviewer@sandbox.test"\n'
        'interviewer = "Ana Ruiz"\ncompany = "Acme"\nrole = "Engineer"\n'
        'interview = "2026-11-24 10:00"\n',
        encoding="utf-8",
    )
    return camp


def test_a_campaign_run_with_the_sandbox_stopped_says_so_at_once(sandbox_ws: Path) -> None:
    """Verify `--sandbox campaign run` after `sandbox stop` gives the one "not running" line
    every other sandbox command gives, without trying the ports the sandbox had (it waited
    for a refused connection and failed the entry; newcomer walkthrough, session 16)."""
    assert run_cli(sandbox_ws, "sandbox", "start").returncode == 0
    camp = _one_entry_campaign(sandbox_ws)
    assert run_cli(sandbox_ws, "sandbox", "stop").returncode == 0
    r = run_cli(sandbox_ws, "--sandbox", "campaign", "run", str(camp), "--yes")
    assert r.returncode != 0
    assert f"the sandbox of {sandbox_ws} is not running" in r.stderr, r.stdout + r.stderr
    assert "connection refused" not in r.stdout + r.stderr


def test_the_inbox_of_an_address_the_sandbox_has_not_is_bad_input(sandbox_ws: Path) -> None:
    """Verify `sandbox inbox` of an address with no sandbox mailbox exits 2 (bad input, as
    elsewhere), naming the mailboxes there are (it exited 1; walkthrough, session 16)."""
    assert run_cli(sandbox_ws, "sandbox", "start").returncode == 0
    r = run_cli(sandbox_ws, "sandbox", "inbox", "nobody@sandbox.test")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "no sandbox mailbox 'nobody@sandbox.test' (there are: " in r.stderr
    assert "interviewer@sandbox.test" in r.stderr


def test_the_advice_of_a_sandbox_command_names_the_sandbox(sandbox_ws: Path) -> None:
    """Verify advice printed in --sandbox mode names 'mailer --sandbox ...' (a run with
    nothing left to send points to 'campaign status'): without it, the advice acted on the
    user's real threads (walkthrough, session 16)."""
    assert run_cli(sandbox_ws, "sandbox", "start").returncode == 0
    camp = _one_entry_campaign(sandbox_ws)
    first = run_cli(sandbox_ws, "--sandbox", "campaign", "run", str(camp), "--yes")
    assert first.returncode == 0, first.stdout + first.stderr
    again = run_cli(sandbox_ws, "--sandbox", "campaign", "run", str(camp), "--yes")
    assert f"('mailer --sandbox campaign status {camp}' shows each)" in again.stdout, again.stdout


def test_a_workspace_without_its_sandbox_names_the_one_running_outside_it(
    sandbox_ws: Path, tmp_path: Path
) -> None:
    """Verify that, with the per-user sandbox running (started outside any workspace), a
    sandbox command inside a workspace whose own sandbox is stopped says which is which."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    assert run_cli(outside, "sandbox", "start").returncode == 0
    try:
        r = run_cli(sandbox_ws, "sandbox", "inbox", "interviewer@sandbox.test")
        assert r.returncode != 0
        assert f"the sandbox of {sandbox_ws} is not running" in r.stderr
        assert "the sandbox running now is the one started outside any workspace" in r.stderr
        # ...and stopping inside the workspace says that one still runs (newcomer, session 15).
        stop = run_cli(sandbox_ws, "sandbox", "stop")
        assert stop.returncode == 0, stop.stderr
        assert "No sandbox is running; nothing to stop." in stop.stdout
        assert "The sandbox started outside any workspace is still running" in stop.stdout
    finally:
        last = run_cli(outside, "sandbox", "stop")
    assert "Sandbox stopped." in last.stdout and "still running" not in last.stdout


def test_init_never_overwrites(tmp_path: Path) -> None:
    """Verify a second init keeps every existing file, and .env is private."""
    ws = tmp_path / "w"
    first = run_cli(tmp_path, "init", "w")
    assert first.returncode == 0 and "created" in first.stdout
    (ws / "config" / "mailer.toml").write_text("# mine\n")
    second = run_cli(tmp_path, "init", "w")
    assert "created" not in second.stdout
    assert (ws / "config" / "mailer.toml").read_text() == "# mine\n"
    assert (ws / ".env").stat().st_mode & 0o777 == 0o600
    # templates/ holds only the user's overrides: none yet (issue 12).
    assert (ws / "templates").is_dir() and not list((ws / "templates").iterdir())


def test_env_example_shipped_in_package_matches_repository() -> None:
    """Verify the copy of .env.example that init uses is the documented one."""
    root = Path(__file__).parents[1]
    assert (root / "templates" / "env.example.txt").read_text() == (
        root / ".env.example"
    ).read_text()


def test_sandbox_without_dovecot_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    """Verify the prerequisite check names the missing package, and no longer asks for root."""
    from mailer.errors import SandboxError
    from mailer.sandbox import stack as sandbox

    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 1000)
    sandbox.check_prerequisites()  # an ordinary user may start it (Dovecot is installed here)
    monkeypatch.setattr(sandbox.shutil, "which", lambda _: None)
    monkeypatch.setattr(sandbox, "Path", lambda p: Path("/nonexistent") / p.lstrip("/"))
    monkeypatch.setattr(sandbox.process, "Path", lambda p: Path("/nonexistent") / p.lstrip("/"))
    with pytest.raises(SandboxError, match="needs Dovecot") as info:
        sandbox.check_prerequisites()
    assert "apt-get install -y dovecot-imapd dovecot-lmtpd" in (info.value.hint or "")


def test_unedited_init_config_never_sends_as_your_name(tmp_path: Path) -> None:
    """Verify the examples 'mailer init' writes are refused until replaced."""
    assert run_cli(tmp_path, "init", ".").returncode == 0
    r = run_cli(
        tmp_path,
        "preview",
        "--situation",
        "illness",
        "--to",
        "a@acme.example",
        "--interviewer",
        "Ana",
        "--company",
        "Acme",
        "--role",
        "R",
        "--interview",
        "2026-11-25 10:00",
    )
    assert r.returncode == 3
    assert "sender.name: still 'Your Name'" in r.stderr
    # preview never connects: the example servers are not its business (issue 12) ...
    assert "smtp.host" not in r.stderr
    # ... but anything that sends refuses every example, the address included.
    sent = run_cli(tmp_path, *send_args(to="a@acme.example", company="Acme"), "--dry-run")
    assert sent.returncode == 3
    assert "sender.name: still 'Your Name'" in sent.stderr
    assert "sender.address: still 'you@example.com'" in sent.stderr
    assert "smtp.host: still 'smtp.example.com'" in sent.stderr


def test_output_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    """Verify `mailer situations | head -1` ends without an error message."""
    import subprocess
    import sys

    r = subprocess.run(
        f"{sys.executable} -m mailer.cli.main situations | head -c 1 >/dev/null; "
        f"{sys.executable} -m mailer.cli.main --help | head -c 1 >/dev/null",
        shell=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert "Error" not in r.stderr and "Traceback" not in r.stderr, r.stderr


def assert_private(stack_dir: Path) -> None:
    """The passwd-file is 0600 and every mail folder 0700."""
    users = stack_dir / "users"
    assert users.stat().st_mode & 0o777 == 0o600
    assert "{PLAIN}" in users.read_text()  # the passwords, in clear
    mail = stack_dir / "mail"
    folders = [mail, *(p for p in mail.rglob("*") if p.is_dir())]
    assert len(folders) > 1
    # Files inside (Dovecot makes its uidvalidity marker 0444) are out of reach through these.
    for folder in folders:
        assert folder.stat().st_mode & 0o777 == 0o700, folder


def test_sandbox_start_keeps_passwords_and_mail_private(sandbox_ws: Path) -> None:
    """Verify `mailer sandbox start` writes its users file 0600 and mail folders 0700, and
    Dovecot still logs in and delivers."""
    import json

    ws = sandbox_ws
    assert run_cli(ws, "sandbox", "start").returncode == 0
    info = json.loads((ws / ".mailer" / "sandbox" / "stack.json").read_text())
    sent = run_cli(
        ws,
        "--sandbox",
        "send",
        "--situation",
        "emergency",
        "--to",
        "interviewer@sandbox.test",
        "--interviewer",
        "Ana Ruiz",
        "--company",
        "Private Co",
        "--role",
        "Analyst",
        "--interview",
        "2026-11-25 10:00",
        "--yes",
    )
    assert sent.returncode == 0, sent.stderr
    inbox = run_cli(ws, "sandbox", "inbox", "interviewer@sandbox.test")
    assert inbox.returncode == 0, inbox.stderr
    assert "Apologies for missing our interview" in inbox.stdout
    assert_private(Path(info["dir"]))


def test_the_test_stack_keeps_passwords_and_mail_private(stack: Stack, pair: Pair) -> None:
    """Verify MailStack.start (the suite's stack) and add_user keep the same modes, with a
    mailbox added while running still reachable over IMAP."""
    pair.send_as(pair.interviewer, pair.candidate, "Private check", "hello")
    with stack.imap(SENDER) as c:
        c.select_folder("INBOX", readonly=True)
    assert_private(Path(stack.info.dir))


def test_dovecot_config_for_an_ordinary_user_runs_everything_as_them() -> None:
    """Verify the rootless config names the user for every internal and login process and
    turns off chroot, and that root's config keeps Dovecot's own users and chroots."""
    from mailer.sandbox.stack import Identity, StackInfo, _dovecot_conf

    info = StackInfo("/tmp/mlr-x", "127.0.0.1", 1, 2, 3, 4, 5, 6, "", {})
    rootless = _dovecot_conf(info, Identity(True, 1000, 1000, "ann", "staff"))
    for line in (
        "default_internal_user = ann",
        "default_internal_group = staff",
        "default_login_user = ann",
        "service imap-login {\n  chroot =\n}",
    ):
        assert line in rootless
    assert "service anvil {\n  chroot =\n" in rootless
    as_root = _dovecot_conf(info, Identity(False, 65534, 65534))
    assert "default_internal_user" not in as_root and "chroot" not in as_root


SEND_TO_SANDBOX = [
    "send",
    "--situation",
    "emergency",
    "--interviewer",
    "Ana Ruiz",
    "--company",
    "Sandbox Co",
    "--role",
    "Analyst",
    "--interview",
    "2026-11-25 10:00",
    "--yes",
]


def _stack_dir(ws: Path) -> Path:
    import json

    return Path(json.loads((ws / ".mailer" / "sandbox" / "stack.json").read_text())["dir"])


def _owners(path: Path) -> set[int]:
    return {p.lstat().st_uid for p in [path, *path.rglob("*")]}


def _process_owner(ws: Path, key: str) -> int:
    import json

    pid = json.loads((ws / ".mailer" / "sandbox" / "stack.json").read_text())[key]
    return Path(f"/proc/{pid}").stat().st_uid


def test_an_ordinary_user_runs_the_sandbox_and_owns_every_mailbox(
    ordinary_mailer: tuple[OrdinaryUser, Path],
) -> None:
    """Verify `mailer sandbox start/send/inbox/stop` work for a non-root user (mailer-ci under
    root), with Dovecot and the SMTP server running as that user and every mailbox theirs."""
    user, bin_dir = ordinary_mailer
    home = user.scratch()
    ws = home / "ws"
    env = {**user.env(home), "MAILER_NOW": NOW}

    def mailer(*args: str):
        return user.run([str(bin_dir / "mailer"), *args], cwd=ws, env=env)

    try:
        user.run([str(bin_dir / "mailer"), "init", str(ws)], cwd=home, env=env, check=True)
        start = mailer("sandbox", "start")
        assert start.returncode == 0, start.stderr
        assert "Sandbox running" in start.stdout
        assert _process_owner(ws, "dovecot_pid") == user.uid
        assert _process_owner(ws, "smtp_pid") == user.uid
        sent = mailer("--sandbox", *SEND_TO_SANDBOX, "--to", "interviewer@sandbox.test")
        assert sent.returncode == 0, sent.stderr
        inbox = mailer("sandbox", "inbox", "interviewer@sandbox.test")
        assert inbox.returncode == 0, inbox.stderr
        assert (
            "Apologies for missing our interview at Sandbox Co on Wednesday 25 November"
            in inbox.stdout
        )
        stack_dir = _stack_dir(ws)
        assert _owners(stack_dir / "mail") == {user.uid}
        assert_private(stack_dir)
        stop = mailer("sandbox", "stop")
        assert stop.returncode == 0, stop.stderr
        assert not stack_dir.exists()
    finally:
        mailer("sandbox", "stop")
        import shutil

        shutil.rmtree(home, ignore_errors=True)


def test_root_runs_the_sandbox_with_mail_stored_as_nobody(sandbox_ws: Path) -> None:
    """Verify that started by root, Dovecot's master runs as root and the mail belongs to
    'nobody' (Dovecot refuses to store mail as root), and sending still works."""
    import os

    if os.geteuid() != 0:
        unavailable("the root case needs the suite to run as root (CI does)")
    ws = sandbox_ws
    assert run_cli(ws, "sandbox", "start").returncode == 0
    assert _process_owner(ws, "dovecot_pid") == 0
    sent = run_cli(ws, "--sandbox", *SEND_TO_SANDBOX, "--to", "interviewer@sandbox.test")
    assert sent.returncode == 0, sent.stderr
    inbox = run_cli(ws, "sandbox", "inbox", "interviewer@sandbox.test")
    assert "Apologies for missing our interview" in inbox.stdout
    assert _owners(_stack_dir(ws) / "mail") == {65534}


def test_sending_to_an_address_without_a_sandbox_mailbox_is_refused_before_sending(
    sandbox_ws: Path,
) -> None:
    """Verify --to or --cc outside the sandbox's mailboxes exits 2 with one line listing the
    mailboxes, and nothing reaches the SMTP server (not even the valid recipient's copy)."""
    ws = sandbox_ws
    assert run_cli(ws, "sandbox", "start").returncode == 0
    log = _stack_dir(ws) / "smtp.log"
    before = log.read_bytes() if log.exists() else b""
    for extra in (
        ["--to", "ana@acme.example"],
        ["--to", "interviewer@sandbox.test", "--cc", "ghost@sandbox.test"],
    ):
        r = run_cli(ws, "--sandbox", *SEND_TO_SANDBOX, *extra)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, r.stderr
        unknown = extra[-1]
        assert lines[0].startswith(f"mailer: error: the sandbox has no mailbox {unknown}; ")
        assert (
            "its mailboxes: interviewer@sandbox.test, recruiter@sandbox.test, you@sandbox.test"
            in lines[0]
        )
        assert "Sent:" not in r.stdout
    after = log.read_bytes() if log.exists() else b""
    assert after == before  # no connection, no MAIL FROM, no RCPT
    inbox = run_cli(ws, "sandbox", "inbox", "interviewer@sandbox.test")
    assert inbox.returncode == 0, inbox.stderr
    assert "Apologies" not in inbox.stdout
    assert "No threads yet" in run_cli(ws, "--sandbox", "status").stdout


def test_a_sandbox_campaign_with_an_address_outside_the_sandbox_sends_nothing(
    sandbox_ws: Path,
) -> None:
    """Verify `mailer --sandbox campaign run` refuses the whole run, before any entry is sent,
    when one entry's address has no sandbox mailbox."""
    ws = sandbox_ws
    assert run_cli(ws, "sandbox", "start").returncode == 0
    campaign = ws / "week49.toml"
    campaign.write_text(
        '[defaults]\nsituation = "illness"\nnote = "I am sorry to have missed it."\n'
        + "".join(
            f'[[entries]]\nto = "{to}"\ninterviewer = "Ana Ruiz"\ncompany = "Co {n}"\n'
            f'role = "Analyst"\ninterview = "2026-11-2{n} 10:00"\n'
            for n, to in enumerate(("interviewer@sandbox.test", "ana@acme.test"), start=1)
        ),
        encoding="utf-8",
    )
    log = _stack_dir(ws) / "smtp.log"
    before = log.read_bytes() if log.exists() else b""
    # The check says it first, as the run will (it said "2 entries valid"; a walkthrough).
    checked = run_cli(ws, "--sandbox", "campaign", "check", str(campaign))
    assert checked.returncode == 2 and "the sandbox has no mailbox ana@acme.test" in (
        checked.stderr
    ), checked.stdout + checked.stderr
    r = run_cli(ws, "--sandbox", "campaign", "run", str(campaign), "--yes")
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip().splitlines() == [
        "mailer: error: the sandbox has no mailbox ana@acme.test; nothing was sent "
        "(its mailboxes: interviewer@sandbox.test, recruiter@sandbox.test, you@sandbox.test; "
        "any address at unreachable.test bounces)"
    ]
    assert (log.read_bytes() if log.exists() else b"") == before
    inbox = run_cli(ws, "sandbox", "inbox", "interviewer@sandbox.test")
    assert "(no messages for interviewer@sandbox.test)" in inbox.stdout


class _RecordedStack:
    """Stands in for MailStack: records whether servers were started and stopped."""

    calls: ClassVar[list[str]] = []

    def start(self) -> object:
        from mailer.sandbox.stack import StackInfo

        self.calls.append("start")
        return StackInfo("", "127.0.0.1", 1, 2, 3, 4, 5, 6, "/nonexistent/ca.pem", {})

    def stop(self) -> None:
        self.calls.append("stop")


def test_a_sandbox_start_that_fails_leaves_no_servers_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify a start whose folder cannot be made starts no server, and a start that fails
    after its servers are up stops them: nothing records them, so nothing else could."""
    from mailer.sandbox import stack

    calls: ClassVar[list[str]] = []
    monkeypatch.setattr(_RecordedStack, "calls", calls)
    monkeypatch.setattr(stack.MailStack, "create", classmethod(lambda cls: _RecordedStack()))
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    with pytest.raises(OSError):
        stack.start_sandbox(blocked)  # its .mailer/sandbox cannot be made under a file
    assert calls == []
    with pytest.raises(OSError):
        stack.start_sandbox(tmp_path / "ws")  # the CA file to copy is not there
    assert calls == ["start", "stop"]
    assert not (tmp_path / "ws" / ".mailer" / "sandbox" / "stack.json").exists()
