"""How a thread is shown: one JSON shape for every ``--json`` that lists threads, and one line
of words for the tables. Every time is in the sender's zone: ISO 8601 with its offset in
JSON, labelled with the zone's name in text. Pure: rows and a zone in, a dict or text out.

The JSON shape is documented in README.md ("JSON output"); bump :data:`JSON_VERSION` when a
key changes meaning or goes away (adding a key does not need it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from mailer.adapters.store import (
    IN_DOUBT,
    QUEUED,
    SUBMITTING,
    MessageBrief,
    MessageRow,
    ThreadRow,
    owner_alive,
)
from mailer.model.followup import (
    AWAITING,
    BOUNCED,
    FAILED,
    FOLLOWED_UP,
    HELD,
    NO_ANSWER,
    REPLIED,
)
from mailer.model.lifecycle import (
    DUE_THREAD,
    SETTLED_NOT_SENT,
    MessageState,
    ThreadState,
    message_shown,
)
from mailer.model.lifecycle import describe as describe_state

JSON_VERSION = 1

SENDING = ThreadState.SENDING  # the apology is not known to be sent yet
THREAD_STATES = tuple(ThreadState)
# A message whose fate is not settled yet; "in_doubt" includes a submitting message whose
# process is gone after the final-dot mark (it may or may not have reached the server).
UNSETTLED_STATES = (QUEUED, SUBMITTING, IN_DOUBT)

# What the list functions read of a message: a whole row, or a listing's brief of one.
Messages = Sequence[MessageRow | MessageBrief]
# Whether the process that marked a message ``submitting`` still runs (store.owner_alive).
Liveness = Callable[[str | None], bool]


def owners_alive() -> Liveness:
    """:func:`owner_alive`, asked once per distinct owner: for one listing, where many rows
    may name the same process. Make a new one per listing: a process can end meanwhile."""
    known: dict[str | None, bool] = {}

    def alive(owner: str | None) -> bool:
        if owner not in known:
            known[owner] = owner_alive(owner)
        return known[owner]

    return alive


def parse_time(value: str | None) -> datetime | None:
    """A stored time; a naive one (older rows) is UTC, as the store has always written."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def iso(value: str | None, tz: tzinfo) -> str | None:
    """ISO 8601 with the offset, in ``tz``; None stays None."""
    when = parse_time(value)
    return when.astimezone(tz).isoformat(timespec="seconds") if when else None


def shown(value: str | None, tz: tzinfo, *, weekday: bool = False) -> str:
    """A time for people: ``2026-11-29 08:00 CET`` in ``tz``; a date alone stays a date."""
    if value and len(value) == 10:  # a date (an out-of-office return day): no zone to show
        return value
    when = parse_time(value)
    if when is None:
        return value or "?"
    local = when.astimezone(tz)
    if weekday or local.year < 1000:
        return local.strftime("%a %Y-%m-%d %H:%M %Z" if weekday else "%Y-%m-%d %H:%M %Z")
    # The same text as strftime's, at a third of its cost (isoformat's is twice this): a
    # listing shows thousands. The year has four digits here.
    return "%d-%02d-%02d %02d:%02d %s" % (  # noqa: UP031 (the fastest of the three)
        local.year,
        local.month,
        local.day,
        local.hour,
        local.minute,
        local.tzname() or "",
    )


def message_state(m: MessageRow | MessageBrief, alive_now: Liveness = owner_alive) -> str:
    """The message's state as an enum: a dead process's ``submitting`` is ``in_doubt`` past
    the final-dot mark, and ``queued`` (it is sent again) before it."""
    alive = m.state != SUBMITTING or alive_now(m.owner)
    return message_shown(m.state, alive, bool(m.final_dot_at))


