"""The next message's envelope written behind the last one's final dot (RFC 2920 lets a group
of commands begin with message text), against the sandbox's real SMTP server over verified
TLS: the server reads it while the last message's answer comes back and is recorded.

Nothing of the message written ahead can be delivered until its own text goes: any other
next step drops the connection first, and a refusal or a lost answer of the last message
leaves it as it would be without.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

from mailer.adapters.config import load_settings
from mailer.adapters.sender import InDoubtError, SmtpSession
from mailer.adapters.store import Store
from mailer.errors import DeliveryError
from mailer.services.campaign import load_campaign
from mailer.services.runner import SENT_NOW, SKIPPED, run_campaign
from mailer.testing.smtp import FakeSmtp

from .conftest import INTERVIEWER, SENDER, Stack
from .test_campaign import entry, write_campaign
from .test_pipelining import NOBODY, RECRUITER, Wire, _Spy, accepted, connects
from .test_send import settings_for
from .test_throttle import START, FakeClock
from .test_throttle import workspace as throttle_workspace

pytestmark = pytest.mark.integration


def message(name: str) -> bytes:
    return f"Subject: {name}\r\nMessage-ID: <{name}@ahead.test>\r\n\r\nhi\r\n".encode()


def delivered(stack: Stack, mark: int) -> list[tuple[tuple[str, ...], int]]:
    return [(tuple(e["rcpt"]), e["envelope_reads"]) for e in accepted(stack, mark)]


def test_the_next_envelope_goes_behind_the_final_dot_and_is_not_written_again(
    stack: Stack, workspace: Path
) -> None:
    """Verify two messages on one connection: the second's MAIL, RCPT and DATA are written
    with the first's final dot, in one write, before its answer is read, and not again; the second's
    ``in_envelope`` still runs before its envelope's replies are read; both arrive, in three
    round trips instead of four."""
    settings = settings_for(workspace)
    mark = stack.log_mark()
    seen: list[list[str]] = []
    with SmtpSession(settings.smtp) as session:
        wire = Wire(session)
        first = session.submit(
            SENDER, (INTERVIEWER,), message("one"), next_envelope=(SENDER, (RECRUITER,))
        )
        at = wire.mark()
        second = session.submit(
            SENDER,
            (RECRUITER,),
            message("two"),
            in_envelope=lambda: seen.append([kind for kind, _ in wire.events[at:]]),
        )
        writes, trips = wire.writes(), wire.round_trips()
    assert first.startswith("250") and second.startswith("250")
    envelope_two = f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{RECRUITER}>\r\nDATA\r\n".encode()
    # In the first's final dot's own write, and not again.
    assert b"".join(writes).count(envelope_two) == 1
    assert b".\r\n" + envelope_two in writes
    assert seen == [[]]  # nothing written or read for the second before its hook
    assert trips == 3
    assert [rcpt for rcpt, _ in delivered(stack, mark)] == [(INTERVIEWER,), (RECRUITER,)]


def test_another_next_message_drops_the_connection_and_the_envelope_ahead_delivers_nothing(
    stack: Stack, workspace: Path
) -> None:
    """Verify a next message other than the one whose envelope went ahead is sent on a new
    connection, and the recipient of the envelope written ahead receives nothing."""
    settings = settings_for(workspace)
    mark = stack.log_mark()
    with SmtpSession(settings.smtp) as session:
        session.submit(
            SENDER, (INTERVIEWER,), message("three"), next_envelope=(SENDER, (RECRUITER,))
        )
        session.submit(SENDER, (INTERVIEWER,), message("four"))
    assert [rcpt for rcpt, _ in delivered(stack, mark)] == [(INTERVIEWER,), (INTERVIEWER,)]
    assert len(connects(stack, mark)) == 2
    assert stack.messages_with_id(RECRUITER, "<four@ahead.test>") == []


def test_closing_with_an_envelope_ahead_sends_no_quit_and_delivers_nothing_more(
    stack: Stack, workspace: Path
) -> None:
    """Verify closing the session while an envelope written ahead is unanswered drops the
    connection without a QUIT (the server may be reading message text: a QUIT would be read
    as text and its answer never come), and only the first message is delivered."""
    settings = settings_for(workspace)
    mark = stack.log_mark()
    session = SmtpSession(settings.smtp)
    wire = None
    try:
        session.connect()
        wire = Wire(session)
        session.submit(
            SENDER, (INTERVIEWER,), message("five"), next_envelope=(SENDER, (RECRUITER,))
        )
    finally:
        session.close()
    assert wire is not None and not any(w.upper().startswith(b"QUIT") for w in wire.writes())
    assert [rcpt for rcpt, _ in delivered(stack, mark)] == [(INTERVIEWER,)]


def test_a_refused_message_leaves_the_envelope_behind_it_to_the_next_message(
    stack: Stack, workspace: Path
) -> None:
    """Verify a 554 for the finished first message is its own error, and the second message,
    whose envelope went behind that message's final dot, is delivered on the same
    connection."""
    settings = settings_for(workspace)
    stack.set_faults(data=["554 5.7.1 message refused"])
    mark = stack.log_mark()
    with SmtpSession(settings.smtp) as session:
        with pytest.raises(DeliveryError) as refused:
            session.submit(
                SENDER, (INTERVIEWER,), message("six"), next_envelope=(SENDER, (RECRUITER,))
            )
        assert "554" in str(refused.value) and not isinstance(refused.value, InDoubtError)
        assert session.submit(SENDER, (RECRUITER,), message("seven")).startswith("250")
    assert [rcpt for rcpt, _ in delivered(stack, mark)] == [(RECRUITER,)]
    assert len(connects(stack, mark)) == 1


def test_an_answer_lost_after_the_final_dot_is_in_doubt_and_the_next_message_reconnects(
    stack: Stack, workspace: Path
) -> None:
    """Verify the server closing the connection instead of answering the first message's
    final dot makes it in doubt (never retried), and the second message, whose envelope had
    gone behind that dot, is sent once, on a new connection."""
    settings = settings_for(workspace)
    stack.set_faults(drop_after_data=1)
    mark = stack.log_mark()
    with SmtpSession(settings.smtp, sleep=lambda _: None) as session:
        with pytest.raises(InDoubtError):
            session.submit(
                SENDER, (INTERVIEWER,), message("eight"), next_envelope=(SENDER, (RECRUITER,))
            )
        assert session.submit(SENDER, (RECRUITER,), message("nine")).startswith("250")
    assert [rcpt for rcpt, _ in delivered(stack, mark)] == [(INTERVIEWER,), (RECRUITER,)]
    assert len(connects(stack, mark)) == 2


class Recording(SmtpSession):
    """SmtpSession that notes each message's envelope and the envelope it wrote ahead."""

    calls: ClassVar[list[tuple[tuple[str, ...], tuple[str, ...] | None]]] = []

    def submit(self, envelope_from, recipients, data, **kw):  # type: ignore[no-untyped-def]
        ahead = kw.get("next_envelope")
        Recording.calls.append((recipients, ahead[1] if ahead else None))
        return super().submit(envelope_from, recipients, data, **kw)


