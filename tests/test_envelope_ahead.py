"""The next message's envelope written behind the last one's final dot (RFC 2920 lets a group
of commands begin with message text), against the sandbox's real SMTP server over verified
TLS: the server reads it while the last message's answer comes back and is recorded.

Nothing of the message written ahead can be delivered until its own text goes: any other
next step drops the connection first, and a refusal or a lost answer of the last message
leaves it as it would be without.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import ClassVar

import pytest

from mailer.adapters.config import load_settings
from mailer.adapters.sender import InDoubtError, SmtpSession
from mailer.adapters.store import Store
from mailer.errors import DeliveryError
from mailer.services.campaign import load_campaign
from mailer.services.runner import SENT_NOW, run_campaign

from .conftest import INTERVIEWER, SENDER, Stack
from .test_campaign import entry, write_campaign
from .test_pipelining import RECRUITER, Wire, accepted, connects
from .test_send import settings_for

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
