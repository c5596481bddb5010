"""Shared fixtures: one real Dovecot + SMTP stack per test session, and throwaway workspaces.

The stack is :mod:`mailer.sandbox.stack`, the same code as ``mailer sandbox start``. A missing
server binary is an error, never a skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from hypothesis import settings as hypothesis_settings

from mailer.sandbox.oauth import OAuthServer
from mailer.sandbox.stack import MailStack, StackInfo

from .postgres import Postgres
from .users import OrdinaryUser, build_wheel, install_into_fresh_venv

# Property tests draw the same cases on every run, so CI never fails on a draw nobody saw
# and a failure can be rerun. HYPOTHESIS_PROFILE=explore draws new ones (run it by hand).
hypothesis_settings.register_profile("mailer", derandomize=True, database=None)
hypothesis_settings.register_profile("explore", derandomize=False)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "mailer"))

ROOT = Path(__file__).resolve().parents[1]
SENDER = "you@sandbox.test"
INTERVIEWER = "interviewer@sandbox.test"
USERS = {
    SENDER: "you-secret-pw-1",
    INTERVIEWER: "interviewer-pw-2",
    "recruiter@sandbox.test": "recruiter-pw-3",
    "zoe@sandbox.test": "zoe-pw-4",
}
# A fixed "now" for every CLI run: tests never depend on today's date.
NOW = "2026-11-25T15:00:00+00:00"


class Stack:
    def __init__(self, stack: MailStack) -> None:
        self.stack = stack
        self.info: StackInfo = stack.info

    def log_mark(self) -> int:
        return self.info.smtp_log.stat().st_size if self.info.smtp_log.exists() else 0

    def log_since(self, mark: int) -> list[dict]:
        with self.info.smtp_log.open("rb") as f:
            f.seek(mark)
            data = f.read()
        # Whole lines only: a reader polling while the server appends a line can see part of
        # it (a write to a file is not atomic for readers); it is there whole next time.
        whole = data[: data.rfind(b"\n") + 1].decode()
        return [json.loads(line) for line in whole.splitlines() if line.strip()]

    def set_faults(self, **faults: object) -> None:
        self.info.faults_file.write_text(json.dumps(faults), encoding="utf-8")

    def clear_faults(self) -> None:
        self.info.faults_file.unlink(missing_ok=True)

    def imap(self, user: str):
        from imapclient import IMAPClient

        ctx = ssl.create_default_context(cafile=self.info.ca_file)
        c = IMAPClient(
            self.info.host, port=self.info.imaps_port, ssl=True, ssl_context=ctx, timeout=10
        )
        c.login(user, self.info.users[user])
        return c

    def messages_with_id(self, user: str, message_id: str, folder: str = "INBOX") -> list[bytes]:
        """Every copy of one message in a folder, found by its Message-ID header."""
        with self.imap(user) as c:
            c.select_folder(folder, readonly=True)
            uids = c.search(["HEADER", "Message-ID", message_id])
            fetched = c.fetch(uids, [b"BODY.PEEK[]"]) if uids else {}
            return [fetched[u][b"BODY[]"] for u in sorted(fetched)]


@pytest.fixture(scope="session", autouse=True)
def _private_user_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test reads or writes the real home's user-level config, state or cache: the per-user
    directories (click.get_app_dir, platformdirs) follow XDG_* on Linux, and subprocesses
    inherit them. Tests about those directories give each test its own (``user_dirs``)."""
    home = tmp_path_factory.mktemp("user-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CONFIG_HOME", str(home / "config"))
        mp.setenv("XDG_DATA_HOME", str(home / "data"))
        mp.setenv("XDG_CACHE_HOME", str(home / "cache"))  # compiled templates
        yield


@pytest.fixture
def user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """This test's own per-user config and data directories: (config dir, data dir)."""
    config, data = tmp_path / "xdg-config", tmp_path / "xdg-data"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    return config / "mailer", data / "mailer"


