"""What one classified incoming message does to a thread (pure): the lifecycle's ``decide``.

:func:`decide` takes a snapshot of the thread as it was read, the message with its facts, the
time and the thread's timing policy, and returns a :class:`Decision`. It reads no clock and
does no I/O; the store writes a decision only if the thread is still in the state it was
decided from (see ``Store.apply_incoming``), so a decision is never made on a stale thread.

It lives beside :mod:`lifecycle` (the table) rather than in it because postponing after an
out-of-office needs the sending windows of :mod:`followup`, which itself imports the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo

from mailer.model.followup import after_return
from mailer.model.lifecycle import WAITING_THREAD, ThreadState
from mailer.model.settings import Wait, Window

T = ThreadState


@dataclass(frozen=True)
class Decision:
    """What to record for one classified message: a new state (or None) and details.

    ``postpone_to``: the follow-up's new due time; never earlier than the one it replaces.
    """

    state: str | None
    event: str
    detail: dict[str, str]
    postpone_to: datetime | None = None
    stop_follow_ups: bool = False


@dataclass(frozen=True)
class ThreadSnapshot:
    """A thread as the store last showed it: what a decision or a plan is made from.

    ``bounced_in``: another thread whose mail to this address bounced for good since this
    one was sent (read by the executor; a follow-up never goes to such an address).
    """

    id: int
    state: str
    detail: Mapping[str, str] = field(default_factory=dict)
    follow_up_due: datetime | None = None
    bounced_in: int | None = None


@dataclass(frozen=True)
class Policy:
    """A thread's timing: the recipient's zone, the sending window and the holidays."""

    tz: tzinfo
    window: Window
    holidays: frozenset[date] = frozenset()
    # ``[follow_up] hold_if_late``: a follow-up later than this past its first chance is held
    # (see plan.plan_due); None: it goes however late.
    late_after: Wait | None = None


@dataclass(frozen=True)
class Classified:
    """An incoming message matched to a thread, classified, with the facts a decision needs.

    ``hold``: an unthreaded human reply from an address several open threads went to, naming
    none of them: every one of these threads is held. ``concerns`` is False for a delivery
    report that carries this thread's Message-ID but names only other recipients.
    """

    kind: str
    subtype: str | None
    sender: str
    subject: str
    received: datetime
    reason: str = ""
    return_date: date | None = None
    status: str | None = None
    hold: tuple[int, ...] = ()
    # Held because it came before the apology went (within the clock slack), not because
    # several threads may be its subject.
    before_apology: bool = False
    concerns: bool = True
    # A bounce that names only Cc recipients of the thread (lower case): the interviewer
    # was not refused, so the thread goes on; those addresses get no follow-up.
    only_cc: tuple[str, ...] = ()


def decide(thread: ThreadSnapshot, incoming: Classified, now: datetime, policy: Policy) -> Decision:
    """Map a classified message to a thread change. Replies always win; nothing reopens a
    thread that a human answered. ``now`` is when the decision is made; the rules use the
    message's own arrival time, so deciding again later gives the same answer."""
    del now  # part of the shape every planner call shares; no rule needs it today
    if not incoming.concerns:
        return unmatched_bounce()
    if incoming.hold:
        return hold_for_reply(
            thread.state,
            sender=incoming.sender,
            subject=incoming.subject,
            received=incoming.received,
            threads=incoming.hold,
            before_apology=incoming.before_apology,
        )
    kind, subtype, received = incoming.kind, incoming.subtype, incoming.received
    if thread.state == T.REPLIED:
        return Decision(None, "ignored", {"why": "the thread is already replied"})
    if kind == "human":
        return Decision(
            T.REPLIED,
            "replied",
            {
                "replied_by": incoming.sender,
                "reply_subject": incoming.subject,
                "replied_at": received.isoformat(),
            },
            stop_follow_ups=True,
        )
    if kind == "bounce":
        reason, status = incoming.reason, incoming.status
        if incoming.only_cc and subtype == "delay":
            # Only a Cc recipient's copy is late: the interviewer's is not at risk.
            return Decision(None, "cc_delayed", {})
        if subtype == "delay":
            return Decision(None, "at_risk", {"at_risk": f"delivery delayed: {reason}"})
        if incoming.only_cc:
            known = {a for a in str(thread.detail.get("cc_bounced", "")).split(", ") if a}
            return Decision(
                None,
                "cc_bounced",
                {"cc_bounced": ", ".join(sorted(known | set(incoming.only_cc)))},
            )
        return Decision(
            T.BOUNCED,
            "bounced",
            {
                "bounce_reason": f"{subtype or 'hard'} bounce"
                f"{f' {status}' if status else ''}: {reason}",
                "bounced_at": received.isoformat(),
                # The same as fields, so nothing has to parse the words above.
                "bounce_kind": subtype or "hard",
                "bounce_status": status or "",
                "bounce_text": reason,
            },
            stop_follow_ups=True,
        )
    # An automatic answer is not a reply.
    if subtype == "challenge-response" and thread.state not in WAITING_THREAD:
        # A closed thread (cancelled, closed as no answer, bounced, failed) is not reopened
        # by it: 'mailer release' would then send a follow-up the user or the schedule had
        # ended. What it says is kept: the interviewer never saw the apology.
        return Decision(
            None,
            "auto_reply",
            {"auto_reply": "challenge-response", UNVERIFIED: True},
        )
    if subtype == "challenge-response":
        # Like a reply, it stops the queued follow-ups in the transaction that holds the
        # thread: one claimed a moment ago must not go to a filter the user has not answered.
        if thread.state == T.HELD and held_kind(thread.detail) == HELD_BY_UNCLEAR_REPLY:
            # Held already for a reply that may answer it: that question stays the one the
            # user is asked ('check'); the challenge is kept beside it, not over it.
            return Decision(None, "held", {"challenge": CHALLENGE_HOLD}, stop_follow_ups=True)
        return Decision(
            T.HELD,
            "held",
            {
                "held_kind": HELD_BY_CHALLENGE,
                "held": CHALLENGE_HOLD,
                # Where 'mailer release' returns it to: awaiting_reply, or followed_up after
                # the last follow-up (whose due time then closes it as no answer). Held while
                # the apology was in doubt (sending): none; release waits for its resolve.
                **_held_from(thread.state),
            },
            stop_follow_ups=True,
        )
    if subtype == "out-of-office":
        detail = {"auto_reply": "out of office"}
        postpone = None
        if incoming.return_date is not None:
            detail["auto_reply_until"] = incoming.return_date.isoformat()
            back = after_return(incoming.return_date, policy.tz, policy.window, policy.holidays)
            # Postponing never brings a follow-up forward: a later due time stays.
            due = thread.follow_up_due
            postpone = back if due is None or due < back else due
        return Decision(None, "auto_reply", detail, postpone_to=postpone)
    return Decision(None, "auto_reply", {"auto_reply": subtype or "automatic reply"})


