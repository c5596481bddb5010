"""The last look before a follow-up also searches outside the watched folders: a reply the
provider filed as junk, or the user archived or deleted before a pass saw it, stops the
follow-up as one in INBOX does (review of session 14). Against the real Dovecot."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from .conftest import Pair, run_cli
from .test_followup import T0, check_at, send, status

pytestmark = pytest.mark.integration


def _deliver_then_move(
    pair: Pair, folder: str, subject: str, body: str, sender: str = "", **headers: str
) -> None:
    """The interviewer's message (or ``sender``'s), delivered to the candidate's INBOX, then
    moved to ``folder`` (made if missing), as a provider's filter or the user's archiving
    does."""
    pair.send_as(sender or pair.interviewer, pair.candidate, subject, body, headers)
    with pair.stack.imap(pair.candidate) as c:
        if not c.folder_exists(folder):
            c.create_folder(folder)
        c.select_folder("INBOX")
        deadline = time.monotonic() + 30
        while not (uids := c.search(["SUBJECT", subject], "UTF-8")) and time.monotonic() < deadline:
            time.sleep(0.05)  # polling the mailbox for the delivery
            c.noop()
        assert uids, f"{subject!r} never arrived"
        c.move(uids, folder)


@pytest.mark.parametrize("folder", ["Junk", "Archive", "Trash"])
def test_a_reply_moved_out_of_the_inbox_before_a_pass_stops_the_follow_up(
    pair: Pair, folder: str
) -> None:
    """Verify a threaded human reply that a pass never saw in INBOX (filed as junk, archived
    or deleted by the user after one pass had looked) makes the thread replied, and no
    follow-up goes."""
    thread, root = send(pair)
    check_at(pair, timedelta(seconds=30))  # a pass: INBOX's position is recorded
    _deliver_then_move(
        pair,
        folder,
        "Re: our interview",
        "No problem at all. How about Friday at 10?",
        **{"In-Reply-To": root, "References": root},
    )
    out = check_at(pair, timedelta(hours=2))
    assert "0 follow-up(s) sent" in out or "follow-up(s) sent" not in out, out
    assert status(pair, thread)["state"] == "replied", out
    assert pair.follow_ups_received(root) == []


def test_a_reply_to_the_follow_up_filed_as_junk_is_found_before_the_thread_closes(
    pair: Pair,
) -> None:
    """Verify a human reply to the follow-up that went straight to Junk makes the thread
    replied when it is due to close, not "no answer": folders outside the watched ones were
    looked at only before a follow-up (a walkthrough)."""
    from email import message_from_bytes

    thread, root = send(pair)
    assert "1 follow-up(s) sent" in check_at(pair, timedelta(minutes=5))
    (follow_up,) = pair.follow_ups_received(root)
    follow_up_id = message_from_bytes(follow_up)["Message-ID"]
    _deliver_then_move(
        pair,
        "Junk",
        "Re: Re: our interview",
        "Sorry for the silence: does Friday at 10 suit you?",
        **{"In-Reply-To": follow_up_id, "References": f"{root} {follow_up_id}"},
    )
    out = check_at(pair, timedelta(hours=2))
    assert status(pair, thread)["state"] == "replied", out


def test_an_out_of_office_filed_elsewhere_does_not_stop_the_follow_up(pair: Pair) -> None:
    """Verify what is found outside INBOX is classified, not taken for a reply as such: an
    out-of-office in Junk leaves the follow-up to go."""
    thread, root = send(pair)
    _deliver_then_move(
        pair,
        "Junk",
        "Automatic reply: our interview",
        "I am out of the office until 5 December with no access to email.",
        **{"In-Reply-To": root, "References": root, "Auto-Submitted": "auto-replied"},
    )
    out = check_at(pair, timedelta(hours=2))
    assert len(pair.follow_ups_received(root)) == 1, out
    assert status(pair, thread)["state"] == "followed_up", out


def test_the_users_own_message_in_the_thread_elsewhere_is_not_a_reply(pair: Pair) -> None:
    """Verify a message from the candidate's own address that refers to the apology (a
    forward to a friend, filed in Archive) is not taken for the interviewer's reply."""
    thread, root = send(pair)
    _deliver_then_move(
        pair,
        "Archive",
        "Fwd: sorry",
        "Have a look at what I sent.",
        sender=pair.candidate,
        **{"In-Reply-To": root, "References": root},
    )
    out = check_at(pair, timedelta(hours=2))
    assert len(pair.follow_ups_received(root)) == 1, out
    assert status(pair, thread)["state"] == "followed_up", out


