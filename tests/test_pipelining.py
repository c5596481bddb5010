"""SMTP PIPELINING (RFC 2920) against the sandbox's real SMTP server over verified TLS.

MAIL FROM, RCPT TO and DATA go in one write; a refusal answered by a 354 anyway drops the
connection before the final dot, so nothing reaches the recipients that were accepted.
"""

from __future__ import annotations

import base64
import itertools
import socket
import ssl
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mailer.adapters.config import find_config, load_settings
from mailer.adapters.sender import SmtpSession
from mailer.adapters.store import Store
from mailer.errors import ConfigError, DeliveryError, DuplicateError
from mailer.model import apology
from mailer.services import sending

from .conftest import INTERVIEWER, SENDER, Stack, write_config
from .test_send import NOW, facts, settings_for

pytestmark = pytest.mark.integration
NOBODY = "nobody-here@sandbox.test"
RECRUITER = "recruiter@sandbox.test"


class Wire:
    """What one smtplib connection wrote and read, in order: ("w", bytes) or ("r", line)."""

    def __init__(self, session: SmtpSession) -> None:
        smtp = session._smtp
        assert smtp is not None and smtp.file is not None
        self.events: list[tuple[str, bytes]] = []
        smtp.sock = _Spy(smtp.sock, "sendall", self.events, "w")
        smtp.file = _Spy(smtp.file, "readline", self.events, "r")

    def mark(self) -> int:
        return len(self.events)

    def writes(self, since: int = 0) -> list[bytes]:
        return [data for kind, data in self.events[since:] if kind == "w"]

    def round_trips(self, since: int = 0) -> int:
        """How many times the client wrote and then waited for the server."""
        kinds = [kind for kind, _ in self.events[since:]]
        return sum(1 for a, b in itertools.pairwise(kinds) if (a, b) == ("w", "r"))

    def last_reply(self) -> bytes:
        return next(data for kind, data in reversed(self.events) if kind == "r")


class _Spy:
    def __init__(self, inner: Any, method: str, events: list, kind: str) -> None:
        self._inner, self._method, self._events, self._kind = inner, method, events, kind

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name != self._method:
            return attr

        def spied(*args: Any) -> Any:
            if self._kind == "w":
                self._events.append(("w", bytes(args[0])))
                return attr(*args)
            line = attr(*args)
            self._events.append(("r", line))
            return line

        return spied


def accepted(stack: Stack, mark: int) -> list[dict]:
    return [e for e in stack.log_since(mark) if e["event"] == "accepted"]


def connects(stack: Stack, mark: int) -> list[dict]:
    return [e for e in stack.log_since(mark) if e["event"] == "connect"]


def read_reply(f: Any) -> bytes:
    lines = [f.readline()]
    while lines[-1][3:4] == b"-":
        lines.append(f.readline())
    return b"".join(lines)


def test_sandbox_offers_pipelining_and_answers_a_batch_in_order(stack: Stack) -> None:
    """Verify over a raw TLS socket: EHLO lists PIPELINING; MAIL, two RCPTs and DATA in one
    write get their four replies in order; the message is then delivered to the one
    accepted recipient, its envelope read in one go."""
    info = stack.info
    ctx = ssl.create_default_context(cafile=info.ca_file)
    mark = stack.log_mark()
    raw = socket.create_connection((info.host, info.smtps_port), timeout=10)
    with ctx.wrap_socket(raw, server_hostname=info.host) as sock, sock.makefile("rb") as f:
        assert read_reply(f).startswith(b"220")
        sock.sendall(b"EHLO client.test\r\n")
        assert b"250-PIPELINING\r\n" in read_reply(f)
        token = base64.b64encode(f"\0{SENDER}\0{info.users[SENDER]}".encode())
        sock.sendall(b"AUTH PLAIN " + token + b"\r\n")
        assert read_reply(f).startswith(b"235")
        sock.sendall(
            f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{INTERVIEWER}>\r\nRCPT TO:<{NOBODY}>\r\nDATA\r\n".encode()
        )
        replies = [read_reply(f)[:3] for _ in range(4)]
        assert replies == [b"250", b"250", b"550", b"354"]
        sock.sendall(b"Subject: raw pipelined\r\nMessage-ID: <raw-pipe@test>\r\n\r\nhi\r\n.\r\n")
        assert read_reply(f).startswith(b"250")
        sock.sendall(b"QUIT\r\n")
        assert read_reply(f).startswith(b"221")
    (event,) = accepted(stack, mark)
    assert event["rcpt"] == [INTERVIEWER] and event["envelope_reads"] == 1
    assert len(stack.messages_with_id(INTERVIEWER, "<raw-pipe@test>")) == 1