@pytest.fixture(scope="session")
def oauth_server() -> Iterator[OAuthServer]:
    """The local OAuth2 authorization server, over real HTTP on 127.0.0.1. Its users are the
    mail stack's, with the same passwords (read when they sign in, so added mailboxes count)."""
    holder: dict[str, dict[str, str]] = {"users": dict(USERS)}
    server = OAuthServer(users=lambda: holder["users"])
    server.start()
    server.holder = holder  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mail_stack(oauth_server: OAuthServer) -> Iterator[Stack]:
    stack = MailStack.create(users=USERS, oauth_url=oauth_server.url)
    oauth_server.holder["users"] = stack.info.users  # type: ignore[attr-defined]
    stack.start()
    shared = Stack(stack)
    try:
        _wait_for_start_up_probes(shared)
        yield shared
    finally:
        stack.stop()


def _wait_for_start_up_probes(stack: Stack) -> None:
    """Until the SMTP server has logged the connections start() made to see it listen (the
    plain listener's is the last): its thread writes them a moment later, and the first
    test's log mark must come after them, or "nothing connected" fails (a flaky test of
    sessions 13-15)."""
    deadline = time.monotonic() + 10
    log = stack.info.smtp_log
    while not (log.exists() and any(e.get("listener") == "plain" for e in stack.log_since(0))):
        assert time.monotonic() < deadline, "the SMTP server never logged its start-up probes"
        time.sleep(0.02)  # polling the server's log for a condition


@pytest.fixture
def stack(mail_stack: Stack) -> Iterator[Stack]:
    mail_stack.clear_faults()
    yield mail_stack
    mail_stack.clear_faults()


def write_config(
    ws: Path,
    info: StackInfo,
    *,
    security: str = "starttls",
    port: int | None = None,
    ca: bool = True,
    password: str | None = None,
    extra: str = "",
    sender: str = SENDER,
) -> Path:
    (ws / "config").mkdir(parents=True, exist_ok=True)
    port = (
        port
        or {"starttls": info.smtp_port, "ssl": info.smtps_port, "plain": info.smtp_plain_port}[
            security
        ]
    )
    ca_line = f'ca_file = "{info.ca_file}"' if ca else ""
    (ws / "config" / "mailer.toml").write_text(
        textwrap.dedent(f"""\
        [sender]
        name = "Sam Candidate"
        address = "{sender}"
        phone = "+44 7700 900123"
        timezone = "Europe/London"

        [smtp]
        host = "{info.host}"
        port = {port}
        security = "{security}"
        timeout = 10
        {ca_line}

        [imap]
        host = "{info.host}"
        port = {info.imaps_port}
        security = "ssl"
        timeout = 10
        {ca_line}

        [addresses]
        allow_test_domains = true
        """)
        + extra,
        encoding="utf-8",
    )
    env = ws / ".env"
    env.write_text(f"MAILER_SMTP_PASSWORD={password or info.users[sender]}\n", encoding="utf-8")
    env.chmod(0o600)
    return ws


@pytest.fixture
def workspace(stack: Stack, tmp_path: Path) -> Path:
    return write_config(tmp_path / "ws", stack.info)


@pytest.fixture(scope="session")
def offline_info(tmp_path_factory: pytest.TempPathFactory) -> StackInfo:
    """Where a stack would listen, with nothing listening: loopback ports taken from sockets
    the kernel gave and that are closed again, a CA file of its own, the sandbox's users.
    For tests of commands that never connect, so they need no server (and are unit tests)."""
    from mailer.sandbox.stack import HOST, _write_certs, free_ports

    d = tmp_path_factory.mktemp("offline-stack")
    smtp, smtps, plain, imap, imaps, lmtp = free_ports(6)
    return StackInfo(
        dir=str(d),
        host=HOST,
        smtp_port=smtp,
        smtps_port=smtps,
        smtp_plain_port=plain,
        imap_port=imap,
        imaps_port=imaps,
        lmtp_port=lmtp,
        ca_file=str(_write_certs(d)),
        users=dict(USERS),
    )


@pytest.fixture
def offline_workspace(offline_info: StackInfo, tmp_path: Path) -> Path:
    """The same files as ``workspace`` (config, .env, templates), pointing at servers that
    are not there: a test using it is a unit test and runs mailer in this process."""
    return write_config(tmp_path / "ws", offline_info)


