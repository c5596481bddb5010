"""One scan of the watched folders: new messages -> matched threads -> recorded decisions.

The cost is proportional to the new messages, not the mailbox: we keep UIDVALIDITY and the
last UID seen per folder, fetch a few headers for new UIDs only, the arrival time only for a
message that may concern a thread, and a body only for a message that matched a thread (or
that looks like a delivery report and must be read to know).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import compat32

from mailer.adapters.clock import Clock, local_zone
from mailer.adapters.config import Settings
from mailer.adapters.mailbox import Mailbox
from mailer.adapters.store import Store, ThreadRow
from mailer.errors import MailerError
from mailer.model.apology import thread_settings
from mailer.model.classify import (
    BOUNCE,
    HUMAN,
    classify_message,
    original_message_ids,
    read_message,
    reply_text,
    reported_recipients,
)
from mailer.model.facts import zone
from mailer.model.followup import (
    AWAITING,
    FOLLOWED_UP,
    Decision,
    decide,
    hold_for_reply,
    unmatched_bounce,
)
from mailer.model.lifecycle import ThreadEvent
from mailer.model.matching import (
    Incoming,
    ThreadIndex,
    bounce_concerns,
    by_reference,
    by_sender,
    choose_for_reply,
    match,
    match_report,
)
from mailer.model.schedule import holidays_for

log = logging.getLogger("mailer.services.watcher")
# The arrival time of a message before it is fetched: later than any thread was sent.
_UNKNOWN = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Seen:
    thread_id: int
    verdict: str
    sender: str
    subject: str
    decision: Decision


def scan(settings: Settings, store: Store, box: Mailbox, clock: Clock) -> list[Seen]:
    """Look at everything new in the watched folders once. Safe to repeat: nothing is
    acted on twice."""
    cache: list[ThreadIndex] = []

    def index() -> ThreadIndex:  # loaded only if there is something new to match
        if not cache:
            # Only this account's threads: a reply arrives in the mailbox its apology left.
            cache.append(store.thread_index(settings.account))
        return cache[0]

    results: list[Seen] = []
    for folder in settings.watch.folders:
        results.extend(_scan_folder(settings, store, box, clock, folder, index))
    return results


def _scan_folder(
    settings: Settings,
    store: Store,
    box: Mailbox,
    clock: Clock,
    folder: str,
    index: Callable[[], ThreadIndex],
) -> list[Seen]:
    known = box.positions.get(folder)
    if known is None:
        known = store.folder_state(place(settings, folder))
        if known is not None:
            box.positions[folder] = known
    # Watching one folder, it stays selected between scans on the same connection: a pass is
    # then a NOOP, and a FETCH only if the NOOP (or an earlier answer) said EXISTS; no SELECT
    # or SEARCH, whose cost grows with the folder.
    stay = len(settings.watch.folders) == 1
    if stay and known is not None and box.selected == (folder, known[0]):
        if not box.refresh():
            return []  # no EXISTS since everything up to the known position was read
        return _scan_selected(settings, store, box, clock, folder, index, known, known[0], None)
    if known is not None:
        if box.selected is not None:
            box.unselect()  # STATUS on a selected folder would answer from a stale view
        validity, uidnext = box.status(folder)
        if validity == known[0] and uidnext - 1 <= known[1]:
            return []  # nothing new: no SELECT, no search
    uidvalidity, uidnext = box.select(folder)
    try:
        return _scan_selected(
            settings, store, box, clock, folder, index, known, uidvalidity, uidnext
        )
    finally:
        if not stay:
            box.unselect()


def _scan_selected(
    settings: Settings,
    store: Store,
    box: Mailbox,
    clock: Clock,
    folder: str,
    index: Callable[[], ThreadIndex],
    known: tuple[int, int] | None,
    uidvalidity: int,
    uidnext: int | None,
) -> list[Seen]:
    """Read what is new in the selected folder: everything above the known position, up to
    ``uidnext`` (from the SELECT), or, with ``uidnext`` None (a refreshed folder that stayed
    selected), everything the server's view now holds."""
    if known is not None and known[0] == uidvalidity:
        last = known[1]
        if uidnext is None:
            headers = box.fetch_headers_after(last)
        else:
            # UIDs only grow: the new ones lie between the last seen and UIDNEXT. Asking for
            # the range directly saves a SEARCH; UIDs of expunged messages are not returned.
            gap = uidnext - 1 - last
            uids = list(range(last + 1, uidnext)) if 0 < gap <= 5000 else box.uids_after(last)
            headers = box.fetch_headers(uids)
    else:
        # First look at this folder, or the server renumbered it: read back to the earliest
        # open thread instead of the whole folder.
        if known is not None:
            log.warning(
                "%s: UIDVALIDITY changed (%s -> %s); rescanning", folder, known[0], uidvalidity
            )
        sent = [t.sent_at for t in index().threads]
        uids = box.uids_since((min(sent) - timedelta(days=1)).date()) if sent else []
        headers = box.fetch_headers(uids)
        last = max((uidnext or 1) - 1, 0)
    # Most new mail concerns no thread: only a message that may (by its references, its
    # sender, or as a delivery report) needs its arrival time, and then perhaps its body.
    candidates: list[tuple[int, Incoming]] = []
    for uid in sorted(headers):
        threads = index()  # outside the guard: a store error must stop the pass
        try:
            incoming = Incoming.from_headers(
                BytesHeaderParser(policy=compat32).parsebytes(headers[uid]), _UNKNOWN
            )
            if _may_concern(incoming, threads):
                candidates.append((uid, incoming))
        except Exception as exc:  # this message, not the server: pass it over
            _pass_over(
                settings, store, clock, folder, uidvalidity, uid, exc, None, threads, headers[uid]
            )
    dates = box.internal_dates([uid for uid, _ in candidates]) if candidates else {}
    results: list[Seen] = []
    for uid, incoming in candidates:
        incoming = replace(incoming, received=dates.get(uid) or clock())
        try:
            seen = _consider(
                settings, store, box, clock, folder, uidvalidity, uid, incoming, index()
            )
        except MailerError:
            raise  # the server, the store or the configuration: the pass is cut short
        except Exception as exc:  # this message: it must not stop every pass from now on
            _pass_over(settings, store, clock, folder, uidvalidity, uid, exc, incoming, index())
            continue
        if seen is not None:
            results.append(seen)
    new_last = max([last, *headers]) if headers else last
    if known is not None and known[0] == uidvalidity and uidnext is not None:
        # Everything below UIDNEXT has been looked at, even UIDs whose messages were expunged.
        new_last = max(new_last, uidnext - 1)
    if known != (uidvalidity, new_last):
        store.set_folder_state(place(settings, folder), uidvalidity, new_last)
    box.positions[folder] = (uidvalidity, new_last)
    # Only now, with the position recorded: a pass cut short must look again next time.
    box.unread = False
    return results