def test_pipelined_message_arrives_byte_identical_in_two_round_trips(
    stack: Stack, workspace: Path
) -> None:
    """Verify a message to two recipients goes MAIL+RCPT+RCPT+DATA in one write, arrives
    byte-identical for both, and the final-dot mark runs once, after the 354."""
    settings = settings_for(workspace)
    store = Store(settings.state_url)
    prepared = apology.prepare(settings, facts(settings, company="Pipe Ltd", cc=(RECRUITER,)), NOW)
    mark = stack.log_mark()
    with SmtpSession(settings.smtp) as session:
        wire = Wire(session)
        row_id = sending.record(settings, prepared, store, NOW)[1]
        marks: list[bytes] = []
        reply = session.submit(
            SENDER,
            (INTERVIEWER, RECRUITER),
            store.message(row_id).raw,
            before_final_dot=lambda: marks.append(wire.last_reply()),
        )
        trips = wire.round_trips()  # before QUIT
    assert reply.startswith("250")
    assert [m[:4] for m in marks] == [b"354 "]
    batch = wire.writes()[0]
    assert (
        batch
        == (
            f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{INTERVIEWER}>\r\nRCPT TO:<{RECRUITER}>\r\nDATA\r\n"
        ).encode()
    )
    assert trips == 2  # the envelope, then the final dot
    (event,) = accepted(stack, mark)
    assert event["envelope_reads"] == 1
    raw = store.message(row_id).raw
    for user in (INTERVIEWER, RECRUITER):
        (copy,) = stack.messages_with_id(user, prepared.composed.message_id)
        assert copy.endswith(raw)


def test_pipelining_saves_round_trips_over_one_command_at_a_time(
    stack: Stack, workspace: Path
) -> None:
    """Verify the same message costs 2 round trips pipelined and 5 without (MAIL, 2 RCPT,
    DATA, dot), both by the client's own reads and writes and by the server's reads."""
    settings = settings_for(workspace)
    store = Store(settings.state_url)
    trips, reads = {}, {}
    for pipelining in (True, False):
        prepared = apology.prepare(
            settings,
            facts(
                settings,
                company=f"Trips {pipelining}",
                interview=f"2026-11-25 {10 + pipelining}:00",  # two interviews, two times
                cc=(RECRUITER,),
            ),
            NOW,
        )
        row_id = sending.record(settings, prepared, store, NOW)[1]
        mark = stack.log_mark()
        with SmtpSession(replace(settings.smtp, pipelining=pipelining)) as session:
            wire = Wire(session)
            session.submit(SENDER, (INTERVIEWER, RECRUITER), store.message(row_id).raw)
            trips[pipelining] = wire.round_trips()  # before QUIT
        (event,) = accepted(stack, mark)
        reads[pipelining] = event["envelope_reads"]
    assert trips == {True: 2, False: 5}
    assert reads == {True: 1, False: 4}


