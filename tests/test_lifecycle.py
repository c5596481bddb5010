"""The lifecycle table (pure), the store enforcing it (real SQLite), and that no other module
spells a state: the table is the only place a transition is allowed."""

from __future__ import annotations

import ast
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mailer.adapters.store import Store
from mailer.errors import DeliveryError, MailerError, StateError
from mailer.model import lifecycle
from mailer.model.lifecycle import (
    MESSAGE_MOVES,
    THREAD_MOVES,
    MessageEvent,
    MessageState,
    Outcome,
    ThreadEvent,
    ThreadState,
    TransitionRefused,
    outcome_of,
)

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
T, M = ThreadState, MessageState

# Written out again here, on purpose: a change to the table must be a change to this test.
EXPECTED_THREAD = {
    ThreadEvent.APOLOGY_SENT: ({T.SENDING, T.FAILED}, T.AWAITING),
    ThreadEvent.APOLOGY_FAILED: ({T.SENDING, T.FAILED}, T.FAILED),
    ThreadEvent.LAST_FOLLOW_UP_SENT: ({T.AWAITING}, T.FOLLOWED_UP),
    ThreadEvent.FOLLOW_UP_REFUSED: ({T.AWAITING}, T.FAILED),
    ThreadEvent.ADDRESS_BOUNCED: ({T.AWAITING}, T.BOUNCED),
    ThreadEvent.CLOSED_NO_ANSWER: ({T.FOLLOWED_UP}, T.NO_ANSWER),
    ThreadEvent.CANCELLED: ({T.AWAITING, T.FOLLOWED_UP, T.HELD}, T.CANCELLED),
    ThreadEvent.CAMPAIGN_CANCELLED: ({T.AWAITING, T.HELD, T.SENDING}, T.CANCELLED),
    ThreadEvent.MARKED_REPLIED: (
        {T.AWAITING, T.FOLLOWED_UP, T.HELD, T.NO_ANSWER, T.CANCELLED},
        T.REPLIED,
    ),
    ThreadEvent.UNREADABLE_REPLY: ({T.AWAITING, T.FOLLOWED_UP, T.HELD}, T.REPLIED),
    ThreadEvent.REPLY: (set(T) - {T.REPLIED}, T.REPLIED),
    ThreadEvent.BOUNCE: (set(T) - {T.REPLIED}, T.BOUNCED),
    ThreadEvent.CHALLENGE: ({T.SENDING, T.AWAITING, T.FOLLOWED_UP, T.HELD}, T.HELD),
    ThreadEvent.HOLD_FOR_REPLY: ({T.AWAITING, T.FOLLOWED_UP}, T.HELD),
    ThreadEvent.FOLLOW_UP_LATE: ({T.AWAITING}, T.HELD),
    ThreadEvent.RELEASE_TO_AWAITING: ({T.HELD}, T.AWAITING),
    ThreadEvent.RELEASE_TO_FOLLOWED_UP: ({T.HELD}, T.FOLLOWED_UP),
}
EXPECTED_MESSAGE = {
    MessageEvent.SUBMIT: ({M.QUEUED}, M.SUBMITTING),
    MessageEvent.RESEND: ({M.IN_DOUBT, M.SUBMITTING}, M.SUBMITTING),
    MessageEvent.SENT: ({M.QUEUED, M.SUBMITTING, M.IN_DOUBT}, M.SENT),
    MessageEvent.REQUEUE: ({M.QUEUED, M.SUBMITTING}, M.QUEUED),
    MessageEvent.FAIL: ({M.QUEUED, M.SUBMITTING}, M.FAILED),
    MessageEvent.DOUBT: ({M.QUEUED, M.SUBMITTING, M.IN_DOUBT}, M.IN_DOUBT),
    MessageEvent.ABANDONED: ({M.SUBMITTING}, M.IN_DOUBT),
    MessageEvent.DROP_QUEUED: ({M.QUEUED}, M.FAILED),
    MessageEvent.NOT_ARRIVED: ({M.IN_DOUBT}, M.FAILED),
}


# --- the table --------------------------------------------------------------------------------


def test_states_keep_the_strings_already_stored() -> None:
    """Verify the enums' values are the strings the database holds today (no migration)."""
    assert [str(s) for s in ThreadState] == [
        "sending",
        "awaiting_reply",
        "followed_up",
        "replied",
        "bounced",
        "held",
        "no_answer",
        "cancelled",
        "failed",
    ]
    assert [str(s) for s in MessageState] == [
        "queued",
        "submitting",
        "sent",
        "failed",
        "in_doubt",
    ]


@pytest.mark.parametrize("event", list(ThreadEvent))
def test_every_thread_event_allows_exactly_its_from_states(event: ThreadEvent) -> None:
    """Verify each thread event's allowed from-states and target, and that every other state
    refuses it."""
    allowed, to = EXPECTED_THREAD[event]
    assert set(lifecycle.allowed(event)) == allowed and lifecycle.target(event) == to
    for state in ThreadState:
        if state in allowed:
            assert lifecycle.apply(event, state, "thread 1") == to
        else:
            with pytest.raises(TransitionRefused):
                lifecycle.apply(event, state, "thread 1")


