"""What mailer relies on from an IMAP server, proved on FakeImap and on the sandbox's
Dovecot. Each test has a fresh account (INBOX empty, a Sent folder marked \\Sent)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from email.header import Header
from typing import Any

import pytest

from mailer.errors import DeliveryError
from mailer.services.daemon import IdleWatcher

from .conftest import ImapWorld, message, message_id_of


def test_select_returns_uidvalidity_and_uidnext_and_status_agrees(imap_world: ImapWorld) -> None:
    with imap_world.mailbox() as box:
        uidvalidity, uidnext = box.select("INBOX")
        assert box.selected == ("INBOX", uidvalidity)
        assert box.unread  # a fresh SELECT may show mail nobody has read
        box.unselect()
        assert box.selected is None
        assert box.status("INBOX") == (uidvalidity, uidnext)


def test_a_delivery_gives_a_new_higher_uid_and_status_shows_it(imap_world: ImapWorld) -> None:
    with imap_world.mailbox() as box:
        uidvalidity, uidnext = box.select("INBOX")
        box.unselect()
        imap_world.deliver("INBOX", message())
        imap_world.deliver("INBOX", message())
        assert box.status("INBOX") == (uidvalidity, uidnext + 2)
        box.select("INBOX")
        assert box.uids_after(uidnext - 1) == [uidnext, uidnext + 1]
        assert box.uids_after(uidnext) == [uidnext + 1]
        # "n:*" past the last UID: nothing, not the highest UID.
        assert box.uids_after(uidnext + 1) == []


def test_refresh_reports_new_mail_on_the_selected_folder_and_then_shows_it(
    imap_world: ImapWorld,
) -> None:
    with imap_world.mailbox() as box:
        _, uidnext = box.select("INBOX")
        box.unread = False  # what the watcher does once it has read the folder
        assert box.refresh() is False
        raw = message()
        imap_world.deliver("INBOX", raw)
        assert box.refresh() is True
        assert box.uids_after(uidnext - 1) == [uidnext]
        headers = box.fetch_headers_after(uidnext - 1)
        assert list(headers) == [uidnext]
        assert message_id_of(raw).encode() in headers[uidnext]


def test_fetch_headers_gives_only_the_matchers_fields_in_the_messages_order(
    imap_world: ImapWorld,
) -> None:
    raw = message(
        subject="Re: Data Engineer",
        In_Reply_To="<root@sandbox.test>",
        X_Other="not asked for",
        References="<root@sandbox.test>\r\n <second@sandbox.test>",
    )
    imap_world.deliver("INBOX", raw)
    with imap_world.mailbox() as box:
        box.select("INBOX")
        (uid,) = box.uids_after(0)
        header = box.fetch_headers([uid])[uid]
        assert box.fetch_headers_after(uid - 1) == {uid: header}
    mid = message_id_of(raw)
    assert header == (
        b"From: you@sandbox.test\r\n"
        b"Subject: Re: Data Engineer\r\n"
        + f"Message-ID: {mid}\r\n".encode()
        + b"In-Reply-To: <root@sandbox.test>\r\n"
        b"References: <root@sandbox.test>\r\n <second@sandbox.test>\r\n"
        b"\r\n"
    )


def test_fetch_raw_respects_its_limit(imap_world: ImapWorld) -> None:
    raw = message(body=b"x" * 5000 + b"\r\n")
    imap_world.deliver("INBOX", raw)
    with imap_world.mailbox() as box:
        box.select("INBOX")
        (uid,) = box.uids_after(0)
        assert box.fetch_raw(uid) == raw
        assert box.fetch_raw(uid, limit=100) == raw[:100]


def test_internal_dates_are_the_delivery_times_as_aware_datetimes(imap_world: ImapWorld) -> None:
    when = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    imap_world.deliver("INBOX", message(), when)
    with imap_world.mailbox() as box:
        box.select("INBOX")
        (uid,) = box.uids_after(0)
        got = box.internal_dates([uid])[uid]
    assert got.tzinfo is not None
    assert got == when
    with imap_world.mailbox() as box:
        box.select("INBOX")
        assert box.uids_since(when.date()) == [uid]
        assert box.uids_since(when.date() + timedelta(days=1)) == []


def test_append_sent_files_in_the_special_use_sent_folder_and_is_found_by_message_id(
    imap_world: ImapWorld,
) -> None:
    raw = message()
    with imap_world.mailbox() as box:
        folder = box.sent_folder()
        assert box.append_sent(raw, datetime.now(UTC)) == folder
        assert box.contains_message_id(folder, message_id_of(raw))
        assert not box.contains_message_id(folder, "<never-sent@sandbox.test>")
        assert not box.contains_message_id("INBOX", message_id_of(raw))


def test_append_sent_many_files_every_copy_byte_for_byte(imap_world: ImapWorld) -> None:
    raws = [message(subject=f"copy {i}") for i in range(3)]
    now = datetime.now(UTC)
    with imap_world.mailbox() as box:
        folder = box.append_sent_many([(raw, now) for raw in raws])
        box.select(folder)
        uids = box.uids_after(0)
        assert [box.fetch_raw(uid) for uid in uids] == raws


def test_a_configured_sent_folder_wins_over_the_special_use_one(imap_world: ImapWorld) -> None:
    with imap_world.mailbox(sent_folder="INBOX") as box:
        assert box.sent_folder() == "INBOX"


def test_a_missing_folder_is_a_protocol_error_naming_it(imap_world: ImapWorld) -> None:
    with imap_world.mailbox() as box, pytest.raises(DeliveryError) as caught:
        box.select("No-Such-Folder")
    assert caught.value.kind == "protocol"
    assert "No-Such-Folder" in str(caught.value)


def test_a_wrong_password_is_kind_auth_and_never_quotes_the_password(
    imap_world: ImapWorld,
) -> None:
    box = imap_world.mailbox(password="wrong-pw-77")
    with pytest.raises(DeliveryError) as caught:
        box.connect()
    assert caught.value.kind == "auth"
    assert imap_world.user in str(caught.value)
    assert "wrong-pw-77" not in str(caught.value)


def test_idle_watcher_wakes_when_mail_arrives(imap_world: ImapWorld) -> None:
    woke = threading.Event()
    calls: list[float] = []
    stop = threading.Event()

    def wake() -> None:
        calls.append(time.monotonic())
        if len(calls) > 1:  # the first is the catch-up right after IDLE starts
            woke.set()

    watcher = IdleWatcher(
        imap_world.mailbox().settings, wake, stop, mailbox=lambda s: imap_world.mailbox()
    )
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not calls and time.monotonic() < deadline:
            time.sleep(0.05)  # polling for the catch-up wake, which marks IDLE as started
        assert calls, "IdleWatcher never started"
        # Mail that comes between the SELECT and the IDLE is reported when IDLE starts.
        imap_world.deliver("INBOX", message())
        assert woke.wait(10)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_idle_watcher_holds_no_connection_while_another_daemon_holds_the_account(
    imap_world: ImapWorld,
) -> None:
    """Verify a watcher whose account is leased to another daemon opens no IMAP connection,
    starts IDLE (with its catch-up wake) when the lease becomes its own, and closes the
    connection when the lease is lost."""
    ours = threading.Event()
    asked = threading.Semaphore(0)
    boxes: list[Any] = []
    woke = threading.Event()
    stop = threading.Event()

    def wanted() -> bool:
        asked.release()
        return ours.is_set()

    def connect(settings: Any) -> Any:
        boxes.append(imap_world.mailbox())
        return boxes[-1]

    watcher = IdleWatcher(
        imap_world.mailbox().settings, woke.set, stop, mailbox=connect, wanted=wanted
    )
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        for _ in range(2):  # it has looked twice, and found the account not its own
            assert asked.acquire(timeout=10)
        assert boxes == [] and not woke.is_set()
        ours.set()
        assert woke.wait(10), "the watcher did not start once the lease was its own"
        assert len(boxes) == 1
        ours.clear()
        deadline = time.monotonic() + 10
        while boxes[0].client is not None:  # closed (a real and a fake Mailbox alike)
            assert time.monotonic() < deadline, "the connection stayed open without the lease"
            time.sleep(0.05)
        assert len(boxes) == 1
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_a_search_answers_from_the_sessions_view_until_refresh(imap_world: ImapWorld) -> None:
    with imap_world.mailbox() as box:
        _, uidnext = box.select("INBOX")
        imap_world.deliver("INBOX", message())
        # Without a NOOP the server need not show the new message (Dovecot does not).
        assert box.uids_after(uidnext - 1) == []
        box.refresh()
        assert box.uids_after(uidnext - 1) == [uidnext]


def test_a_recreated_folder_has_a_new_uidvalidity(imap_world: ImapWorld) -> None:
    imap_world.recreate("Jobs")
    imap_world.deliver("Jobs", message())
    with imap_world.mailbox() as box:
        before, _ = box.status("Jobs")
        imap_world.recreate("Jobs")
        after, uidnext = box.status("Jobs")
    assert after != before
    assert uidnext == 1  # the new folder's UIDs start again: old positions mean nothing


def test_a_huge_header_is_fetched_only_up_to_64_kb(imap_world: ImapWorld) -> None:
    refs = "\r\n ".join(f"<ref{i:06d}@sandbox.test>" for i in range(4000))  # ~100 KB
    raw = message(References=refs)
    imap_world.deliver("INBOX", raw)
    with imap_world.mailbox() as box:
        box.select("INBOX")
        (uid,) = box.uids_after(0)
        header = box.fetch_headers([uid])[uid]
    assert len(header) == 65536
    assert header.startswith(b"From: you@sandbox.test\r\n")


def test_the_searches_before_a_follow_up_find_references_senders_and_subjects(
    imap_world: ImapWorld,
) -> None:
    """What the last look before a follow-up asks (watcher.read_elsewhere): the folders
    besides the watched ones (not Sent), and in one, messages since a day that refer to our
    IDs (bracketed or not), come from an address, or carry a subject, in any case."""
    imap_world.recreate("Archive")
    threaded = message("Re: x", In_Reply_To="<ours-1@sandbox.test>")
    bare = message("Re: y", References="<other@x.test> ours-2@sandbox.test")
    fresh = _from("Ana <Ana.Ruiz@Company.example>", message("Hello"))
    forwarded = _from("cara@company.example", message("RE: FW: Sorry I missed our interview"))
    unrelated = message("Newsletter")
    for raw in (threaded, bare, fresh, forwarded, unrelated):
        imap_world.deliver("Archive", raw)
    with imap_world.mailbox() as box:
        others = box.other_folders(("inbox",))
        assert "Archive" in others and "INBOX" not in others and "Sent" not in others
        box.select("Archive")
        since = (datetime.now(UTC) - timedelta(days=1)).date()
        uids = box.uids_after(0)
        assert len(uids) == 5
        by_ref = box.uids_referring_to(["<ours-1@sandbox.test>", "<ours-2@sandbox.test>"], since)
        assert by_ref == uids[:2]
        by_sender = box.uids_referring_to(["<nothing@x>"], since, ("ana.ruiz@company.example",))
        assert by_sender == [uids[2]]
        assert box.uids_with_subject("sorry I missed our interview", since) == [uids[3]]
        # IMAP's special characters: searched as the pieces between them (Dovecot refused
        # an unquoted "Sorry(Acme)" as a bad atom).
        assert box.uids_with_subject("Sorry (I) missed {our} interview*", since) == [uids[3]]
        later = (datetime.now(UTC) + timedelta(days=2)).date()
        assert box.uids_with_subject("sorry I missed our interview", later) == []
        box.unselect()


def test_a_folder_that_cannot_be_opened_leaves_none_open(imap_world: ImapWorld) -> None:
    """What the last look relies on to open folder after folder without leaving each: a
    SELECT that fails leaves no folder open, and the next one opens as usual."""
    with imap_world.mailbox() as box:
        box.select("INBOX")
        with pytest.raises(DeliveryError) as caught:
            box.select("No such folder")
        assert caught.value.kind == "protocol"
        assert box.selected is None
        assert box.select("INBOX")[0] > 0 and box.selected is not None
        box.unselect()


def test_the_searches_for_many_threads_at_once_find_what_each_search_finds(
    imap_world: ImapWorld,
) -> None:
    """What a pass's one last look for many due threads asks: references and senders past
    one search command's worth of terms, and any of several subjects (one non-ASCII)."""
    imap_world.recreate("Archive")
    forwarded = _from("cara@company.example", message("RE: FW: Sorry I missed our interview"))
    encoded = Header("TR: Désolé pour l'entretien (Acme)", "utf-8").encode()  # (RFC 2047)
    accented = _from("dan@company.example", message(encoded))
    last = message("Re: z", In_Reply_To="<ours-99@sandbox.test>")
    for raw in (forwarded, accented, last, message("Newsletter")):
        imap_world.deliver("Archive", raw)
    with imap_world.mailbox() as box:
        box.select("Archive")
        since = (datetime.now(UTC) - timedelta(days=1)).date()
        uids = box.uids_after(0)
        many = [f"<ours-{i}@sandbox.test>" for i in range(100)]  # past one search's terms
        assert box.uids_referring_to(many, since) == [uids[2]]
        subjects = ["Nothing like it", "sorry I missed our interview", "Désolé pour l'entretien"]
        assert box.uids_with_any_subject(subjects, since) == uids[:2]
        assert box.uids_with_any_subject(subjects[:1], since) == []
        box.unselect()


def _from(sender: str, raw: bytes) -> bytes:
    head, _, rest = raw.partition(b"\r\n")
    assert head.startswith(b"From: ")
    return f"From: {sender}".encode() + b"\r\n" + rest
