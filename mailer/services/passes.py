"""One pass of the follow-up work, shared by ``mailer check`` and every tick of the daemon:
read the new mail, settle in-doubt sends, plan (:func:`plan.plan_pass`), then act: record
what the mail says, close finished threads, send the follow-ups due.

Our own tables are the truth; this pass can run at any time, any number of times, and never
sends a follow-up twice or after a reply.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial

from mailer.adapters.clock import Clock, local_zone
from mailer.adapters.config import Settings, account_label
from mailer.adapters.crashpoint import crash_point
from mailer.adapters.mailbox import Mailbox
from mailer.adapters.sender import SmtpSession
from mailer.adapters.store import (
    FAILED,
    QUEUED,
    SENT,
    SUBMITTING,
    MessageRow,
    Store,
    ThreadRow,
    stored_time,
)
from mailer.errors import ClaimError, DeliveryError, MailerError, StateError
from mailer.model import apology
from mailer.model.composer import Composer, build_message, compose_follow_up, quote_original
from mailer.model.decision import (
    HELD_BY_UNCLEAR_REPLY,
    HELD_LATE,
    ThreadSnapshot,
    bounced_for_good,
    closed_before_hold,
    held_kind,
    hold_late,
)
from mailer.model.facts import Facts
from mailer.model.followup import AWAITING, HELD, REPLIED
from mailer.model.lifecycle import (
    DUE_THREAD,
    MessageState,
    Outcome,
    ThreadEvent,
    ThreadState,
    TransitionRefused,
    describe,
    settle_advice,
)
from mailer.model.plan import (
    Action,
    BounceAddress,
    CloseNoAnswer,
    HoldLate,
    SendFollowUp,
    WaitForWindow,
    plan_pass,
)
from mailer.services import sending
from mailer.services.delivery import (
    daily_room,
    record_failure,
    settle_unrecorded,
    was_accepted,
)
from mailer.services.incoming import (
    Seen,
    act_on_mail,
    look_elsewhere,
    policies,
    policy_of,
    reader_zone,
    scan,
    snapshot,
)
from mailer.services.watcher import Reading, commit, read_new

log = logging.getLogger("mailer.services.passes")


@dataclass
class PassReport:
    seen: list[Seen] = field(default_factory=list)
    sent: list[tuple[int, str]] = field(default_factory=list)  # (thread, Message-ID)
    settled: list[str] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # threads that wait for the user's word
    problems: list[str] = field(default_factory=list)
    # (Message-ID, what to tell the user) for every message in doubt: it waits for the user.
    in_doubt: list[tuple[str, str]] = field(default_factory=list)
    imap_failed: bool = False  # the connection may be broken: open a new one next time
    stopped: bool = False  # asked to stop (SIGTERM to 'check'): ended after the step it was on

    def merge(self, other: PassReport, account: str) -> None:
        self.seen += other.seen
        self.sent += other.sent
        self.settled += other.settled
        self.closed += other.closed
        self.waiting += other.waiting
        self.held += other.held
        where = f"{account_label(account)}: " if account else ""
        self.problems += [f"{where}{p}" for p in other.problems]
        self.imap_failed = self.imap_failed or other.imap_failed
        self.stopped = self.stopped or other.stopped


def run_pass_all(
    settings: Settings,
    store: Store,
    clock: Clock,
    *,
    mailbox: Callable[..., Mailbox] = Mailbox,
    smtp: Callable[..., SmtpSession] = SmtpSession,
    stop: threading.Event | None = None,
) -> PassReport:
    """One pass for every configured account, each in its own mailbox; one report."""
    return every_account(
        settings,
        store,
        lambda account: run_pass(account, store, clock, mailbox=mailbox, smtp=smtp, stop=stop),
        stop,
    )


def check_all(
    settings: Settings, store: Store, clock: Clock, stop: threading.Event | None = None
) -> PassReport:
    """``mailer check``: one pass for every account. On a shared store (PostgreSQL) a daemon
    may hold an account, or start while the pass runs: the pass takes the accounts' leases
    as a daemon would (see leases.check_under_leases). On SQLite the store's lock, held by
    the caller, already says no daemon runs. ``stop`` set (SIGTERM): the pass ends after
    the step it is on (an account's reading, one follow-up), its report ``stopped``."""
    if store.url.startswith("sqlite"):
        return run_pass_all(settings, store, clock, stop=stop)
    from mailer.services.leases import check_under_leases

    return check_under_leases(
        settings, store, lambda account: run_pass(account, store, clock, stop=stop), stop
    )


def every_account(
    settings: Settings,
    store: Store,
    one_pass: Callable[[Settings], PassReport],
    stop: threading.Event | None = None,
) -> PassReport:
    """``one_pass`` for each configured account, merged into one report, plus a problem
    for open threads whose account is no longer configured (``check`` and the daemon).
    Once ``stop`` is set no further account is begun."""
    total = PassReport()
    for name in settings.account_names:
        if stop is not None and stop.is_set():
            total.stopped = True
            break
        total.merge(one_pass(settings.for_account(name)), name)
    total.problems += orphans(settings, store)
    total.held += held(store)
    # Rows passed over because they cannot be read: named on every pass, never silent.
    total.problems += [f"state store: {line}" for line in store.damaged]
    store.damaged.clear()
    # Every account's, and after every pass, even one whose mailbox could not be reached:
    # a message in doubt waits for the user, and is never left to wait in silence.
    # (Sent tells only where every account's provider files sent mail itself.)
    provider_files = not any(settings.for_account(a).imap.save_sent for a in settings.account_names)
    total.in_doubt = [
        (m.message_id, in_doubt_line(m, provider_files, _thread_state(store, m)))
        for m in store.unsettled_messages()
    ]
    return total


def accepted_unrecorded(m: MessageRow, reply: str, exc: StateError) -> str:
    """The line for a follow-up the server accepted whose ``mark_sent`` failed (and that
    :func:`settle_unrecorded` found not recorded after all)."""
    return (
        f"thread {m.thread_id}: the follow-up {m.message_id} WAS accepted by the server "
        f"({reply}), but recording it failed: {exc}; it stays in doubt and mailer never sends "
        f"it again (do not send it again; run 'mailer resolve {m.thread_id} --sent' when the "
        "state store is writable)"
    )


def _thread_state(store: Store, m: MessageRow) -> str:
    """The state of the message's thread ("" if it cannot be read): what may settle it."""
    thread = store.thread(m.thread_id, lenient=True)
    return thread.state if thread is not None else ""


def in_doubt_line(m: MessageRow, provider_files_sent: bool = False, thread_state: str = "") -> str:
    """What to tell the user about a message in doubt, with the commands that settle it
    (``thread_state``: see settle_advice)."""
    kind = m.kind.replace("_", "-")
    if was_accepted(m):
        return (
            f"thread {m.thread_id}: {kind} {m.message_id} to {', '.join(m.recipients)} is in "
            f"doubt only in the state store: it was {m.error}; do not send it again: run "
            f"'mailer resolve {m.thread_id} --sent'"
        )
    return (
        f"thread {m.thread_id}: {kind} {m.message_id} to {', '.join(m.recipients)} is in doubt "
        "(the connection or the process was lost after the end of the message, so it may have "
        f"been delivered): {settle_advice(m.thread_id, provider_files_sent, m.kind, thread_state)}"
    )


def orphans(settings: Settings, store: Store) -> list[str]:
    """Open threads whose account is no longer configured: nobody watches their replies or
    sends their follow-ups, so say so on every pass rather than let them wait in silence."""
    return [
        f"thread(s) {', '.join(map(str, ids))} were sent from account {name!r}, which is not "
        f"in {settings.path} any more: their replies are not watched and their follow-ups "
        "wait until it is configured again"
        for name, ids in store.open_threads_by_account(other_than=settings.account_names).items()
    ]


def closed_before_release(store: Store, thread: ThreadRow) -> str | None:
    """The closed state a held thread had reached before it was held (an older mailer let a
    challenge-response hold any state but replied), or None: a release would reopen it.
    A refused apology (thread failed) writes no mark in the thread: its message says it."""
    closed = closed_before_hold(thread.detail)
    if closed is not None or thread.sent_at is not None or thread.detail.get("held_from"):
        return closed
    refused = any(m.kind == "apology" and m.state == FAILED for m in store.messages(thread.id))
    return ThreadState.FAILED if refused else None


def held(store: Store) -> list[str]:
    """Every held thread, with the command that settles it: named on every pass (the daemon
    once a day), since no follow-up goes out for it until the user decides."""
    lines = []
    for t in store.held_threads():
        closed = closed_before_release(store, t)
        if closed is not None:
            # Held by an older mailer after it was closed: a release would reopen it.
            lines.append(
                f"thread {t.id} ({t.company}) was {describe(closed)} before a challenge-response "
                f"system held it; run 'mailer cancel {t.id}' to close it for good"
            )
        elif held_kind(t.detail) == HELD_LATE:
            lines.append(
                f"thread {t.id} ({t.company}) is held: {t.detail.get('held', 'a late follow-up')}"
                f"; run 'mailer release {t.id}' to let it go on the next pass (inside the "
                f"sending window), 'mailer mark-replied {t.id}' if they have answered, or "
                f"'mailer cancel {t.id}' to send nothing more"
            )
        elif held_kind(t.detail) == HELD_BY_UNCLEAR_REPLY:
            # A challenge-response may hold it as well (kept beside the reply, not over it).
            also = "; a challenge-response system holds it too" if t.detail.get("challenge") else ""
            lines.append(
                f"thread {t.id} ({t.company}) is held: {t.detail.get('held', 'an unclear reply')}"
                f"; if it answers this one, run 'mailer mark-replied {t.id}', otherwise "
                f"'mailer release {t.id}' to let its follow-up go{also}"
            )
        else:
            # Held while its apology was in doubt: release waits for the apology's resolve.
            first = f"'mailer resolve {t.id} --sent', then " if t.sent_at is None else ""
            lines.append(
                f"thread {t.id} ({t.company}) is held by a challenge-response system; once you "
                f"have answered it, run {first}'mailer release {t.id}' (or 'mailer mark-replied "
                f"{t.id}')"
            )
    return lines


def run_pass(
    settings: Settings,
    store: Store,
    clock: Clock,
    *,
    mailbox: Callable[..., Mailbox] = Mailbox,
    smtp: Callable[..., SmtpSession] = SmtpSession,
    box: Mailbox | None = None,
    stop: threading.Event | None = None,
) -> PassReport:
    """One pass for the account ``settings`` speak for. With ``box`` (the daemon's connection,
    kept between passes) it is used and left open; otherwise one is opened and closed here.
    Once ``stop`` is set no further follow-up is begun (see :func:`send_due`)."""
    report = PassReport()
    own = box is None
    if box is None:
        try:
            box = mailbox(settings.imap)
            box.connect()
        except MailerError as exc:
            # Never assume there was no reply just because the server is down.
            report.problems.append(f"cannot look for replies, so no follow-up goes out now: {exc}")
            report.imap_failed = True
            return report
    try:
        try:
            reading = read_new(settings, store, box, clock)
        except MailerError as exc:
            report.problems.append(f"cannot look for replies, so no follow-up goes out now: {exc}")
            report.imap_failed = True
            return report
        filed, warnings = sending.file_unfiled_copies(settings, store, box)
        if filed:
            log.info("filed %d Sent cop(ies) an interrupted command had left", filed)
        report.problems += warnings
        try:
            settle_in_doubt(settings, store, box, clock, report)
        except MailerError as exc:  # settling can wait; due follow-ups should not
            report.problems.append(f"could not settle in-doubt messages: {exc}")
        try:
            actions = _plan(settings, store, reading, clock())
            report.seen = act_on_mail(store, clock, actions, partial(policy_of, settings))
            commit(settings, store, box, reading)
        except MailerError as exc:
            report.problems.append(f"cannot look for replies, so no follow-up goes out now: {exc}")
            report.imap_failed = True
            return report
        notify_replies(settings, report.seen, smtp)
        first_seen = len(report.seen)
        send_due(settings, store, box, clock, report, smtp, actions, stop)
        # Replies the last look before a follow-up found (in Junk, say).
        notify_replies(settings, report.seen[first_seen:], smtp)
    finally:
        if own:
            box.close()
    return report


def _plan(settings: Settings, store: Store, reading: Reading, now: datetime) -> list[Action]:
    """The pass's plan, from the threads as they are now (after settling): those the new
    mail concerns, and those whose next step is due."""
    rows = {t.id: t for t in store.due_threads(now, settings.account)}
    due = set(rows)
    for thread_id in reading.threads:
        if thread_id not in rows:
            row = store.thread(thread_id, lenient=True)
            if row is not None:
                rows[thread_id] = row
    reading.threads.update(rows)
    awaiting = [row for row in rows.values() if row.state == AWAITING and row.id in due]
    # One read for all of them, not one per thread.
    bounced = store.bounced_threads_to({row.recipient for row in awaiting})
    threads: list[ThreadSnapshot] = []
    for row in rows.values():
        bounced_in = None
        if row.state == AWAITING and row.id in due:
            # No follow-up goes to an address that has bounced for good since this thread's
            # apology went.
            sent_at = datetime.fromisoformat(row.sent_at) if row.sent_at else now
            others = [b for b in bounced.get(row.recipient.lower(), []) if b[0] != row.id]
            bounced_in = bounced_for_good(others, sent_at)
        threads.append(snapshot(row, bounced_in))
    return plan_pass(threads, reading.messages, now, policies(settings, rows.values(), now))


def settle_in_doubt(
    settings: Settings, store: Store, box: Mailbox, clock: Clock, report: PassReport
) -> None:
    """A send cut off before the final dot of DATA is requeued: the server took nothing. One
    cut off after it is in doubt. Where the provider files sent mail itself, the Sent folder
    proves it went; otherwise the user decides (``mailer resolve``)."""
    for m in store.requeue_abandoned(clock(), settings.account):
        report.settled.append(
            f"thread {m.thread_id}: {m.kind.replace('_', '-')} {m.message_id} requeued: its "
            "process stopped before the final dot, so the server took nothing"
        )
    for m in store.unsettled_messages(settings.account):
        if m.state == SUBMITTING and not store.mark_abandoned_in_doubt(
            m.id,
            clock(),
            "the sending process stopped inside the SMTP "
            "transaction; it may or may not have been delivered",
        ):
            continue  # its process came back to life under us: it is not ours to settle
        if settings.imap.save_sent:
            continue  # we file Sent ourselves, after the 250: its absence proves nothing
        folder = box.sent_folder()
        if box.contains_message_id(folder, m.message_id):
            thread = store.thread(m.thread_id)
            assert thread is not None
            now = clock()
            try:
                store.mark_sent(
                    m.id,
                    now,
                    f"found in {folder}",
                    next_due(settings, thread, m.kind, now),
                    settling=True,
                )
            except (ClaimError, TransitionRefused):
                continue  # settled, or taken up, by another process meanwhile ('resolve')
            report.settled.append(
                f"thread {m.thread_id}: {m.kind} {m.message_id} found in {folder}"
            )


def next_due(
    settings: Settings, thread: ThreadRow, kind: str, sent_at: datetime
) -> datetime | None:
    """After the apology: the first follow-up. After a follow-up: the next one, or (after the
    last) the moment the thread is closed as no answer."""
    policy = apology.thread_settings(settings, thread)
    # The zone the thread was recorded with (the interviewer's, or the one its interview was
    # written in); a thread from before that was stored has its facts' interviewer_tz.
    zone = thread.recipient_tz or str(thread.facts.get("interviewer_tz", ""))
    return sending.due_after(policy, sent_at, zone) or (None if kind == "apology" else sent_at)


def send_due(
    settings: Settings,
    store: Store,
    box: Mailbox,
    clock: Clock,
    report: PassReport,
    smtp: Callable[..., SmtpSession],
    actions: list[Action],
    stop: threading.Event | None = None,
) -> None:
    """Perform the plan's due-time actions, in order, over one SMTP connection. Once ``stop``
    is set none is begun: what is not done stays due for the next pass."""
    session: SmtpSession | None = None
    look = LastLook(
        settings,
        store,
        box,
        clock,
        [a.thread_id for a in actions if isinstance(a, SendFollowUp | CloseNoAnswer)],
    )
    try:
        for action in actions:
            if stop is not None and stop.is_set():
                report.stopped = True
                break
            if isinstance(action, CloseNoAnswer):
                # A reply to the follow-up filed as junk, or archived, is looked for first:
                # it would make the thread replied, not "no answer".
                try:
                    report.seen += look.before(action.thread_id)
                except MailerError as exc:
                    report.problems.append(
                        f"thread {action.thread_id}: not closed this time: {exc}"
                    )
                    continue  # (still due: the next pass closes it)
                if store.move_thread_if_still(
                    action.thread_id,
                    ThreadEvent.CLOSED_NO_ANSWER,
                    clock(),
                    "no_answer",
                    {"closed": "no reply after the last follow-up"},
                ):
                    report.closed.append(action.thread_id)
            elif isinstance(action, WaitForWindow):
                report.waiting.append(
                    f"thread {action.thread_id}: due, waiting for the sending window "
                    f"({action.until:%a %H:%M %Z})"
                )
            elif isinstance(action, BounceAddress):
                store.move_thread_if_still(
                    action.thread_id,
                    ThreadEvent.ADDRESS_BOUNCED,
                    clock(),
                    "bounced",
                    {
                        "bounce_reason": f"the address bounced for good in thread {action.bounced_in}",
                        "bounce_kind": "earlier",
                        "bounced_in": str(action.bounced_in),
                    },
                )
            elif isinstance(action, HoldLate):
                # Listed with the other held threads at the end of the pass (see held).
                thread = store.thread(action.thread_id)
                if thread is not None and _still_late(store, thread, action):
                    now = clock()
                    store.move_thread_if_still(
                        thread.id,
                        ThreadEvent.FOLLOW_UP_LATE,
                        now,
                        "held",
                        hold_late(action.due, now, reader_zone(settings, thread)),
                        expected=AWAITING,
                    )
            elif isinstance(action, SendFollowUp):
                thread = store.thread(action.thread_id)
                if thread is None:
                    continue
                room = daily_room(settings, store, clock())
                if room is not None and room <= 0:
                    # The cap counts every message of the day, follow-ups included: this
                    # one stays due and goes on the first pass after midnight.
                    report.waiting.append(
                        f"thread {thread.id}: due, held back: the daily cap of "
                        f"{settings.daily_cap} is reached"
                    )
                    continue
                try:
                    session = _send_one(
                        settings, store, box, clock, report, smtp, thread, session, look
                    )
                except MailerError as exc:
                    # One thread's trouble (a template error, a lost connection) must not hold
                    # back the others; anything claimed stays queued for the next pass.
                    report.problems.append(
                        f"thread {thread.id}: follow-up not sent this time: {exc}"
                    )
                    if session is not None:
                        session.close()
                    session = None
    finally:
        if session is not None:
            session.close()


def _still_late(store: Store, thread: ThreadRow, action: HoldLate) -> bool:
    """Whether a thread planned to be held as late still is: due when the plan read it (an
    out-of-office found by the last look before another follow-up may have moved it), and
    with no follow-up that may have gone (in doubt, or cut off inside its SMTP transaction):
    that one is the user's to settle ('resolve'), not a follow-up that could not go."""
    if stored_time(thread.follow_up_due) != action.due:
        return False
    return not any(
        m.kind == "follow_up" and m.state_now in (MessageState.SUBMITTING, MessageState.IN_DOUBT)
        for m in store.messages(thread.id)
    )


# A last look older than this is taken again before the next follow-up goes (a pass sending
# many follow-ups over a slow server).
LOOK_AGAIN_AFTER = 60.0


class LastLook:
    """The look outside the watched folders right before follow-ups go (see
    :func:`mailer.services.watcher.read_elsewhere`), taken once for all the threads whose
    follow-ups a pass sends: a folder is opened once, not once per follow-up (a campaign's
    follow-ups fall due together, and a company mailbox may have a hundred folders). Taken
    when the first of them is about to go, and again for those left once it is
    ``LOOK_AGAIN_AFTER`` seconds old."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        box: Mailbox,
        clock: Clock,
        thread_ids: list[int],
        elapsed: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings, self.store, self.box, self.clock = settings, store, box, clock
        self.left = list(dict.fromkeys(thread_ids))  # not yet about to go, in pass order
        self.elapsed = elapsed
        self.taken: float | None = None
        self.covered: set[int] = set()

    def before(self, thread_id: int) -> list[Seen]:
        """What the look finds, acted on (each message once), before ``thread_id``'s
        follow-up goes: taken now unless a look this recent covered the thread already."""
        fresh = self.taken is not None and self.elapsed() - self.taken < LOOK_AGAIN_AFTER
        if thread_id in self.left:
            self.left.remove(thread_id)  # (whatever comes of its look and its sending)
        seen: list[Seen] = []
        if not (fresh and thread_id in self.covered):
            ids = [thread_id, *self.left]
            rows = [self.store.thread(i, lenient=True) for i in ids]
            # Only threads still waiting for their follow-up or their close: a look for the
            # others would change nothing this pass.
            threads = [
                t for t in rows if t is not None and (t.id == thread_id or t.state in DUE_THREAD)
            ]
            # Counted as taken only once it is done: a look that failed covers nobody, and
            # the next follow-up takes its own.
            self.taken, self.covered = None, set()
            started = self.elapsed()
            seen = look_elsewhere(self.settings, self.store, self.box, self.clock, threads)
            self.taken, self.covered = started, {t.id for t in threads}
        return seen


def _send_one(
    settings: Settings,
    store: Store,
    box: Mailbox,
    clock: Clock,
    report: PassReport,
    smtp: Callable[..., SmtpSession],
    thread: ThreadRow,
    session: SmtpSession | None,
    look: LastLook,
) -> SmtpSession | None:
    composed = build_follow_up(settings, store, thread, clock())
    row_id = store.claim_follow_up(
        thread.id,
        clock(),
        message_id=composed.message_id,
        raw=composed.raw,
        envelope_from=settings.sender.address,
        recipients=composed.recipients,
    )
    if row_id is None:
        return session
    crash_point("after-claim")
    opened = session is None
    if session is None:
        # Connected (TLS, sign-in) before the last look, not after: a reply that comes
        # while a slow server answers must not be missed.
        try:
            session = smtp(settings.smtp, retries=settings.retries)
            session.connect()
        except MailerError as exc:
            # The account or the server, not this message: keep it queued for later.
            report.problems.append(f"thread {thread.id}: follow-up will be retried: {exc}")
            return None
    # Look once more right before sending: a reply may have arrived a moment ago, or been
    # filed (as junk, by the user's archiving) where the watched folders do not show it.
    try:
        # (reported with the pass's own, and notified: a reply found in Junk is one the
        # user may not have seen)
        report.seen += scan(settings, store, box, clock)
        report.seen += look.before(thread.id)
    except BaseException:
        if opened:  # (the caller closes only the session it handed in)
            session.close()
        raise
    row, thread_state = store.message_and_thread_state(row_id)
    if thread_state != AWAITING or row.state != QUEUED:
        log.info("thread %s: follow-up not sent: the thread is now %s", thread.id, thread_state)
        return session
    try:
        reply = sending.submit(store, session, row_id, clock, row)
    except DeliveryError as exc:
        outcome = record_failure(store, row_id, exc, clock())
        if outcome is Outcome.IN_DOUBT:
            report.problems.append(f"thread {thread.id}: follow-up in doubt: {exc}")
            return None
        if outcome is Outcome.REQUEUE:
            # Not delivered, and the server may take it later: it stays queued.
            report.problems.append(f"thread {thread.id}: follow-up will be retried: {exc}")
            return None
        store.move_thread_if_still(
            thread.id,
            ThreadEvent.FOLLOW_UP_REFUSED,
            clock(),
            "failed",
            {"follow_up_error": str(exc)},
        )
        report.problems.append(f"thread {thread.id}: follow-up refused: {exc}")
        return session
    sent_at = clock()
    try:
        store.mark_sent(row_id, sent_at, reply, next_due(settings, thread, "follow_up", sent_at))
    except StateError as exc:
        # Not "not sent this time": the server took it. Say so, as a one-shot apology does;
        # unless the row says it was recorded after all.
        if not settle_unrecorded(store, row_id, reply, exc, clock()):
            report.problems.append(accepted_unrecorded(row, reply, exc))
            return session
        log.warning(
            "thread %s: the follow-up %s: its record reported an error (%s), but it was "
            "recorded after all",
            thread.id,
            row.message_id,
            exc,
        )
    crash_point("after-sent")
    sending.save_sent_copy(settings, store, row_id, row.raw, sent_at, box=box)
    report.sent.append((thread.id, row.message_id))
    return session


def build_follow_up(settings: Settings, store: Store, thread: ThreadRow, now: datetime):
    """The follow-up for a thread: ``Re:`` the original, threaded, quoting it if configured."""
    settings = apology.thread_settings(settings, thread)
    facts = Facts.from_record(thread.facts)
    if bounced := str(thread.detail.get("cc_bounced", "")):
        # A Cc address that bounced gets no follow-up; the interviewer still does.
        gone = set(bounced.split(", "))
        facts = replace(facts, cc=tuple(a for a in facts.cc if a.lower() not in gone))
    messages = store.messages(thread.id)
    root = next(m for m in messages if m.kind == "apology")
    # The quote's "On ... wrote:" in the sender's own zone, as their mail client would write
    # it; "my message of <day>" in the body in the interviewer's, as the body's other times.
    sent = datetime.fromisoformat(root.sent_at or root.created_at)
    sent_at = sent.astimezone(local_zone(settings.sender.timezone))
    from mailer.adapters.templatecache import template_cache

    draft = compose_follow_up(
        Composer(settings.templates_dir, compiled_cache=template_cache),
        facts,
        settings.sender,
        now,
        thread.subject,
        sent.astimezone(reader_zone(settings, thread)),
    )
    quote = None
    if settings.follow_up.quote_original:
        text, wrote = _plain_text(root)
        quote = quote_original(text, sent_at, wrote or settings.sender.name, settings.sender.locale)
    refs = " ".join(m.message_id for m in messages if m.state == SENT)
    return build_message(
        draft,
        facts,
        settings.sender,
        now,
        html_part=settings.html,
        in_reply_to=root.message_id,
        references=refs or root.message_id,
        quote=quote,
    )


def _plain_text(m: MessageRow) -> tuple[str, str]:
    """The message's plain text, and the name it went out under: the quote says who wrote
    it as the interviewer saw it, not as the config names the sender today (a name changed
    since, or another account's)."""
    from email import message_from_bytes
    from email.policy import default

    msg = message_from_bytes(m.raw, policy=default)
    body = msg.get_body(("plain",))
    try:
        addresses = msg["From"].addresses if msg["From"] is not None else ()
        name = addresses[0].display_name if addresses else ""
    except (AttributeError, IndexError, ValueError):  # a damaged header: today's name
        name = ""
    return (body.get_content() if body is not None else ""), name


def notify_replies(settings: Settings, seen: list[Seen], smtp: Callable[..., SmtpSession]) -> None:
    """Optionally email the user when the interviewer answers (best effort)."""
    # A reply that held threads is an answer too, and one the user must act on. (decide and
    # hold_for_reply name these events after the state they lead to.)
    replies = [s for s in seen if s.decision.event in (REPLIED, HELD)]
    if not settings.watch.notify or not replies:
        return
    from email.message import EmailMessage
    from email.utils import make_msgid

    try:
        with smtp(settings.smtp, retries=1) as session:
            for s in replies:
                msg = EmailMessage()
                msg["From"] = settings.sender.address
                msg["To"] = settings.sender.address
                msg["Message-ID"] = make_msgid(domain=settings.sender.address.rpartition("@")[2])
                held_ids = s.decision.detail.get("held_threads", str(s.thread_id))
                if s.decision.event == HELD and "," not in held_ids:
                    # One thread: a message with its subject from an address it does not
                    # know (a colleague answering a forward).
                    msg["Subject"] = f"mailer: {s.sender} wrote; thread {held_ids} held"
                    msg.set_content(
                        f"{s.sender} wrote ({s.subject!r}) with your apology's subject: "
                        f"thread {held_ids} gets no follow-up until you decide.\n"
                        f"If it answers your apology: mailer mark-replied {held_ids}\n"
                        f"If not: mailer release {held_ids}\n"
                    )
                elif s.decision.event == HELD:
                    msg["Subject"] = f"mailer: {s.sender} replied; thread(s) {held_ids} held"
                    msg.set_content(
                        f"{s.sender} wrote ({s.subject!r}) without saying which apology it "
                        f"answers: threads {held_ids} get no follow-up until you decide.\n"
                        "For the one it answers: mailer mark-replied ID\n"
                        "For the others: mailer release ID\n"
                    )
                else:
                    msg["Subject"] = f"mailer: {s.sender} replied (thread {s.thread_id})"
                    msg.set_content(
                        f"{s.sender} answered your apology. No follow-up will be sent.\n"
                    )
                session.submit(settings.sender.address, (settings.sender.address,), msg.as_bytes())
    except MailerError as exc:
        log.warning("could not send the reply notification: %s", exc)
