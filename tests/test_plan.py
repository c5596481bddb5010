"""A pass decided, then acted (#13 item 2): ``decide`` and ``plan_pass`` are pure and driven
here without servers; the executor's guard (a decision is written only on the state it was
made from) is driven against a real SQLite store."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from mailer.adapters.store import Applied, Store
from mailer.model.decision import Classified, Policy, ThreadSnapshot, decide
from mailer.model.followup import after_return
from mailer.model.lifecycle import ThreadEvent, ThreadState
from mailer.model.plan import (
    BounceAddress,
    CloseNoAnswer,
    HoldThread,
    NewMessage,
    PassOver,
    RecordIncoming,
    SendFollowUp,
    WaitForWindow,
    plan_incoming,
    plan_pass,
    redecide,
)
from mailer.model.settings import Window
from mailer.services.incoming import act_on_mail

T = ThreadState
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=BERLIN)  # a Tuesday, inside office hours
POLICY = Policy(BERLIN, Window())
ANA = "ana@acme.example"


def _thread(
    tid: int = 1, state: str = T.AWAITING, due: datetime | None = NOW, **kw
) -> ThreadSnapshot:
    return ThreadSnapshot(tid, state, {}, due, **kw)


def _mail(
    kind: str = "human",
    subtype: str | None = None,
    thread_id: int | None = 1,
    uid: int = 7,
    **kw,
) -> NewMessage:
    classified = Classified(
        kind, subtype, sender=ANA, subject="Re: sorry", received=NOW - timedelta(minutes=5), **kw
    )
    return NewMessage(
        place="INBOX",
        folder="INBOX",
        uidvalidity=1,
        uid=uid,
        thread_id=thread_id,
        sender=ANA,
        subject="Re: sorry",
        label=kind,
        verdict=f"{kind}: r",
        classified=classified,
    )


def _sends(actions: list) -> list[int]:
    return [a.thread_id for a in actions if isinstance(a, SendFollowUp)]


# --- plan_pass (pure) -------------------------------------------------------------------------


def test_a_due_thread_with_no_news_plans_its_follow_up() -> None:
    """Verify the control case: an awaiting thread due now, inside its window, is sent."""
    assert plan_pass([_thread()], [], NOW, POLICY) == [SendFollowUp(1)]


def test_a_human_reply_after_a_claimed_but_unsent_follow_up_plans_no_send() -> None:
    """Verify a reply that arrives while the thread's follow-up is due (claimed by a pass that
    has not sent it yet) is recorded as replied, stopping the queued follow-up, and the plan
    sends nothing to that thread."""
    actions = plan_pass([_thread()], [_mail("human")], NOW, POLICY)
    (record,) = actions
    assert isinstance(record, RecordIncoming)
    assert record.decision.state == T.REPLIED and record.decision.stop_follow_ups
    assert record.expected == T.AWAITING
    assert _sends(actions) == []


def test_an_out_of_office_postpones_the_follow_up_past_the_return_date() -> None:
    """Verify an out-of-office with a return date moves the due time to the morning after it,
    and the plan sends nothing now."""
    back = date(2026, 12, 3)
    actions = plan_pass(
        [_thread()], [_mail("auto-reply", "out-of-office", return_date=back)], NOW, POLICY
    )
    (record,) = actions
    assert isinstance(record, RecordIncoming)
    assert record.decision.postpone_to == after_return(back, BERLIN, Window())
    assert record.decision.postpone_to > NOW
    assert _sends(actions) == []


def test_an_out_of_office_never_moves_the_follow_up_earlier() -> None:
    """Verify an out-of-office whose return date is before the follow-up's due time leaves
    that due time as it is (it does not bring the follow-up forward)."""
    later = NOW + timedelta(days=20)
    message = _mail("auto-reply", "out-of-office", return_date=date(2026, 12, 3))
    d = decide(_thread(due=later), message.classified, NOW, POLICY)
    assert d.postpone_to == later
    actions = plan_pass([_thread(due=later)], [message], NOW, POLICY)
    assert actions[0].decision.postpone_to == later and _sends(actions) == []


def test_one_pass_sends_at_most_one_follow_up_per_thread() -> None:
    """Verify a thread given twice, with two automatic replies in the pass, gets one send."""
    mails = [
        _mail("auto-reply", "autoresponder", uid=7),
        _mail("auto-reply", "autoresponder", uid=8),
    ]
    actions = plan_pass([_thread(), _thread(), _thread(2)], mails, NOW, POLICY)
    assert sorted(_sends(actions)) == [1, 2]


def test_an_unclear_reply_holds_every_thread_it_may_answer_before_recording_it() -> None:
    """Verify an unthreaded reply naming none of two threads holds the other thread first,
    then records itself on the chosen one, and neither gets a follow-up this pass."""
    actions = plan_pass(
        [_thread(1), _thread(2, T.FOLLOWED_UP, due=NOW + timedelta(days=9))],
        [_mail("human", hold=(1, 2))],
        NOW,
        POLICY,
    )
    hold, record = actions
    assert isinstance(hold, HoldThread) and hold.thread_id == 2
    assert hold.expected == T.FOLLOWED_UP and hold.decision.detail["held_from"] == T.FOLLOWED_UP
    assert isinstance(record, RecordIncoming) and record.decision.state == T.HELD
    assert _sends(actions) == []


def test_a_reply_seen_before_plans_nothing_again() -> None:
    """Verify a message the store recorded already holds no thread again: the user may have
    released them since."""
    seen = NewMessage(**{**_mail("human", hold=(1, 2)).__dict__, "seen_before": True})
    assert plan_incoming([_thread(1), _thread(2)], [seen], NOW, POLICY) == []


def test_due_steps_close_wait_or_stop_at_a_bounced_address() -> None:
    """Verify a followed-up thread closes as no answer, a due one at night waits for the
    window, and one whose address bounced for good elsewhere is bounced, not sent."""
    night = datetime(2026, 12, 1, 22, 0, tzinfo=BERLIN)
    actions = plan_pass(
        [
            _thread(1, T.FOLLOWED_UP, due=night - timedelta(hours=1)),
            _thread(2, due=night - timedelta(hours=2)),
        ],
        [],
        night,
        POLICY,
    )
    assert actions == [
        WaitForWindow(2, datetime(2026, 12, 2, 9, 0, tzinfo=BERLIN)),
        CloseNoAnswer(1),
    ]
    assert plan_pass([_thread(3, bounced_in=9)], [], NOW, POLICY) == [BounceAddress(3, 9)]


def test_a_thread_not_due_or_not_waiting_plans_nothing() -> None:
    """Verify nothing is planned for a thread due tomorrow, a replied one or a held one."""
    threads = [
        _thread(1, due=NOW + timedelta(days=1)),
        _thread(2, T.REPLIED),
        _thread(3, T.HELD),
    ]
    assert plan_pass(threads, [], NOW, POLICY) == []


def test_a_message_the_decision_chokes_on_is_passed_over_as_an_answer(monkeypatch) -> None:
    """Verify an error deciding one message passes it over (its thread taken as answered, so
    not sent) and the next message and thread are still planned."""
    from mailer.model import plan

    real = plan.decide

    def choking(thread, incoming, now, policy):
        if thread.id == 1:
            raise ValueError("year 10000 is out of range")
        return real(thread, incoming, now, policy)

    monkeypatch.setattr(plan, "decide", choking)
    actions = plan_pass(
        [_thread(1), _thread(2)],
        [_mail("human", thread_id=1), _mail("auto-reply", "autoresponder", thread_id=2, uid=8)],
        NOW,
        POLICY,
    )
    over = actions[0]
    assert isinstance(over, PassOver) and over.thread_id == 1
    assert over.reason == "ValueError: year 10000 is out of range"
    assert "UID 7" in over.detail["unreadable"]
    assert _sends(actions) == [2]


def test_a_decision_made_again_on_a_moved_thread_follows_the_thread_now() -> None:
    """Verify redecide() on a thread that was replied meanwhile ignores the message and
    expects the replied state, rather than repeating the stale decision."""
    (record,) = plan_incoming([_thread()], [_mail("human")], NOW, POLICY)
    again = redecide(record, _thread(state=T.REPLIED), NOW, POLICY)
    assert again is not None and again.decision.state is None
    assert again.decision.event == "ignored" and again.expected == T.REPLIED


# --- the executor's guard (real SQLite) ---------------------------------------------------------


def _store_awaiting(directory: Path, due: datetime) -> tuple[Store, int]:
    store = Store(f"sqlite:///{directory / 'state.db'}")
    facts = {"to": ANA, "interviewer": "Ana", "company": "Acme", "role": "R"}
    facts |= {"situation": "illness", "interview": NOW.isoformat()}
    tid, mid = store.create_thread(
        now=NOW - timedelta(days=3),
        facts=facts,
        key="k",
        subject="sorry",
        message_id="<m@x>",
        raw=b"x",
        envelope_from="me@x.test",
        recipients=(ANA,),
        follow_up_wait="2d",
        max_follow_ups=1,
        guard_duplicates=True,
    )
    store.mark_submitting(mid, NOW - timedelta(days=3))
    store.mark_sent(mid, NOW - timedelta(days=3), "250 ok", due)
    return store, tid


def test_the_store_writes_no_decision_on_a_thread_that_moved(tmp_path: Path) -> None:
    """Verify apply_incoming with a decision made on 'awaiting reply' for a thread that is now
    replied writes nothing, not even the message's record, and says so."""
    store, tid = _store_awaiting(tmp_path, NOW)
    (record,) = plan_incoming([_thread(tid)], [_mail("human", thread_id=tid)], NOW, POLICY)
    store.set_thread_state(tid, ThreadEvent.MARKED_REPLIED, NOW, "replied", {"replied_by": "phone"})
    before, events = store.thread(tid), store.events(tid)
    m = record.message
    applied = store.apply_incoming(
        thread_id=tid,
        folder=m.place,
        uidvalidity=m.uidvalidity,
        uid=m.uid,
        message_id=None,
        sender=m.sender,
        subject=m.subject,
        verdict=m.verdict,
        now=NOW,
        decision=record.decision,
        expected_state=record.expected,
    )
    assert applied is Applied.MOVED
    assert store.thread(tid) == before and store.events(tid) == events
    assert not store.seen_incoming(m.place, m.uidvalidity, m.uid)
    store.close()