@pytest.mark.parametrize("throttle", ["", '[throttle]\nrate = "600/hour"\n'])
def test_a_campaign_writes_each_next_envelope_behind_the_last_final_dot_unless_it_paces(
    stack: Stack, workspace: Path, throttle: str
) -> None:
    """Verify a campaign run sends every entry once on one connection, each submit naming
    the next entry's envelope, the last none; with a rate (a pause between messages) no
    envelope goes ahead."""
    recipients = [INTERVIEWER, RECRUITER, INTERVIEWER, RECRUITER]
    path = write_campaign(
        workspace, throttle + "".join(entry(to, n) for n, to in enumerate(recipients))
    )
    settings = load_settings(workspace / "config" / "mailer.toml", need_secrets=True)
    now = datetime.fromisoformat("2026-11-25T09:00:00+00:00")
    campaign = load_campaign(path, settings, now)
    assert not campaign.problems, campaign.problems
    store = Store(settings.state_url)
    Recording.calls = []
    mark = stack.log_mark()
    try:
        report = run_campaign(campaign, store, lambda: now, smtp=Recording, sleep=lambda _: None)
    finally:
        store.close()
    assert [o.result for o in report.outcomes] == [SENT_NOW] * 4
    expected_ahead = [(to,) for to in recipients[1:]] + [None] if not throttle else [None] * 4
    assert Recording.calls == [((to,), a) for to, a in zip(recipients, expected_ahead, strict=True)]
    assert [rcpt for rcpt, _ in delivered(stack, mark)] == [(to,) for to in recipients]
    assert len(connects(stack, mark)) == 1