@pytest.mark.parametrize("event", list(MessageEvent))
def test_every_message_event_allows_exactly_its_from_states(event: MessageEvent) -> None:
    """Verify each message event's allowed from-states and target, and that every other
    state refuses it."""
    allowed, to = EXPECTED_MESSAGE[event]
    assert set(lifecycle.allowed(event)) == allowed and lifecycle.target(event) == to
    for state in MessageState:
        if state in allowed:
            assert lifecycle.apply(event, state, "message <m@x>") == to
        else:
            with pytest.raises(TransitionRefused):
                lifecycle.apply(event, state, "message <m@x>")


def test_the_tables_cover_every_event_and_no_more() -> None:
    """Verify no event is missing from the tables (nor from this test's copy of them)."""
    assert set(THREAD_MOVES) == set(ThreadEvent) == set(EXPECTED_THREAD)
    assert set(MESSAGE_MOVES) == set(MessageEvent) == set(EXPECTED_MESSAGE)


def test_nothing_moves_a_replied_thread() -> None:
    """Verify no event leaves ``replied``: nothing reopens a thread that a human answered."""
    assert not [e for e, move in THREAD_MOVES.items() if T.REPLIED in move.from_states]


def test_no_event_takes_a_closed_thread_back_to_waiting() -> None:
    """Verify no event leads from a closed state (CLOSED_THREAD) to one that waits for
    anything: a follow-up of a closed thread settled as not sent ('resolve --not-sent') is
    then never followed by another. (Failed is not closed: APOLOGY_SENT reopens it.)"""
    reopening = [
        (event, sorted(move.from_states & lifecycle.CLOSED_THREAD))
        for event, move in THREAD_MOVES.items()
        if move.from_states & lifecycle.CLOSED_THREAD and move.to in lifecycle.WAITING_THREAD
    ]
    assert reopening == []
    assert T.FAILED not in lifecycle.CLOSED_THREAD


def test_a_refused_transition_names_both_states() -> None:
    """Verify the refusal names the row, where it is and where it was asked to go."""
    with pytest.raises(TransitionRefused) as refused:
        lifecycle.apply(ThreadEvent.LAST_FOLLOW_UP_SENT, T.REPLIED, "thread 7")
    assert str(refused.value).startswith("thread 7: cannot go from replied to followed_up")
    assert isinstance(refused.value, MailerError) and refused.value.current == T.REPLIED


@pytest.mark.parametrize("state", [*ThreadState, *MessageState])
def test_display_text_is_derived_from_every_state(state: str) -> None:
    """Verify every state has words derived from its value, with no underscore left."""
    words = lifecycle.describe(state)
    assert words == str(state).replace("_", " ") and "_" not in words


def test_a_dead_processs_submitting_message_shows_in_doubt() -> None:
    """Verify ``submitting`` shows as in doubt only once its process is gone."""
    assert lifecycle.message_shown("submitting", owner_alive=False) == M.IN_DOUBT
    assert lifecycle.message_shown("submitting", owner_alive=True) == M.SUBMITTING
    assert lifecycle.message_shown("sent", owner_alive=False) == M.SENT


# --- what a delivery error means --------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "temporary", "outcome", "on_resend", "blocks"),
    [
        ("in-doubt", False, Outcome.IN_DOUBT, Outcome.IN_DOUBT, False),
        ("recipient", False, Outcome.FAILED, Outcome.FAILED, False),
        ("permanent", False, Outcome.FAILED, Outcome.FAILED, False),
        ("temporary", True, Outcome.REQUEUE, Outcome.IN_DOUBT, False),
        ("timeout", True, Outcome.REQUEUE, Outcome.IN_DOUBT, False),
        ("connection", True, Outcome.REQUEUE, Outcome.IN_DOUBT, False),
        ("connection", False, Outcome.REQUEUE, Outcome.IN_DOUBT, True),
        ("auth", False, Outcome.REQUEUE, Outcome.IN_DOUBT, True),
        ("protocol", False, Outcome.REQUEUE, Outcome.IN_DOUBT, True),
    ],
)
def test_a_delivery_error_has_one_outcome(
    kind: str, temporary: bool, outcome: Outcome, on_resend: Outcome, blocks: bool
) -> None:
    """Verify only the server's refusal fails a message, a cut-off answer is in doubt, and
    anything else keeps it for another try (in doubt still, when it was a resend)."""
    error = DeliveryError("x", kind=kind, temporary=temporary)
    assert outcome_of(error) is outcome
    assert outcome_of(error, resending=True) is on_resend
    assert lifecycle.blocks_account(error) is blocks


