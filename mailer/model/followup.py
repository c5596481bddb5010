"""Follow-up policy (pure): when one may go out, and what an incoming message does to a thread.

No clock, no I/O: every function takes the times it needs, so tests can drive it freely.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from mailer.model.lifecycle import OPEN_THREAD, ThreadState
from mailer.model.lifecycle import describe as describe_state
from mailer.model.schedule import Wait, follow_up_due, is_business_day
from mailer.model.settings import Window


def _open_on(day: date, window: Window, holidays: frozenset[date] | set[date]) -> bool:
    return day.weekday() in window.days and day not in holidays


def next_in_window(
    moment: datetime,
    tz: tzinfo,
    window: Window,
    holidays: frozenset[date] | set[date] = frozenset(),
) -> datetime:
    """The earliest instant at or after ``moment`` inside the window (DST-correct)."""
    if window.always:
        return moment
    local = moment.astimezone(tz)
    for offset in range(0, 370):
        day = local.date() + timedelta(days=offset)
        if not _open_on(day, window, holidays):
            continue
        # Wall-clock times are built per day, so a DST change moves the instant, not the hour.
        opens = datetime.combine(day, window.start, tzinfo=tz)
        closes = (
            datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
            if window.end == time(0, 0)
            else datetime.combine(day, window.end, tzinfo=tz)
        )
        if local < opens:
            return opens
        if local < closes:
            return local
    raise ValueError("no sending day in the next year: check follow_up.window_days and holidays")


def first_due(
    sent_at: datetime,
    wait: Wait,
    tz: tzinfo,
    window: Window,
    holidays: frozenset[date] | set[date] = frozenset(),
) -> datetime:
    """When the follow-up becomes due: after the wait, at the next open moment."""
    return next_in_window(
        follow_up_due(sent_at.astimezone(tz), wait, holidays), tz, window, holidays
    )


def after_return(
    return_date: date,
    tz: tzinfo,
    window: Window,
    holidays: frozenset[date] | set[date] = frozenset(),
) -> datetime:
    """An out-of-office says they are back on ``return_date``: the next business day after it."""
    day = return_date + timedelta(days=1)
    while not is_business_day(day, holidays):
        day += timedelta(days=1)
    start = window.start if not window.always else time(9, 0)
    return next_in_window(datetime.combine(day, start, tzinfo=tz), tz, window, holidays)


def send_time(
    due: datetime,
    now: datetime,
    tz: tzinfo,
    window: Window,
    holidays: frozenset[date] | set[date] = frozenset(),
) -> datetime:
    """When a due follow-up may actually go: never at night, never before it is due.

    An overdue follow-up (the daemon was down) waits for the next open moment.
    """
    return next_in_window(max(due, now), tz, window, holidays)


# --- what an incoming message does to a thread ----------------------------------------------

# Thread states (lifecycle.ThreadState), under the names the callers know. A thread is open
# while it may still get a follow-up or a reply.
AWAITING, FOLLOWED_UP = ThreadState.AWAITING, ThreadState.FOLLOWED_UP
REPLIED, BOUNCED, HELD = ThreadState.REPLIED, ThreadState.BOUNCED, ThreadState.HELD
NO_ANSWER, CANCELLED, FAILED = ThreadState.NO_ANSWER, ThreadState.CANCELLED, ThreadState.FAILED
OPEN_STATES = OPEN_THREAD


@dataclass(frozen=True)
class Decision:
    """What to record for one classified message: a new state (or None) and details."""

    state: str | None
    event: str
    detail: dict[str, str]
    postpone_to: datetime | None = None
    stop_follow_ups: bool = False


def decide(
    kind: str,
    subtype: str | None,
    current_state: str,
    *,
    sender: str,
    subject: str,
    received: datetime,
    reason: str,
    return_date: date | None,
    status: str | None,
    tz: tzinfo,
    window: Window,
    holidays: frozenset[date] | set[date] = frozenset(),
) -> Decision:
    """Map a classifier verdict to a thread change. Replies always win; nothing reopens a
    thread that a human answered."""
    if current_state == REPLIED:
        return Decision(None, "ignored", {"why": "the thread is already replied"})
    if kind == "human":
        return Decision(
            REPLIED,
            "replied",
            {"replied_by": sender, "reply_subject": subject, "replied_at": received.isoformat()},
            stop_follow_ups=True,
        )
    if kind == "bounce":
        if subtype == "delay":
            return Decision(None, "at_risk", {"at_risk": f"delivery delayed: {reason}"})
        return Decision(
            BOUNCED,
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
    if subtype == "challenge-response":
        return Decision(
            HELD,
            "held",
            {
                "held": "a challenge-response system is holding the "
                "apology until you verify; the interviewer has not seen it"
            },
        )
    if subtype == "out-of-office":
        detail = {"auto_reply": "out of office"}
        postpone = None
        if return_date is not None:
            detail["auto_reply_until"] = return_date.isoformat()
            postpone = after_return(return_date, tz, window, holidays)
        return Decision(None, "auto_reply", detail, postpone_to=postpone)
    return Decision(None, "auto_reply", {"auto_reply": subtype or "automatic reply"})


# Why a thread is held (``detail["held_kind"]``); a thread held before this key existed was
# held by a challenge-response system.
HELD_BY_CHALLENGE, HELD_BY_UNCLEAR_REPLY = "challenge_response", "unclear_reply"


def hold_for_reply(
    current_state: str,
    *,
    sender: str,
    subject: str,
    received: datetime,
    threads: tuple[int, ...],
) -> Decision:
    """A human reply with no references from an address several open threads were sent to,
    naming none of them (or several): each of ``threads`` is held, so none gets a follow-up
    the interviewer may just have answered, until the user confirms (``mark-replied``) or
    releases it. ``held_from`` keeps the state a release returns to."""
    detail = {
        "held_kind": HELD_BY_UNCLEAR_REPLY,
        "held": f"a reply from {sender} may answer any of threads " + ", ".join(map(str, threads)),
        "held_threads": ",".join(map(str, threads)),
        "held_reply_by": sender,
        "held_reply_subject": subject,
        "held_at": received.isoformat(),
    }
    if current_state in (AWAITING, FOLLOWED_UP):
        return Decision(HELD, "held", {**detail, "held_from": current_state}, stop_follow_ups=True)
    if current_state == HELD:  # held already: still held, now for this reply too
        return Decision(None, "held", detail, stop_follow_ups=True)
    return Decision(None, "ignored", {"why": f"the thread is already {current_state}"})


def held_kind(detail: dict[str, str]) -> str:
    return detail.get("held_kind") or HELD_BY_CHALLENGE


def unmatched_bounce() -> Decision:
    """A bounce for someone this thread was not sent to: logged against it, nothing more."""
    return Decision(None, "bounce_unmatched", {})


def describe(
    state: str,
    detail: dict[str, str],
    follow_up_due: str | None,
    unsettled: str | None = None,
    last_follow_up: str | None = None,
) -> str:
    """One line for ``status``: the state and what it means for the user."""
    if unsettled:
        return unsettled
    short = _short_time
    if state == AWAITING:
        parts = [
            f"awaiting reply, follow-up due {short(follow_up_due)}"
            if follow_up_due
            else "awaiting reply"
        ]
        if detail.get("auto_reply"):
            until = detail.get("auto_reply_until")
            parts.append(
                f"auto-replied: {detail['auto_reply']}" + (f" until {until}" if until else "")
            )
        if detail.get("at_risk"):
            parts.append(f"at risk: {detail['at_risk']}")
        return "; ".join(parts)
    if state == FOLLOWED_UP:
        line = f"followed up {short(last_follow_up)}" if last_follow_up else "followed up"
        return line + (f"; at risk: {detail['at_risk']}" if detail.get("at_risk") else "")
    if state == REPLIED:
        subject = f": {detail['reply_subject']!r}" if detail.get("reply_subject") else ""
        return (
            f"replied {short(detail.get('replied_at'))} by {detail.get('replied_by', '?')}{subject}"
        )
    if state == HELD:
        return (
            "held by a challenge-response system: the interviewer has not seen the apology; "
            "answer the verification request or call them"
        )
    if state == BOUNCED:
        return f"bounced: {detail.get('bounce_reason', '')}"
    if state == NO_ANSWER:
        return "no answer: the follow-ups are used up"
    if state == FAILED:
        return "failed" + (
            f": {detail['follow_up_error']}" if detail.get("follow_up_error") else ""
        )
    return describe_state(state)


def _short_time(iso: str | None) -> str:
    if not iso:
        return "?"
    return iso[:16].replace("T", " ")