def place(settings: Settings, folder: str) -> str:
    """A folder as the state store names it: each account's INBOX is a different mailbox, so
    its position and its messages are kept apart ("anna:INBOX"; the main account's stays
    "INBOX"). Account names cannot contain ':'."""
    return f"{settings.account}:{folder}" if settings.account else folder


def _may_concern(incoming: Incoming, index: ThreadIndex) -> bool:
    """Whether :func:`_consider` could act on this message at any arrival time (``match``
    less its time condition): a message for which this is False is passed over unread."""
    if incoming.message_id and incoming.message_id in index.our_ids:
        return False  # our own message
    if incoming.report or any(ref in index.our_ids for ref in incoming.refs):
        return True
    return by_sender(incoming.sender, _UNKNOWN, index) is not None


def _consider(
    settings: Settings,
    store: Store,
    box: Mailbox,
    clock: Clock,
    folder: str,
    uidvalidity: int,
    uid: int,
    incoming: Incoming,
    index: ThreadIndex,
) -> Seen | None:
    thread_id = match(incoming, index)
    if thread_id is None and not incoming.report:
        return None
    if incoming.message_id and incoming.message_id in index.our_ids:
        return None
    msg = read_message(box.fetch_raw(uid))  # a bounded prefix, read within bounds
    verdict = classify_message(msg, received=incoming.received.date())
    named = _dedupe_all(verdict.failed_recipients, reported_recipients(msg))
    if thread_id is None:
        thread_id = match_report(original_message_ids(msg), named, incoming.received, index)
        if thread_id is None:
            return None
    hold: tuple[int, ...] = ()
    if verdict.kind == HUMAN and by_reference(incoming, index) is None:
        # Matched by address alone: of several threads to it, the one the reply names.
        choice = choose_for_reply(
            incoming.sender, incoming.received, incoming.subject, reply_text(msg), index
        )
        if choice is not None:
            thread_id, hold = choice.thread_id, choice.hold
    thread = store.thread(thread_id, lenient=True)
    if thread is None:
        return None
    # Our Message-ID alone is not enough: a report quoting or forging it while naming
    # someone else would bounce this thread and block its address everywhere.
    if verdict.kind == BOUNCE and not bounce_concerns(named, recipients_of(thread)):
        _unmatched_bounce(
            settings, store, clock, folder, uidvalidity, uid, incoming, thread_id, named
        )
        return None
    try:
        tz = (
            zone(thread.recipient_tz, "recipient_tz")
            if thread.recipient_tz
            else local_zone(settings.sender.timezone)
        )
    except MailerError:  # a damaged row: a reply must still be recorded
        tz = local_zone(settings.sender.timezone)
    holidays = holidays_for(
        settings.follow_up.holidays_country,
        range(incoming.received.year, incoming.received.year + 2),
    )
    label = f"{verdict.kind}{f'/{verdict.subtype}' if verdict.subtype else ''}"

    def held(state: str) -> Decision:
        return hold_for_reply(
            state,
            sender=incoming.sender,
            subject=incoming.subject,
            received=incoming.received,
            threads=hold,
        )

    if hold and not store.seen_incoming(place(settings, folder), uidvalidity, uid):
        # The other threads first: the message is recorded as seen (below) only once every
        # one is held, so a pass cut short in between holds the rest when it looks again.
        # One seen before is not held again: the user may have released its threads since.
        _hold_others(store, clock, [t for t in hold if t != thread_id], held)

    def decision_for(state: str) -> Decision:
        if hold:
            return held(state)
        return decide(
            verdict.kind,
            verdict.subtype,
            state,
            sender=incoming.sender,
            subject=incoming.subject,
            received=incoming.received,
            reason=verdict.reason,
            return_date=verdict.return_date,
            status=verdict.status,
            tz=tz,
            window=thread_settings(settings, thread).follow_up.window,
            holidays=holidays,
        )

    decision = store.apply_incoming(
        thread_id=thread_id,
        folder=place(settings, folder),
        uidvalidity=uidvalidity,
        uid=uid,
        message_id=incoming.message_id,
        sender=incoming.sender,
        subject=incoming.subject,
        verdict=f"{label}: {verdict.reason}",
        now=clock(),
        decide=decision_for,
    )
    if decision is None:
        return None
    log.debug(
        "thread %s: %s from %s (%r): %s",
        thread_id,
        label,
        incoming.sender,
        incoming.subject,
        decision.event,
    )
    return Seen(
        thread_id=thread_id,
        verdict=label,
        sender=incoming.sender,
        subject=incoming.subject,
        decision=decision,
    )