# --- no state spelled outside lifecycle -------------------------------------------------------

STATE_VALUES = {str(s) for s in ThreadState} | {str(s) for s in MessageState}
# Released schema migrations are never edited: they keep the literals of their day.
ALLOWED = {("store.py", "_utc_keys"), ("store.py", "_final_dot_column")}
PACKAGE = Path(__file__).resolve().parent.parent / "mailer"


def _sql_state_literal(text: str) -> bool:
    import re

    values = "|".join(sorted(STATE_VALUES))
    return bool(re.search(rf"state\s*(=|!=|<>|IN)\s*\(?[^)]*'({values})'", text, re.I))


def _spelled_states(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []

    def literals(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Constant) and node.value in STATE_VALUES:
            return [node.value]
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            return [v for e in node.elts for v in literals(e)]
        return []

    def visit(node: ast.AST, function: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        if (path.name, function) not in ALLOWED:
            if isinstance(node, ast.Compare):
                for side in [node.left, *node.comparators]:
                    found.extend(
                        f"{path.name}:{node.lineno} compares with {v!r}" for v in literals(side)
                    )
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and _sql_state_literal(node.value)
            ):
                found.append(f"{path.name}:{node.lineno} SQL spells a state")
            if isinstance(node, ast.keyword) and node.arg == "only_from":
                found.append(f"{path.name}:{node.value.lineno} passes its own allowed-from list")
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, "")
    return found


