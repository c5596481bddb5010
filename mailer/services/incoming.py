"""The executor of a pass's plan, for what new mail does: it reads the threads a plan is made
from, and records each incoming message with the decision made for it.

:func:`scan` is a whole watch: read the new mail (:mod:`watcher`), plan
(:func:`plan.plan_incoming`), act, record the folder positions. ``mailer check`` and the
daemon run it as the first half of a pass (:mod:`check` sends what is due); the follow-up
sender runs it once more right before a send, so a reply that arrived a moment ago wins.

Nothing here decides: a decision is written only if the thread is still in the state it was
decided from; if another process moved it meanwhile, the thread is read again, the message
decided again (:func:`plan.redecide`), and the write tried again, a bounded number of times.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import partial

from mailer.adapters.clock import Clock, local_zone
from mailer.adapters.config import Settings
from mailer.adapters.mailbox import Mailbox
from mailer.adapters.store import Applied, Store, ThreadRow
from mailer.errors import ClaimError, MailerError, StateError
from mailer.model.apology import thread_settings
from mailer.model.classify import HUMAN
from mailer.model.decision import Decision, Policy, ThreadSnapshot
from mailer.model.facts import zone
from mailer.model.lifecycle import MessageState, ThreadEvent, ThreadState
from mailer.model.plan import (
    INCOMING_ACTIONS,
    Action,
    HoldThread,
    PassOver,
    RecordIncoming,
    one_line,
    plan_incoming,
    redecide,
)
from mailer.model.schedule import holidays_for
from mailer.model.settings import FollowUpSettings, Wait, late_limit
from mailer.services.watcher import commit, read_elsewhere, read_new

log = logging.getLogger("mailer.services.watcher")

# How often a write is tried again on a thread that keeps moving under it: more than two
# processes racing on one thread means something is wrong, and the pass says so.
ATTEMPTS = 3


@dataclass(frozen=True)
class Seen:
    thread_id: int
    verdict: str
    sender: str
    subject: str
    decision: Decision


def scan(settings: Settings, store: Store, box: Mailbox, clock: Clock) -> list[Seen]:
    """Look at everything new in the watched folders once and act on it. Safe to repeat:
    nothing is acted on twice."""
    reading = read_new(settings, store, box, clock)
    now = clock()
    rows = reading.threads.values()
    actions = plan_incoming(
        [snapshot(r) for r in rows], reading.messages, now, policies(settings, rows, now)
    )
    seen = act_on_mail(store, clock, actions, partial(policy_of, settings))
    commit(settings, store, box, reading)
    return seen


def look_elsewhere(
    settings: Settings, store: Store, box: Mailbox, clock: Clock, threads: list[ThreadRow]
) -> list[Seen]:
    """Act on what :func:`read_elsewhere` finds for ``threads`` (a reply in Junk or Archive
    stops its follow-up as one in INBOX does), as :func:`scan` acts on new mail."""
    reading = read_elsewhere(settings, store, box, clock, threads)
    if not reading.messages:
        return []
    now = clock()
    rows = reading.threads.values()
    actions = plan_incoming(
        [snapshot(r) for r in rows], reading.messages, now, policies(settings, rows, now)
    )
    return act_on_mail(store, clock, actions, partial(policy_of, settings))


def act_on_mail(
    store: Store,
    clock: Clock,
    actions: Iterable[Action],
    policy: Callable[[ThreadRow, datetime], Policy],
) -> list[Seen]:
    """Perform the plan's incoming actions, in order; the others are left to the caller.
    ``policy`` gives a thread's timing, for deciding again on a thread that moved."""
    seen: list[Seen] = []
    for action in actions:
        if not isinstance(action, INCOMING_ACTIONS):
            continue
        if isinstance(action, PassOver):
            pass_over(store, clock, action)
            continue
        try:
            done = _write(store, clock, policy, action)
        except MailerError:
            raise  # the store: the pass is cut short, and the folder read again next time
        except Exception as exc:  # this message: it must not stop every pass from now on
            pass_over(store, clock, PassOver(action.message, None, one_line(exc)))
            continue
        if isinstance(done, RecordIncoming):
            m = done.message
            log.debug(
                "thread %s: %s from %s (%r): %s",
                done.thread_id,
                m.label,
                m.sender,
                m.subject,
                done.decision.event,
            )
            seen.append(Seen(done.thread_id, m.label, m.sender, m.subject, done.decision))
            if m.classified is not None and m.classified.kind == HUMAN and m.refs:
                settle_answered(store, clock, done.thread_id, m.refs, m.sender)
    return seen