def test_a_thread_moved_between_read_and_write_is_decided_again_not_overwritten(
    tmp_path: Path,
) -> None:
    """Verify the executor, finding the thread replied (by another process) since it was read,
    re-reads it and decides again: the other reply stays, the message is recorded once."""
    store, tid = _store_awaiting(tmp_path, NOW)
    actions = plan_pass([_thread(tid)], [_mail("human", thread_id=tid)], NOW, POLICY)
    store.set_thread_state(tid, ThreadEvent.MARKED_REPLIED, NOW, "replied", {"replied_by": "phone"})

    seen = act_on_mail(store, lambda: NOW, actions, lambda row, now: POLICY)

    assert [s.decision.event for s in seen] == ["ignored"]
    thread = store.thread(tid)
    assert thread.state == T.REPLIED and thread.detail["replied_by"] == "phone"
    assert store.seen_incoming("INBOX", 1, 7)
    assert act_on_mail(store, lambda: NOW, actions, lambda row, now: POLICY) == []  # once
    store.close()


def test_a_postponement_decided_on_a_due_time_that_moved_is_decided_again(
    tmp_path: Path,
) -> None:
    """Verify an out-of-office planned against one due time, written after another process
    moved the due time later, is decided again and keeps the later due time."""
    store, tid = _store_awaiting(tmp_path, NOW)
    message = _mail("auto-reply", "out-of-office", thread_id=tid, return_date=date(2026, 12, 3))
    actions = plan_incoming([_thread(tid)], [message], NOW, POLICY)
    later = NOW + timedelta(days=30)
    with store.tx() as c:  # another process's postponement, further out
        c.exec_driver_sql(
            "UPDATE threads SET follow_up_due = ? WHERE id = ?", (later.isoformat(), tid)
        )

    (seen,) = act_on_mail(store, lambda: NOW, actions, lambda row, now: POLICY)

    assert seen.decision.postpone_to == later
    assert datetime.fromisoformat(store.thread(tid).follow_up_due) == later
    store.close()