def test_refused_rcpt_after_354_drops_the_connection_and_delivers_nothing(
    stack: Stack, workspace: Path
) -> None:
    """Verify a 550 RCPT answered by a 354 for DATA: no final dot and no RSET is sent, the
    connection is dropped, the accepted recipient gets nothing, the row is failed with the
    recipient refusal, the final-dot mark never runs, and the next message goes out on a
    new connection."""
    settings = settings_for(workspace)
    store = Store(settings.state_url)
    refused = apology.prepare(settings, facts(settings, company="Half Co", cc=(NOBODY,)), NOW)
    mark = stack.log_mark()
    with SmtpSession(settings.smtp, sleep=lambda _: None) as session:
        wire = Wire(session)
        with pytest.raises(DeliveryError) as info:
            sending.send(settings, refused, store, lambda: NOW, session=session)
        assert info.value.kind == "recipient"
        assert f"recipient <{NOBODY}> refused: 550" in str(info.value)
        assert [r[:3] for k, r in wire.events if k == "r"][-4:] == [b"250", b"250", b"550", b"354"]
        assert len(wire.writes()) == 1  # the envelope only: no body, no RSET, no dot
        assert session._smtp is None
        second = apology.prepare(settings, facts(settings, company="Whole Co"), NOW)
        result = sending.send(settings, second, store, lambda: NOW, session=session)
    events = accepted(stack, mark)
    assert [e["message_id"] for e in events] == [result.message_id]
    assert len(connects(stack, mark)) == 2
    assert stack.messages_with_id(INTERVIEWER, refused.composed.message_id) == []
    assert len(stack.messages_with_id(INTERVIEWER, result.message_id)) == 1
    rows = {r.message_id: r for t in store.threads() for r in store.messages(t.id)}
    failed = rows[refused.composed.message_id]
    assert failed.state == "failed" and failed.final_dot_at is None
    assert rows[result.message_id].state == "sent"


def test_temporary_rcpt_refusal_after_354_reconnects_and_sends_once(
    stack: Stack, workspace: Path
) -> None:
    """Verify a 451 for one RCPT with a 354 for DATA is retried on a new connection and the
    message then reaches both recipients exactly once."""
    settings = settings_for(workspace)
    store = Store(settings.state_url)
    stack.set_faults(rcpt_reply={RECRUITER: "451 4.3.0 mailbox busy"})
    prepared = apology.prepare(settings, facts(settings, company="Busy Co", cc=(RECRUITER,)), NOW)
    mark = stack.log_mark()
    delays: list[float] = []

    def sleep(seconds: float) -> None:
        delays.append(seconds)
        stack.clear_faults()

    dots: list[int] = []
    with SmtpSession(settings.smtp, sleep=sleep) as session:
        row_id = sending.record(settings, prepared, store, NOW)[1]
        session.submit(
            SENDER,
            (INTERVIEWER, RECRUITER),
            store.message(row_id).raw,
            before_final_dot=lambda: dots.append(1),
        )
    assert delays == [1.0] and dots == [1]
    assert len(connects(stack, mark)) == 2
    (event,) = accepted(stack, mark)
    assert event["rcpt"] == [INTERVIEWER, RECRUITER]
    for user in (INTERVIEWER, RECRUITER):
        assert len(stack.messages_with_id(user, prepared.composed.message_id)) == 1


def test_all_recipients_refused_data_refused_keeps_the_connection(
    stack: Stack, workspace: Path
) -> None:
    """Verify that when DATA itself is refused (no valid recipient), RSET clears the
    transaction and the next message goes out on the same connection."""
    settings = settings_for(workspace)
    store = Store(settings.state_url)
    mark = stack.log_mark()
    with SmtpSession(settings.smtp) as session:
        wire = Wire(session)
        with pytest.raises(DeliveryError) as info:
            session.submit(SENDER, (NOBODY,), b"Subject: x\r\n\r\nnever\r\n")
        assert info.value.kind == "recipient"
        assert [r[:3] for k, r in wire.events if k == "r"][-4:] == [b"250", b"550", b"503", b"250"]
        assert wire.writes()[-1].upper() == b"RSET\r\n"
        prepared = apology.prepare(settings, facts(settings, company="Next Co"), NOW)
        result = sending.send(settings, prepared, store, lambda: NOW, session=session)
    assert len(connects(stack, mark)) == 1
    assert [e["message_id"] for e in accepted(stack, mark)] == [result.message_id]