def message_words(m: MessageRow, alive_now: Liveness = owner_alive) -> str:
    """The message's state in words for ``status ID``. A follow-up dropped while it waited
    (a reply came, the thread was cancelled) is "not sent": it never went to a server, so
    "failed" misread it (a walkthrough). Its reason follows it there."""
    state = message_state(m, alive_now)
    if state == MessageState.FAILED and (m.submitting_at is None or m.error == SETTLED_NOT_SENT):
        return "not sent"  # (settled with 'resolve --not-sent': it did not arrive, by your word)
    return describe_state(state)


def unsettled(messages: Messages, alive: Liveness = owner_alive) -> dict[str, str] | None:
    """The last message whose fate is open (the apology queued, anything submitting or in
    doubt), as ``{"kind", "state"}``; None when every message is settled."""
    last = None
    for m in messages:
        if m.state in (SUBMITTING, IN_DOUBT) or (m.kind == "apology" and m.state == QUEUED):
            last = m
    # Only the last one is shown: only its owner is asked after.
    return {"kind": last.kind, "state": message_state(last, alive)} if last else None


def _last_follow_up(messages: Messages) -> str | None:
    sent = [m.sent_at for m in messages if m.kind == "follow_up" and m.sent_at]
    return sent[-1] if sent else None


def thread_dict(
    t: ThreadRow, messages: Messages, tz: tzinfo, alive: Liveness = owner_alive
) -> dict[str, Any]:
    """The one JSON shape of a thread (``status --json``, ``campaign status --json``)."""
    d = t.detail
    reply = None
    if t.state == REPLIED:
        reply = {
            "at": iso(d.get("replied_at"), tz),
            "by": d.get("replied_by"),  # the address it came from, or your note
            "subject": d.get("reply_subject"),  # quoted from the reply
        }
    auto_reply = None
    if d.get("auto_reply"):
        auto_reply = {
            "kind": str(d["auto_reply"]).replace(" ", "_").replace("-", "_"),
            "until": d.get("auto_reply_until"),  # a date, YYYY-MM-DD
        }
    bounce = None
    if t.state == BOUNCED:
        bounce = {"at": iso(d.get("bounced_at"), tz), **_bounce(d)}
    held = None
    if t.state == HELD:
        from mailer.model.decision import HELD_BY_UNCLEAR_REPLY, held_kind

        kind = held_kind(d)
        held = {
            "kind": kind,  # "unclear_reply" or "challenge_response"
            "threads": _ids(d.get("held_threads")) if kind == HELD_BY_UNCLEAR_REPLY else [t.id],
            "by": d.get("held_reply_by"),  # the address of the reply that held it
            "subject": d.get("held_reply_subject"),  # quoted from that reply
            "at": iso(d.get("held_at"), tz),
        }
    delay = str(d.get("at_risk", ""))
    return {
        "id": t.id,
        "state": t.state,
        "unsettled": unsettled(messages, alive),
        "recipient": t.recipient,
        "recipient_name": t.recipient_name,
        "company": t.company,
        "role": t.role,
        "situation": t.situation,
        "account": t.account or None,
        "campaign": t.campaign,
        "entry_key": t.entry_key,
        "subject": t.subject,
        "interview_at": iso(t.interview_at, tz),
        "created_at": iso(t.created_at, tz),
        "sent_at": iso(t.sent_at, tz),
        "follow_up_due": iso(t.follow_up_due, tz) if t.state == AWAITING else None,
        "last_follow_up_at": iso(_last_follow_up(messages), tz),
        "follow_ups_sent": t.follow_ups_sent,
        "max_follow_ups": t.max_follow_ups,
        "reply": reply,
        "auto_reply": auto_reply,
        "bounce": bounce,
        "held": held,
        # quoted from the delay notice or the server's refusal
        "delivery_delay": delay.removeprefix("delivery delayed: ") or None,
        "error": d.get("follow_up_error"),
    }


# Rows written before the bounce was kept as fields: the words as followup.decide put them,
# "hard bounce 5.1.1: <the server's words>".
_BOUNCE = re.compile(
    r"(?P<kind>[\w-]+) bounce(?: (?P<status>\d\.\d{1,3}\.\d{1,3}))?(?:: (?P<text>.*))?", re.S
)
_EARLIER = re.compile(r"bounced for good in thread (?P<thread>\d+)")


