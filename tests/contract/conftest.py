"""One contract per adapter, run against its fake (mailer.testing) and the real thing.

Every fixture here is parametrized ``fake`` / ``real``: a test written once proves that the
fake behaves as the real server does for what the rest of mailer relies on. The real half
uses the session's sandbox (``mail_stack``: aiosmtpd with real TLS and AUTH in front of
Dovecot), which the fake half never starts, so ``-k fake`` runs in about a second.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest

from mailer.adapters import process, store
from mailer.testing import FakeImap, FakeProcesses, FakeSmtp, imap_settings, smtp_settings

from ..conftest import INTERVIEWER, SENDER, USERS, Stack

_users = itertools.count(1)
# The real half counts as an integration test (see the CI guard in tests/conftest.py).
FAKE_AND_REAL = ["fake", pytest.param("real", marks=pytest.mark.integration)]


def message(subject: str = "Contract", body: bytes = b"Hello.\r\n", **headers: str) -> bytes:
    """A small message with a fresh Message-ID, in CRLF lines."""
    lines = [
        f"From: {SENDER}",
        f"To: {INTERVIEWER}",
        f"Subject: {subject}",
        f"Message-ID: {make_msgid(domain='sandbox.test')}",
        *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def message_id_of(raw: bytes) -> str:
    for line in raw.split(b"\r\n"):
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().decode()
    raise AssertionError("no Message-ID")


# --- SMTP ------------------------------------------------------------------------------------


class SmtpWorld:
    """The SMTP server under test, fake or real, and what it took."""

    kind: str
    sender = SENDER
    recipient = INTERVIEWER

    def session(self, *, password: str | None = None, retries: int = 0) -> Any: ...
    def set_faults(self, **faults: Any) -> None: ...
    def accepted_ids(self) -> list[str]: ...
    def delivered(self, message_id: str) -> list[bytes]: ...


class FakeSmtpWorld(SmtpWorld):
    kind = "fake"

    def __init__(self) -> None:
        self.imap = FakeImap({SENDER: USERS[SENDER], INTERVIEWER: USERS[INTERVIEWER]})
        self.server = FakeSmtp(users=dict(USERS), imap=self.imap)

    def session(self, *, password: str | None = None, retries: int = 0) -> Any:
        settings = smtp_settings(SENDER, password or USERS[SENDER])
        return self.server(settings, retries=retries)

    def set_faults(self, **faults: Any) -> None:
        self.server.set_faults(**faults)

    def accepted_ids(self) -> list[str]:
        return [str(m.message_id) for m in self.server.accepted]

    def delivered(self, message_id: str) -> list[bytes]:
        return [
            raw
            for raw in self.imap.messages("INBOX", user=INTERVIEWER).values()
            if message_id.encode() in raw
        ]


class RealSmtpWorld(SmtpWorld):
    kind = "real"

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.mark = stack.log_mark()

    def session(self, *, password: str | None = None, retries: int = 0) -> Any:
        from mailer.adapters.sender import SmtpSession

        info = self.stack.info
        settings = smtp_settings(
            SENDER,
            password or info.users[SENDER],
            host=info.host,
            port=info.smtp_port,
            security="starttls",
            ca_file=Path(info.ca_file),
        )
        # Real sleeps between retries would only slow the suite: record them instead.
        return SmtpSession(settings, retries=retries, sleep=lambda s: None)

    def set_faults(self, **faults: Any) -> None:
        self.stack.set_faults(**faults)

    def accepted_ids(self) -> list[str]:
        return [
            str(e["message_id"])
            for e in self.stack.log_since(self.mark)
            if e["event"] == "accepted"
        ]

    def delivered(self, message_id: str) -> list[bytes]:
        return self.stack.messages_with_id(INTERVIEWER, message_id)


@pytest.fixture(params=FAKE_AND_REAL)
def smtp_world(request: pytest.FixtureRequest) -> SmtpWorld:
    if request.param == "fake":
        return FakeSmtpWorld()
    return RealSmtpWorld(request.getfixturevalue("stack"))


# --- IMAP ------------------------------------------------------------------------------------


class ImapWorld:
    """An account on the IMAP server under test, fake or real, with an empty INBOX."""

    kind: str
    user: str
    password: str

    def mailbox(self, *, password: str | None = None, sent_folder: str = "") -> Any: ...
    def deliver(self, folder: str, raw: bytes, when: datetime | None = None) -> None: ...
    def recreate(self, folder: str) -> None: ...


class FakeImapWorld(ImapWorld):
    kind = "fake"

    def __init__(self) -> None:
        self.user, self.password = f"ct{next(_users)}@sandbox.test", "ct-secret"
        self.server = FakeImap({self.user: self.password})

    def mailbox(self, *, password: str | None = None, sent_folder: str = "") -> Any:
        return self.server(
            imap_settings(self.user, password or self.password, sent_folder=sent_folder)
        )

    def deliver(self, folder: str, raw: bytes, when: datetime | None = None) -> None:
        self.server.deliver(folder, raw, when)

    def recreate(self, folder: str) -> None:
        if folder in self.server.folders[self.user]:
            self.server.recreate_folder(folder)
        else:
            self.server.create_folder(folder)


class RealImapWorld(ImapWorld):
    kind = "real"

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.user, self.password = f"ct{next(_users)}@sandbox.test", "ct-secret"
        stack.stack.add_user(self.user, self.password)

    def mailbox(self, *, password: str | None = None, sent_folder: str = "") -> Any:
        from mailer.adapters.mailbox import Mailbox

        info = self.stack.info
        return Mailbox(
            imap_settings(
                self.user,
                password or self.password,
                host=info.host,
                port=info.imaps_port,
                security="ssl",
                ca_file=Path(info.ca_file),
                sent_folder=sent_folder,
            )
        )

    def deliver(self, folder: str, raw: bytes, when: datetime | None = None) -> None:
        # Another client's APPEND: mail arriving, as the watching session sees it.
        with self.stack.imap(self.user) as c:
            c.append(folder, raw, (), when)

    def recreate(self, folder: str) -> None:
        with self.stack.imap(self.user) as c:
            if c.folder_exists(folder):
                c.delete_folder(folder)
            c.create_folder(folder)


@pytest.fixture(params=FAKE_AND_REAL)
def imap_world(request: pytest.FixtureRequest) -> ImapWorld:
    if request.param == "fake":
        return FakeImapWorld()
    return RealImapWorld(request.getfixturevalue("mail_stack"))


# --- the store and processes -----------------------------------------------------------------


@pytest.fixture(
    params=["memory", "file", pytest.param("postgresql", marks=pytest.mark.integration)]
)
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[store.Store]:
    """The store on an in-memory database (what tests use instead of a fake), on a file
    (what users have), and on the tests' real PostgreSQL, a fresh database each (#17)."""
    if request.param == "postgresql":
        pg = request.getfixturevalue("postgres")
        s = store.Store(
            pg.url(request.getfixturevalue("pg_database"), password=False),
            connect={"password": pg.password},
        )
    elif request.param == "memory":
        s = store.Store.in_memory()
    else:
        s = store.Store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        yield s
    finally:
        s.close()


