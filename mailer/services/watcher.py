"""One read of the watched folders: new messages -> matched threads -> classified messages.

Nothing here decides or records what a message does to a thread: :func:`read_new` returns
the new messages, matched and classified, for :func:`mailer.model.plan.plan_pass`, and the pass's
executor (:mod:`mailer.services.incoming`) performs the plan, then :func:`commit` records the folder
positions.

The cost is proportional to the new messages, not the mailbox: we keep UIDVALIDITY and the
last UID seen per folder, fetch a few headers for new UIDs only, the arrival time only for a
message that may concern a thread, and a body only for a message that matched a thread (or
that looks like a delivery report and must be read to know). The threads they are matched
against are those the batch's senders and Message-IDs can reach (see :class:`Indexes`), not
every thread in the store.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Container, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import compat32

from mailer.adapters.clock import Clock
from mailer.adapters.config import Settings
from mailer.adapters.mailbox import Mailbox
from mailer.adapters.store import Store, ThreadRow
from mailer.errors import DeliveryError, MailerError
from mailer.model.classify import (
    BOUNCE,
    HUMAN,
    classify_message,
    original_message_ids,
    read_message,
    reply_text,
    reported_recipients,
)
from mailer.model.decision import Classified
from mailer.model.lifecycle import OPEN_THREAD
from mailer.model.matching import (
    Incoming,
    ThreadIndex,
    about_others,
    bounce_concerns,
    by_reference,
    by_sender,
    carries,
    choose_for_reply,
    closed_reference,
    from_sender,
    match,
    match_report,
    sent_just_after,
)
from mailer.model.plan import NewMessage, one_line

log = logging.getLogger("mailer.services.watcher")
# The arrival time of a message before it is fetched: later than any thread was sent.
_UNKNOWN = datetime.max.replace(tzinfo=UTC)


@dataclass
class Reading:
    """What one read of the watched folders found: the new messages that concern a thread
    (or could not be read), the threads they were matched to, and where each folder's read
    ended (recorded by :func:`commit` once the messages are acted on)."""

    messages: list[NewMessage] = field(default_factory=list)
    threads: dict[int, ThreadRow] = field(default_factory=dict)
    positions: list[tuple[str, tuple[int, int] | None, int, int]] = field(default_factory=list)


# Above this many new messages in one folder, the whole thread index: a batch's index costs
# about 10 ms at 200 messages (whatever the store holds) and grows with the batch, while the
# whole one costs what the store holds (about 55 ms at 10k threads, 1 ms at 10); a batch this
# large is a first look or a mailbox filled while mailer was stopped, rare enough.
BATCH_LIMIT = 200
# Above this many Message-IDs named by one folder's new messages (their own and the ones they
# refer to), the whole index too: hostile headers can name tens of thousands, each a lookup.
ID_LIMIT = 2_000


class Indexes:
    """The thread indexes one read needs, each loaded only when there is something new to
    match. Only this account's threads: a reply arrives in the mailbox its apology left.

    :meth:`for_batch` gives what one folder's new messages can match (see
    :meth:`Store.batch_index`): every decision about those messages is the one the whole
    index gives, at a cost that follows the batch, not the store (a one-shot ``check`` has
    no index kept from an earlier pass). :meth:`whole` is every thread and every Message-ID
    we sent, for what no batch can name up front: a delivery report's quoted original and
    failed recipient (read from its body), an unparseable message's quoted IDs, and the
    earliest thread a first look reads back to."""

    def __init__(self, store: Store, account: str) -> None:
        self.store = store
        self.account = account
        self._whole: ThreadIndex | None = None

    def whole(self) -> ThreadIndex:
        if self._whole is None:
            self._whole = self.store.thread_index(self.account)
        return self._whole

    def for_batch(self, batch: list[Incoming]) -> ThreadIndex:
        if self._whole is not None or len(batch) > BATCH_LIMIT:
            return self.whole()  # already read in this pass, or cheaper than a batch's
        ids = {ref for i in batch for ref in i.refs}
        ids.update(i.message_id for i in batch if i.message_id)
        if len(ids) > ID_LIMIT:
            return self.whole()
        return self.store.batch_index(self.account, ids, {i.sender for i in batch})


def read_new(settings: Settings, store: Store, box: Mailbox, clock: Clock) -> Reading:
    """Read everything new in the watched folders once; nothing is recorded. Safe to
    repeat: a message is acted on once (the store records it with its decision)."""
    indexes = Indexes(store, settings.account)
    reading = Reading()
    for folder in settings.watch.folders:
        _scan_folder(settings, store, box, clock, folder, indexes, reading)
    return reading


def read_elsewhere(
    settings: Settings, store: Store, box: Mailbox, clock: Clock, threads: list[ThreadRow]
) -> Reading:
    """Messages outside the watched folders that refer to ``threads``' messages, or come
    from their interviewers: a reply the provider filed as junk, or the user archived or
    deleted before a pass saw it; and in every folder, a colleague's answer to a forward of
    an apology (:func:`_read_forwarded`). Read right before follow-ups go, for all the
    threads whose follow-ups are due at once: each folder is opened once and searched for
    all of them (no folder position is kept). A folder the server will not open or search
    is passed over; a lost connection is not (the follow-ups then wait)."""
    reading = Reading()
    looked: list[tuple[ThreadRow, list[str], date]] = []
    for thread in threads:
        ids = [m.message_id for m in store.messages(thread.id) if m.message_id]
        sent = thread.sent_at or thread.created_at
        if ids and sent:
            looked.append((thread, ids, (datetime.fromisoformat(sent) - timedelta(days=1)).date()))
    if not looked:
        return reading
    # The earliest day of them all: what each search finds is matched to its thread by the
    # usual rules, which weigh when it came against when that thread's apology went.
    since = min(day for _, _, day in looked)
    every_id = [i for _, ids, _ in looked for i in ids]
    senders = tuple(
        dict.fromkeys(
            s
            for thread, _, _ in looked
            for s in (
                thread.recipient,
                *thread.alt_addresses,
                *(f"@{d}" for d in thread.alt_domains),  # (FROM is a substring search)
            )
        )
    )
    subjects = [" ".join(t.subject.split()) for t, _, _ in looked]
    indexes = Indexes(store, settings.account)
    ours = settings.sender.address.lower()
    # A message acted on once is not acted on again from another folder: a hold the user
    # released would come back (a copy in All Mail, the notice moved to Trash).
    recorded = Recorded(store, {i for t, _, _ in looked for i in store.incoming_ids(t.id)})
    if box.selected is not None:
        box.unselect()
    others = box.other_folders(settings.watch.folders)
    for folder in [*settings.watch.folders, *others]:
        try:
            uidvalidity, _ = box.select(folder)
            if folder in others:
                uids = box.uids_referring_to(every_id, since, senders)
                if uids:
                    headers = box.fetch_headers(uids)
                    _read_headers(
                        settings,
                        store,
                        box,
                        clock,
                        folder,
                        uidvalidity,
                        headers,
                        indexes,
                        reading,
                        ours,
                        recorded,
                    )
            if _any_subject(box, folder, subjects, since):
                _read_answers_to_forwards(
                    settings,
                    store,
                    box,
                    clock,
                    folder,
                    uidvalidity,
                    looked,
                    indexes,
                    recorded,
                    reading,
                )
        except DeliveryError as exc:
            if exc.kind != "protocol":
                raise
            log.warning("%s: not searched for replies: %s", folder, exc)
    # Left once, at the end: opening the next folder leaves the last (one round trip less
    # for each folder).
    if box.selected is not None:
        box.unselect()
    return reading


def _read_answers_to_forwards(
    settings: Settings,
    store: Store,
    box: Mailbox,
    clock: Clock,
    folder: str,
    uidvalidity: int,
    looked: list[tuple[ThreadRow, list[str], date]],
    indexes: Indexes,
    recorded: Recorded,
    reading: Reading,
) -> None:
    """:func:`_read_forwarded` in the selected folder for each of ``looked`` (a thread, its
    Message-IDs, the day its searches start), one message found for several held as one."""
    before = len(reading.messages)
    try:
        for thread, ids, day in looked:
            try:
                _read_forwarded(
                    settings,
                    store,
                    box,
                    clock,
                    folder,
                    uidvalidity,
                    thread,
                    day,
                    indexes,
                    ids,
                    recorded,
                    reading,
                )
            except DeliveryError as exc:
                # This thread's search only: the others' still count.
                if exc.kind != "protocol":
                    raise
                log.warning("%s: not searched for answers to thread %s: %s", folder, thread.id, exc)
    finally:
        reading.messages[before:] = _one_per_message(reading.messages[before:])


def _any_subject(box: Mailbox, folder: str, subjects: list[str], since: date) -> bool:
    """Whether the selected folder may hold a message with one of ``subjects``: one search
    for them all, so that each thread's own is made only where one may be. A server that
    refuses that search (a charset, its length) is taken to say yes: each is then searched
    on its own, as it would be with no such search."""
    if not any(subjects):
        return False
    try:
        return bool(box.uids_with_any_subject(subjects, since))
    except DeliveryError as exc:
        if exc.kind != "protocol":
            raise
        log.info("%s: one search for every subject refused (%s); one each instead", folder, exc)
        return True


class Recorded(Container[str]):
    """The Message-IDs of messages already acted on: those recorded for the threads looked
    at (read up front), and any other the store has recorded, asked as they come (a message
    that held several threads is recorded with one of them; a copy of it in another folder,
    Gmail's All Mail, must not hold the others again once the user released them)."""

    def __init__(self, store: Store, known: set[str]) -> None:
        self.store, self.known = store, known
        self.asked: dict[str, bool] = {}

    def __contains__(self, message_id: object) -> bool:
        if not isinstance(message_id, str) or not message_id:
            return False
        if message_id in self.known:
            return True
        if message_id not in self.asked:
            self.asked[message_id] = self.store.has_incoming(message_id)
        return self.asked[message_id]


def _one_per_message(found: list[NewMessage]) -> list[NewMessage]:
    """One colleague's answer that carries the subject of several threads (two interviews at
    one company on one day) holds them all, as one message: it is recorded once."""
    merged: dict[int, NewMessage] = {}
    for m in found:
        first = merged.get(m.uid)
        if first is None or first.classified is None or m.classified is None:
            merged.setdefault(m.uid, m)
            continue
        hold = tuple(dict.fromkeys((*first.classified.hold, *m.classified.hold)))
        merged[m.uid] = replace(first, classified=replace(first.classified, hold=hold))
    return list(merged.values())


def _read_forwarded(
    settings: Settings,
    store: Store,
    box: Mailbox,
    clock: Clock,
    folder: str,
    uidvalidity: int,
    thread: ThreadRow,
    since: date,
    indexes: Indexes,
    ids: list[str],
    recorded: Recorded,
    reading: Reading,
) -> None:
    """A person's message with the apology's subject ("RE: FW: ...") from an address the
    thread does not know, naming none of its messages: the interviewer forwarded it and a
    colleague answers. It may be the answer, so the thread is held for the user (a follow-up
    to someone whose colleague has just replied is the mistake to avoid), once: a thread the
    user released is not held again by the same message. ``ids``: the thread's own
    Message-IDs; ``recorded``: the messages already acted on."""
    subject = " ".join(thread.subject.split())
    if not subject:
        return
    uids = box.uids_with_subject(subject, since)
    if not uids:
        return
    known = {thread.recipient.lower(), *(a.lower() for a in thread.alt_addresses)}
    domains = {d.lower() for d in thread.alt_domains}
    ours = settings.sender.address.lower()
    headers = box.fetch_headers(uids)
    candidates: list[tuple[int, Incoming]] = []
    for uid in sorted(headers):
        try:
            incoming = Incoming.from_headers(
                BytesHeaderParser(policy=compat32).parsebytes(headers[uid]), _UNKNOWN
            )
        except Exception:  # (unreadable headers: the usual scan names them)
            continue
        if (
            incoming.sender in known
            or incoming.sender == ours
            or incoming.sender.rpartition("@")[2] in domains
            or incoming.report
            or incoming.message_id in ids
            or incoming.message_id in recorded
            or any(ref in ids for ref in incoming.refs)
        ):
            continue  # the interviewer's, ours, a report, or threaded: read the usual way
        candidates.append((uid, incoming))
    if candidates:
        # Nor one that belongs to another thread: it refers to that thread's messages, or
        # comes from someone an apology with the same subject went to (the same subject can
        # head two threads). From someone whose own apologies had other subjects, it is
        # about this one (a recruiter handling two interviews): held like a colleague's.
        index = indexes.for_batch([i for _, i in candidates])
        senders = {uid: from_sender(i.sender, _UNKNOWN, index) for uid, i in candidates}
        candidates = [
            (uid, i)
            for uid, i in candidates
            if i.message_id not in index.our_ids
            and not any(ref in index.our_ids for ref in i.refs)
            and not any(
                carries(i.subject, s)
                for s in _subjects(store, [t.id for t in senders[uid]]).values()
            )
        ]
    # A sender's own open threads are held with this one, as the same message read in a
    # watched folder holds them (see _consider): a recruiter who wrote about another apology
    # may be answering theirs too, and must get no follow-up on a guess.
    own = {uid: [t.id for t in senders[uid] if t.state in OPEN_THREAD] for uid, _ in candidates}
    dates = box.internal_dates([uid for uid, _ in candidates]) if candidates else {}
    for uid, incoming in candidates:
        received = dates.get(uid) or clock()
        try:
            verdict = classify_message(read_message(box.fetch_raw(uid)), received=received.date())
        except MailerError:
            raise  # the server: the follow-up waits
        except Exception:  # (this message only)
            continue
        if verdict.kind != HUMAN:
            continue  # an auto-reply or a report with our subject says nothing of an answer
        reading.threads[thread.id] = thread
        for other in own[uid]:
            if other not in reading.threads and (row := store.thread(other, lenient=True)):
                reading.threads[other] = row
        reading.messages.append(
            NewMessage(
                place=place(settings, folder),
                folder=folder,
                uidvalidity=uidvalidity,
                uid=uid,
                thread_id=thread.id,
                message_id=incoming.message_id,
                sender=incoming.sender,
                subject=incoming.subject,
                label=HUMAN,
                verdict=f"{HUMAN}: {verdict.reason} (the apology's subject, another address)",
                refs=incoming.refs,
                classified=Classified(
                    kind=HUMAN,
                    subtype=verdict.subtype,
                    sender=incoming.sender,
                    subject=incoming.subject,
                    received=received,
                    reason=verdict.reason,
                    hold=tuple(dict.fromkeys((thread.id, *own[uid]))),
                ),
                seen_before=store.seen_incoming(place(settings, folder), uidvalidity, uid),
            )
        )


def _subjects(store: Store, thread_ids: Iterable[int]) -> dict[int, str]:
    """The apology subject of each of these threads (a message's sender's, say)."""
    return {t: row.subject for t in thread_ids if (row := store.thread(t, lenient=True))}


def commit(settings: Settings, store: Store, box: Mailbox, reading: Reading) -> None:
    """Record where each folder's read ended: call only once its messages are acted on, so
    a pass cut short looks at them again."""
    for folder, known, uidvalidity, new_last in reading.positions:
        if known != (uidvalidity, new_last):
            store.set_folder_state(place(settings, folder), uidvalidity, new_last)
        box.positions[folder] = (uidvalidity, new_last)
        # Only now, with the position recorded: a pass cut short must look again next time.
        box.unread = False


def _scan_folder(
    settings: Settings,
    store: Store,
    box: Mailbox,
    clock: Clock,
    folder: str,
    indexes: Indexes,
    reading: Reading,
) -> None:
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
            return  # no EXISTS since everything up to the known position was read
        _scan_selected(settings, store, box, clock, folder, indexes, known, known[0], None, reading)
        return
    if known is not None:
        if box.selected is not None:
            box.unselect()  # STATUS on a selected folder would answer from a stale view
        told = box.status(folder)
        if told is not None and told[0] == known[0] and told[1] - 1 <= known[1]:
            return  # nothing new: no SELECT, no search
    uidvalidity, uidnext = box.select(folder)
    try:
        _scan_selected(
            settings, store, box, clock, folder, indexes, known, uidvalidity, uidnext, reading
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
    indexes: Indexes,
    known: tuple[int, int] | None,
    uidvalidity: int,
    uidnext: int | None,
    reading: Reading,
) -> None:
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
        sent = [t.sent_at for t in indexes.whole().threads]
        uids = box.uids_since((min(sent) - timedelta(days=1)).date()) if sent else []
        headers = box.fetch_headers(uids)
        last = max((uidnext or 1) - 1, 0)
    _read_headers(settings, store, box, clock, folder, uidvalidity, headers, indexes, reading)
    new_last = max([last, *headers]) if headers else last
    if known is not None and known[0] == uidvalidity and uidnext is not None:
        # Everything below UIDNEXT has been looked at, even UIDs whose messages were expunged.
        new_last = max(new_last, uidnext - 1)
    reading.positions.append((folder, known, uidvalidity, new_last))


def _read_headers(
    settings: Settings,
    store: Store,
    box: Mailbox,
    clock: Clock,
    folder: str,
    uidvalidity: int,
    headers: dict[int, bytes],
    indexes: Indexes,
    reading: Reading,
    ours: str = "",
    recorded: Container[str] = frozenset(),
) -> None:
    """Match, read and classify the selected folder's messages whose ``headers`` are given,
    into ``reading``. ``ours``: an address whose messages are passed over unread (a copy of
    something the user sent, which an "all mail" folder holds); ``recorded``: Message-IDs
    already acted on (the same message filed in a second folder, or Gmail's All Mail)."""
    # Most new mail concerns no thread: only a message that may (by its references, its
    # sender, or as a delivery report) needs its arrival time, and then perhaps its body.
    parsed: dict[int, Incoming | Exception] = {}
    for uid in sorted(headers):
        try:
            parsed[uid] = Incoming.from_headers(
                BytesHeaderParser(policy=compat32).parsebytes(headers[uid]), _UNKNOWN
            )
            found = parsed[uid]
            if (ours and found.sender == ours) or found.message_id in recorded:
                del parsed[uid]
        except Exception as exc:  # this message, not the server: pass it over
            parsed[uid] = exc
    batch = [i for i in parsed.values() if isinstance(i, Incoming)]
    # Outside the guards: a store error must stop the pass.
    index = indexes.for_batch(batch) if batch else None
    candidates: list[tuple[int, Incoming]] = []
    for uid, incoming in parsed.items():
        problem = incoming if isinstance(incoming, Exception) else None
        if index is not None and isinstance(incoming, Incoming):
            try:
                if _may_concern(incoming, index):
                    candidates.append((uid, incoming))
            except Exception as exc:  # this message, not the server: pass it over
                problem = exc
        if problem is not None:
            # Nothing of it could be read to name its IDs up front: the whole index.
            reading.messages.append(
                _unreadable(
                    settings, folder, uidvalidity, uid, problem, None, indexes.whole(), headers[uid]
                )
            )
    dates = box.internal_dates([uid for uid, _ in candidates]) if candidates else {}
    for uid, incoming in candidates:
        assert index is not None
        incoming = replace(incoming, received=dates.get(uid) or clock())
        try:
            new = _consider(
                settings, store, box, folder, uidvalidity, uid, incoming, index, indexes, reading
            )
        except MailerError:
            raise  # the server, the store or the configuration: the pass is cut short
        except Exception as exc:  # this message: it must not stop every pass from now on
            new = _unreadable(settings, folder, uidvalidity, uid, exc, incoming, index)
        if new is not None:
            reading.messages.append(new)


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
    folder: str,
    uidvalidity: int,
    uid: int,
    incoming: Incoming,
    index: ThreadIndex,
    indexes: Indexes,
    reading: Reading,
) -> NewMessage | None:
    """The message matched to its thread and classified; None if it concerns no thread.
    ``index`` holds what its headers can match; a delivery report matched by its body
    needs ``indexes.whole()``."""
    thread_id = match(incoming, index)
    early: tuple[int, ...] = ()  # open threads whose apology went just after it came
    if not incoming.report and by_reference(incoming, index) is None:
        early = tuple(
            t.id
            for t in sent_just_after(incoming.sender, incoming.received, index)
            if t.state in OPEN_THREAD
        )
    only_early = thread_id is None and bool(early)
    if thread_id is None and not incoming.report:
        if not early:
            return None
        thread_id = early[-1]
    if incoming.message_id and incoming.message_id in index.our_ids:
        return None
    msg = read_message(box.fetch_raw(uid))  # a bounded prefix, read within bounds
    verdict = classify_message(msg, received=incoming.received.date())
    if only_early and verdict.kind != HUMAN:
        return None  # an auto-reply or a report from before the apology: not about it
    named = _dedupe_all(verdict.failed_recipients, reported_recipients(msg))
    if thread_id is None:
        # The original's IDs and the failed recipients came from the body: the whole index.
        thread_id = match_report(
            original_message_ids(msg), named, incoming.received, indexes.whole()
        )
        if thread_id is None:
            return None
    hold: tuple[int, ...] = ()
    before_apology = False
    if early and verdict.kind == HUMAN:
        # A person's message from the recipient, a while before the apology by the clocks
        # (more than the slack): the answer itself if this computer's clock is fast, so
        # neither ignored (the follow-up went after the reply) nor taken as the answer. An
        # older open thread to the same address it matched is held with it, not answered.
        matched = [t.id for t in index.threads if t.id == thread_id and t.state in OPEN_THREAD]
        hold, before_apology = tuple(sorted({*early, *matched})), True
    elif verdict.kind == HUMAN and (
        by_reference(incoming, index) is None or closed_reference(incoming, index)
    ):
        # Matched by address alone, or in a conversation that is over: of the threads to
        # that address, the one the reply names (several open and none named: all held).
        choice = choose_for_reply(
            incoming.sender, incoming.received, incoming.subject, reply_text(msg), index
        )
        if choice is not None:
            thread_id, hold = choice.thread_id, choice.hold
            own = from_sender(incoming.sender, incoming.received, index)
            others = _about_others(settings, store, incoming.subject, [t.id for t in own])
            if others:
                # Written about another apology (its subject, none of the sender's own):
                # that thread may have its answer, and the sender's own may not. Both wait
                # for the user; none is marked replied on a guess.
                held = [t.id for t in own if t.state in OPEN_THREAD]
                hold = tuple(sorted({*held, *others}))
            elif not hold and any(
                # (open only: a thread still sending would ignore the hold, and lose the
                # message; it is marked replied, as before)
                t.id == thread_id and t.state in OPEN_THREAD and incoming.received < t.sent_at
                for t in own
            ):
                # It came before the apology went (the clock slack lets it match): "where
                # are you?" written before they saw it, or a reply from a server whose clock
                # is behind. Neither marked replied (the follow-up was lost) nor ignored.
                hold, before_apology = (thread_id,), True
    thread = store.thread(thread_id, lenient=True)
    if thread is None:
        return None
    reading.threads[thread_id] = thread
    for other in hold:
        row = reading.threads.get(other) or store.thread(other, lenient=True)
        if row is not None:
            reading.threads[other] = row
    # Our Message-ID alone is not enough: a report quoting or forging it while naming
    # someone else would bounce this thread and block its address everywhere.
    concerns = verdict.kind != BOUNCE or bounce_concerns(named, recipients_of(thread))
    label = f"{verdict.kind}{f'/{verdict.subtype}' if verdict.subtype else ''}"
    line = f"{label}: {verdict.reason}"
    if not concerns:
        who = ", ".join(named)
        log.warning(
            "%s UID %s: a delivery report for %s carries thread %s's Message-ID; not applied",
            folder,
            uid,
            who,
            thread_id,
        )
        line = f"unmatched bounce: it names {who}, not a recipient of this thread"
    return NewMessage(
        place=place(settings, folder),
        folder=folder,
        uidvalidity=uidvalidity,
        uid=uid,
        thread_id=thread_id,
        message_id=incoming.message_id,
        sender=incoming.sender,
        subject=incoming.subject,
        label=label,
        verdict=line,
        refs=incoming.refs,
        classified=Classified(
            kind=verdict.kind,
            subtype=verdict.subtype,
            sender=incoming.sender,
            subject=incoming.subject,
            received=incoming.received,
            reason=verdict.reason,
            return_date=verdict.return_date,
            status=verdict.status,
            hold=hold,
            before_apology=before_apology,
            concerns=concerns,
            only_cc=only_cc(named, thread) if verdict.kind == BOUNCE else (),
        ),
        # A reply that holds other threads holds them once: the user may have released
        # them since it was first seen.
        seen_before=bool(hold) and store.seen_incoming(place(settings, folder), uidvalidity, uid),
    )


