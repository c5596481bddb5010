"""The fakes drive mailer's own code end to end, with no server and no file: an apology
recorded and submitted, then a pass of ``check`` that sees a reply, or sends the follow-up.
This is what a state-machine test over the fakes builds on."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import make_msgid
from pathlib import Path

import pytest

from mailer.adapters.clock import local_zone
from mailer.adapters.config import Settings, load_settings
from mailer.adapters.store import Store
from mailer.model import apology
from mailer.model.facts import make_facts
from mailer.services import sending
from mailer.services.passes import run_pass
from mailer.testing import FakeImap, FakeProcesses, FakeSmtp
from mailer.testing.settings import write_fake_workspace

YOU, THEM = "you@sandbox.test", "ana@sandbox.test"
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


class World:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.imap = FakeImap({YOU: "you-pw", THEM: "them-pw"})
        self.smtp = FakeSmtp(users={YOU: "you-pw"}, imap=self.imap)
        self.store = Store.in_memory()
        self.now = NOW

    def clock(self) -> datetime:
        return self.now

    def send_apology(self) -> tuple[int, str]:
        s = self.settings
        facts = make_facts(
            situation="illness",
            to=THEM,
            interviewer="Ana Ruiz",
            company="Acme",
            role="Data Engineer",
            interview="2026-11-25 10:00",
            tz=local_zone(s.sender.timezone),
            allow_test_domains=True,
        )
        prepared = apology.prepare(s, facts, self.now)
        thread_id, row_id = sending.record(s, prepared, self.store, self.now)
        with self.smtp(s.smtp, retries=0) as session:
            reply = sending.submit(self.store, session, row_id, self.clock)
        self.store.mark_sent(row_id, self.now, reply, sending.due_after(s, self.now))
        with self.imap(s.imap) as box:
            sending.save_sent_copy(s, self.store, row_id, prepared.composed.raw, self.now, box)
        return thread_id, prepared.composed.message_id

    def check(self):  # type: ignore[no-untyped-def]
        return run_pass(self.settings, self.store, self.clock, mailbox=self.imap, smtp=self.smtp)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    config = write_fake_workspace(tmp_path, YOU, "you-pw", wait="60s")
    with FakeProcesses():
        yield World(load_settings(config))


def test_an_apology_reaches_the_interviewer_and_its_copy_is_in_sent(world: World) -> None:
    thread_id, message_id = world.send_apology()
    inbox = world.imap.messages("INBOX", user=THEM)
    assert [message_id.encode() in raw for raw in inbox.values()] == [True]
    sent = world.imap.messages("Sent", user=YOU)
    assert list(sent.values()) == list(inbox.values())
    thread = world.store.thread(thread_id)
    assert thread is not None and thread.state == "awaiting_reply"


def test_a_pass_sees_a_threaded_reply_and_sends_no_follow_up(world: World) -> None:
    thread_id, root = world.send_apology()
    world.imap.deliver(
        "INBOX",
        (
            f"From: Ana Ruiz <{THEM}>\r\nTo: {YOU}\r\nSubject: Re: your interview\r\n"
            f"Message-ID: {make_msgid(domain='sandbox.test')}\r\nIn-Reply-To: {root}\r\n"
            f"References: {root}\r\n\r\nNo problem, let's talk on Monday at 10.\r\n"
        ).encode(),
        world.now + timedelta(seconds=30),
        user=YOU,
    )
    world.now += timedelta(seconds=30)
    world.check()
    world.now += timedelta(minutes=10)  # well past the follow-up's due time
    report = world.check()
    thread = world.store.thread(thread_id)
    assert thread is not None and thread.state == "replied"
    assert report.sent == []
    assert len(world.smtp.accepted) == 1  # the apology only


def test_a_pass_after_the_wait_sends_one_follow_up_in_the_thread(world: World) -> None:
    thread_id, root = world.send_apology()
    world.now += timedelta(minutes=2)
    report = world.check()
    assert [tid for tid, _ in report.sent] == [thread_id]
    follow_up = world.smtp.accepted[-1]
    assert follow_up.recipients == (THEM,)
    assert f"In-Reply-To: {root}".encode() in follow_up.data
    assert follow_up.data in world.imap.messages("Sent", user=YOU).values()
    world.now += timedelta(minutes=2)
    assert world.check().sent == []  # at most max_follow_ups (1)
    assert len(world.smtp.accepted) == 2
