"""One watch/follow-up pass as a plan (pure): what to do, decided before anything is done.

The watcher fetches, matches and classifies the new messages; the executor
(:mod:`mailer.services.incoming`) reads the threads they concern and the threads that are due, and
performs the actions :func:`plan_pass` returns, in order. Planning reads no clock and does no
I/O, so every rule of a pass can be driven here without servers.

The plan follows each thread through the pass: a reply recorded by the first actions is seen
by the due-time decisions after them, so a thread answered in this pass gets no follow-up,
and a thread gets at most one follow-up per pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from mailer.model.decision import (
    Classified,
    Decision,
    Policy,
    ThreadSnapshot,
    decide,
    hold_for_reply,
)
from mailer.model.followup import send_time
from mailer.model.lifecycle import OPEN_THREAD, ThreadState
from mailer.model.schedule import follow_up_due

T = ThreadState


@dataclass(frozen=True)
class NewMessage:
    """One new message in a watched folder, as the watcher read it.

    ``classified`` is None for a message that could not be read (``unreadable`` says why);
    ``thread_id`` is the thread it was matched to (for an unreadable one: the thread it
    seems to answer, if any). ``seen_before``: the store has recorded it already.
    """

    place: str  # the folder as the state store names it
    folder: str
    uidvalidity: int
    uid: int
    thread_id: int | None
    message_id: str | None = None
    sender: str = ""
    subject: str = ""
    label: str = ""  # the verdict in short ("auto-reply/out-of-office")
    verdict: str = ""  # the line recorded with it
    classified: Classified | None = None
    unreadable: str = ""
    seen_before: bool = False
    refs: tuple[str, ...] = ()  # the Message-IDs it answers (In-Reply-To, References)


# --- actions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordIncoming:
    """Record the message against its thread and write ``decision``, if the thread is still
    ``expected`` (None: whatever its state) and, for a postponement, still due at
    ``expected_due``."""

    message: NewMessage
    thread_id: int
    decision: Decision
    expected: str | None
    expected_due: datetime | None = None


@dataclass(frozen=True)
class HoldThread:
    """Hold another thread an unclear reply may answer, if it is still ``expected``."""

    message: NewMessage
    thread_id: int
    decision: Decision
    expected: str


@dataclass(frozen=True)
class PassOver:
    """A message nobody could read: recorded and passed over. The thread it seems to answer
    (if any) is taken as answered: stopping a follow-up is the safe side."""

    message: NewMessage
    thread_id: int | None
    reason: str
    detail: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CloseNoAnswer:
    """Every follow-up went and the last one's time is up: close as no answer."""

    thread_id: int


@dataclass(frozen=True)
class BounceAddress:
    """The address bounced for good in another thread: no follow-up goes to it."""

    thread_id: int
    bounced_in: int


@dataclass(frozen=True)
class WaitForWindow:
    """Due, but outside the recipient's sending window until ``until``."""

    thread_id: int
    until: datetime


@dataclass(frozen=True)
class HoldLate:
    """Due so long ago (mailer was not running) that the follow-up waits for the user's word
    instead of going unasked: the thread is held, if it is still awaiting a reply."""

    thread_id: int
    due: datetime


@dataclass(frozen=True)
class SendFollowUp:
    """Claim, look once more for a reply, and send the thread's next follow-up."""

    thread_id: int


Action = (
    RecordIncoming
    | HoldThread
    | PassOver
    | CloseNoAnswer
    | BounceAddress
    | WaitForWindow
    | HoldLate
    | SendFollowUp
)
INCOMING_ACTIONS = (RecordIncoming, HoldThread, PassOver)

PolicyFor = Policy | Callable[[int], Policy]


def plan_pass(
    threads: Iterable[ThreadSnapshot],
    new_messages: Iterable[NewMessage],
    now: datetime,
    policy: PolicyFor,
) -> list[Action]:
    """The actions of one pass: first what each new message does, in the order they came;
    then, for each thread whose next step is due (as the pass leaves it), that step."""
    state = {t.id: t for t in threads}
    actions = plan_incoming(state, new_messages, now, policy)
    return actions + plan_due(state.values(), now, policy)


def plan_incoming(
    threads: Mapping[int, ThreadSnapshot] | Iterable[ThreadSnapshot],
    new_messages: Iterable[NewMessage],
    now: datetime,
    policy: PolicyFor,
) -> list[Action]:
    """What the new messages do. ``threads`` given as a dict is updated as the plan goes,
    so that it shows each thread as the actions leave it."""
    state = threads if isinstance(threads, dict) else {t.id: t for t in threads}
    actions: list[Action] = []
    for m in new_messages:
        actions += _plan_message(m, state, now, policy)
    return actions


def redecide(
    action: RecordIncoming | HoldThread, thread: ThreadSnapshot, now: datetime, policy: Policy
) -> RecordIncoming | HoldThread | None:
    """The same message decided again for the thread as it is now (another process moved it
    between the read and the write). None: it no longer does anything to that thread."""
    assert action.message.classified is not None
    if isinstance(action, HoldThread):
        decision = _hold(action.message.classified, thread.state)
        if decision.state is None:
            return None
        return replace(action, decision=decision, expected=thread.state)
    decision = decide(thread, action.message.classified, now, policy)
    return replace(
        action,
        decision=decision,
        expected=None if action.expected is None else thread.state,
        expected_due=thread.follow_up_due,
    )