class ProcessWorld:
    """Owner tokens of processes that run, then die: fake ones, or real child processes."""

    kind: str

    def spawn(self) -> str: ...
    def kill(self, token: str) -> None: ...


class FakeProcessWorld(ProcessWorld):
    kind = "fake"

    def __init__(self, procs: FakeProcesses) -> None:
        self.procs = procs
        self.by_token: dict[str, Any] = {}

    def spawn(self) -> str:
        proc = self.procs.spawn()
        self.by_token[proc.token] = proc
        return proc.token

    def kill(self, token: str) -> None:
        self.procs.kill(self.by_token[token])


class RealProcessWorld(ProcessWorld):
    kind = "real"

    def __init__(self) -> None:
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(self) -> str:
        import socket

        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        token = f"{socket.gethostname()}:{store._boot_id()}:{child.pid}:"
        token += process.start_mark(child.pid)
        self.children[token] = child
        return token

    def kill(self, token: str) -> None:
        child = self.children.pop(token)
        child.kill()
        child.wait(10)

    def close(self) -> None:
        for child in self.children.values():
            child.kill()
            child.wait(10)


@pytest.fixture(params=FAKE_AND_REAL)
def processes(request: pytest.FixtureRequest) -> Iterator[ProcessWorld]:
    if request.param == "fake":
        with FakeProcesses() as procs:
            yield FakeProcessWorld(procs)
        return
    world = RealProcessWorld()
    try:
        yield world
    finally:
        world.close()