def test_a_slow_answer_to_a_final_dot_with_an_envelope_behind_it_is_waited_for(
    stack: Stack, workspace: Path
) -> None:
    """Verify a server that takes longer than the connection's timeout to answer a final dot
    is waited for when the next envelope went behind that dot (a server may hold the answer
    until it has checked that envelope's recipients: a delivered message must not be left in
    doubt), while without an envelope behind it the timeout holds as before."""
    settings = settings_for(workspace)
    stack.set_faults(data_delay=[2, 2])
    mark = stack.log_mark()
    with SmtpSession(replace(settings.smtp, timeout=1.0), sleep=lambda _: None) as session:
        first = session.submit(
            SENDER, (INTERVIEWER,), message("slow-one"), next_envelope=(SENDER, (RECRUITER,))
        )
        with pytest.raises(InDoubtError, match="no answer within 1 s after the whole message"):
            session.submit(SENDER, (RECRUITER,), message("slow-two"))
    assert first.startswith("250")
    # (The second was given up after 1 s; whether the server still takes it is its affair.)
    assert [rcpt for rcpt, _ in delivered(stack, mark)][:1] == [(INTERVIEWER,)]


def test_an_envelope_ahead_refused_with_354_anyway_drops_the_connection_before_any_text(
    stack: Stack, workspace: Path
) -> None:
    """Verify an envelope written ahead whose second recipient is refused (DATA answered
    354 all the same) is that message's refusal: no text and no RSET go, the accepted
    recipient gets nothing, and the next message goes on a new connection."""
    settings = settings_for(workspace)
    mark = stack.log_mark()
    ahead = (SENDER, (RECRUITER, NOBODY))
    with SmtpSession(settings.smtp, sleep=lambda _: None) as session:
        session.submit(SENDER, (INTERVIEWER,), message("before-refused"), next_envelope=ahead)
        wire = Wire(session)
        with pytest.raises(DeliveryError) as refused:
            session.submit(*ahead, message("refused-ahead"))
        assert refused.value.kind == "recipient"
        assert wire.writes() == []  # nothing after the replies: no text, no RSET
        session.submit(SENDER, (RECRUITER,), message("after-refused"))
    assert [rcpt for rcpt, _ in delivered(stack, mark)] == [(INTERVIEWER,), (RECRUITER,)]
    assert len(connects(stack, mark)) == 2
    assert stack.messages_with_id(RECRUITER, "<refused-ahead@ahead.test>") == []


def test_the_same_envelope_twice_after_one_written_ahead_is_written_again_for_the_second(
    stack: Stack, workspace: Path
) -> None:
    """Verify an envelope written ahead serves one message only: a third message with the
    same envelope, sent with nothing written ahead, writes its own, on the same connection."""
    settings = settings_for(workspace)
    mark = stack.log_mark()
    envelope = (SENDER, (RECRUITER,))
    with SmtpSession(settings.smtp) as session:
        session.submit(SENDER, (INTERVIEWER,), message("twice-0"), next_envelope=envelope)
        session.submit(*envelope, message("twice-1"))
        session.submit(*envelope, message("twice-2"))
    assert [rcpt for rcpt, _ in delivered(stack, mark)] == [(INTERVIEWER,)] + [(RECRUITER,)] * 2
    assert len(connects(stack, mark)) == 1