def test_the_literal_check_catches_what_it_looks_for(tmp_path: Path) -> None:
    """Verify the check below flags a comparison, an SQL state and an allowed-from list."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f(t, s):\n"
        "    if t.state == 'awaiting_reply': pass\n"
        "    if t.state in ('sent', 'queued'): pass\n"
        "    s.execute(\"UPDATE threads SET x = 1 WHERE state IN ('held', :a)\")\n"
        "    s.set_thread_state(1, only_from=(1,))\n"
    )
    found = _spelled_states(bad)
    assert len(found) == 5, found


def test_no_module_outside_lifecycle_spells_a_state() -> None:
    """Verify no comparison, SQL or allowed-from list in mailer/ spells a state value: the
    enums in lifecycle.py are the only spelling (released migrations excepted)."""
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 40  # the whole package, in every layer
    found = [
        hit for path in modules if path.name != "lifecycle.py" for hit in _spelled_states(path)
    ]
    assert found == []


def test_lifecycle_is_pure() -> None:
    """Verify lifecycle.py imports no I/O: no SQLAlchemy, no os, no sockets, no sender."""
    tree = ast.parse((PACKAGE / "model" / "lifecycle.py").read_text(encoding="utf-8"))
    imported = {
        (n.module or "") if isinstance(n, ast.ImportFrom) else a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    assert imported <= {"__future__", "enum", "dataclasses", "mailer.errors"}, imported


# --- the store enforces the table (real SQLite) ----------------------------------------------


def _store_with_apology(directory: Path) -> tuple[Store, int, int]:
    """A fresh store with one thread whose apology is queued: (store, thread, message row)."""
    store = Store(f"sqlite:///{directory / 'state.db'}")
    facts = {"to": "a@b.test", "interviewer": "A", "company": "C", "role": "R"}
    facts |= {"situation": "illness", "interview": T0.isoformat()}
    tid, mid = store.create_thread(
        now=T0,
        facts=facts,
        key="k",
        subject="s",
        message_id="<m@x>",
        raw=b"x",
        envelope_from="me@x.test",
        recipients=("a@b.test",),
        follow_up_wait="1d",
        max_follow_ups=1,
        guard_duplicates=True,
    )
    return store, tid, mid


def test_the_store_refuses_a_thread_move_the_table_forbids(tmp_path: Path) -> None:
    """Verify closing an awaiting thread as 'no answer' is refused by name and leaves the row,
    its details and its log unchanged."""
    store, tid, mid = _store_with_apology(tmp_path)
    store.mark_submitting(mid, T0)
    store.mark_sent(mid, T0, "250 ok", T0 + timedelta(days=1))
    before, events = store.thread(tid), store.events(tid)
    with pytest.raises(TransitionRefused) as refused:
        store.set_thread_state(tid, ThreadEvent.CLOSED_NO_ANSWER, T0, "no_answer", {"x": "y"})
    assert f"thread {tid}: cannot go from awaiting_reply to no_answer" in str(refused.value)
    assert store.thread(tid) == before and store.events(tid) == events
    store.close()


def test_the_store_refuses_a_message_move_the_table_forbids(tmp_path: Path) -> None:
    """Verify failing a sent message is refused by name and changes nothing: a message the
    server took is never recorded as failed (and so never sent again)."""
    store, tid, mid = _store_with_apology(tmp_path)
    store.mark_submitting(mid, T0)
    store.mark_sent(mid, T0, "250 ok", T0 + timedelta(days=1))
    before, thread = store.message(mid), store.thread(tid)
    with pytest.raises(TransitionRefused) as refused:
        store.mark_failed(mid, T0, "late error")
    assert "message <m@x>: cannot go from sent to failed" in str(refused.value)
    assert store.message(mid) == before and store.thread(tid) == thread
    store.close()


def test_a_repeated_cancel_stays_a_no_op(tmp_path: Path) -> None:
    """Verify cancelling a cancelled thread is reported as nothing to do, not as an error,
    and cancelling a thread that is not waiting is an error naming the thread."""
    from mailer.errors import InputError
    from mailer.services.decisions import cancel

    store, tid, mid = _store_with_apology(tmp_path)
    with pytest.raises(InputError, match=f"thread {tid} is not waiting for anything"):
        cancel(store, tid, T0)  # still sending
    store.mark_submitting(mid, T0)
    store.mark_sent(mid, T0, "250 ok", T0 + timedelta(days=1))
    assert cancel(store, tid, T0) is True
    assert cancel(store, tid, T0) is False
    assert store.thread(tid).state == T.CANCELLED  # type: ignore[union-attr]
    store.close()


# Store calls for the message events a caller can ask for (the owner is this process, so
# ABANDONED never applies here; DROP_QUEUED is only internal; NOT_ARRIVED is for a follow-up
# of a closed thread only, and this message is an apology: see test_in_doubt).
MESSAGE_CALLS = {
    MessageEvent.SUBMIT: lambda s, mid: s.mark_submitting(mid, T0),
    MessageEvent.RESEND: lambda s, mid: s.claim_resend(mid, T0, tuple(ThreadState)),
    MessageEvent.SENT: lambda s, mid: s.mark_sent(mid, T0, "250 ok", T0 + timedelta(days=1)),
    MessageEvent.REQUEUE: lambda s, mid: s.requeue(mid, T0, "421 later"),
    MessageEvent.FAIL: lambda s, mid: s.mark_failed(mid, T0, "550 no"),
    MessageEvent.DOUBT: lambda s, mid: s.mark_in_doubt(mid, T0, "cut off"),
}
# The thread moves a message move brings with it, when the thread is still where it allows.
SIDE_MOVES = {
    MessageEvent.SENT: ThreadEvent.APOLOGY_SENT,
    MessageEvent.FAIL: ThreadEvent.APOLOGY_FAILED,
}

steps = st.lists(
    st.one_of(st.sampled_from(list(ThreadEvent)), st.sampled_from(list(MESSAGE_CALLS))),
    max_size=12,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
# A reply, or a cancel, before the apology is recorded sent or failed: the thread stays.
@example([ThreadEvent.REPLY, MessageEvent.SUBMIT, MessageEvent.SENT])
@example([ThreadEvent.CAMPAIGN_CANCELLED, MessageEvent.FAIL])
def test_any_sequence_through_the_store_matches_the_table(
    events: list[ThreadEvent | MessageEvent],
) -> None:
    """Verify any sequence of events applied through the real store ends, step by step, in
    the states the pure table gives, refusals included (a refused step changes nothing)."""
    with tempfile.TemporaryDirectory() as directory:
        store, tid, mid = _store_with_apology(Path(directory))
        thread, message = T.SENDING, M.QUEUED
        try:
            for event in events:
                if isinstance(event, ThreadEvent):
                    try:
                        expected = lifecycle.apply(event, thread, "thread")
                    except TransitionRefused:
                        with pytest.raises(TransitionRefused):
                            store.set_thread_state(tid, event, T0, str(event), {})
                    else:
                        assert store.set_thread_state(tid, event, T0, str(event), {}) == expected
                        thread = ThreadState(expected)
                else:
                    try:
                        expected = lifecycle.apply(event, message, "message")
                    except TransitionRefused:
                        with pytest.raises(StateError):  # a ClaimError or TransitionRefused
                            MESSAGE_CALLS[event](store, mid)
                    else:
                        MESSAGE_CALLS[event](store, mid)
                        message = MessageState(expected)
                        side = SIDE_MOVES.get(event)
                        if side is not None and thread in THREAD_MOVES[side].from_states:
                            thread = ThreadState(THREAD_MOVES[side].to)
                assert store.thread(tid).state == thread  # type: ignore[union-attr]
                assert store.message(mid).state == message
        finally:
            store.close()


def _challenge(store: Store, tid: int, at: datetime, uid: int, held: bool = True) -> None:
    """A challenge-response message for the thread, decided and applied as a pass does."""
    from mailer.model.decision import Classified, ThreadSnapshot, decide

    thread = store.thread(tid)
    assert thread is not None
    incoming = Classified(
        kind="auto", subtype="challenge-response", sender="cr@b.test", subject="verify", received=at
    )
    decision = decide(ThreadSnapshot(tid, thread.state, thread.detail), incoming, at, None)  # type: ignore[arg-type]
    store.apply_incoming(
        thread_id=tid,
        folder="INBOX",
        uidvalidity=1,
        uid=uid,
        message_id=f"<c{uid}@b.test>",
        sender="cr@b.test",
        subject="verify",
        verdict="auto",
        now=at,
        decision=decision,
        expected_state=thread.state,
    )
    if held:
        assert store.thread(tid).state == T.HELD  # type: ignore[union-attr]


def test_an_apology_in_doubt_held_by_a_challenge_is_followed_up_once_resolved_and_released(
    tmp_path: Path,
) -> None:
    """Verify an apology in doubt (thread sending) that a challenge-response holds: release
    is refused while the apology is unsettled; after 'resolve --sent' the thread, still held,
    has its follow-up due; released, it is awaiting with that due time and shows up as due."""
    from mailer.errors import InputError
    from mailer.services.decisions import release
    from mailer.services.passes import held

    store, tid, mid = _store_with_apology(tmp_path)
    store.mark_submitting(mid, T0)
    store.mark_final_dot(mid, T0)
    store.mark_in_doubt(mid, T0, "connection lost after the final dot")
    _challenge(store, tid, T0 + timedelta(minutes=1), 1)
    with pytest.raises(InputError, match=f"thread {tid}'s apology is not known to be sent"):
        release(store, tid, T0 + timedelta(minutes=2))
    assert store.thread(tid).state == T.HELD  # type: ignore[union-attr]
    (named,) = held(store)  # what check prints: the resolve comes first
    assert f"run 'mailer resolve {tid} --sent', then 'mailer release {tid}'" in named

    due = T0 + timedelta(days=1)
    store.mark_sent(mid, T0 + timedelta(minutes=3), "confirmed by you", due, settling=True)
    dated = store.thread(tid)
    assert (dated.state, dated.follow_up_due) == (T.HELD, due.isoformat())  # type: ignore[union-attr]
    assert store.due_threads(due + timedelta(days=30)) == []  # held: nothing goes
    (named,) = held(store)
    assert f"run 'mailer release {tid}'" in named and "resolve" not in named

    assert release(store, tid, T0 + timedelta(hours=1)) is True
    released = store.thread(tid)
    assert (released.state, released.follow_up_due) == (T.AWAITING, due.isoformat())  # type: ignore[union-attr]
    assert [t.id for t in store.due_threads(due)] == [tid]
    store.close()


def test_a_challenge_after_the_last_follow_up_is_released_back_to_closing_as_no_answer(
    tmp_path: Path,
) -> None:
    """Verify a challenge-response on a thread whose last follow-up went (followed_up)
    records what held it and where from; release returns it to followed_up with its
    close-as-no-answer time, so it closes rather than planning a follow-up forever."""
    from mailer.model.decision import HELD_BY_CHALLENGE
    from mailer.services.decisions import release

    store, tid, mid = _store_with_apology(tmp_path)
    fid, t1 = _follow_up_submitting(store, tid, mid)
    close_at = t1 + timedelta(days=1)
    store.mark_sent(fid, t1, "250 ok", close_at)
    assert store.thread(tid).state == T.FOLLOWED_UP  # type: ignore[union-attr]

    _challenge(store, tid, t1 + timedelta(minutes=5), 1)
    detail = store.thread(tid).detail  # type: ignore[union-attr]
    assert (detail["held_kind"], detail["held_from"]) == (HELD_BY_CHALLENGE, T.FOLLOWED_UP)

    assert release(store, tid, t1 + timedelta(hours=1)) is True
    released = store.thread(tid)
    assert (released.state, released.follow_up_due) == (T.FOLLOWED_UP, close_at.isoformat())  # type: ignore[union-attr]
    assert [t.id for t in store.due_threads(close_at)] == [tid]
    store.close()


def test_a_challenge_held_thread_without_held_from_is_released_by_its_follow_up_count(
    tmp_path: Path,
) -> None:
    """Verify a thread held by a challenge before held_from was recorded for one (an older
    store) goes back to followed_up on release when its last follow-up went."""
    from mailer.services.decisions import release

    store, tid, mid = _store_with_apology(tmp_path)
    fid, t1 = _follow_up_submitting(store, tid, mid)
    store.mark_sent(fid, t1, "250 ok", t1 + timedelta(days=1))
    store.set_thread_state(tid, ThreadEvent.CHALLENGE, t1, "held", {"held": "old wording"})
    assert "held_from" not in store.thread(tid).detail  # type: ignore[union-attr]
    release(store, tid, t1 + timedelta(hours=1))
    assert store.thread(tid).state == T.FOLLOWED_UP  # type: ignore[union-attr]
    store.close()


@pytest.mark.parametrize("closing", [ThreadEvent.CANCELLED, ThreadEvent.CLOSED_NO_ANSWER])
def test_a_challenge_to_a_closed_thread_leaves_it_closed_and_says_what_it_was(
    tmp_path: Path, closing: ThreadEvent
) -> None:
    """Verify a challenge-response arriving after the thread was cancelled (or closed as no
    answer) does not hold it: holding it would let 'mailer release' reopen it and send the
    follow-up that had been stopped. The notice is kept in the thread's detail."""
    store, tid, mid = _store_with_apology(tmp_path)
    store.mark_submitting(mid, T0)
    store.mark_final_dot(mid, T0)
    store.mark_sent(mid, T0, "250 ok", T0 + timedelta(days=3))
    if closing is ThreadEvent.CLOSED_NO_ANSWER:
        store.set_thread_state(tid, ThreadEvent.LAST_FOLLOW_UP_SENT, T0, "followed_up", {})
    store.set_thread_state(tid, closing, T0 + timedelta(hours=1), str(closing), {})
    closed = store.thread(tid).state  # type: ignore[union-attr]
    _challenge(store, tid, T0 + timedelta(hours=2), 1, held=False)
    thread = store.thread(tid)
    assert thread is not None and thread.state == closed != T.HELD
    assert thread.detail["auto_reply"] == "challenge-response"  # a short kind, as --json shows
    from mailer.services.threadview import describe

    said = describe(thread, [], UTC)
    assert "a challenge-response filter holds the apology" in said, said
    assert store.due_threads(T0 + timedelta(days=60)) == []
    store.close()


