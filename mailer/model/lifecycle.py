"""The life of a thread and of each message: their states, the one table of what may follow
what, and what a delivery error means for the message. Pure: no I/O, no SQL.

The store enforces :data:`THREAD_MOVES` and :data:`MESSAGE_MOVES` (every state UPDATE carries
``WHERE state IN`` the event's from-states), so this table is the only place a transition is
allowed. The enums' values are the strings stored in the database.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mailer.errors import DeliveryError, StateError


class ThreadState(enum.StrEnum):
    SENDING = "sending"  # the apology is not known to be sent yet
    AWAITING = "awaiting_reply"
    FOLLOWED_UP = "followed_up"  # every follow-up sent; closes as no answer when due
    REPLIED = "replied"
    BOUNCED = "bounced"
    HELD = "held"  # waits for the user's word (a challenge-response, an unclear reply, late)
    NO_ANSWER = "no_answer"
    CANCELLED = "cancelled"
    FAILED = "failed"


class MessageState(enum.StrEnum):
    QUEUED = "queued"
    SUBMITTING = "submitting"  # promised right before MAIL FROM
    SENT = "sent"
    FAILED = "failed"
    IN_DOUBT = "in_doubt"  # the whole message went; its answer did not come back


T, M = ThreadState, MessageState

# How a message the server accepted, but whose 250 could not be recorded, is marked in doubt
# (its error starts so): it went, and is never to be sent again (services/delivery.py).
UNRECORDED = "accepted by the server"
# Why a message in doubt settled with 'resolve --not-sent' failed (its error is this).
SETTLED_NOT_SENT = "settled by you as not delivered"


def settle_advice(
    thread: int | str, provider_files_sent: bool = False, kind: str = "", state: str = ""
) -> str:
    """How to settle a message in doubt. mailer files its own Sent copy only after the
    server's answer, so such a message is never in Sent, and its absence there proves
    nothing; only where the provider files sent mail itself (``save_sent = false``) does Sent
    tell. When the user cannot find out, recording it as sent is the safer mistake: a second
    copy of an apology cannot be taken back.

    ``kind`` and ``state``: the message's kind and its thread's state, when known. A message
    that may no longer be sent again (see :func:`resendable`) is not offered --resend, which
    would refuse: an apology is then recorded as sent (the duplicate guards take any other
    record as "never reached them", and a later run or send would send it again), a
    follow-up of a closed thread as sent or not sent (nothing more goes either way), and a
    follow-up of a held thread waits for the hold to be decided."""
    sent, resend = f"'mailer resolve {thread} --sent'", f"'mailer resolve {thread} --resend'"
    if state and kind and not resendable(kind, state):
        if kind == "apology":
            return (
                f"the thread is {describe(state)}, so it is not sent again: run {sent} whether "
                "or not it arrived (the safe record: nothing then ever sends it a second time)"
            )
        if settles_not_sent(kind, state):
            where = (
                "look in your Sent folder (your provider files what it accepted): "
                if provider_files_sent
                else ""
            )
            return (
                f"the thread is {describe(state)}, so it is not sent again: {where}run {sent} "
                f"if it arrived, or 'mailer resolve {thread} --not-sent' if it did not or you "
                "cannot find out (nothing more goes either way)"
            )
        if state == T.HELD:
            return (
                f"the thread is held: run {sent} if it arrived; if it did not, first 'mailer "
                f"release {thread}' (then {resend}), or 'mailer mark-replied {thread}' if the "
                "reply that held it answers it"
            )
        return (
            f"the thread is {describe(state)}: run {sent} if it arrived; if it did not, "
            f"'mailer cancel {thread}' first (then 'mailer resolve {thread} --not-sent')"
        )
    if provider_files_sent:
        return (
            "look in your Sent folder (your provider files what it accepted): run "
            f"{sent} if it is there, or {resend} if it is not"
        )
    return (
        "your Sent folder cannot tell (mailer files its copy there only after the server's "
        f"answer): run {sent} if it arrived or if you cannot find out (the safer choice: a "
        f"second copy cannot be taken back), or {resend} if you know it did not"
    )


# A thread is open while it may still get a follow-up or a reply.
OPEN_THREAD = frozenset({T.AWAITING, T.FOLLOWED_UP, T.HELD})
# Still waiting for something (a reply, a follow-up, a send to settle).
WAITING_THREAD = frozenset({T.SENDING, *OPEN_THREAD})
# Closed for good: no move leads back to a waiting state (a release is from held only;
# tests/test_lifecycle.py holds the table to it). Not failed: an apology found sent after
# all (APOLOGY_SENT) takes a failed thread back to awaiting a reply.
CLOSED_THREAD = frozenset({T.REPLIED, T.BOUNCED, T.NO_ANSWER, T.CANCELLED})
# Its next step (a follow-up, or closing as no answer) has a due time.
DUE_THREAD = frozenset({T.AWAITING, T.FOLLOWED_UP})
# A message whose fate is not settled yet.
UNSETTLED_MESSAGE = frozenset({M.QUEUED, M.SUBMITTING, M.IN_DOUBT})
# Messages that left, or may have left: what the daily cap counts.
GONE_MESSAGE = frozenset({M.SENT, M.SUBMITTING, M.IN_DOUBT})

_ALL_BUT_REPLIED = frozenset(T) - {T.REPLIED}


@dataclass(frozen=True)
class Move:
    """An event's allowed from-states and the state it leads to."""

    from_states: frozenset[str]
    to: str