def _ids(text: Any) -> list[int]:
    return [int(x) for x in str(text or "").split(",") if x.strip().isdigit()]


def _bounce(d: dict[str, Any]) -> dict[str, Any]:
    """The bounce's kind (``hard``, ``soft``..., or ``earlier`` when the address bounced for
    good in an earlier thread), its status code and the diagnostic quoted from the DSN."""
    if d.get("bounce_kind") == "earlier":
        return {"kind": "earlier", "status": None, "diagnostic": None, "thread": _int(d)}
    if d.get("bounce_kind"):
        return {
            "kind": d["bounce_kind"],
            "status": d.get("bounce_status") or None,
            "diagnostic": d.get("bounce_text") or None,
            "thread": None,
        }
    reason = str(d.get("bounce_reason", ""))
    if m := _BOUNCE.fullmatch(reason):
        return {"kind": m["kind"], "status": m["status"], "diagnostic": m["text"], "thread": None}
    earlier = _EARLIER.search(reason)
    return {
        "kind": "earlier",
        "status": None,
        "diagnostic": None,
        "thread": int(earlier["thread"]) if earlier else None,
    }


def _int(d: dict[str, Any]) -> int | None:
    try:
        return int(d["bounced_in"])
    except (KeyError, TypeError, ValueError):
        return None


def message_dict(m: MessageRow, tz: tzinfo) -> dict[str, Any]:
    return {
        "kind": m.kind,
        "message_id": m.message_id,
        "state": message_state(m),
        "created_at": iso(m.created_at, tz),
        "sent_at": iso(m.sent_at, tz),
        "failed_at": iso(m.failed_at, tz),
        "error": m.error,  # the server's words
        "sent_copy": m.sent_copy,
    }


def event_dict(e: dict[str, Any], tz: tzinfo) -> dict[str, Any]:
    return {**e, "at": iso(e.get("at"), tz)}


def describe(t: ThreadRow, messages: Messages, tz: tzinfo, alive: Liveness = owner_alive) -> str:
    """One line of words for the tables: the state and what it means for the user. An
    unsettled message wins over the stored state, unless a reply or a bounce closed it."""
    return described(t, messages, tz, alive)[0]


def described(
    t: ThreadRow, messages: Messages, tz: tzinfo, alive: Liveness = owner_alive
) -> tuple[str, str]:
    """:func:`describe` and :func:`state_word` together, the unsettled message found once
    (the ``status`` table shows both of every thread)."""
    open_message = unsettled(messages, alive) if messages else None
    word = _word(t, open_message)
    if open_message is None:
        return _closed_or_open(t, messages, tz), word
    words = describe_state(open_message["state"])
    pending = words if open_message["kind"] == "apology" else f"follow-up {words}"
    if t.state in (SENDING, *DUE_THREAD):
        return pending, word
    return f"{_closed_or_open(t, messages, tz)} ({pending})", word


def _closed_or_open(t: ThreadRow, messages: Messages, tz: tzinfo) -> str:
    line = _described(t, messages, tz)
    if t.detail.get("challenge_unverified"):  # decision.UNVERIFIED (a closed thread's)
        line += (
            "; a challenge-response filter holds the apology: the interviewer has not seen it "
            "(answer the verification request or call them)"
        )
    return line