def test_the_folders_searched_leave_out_our_own_and_follow_an_all_mail_folder() -> None:
    """Verify which folders the last look searches: not the watched ones, Sent, Drafts or
    unselectable ones; with an "all mail" folder (Gmail), only it, Junk and Trash."""
    from types import SimpleNamespace

    from mailer.adapters.mailbox import Mailbox

    def folders(listing: list[tuple[tuple[bytes, ...], str]], watched=("INBOX",)) -> list[str]:
        box = Mailbox.__new__(Mailbox)
        box.settings = SimpleNamespace(sent_folder="")
        box.client = SimpleNamespace(list_folders=lambda: [(f, b"/", n) for f, n in listing])
        return box.other_folders(watched)

    dovecot = [
        ((b"\\HasNoChildren",), "INBOX"),
        ((b"\\HasNoChildren", b"\\Sent"), "Sent"),
        ((b"\\HasNoChildren", b"\\Drafts"), "Drafts"),
        ((b"\\HasNoChildren", b"\\Junk"), "Junk"),
        ((b"\\HasNoChildren", b"\\Trash"), "Trash"),
        ((b"\\Noselect", b"\\HasChildren"), "Work"),
        ((b"\\HasNoChildren",), "Work/Archive"),
    ]
    assert folders(dovecot) == ["Junk", "Trash", "Work/Archive"]
    assert folders(dovecot, watched=("inbox", "Junk")) == ["Trash", "Work/Archive"]
    gmail = [
        ((b"\\HasNoChildren",), "INBOX"),
        ((b"\\HasChildren", b"\\Noselect"), "[Gmail]"),
        ((b"\\All", b"\\HasNoChildren"), "[Gmail]/All Mail"),
        ((b"\\HasNoChildren", b"\\Important"), "[Gmail]/Important"),
        ((b"\\HasNoChildren", b"\\Sent"), "[Gmail]/Sent Mail"),
        ((b"\\HasNoChildren", b"\\Junk"), "[Gmail]/Spam"),
        ((b"\\HasNoChildren", b"\\Trash"), "[Gmail]/Bin"),
        ((b"\\HasNoChildren",), "Jobs"),
    ]
    assert folders(gmail) == ["[Gmail]/All Mail", "[Gmail]/Spam", "[Gmail]/Bin"]


def test_a_fresh_reply_from_the_interviewer_filed_as_junk_stops_the_follow_up(pair: Pair) -> None:
    """Verify a reply written fresh (no In-Reply-To, no References) from the interviewer's
    address, filed in Junk before a pass saw it, is found by its sender and stops the
    follow-up."""
    thread, root = send(pair)
    _deliver_then_move(pair, "Junk", "Rescheduling", "Hi Sam, does Thursday at 2pm work?")
    out = check_at(pair, timedelta(hours=2))
    assert status(pair, thread)["state"] == "replied", out
    assert pair.follow_ups_received(root) == []


def test_a_colleague_answering_a_forward_holds_the_follow_up_until_the_user_decides(
    pair: Pair,
) -> None:
    """Verify a person at an address the thread does not know, answering a forward of the
    apology ("RE: FW: <its subject>", referring only to the forward), holds the thread: no
    follow-up goes, check names it with mark-replied and release; once released, the same
    message does not hold it again and the follow-up goes."""
    thread, root = send(pair)
    subject = status(pair, thread)["subject"]
    pair.send_as(
        pair.alternate,
        pair.candidate,
        f"RE: FW: {subject}",
        "Hi Sam, Ana asked me to pick this up. Are you free Thursday at 2pm?",
        {"In-Reply-To": "<fwd123@corp.example>", "References": "<fwd123@corp.example>"},
    )
    out = check_at(pair, timedelta(hours=2), expect=9)  # 9: a thread waits for the user
    assert pair.follow_ups_received(root) == [], out
    shown = status(pair, thread)
    assert shown["state"] == "held" and shown["held"]["by"] == pair.alternate, out
    assert f"mailer mark-replied {thread}" in out and f"mailer release {thread}" in out

    released = run_cli(pair.ws, "release", str(thread))
    assert released.returncode == 0, released.stderr
    check_at(pair, timedelta(hours=3))
    assert len(pair.follow_ups_received(root)) == 1