def test_pipelining_option_reads_from_smtp_table_only(stack: Stack, tmp_path: Path) -> None:
    """Verify `pipelining = false` under [smtp] turns it off, it defaults on, and under
    [imap] it is an unknown setting naming the file and key."""
    ws = write_config(tmp_path / "ws", stack.info)
    assert settings_for(ws).smtp.pipelining is True
    path = ws / "config" / "mailer.toml"
    text = path.read_text()
    path.write_text(text.replace("[smtp]\n", "[smtp]\npipelining = false\n", 1))
    assert settings_for(ws).smtp.pipelining is False
    path.write_text(text.replace("[imap]\n", "[imap]\npipelining = false\n", 1))
    with pytest.raises(ConfigError, match=r"imap\.pipelining.*unknown setting"):
        load_settings(find_config(ws), need_secrets=True)


def test_without_pipelining_a_refused_rcpt_is_undone_with_rset_on_the_same_connection(
    stack: Stack, workspace: Path
) -> None:
    """Verify `pipelining = false` keeps one command per round trip: a 550 RCPT stops before
    DATA, RSET clears it, and the next message goes out on the same connection."""
    settings = settings_for(workspace)
    store = Store(settings.state_url)
    mark = stack.log_mark()
    with SmtpSession(replace(settings.smtp, pipelining=False)) as session:
        wire = Wire(session)
        with pytest.raises(DeliveryError) as info:
            session.submit(SENDER, (INTERVIEWER, NOBODY), b"Subject: x\r\n\r\nnever\r\n")
        assert info.value.kind == "recipient"
        assert [w.split(b":")[0].upper() for w in wire.writes()] == [
            b"MAIL FROM",
            b"RCPT TO",
            b"RCPT TO",
            b"RSET\r\n",
        ]
        prepared = apology.prepare(settings, facts(settings, company="Serial Co"), NOW)
        result = sending.send(settings, prepared, store, lambda: NOW, session=session)
    assert len(connects(stack, mark)) == 1
    assert [e["message_id"] for e in accepted(stack, mark)] == [result.message_id]


def test_the_smtp_connection_sends_small_writes_at_once(stack: Stack, workspace: Path) -> None:
    """Verify the session turns Nagle's algorithm off (TCP_NODELAY): the final dot is a small
    write after the body, and a kernel holding it for the body's ACK cost ~40 ms a message
    against a real Postfix on loopback."""
    with SmtpSession(settings_for(workspace).smtp, retries=0) as session:
        sock = session._smtp.sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_in_envelope_runs_once_while_the_server_reads_the_envelope(
    stack: Stack, workspace: Path
) -> None:
    """Verify the caller's ``in_envelope`` work runs after MAIL FROM, RCPT TO and DATA are
    written and before any of their replies is read (so it overlaps the server's work), and
    once only, although a 451 RCPT makes the session reconnect and send the envelope again."""
    settings = settings_for(workspace)
    stack.set_faults(rcpt_reply={RECRUITER: "451 4.3.0 mailbox busy"})
    seen: list[list[tuple[str, bytes]]] = []
    raw = b"Subject: overlap\r\nMessage-ID: <overlap@test>\r\n\r\nhi\r\n"
    mark = stack.log_mark()
    with SmtpSession(settings.smtp, sleep=lambda _: stack.clear_faults()) as session:
        wire = Wire(session)
        start = wire.mark()
        session.submit(
            SENDER,
            (INTERVIEWER, RECRUITER),
            raw,
            in_envelope=lambda: seen.append(wire.events[start:]),
        )
    (at_hook,) = seen
    assert [kind for kind, _ in at_hook] == ["w"]
    assert at_hook[0][1].startswith(b"MAIL FROM:") and at_hook[0][1].endswith(b"DATA\r\n")
    assert len(connects(stack, mark)) == 2  # the retry after the 451
    assert [e["rcpt"] for e in accepted(stack, mark)] == [[INTERVIEWER, RECRUITER]]