def _hold_others(
    store: Store, clock: Clock, thread_ids: list[int], held: Callable[[str], Decision]
) -> None:
    for other in thread_ids:
        row = store.thread(other, lenient=True)
        if row is None or row.state not in (AWAITING, FOLLOWED_UP):
            continue  # held already, or closed since the index was read
        decision = held(row.state)
        if decision.state is None:
            continue
        store.move_thread_if_still(
            other, ThreadEvent.HOLD_FOR_REPLY, clock(), decision.event, decision.detail
        )


def _dedupe_all(*groups: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(a.lower() for group in groups for a in group))


def recipients_of(thread: ThreadRow) -> set[str]:
    """Every address the thread was sent to or may be answered from, lower case."""
    cc = thread.facts.get("cc") or []
    return {a.lower() for a in (thread.recipient, *cc, *thread.alt_addresses) if a}


def _unmatched_bounce(
    settings: Settings,
    store: Store,
    clock: Clock,
    folder: str,
    uidvalidity: int,
    uid: int,
    incoming: Incoming,
    thread_id: int,
    recipients: tuple[str, ...],
) -> None:
    """A bounce that carries this thread's Message-ID but names only other recipients: it
    says nothing about this thread's address. Recorded (once) against the thread, not
    applied: no state change, no address blocked elsewhere."""
    named = ", ".join(recipients)
    log.warning(
        "%s UID %s: a delivery report for %s carries thread %s's Message-ID; not applied",
        folder,
        uid,
        named,
        thread_id,
    )
    store.apply_incoming(
        thread_id=thread_id,
        folder=place(settings, folder),
        uidvalidity=uidvalidity,
        uid=uid,
        message_id=incoming.message_id,
        sender=incoming.sender,
        subject=incoming.subject,
        verdict=f"unmatched bounce: it names {named}, not a recipient of this thread",
        now=clock(),
        decide=lambda state: unmatched_bounce(),
    )