# How ``run_cli`` runs mailer when a test does not say: in this process (click's CliRunner),
# except in a test marked ``process``. Set by ``_layer_rules`` per test;
# MAILER_TEST_CLI=process runs every call as a process, =in-process every call that does not
# ask for a process in this one (to compare the two ways).
_in_process_default = False


def run_cli(
    ws: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    input: str | None = None,
    process: bool | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``mailer`` in the workspace as a user would, with the clock pinned at ``NOW``.

    It runs in this process (see :func:`run_in_process`), unless the test is marked
    ``process`` or the call says ``process=True``: then as its own process. A test that needs
    a real process (a kill, a signal, a lock held by another process, a crash point, a
    fresh interpreter) is marked ``process``, which puts it in the wire layer."""
    if process is None:
        forced = os.environ.get("MAILER_TEST_CLI", "")
        process = forced == "process" or (forced != "in-process" and not _in_process_default)
    if not process:
        return run_in_process(ws, *args, env=env, input=input)
    full_env = {
        k: v
        for k, v in os.environ.items()
        if (not k.startswith("MAILER_") or k == "MAILER_CORPUS") and k not in ("COLUMNS", "LINES")
    }
    full_env.update({"MAILER_NOW": NOW, **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "mailer.cli.main", *args],
        cwd=ws,
        env=full_env,
        text=True,
        capture_output=True,
        timeout=timeout,
        input=input if input is not None else "",
    )


def run_in_process(
    ws: Path, *args: str, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``mailer ARGS`` through click's CliRunner, made to look like a fresh process to the
    code under test: the same environment ``run_cli`` gives a process (MAILER_* of the test
    run dropped), the workspace as the current directory, stdin a pipe holding ``input``,
    stdout and stderr apart, the exit code from ``sys.exit``; and what mailer keeps per
    process (logging set-up, signal handlers, password and crash-point caches) is reset
    before and put back after, so no run leaks into the next. An exception that escapes the
    CLI is raised here, where a process would have printed a traceback and exited 1."""
    from click.testing import CliRunner

    from mailer.adapters import crashpoint, passwords
    from mailer.cli.main import cli

    wanted = {"MAILER_NOW": NOW, **(env or {})}
    if "MAILER_CRASH_AT" in wanted:
        raise RuntimeError("a crash point kills the process: use run_cli(..., process=True)")
    runner_env: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith("MAILER_") and k != "MAILER_CORPUS"
    }
    # A pipe has no width: pytest-xdist's workers inherit COLUMNS=80 and LINES=24, which
    # would make mailer lay its tables out for a terminal.
    runner_env.update({"COLUMNS": None, "LINES": None})
    runner_env.update(wanted)
    passwords._cache.clear()
    crashpoint._hits.clear()
    with _fresh_logging(), _kept_signal_handlers(), contextlib.chdir(ws):
        result = CliRunner().invoke(
            cli,
            list(args),
            input=input if input is not None else "",
            env=runner_env,
            prog_name="mailer",
            catch_exceptions=False,
        )
    return subprocess.CompletedProcess(
        ["mailer", *args], result.exit_code, result.stdout, result.stderr
    )


