"""Which thread a delivery report is about (pure), and the store's record of what the
watcher passed over (issue #10, items 8 and 10)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from mailer.adapters.store import Store
from mailer.model.classify import read_message, reported_recipients
from mailer.model.matching import IndexedThread, ThreadIndex, bounce_concerns, match_report

T0 = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def _thread(tid: int, recipient: str, alt: tuple[str, ...] = ()) -> IndexedThread:
    return IndexedThread(tid, recipient, alt, (), T0, "awaiting_reply")


INDEX = ThreadIndex(
    our_ids={"<a@us>": 1, "<b@us>": 2},
    threads=(_thread(1, "ana@acme.example"), _thread(2, "bo@corp.example", ("bob@corp.example",))),
)


def test_a_reference_to_a_thread_that_is_over_counts_as_closed() -> None:
    """Verify only a reference to a thread that is over (not awaiting, followed up or held)
    sends a reply to be placed among the sender's threads; none, or an open one, does not."""
    from mailer.model.matching import Incoming, closed_reference

    over = IndexedThread(3, "ana@acme.example", (), (), T0, "cancelled")
    index = ThreadIndex({"<a@us>": 1, "<c@us>": 3}, (*INDEX.threads, over))

    def reply(*refs: str) -> Incoming:
        return Incoming("<r@them>", refs, "ana@acme.example", "Ana", "Re: sorry", T0, False)

    assert closed_reference(reply("<c@us>"), index)
    assert not closed_reference(reply("<a@us>"), index)
    assert not closed_reference(reply("<elsewhere@them>"), index)
    assert not closed_reference(reply("<c@us>", "<a@us>"), index)  # the nearest is open


def test_references_without_angle_brackets_are_read() -> None:
    """Verify an In-Reply-To or References written without angle brackets (old clients,
    ticket systems) still names our message, and bracketed ones are read as before."""
    from email.message import Message

    from mailer.model.matching import Incoming, match

    def headers(**values: str) -> Incoming:
        msg = Message()
        msg["From"] = "Colleague <cara@corp.example>"
        for name, value in values.items():
            msg[name.replace("_", "-")] = value
        return Incoming.from_headers(msg, T0 + timedelta(hours=1))

    bare = headers(In_Reply_To="a@us", References="x@them a@us")
    assert bare.refs == ("<a@us>", "<x@them>", "<a@us>")
    assert match(bare, INDEX) == 1
    bracketed = headers(In_Reply_To="<b@us> (Bo's message)")
    assert bracketed.refs == ("<b@us>",) and match(bracketed, INDEX) == 2
    assert headers(In_Reply_To="not an id at all").refs == ()


def test_a_report_carrying_two_of_our_ids_goes_to_the_thread_it_names() -> None:
    """Verify that of two threads whose Message-IDs a report carries, the one whose
    recipient (or alternate address) it names is chosen, whatever the set order."""
    ids = {"<a@us>", "<b@us>"}
    later = T0 + timedelta(hours=1)
    assert match_report(ids, ("bob@corp.example",), later, INDEX) == 2
    assert match_report(ids, ("ana@acme.example",), later, INDEX) == 1
    assert match_report(ids, ("zed@elsewhere.example",), later, INDEX) == 1  # checked later


def test_a_bounce_concerns_a_thread_only_if_it_names_one_of_its_recipients() -> None:
    """Verify a bounce naming only someone else does not concern the thread; one naming its
    recipient, a Cc or an alternate (any case) does; one naming no one cannot be checked."""
    thread = {"ana@acme.example", "cc@acme.example", "ana@home.example"}
    assert not bounce_concerns(("eve@acme.example",), thread)
    assert bounce_concerns(("eve@acme.example", "Ana@Acme.example"), thread)
    assert bounce_concerns(("cc@acme.example",), thread)
    assert bounce_concerns(("ana@home.example",), thread)
    assert bounce_concerns((), thread)


def test_a_report_names_its_original_recipients_too() -> None:
    """Verify an alias's bounce names the address we wrote to (Original-Recipient) as well
    as the final one, so the check above does not discard it."""
    raw = (
        b"From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
        b"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        b"Final-Recipient: rfc822; ana.internal@mx.example\r\n"
        b"Original-Recipient: rfc822; Ana@Acme.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        b"\r\n--B--\r\n"
    )
    assert reported_recipients(read_message(raw)) == (
        "ana.internal@mx.example",
        "ana@acme.example",
    )


def test_an_unreadable_message_is_recorded_once(tmp_path: Path) -> None:
    """Verify record_unreadable keeps folder, UIDVALIDITY, UID and reason, once per message."""
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    assert store.record_unreadable("INBOX", 7, 42, "RecursionError: too deep", T0)
    assert not store.record_unreadable("INBOX", 7, 42, "RecursionError: again", T0)
    assert store.record_unreadable("INBOX", 8, 42, "other UIDVALIDITY", T0)
    with store.tx() as c:
        rows = c.execute(text("SELECT folder, uidvalidity, uid, reason FROM unreadable")).all()
    assert [tuple(r) for r in rows] == [
        ("INBOX", 7, 42, "RecursionError: too deep"),
        ("INBOX", 8, 42, "other UIDVALIDITY"),
    ]


def test_a_message_about_another_apology_names_that_thread_unless_it_carries_its_own() -> None:
    """Verify about_others: the open threads whose apology subject a message carries (any
    case, spaces folded), leaving out the sender's own, and none when the message carries
    the subject of one of the sender's own apologies."""
    from mailer.model.matching import about_others

    alpha = "Apologies for missing our interview at Alpha on Friday – Sam"
    beta = "Apologies for missing our interview at Beta on Friday – Sam"
    open_threads = [(7, alpha), (8, beta), (9, "Something else")]
    folded = "RE: FW: apologies for missing our interview at BETA\n  on Friday – Sam"
    assert about_others(folded, {7: alpha}, open_threads) == (8,)
    assert about_others(f"RE: {alpha}", {7: alpha}, open_threads) == ()
    assert about_others(f"RE: {beta}", {8: beta}, open_threads) == ()
    assert about_others("Rescheduling", {7: alpha}, open_threads) == ()
    assert about_others(f"RE: {beta}", {}, [(8, beta), (10, "")]) == (8,)