def _legacy_hold(store: Store, tid: int) -> None:
    """What an older mailer wrote for a challenge-response, which it let hold any state but
    replied: state held, the 'held' words, no held_from."""
    import json

    from sqlalchemy import text

    thread = store.thread(tid)
    assert thread is not None
    detail = {**thread.detail, "held": "a challenge-response system is holding the apology"}
    with store.tx() as c:
        c.execute(
            text("UPDATE threads SET state = 'held', detail = :d WHERE id = :t"),
            {"d": json.dumps(detail), "t": tid},
        )


def _config(directory: Path):  # type: ignore[no-untyped-def]
    """Settings read from a minimal config: a one-day wait, one follow-up."""
    from mailer.adapters.config import load_settings

    (directory / "config").mkdir()
    (directory / "config" / "mailer.toml").write_text(
        '[sender]\nname = "Sam"\naddress = "me@x.test"\ntimezone = "Europe/London"\n'
        '[smtp]\nhost = "127.0.0.1"\nport = 2525\nsecurity = "plain"\n'
        '[imap]\nhost = "127.0.0.1"\nport = 1993\nsave_sent = false\n'
        '[follow_up]\nwait = "1d"\nmax_follow_ups = 1\n'
        "[addresses]\nallow_test_domains = true\n",
        encoding="utf-8",
    )
    (directory / ".env").write_text("MAILER_SMTP_PASSWORD=pw\n", encoding="utf-8")
    return load_settings(directory / "config" / "mailer.toml")