def test_an_auto_reply_with_the_apologys_subject_from_elsewhere_holds_nothing(pair: Pair) -> None:
    """Verify a message with the apology's subject from an unknown address that is
    automatic (a ticket system's acknowledgement) does not hold the follow-up."""
    thread, root = send(pair)
    subject = status(pair, thread)["subject"]
    pair.send_as(
        pair.alternate,
        pair.candidate,
        f"[Ticket #4821] {subject}",
        "This is an automated message. Your request has been received (ticket number 4821).",
        {"Auto-Submitted": "auto-replied"},
    )
    out = check_at(pair, timedelta(hours=2))
    assert len(pair.follow_ups_received(root)) == 1, out
    assert status(pair, thread)["state"] == "followed_up"


CHALLENGE = (
    "This account is protected by SpamShield. Please click on the following link to have "
    "your address added to the recipient's allowed list:\nhttps://cr.example/v/1"
)


def test_a_message_acted_on_is_not_acted_on_again_from_another_folder(pair: Pair) -> None:
    """Verify a challenge-response notice that held the thread, then moved to Trash after the
    user verified and released it, does not hold the thread again from there (it is known by
    its Message-ID): the follow-up goes after one release."""
    thread, root = send(pair)
    pair.send_as(
        pair.interviewer,
        pair.candidate,
        "Re: Sorry I missed our interview",
        CHALLENGE,
        {"In-Reply-To": root, "References": root},
    )
    out = check_at(pair, timedelta(seconds=30), expect=9)
    assert status(pair, thread)["state"] == "held", out
    with pair.stack.imap(pair.candidate) as c:
        c.select_folder("INBOX")
        c.move(c.search(["ALL"]), "Trash")
    assert run_cli(pair.ws, "release", str(thread)).returncode == 0
    out = check_at(pair, timedelta(hours=2))
    assert len(pair.follow_ups_received(root)) == 1, out
    assert status(pair, thread)["state"] == "followed_up"


def test_a_reply_found_in_the_last_look_is_reported_like_any_other(pair: Pair) -> None:
    """Verify the pass reports a reply that only the search before the follow-up found (it
    sat in Junk, where the user may never look): who replied, and to which thread."""
    thread, root = send(pair)
    check_at(pair, timedelta(seconds=30))
    _deliver_then_move(
        pair,
        "Junk",
        "Re: our interview",
        "No problem at all. How about Friday at 10?",
        **{"In-Reply-To": root, "References": root},
    )
    out = check_at(pair, timedelta(hours=2))
    assert "1 new related message(s)" in out, out
    assert pair.interviewer in out and f"thread {thread}" in out, out


def test_a_fresh_reply_from_an_alternate_domain_filed_as_junk_stops_the_follow_up(
    pair: Pair,
) -> None:
    """Verify the search before a follow-up covers an --alt-domain too: a colleague at that
    domain answering (no references) from Junk marks the thread replied."""
    thread, root = send(pair, "--alt-domain", "corp.example")
    with pair.stack.imap(pair.candidate) as c:
        raw = (
            "From: Cara <cara@corp.example>\r\nTo: " + pair.candidate + "\r\n"
            "Subject: Your interview\r\nMessage-ID: <cara-1@corp.example>\r\n\r\n"
            "Hi Sam, Ana asked me to find a new time. Are you free Thursday at 2pm?\r\n"
        ).encode()
        c.append("Junk", raw)
    out = check_at(pair, timedelta(hours=2))
    assert status(pair, thread)["state"] == "replied", out
    assert pair.follow_ups_received(root) == []


def test_a_reply_to_another_thread_with_the_same_subject_holds_nothing(pair: Pair) -> None:
    """Verify the interviewer's reply to one apology, archived, does not hold another thread
    whose apology has the same subject (it refers to the first thread's message)."""
    first, first_root = send(pair, "--company", "Same Co")
    second, _ = send(pair, "--company", "Same Co", to=pair.alternate)
    assert status(pair, first)["subject"] == status(pair, second)["subject"]
    _deliver_then_move(
        pair,
        "Archive",
        "Re: " + status(pair, first)["subject"],
        "No problem - how about Friday at 10?",
        **{"In-Reply-To": first_root, "References": first_root},
    )
    out = check_at(pair, timedelta(hours=2))
    assert status(pair, first)["state"] == "replied", out
    assert status(pair, second)["state"] == "followed_up", out  # (its follow-up went)


