"""Hostile mail in the watched INBOX, over the real servers (issue #10, items 8-10).

Messages are put in the candidate's INBOX with IMAP APPEND, in a known order and with a
known arrival time; the pass runs in this process (``run_pass``) at a chosen clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from types import SimpleNamespace
from typing import Any

import pytest

from mailer.adapters.config import find_config, load_settings
from mailer.adapters.mailbox import BODY_LIMIT, Mailbox
from mailer.adapters.store import Store
from mailer.model import plan
from mailer.model.decision import bounced_for_good
from mailer.model.matching import Incoming
from mailer.services.passes import PassReport, run_pass

from .conftest import Pair, run_cli
from .test_followup import T0, send

pytestmark = pytest.mark.integration
EVIL = "x@evil.test"


def append(pair: Pair, raw: bytes, when: datetime = T0 + timedelta(minutes=1)) -> int:
    """Put ``raw`` in the candidate's INBOX; returns its UID (UIDPLUS)."""
    with pair.stack.imap(pair.candidate) as c:
        answer = c.append("INBOX", raw, msg_time=when)
    return int(re.search(rb"APPENDUID \d+ (\d+)", answer).group(1))


def message(
    sender: str, subject: str, body: str = "Hello.", headers: dict[str, str] | None = None
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "candidate"
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="sandbox.test")
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return bytes(msg)


def raw_message(headers: bytes, body: bytes = b"Hello.\r\n") -> bytes:
    """Bytes no well-behaved library would write: the hostile shapes themselves."""
    return headers + b"\r\n" + body


def dsn(recipient: str, carried_id: str = "", refs: str = "") -> bytes:
    """A delivery report for ``recipient`` from the mail system, carrying ``carried_id`` in
    the returned headers and ``refs`` in In-Reply-To."""
    head = (
        "From: MAILER-DAEMON@sandbox.test\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: {make_msgid(domain='sandbox.test')}\r\n"
        + (f"In-Reply-To: {refs}\r\n" if refs else "")
        + "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="R"\r\n\r\n'
        "--R\r\nContent-Type: text/plain\r\n\r\nI could not deliver your message.\r\n"
        "--R\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
        "--R\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        + (f"Message-ID: {carried_id}\r\n" if carried_id else "")
        + "Subject: an apology\r\n--R--\r\n"
    )
    return head.encode()


def follow_ups_to(pair: Pair, user: str, root: str) -> list[int]:
    with pair.stack.imap(user) as c:
        c.select_folder("INBOX", readonly=True)
        return c.search(["HEADER", "In-Reply-To", root])


def check(pair: Pair, after: timedelta) -> tuple[Store, PassReport]:
    settings = load_settings(find_config(pair.ws), need_secrets=True)
    store = Store(settings.state_url)
    return store, run_pass(settings, store, lambda: T0 + after)


def unreadable(store: Store) -> list[tuple[int, str]]:
    from sqlalchemy import text

    with store.tx() as c:
        return [
            tuple(r) for r in c.execute(text("SELECT uid, reason FROM unreadable ORDER BY uid"))
        ]


def test_hostile_messages_before_a_reply_do_not_stop_the_pass(pair: Pair) -> None:
    """Verify a From: of 1,000 nested parentheses (and the same attack with other inputs)
    ahead of a real reply: the reply is seen, the folder position passes them all, and
    another thread's overdue follow-up still goes."""
    a, a_root = send(pair)
    b, b_root = send(pair, to=pair.alternate)
    hostile = [
        raw_message(b"From: " + b"(" * 1000 + b")" * 1000 + b" <x@evil.test>\r\nSubject: 1"),
        raw_message(b"From: " + b"(" * 100_000 + b"\r\nSubject: 2"),
        raw_message(b"From: " + b":" * 5000 + b" <x@evil.test>\r\nSubject: 3"),
        raw_message(b"From: x@evil.test\r\nSubject: " + b"=?utf-8?q?abc?= " * 100_000),
        raw_message(b"From: x@evil.test\r\nReferences: " + b"<" * 1_000_000 + b"\r\nSubject: 5"),
        # A report is read further (body and classifier): 3 MB of a repeated field.
        dsn("nobody@sandbox.test").replace(b"Status: 5.1.1", b"Status: " * 400_000),
    ]
    uids = [append(pair, raw) for raw in hostile]
    reply = message(pair.interviewer, "Re: interview", "Friday works.", {"In-Reply-To": a_root})
    reply_uid = append(pair, reply)

    store, report = check(pair, timedelta(hours=2))

    assert report.problems == [], report.problems
    thread_a = store.thread(a)
    assert thread_a.state == "replied" and thread_a.detail["replied_by"] == pair.interviewer
    position = store.folder_state("INBOX")
    assert position is not None and position[1] >= reply_uid > max(uids)
    assert [t for t, _ in report.sent] == [b]
    assert len(follow_ups_to(pair, pair.alternate, b_root)) == 1