def _claimed(store: Store, tid: int, at: datetime) -> int:
    """The thread's next follow-up claimed at ``at`` and being sent."""
    fid = store.claim_follow_up(
        tid, at, message_id="<f@x>", raw=b"f", envelope_from="me@x.test", recipients=("a@b.test",)
    )
    assert fid is not None
    store.mark_submitting(fid, at)
    return fid


def _follow_up_submitting(store: Store, tid: int, mid: int) -> tuple[int, datetime]:
    """The apology sent at T0 (follow-up due a day later), its follow-up being sent a minute
    after that: the follow-up's row and when."""
    store.mark_submitting(mid, T0)
    store.mark_sent(mid, T0, "250 ok", T0 + timedelta(days=1))
    t1 = T0 + timedelta(days=1, minutes=1)
    return _claimed(store, tid, t1), t1


def _last_follow_up_in_doubt(store: Store, tid: int, mid: int) -> tuple[int, datetime]:
    """The apology sent at T0 (follow-up due a day later), its only follow-up in doubt."""
    fid, t1 = _follow_up_submitting(store, tid, mid)
    store.mark_final_dot(fid, t1)
    store.mark_in_doubt(fid, t1, "cut off after the final dot")
    return fid, t1


def test_a_last_follow_up_settled_while_held_is_released_to_close_as_no_answer(
    tmp_path: Path,
) -> None:
    """Verify a thread held (from awaiting_reply) while its last follow-up was in doubt, that
    follow-up then resolved --sent, is released to followed_up with its closing due now: the
    next pass closes it as no answer instead of planning a follow-up forever."""
    from mailer.services.decisions import release

    store, tid, mid = _store_with_apology(tmp_path)
    fid, t1 = _last_follow_up_in_doubt(store, tid, mid)
    _challenge(store, tid, t1 + timedelta(minutes=5), 1)
    assert store.thread(tid).detail["held_from"] == T.AWAITING  # type: ignore[union-attr]
    store.mark_sent(fid, t1 + timedelta(hours=1), "confirmed by you", None, settling=True)
    at = t1 + timedelta(hours=2)
    assert release(store, tid, at) is True
    released = store.thread(tid)
    assert (released.state, released.follow_up_due) == (T.FOLLOWED_UP, at.isoformat())  # type: ignore[union-attr]
    assert [t.id for t in store.due_threads(at)] == [tid]
    assert store.move_thread_if_still(tid, ThreadEvent.CLOSED_NO_ANSWER, at, "no_answer", {})
    store.close()