def _about_others(
    settings: Settings, store: Store, subject: str, own: list[int]
) -> tuple[int, ...]:
    """See :func:`~mailer.model.matching.about_others`; ``own``: the sender's threads."""
    if not subject.strip():
        return ()
    return about_others(
        subject, _subjects(store, own), store.open_thread_subjects(settings.account)
    )


def _dedupe_all(*groups: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(a.lower() for group in groups for a in group))


def only_cc(failed: Iterable[str], thread: ThreadRow) -> tuple[str, ...]:
    """The addresses a bounce names, if every one is a Cc recipient of the thread; else
    nothing: the bounce is the thread's (an address it names that is not a Cc may be the
    interviewer's, rewritten by a forwarder)."""
    named = {a.lower() for a in failed}
    cc = {str(a).lower() for a in thread.facts.get("cc") or []}
    return tuple(sorted(named)) if named and named <= cc else ()


def recipients_of(thread: ThreadRow) -> set[str]:
    """Every address the thread was sent to or may be answered from, lower case."""
    cc = thread.facts.get("cc") or []
    return {a.lower() for a in (thread.recipient, *cc, *thread.alt_addresses) if a}


def _unreadable(
    settings: Settings,
    folder: str,
    uidvalidity: int,
    uid: int,
    exc: Exception,
    incoming: Incoming | None,
    index: ThreadIndex,
    raw_headers: bytes = b"",
) -> NewMessage:
    """A message the watcher cannot read: logged, and handed on to be recorded (once) and
    passed over, so the pass goes on and the folder position moves past it. It is tied to
    the thread it matches, if any; one whose headers could not even be parsed is tied by any
    of our Message-IDs its raw headers quote."""
    reason = one_line(exc)
    log.warning("%s UID %s: cannot read this message, passed over: %s", folder, uid, reason)
    try:
        thread_id = match(incoming, index) if incoming is not None else None
    except Exception:  # the same trouble again: the message is tied to no thread we know
        thread_id = None
    if thread_id is None and incoming is None:
        thread_id = _quoted_thread(raw_headers, index)
    return NewMessage(
        place=place(settings, folder),
        folder=folder,
        uidvalidity=uidvalidity,
        uid=uid,
        thread_id=thread_id,
        sender=incoming.sender if incoming is not None else "",
        subject=incoming.subject if incoming is not None else "",
        unreadable=reason,
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