def test_without_pipelining_in_envelope_runs_before_mail_from(
    stack: Stack, workspace: Path
) -> None:
    """Verify that with one command per round trip, ``in_envelope`` runs before MAIL FROM
    is written, as ``before_mail`` does."""
    settings = settings_for(workspace)
    writes_at_hook: list[int] = []
    with SmtpSession(replace(settings.smtp, pipelining=False)) as session:
        wire = Wire(session)
        session.submit(
            SENDER,
            (INTERVIEWER,),
            b"Subject: serial\r\n\r\nhi\r\n",
            in_envelope=lambda: writes_at_hook.append(len(wire.writes())),
        )
        assert wire.writes()[0].upper().startswith(b"MAIL FROM:")
    assert writes_at_hook == [0]


@pytest.mark.parametrize("error", [DuplicateError("already sent"), OSError("disk trouble")])
def test_an_error_in_in_envelope_drops_the_connection_and_delivers_nothing(
    stack: Stack, workspace: Path, error: Exception
) -> None:
    """Verify an error raised by ``in_envelope`` (the campaign's record of the message) goes
    out as it is, once: the envelope the server has begun is never finished (no body, no
    final dot, no RSET), the connection is dropped, nothing is delivered, and an OSError is
    not taken for a dropped connection and retried. The next message reconnects."""
    settings = settings_for(workspace)
    store = Store(settings.state_url)
    calls: list[int] = []
    dots: list[int] = []

    def fail() -> None:
        calls.append(1)
        raise error

    mark = stack.log_mark()
    with SmtpSession(settings.smtp, retries=2, sleep=lambda _: None) as session:
        wire = Wire(session)
        with pytest.raises(type(error)) as caught:
            session.submit(
                SENDER,
                (INTERVIEWER,),
                b"Subject: never\r\nMessage-ID: <never@test>\r\n\r\nnever\r\n",
                before_final_dot=lambda: dots.append(1),
                in_envelope=fail,
            )
        assert caught.value is error
        assert calls == [1] and dots == []
        assert len(wire.writes()) == 1  # the envelope only
        assert session._smtp is None
        prepared = apology.prepare(settings, facts(settings, company="After Co"), NOW)
        result = sending.send(settings, prepared, store, lambda: NOW, session=session)
    assert [e["message_id"] for e in accepted(stack, mark)] == [result.message_id]
    assert len(connects(stack, mark)) == 2
    assert stack.messages_with_id(INTERVIEWER, "<never@test>") == []


def test_without_pipelining_an_error_in_in_envelope_keeps_the_connection_and_its_cause(
    stack: Stack, workspace: Path
) -> None:
    """Verify that with one command per round trip an error of ``in_envelope`` (raised before
    anything of the message was written) leaves the connection as it was, so the next message
    needs no new login, and goes out with its own cause (the database error under a store
    error), not the session's wrapper."""
    settings = settings_for(workspace)
    store = Store(settings.state_url)
    cause = OSError("the disk under the store")
    error = DuplicateError("already sent")

    def fail() -> None:
        raise error from cause

    mark = stack.log_mark()
    with SmtpSession(replace(settings.smtp, pipelining=False)) as session:
        with pytest.raises(DuplicateError) as caught:
            session.submit(
                SENDER, (INTERVIEWER,), b"Subject: never\r\n\r\nnever\r\n", in_envelope=fail
            )
        assert caught.value.__cause__ is cause
        assert session._smtp is not None
        prepared = apology.prepare(settings, facts(settings, company="Kept Co"), NOW)
        result = sending.send(settings, prepared, store, lambda: NOW, session=session)
    assert [e["message_id"] for e in accepted(stack, mark)] == [result.message_id]
    assert len(connects(stack, mark)) == 1