@contextlib.contextmanager
def _fresh_logging() -> Iterator[None]:
    """The root logger as a new process has it (no handlers, so the CLI's basicConfig takes
    effect and writes to the captured stderr), and every logger's level put back after."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {
        name: lg.level
        for name, lg in logging.root.manager.loggerDict.items()
        if isinstance(lg, logging.Logger)
    }
    root.handlers.clear()
    # In a new process mailer's own loggers start at NOTSET: a level an earlier test left (a
    # caplog, a library call that set "mailer" to INFO) must not show here. Libraries' levels
    # stay: mailer sets some when its modules are imported (imapclient.util, whose warnings
    # quote server replies), and in this process that import happened once, earlier.
    for name, lg in logging.root.manager.loggerDict.items():
        if isinstance(lg, logging.Logger) and (name == "mailer" or name.startswith("mailer.")):
            lg.setLevel(logging.NOTSET)
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, lg in logging.root.manager.loggerDict.items():
            if isinstance(lg, logging.Logger):
                lg.setLevel(levels.get(name, logging.NOTSET))


@contextlib.contextmanager
def _kept_signal_handlers() -> Iterator[None]:
    import signal

    kept = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in kept.items():
            signal.signal(sig, handler)


def send_args(
    to: str = INTERVIEWER,
    company: str = "Acme",
    interview: str = "2026-11-25 10:00",
    situation: str = "illness",
    **extra: str,
) -> list[str]:
    args = [
        "send",
        "--situation",
        situation,
        "--to",
        to,
        "--interviewer",
        "Ana Ruiz",
        "--company",
        company,
        "--role",
        "Data Engineer",
        "--interview",
        interview,
        "--yes",
    ]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", value]
    return args


# --- mailer installed from its wheel, run by an ordinary user -------------------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A real PostgreSQL on 127.0.0.1, password logins only, for the whole session (#17).
    Never skipped: without the binaries this fails and says to run scripts/setup.sh."""
    pg = Postgres.start()
    try:
        yield pg
    finally:
        pg.stop()


@pytest.fixture
def pg_database(postgres: Postgres) -> Iterator[str]:
    """A fresh, empty database for one test; its name."""
    name = postgres.new_database()
    try:
        yield name
    finally:
        postgres.drop_database(name)


@pytest.fixture(scope="session")
def ordinary_mailer() -> Iterator[tuple[OrdinaryUser, Path]]:
    """An ordinary user (mailer-ci under root) and the bin/ of a venv they installed the
    wheel into. Built once per session; see tests/users.py."""
    user = OrdinaryUser()
    where = user.scratch()
    try:
        wheel = build_wheel(where / "dist")
        yield user, install_into_fresh_venv(user, where, wheel, user.env(where))
    finally:
        shutil.rmtree(where, ignore_errors=True)


# --- layers: unit, contract, wire ------------------------------------------------------------
# Every test is in exactly one layer, assigned here, never by hand except ``wire`` for a test
# that needs a real process without needing a server:
# - contract: under tests/contract/ (each adapter against its fake and the real thing);
# - wire: uses the real servers (a fixture that depends on one of SERVER_FIXTURES, however
#   indirectly: stack, workspace, pair...), or is marked ``integration`` or ``wire``;
# - unit: the rest, in this process. A unit test that starts a process fails and says so.
# `bash scripts/test.sh --fast` runs unit and contract (`-m "not wire"`); the default, and CI,
# runs all three.

SERVER_FIXTURES = frozenset({"mail_stack", "oauth_server", "ordinary_mailer", "postgres"})
LAYERS = ("unit", "contract", "wire")
CONTRACT_DIR = Path(__file__).resolve().parent / "contract"


def layer_of(path: Path, fixturenames: Iterable[str], marks: Iterable[str]) -> str:
    """The one layer a test belongs to (see above)."""
    if CONTRACT_DIR in Path(path).resolve().parents:
        return "contract"
    if SERVER_FIXTURES & set(fixturenames) or {"integration", "wire", "process"} & set(marks):
        return "wire"
    return "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marks = {m.name for m in item.iter_markers()}
        layer = layer_of(item.path, getattr(item, "fixturenames", ()), marks)
        if layer not in marks:
            item.add_marker(layer)


@pytest.fixture(autouse=True)
def _layer_rules(request: pytest.FixtureRequest) -> Iterator[None]:
    """``run_cli`` runs in this process in unit and contract tests, as a process in wire
    tests; a unit test may start no process at all (it would be a wire test)."""
    global _in_process_default
    # In-process everywhere (wire tests too: the real servers are their point, not the
    # process), except in a test marked ``process``: a kill, a crash point, a signal, a lock
    # held by another process, a keyring backend chosen per process, a fresh interpreter.
    _in_process_default = request.node.get_closest_marker("process") is None
    if request.node.get_closest_marker("unit") is None:
        yield
        return
    started = request.node.stash.setdefault(PROCESSES_REFUSED, [])
    with pytest.MonkeyPatch.context() as mp:
        for owner, name in _PROCESS_STARTERS:
            if hasattr(owner, name):
                mp.setattr(owner, name, _refuse_process(f"{owner.__name__}.{name}", started))
        yield
    if started:
        # Also when the code under test caught the refusal and carried on.
        pytest.fail(f"a unit test started a process ({started[0]}): mark it @pytest.mark.wire")