def plan_due(threads: Iterable[ThreadSnapshot], now: datetime, policy: PolicyFor) -> list[Action]:
    """The next step of every thread that is due: one per thread, earliest due first."""
    due = [t for t in threads if t.state in (T.AWAITING, T.FOLLOWED_UP) and t.follow_up_due]
    actions: list[Action] = []
    for t in sorted(due, key=lambda t: (t.follow_up_due, t.id)):
        assert t.follow_up_due is not None
        if t.follow_up_due > now:
            continue  # postponed in this pass, or not due yet
        if t.state == T.FOLLOWED_UP:
            actions.append(CloseNoAnswer(t.id))
            continue
        p = _policy(policy, t.id)
        when = send_time(t.follow_up_due, now, p.tz, p.window, p.holidays)
        if t.bounced_in is None and too_late(t, now, p):
            # Held at once, even outside the window: late now, it is as late when it opens,
            # and the user hears of it now rather than when it would have gone.
            actions.append(HoldLate(t.id, t.follow_up_due))
        elif when > now:
            actions.append(WaitForWindow(t.id, when))
        elif t.bounced_in is not None:
            actions.append(BounceAddress(t.id, t.bounced_in))
        else:
            actions.append(SendFollowUp(t.id))
    return actions


def too_late(t: ThreadSnapshot, now: datetime, p: Policy) -> bool:
    """Whether a due follow-up is later than ``p.late_after`` past its first chance: the first
    open moment of the window at or after its due time, or after the user's release of the
    thread if that came later (a release is their word that it may go, however late; one
    on a Friday evening counts from Monday morning)."""
    if p.late_after is None or t.follow_up_due is None:
        return False
    first = send_time(t.follow_up_due, t.follow_up_due, p.tz, p.window, p.holidays)
    released = t.detail.get("released_at", "")
    try:
        if released:
            at = datetime.fromisoformat(released)
            first = max(first, send_time(at, at, p.tz, p.window, p.holidays))
    except (TypeError, ValueError):
        pass  # a damaged mark: the due time alone decides
    return now >= follow_up_due(first.astimezone(p.tz), p.late_after, p.holidays)


def _plan_message(
    m: NewMessage, state: dict[int, ThreadSnapshot], now: datetime, policy: PolicyFor
) -> list[Action]:
    if m.classified is None:
        return [_pass_over(m, m.unreadable, state, now)]
    if m.thread_id is None or m.thread_id not in state:
        return []  # the thread is gone
    if m.seen_before:
        return []  # acted on once already; its holds may have been released since
    c = m.classified
    thread = state[m.thread_id]
    try:
        holds: list[Action] = []
        for other in c.hold:
            row = state.get(other)
            if other == m.thread_id or row is None:
                continue
            if row.state not in (T.AWAITING, T.FOLLOWED_UP):
                continue  # held already, or closed since the index was read
            decision = _hold(c, row.state)
            if decision.state is not None:
                holds.append(HoldThread(m, other, decision, row.state))
        decision = decide(thread, c, now, _policy(policy, thread.id))
    except Exception as exc:  # this message: it must not stop every pass from now on
        return [_pass_over(m, one_line(exc), state, now)]
    for h in holds:
        assert isinstance(h, HoldThread)
        state[h.thread_id] = _after(state[h.thread_id], h.decision)
    state[thread.id] = _after(thread, decision)
    # An unmatched bounce holds whatever the thread's state; every other decision was made
    # from the state it read, and is written only if the thread is still so.
    expected = None if not c.concerns else thread.state
    return [*holds, RecordIncoming(m, thread.id, decision, expected, thread.follow_up_due)]


def _hold(c: Classified, current: str) -> Decision:
    return hold_for_reply(
        current,
        sender=c.sender,
        subject=c.subject,
        received=c.received,
        threads=c.hold,
        before_apology=c.before_apology,
    )


def _pass_over(
    m: NewMessage, reason: str, state: dict[int, ThreadSnapshot], now: datetime
) -> PassOver:
    if m.thread_id is None:
        return PassOver(m, None, reason)
    detail = {
        "replied_by": m.sender or "(unreadable sender)",
        "reply_subject": m.subject or "(unreadable subject)",
        "replied_at": now.isoformat(),
        "unreadable": f"{m.folder} UID {m.uid}: {reason}",
    }
    thread = state.get(m.thread_id)
    if thread is not None and thread.state in OPEN_THREAD:
        state[m.thread_id] = replace(thread, state=T.REPLIED)
    return PassOver(m, m.thread_id, reason, detail)


def one_line(exc: Exception) -> str:
    """One printable line: an exception's text may quote what the sender wrote."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _after(thread: ThreadSnapshot, decision: Decision) -> ThreadSnapshot:
    """The thread as the store will show it once ``decision`` is written."""
    return replace(
        thread,
        state=decision.state or thread.state,
        detail={**thread.detail, **decision.detail},
        follow_up_due=decision.postpone_to or thread.follow_up_due,
    )


def _policy(policy: PolicyFor, thread_id: int) -> Policy:
    return policy if isinstance(policy, Policy) else policy(thread_id)
