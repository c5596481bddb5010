"""The user's own decisions about a thread: cancel it, mark it replied, release a held one,
resolve a message in doubt. Each is a lifecycle move through the store; resolve --resend
sends the same bytes again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from mailer.adapters.clock import Clock
from mailer.adapters.config import Settings
from mailer.adapters.crashpoint import crash_point
from mailer.adapters.mailbox import Mailbox
from mailer.adapters.sender import SmtpSession
from mailer.adapters.store import (
    IN_DOUBT,
    SENT,
    SUBMITTING,
    MessageRow,
    Store,
    ThreadRow,
    stored_time,
)
from mailer.errors import DeliveryError, InputError, MailerError, StateError
from mailer.model import apology
from mailer.model.followup import AWAITING, CANCELLED, FOLLOWED_UP, HELD
from mailer.model.lifecycle import (
    SETTLED_NOT_SENT,
    Outcome,
    ThreadEvent,
    ThreadState,
    TransitionRefused,
    describe,
    resend_state,
    resendable,
    settle_advice,
    settles_not_sent,
)
from mailer.services import sending
from mailer.services.delivery import record_failure, settle_unrecorded, unrecorded, was_accepted
from mailer.services.passes import closed_before_release, next_due


def cancel(store: Store, thread_id: int, now: datetime) -> bool:
    """Stop the thread's follow-ups. False if it was cancelled already: running the same
    command twice reached what the user wanted, which is not an error."""
    try:
        store.set_thread_state(
            thread_id, ThreadEvent.CANCELLED, now, "cancelled", {"cancelled": "by you"}
        )
    except TransitionRefused as refused:
        if refused.current == CANCELLED:
            return False
        raise InputError(
            f"thread {thread_id} is not waiting for anything; nothing to cancel"
        ) from None
    return True


def mark_replied(store: Store, thread_id: int, now: datetime, note: str) -> bool:
    """Record an answer mailer cannot see. False if the thread is replied already (asked
    twice, the first reached what the user wanted: not an error)."""
    try:
        store.set_thread_state(
            thread_id,
            ThreadEvent.MARKED_REPLIED,
            now,
            "replied",
            {"replied_by": note or "marked by you", "replied_at": now.isoformat()},
        )
    except TransitionRefused as refused:
        if refused.current == ThreadState.REPLIED:
            return False
        raise InputError(
            f"thread {thread_id} is {describe(refused.current)}, so it is not marked replied"
            + (
                " (its apology is not known to be sent yet)"
                if refused.current == ThreadState.SENDING
                else ""
            )
        ) from None
    return True


def after_release(thread: ThreadRow) -> str:
    """What a released (or not held) thread does next, in words for the user."""
    if thread.state == FOLLOWED_UP:
        return "its last follow-up has gone: it closes as no answer when due, unless a reply comes"
    if thread.follow_ups_sent >= thread.max_follow_ups:
        return "it waits for a reply (no follow-up is set for it)"
    due, released = stored_time(thread.follow_up_due), stored_time(thread.detail.get("released_at"))
    if due is None or released is None or due.tzinfo is None or released.tzinfo is None:
        return "its follow-up goes out when due"  # (a damaged date: the plain words)
    if due <= released:
        return (
            "its follow-up is due already: it goes out on the next 'mailer check' (or the "
            "daemon's next pass), inside the sending window"
        )
    return "its follow-up goes out when due"


def release(store: Store, thread_id: int, now: datetime, settings: Settings | None = None) -> bool:
    """Let a held thread's follow-ups go again, from the state it was held in. False if it is
    not held but still open (released already: what the user wanted, not an error).

    ``settings`` date a thread whose due time the hold left stale or missing as its last
    send would have (see :func:`_due_on_release`); without them such a thread is due now."""
    thread = store.thread(thread_id)
    if thread is None:
        raise InputError(f"no thread {thread_id} in the state store")
    if thread.state in (AWAITING, FOLLOWED_UP):
        return False
    if thread.state != HELD:
        raise InputError(
            f"thread {thread_id} is {thread.state.replace('_', ' ')}, not held; nothing to release"
        )
    messages = store.messages(thread_id)
    closed = closed_before_release(store, thread)
    if closed is not None:
        # Held by an older mailer after it was closed: released, it would get the follow-up
        # that the close had ended. The table has no move back to a closed state.
        raise InputError(
            f"thread {thread_id} was {closed.replace('_', ' ')} before it was held, "
            "so it is not released",
            hint=f"run 'mailer cancel {thread_id}' to close it for good",
        )
    if not any(m.kind == "apology" and m.state == SENT for m in messages):
        # Held while its apology was in doubt: released now it would wait for a reply with
        # no follow-up due, for good. Settling the apology dates it (see mark_sent).
        raise InputError(
            f"thread {thread_id}'s apology is not known to be sent, so it is not released",
            hint=f"settle it first: 'mailer resolve {thread_id} --sent' if it arrived "
            "(a challenge-response system answering it says it did); then release",
        )
    back = thread.detail.get("held_from")
    if back not in (AWAITING, FOLLOWED_UP):
        # No held_from: held by a challenge-response system before this key was recorded
        # for one (or while its apology was sending).
        back = AWAITING
    if 0 < thread.max_follow_ups <= thread.follow_ups_sent:
        # Its last follow-up went, perhaps settled ('resolve --sent') while it was held:
        # whatever it was held from, what is left is closing as no answer.
        back = FOLLOWED_UP
    detail = {"held": "", "held_kind": "", "held_from": "", "released_at": now.isoformat()}
    move = (
        ThreadEvent.RELEASE_TO_FOLLOWED_UP
        if back == FOLLOWED_UP
        else ThreadEvent.RELEASE_TO_AWAITING
    )
    due = _due_on_release(thread, back, messages, now, settings)
    if not store.move_thread_if_still(thread_id, move, now, "released", detail, follow_up_due=due):
        raise InputError(
            f"thread {thread_id} changed meanwhile; look at 'mailer status {thread_id}'"
        )
    return True


def _due_on_release(
    thread: ThreadRow,
    back: str,
    messages: list[MessageRow],
    now: datetime,
    settings: Settings | None,
) -> datetime | None:
    """The due time a released thread needs, or None to keep the one it has.

    A send settled while the thread was held (or by an older mailer, which did not date a
    held thread) left its due time missing, or at the time of the message it was for. It gets
    the one that send would have given it (:func:`next_due`, from the last message sent),
    never earlier than now: a follow-up, or closing as no answer, is then never lost."""
    if back == AWAITING and thread.follow_ups_sent >= thread.max_follow_ups:
        return None  # no follow-up at all (max 0): it waits for a reply, with nothing due
    sent = [(stored_time(m.sent_at), m) for m in messages if m.state == SENT]
    dated = [(at, m) for at, m in sent if at is not None]
    if not dated:
        return None
    last_at, last = max(dated, key=lambda p: p[0])
    due = stored_time(thread.follow_up_due)
    if due is not None and due > last_at:
        return None  # set by the last send itself
    if settings is not None:
        due = next_due(settings, thread, last.kind, last_at)
    return now if due is None or due < now else due


def resolve(
    settings: Settings,
    store: Store,
    thread_id: int,
    *,
    sent: bool,
    clock: Clock,
    smtp: Callable[..., SmtpSession] = SmtpSession,
    mailbox: Callable[..., Mailbox] | None = None,
    not_sent: bool = False,
) -> str:
    """Settle the thread's in-doubt message: it did go (``sent``), it did not and the thread
    has moved on so nothing is to go (``not_sent``), or send it again now, with the same bytes
    and Message-ID, so a client that got both can tell they are one.

    With nothing in doubt, ``sent`` and ``not_sent`` say so and return (asked twice, the
    first reached what the user wanted); a resend is refused, as nothing can be sent."""
    thread = store.thread(thread_id)
    if thread is None:
        raise InputError(f"no thread {thread_id} in the state store")
    doubt = [m for m in store.messages(thread_id) if m.state_now == IN_DOUBT]
    if not doubt:
        if sent or not_sent:
            return "no message in doubt; nothing to settle"
        raise InputError(f"thread {thread_id} has no message in doubt; nothing is sent again")
    settings = apology.thread_settings(settings, thread)
    m = doubt[-1]
    kind = m.kind.replace("_", "-")
    if not_sent:
        return _not_arrived(store, thread, m, clock, not settings.imap.save_sent)
    if sent:
        now = clock()
        store.mark_sent(
            m.id, now, "confirmed by you", next_due(settings, thread, m.kind, now), settling=True
        )
        # It went, so it belongs in Sent; whether a copy is there already is unknown.
        try:
            _, warnings = sending.file_unfiled_copies(settings, store, mailbox=mailbox)
        except MailerError as exc:
            warnings = [f"its Sent copy is still to file: {exc}"]
        return f"{m.kind} {m.message_id} recorded as sent" + "".join(
            f"; warning: {w}" for w in warnings
        )
    if was_accepted(m):
        # In doubt only in the state store: the server took it; a resend is a second copy.
        raise InputError(
            f"thread {thread_id}: the {m.kind.replace('_', '-')} {m.message_id} WAS {m.error}; "
            "it is not sent again",
            hint=f"run 'mailer resolve {thread_id} --sent' to record it as sent",
        )
    wanted = (resend_state(m.kind),)
    if not resendable(m.kind, thread.state):  # the claim checks again; this only fails early
        raise InputError(
            f"thread {thread_id} is {describe(thread.state)}, so its {kind} is not sent again",
            hint=settle_advice(thread_id, not settings.imap.save_sent, m.kind, thread.state),
        )

    def claim() -> None:
        # Decided and claimed in one transaction, right before MAIL FROM: of several
        # resends at once, one sends and the others stop here with nothing sent.
        store.claim_resend(m.id, clock(), wanted)
        crash_point("after-submitting")

    # Connect first: if that fails, the message simply stays in doubt.
    with smtp(settings.smtp, retries=settings.retries) as session:
        try:
            reply = session.submit(
                m.envelope_from,
                m.recipients,
                m.raw,
                before_mail=claim,
                before_final_dot=lambda: store.mark_final_dot(m.id, clock()),
            )
            crash_point("after-250")
        except DeliveryError as exc:
            # Not known to be refused: it stays in doubt, as the original may have arrived.
            outcome = record_failure(store, m.id, exc, clock(), resending=True)
            if outcome is Outcome.FAILED and m.kind == "follow_up":
                # Refused for good: the thread stops there, as for a follow-up refused in a
                # pass (it stayed awaiting a reply, and the next pass queued a new one).
                store.move_thread_if_still(
                    thread_id,
                    ThreadEvent.FOLLOW_UP_REFUSED,
                    clock(),
                    "failed",
                    {"follow_up_error": str(exc)},
                )
            raise
    now = clock()
    try:
        store.mark_sent(m.id, now, reply, next_due(settings, thread, m.kind, now))
    except StateError as exc:
        # The server took it: said so, and marked so that no further --resend sends a copy.
        if not settle_unrecorded(store, m.id, reply, exc, clock()):
            raise unrecorded(m.kind, thread_id, reply, exc) from None
    sending.save_sent_copy(settings, store, m.id, m.raw, now, mailbox=mailbox)
    return f"{m.kind} {m.message_id} sent again"


def _not_arrived(
    store: Store, thread: ThreadRow, m: MessageRow, clock: Clock, provider_files_sent: bool
) -> str:
    """``resolve --not-sent``: a follow-up in doubt of a closed thread (replied, cancelled,
    bounced, closed as no answer) did not arrive, or the user cannot find out: nothing more
    goes to that thread either way. Refused for anything else, with the commands that do
    apply (see lifecycle.settles_not_sent; the store decides again in its transaction)."""
    kind = m.kind.replace("_", "-")
    if was_accepted(m):
        raise InputError(
            f"thread {thread.id}: the {kind} {m.message_id} WAS {m.error}; it did arrive",
            hint=f"run 'mailer resolve {thread.id} --sent' to record it as sent",
        )
    if not settles_not_sent(m.kind, thread.state):
        hint = settle_advice(thread.id, provider_files_sent, m.kind, thread.state)
        if m.kind == "follow_up" and resendable(m.kind, thread.state):
            hint += f"; if nothing more should go, 'mailer cancel {thread.id}' first"
        raise InputError(
            f"thread {thread.id} is {describe(thread.state)}: its {kind} in doubt is not "
            "recorded as not sent",
            hint=hint,
        )
    now = clock()
    if m.state == SUBMITTING and not store.mark_abandoned_in_doubt(
        m.id, now, "the sending process stopped after the end of the message"
    ):
        raise InputError(
            f"thread {thread.id}: the {kind} {m.message_id} is being sent by another mailer "
            "process right now",
            hint="wait for it to finish, then look at 'mailer status'",
        )
    try:
        store.mark_not_arrived(m.id, now, SETTLED_NOT_SENT)
    except TransitionRefused:  # settled meanwhile (a reply, the Sent folder)
        raise InputError(
            f"thread {thread.id}: the {kind} {m.message_id} was settled meanwhile; it is no "
            "longer in doubt",
            hint=f"look at 'mailer status {thread.id}'",
        ) from None
    return f"{m.kind} {m.message_id} recorded as not sent; nothing is sent again"