def test_a_last_follow_up_settled_while_held_closes_a_wait_after_it_went(
    tmp_path: Path,
) -> None:
    """Verify, with the settings given (as 'mailer release' gives them), the thread released
    after its last follow-up was settled while held closes as no answer when a follow-up
    sent then would have: a wait after it went, not at once."""
    from mailer.services.decisions import release
    from mailer.services.passes import next_due

    cfg = _config(tmp_path)
    store, tid, mid = _store_with_apology(tmp_path)
    fid, t1 = _last_follow_up_in_doubt(store, tid, mid)
    _challenge(store, tid, t1 + timedelta(minutes=5), 1)
    settled = t1 + timedelta(hours=1)
    store.mark_sent(fid, settled, "confirmed by you", None, settling=True)
    assert release(store, tid, t1 + timedelta(hours=2), cfg) is True
    released = store.thread(tid)
    close_at = next_due(cfg, released, "follow_up", settled)  # type: ignore[arg-type]
    assert close_at is not None and close_at >= settled + timedelta(days=1)
    assert (released.state, released.follow_up_due) == (T.FOLLOWED_UP, close_at.isoformat())  # type: ignore[union-attr]
    assert store.due_threads(close_at - timedelta(minutes=1)) == []
    assert [t.id for t in store.due_threads(close_at)] == [tid]
    store.close()


def _closed(store: Store, tid: int, mid: int, how: str) -> None:
    """Close the thread as ``how`` the way the mailer does (the marks its moves write)."""
    if how == "failed apology":
        store.mark_submitting(mid, T0)
        store.mark_failed(mid, T0, "550 no such user")
        return
    store.mark_submitting(mid, T0)
    store.mark_sent(mid, T0, "250 ok", T0 + timedelta(days=1))
    at = T0 + timedelta(hours=1)
    if how == "cancelled":
        store.set_thread_state(tid, ThreadEvent.CANCELLED, at, "cancelled", {"cancelled": "by you"})
    elif how == "no answer":
        store.set_thread_state(tid, ThreadEvent.LAST_FOLLOW_UP_SENT, at, "last", {})
        store.set_thread_state(
            tid, ThreadEvent.CLOSED_NO_ANSWER, at, "no_answer", {"closed": "no reply"}
        )
    elif how == "bounced":
        store.set_thread_state(
            tid, ThreadEvent.ADDRESS_BOUNCED, at, "bounced", {"bounce_reason": "bounced"}
        )
    else:
        store.set_thread_state(
            tid, ThreadEvent.FOLLOW_UP_REFUSED, at, "failed", {"follow_up_error": "550"}
        )


@pytest.mark.parametrize(
    ("how", "was"),
    [
        ("cancelled", "cancelled"),
        ("no answer", "no answer"),
        ("bounced", "bounced"),
        ("refused follow-up", "failed"),
        ("failed apology", "failed"),
    ],
)
def test_a_closed_thread_held_by_an_older_mailer_is_not_reopened_by_release(
    tmp_path: Path, how: str, was: str
) -> None:
    """Verify a thread an older mailer held after it was closed (no held_from) is refused by
    release with one line naming what it was and 'mailer cancel', stays held with nothing due,
    and check's line for it points to cancel, not release."""
    from mailer.errors import InputError
    from mailer.services.decisions import cancel, release
    from mailer.services.passes import held

    store, tid, mid = _store_with_apology(tmp_path)
    _closed(store, tid, mid, how)
    _legacy_hold(store, tid)
    (line,) = held(store)
    assert f"was {was} before" in line and f"'mailer cancel {tid}'" in line
    assert "release" not in line and "resolve" not in line
    if how != "failed apology":  # (its mark is on the message, which status reads apart)
        from mailer.services.threadview import describe

        said = describe(store.thread(tid), [], UTC)  # type: ignore[arg-type]
        assert said == (
            f"held by a challenge-response system after it was {was}; "
            f"'mailer cancel {tid}' closes it again"
        ), said
    with pytest.raises(InputError, match=f"thread {tid} was {was} before it was held") as e:
        release(store, tid, T0 + timedelta(hours=2))
    assert f"mailer cancel {tid}" in str(e.value.hint)
    assert store.thread(tid).state == T.HELD  # type: ignore[union-attr]
    assert store.due_threads(T0 + timedelta(days=365)) == []
    assert cancel(store, tid, T0 + timedelta(hours=3)) is True
    assert store.thread(tid).state == T.CANCELLED  # type: ignore[union-attr]
    store.close()