def test_requeueing_an_abandoned_send_is_a_table_move_with_a_logged_event(tmp_path: Path) -> None:
    """Verify requeue_abandoned moves a dead process's pre-dot message back to queued, owned
    by nobody, and logs the requeue against its thread."""
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    facts = {"to": ANA, "interviewer": "Ana", "company": "Acme", "role": "R"}
    facts |= {"situation": "illness", "interview": NOW.isoformat()}
    tid, mid = store.create_thread(
        now=NOW,
        facts=facts,
        key="k",
        subject="sorry",
        message_id="<m@x>",
        raw=b"x",
        envelope_from="me@x.test",
        recipients=(ANA,),
        follow_up_wait="2d",
        max_follow_ups=1,
        guard_duplicates=True,
    )
    store.mark_submitting(mid, NOW)
    with store.tx() as c:  # its process is gone
        c.exec_driver_sql("UPDATE messages SET owner = '' WHERE id = ?", (mid,))
    (requeued,) = store.requeue_abandoned(NOW.astimezone(UTC))
    row = store.message(mid)
    assert requeued.id == mid and row.state == "queued" and row.owner is None
    assert row.failed_at is None and "before the final dot" in (row.error or "")
    assert [e["kind"] for e in store.events(tid)][-1] == "requeued"
    store.close()


