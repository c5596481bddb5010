"""A one-shot pass after the first look matches new mail against its batch's thread index
(#14), over the real servers; what no batch can name up front still reads the whole index:
a delivery report's quoted original and failed recipient, and an unparseable message's
quoted IDs. (The first look at a folder reads the whole index anyway, to know how far back to
read: so each test looks once before its mail arrives.)"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from mailer.adapters.store import Store
from mailer.model.matching import Incoming

from .conftest import Pair
from .test_followup import send
from .test_watcher_hostile import append, check, dsn, follow_ups_to, message

pytestmark = pytest.mark.integration


def _indexes_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Which thread indexes the store is asked for, in order."""
    calls: list[str] = []
    whole, batch = Store.thread_index, Store.batch_index

    def spy_whole(self: Store, account: str | None = None) -> Any:
        calls.append("whole")
        return whole(self, account)

    def spy_batch(self: Store, *args: Any) -> Any:
        calls.append("batch")
        return batch(self, *args)

    monkeypatch.setattr(Store, "thread_index", spy_whole)
    monkeypatch.setattr(Store, "batch_index", spy_batch)
    return calls


def _looked_once(pair: Pair) -> None:
    """The first look at the INBOX (nothing due yet): it sets the folder position."""
    store, report = check(pair, timedelta(seconds=30))
    assert report.problems == [] and store.folder_state("INBOX") is not None


def test_a_reply_by_address_alone_is_matched_through_the_batch_index(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify a reply with no references, among mail from strangers, is matched by its
    sender through the batch's index alone: the thread is replied, no follow-up goes, and
    the whole index is never read."""
    thread, root = send(pair)
    _looked_once(pair)
    calls = _indexes_read(monkeypatch)
    append(pair, message("news@elsewhere.test", "Newsletter"))
    append(pair, message(pair.interviewer, "Hello", "Friday works."))
    store, report = check(pair, timedelta(hours=2))
    assert report.problems == [] and calls == ["batch"]
    assert store.thread(thread).state == "replied"
    assert follow_ups_to(pair, pair.interviewer, root) == []


def test_a_report_carrying_our_id_only_in_its_body_bounces_the_thread(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify a delivery report whose headers name none of our IDs (its From is the mail
    system), but whose returned headers carry the apology's Message-ID, bounces the thread:
    the batch's index cannot hold that ID, so the whole one is read for it."""
    thread, root = send(pair)
    _looked_once(pair)
    calls = _indexes_read(monkeypatch)
    append(pair, dsn(pair.interviewer, carried_id=root))
    store, _ = check(pair, timedelta(hours=2))
    assert calls == ["batch", "whole"]
    assert store.thread(thread).state == "bounced"
    assert follow_ups_to(pair, pair.interviewer, root) == []


def test_a_report_naming_only_the_failed_recipient_bounces_the_thread(pair: Pair) -> None:
    """Verify a delivery report that carries no Message-ID at all, only the failed
    recipient, bounces the thread sent to that recipient (matched on the whole index)."""
    thread, root = send(pair)
    _looked_once(pair)
    append(pair, dsn(pair.interviewer))
    store, _ = check(pair, timedelta(hours=2))
    assert store.thread(thread).state == "bounced"
    assert follow_ups_to(pair, pair.interviewer, root) == []


def test_an_unparseable_message_quoting_our_id_is_tied_to_its_thread(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify a message no parser can read, whose raw headers quote our Message-ID, stops
    that thread's follow-up after the first look too (its IDs are found in the whole index:
    nothing of it could be read to ask the batch's)."""
    thread, root = send(pair)
    _looked_once(pair)

    def unreadable_headers(cls: type[Incoming], msg: Any, received: datetime) -> Incoming:
        raise ValueError("headers beyond repair")

    monkeypatch.setattr(Incoming, "from_headers", classmethod(unreadable_headers))
    append(pair, message(pair.interviewer, "Re: x", "Yes.", {"In-Reply-To": root}))
    store, _ = check(pair, timedelta(hours=2))
    t = store.thread(thread)
    assert t.state == "replied" and "unreadable" in t.detail
    assert follow_ups_to(pair, pair.interviewer, root) == []


def test_an_unparseable_message_among_readable_ones_is_tied_through_the_whole_index(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify that in a batch where other messages can be read (so a batch's index exists,
    holding none of our IDs), the one no parser can read, quoting our Message-ID, is still
    tied to its thread: its quoted IDs are looked up in the whole index, not the batch's."""
    thread, root = send(pair)
    _looked_once(pair)
    calls = _indexes_read(monkeypatch)
    real = Incoming.from_headers.__func__  # type: ignore[attr-defined]

    def some_unreadable(cls: type[Incoming], msg: Any, received: datetime) -> Incoming:
        if msg.get("Subject") == "Re: broken":
            raise ValueError("headers beyond repair")
        return real(cls, msg, received)

    monkeypatch.setattr(Incoming, "from_headers", classmethod(some_unreadable))
    append(pair, message("news@elsewhere.test", "Newsletter"))
    append(pair, message(pair.interviewer, "Re: broken", "Yes.", {"In-Reply-To": root}))
    store, _ = check(pair, timedelta(hours=2))
    assert calls == ["batch", "whole"]
    t = store.thread(thread)
    assert t.state == "replied" and "unreadable" in t.detail
    assert follow_ups_to(pair, pair.interviewer, root) == []


def test_a_message_the_matcher_cannot_weigh_is_tied_through_the_whole_index(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify a message whose headers parse but whose weighing fails (``_may_concern``
    raises) is passed over as unreadable and tied by the IDs its raw headers quote, looked up
    in the whole index."""
    from mailer.services import watcher

    thread, root = send(pair)
    _looked_once(pair)
    calls = _indexes_read(monkeypatch)
    real = watcher._may_concern

    def fails_for_one(incoming: Incoming, index: Any) -> bool:
        if incoming.subject == "Re: odd":
            raise ValueError("cannot weigh this one")
        return real(incoming, index)

    monkeypatch.setattr(watcher, "_may_concern", fails_for_one)
    append(pair, message("news@elsewhere.test", "Newsletter"))
    append(pair, message(pair.interviewer, "Re: odd", "Yes.", {"In-Reply-To": root}))
    store, _ = check(pair, timedelta(hours=2))
    assert calls == ["batch", "whole"]
    t = store.thread(thread)
    assert t.state == "replied" and "unreadable" in t.detail
    assert follow_ups_to(pair, pair.interviewer, root) == []
