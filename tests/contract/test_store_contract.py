"""What mailer relies on from the state store, proved on an in-memory SQLite database
(what tests use: Store.in_memory()) and on a SQLite file (what users have)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import pytest
from sqlalchemy import text

from mailer.adapters import store as store_mod
from mailer.adapters.store import Store, ThreadRow
from mailer.errors import ClaimError
from mailer.model.lifecycle import (
    MessageEvent,
    MessageState,
    ThreadEvent,
    TransitionRefused,
    target,
)
from mailer.testing import FakeProcesses

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


@pytest.fixture
def procs() -> Iterator[FakeProcesses]:
    with FakeProcesses() as p:
        yield p


def new_apology(s: Store, n: int = 1) -> tuple[int, int]:
    facts = {
        "to": f"ana{n}@sandbox.test",
        "interviewer": "Ana Ruiz",
        "company": "Acme",
        "role": "Data Engineer",
        "situation": "illness",
        "interview": "2026-11-25T10:00:00+00:00",
    }
    return s.create_thread(
        now=NOW,
        facts=facts,
        key=f"key-{n}",
        subject="Sorry",
        message_id=f"<apology{n}@sandbox.test>",
        raw=b"Subject: Sorry\r\n\r\nSorry.\r\n",
        envelope_from="you@sandbox.test",
        recipients=(str(facts["to"]),),
        follow_up_wait="3 days",
        max_follow_ups=1,
        guard_duplicates=True,
    )


def snapshot(s: Store, thread_id: int) -> tuple[object, ...]:
    thread = s.thread(thread_id)
    return (thread, tuple(s.messages(thread_id)), tuple(map(str, s.events(thread_id))))


def test_a_new_apology_is_queued_on_a_sending_thread(state: Store, procs: FakeProcesses) -> None:
    tid, mid = new_apology(state)
    thread = state.thread(tid)
    assert thread is not None and thread.state == "sending"
    assert state.message(mid).state == "queued"


def test_the_claim_before_mail_from_succeeds_exactly_once(
    state: Store, procs: FakeProcesses
) -> None:
    _, mid = new_apology(state)
    state.mark_submitting(mid, NOW)
    with pytest.raises(ClaimError):
        state.mark_submitting(mid, NOW)
    assert state.message(mid).state == "submitting"


def test_a_message_another_live_process_queued_is_not_claimed_here(
    state: Store, procs: FakeProcesses
) -> None:
    _, mid = new_apology(state)
    first = procs.current
    procs.become(procs.spawn("second"))
    with pytest.raises(ClaimError, match="another mailer process"):
        state.mark_submitting(mid, NOW)
    procs.become(first)
    state.mark_submitting(mid, NOW)  # its own process still may
    assert state.message(mid).state == "submitting"


def test_a_refused_transition_raises_and_writes_nothing(state: Store, procs: FakeProcesses) -> None:
    tid, mid = new_apology(state)
    state.mark_submitting(mid, NOW)
    state.mark_sent(mid, NOW, "250 OK", NOW + timedelta(days=3))
    before = snapshot(state, tid)
    with pytest.raises(TransitionRefused) as caught:
        state.mark_failed(mid, NOW + timedelta(minutes=1), "550 too late")
    assert "sent" in str(caught.value) and "failed" in str(caught.value)
    assert snapshot(state, tid) == before


def test_where_state_in_refuses_a_move_even_when_the_read_said_yes(
    state: Store, procs: FakeProcesses
) -> None:
    # As if the row had changed between the store's SELECT and its UPDATE: the lifecycle
    # check is made to pass, and the UPDATE's WHERE state IN alone must refuse.
    tid, mid = new_apology(state)
    state.mark_submitting(mid, NOW)
    state.mark_sent(mid, NOW, "250 OK", NOW + timedelta(days=3))
    before = snapshot(state, tid)
    with (
        mock.patch.object(store_mod, "apply", lambda move, current, what: target(move)),
        pytest.raises(TransitionRefused),
    ):
        state.mark_failed(mid, NOW, "refused")
    assert snapshot(state, tid) == before


def test_where_state_in_refuses_a_thread_move_even_when_the_read_said_yes(
    state: Store, procs: FakeProcesses
) -> None:
    tid, _ = new_apology(state)
    state.set_thread_state(tid, ThreadEvent.REPLY, NOW, "reply", {"from": "ana"})
    before = snapshot(state, tid)
    with (
        mock.patch.object(store_mod, "apply", lambda move, current, what: target(move)),
        pytest.raises(TransitionRefused),
    ):
        state.set_thread_state(tid, ThreadEvent.CANCELLED, NOW, "cancelled", {"by": "you"})
    assert snapshot(state, tid) == before


def test_a_reply_is_never_undone_by_the_apology_being_recorded_sent(
    state: Store, procs: FakeProcesses
) -> None:
    tid, mid = new_apology(state)
    state.mark_submitting(mid, NOW)
    state.set_thread_state(tid, ThreadEvent.REPLY, NOW, "reply", {"from": "ana"})
    state.mark_sent(mid, NOW, "250 OK", NOW + timedelta(days=3))
    thread = state.thread(tid)
    assert thread is not None and thread.state == "replied"
    assert state.message(mid).state == "sent"


def test_a_dead_owners_message_before_the_final_dot_is_requeued(
    state: Store, procs: FakeProcesses
) -> None:
    _, mid = new_apology(state)
    state.mark_submitting(mid, NOW)
    assert state.message(mid).state_now is MessageState.SUBMITTING
    assert state.requeue_abandoned(NOW) == []  # its owner still runs
    procs.restart()
    assert state.message(mid).state_now is MessageState.QUEUED
    assert [m.id for m in state.requeue_abandoned(NOW)] == [mid]
    assert state.message(mid).state == "queued"
    state.mark_submitting(mid, NOW)  # and the restarted process may claim it again


def test_a_dead_owners_message_after_the_final_dot_is_in_doubt_and_never_requeued(
    state: Store, procs: FakeProcesses
) -> None:
    _, mid = new_apology(state)
    state.mark_submitting(mid, NOW)
    state.mark_final_dot(mid, NOW)
    assert not state.mark_abandoned_in_doubt(mid, NOW, "gone")  # alive: left alone
    procs.restart()
    assert state.message(mid).state_now is MessageState.IN_DOUBT
    assert state.requeue_abandoned(NOW) == []
    with pytest.raises(ClaimError):
        state.mark_submitting(mid, NOW)
    assert state.mark_abandoned_in_doubt(mid, NOW, "the process stopped")
    assert state.message(mid).state == "in_doubt"


def test_the_final_dot_mark_is_refused_to_a_process_that_does_not_own_the_message(
    state: Store, procs: FakeProcesses
) -> None:
    _, mid = new_apology(state)
    state.mark_submitting(mid, NOW)
    procs.restart()
    with pytest.raises(ClaimError):
        state.mark_final_dot(mid, NOW)
    assert state.message(mid).final_dot_at is None


def test_only_one_of_two_resends_of_an_in_doubt_message_claims_it(
    state: Store, procs: FakeProcesses
) -> None:
    _, mid = new_apology(state)
    state.mark_submitting(mid, NOW)
    state.mark_final_dot(mid, NOW)
    state.mark_in_doubt(mid, NOW, "no answer after the dot")
    wanted = ("sending",)
    state.claim_resend(mid, NOW, wanted)
    procs.become(procs.spawn("another resolve"))
    with pytest.raises(ClaimError):
        state.claim_resend(mid, NOW, wanted)
    assert state.message(mid).state == "submitting"


def test_every_message_move_in_the_table_is_what_the_store_writes(
    state: Store, procs: FakeProcesses
) -> None:
    _, mid = new_apology(state)
    state.mark_submitting(mid, NOW)
    assert state.message(mid).state == target(MessageEvent.SUBMIT)
    state.requeue(mid, NOW, "451 later")
    assert state.message(mid).state == target(MessageEvent.REQUEUE)
    state.mark_submitting(mid, NOW)
    state.mark_in_doubt(mid, NOW, "lost")
    assert state.message(mid).state == target(MessageEvent.DOUBT)
    state.mark_sent(mid, NOW, "250 found in Sent", None, settling=True)
    assert state.message(mid).state == target(MessageEvent.SENT)


def test_a_single_read_on_a_sqlite_file_does_not_wait_for_a_writer(tmp_path: Path) -> None:
    """A read of one statement takes no BEGIN IMMEDIATE (Store._rows): it neither waits for
    a sending process's transaction nor sees its uncommitted work."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    writer, reader = Store(url), Store(url)
    try:
        tid, _ = new_apology(writer)
        with writer.tx() as c:
            c.execute(text("UPDATE threads SET subject = 'changing' WHERE id = :t"), {"t": tid})
            done = threading.Event()
            read: list[ThreadRow | None] = []

            def run() -> None:
                read.append(reader.thread(tid))
                done.set()

            threading.Thread(target=run, daemon=True).start()
            assert done.wait(10), "the read waited for the writer's lock"
        assert [t.subject for t in read if t] == ["Sorry"]  # what was committed when it read
        after = reader.thread(tid)
        assert after is not None and after.subject == "changing"
    finally:
        writer.close()
        reader.close()