# A closed thread's detail: a challenge-response filter holds its apology (status says so).
UNVERIFIED = "challenge_unverified"

# Why a thread is held (``detail["held_kind"]``); a thread held before this key existed was
# held by a challenge-response system.
HELD_BY_CHALLENGE, HELD_BY_UNCLEAR_REPLY = "challenge_response", "unclear_reply"
# A follow-up that could not go until long after it was due (see plan.plan_due).
HELD_LATE = "late_follow_up"
CHALLENGE_HOLD = (
    "a challenge-response system is holding the apology until you verify; "
    "the interviewer has not seen it"
)


def hold_for_reply(
    current_state: str,
    *,
    sender: str,
    subject: str,
    received: datetime,
    threads: tuple[int, ...],
    before_apology: bool = False,
) -> Decision:
    """A human reply with no references from an address several open threads were sent to,
    naming none of them (or several): each of ``threads`` is held, so none gets a follow-up
    the interviewer may just have answered, until the user confirms (``mark-replied``) or
    releases it. ``held_from`` keeps the state a release returns to."""
    if before_apology:
        held = (
            f"a message from {sender} ({subject!r}) came before the apology went, by this "
            "computer's clock: it may have been written before they saw it, or be the answer "
            "(if the clock is wrong)"
        )
    elif len(threads) == 1:  # (a colleague answering a forward: see watcher._read_forwarded)
        held = f"a message from {sender} with the apology's subject ({subject!r}) may be the answer"
    else:
        held = f"a reply from {sender} may answer any of threads " + ", ".join(map(str, threads))
    detail = {
        "held_kind": HELD_BY_UNCLEAR_REPLY,
        "held": held,
        "held_threads": ",".join(map(str, threads)),
        "held_reply_by": sender,
        "held_reply_subject": subject,
        "held_at": received.isoformat(),
        "held_before_apology": "yes" if before_apology else "",  # (reset by any other hold)
    }
    if current_state in (T.AWAITING, T.FOLLOWED_UP):
        return Decision(
            T.HELD, "held", {**detail, **_held_from(current_state)}, stop_follow_ups=True
        )
    if current_state == T.HELD:  # held already: still held, now for this reply too
        return Decision(None, "held", detail, stop_follow_ups=True)
    return Decision(None, "ignored", {"why": f"the thread is already {current_state}"})


