"""One scan of the watched folders: new messages -> matched threads -> recorded decisions.

The cost is proportional to the new messages, not the mailbox: we keep UIDVALIDITY and the
last UID seen per folder, fetch a few headers for new UIDs only, and fetch a body only for a
message that matched a thread (or that looks like a delivery report and must be read to know).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import compat32

from .classify import classify, original_message_ids
from .clock import Clock
from .config import Settings
from .facts import local_zone, zone
from .followup import Decision, decide
from .mailbox import Mailbox
from .matching import Incoming, ThreadIndex, match, match_report
from .schedule import holidays_for
from .store import Store

log = logging.getLogger("mailer.watcher")


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
            cache.append(store.thread_index())
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
    known = store.folder_state(folder)
    # Watching one folder, it stays selected between scans on the same connection: a pass is
    # then NOOP + SEARCH (+ FETCH), and no SELECT whose cost grows with the folder.
    stay = len(settings.watch.folders) == 1
    if stay and known is not None and box.selected == (folder, known[0]):
        box.refresh()
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
    if known is not None and known[0] == uidvalidity:
        last = known[1]
        # UIDs only grow: the new ones lie between the last seen and UIDNEXT. Asking for the
        # range directly saves a SEARCH; UIDs of expunged messages are simply not returned.
        if uidnext is None:
            uids = box.uids_after(last)
        else:
            gap = uidnext - 1 - last
            uids = list(range(last + 1, uidnext)) if 0 < gap <= 5000 else box.uids_after(last)
    else:
        # First look at this folder, or the server renumbered it: read back to the earliest
        # open thread instead of the whole folder.
        if known is not None:
            log.warning(
                "%s: UIDVALIDITY changed (%s -> %s); rescanning", folder, known[0], uidvalidity
            )
        sent = [t.sent_at for t in index().threads]
        uids = box.uids_since((min(sent) - timedelta(days=1)).date()) if sent else []
        last = max((uidnext or 1) - 1, 0)
    headers = box.fetch_headers(uids)
    results: list[Seen] = []
    for uid in sorted(headers):
        raw_headers, internaldate = headers[uid]
        received = _aware(internaldate) if internaldate else clock()
        incoming = Incoming.from_headers(
            BytesHeaderParser(policy=compat32).parsebytes(raw_headers), received
        )
        seen = _consider(settings, store, box, clock, folder, uidvalidity, uid, incoming, index())
        if seen is not None:
            results.append(seen)
    new_last = max([last, *headers]) if headers else last
    if known is not None and known[0] == uidvalidity and uidnext is not None:
        # Everything below UIDNEXT has been looked at, even UIDs whose messages were expunged.
        new_last = max(new_last, uidnext - 1)
    if known != (uidvalidity, new_last):
        store.set_folder_state(folder, uidvalidity, new_last)
    return results


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
    raw = box.fetch_raw(uid)
    verdict = classify(raw, received=incoming.received.date())
    if thread_id is None:
        thread_id = match_report(
            original_message_ids(raw), verdict.failed_recipients, incoming.received, index
        )
        if thread_id is None:
            return None
    thread = store.thread(thread_id)
    if thread is None:
        return None
    tz = (
        zone(thread.recipient_tz, "recipient_tz")
        if thread.recipient_tz
        else local_zone(settings.sender.timezone)
    )
    holidays = holidays_for(
        settings.follow_up.holidays_country,
        range(incoming.received.year, incoming.received.year + 2),
    )
    label = f"{verdict.kind}{f'/{verdict.subtype}' if verdict.subtype else ''}"

    def decision_for(state: str) -> Decision:
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
            window=settings.follow_up.window,
            holidays=holidays,
        )

    decision = store.apply_incoming(
        thread_id=thread_id,
        folder=folder,
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


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.astimezone()