def test_closing_after_an_interrupt_inside_the_message_text_sends_no_quit(
    stack: Stack, workspace: Path
) -> None:
    """Verify a session interrupted (Ctrl-C) while a message's text is being written is
    closed without a QUIT, which the server would read as message text and never answer:
    close() returns at once, and nothing is delivered."""
    settings = settings_for(workspace)
    mark = stack.log_mark()
    session = SmtpSession(replace(settings.smtp, timeout=5.0))
    session.connect()
    writes: list[bytes] = []
    smtp = session._smtp
    assert smtp is not None

    class Interrupting(_Spy):
        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            if name != "sendall":
                return getattr(self._inner, name)

            def sendall(data: bytes) -> None:
                writes.append(bytes(data))
                if bytes(data).startswith(b"Subject: interrupted"):
                    raise KeyboardInterrupt
                self._inner.sendall(data)

            return sendall

    smtp.sock = Interrupting(smtp.sock, "sendall", [], "w")
    with pytest.raises(KeyboardInterrupt):
        session.submit(SENDER, (INTERVIEWER,), message("interrupted"))
    started = time.monotonic()
    session.close()
    assert time.monotonic() - started < 2
    assert not any(w.upper().startswith(b"QUIT") for w in writes)
    assert delivered(stack, mark) == []


def fake_run_workspace(tmp_path: Path, entries: int) -> tuple[Any, Any]:
    """A campaign of ``entries`` for the in-memory server, over (pretend) STARTTLS: an
    envelope goes ahead only over TLS."""
    ws = throttle_workspace(tmp_path, "", entries=entries)
    config = ws / "config" / "mailer.toml"
    config.write_text(config.read_text().replace('"plain"', '"starttls"'))
    settings = load_settings(config)
    clock = FakeClock(START)
    return settings, load_campaign(ws / "config" / "campaigns" / "c.toml", settings, clock())


def test_an_entry_a_concurrent_run_sends_while_its_envelope_is_ahead_is_sent_once(
    tmp_path: Path,
) -> None:
    """Verify a second run that sends the entry whose envelope went behind the first run's
    last final dot: the first run's record of it is refused as a duplicate, its connection
    dropped before any text, and each address receives one message."""
    settings, campaign = fake_run_workspace(tmp_path, 3)
    clock = FakeClock(START)
    server = FakeSmtp(users={settings.smtp.username: "pw"})
    mails = 0
    first_state: list[str] = []  # entry 0's, when entry 1's envelope arrives

    def moment(what: str) -> None:
        nonlocal mails
        if what != "mail":
            return
        mails += 1
        if mails == 2:  # entry 1's envelope, written behind entry 0's final dot
            other = Store(settings.state_url)
            first_state.append(other.message(1).state)
            try:
                run_campaign(campaign, other, clock, smtp=server, sleep=clock.sleep, limit=1)
            finally:
                other.close()

    server.moment = moment
    store = Store(settings.state_url)
    try:
        report = run_campaign(campaign, store, clock, smtp=server, sleep=clock.sleep)
    finally:
        store.close()
    assert first_state == ["submitting"]  # its 250 not read yet: the envelope went ahead
    assert [o.result for o in report.outcomes] == [SENT_NOW, SKIPPED, SENT_NOW]
    delivered = sorted(r for m in server.accepted for r in m.recipients)
    assert delivered == ["ana0@sandbox.test", "ana1@sandbox.test", "ana2@sandbox.test"]