def _pass_over(
    settings: Settings,
    store: Store,
    clock: Clock,
    folder: str,
    uidvalidity: int,
    uid: int,
    exc: Exception,
    incoming: Incoming | None,
    index: ThreadIndex,
    raw_headers: bytes = b"",
) -> None:
    """A message the watcher cannot read: logged, recorded (once) and passed over, so the
    pass goes on and the folder position moves past it. If it was tied to a thread, that
    thread is taken as answered, as the classifier does with what it cannot read: stopping
    a follow-up is the safe side of a message nobody could read. A message whose headers
    could not even be parsed is tied by any of our Message-IDs its raw headers quote."""
    # One printable line: an exception's text may quote what the sender wrote.
    text = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
    reason = "".join(ch if ch.isprintable() else "?" for ch in text)
    log.warning("%s UID %s: cannot read this message, passed over: %s", folder, uid, reason)
    now = clock()
    store.record_unreadable(place(settings, folder), uidvalidity, uid, reason, now)
    try:
        thread_id = match(incoming, index) if incoming is not None else None
    except Exception:  # the same trouble again: the message is tied to no thread we know
        thread_id = None
    if thread_id is None and incoming is None:
        thread_id = _quoted_thread(raw_headers, index)
    if thread_id is None:
        return
    sender = incoming.sender if incoming is not None else "(unreadable sender)"
    subject = incoming.subject if incoming is not None else "(unreadable subject)"
    store.move_thread_if_still(
        thread_id,
        ThreadEvent.UNREADABLE_REPLY,
        now,
        "replied",
        {
            "replied_by": sender,
            "reply_subject": subject,
            "replied_at": now.isoformat(),
            "unreadable": f"{folder} UID {uid}: {reason}",
        },
    )


_QUOTED_ID = re.compile(rb"<[^<>\s]{1,250}>")


def _quoted_thread(raw_headers: bytes, index: ThreadIndex) -> int | None:
    """The thread whose Message-ID the raw header bytes quote (In-Reply-To, References),
    read without any parser: the last resort for a message nothing else could read."""
    for found in reversed(_QUOTED_ID.findall(raw_headers[:65536])):
        thread_id = index.our_ids.get(found.decode("ascii", "replace"))
        if thread_id is not None:
            return int(thread_id)
    return None