def settle_answered(
    store: Store, clock: Clock, thread_id: int, refs: Iterable[str], sender: str
) -> None:
    """A person's reply that quotes a message in doubt proves it arrived: it is recorded as
    sent, so nobody is asked to settle it (and it is never sent again). A message another
    live process is still submitting is left to that process."""
    thread = store.thread(thread_id, lenient=True)
    if thread is None or thread.state != ThreadState.REPLIED:
        return  # only an answered thread: settling must not schedule anything
    quoted = set(refs)
    for row in store.messages(thread_id):
        if row.message_id in quoted and row.state_now == MessageState.IN_DOUBT:
            # It went when its final dot did (the mark is there: that is what "in doubt" is).
            went = datetime.fromisoformat(row.final_dot_at) if row.final_dot_at else clock()
            try:
                store.mark_sent(
                    row.id, went, f"delivered: {sender} replied to it", None, settling=True
                )
            except ClaimError:
                continue  # settled, or taken up, by another process meanwhile
            log.info(
                "thread %s: %s %s was delivered: %s replied to it",
                thread_id,
                row.kind,
                row.message_id,
                sender,
            )


def _write(
    store: Store,
    clock: Clock,
    policy: Callable[[ThreadRow, datetime], Policy],
    action: RecordIncoming | HoldThread,
) -> RecordIncoming | HoldThread | None:
    """Write one decision, deciding again while the thread moves under it. Returns the
    action as written, or None if nothing was (seen before, or moot now)."""
    current: RecordIncoming | HoldThread | None = action
    for _ in range(ATTEMPTS):
        if current is None:
            return None
        applied = _written(store, clock, current)
        if applied is not Applied.MOVED:
            return current if applied is Applied.RECORDED else None
        row = store.thread(current.thread_id, lenient=True)
        if row is None:
            return None
        now = clock()
        current = redecide(current, snapshot(row), now, policy(row, now))
    raise StateError(
        f"thread {action.thread_id} changed {ATTEMPTS} times while a message was recorded "
        "against it; it is looked at again on the next pass"
    )


def _written(store: Store, clock: Clock, action: RecordIncoming | HoldThread) -> Applied:
    if isinstance(action, HoldThread):
        d = action.decision
        moved = store.move_thread_if_still(
            action.thread_id,
            ThreadEvent.HOLD_FOR_REPLY,
            clock(),
            d.event,
            d.detail,
            expected=action.expected,
        )
        return Applied.RECORDED if moved else Applied.MOVED
    m = action.message
    return store.apply_incoming(
        thread_id=action.thread_id,
        folder=m.place,
        uidvalidity=m.uidvalidity,
        uid=m.uid,
        message_id=m.message_id,
        sender=m.sender,
        subject=m.subject,
        verdict=m.verdict,
        now=clock(),
        decision=action.decision,
        expected_state=action.expected,
        expected_due=action.expected_due,
    )


def pass_over(store: Store, clock: Clock, action: PassOver) -> None:
    """Record a message nobody could read (once) and, if it seems to answer a thread, take
    that thread as answered."""
    m, now = action.message, clock()
    store.record_unreadable(m.place, m.uidvalidity, m.uid, action.reason, now)
    if action.thread_id is not None:
        store.move_thread_if_still(
            action.thread_id, ThreadEvent.UNREADABLE_REPLY, now, "replied", action.detail
        )


# --- what a plan is made from -----------------------------------------------------------------


def snapshot(row: ThreadRow, bounced_in: int | None = None) -> ThreadSnapshot:
    due = None
    if row.follow_up_due:
        try:
            due = datetime.fromisoformat(row.follow_up_due)
        except ValueError:  # a damaged row: no due time is better than no pass
            due = None
    return ThreadSnapshot(row.id, row.state, dict(row.detail), due, bounced_in)


def reader_zone(settings: Settings, row: ThreadRow) -> tzinfo:
    """The zone a thread's interviewer reads its times in: the one it was recorded with,
    else (none, or one this machine lacks) the sender's."""
    try:
        if row.recipient_tz:
            return zone(row.recipient_tz, "recipient_tz")
    except MailerError:  # a damaged row: a reply must still be recorded
        pass
    return local_zone(settings.sender.timezone)


def policy_of(settings: Settings, row: ThreadRow, now: datetime) -> Policy:
    """A thread's timing: its recipient's zone, its (campaign's) window, the holidays."""
    tz = reader_zone(settings, row)
    # From last year: a message may arrive after New Year for a date before it.
    years = range(now.year - 1, now.year + 2)
    return Policy(
        tz,
        thread_settings(settings, row).follow_up.window,
        holidays_for(settings.follow_up.holidays_country, years),
        _late_after(settings),
    )


def _late_after(settings: Settings) -> Wait | None:
    try:
        return late_limit(settings.follow_up.hold_if_late)
    except ValueError:  # (a config file's is checked as it is read: settings built in code)
        return late_limit(FollowUpSettings.hold_if_late)


def policies(
    settings: Settings, rows: Iterable[ThreadRow], now: datetime
) -> Callable[[int], Policy]:
    """Each thread's policy, built before planning (the planner reads no settings)."""
    table = {r.id: policy_of(settings, r, now) for r in rows}
    return table.__getitem__