# What a unit test tried to start (a test of the guard itself empties it).
PROCESSES_REFUSED = pytest.StashKey[list[str]]()
_PROCESS_STARTERS = (
    (subprocess.Popen, "_execute_child"),
    (os, "fork"),
    (os, "forkpty"),
    (os, "posix_spawn"),
    (os, "posix_spawnp"),
)


def _refuse_process(what: str, started: list[str]):  # type: ignore[no-untyped-def]
    def refuse(*args: object, **kwargs: object) -> NoReturn:
        started.append(what)
        raise AssertionError(
            f"a unit test started a process ({what}): mark it @pytest.mark.wire, or use "
            "run_cli without process=True"
        )

    return refuse


# --- CI guard: a run of the whole suite must include the integration tests -------------------

_integration_passed = 0


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    global _integration_passed
    if report.when == "call" and report.passed and "integration" in report.keywords:
        _integration_passed += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("MAILER_REQUIRE_INTEGRATION") == "1" and _integration_passed == 0:
        print("\nERROR: no integration test ran against the real mail servers", file=sys.stderr)
        session.exitstatus = 1


# --- per-test mailboxes, for tests that watch for replies ------------------------------------

_counter = iter(range(1, 1_000_000))


class Pair:
    """A fresh candidate and interviewer (and an alternate), so replies never cross tests."""

    def __init__(self, stack: Stack, ws: Path) -> None:
        n = next(_counter)
        self.stack = stack
        self.ws = ws
        self.candidate = f"cand{n}@sandbox.test"
        self.interviewer = f"intv{n}@sandbox.test"
        self.alternate = f"alt{n}@sandbox.test"
        for user in (self.candidate, self.interviewer, self.alternate):
            stack.stack.add_user(user, f"pw-{user}")

    def send_as(
        self, user: str, to: str, subject: str, body: str, headers: dict[str, str] | None = None
    ) -> str:
        """Submit a message over SMTP (STARTTLS + AUTH) as a sandbox user; returns its ID."""
        import smtplib
        from email.message import EmailMessage
        from email.utils import make_msgid

        msg = EmailMessage()
        msg["From"] = user
        msg["To"] = to
        msg["Subject"] = subject
        msg["Message-ID"] = make_msgid(domain="sandbox.test")
        for k, v in (headers or {}).items():
            msg[k] = v
        msg.set_content(body)
        info = self.stack.info
        with smtplib.SMTP(info.host, info.smtp_port, timeout=10) as s:
            s.starttls(context=ssl.create_default_context(cafile=info.ca_file))
            s.login(user, info.users[user])
            s.send_message(msg)
        return str(msg["Message-ID"])

    def follow_ups_received(self, root_message_id: str) -> list[bytes]:
        """The follow-ups to that apology in the inboxes of both people the tests write to
        (an apology to the alternate was looked for in the interviewer's alone, so no
        follow-up to it was ever seen)."""
        out: list[bytes] = []
        for user in (self.interviewer, self.alternate):
            with self.stack.imap(user) as c:
                c.select_folder("INBOX", readonly=True)
                uids = c.search(["HEADER", "In-Reply-To", root_message_id])
                data = c.fetch(uids, [b"BODY.PEEK[]"]) if uids else {}
                out += [data[u][b"BODY[]"] for u in sorted(data)]
        return out


FOLLOW_UP_CONFIG = """
[follow_up]
wait = "{wait}"
window = "always"

[watch]
poll_interval = "1s"
"""


@pytest.fixture
def pair(stack: Stack, tmp_path: Path) -> Pair:
    ws = tmp_path / "ws"
    p = Pair(stack, ws)
    write_config(ws, stack.info, sender=p.candidate, extra=FOLLOW_UP_CONFIG.format(wait="60s"))
    return p