@pytest.mark.parametrize("with_settings", [True, False])
def test_an_apology_settled_by_an_older_mailer_while_held_is_followed_up_once_released(
    tmp_path: Path, with_settings: bool
) -> None:
    """Verify a thread an older mailer held while its apology was sending, then settled
    (sent_at, no due time), is released to awaiting_reply with its follow-up due: a day after
    the apology as its send would have given it (settings given), else due now."""
    from sqlalchemy import text

    from mailer.services.decisions import release
    from mailer.services.passes import next_due

    cfg = _config(tmp_path)
    store, tid, mid = _store_with_apology(tmp_path)
    store.mark_submitting(mid, T0)
    store.mark_final_dot(mid, T0)
    store.mark_in_doubt(mid, T0, "cut off")
    _legacy_hold(store, tid)
    store.mark_sent(mid, T0, "confirmed by you", T0 + timedelta(days=1), settling=True)
    with store.tx() as c:  # the older mailer did not date a held thread
        c.execute(
            text("UPDATE threads SET follow_up_due = NULL, due_at = NULL WHERE id = :t"),
            {"t": tid},
        )
    at = T0 + timedelta(hours=2)
    assert release(store, tid, at, cfg if with_settings else None) is True
    released = store.thread(tid)
    due = next_due(cfg, released, "apology", T0) if with_settings else at  # type: ignore[arg-type]
    assert due is not None and due >= at
    assert (released.state, released.follow_up_due) == (T.AWAITING, due.isoformat())  # type: ignore[union-attr]
    assert [t.id for t in store.due_threads(due)] == [tid]
    fid = _claimed(store, tid, due)
    store.mark_sent(fid, due, "250 ok", due + timedelta(days=1))
    assert store.thread(tid).state == T.FOLLOWED_UP  # type: ignore[union-attr]
    assert (
        store.claim_follow_up(
            tid,
            due + timedelta(days=2),
            message_id="<g@x>",
            raw=b"g",
            envelope_from="me@x.test",
            recipients=("a@b.test",),
        )
        is None
    )
    store.close()


def test_a_challenge_on_a_thread_held_for_an_unclear_reply_keeps_the_reply_named(
    tmp_path: Path,
) -> None:
    """Verify a challenge-response on a thread already held for an unclear reply keeps that
    hold (its kind, words, threads, sender) and records the challenge beside it: check still
    says the reply may answer it, names mark-replied, and says a challenge holds it too."""
    from mailer.model.decision import HELD_BY_UNCLEAR_REPLY, hold_for_reply
    from mailer.services.passes import held

    store, tid, mid = _store_with_apology(tmp_path)
    store.mark_submitting(mid, T0)
    store.mark_sent(mid, T0, "250 ok", T0 + timedelta(days=3))
    d = hold_for_reply(
        T.AWAITING,
        sender="ana@b.test",
        subject="Re: hello",
        received=T0 + timedelta(hours=1),
        threads=(tid, 99),
    )
    assert store.move_thread_if_still(
        tid,
        ThreadEvent.HOLD_FOR_REPLY,
        T0 + timedelta(hours=1),
        d.event,
        d.detail,
        expected=T.AWAITING,
    )
    before = dict(store.thread(tid).detail)  # type: ignore[union-attr]
    _challenge(store, tid, T0 + timedelta(hours=2), 1)
    detail = store.thread(tid).detail  # type: ignore[union-attr]
    kept = ("held_kind", "held", "held_threads", "held_reply_by", "held_from")
    assert {k: detail[k] for k in kept} == {k: before[k] for k in kept}
    assert detail["held_kind"] == HELD_BY_UNCLEAR_REPLY
    assert "challenge-response" in detail["challenge"]
    (line,) = held(store)
    assert "a reply from ana@b.test may answer" in line and f"mark-replied {tid}" in line
    assert "a challenge-response system holds it too" in line
    from mailer.services import threadview

    shown = threadview.describe(store.thread(tid), store.messages(tid), UTC)  # type: ignore[arg-type]
    assert "a reply from ana@b.test" in shown and "challenge-response system holds it too" in shown
    store.close()


def test_in_doubt_advice_sends_the_user_to_sent_only_where_the_provider_files_it() -> None:
    """Verify the advice for a message in doubt: where mailer files Sent itself (after the
    250), Sent proves nothing and unsure means --sent; where the provider files it, Sent is
    the check. Both name the thread in both commands."""
    own = lifecycle.settle_advice(7)
    assert "Sent folder cannot tell" in own and "cannot find out" in own
    assert own.index("--sent") < own.index("cannot find out") < own.index("--resend")
    provider = lifecycle.settle_advice(7, provider_files_sent=True)
    assert "look in your Sent folder" in provider and "cannot tell" not in provider
    for text in (own, provider):
        assert "'mailer resolve 7 --sent'" in text and "'mailer resolve 7 --resend'" in text