def test_a_message_the_watcher_cannot_read_is_recorded_and_passed_over(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify any failure to read one message (here forced, in the header parse and in the
    decision) is logged, recorded with folder, UID and reason, and passed over: the position
    moves past it, a thread it replies to stops its follow-up, another thread's still goes."""
    a, a_root = send(pair)
    b, b_root = send(pair, to=pair.alternate)
    parse = Incoming.from_headers.__func__
    decide = plan.decide

    def failing_parse(cls: type[Incoming], msg: Any, received: datetime) -> Incoming:
        if "BOOM-HEADERS" in str(msg.get("Subject", "")):
            raise RecursionError("maximum recursion depth exceeded")
        return parse(cls, msg, received)

    def failing_decide(thread: Any, incoming: Any, *args: Any) -> Any:
        if "BOOM-DECIDE" in incoming.subject:
            raise ValueError("year 10000 is out of range")
        return decide(thread, incoming, *args)

    monkeypatch.setattr(Incoming, "from_headers", classmethod(failing_parse))
    monkeypatch.setattr(plan, "decide", failing_decide)
    first = append(pair, message(EVIL, "BOOM-HEADERS"))
    second = append(
        pair, message(pair.interviewer, "Re: BOOM-DECIDE", "Call me.", {"In-Reply-To": a_root})
    )

    store, report = check(pair, timedelta(hours=2))

    assert unreadable(store) == [
        (first, "RecursionError: maximum recursion depth exceeded"),
        (second, "ValueError: year 10000 is out of range"),
    ]
    assert store.folder_state("INBOX")[1] >= second
    thread_a = store.thread(a)
    assert thread_a.state == "replied" and "UID" in thread_a.detail["unreadable"]
    assert [t for t, _ in report.sent] == [b]
    assert follow_ups_to(pair, pair.interviewer, a_root) == []
    assert len(follow_ups_to(pair, pair.alternate, b_root)) == 1


def test_a_bounce_naming_another_recipient_does_not_bounce_the_thread(pair: Pair) -> None:
    """Verify a DSN that names recipient A but carries thread B's Message-ID (in the returned
    headers, or in In-Reply-To) is recorded as unmatched: B is not bounced, no address is
    blocked, and both threads get their follow-up."""
    a, a_root = send(pair)
    b, b_root = send(pair, to=pair.alternate)
    append(pair, dsn(pair.interviewer, carried_id=b_root))
    append(pair, dsn("someone.else@sandbox.test", refs=b_root))

    store, report = check(pair, timedelta(hours=2))

    assert sorted(t for t, _ in report.sent) == [a, b]
    assert store.thread(a).state == store.thread(b).state == "followed_up"
    since = T0 - timedelta(days=1)
    for address in (pair.alternate, pair.interviewer):
        assert bounced_for_good(store.bounced_threads(address, 0), since) is None
    unmatched = [e for e in store.events(b) if e["kind"] == "bounce_unmatched"]
    assert len(unmatched) == 2
    assert pair.interviewer in unmatched[0]["detail"]
    assert "someone.else@sandbox.test" in unmatched[1]["detail"]
    assert [e for e in store.events(a) if "bounce" in e["kind"]] == []
    assert len(follow_ups_to(pair, pair.interviewer, a_root)) == 1
    assert len(follow_ups_to(pair, pair.alternate, b_root)) == 1


def _spy(
    monkeypatch: pytest.MonkeyPatch, name: str, sizes: Callable[[Any], list[int]]
) -> list[int]:
    seen: list[int] = []
    real = getattr(Mailbox, name)

    def spy(self: Mailbox, *args: Any, **kwargs: Any) -> Any:
        result = real(self, *args, **kwargs)
        seen.extend(sizes(result))
        return result

    monkeypatch.setattr(Mailbox, name, spy)
    return seen


def test_a_large_message_is_read_as_a_bounded_prefix(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify a 4 MB reply is fetched as at most BODY_LIMIT bytes (and still seen as the
    reply), and a 2 MB header as at most 64 KB."""
    a, a_root = send(pair)
    bodies = _spy(monkeypatch, "fetch_raw", lambda raw: [len(raw)])
    headers = _spy(monkeypatch, "fetch_headers", lambda d: [len(v) for v in d.values()])
    after = _spy(monkeypatch, "fetch_headers_after", lambda d: [len(v) for v in d.values()])
    reply = EmailMessage()
    reply["From"] = pair.interviewer
    reply["To"] = pair.candidate
    reply["Subject"] = "Re: interview"
    reply["In-Reply-To"] = a_root
    reply.set_content("Friday works; the slides are attached.")
    reply.add_attachment(b"\x00slides" * 500_000, maintype="application", subtype="pdf")
    append(pair, raw_message(b"From: x@evil.test\r\nSubject: " + b"Re: " * 500_000))
    append(pair, bytes(reply))

    store, report = check(pair, timedelta(seconds=30))

    assert report.problems == [], report.problems
    assert store.thread(a).state == "replied"
    assert len(bytes(reply)) > 4 * BODY_LIMIT
    assert bodies and max(bodies) <= BODY_LIMIT
    assert headers + after and max(headers + after) <= 65_536


def test_a_reply_with_a_broken_encoded_subject_still_stops_the_follow_up(pair: Pair) -> None:
    """Verify a human reply whose Subject is a broken base64 encoded word is still taken as
    the reply (its In-Reply-To is ours), so no follow-up goes after it."""
    a, a_root = send(pair)
    append(
        pair,
        raw_message(
            f"From: {pair.interviewer}\r\nSubject: Re: =?utf-8?b?abcde?=\r\n"
            f"In-Reply-To: {a_root}\r\nMessage-ID: {make_msgid(domain='sandbox.test')}\r\n".encode(),
            b"Friday works for me.\r\n",
        ),
    )
    store, report = check(pair, timedelta(hours=2))
    assert store.thread(a).state == "replied", report.problems
    assert follow_ups_to(pair, pair.interviewer, a_root) == []


def test_a_message_whose_headers_cannot_be_parsed_is_tied_by_the_ids_it_quotes(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify a message no parser can read, but whose raw headers quote our Message-ID,
    stops that thread's follow-up rather than being passed over untied."""
    a, a_root = send(pair)

    def unreadable_headers(cls: type[Incoming], msg: Any, received: datetime) -> Incoming:
        raise ValueError("headers beyond repair")

    monkeypatch.setattr(Incoming, "from_headers", classmethod(unreadable_headers))
    append(pair, message(pair.interviewer, "Re: x", "Yes.", {"In-Reply-To": a_root}))
    store, _ = check(pair, timedelta(hours=2))
    thread = store.thread(a)
    assert thread.state == "replied" and "unreadable" in thread.detail
    assert follow_ups_to(pair, pair.interviewer, a_root) == []


def test_a_bounce_for_the_cc_alone_keeps_the_thread_and_drops_that_address(pair: Pair) -> None:
    """Verify a delivery report naming only the Cc recipient does not bounce the thread: it
    is noted, and the follow-up still goes to the interviewer, without that Cc."""
    thread, root = send(pair, "--cc", pair.alternate)
    append(pair, dsn(pair.alternate, carried_id=root))
    store, report = check(pair, timedelta(hours=2))  # the report is read, then what is due
    assert report.problems == [], report.problems
    t = store.thread(thread)
    assert t.state == "followed_up" and t.detail["cc_bounced"] == pair.alternate
    assert [tid for tid, _ in report.sent] == [thread]
    assert len(follow_ups_to(pair, pair.interviewer, root)) == 1
    assert follow_ups_to(pair, pair.alternate, root) == []
    listed = run_cli(pair.ws, "status", env={"MAILER_NOW": (T0 + timedelta(hours=2)).isoformat()})
    row = next(line for line in listed.stdout.splitlines() if line.split()[:1] == [str(thread)])
    assert f"Cc bounced: {pair.alternate}" in row


def test_only_a_report_naming_nobody_but_cc_recipients_spares_the_thread() -> None:
    """Verify a report naming a Cc and any other address (the interviewer's, or one a
    forwarder rewrote it to) is the thread's bounce, not the Cc's alone."""
    from mailer.services.watcher import only_cc

    t = SimpleNamespace(facts={"cc": ["Bo@X.test", "al@x.test"]}, recipient="ana@acme.test")
    assert only_cc(["bo@x.test"], t) == ("bo@x.test",)
    assert only_cc(["BO@x.test", "al@x.test"], t) == ("al@x.test", "bo@x.test")
    assert only_cc(["bo@x.test", "ana.ruiz@acme-internal.test"], t) == ()
    assert only_cc(["ana@acme.test"], t) == ()
    assert only_cc([], t) == ()


def test_a_bounce_for_the_interviewer_still_bounces_a_thread_with_a_cc(pair: Pair) -> None:
    """Verify a report naming the interviewer bounces the thread even when it had a Cc."""
    thread, root = send(pair, "--cc", pair.alternate)
    append(pair, dsn(pair.interviewer, carried_id=root))
    store, _ = check(pair, timedelta(minutes=5))
    assert store.thread(thread).state == "bounced"