def test_a_single_read_inside_an_open_transaction_of_the_in_memory_store_is_refused() -> None:
    """The in-memory store has one connection: a single read (Store._rows) made while a
    tx() is open on it would end that transaction on its way out, silently. It is refused
    as a programming error, and the transaction goes on, its work kept."""
    s = Store.in_memory()
    try:
        tid, _ = new_apology(s)
        with s.tx() as c:
            c.execute(text("UPDATE threads SET subject = 'inside' WHERE id = :t"), {"t": tid})
            with pytest.raises(AssertionError, match="open tx"):
                s.thread(tid)
            subject = c.execute(text("SELECT subject FROM threads WHERE id = :t"), {"t": tid})
            assert subject.scalar() == "inside"  # still in the transaction
            c.execute(text("UPDATE threads SET company = 'Beta' WHERE id = :t"), {"t": tid})
        thread = s.thread(tid)  # outside a transaction, reads work as before
        assert thread is not None and (thread.subject, thread.company) == ("inside", "Beta")
    finally:
        s.close()


def test_a_single_read_inside_a_transaction_on_a_sqlite_file_is_allowed(tmp_path: Path) -> None:
    """The guard above is for the one shared connection only: a file store's read has a
    connection of its own and sees what was committed."""
    s = Store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        tid, _ = new_apology(s)
        with s.tx() as c:
            c.execute(text("UPDATE threads SET subject = 'inside' WHERE id = :t"), {"t": tid})
            thread = s.thread(tid)
            assert thread is not None and thread.subject == "Sorry"
        thread = s.thread(tid)
        assert thread is not None and thread.subject == "inside"
    finally:
        s.close()