def _held_from(current_state: str) -> dict[str, str]:
    """The state a release returns a thread held now to (``detail["held_from"]``): only the
    states a release can go back to; a thread already held keeps the one it has."""
    if current_state in (T.AWAITING, T.FOLLOWED_UP):
        return {"held_from": current_state}
    return {}


def hold_late(due: datetime, now: datetime, tz: tzinfo) -> dict[str, str]:
    """The detail of a thread whose follow-up is held for being late: mailer did not run
    (a laptop shut for a holiday), or could not send, from before it was due until ``now``.
    Sent now, unasked, it would reach an interviewer who may have answered by phone
    meanwhile, weeks after the user expected it to go; so it waits for their word
    (``release`` lets it go)."""
    hours = round((now - due) / timedelta(hours=1))
    days = round(hours / 24)
    late = f"{hours} hour{'s' * (hours != 1)}" if hours < 36 else f"{days} days"
    return {
        "held_kind": HELD_LATE,
        "held": (
            f"its follow-up was due {due.astimezone(tz):%a %d %b %H:%M} and has not gone in "
            f"the {late} since (mailer was not running, or could not send it)"
        ),
        "held_at": now.isoformat(),
        # An earlier hold's marks, which status would show beside this one.
        "held_before_apology": "",
        "held_threads": "",
        "held_reply_by": "",
        "held_reply_subject": "",
        **_held_from(T.AWAITING),
    }


def held_kind(detail: Mapping[str, str]) -> str:
    return detail.get("held_kind") or HELD_BY_CHALLENGE


def closed_before_hold(detail: Mapping[str, str]) -> str | None:
    """The closed state a held thread with no ``held_from`` had reached, read from the marks
    the closing moves write (cancel, close as no answer, bounce, refused follow-up): an older
    mailer let a challenge-response hold a closed thread. None if it shows none."""
    marks = (
        ("cancelled", T.CANCELLED),
        ("closed", T.NO_ANSWER),
        ("bounce_reason", T.BOUNCED),
        ("follow_up_error", T.FAILED),
    )
    if detail.get("held_from"):
        return None
    return next((str(state) for key, state in marks if detail.get(key)), None)


def unmatched_bounce() -> Decision:
    """A bounce for someone this thread was not sent to: logged against it, nothing more."""
    return Decision(None, "bounce_unmatched", {})


# A bounce report may be stamped a little before the send it answers (clock skew between
# our machine and the reporting server): it still counts.
BOUNCE_SLACK = timedelta(minutes=5)


def bounced_for_good(others: list[tuple[int, Mapping[str, str]]], since: datetime) -> int | None:
    """Of other bounced threads to the same address (id, detail), the first whose bounce was
    for good and came after ``since`` (this thread's send): a bounce from before it says
    nothing about the address now."""
    for thread_id, detail in others:
        # "bounce_kind" is the field; rows written before it only have the words.
        kind = detail.get("bounce_kind") or str(detail.get("bounce_reason", "")).split(" ")[0]
        try:
            at = datetime.fromisoformat(str(detail.get("bounced_at") or ""))
        except ValueError:
            continue  # a damaged row says nothing
        if kind == "hard" and at.tzinfo is not None and at >= since - BOUNCE_SLACK:
            return thread_id
    return None