def test_only_a_hard_bounce_after_this_send_blocks_the_address() -> None:
    """Verify bounced_for_good counts a hard bounce from after the send (within the clock
    slack), in the field or, for an old row, in the words; not a soft one, an earlier one,
    or a damaged one."""
    from mailer.model.decision import BOUNCE_SLACK, bounced_for_good

    sent = NOW - timedelta(days=1)
    hard = {"bounce_kind": "hard", "bounced_at": (sent + timedelta(hours=1)).isoformat()}
    old_row = {"bounce_reason": "hard bounce 5.1.1: unknown", "bounced_at": sent.isoformat()}
    skewed = {**hard, "bounced_at": (sent - BOUNCE_SLACK + timedelta(seconds=1)).isoformat()}
    assert bounced_for_good([(4, hard)], sent) == 4
    assert bounced_for_good([(5, old_row)], sent) == 5
    assert bounced_for_good([(6, skewed)], sent) == 6
    assert bounced_for_good([(7, {**hard, "bounce_kind": "soft"})], sent) is None
    before = {**hard, "bounced_at": (sent - timedelta(days=2)).isoformat()}
    assert bounced_for_good([(8, before), (9, {**hard, "bounced_at": "garbage"})], sent) is None


def test_the_planner_and_the_decision_are_in_the_pure_layer() -> None:
    """Verify plan and decision live in mailer.model, whose imports tests/test_layers.py
    checks (no SQLAlchemy, smtplib, imapclient, os, subprocess, nor any adapter)."""
    from mailer.model import decision, plan

    for module in (plan, decision):
        assert module.__name__.startswith("mailer.model."), module.__name__


def test_a_thread_that_keeps_moving_stops_the_pass_after_a_bounded_number_of_tries(
    tmp_path: Path, monkeypatch
) -> None:
    """Verify the executor tries a write at most ATTEMPTS times on a thread that moves under
    every one, then stops the pass with an error naming the thread (the folder is read
    again next pass), never looping for ever."""
    import pytest

    from mailer.errors import StateError
    from mailer.services import incoming as passes

    store, tid = _store_awaiting(tmp_path, NOW)
    actions = plan_incoming([_thread(tid)], [_mail("human", thread_id=tid)], NOW, POLICY)
    tries: list[int] = []

    def always_moved(**kw):
        tries.append(kw["thread_id"])
        return Applied.MOVED

    monkeypatch.setattr(store, "apply_incoming", always_moved)
    with pytest.raises(StateError, match=f"thread {tid} changed 3 times"):
        act_on_mail(store, lambda: NOW, actions, lambda row, now: POLICY)
    assert tries == [tid] * passes.ATTEMPTS
    store.close()