def test_bounced_threads_to_many_addresses_match_the_one_address_read(state: Store) -> None:
    """A pass reads the bounced threads of all its due threads' addresses at once: the same
    as asking address by address, whatever the case of the address."""
    ids = [new_apology(state, n)[0] for n in range(4)]
    with state.tx() as c:
        for tid, to in zip(
            ids[:3], ("Ana0@Sandbox.test", "ana0@sandbox.test", "ana2@sandbox.test"), strict=True
        ):
            c.execute(
                text(
                    "UPDATE threads SET state = 'bounced', recipient = :r, detail = :d "
                    "WHERE id = :t"
                ),
                {"r": to, "d": f'{{"bounce_kind": "hard", "n": "{tid}"}}', "t": tid},
            )
    found = state.bounced_threads_to(
        ["ANA0@sandbox.test", "ana2@sandbox.test", "ana3@sandbox.test"]
    )
    assert found == {
        "ana0@sandbox.test": state.bounced_threads("ana0@sandbox.test", 0),
        "ana2@sandbox.test": state.bounced_threads("ana2@sandbox.test", 0),
    }
    assert [tid for tid, _ in found["ana0@sandbox.test"]] == ids[:2]
    assert found["ana2@sandbox.test"][0][1]["n"] == str(ids[2])
    assert state.bounced_threads_to([]) == {}
    # More addresses than one statement takes (an old SQLite allows 999 parameters): the
    # bounced ones are found wherever they fall among the others.
    many = [f"x{i}@sandbox.test" for i in range(1200)]
    many[700:700] = ["ana2@sandbox.test"]
    many[3:3] = ["ana0@sandbox.test"]
    assert state.bounced_threads_to(many) == found


def test_the_open_threads_subjects_are_those_a_reply_may_still_stop(
    state: Store, procs: FakeProcesses
) -> None:
    """Verify open_thread_subjects lists the threads still open (awaiting a reply here), of
    the account asked for, and not one replied or still being sent."""
    waiting, mid = new_apology(state, 1)
    state.mark_sent(mid, NOW, "250 OK", NOW + timedelta(days=3))
    replied, mid = new_apology(state, 2)
    state.mark_sent(mid, NOW, "250 OK", NOW + timedelta(days=3))
    state.set_thread_state(replied, ThreadEvent.REPLY, NOW, "reply", {"from": "ana"})
    new_apology(state, 3)  # (still sending)
    assert state.open_thread_subjects("") == [(waiting, "Sorry")]
    assert state.open_thread_subjects(None) == [(waiting, "Sorry")]
    assert state.open_thread_subjects("bea") == []