def test_a_run_stopped_after_a_message_drops_the_envelope_ahead_and_sends_no_more(
    tmp_path: Path,
) -> None:
    """Verify Ctrl-C while the first message is being taken (the next entry's envelope
    already written behind its final dot): the run stops after recording the first, and
    nothing of the next entry is delivered."""
    settings, campaign = fake_run_workspace(tmp_path, 3)
    clock = FakeClock(START)
    server = FakeSmtp(users={settings.smtp.username: "pw"})
    stop = threading.Event()
    server.moment = lambda what: stop.set() if what == "accepted" else None
    store = Store(settings.state_url)
    try:
        report = run_campaign(campaign, store, clock, smtp=server, sleep=clock.sleep, stop=stop)
    finally:
        store.close()
    assert [o.result for o in report.outcomes] == [SENT_NOW]
    assert report.stopped == "interrupted"
    assert [m.recipients for m in server.accepted] == [("ana0@sandbox.test",)]
    assert ("mail", "sam@sandbox.test") in server.log[
        server.log.index(("accepted", server.accepted[0].message_id)) :
    ]


def test_no_envelope_goes_ahead_over_a_plain_connection(stack: Stack, workspace: Path) -> None:
    """Verify that over plain TCP (loopback only) the final dot goes alone: there a write
    that fails part way could have taken the dot with it, and the message would be sent
    again; over TLS the write is one record, read whole or not at all."""
    settings = settings_for(workspace)
    plain = replace(settings.smtp, security="plain", port=stack.info.smtp_plain_port)
    with SmtpSession(plain) as session:
        wire = Wire(session)
        session.submit(
            SENDER, (INTERVIEWER,), message("plain"), next_envelope=(SENDER, (RECRUITER,))
        )
        assert wire.writes()[-1] == b".\r\n"
        assert session._envelope_ahead() is None


def test_a_caller_acting_before_mail_from_is_not_given_an_envelope_written_ahead(
    stack: Stack, workspace: Path
) -> None:
    """Verify a submit with ``before_mail`` (which must run before its MAIL FROM) after an
    envelope went ahead for the same addresses: the connection is dropped and the message
    sent on a new one, its ``before_mail`` first, once."""
    settings = settings_for(workspace)
    mark = stack.log_mark()
    calls: list[int] = []
    with SmtpSession(settings.smtp) as session:
        session.submit(
            SENDER, (INTERVIEWER,), message("mail-a"), next_envelope=(SENDER, (RECRUITER,))
        )
        session.submit(
            SENDER,
            (RECRUITER,),
            message("mail-b"),
            before_mail=lambda: calls.append(len(connects(stack, mark))),
        )
    assert calls == [2]  # on the new connection, before its MAIL FROM
    assert [rcpt for rcpt, _ in delivered(stack, mark)] == [(INTERVIEWER,), (RECRUITER,)]


def test_a_transaction_ended_by_rset_leaves_the_connection_to_be_closed_with_quit(
    stack: Stack, workspace: Path
) -> None:
    """Verify that after a refused recipient undone with RSET (one command at a time), the
    connection is idle and healthy: closing it says QUIT instead of dropping it."""
    settings = settings_for(workspace)
    with SmtpSession(replace(settings.smtp, pipelining=False)) as session:
        wire = Wire(session)
        with pytest.raises(DeliveryError):
            session.submit(SENDER, (NOBODY,), message("rset"))
        session.close()
    assert any(w.upper().startswith(b"QUIT") for w in wire.writes())


def test_a_connection_kept_after_a_hook_error_before_mail_from_is_closed_with_quit(
    stack: Stack, workspace: Path
) -> None:
    """Verify that when ``in_envelope`` fails before anything was written (one command at
    a time), the connection kept is idle: closing it says QUIT."""
    settings = settings_for(workspace)

    def refuse() -> None:
        raise ValueError("taken by another run")

    with SmtpSession(replace(settings.smtp, pipelining=False)) as session:
        wire = Wire(session)
        with pytest.raises(ValueError):
            session.submit(SENDER, (INTERVIEWER,), message("hook"), in_envelope=refuse)
        session.close()
    assert any(w.upper().startswith(b"QUIT") for w in wire.writes())