class ThreadEvent(enum.StrEnum):
    APOLOGY_SENT = "apology_sent"
    APOLOGY_FAILED = "apology_failed"
    LAST_FOLLOW_UP_SENT = "last_follow_up_sent"
    FOLLOW_UP_REFUSED = "follow_up_refused"
    ADDRESS_BOUNCED = "address_bounced"  # another thread's mail to it bounced for good
    CLOSED_NO_ANSWER = "closed_no_answer"
    CANCELLED = "cancelled"  # by you ('mailer cancel')
    CAMPAIGN_CANCELLED = "campaign_cancelled"
    MARKED_REPLIED = "marked_replied"  # by you ('mailer mark-replied')
    UNREADABLE_REPLY = "unreadable_reply"  # a reply we could not read is still a reply
    REPLY = "reply"  # a human answered
    BOUNCE = "bounce"
    CHALLENGE = "challenge"  # a challenge-response system (or an unclear reply) holds it
    HOLD_FOR_REPLY = "hold_for_reply"  # another thread's unclear reply may answer this one
    FOLLOW_UP_LATE = "follow_up_late"  # it could not go for long: waits for you
    RELEASE_TO_AWAITING = "release_to_awaiting"  # 'mailer release': the hold was not for it
    RELEASE_TO_FOLLOWED_UP = "release_to_followed_up"