def test_one_pass_opens_each_other_folder_once_for_all_its_due_follow_ups(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify the last look is taken once for all the follow-ups a pass sends: with three
    due, each folder outside INBOX is opened once (not once per follow-up), and the reply
    archived for the second thread still stops its follow-up while the others go."""
    from mailer.adapters.mailbox import Mailbox

    sent = [send(pair, "--company", f"Co {n}") for n in range(3)]
    check_at(pair, timedelta(seconds=30))  # a pass: INBOX's position is recorded
    _deliver_then_move(
        pair,
        "Archive",
        "Re: our interview",
        "No problem at all. How about Friday at 10?",
        **{"In-Reply-To": sent[1][1], "References": sent[1][1]},
    )
    with pair.stack.imap(pair.candidate) as c:
        for folder in ("Work", "Work/Old", "Recruiters"):
            c.create_folder(folder)
    opened: list[str] = []
    select = Mailbox.select

    def counted(self: Mailbox, folder: str, *args: object, **kwargs: object):
        opened.append(folder)
        return select(self, folder, *args, **kwargs)

    monkeypatch.setattr(Mailbox, "select", counted)
    out = check_at(pair, timedelta(hours=2))
    assert "2 follow-up(s) sent" in out, out
    assert [status(pair, t)["state"] for t, _ in sent] == ["followed_up", "replied", "followed_up"]
    assert [len(pair.follow_ups_received(root)) for _, root in sent] == [1, 0, 1]
    others = [f for f in opened if f != "INBOX"]
    assert {"Archive", "Junk", "Trash", "Work/Old", "Recruiters"} <= set(others), opened
    assert len(others) == len(set(others)), opened  # each once, for the three threads


def test_a_colleagues_answer_with_the_subject_of_two_threads_holds_both(pair: Pair) -> None:
    """Verify an answer from an unknown colleague whose subject is that of two threads due
    in the same pass (two interviews at one company on one day) holds both: neither
    follow-up goes, and check names both threads."""
    first, first_root = send(pair, "--company", "Same Co")
    second, second_root = send(pair, "--company", "Same Co", to=pair.alternate)
    subject = status(pair, first)["subject"]
    assert status(pair, second)["subject"] == subject
    _colleague_answers(pair, subject)
    out = check_at(pair, timedelta(hours=2), expect=9)  # 9: threads wait for the user
    assert [status(pair, t)["state"] for t in (first, second)] == ["held", "held"], out
    assert pair.follow_ups_received(first_root) == []
    assert pair.follow_ups_received(second_root) == []
    assert f"mailer release {first}" in out and f"mailer release {second}" in out, out


RECRUITER_ON_ANOTHER = "Hi Sam, Bea forwarded me your note. I am handling the rescheduling now."


@pytest.mark.parametrize("folder", ["INBOX", "Archive"])
def test_a_message_about_another_apology_from_someone_with_their_own_holds_both(
    pair: Pair, folder: str
) -> None:
    """Verify a message with no references from the interviewer of one thread that carries
    the subject of another thread's apology ("RE: FW: ..."; a recruiter handling both
    interviews) holds both: the other thread gets no follow-up after its answer, and the
    sender's own thread is not marked replied on a guess. In INBOX, or filed elsewhere
    before a pass saw it (walkthrough of session 16: it made the sender's thread replied,
    and the other's follow-up went)."""
    first, first_root = send(pair, "--company", "Alpha Co")
    second, second_root = send(pair, "--company", "Beta Co", to=pair.alternate)
    subject = status(pair, second)["subject"]
    _deliver_then_move(pair, folder, f"RE: FW: {subject}", RECRUITER_ON_ANOTHER)
    out = check_at(pair, timedelta(hours=2), expect=9)  # 9: threads wait for the user
    assert [status(pair, t)["state"] for t in (first, second)] == ["held", "held"], out
    assert pair.follow_ups_received(first_root) == []
    assert pair.follow_ups_received(second_root) == []
    assert f"mailer release {first}" in out and f"mailer release {second}" in out, out


@pytest.mark.parametrize("how", ["move", "copy"])
def test_a_message_about_another_apology_released_does_not_hold_again_from_another_folder(
    pair: Pair, how: str
) -> None:
    """Verify that once the user settled the two threads such a message held (the sender's
    marked replied, the other released), the message moved or copied to another folder
    (Gmail's All Mail holds a copy of everything) holds nothing again: the released
    thread's follow-up goes (review of session 16: it was held again, for good)."""
    first, _ = send(pair, "--company", "Alpha Co")
    second, second_root = send(pair, "--company", "Beta Co", to=pair.alternate)
    subject = status(pair, second)["subject"]
    pair.send_as(pair.interviewer, pair.candidate, f"RE: FW: {subject}", RECRUITER_ON_ANOTHER)
    check_at(pair, timedelta(seconds=30), expect=9)
    assert run_cli(pair.ws, "mark-replied", str(first)).returncode == 0
    assert run_cli(pair.ws, "release", str(second)).returncode == 0
    with pair.stack.imap(pair.candidate) as c:
        c.create_folder("Archive")
        c.select_folder("INBOX")
        (c.move if how == "move" else c.copy)(c.search(["ALL"]), "Archive")
    out = check_at(pair, timedelta(hours=2))
    assert status(pair, second)["state"] == "followed_up", out
    assert len(pair.follow_ups_received(second_root)) == 1


def test_a_message_about_another_apology_found_first_by_its_last_look_holds_the_senders_too(
    pair: Pair,
) -> None:
    """Verify a recruiter's message about another apology, filed elsewhere before any pass
    saw it and found by the other thread's last look before the recruiter's own thread is
    due, holds the recruiter's own thread too: no follow-up goes to it later (review of
    session 16: it went)."""
    second, second_root = send(pair, "--company", "Beta Co", to=pair.alternate)
    first, first_root = send(pair, "--company", "Alpha Co", now=T0 + timedelta(hours=1))
    subject = status(pair, second)["subject"]
    _deliver_then_move(pair, "Archive", f"RE: FW: {subject}", RECRUITER_ON_ANOTHER)
    out = check_at(pair, timedelta(minutes=2), expect=9)
    assert [status(pair, t)["state"] for t in (first, second)] == ["held", "held"], out
    out = check_at(pair, timedelta(hours=2), expect=9)
    assert pair.follow_ups_received(first_root) == pair.follow_ups_received(second_root) == []


def test_a_message_about_another_apology_from_someone_whose_thread_is_over_holds_that_one(
    pair: Pair,
) -> None:
    """Verify the same message from someone whose own thread is closed (replied) holds the
    thread whose subject it carries, and leaves the closed one as it was."""
    first, first_root = send(pair, "--company", "Alpha Co")
    assert run_cli(pair.ws, "mark-replied", str(first)).returncode == 0
    second, second_root = send(pair, "--company", "Beta Co", to=pair.alternate)
    subject = status(pair, second)["subject"]
    pair.send_as(pair.interviewer, pair.candidate, f"RE: FW: {subject}", RECRUITER_ON_ANOTHER)
    out = check_at(pair, timedelta(hours=2), expect=9)
    assert [status(pair, t)["state"] for t in (first, second)] == ["replied", "held"], out
    assert pair.follow_ups_received(first_root) == pair.follow_ups_received(second_root) == []


def test_a_reply_with_the_subject_of_the_senders_own_apology_holds_no_other(pair: Pair) -> None:
    """Verify a reply with no references whose subject is that of the sender's own apology
    marks that thread replied, though another thread's apology has the same subject (two
    interviews at one company): the other's follow-up goes."""
    first, first_root = send(pair, "--company", "Same Co")
    second, second_root = send(pair, "--company", "Same Co", to=pair.alternate)
    subject = status(pair, first)["subject"]
    assert status(pair, second)["subject"] == subject
    pair.send_as(pair.interviewer, pair.candidate, f"RE: {subject}", "Friday at 10 works.")
    out = check_at(pair, timedelta(hours=2))
    assert [status(pair, t)["state"] for t in (first, second)] == ["replied", "followed_up"], out
    assert pair.follow_ups_received(first_root) == []
    assert len(pair.follow_ups_received(second_root)) == 1


def test_the_last_look_is_taken_again_for_the_follow_ups_left_once_it_is_old(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Verify a pass's one last look covers the follow-ups after the first only while it is
    recent: past LOOK_AGAIN_AFTER seconds, the next follow-up's look is taken again, for the
    threads still to go (not those gone already, nor ones no longer waiting)."""
    from types import SimpleNamespace

    from mailer.services import passes

    looks: list[list[int]] = []
    monkeypatch.setattr(
        passes, "look_elsewhere", lambda *a: looks.append([t.id for t in a[-1]]) or []
    )
    waiting, replied = passes.AWAITING, passes.REPLIED
    states = {1: waiting, 2: waiting, 3: waiting, 4: replied}
    store = SimpleNamespace(thread=lambda i, lenient: SimpleNamespace(id=i, state=states[i]))
    now = [100.0]
    look = passes.LastLook(None, store, None, None, [1, 2, 3, 4], elapsed=lambda: now[0])
    look.before(1)
    now[0] += passes.LOOK_AGAIN_AFTER - 1
    look.before(2)
    now[0] += 2
    look.before(3)
    assert looks == [[1, 2, 3], [3]]


def test_a_last_look_that_failed_is_not_taken_for_a_fresh_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Verify a look taken again that fails (the store busy, a thread changing under it)
    covers nobody: the next follow-up takes a look of its own, not the old one's word
    (review of session 15)."""
    from types import SimpleNamespace

    from mailer.errors import StateError
    from mailer.services import passes

    looks: list[list[int]] = []
    failing = [False]

    def look_elsewhere(*args: object) -> list:
        looks.append([t.id for t in args[-1]])  # type: ignore[attr-defined]
        if failing[0]:
            raise StateError("thread 2 changed 3 times while a message was recorded")
        return []

    monkeypatch.setattr(passes, "look_elsewhere", look_elsewhere)
    store = SimpleNamespace(thread=lambda i, lenient: SimpleNamespace(id=i, state=passes.AWAITING))
    now = [100.0]
    look = passes.LastLook(None, store, None, None, [1, 2, 3], elapsed=lambda: now[0])
    look.before(1)
    now[0] += passes.LOOK_AGAIN_AFTER + 1
    failing[0] = True
    with pytest.raises(StateError):
        look.before(2)  # (send_due reports it and goes on to thread 3)
    failing[0] = False
    now[0] += 1
    look.before(3)
    assert looks == [[1, 2, 3], [2, 3], [3]]


def _colleague_answers(pair: Pair, subject: str) -> None:
    """A colleague's answer with ``subject`` ("RE: FW: ..."), filed in Archive."""
    with pair.stack.imap(pair.candidate) as c:
        raw = (
            f"From: Cara <cara@corp.example>\r\nTo: {pair.candidate}\r\n"
            f"Subject: RE: FW: {subject}\r\nMessage-ID: <cara-3@corp.example>\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            "Hi Sam, I am covering for Ana. Are you free Thursday at 2pm?\r\n"
        ).encode()
        if not c.folder_exists("Archive"):
            c.create_folder("Archive")
        c.append("Archive", raw)


def test_one_threads_search_refused_in_a_folder_leaves_the_others_searched(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify a server refusing one thread's subject search in a folder costs only that
    thread's search there: a colleague's answer to two other threads due in the same pass
    still holds both (review of session 15)."""
    from mailer.adapters.mailbox import Mailbox
    from mailer.errors import DeliveryError

    first, first_root = send(pair, "--company", "Same Co")
    second, second_root = send(pair, "--company", "Same Co", to=pair.alternate)
    third, _ = send(pair, "--company", "Other Co")
    subject = status(pair, first)["subject"]
    other = " ".join(status(pair, third)["subject"].split())
    _colleague_answers(pair, subject)
    real = Mailbox.uids_with_subject

    def refusing(self: Mailbox, wanted: str, since: object) -> list[int]:
        if wanted == other and self.selected and self.selected[0] == "Archive":
            raise DeliveryError("IMAP: cannot search: NO [SERVERBUG]", kind="protocol")
        return real(self, wanted, since)

    monkeypatch.setattr(Mailbox, "uids_with_subject", refusing)
    out = check_at(pair, timedelta(hours=2), expect=9)
    assert [status(pair, t)["state"] for t in (first, second)] == ["held", "held"], out
    assert (
        pair.follow_ups_received(first_root) == [] and pair.follow_ups_received(second_root) == []
    )
    assert "not searched for answers to thread" in out, out


def test_a_refused_search_for_every_subject_falls_back_to_one_search_each(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify a server that refuses the one search for all the due threads' subjects (a
    charset, its length) is taken to hold a match: each thread's subject is then searched
    on its own, and a colleague's answer still holds the thread."""
    from mailer.adapters.mailbox import Mailbox
    from mailer.errors import DeliveryError

    thread, root = send(pair)
    _colleague_answers(pair, status(pair, thread)["subject"])

    def refused(self: Mailbox, subjects: list[str], since: object) -> list[int]:
        raise DeliveryError("IMAP: cannot search: BAD [BADCHARSET]", kind="protocol")

    monkeypatch.setattr(Mailbox, "uids_with_any_subject", refused)
    out = check_at(pair, timedelta(hours=2), expect=9)
    assert status(pair, thread)["state"] == "held", out
    assert pair.follow_ups_received(root) == []