def _described(t: ThreadRow, messages: Messages, tz: tzinfo) -> str:
    d = t.detail
    if t.state == AWAITING:
        due = shown(t.follow_up_due, tz) if t.follow_up_due else None
        parts = [f"awaiting reply, follow-up due {due}" if due else "awaiting reply"]
        if d.get("auto_reply"):
            until = d.get("auto_reply_until")
            parts.append(f"auto-replied: {d['auto_reply']}" + (f" until {until}" if until else ""))
        if d.get("at_risk"):
            parts.append(f"at risk: {d['at_risk']}")
        if d.get("cc_bounced"):
            parts.append(f"Cc bounced: {d['cc_bounced']}")
        return "; ".join(parts)
    if t.state == FOLLOWED_UP:
        last = _last_follow_up(messages)
        line = f"followed up {shown(last, tz)}" if last else "followed up"
        line += f"; at risk: {d['at_risk']}" if d.get("at_risk") else ""
        return line + (f"; Cc bounced: {d['cc_bounced']}" if d.get("cc_bounced") else "")
    if t.state == REPLIED:
        subject = f": {d['reply_subject']!r}" if d.get("reply_subject") else ""
        by = str(d.get("replied_by", "?"))
        # An address, or what 'mark-replied' recorded: "marked by you", or the user's note.
        who = f"by {by}" if "@" in by or by == "?" else f"(marked by you: {by})"
        who = "(marked by you)" if by == "marked by you" else who
        return f"replied {shown(d.get('replied_at'), tz)} {who}{subject}"
    if t.state == HELD and _held_by_unclear_reply(d):
        subject = f" ({d['held_reply_subject']!r})" if d.get("held_reply_subject") else ""
        others = [i for i in _ids(d.get("held_threads")) if i != t.id]
        also = f" or thread(s) {', '.join(map(str, others))}" if others else ""
        by = d.get("held_reply_by", "?")
        what = (
            f"a message from {by}{subject} came before the apology went (by this computer's "
            "clock), and may answer it"
            if d.get("held_before_apology")
            else f"a reply from {by}{subject} may answer this{also}"
        )
        return (
            f"held: {what}; "
            f"'mailer mark-replied {t.id}' if it does, else 'mailer release {t.id}'"
            + ("; a challenge-response system holds it too" if d.get("challenge") else "")
        )
    if t.state == HELD:
        from mailer.model.decision import (  # (as _held_by_unclear_reply)
            HELD_LATE,
            closed_before_hold,
            held_kind,
        )

        if held_kind(d) == HELD_LATE:
            return (
                f"held: {d.get('held', 'its follow-up is late')}; 'mailer release {t.id}' lets "
                f"it go on the next pass, 'mailer mark-replied {t.id}' if they have answered, "
                f"'mailer cancel {t.id}' sends nothing more"
            )
        closed = closed_before_hold(d)
        if closed is not None:
            # Held by an older mailer after it was closed: 'release' refuses it (decisions).
            return (
                f"held by a challenge-response system after it was {closed.replace('_', ' ')}; "
                f"'mailer cancel {t.id}' closes it again"
            )
        return (
            "held by a challenge-response system: the interviewer has not seen the apology; "
            "answer the verification request or call them"
        )
    if t.state == BOUNCED:
        return f"bounced: {d.get('bounce_reason', '')}"
    if t.state == NO_ANSWER:
        return "no answer: the follow-ups are used up"
    if t.state == FAILED:
        return "failed" + (f": {d['follow_up_error']}" if d.get("follow_up_error") else "")
    return describe_state(t.state)


def _held_by_unclear_reply(d: dict[str, Any]) -> bool:
    # Imported here: only a held thread needs the decision module (a tenth of the imports
    # of a listing).
    from mailer.model.decision import HELD_BY_UNCLEAR_REPLY, held_kind

    return held_kind(d) == HELD_BY_UNCLEAR_REPLY


def state_word(t: ThreadRow, messages: Messages, alive: Liveness = owner_alive) -> str:
    """The state a summary counts: the enum, or the unsettled message's when it wins."""
    return _word(t, unsettled(messages, alive))


def _word(t: ThreadRow, open_message: Any) -> str:
    """:func:`state_word`, the unsettled message (if any) already found."""
    if open_message and t.state in (SENDING, *DUE_THREAD):
        prefix = "" if open_message["kind"] == "apology" else "follow_up_"
        return prefix + open_message["state"]
    return t.state