THREAD_MOVES: dict[ThreadEvent, Move] = {
    # "failed": a resolve --sent of an apology whose resend failed.
    ThreadEvent.APOLOGY_SENT: Move(frozenset({T.SENDING, T.FAILED}), T.AWAITING),
    ThreadEvent.APOLOGY_FAILED: Move(frozenset({T.SENDING, T.FAILED}), T.FAILED),
    ThreadEvent.LAST_FOLLOW_UP_SENT: Move(frozenset({T.AWAITING}), T.FOLLOWED_UP),
    ThreadEvent.FOLLOW_UP_REFUSED: Move(frozenset({T.AWAITING}), T.FAILED),
    ThreadEvent.ADDRESS_BOUNCED: Move(frozenset({T.AWAITING}), T.BOUNCED),
    ThreadEvent.CLOSED_NO_ANSWER: Move(frozenset({T.FOLLOWED_UP}), T.NO_ANSWER),
    ThreadEvent.CANCELLED: Move(OPEN_THREAD, T.CANCELLED),
    # "sending": an apology in doubt gets no follow-up even if it is later found sent.
    ThreadEvent.CAMPAIGN_CANCELLED: Move(frozenset({T.AWAITING, T.HELD, T.SENDING}), T.CANCELLED),
    # A cancelled thread may still get its answer by phone: worth recording.
    ThreadEvent.MARKED_REPLIED: Move(OPEN_THREAD | {T.NO_ANSWER, T.CANCELLED}, T.REPLIED),
    ThreadEvent.UNREADABLE_REPLY: Move(OPEN_THREAD, T.REPLIED),
    # Replies always win; nothing reopens a thread that a human answered.
    ThreadEvent.REPLY: Move(_ALL_BUT_REPLIED, T.REPLIED),
    ThreadEvent.BOUNCE: Move(_ALL_BUT_REPLIED, T.BOUNCED),
    # Not a closed thread: released, it would get a follow-up that was ended (decision.py).
    ThreadEvent.CHALLENGE: Move(WAITING_THREAD, T.HELD),
    ThreadEvent.HOLD_FOR_REPLY: Move(DUE_THREAD, T.HELD),
    ThreadEvent.FOLLOW_UP_LATE: Move(frozenset({T.AWAITING}), T.HELD),
    # Back to the state it was held in (detail "held_from").
    ThreadEvent.RELEASE_TO_AWAITING: Move(frozenset({T.HELD}), T.AWAITING),
    ThreadEvent.RELEASE_TO_FOLLOWED_UP: Move(frozenset({T.HELD}), T.FOLLOWED_UP),
}


# A thread held while its apology was in doubt (a challenge-response answered it): when the
# apology is found sent, APOLOGY_SENT cannot move it, but it gets the follow-up due time there
# and then, as the apology's send would have given it, so that the release that returns it to
# awaiting_reply finds it dated (and the follow-up, or closing, is never lost).
DATED_BY_APOLOGY_SENT = THREAD_MOVES[ThreadEvent.RELEASE_TO_AWAITING].from_states


def incoming_event(state: str) -> ThreadEvent:
    """The event behind a classified incoming message's new thread state."""
    return {
        T.REPLIED: ThreadEvent.REPLY,
        T.BOUNCED: ThreadEvent.BOUNCE,
        T.HELD: ThreadEvent.CHALLENGE,
    }[ThreadState(state)]


class MessageEvent(enum.StrEnum):
    SUBMIT = "submit"  # the promise right before MAIL FROM
    RESEND = "resend"  # 'mailer resolve --resend' takes an in-doubt message
    SENT = "sent"
    REQUEUE = "requeue"
    FAIL = "fail"
    DOUBT = "doubt"
    ABANDONED = "abandoned"  # submitting by a process that is gone
    DROP_QUEUED = "drop_queued"  # a queued message nobody will send any more
    # 'mailer resolve --not-sent': an in-doubt follow-up of a closed thread (a reply, a
    # cancel) is settled as not delivered; nothing is sent again.
    NOT_ARRIVED = "not_arrived"


MESSAGE_MOVES: dict[MessageEvent, Move] = {
    MessageEvent.SUBMIT: Move(frozenset({M.QUEUED}), M.SUBMITTING),
    MessageEvent.RESEND: Move(frozenset({M.IN_DOUBT, M.SUBMITTING}), M.SUBMITTING),
    MessageEvent.SENT: Move(frozenset({M.QUEUED, M.SUBMITTING, M.IN_DOUBT}), M.SENT),
    MessageEvent.REQUEUE: Move(frozenset({M.QUEUED, M.SUBMITTING}), M.QUEUED),
    MessageEvent.FAIL: Move(frozenset({M.QUEUED, M.SUBMITTING}), M.FAILED),
    MessageEvent.DOUBT: Move(frozenset({M.QUEUED, M.SUBMITTING, M.IN_DOUBT}), M.IN_DOUBT),
    MessageEvent.ABANDONED: Move(frozenset({M.SUBMITTING}), M.IN_DOUBT),
    MessageEvent.DROP_QUEUED: Move(frozenset({M.QUEUED}), M.FAILED),
    MessageEvent.NOT_ARRIVED: Move(frozenset({M.IN_DOUBT}), M.FAILED),
}


class TransitionRefused(StateError):
    """The table does not allow this event from the row's current state."""

    def __init__(self, what: str, current: str, event: str, to: str) -> None:
        super().__init__(f"{what}: cannot go from {current} to {to} ({event.replace('_', ' ')})")
        self.current, self.event, self.to = current, event, to


def allowed(event: ThreadEvent | MessageEvent) -> tuple[str, ...]:
    """The event's from-states, sorted: what the store puts in ``WHERE state IN (...)``."""
    return tuple(sorted(_move(event).from_states))


def target(event: ThreadEvent | MessageEvent) -> str:
    return _move(event).to


def apply(event: ThreadEvent | MessageEvent, current: str, what: str) -> str:
    """The state after ``event``; :class:`TransitionRefused` if the table forbids it."""
    move = _move(event)
    if current not in move.from_states:
        raise TransitionRefused(what, current, event, move.to)
    return move.to


def _move(event: ThreadEvent | MessageEvent) -> Move:
    if isinstance(event, ThreadEvent):
        return THREAD_MOVES[event]
    return MESSAGE_MOVES[event]


# --- what a delivery error means for the message --------------------------------------------


class Outcome(enum.StrEnum):
    FAILED = "failed"  # the server refused this message for good
    REQUEUE = "requeue"  # not taken, and may be taken later
    IN_DOUBT = "in_doubt"  # the whole message went; whether it was taken is unknown


# The server's own refusal of this message (5xx): kinds from sender.py.
_REFUSED = frozenset({"recipient", "permanent"})


def outcome_of(error: DeliveryError, *, resending: bool = False) -> Outcome:
    """What a delivery error means for the message it interrupted.

    Decided from ``kind`` alone: only the server's refusal fails a message; a login, TLS,
    timeout or dropped connection leaves it unsent and worth another try, so a pending
    follow-up is never lost to a network problem. A resend of an in-doubt message that does
    not complete stays in doubt: the first copy may have arrived.
    """
    if error.kind == "in-doubt":
        return Outcome.IN_DOUBT
    if error.kind in _REFUSED:
        return Outcome.FAILED
    return Outcome.IN_DOUBT if resending else Outcome.REQUEUE


def blocks_account(error: DeliveryError) -> bool:
    """True if the error is the account's, not the message's (login, certificate, TLS), and
    is not worth retrying now: nothing else from that account can go this run."""
    return outcome_of(error) is Outcome.REQUEUE and not error.temporary


# --- display, derived from the enums --------------------------------------------------------


def resend_state(kind: str) -> ThreadState:
    """The one thread state in which a message of ``kind`` in doubt may still be sent again
    ('resolve --resend'): an apology while its thread waits for it, a follow-up while its
    thread awaits a reply. A thread that has moved on (a reply, a cancel, a bounce) never
    gets it again."""
    return T.SENDING if kind == "apology" else T.AWAITING


def resendable(kind: str, thread_state: str) -> bool:
    return thread_state == resend_state(kind)


def settles_not_sent(kind: str, thread_state: str) -> bool:
    """Whether a message of ``kind`` in doubt may be settled as not sent ('resolve
    --not-sent'): a follow-up of a closed thread only. An apology recorded so would be sent
    again by a later run or send (every duplicate guard reads a failed apology as never
    having reached them), and a follow-up of a thread that may still send one would be
    followed by another (a held thread is released back to awaiting a reply)."""
    return kind == "follow_up" and thread_state in CLOSED_THREAD


def describe(state: ThreadState | MessageState | str) -> str:
    """A state in words: ``awaiting_reply`` -> ``awaiting reply``."""
    return str(state).replace("_", " ")


def message_shown(state: str, owner_alive: bool, final_dot: bool = True) -> MessageState:
    """A message's state as the user must see it: ``submitting`` by a process that is gone
    is in doubt if it reached the final-dot mark (the server may have taken it), and queued
    again if it did not (the server cannot have taken it)."""
    if state == M.SUBMITTING and not owner_alive:
        return M.IN_DOUBT if final_dot else M.QUEUED
    return MessageState(state)
