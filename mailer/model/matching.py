"""Which thread an incoming message belongs to (pure: headers in, thread ID out)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import Message
from typing import NamedTuple

from mailer.model.excerpt import header_text, parse_address, without_nul
from mailer.model.senders import is_delivery_system

_MSGID = re.compile(r"<[^<>\s]+>")
# What separates IDs written without their angle brackets (some old clients and ticket
# systems do): split on it, each piece is then looked at once (a pattern that searched for
# "x@y" took 1.2 s on 16,000 characters with no "@").
_ID_GAPS = re.compile(r"[\s<>,;\"()]+")
# Server clocks drift; a reply stamped a little before our send is still a reply.
_CLOCK_SLACK = timedelta(minutes=5)
# How long before an apology a message from its recipient still holds its thread (see
# sent_just_after): a day covers a clock set to the wrong zone (up to 14 hours).
_JUST_BEFORE = timedelta(hours=24)
# Bounds on what is read of a new message's headers (decoding costs time in the length).
_MAX_VALUE = 2_000
_MAX_REFS_TEXT = 16_000
_MAX_FROM = 16_000  # parse_address strips deep comments before it bounds the rest
_MAX_REPEATS = 20


class IndexedThread(NamedTuple):
    """What the matcher knows of a thread. A tuple: the whole thread index builds one for
    every thread in the store (a frozen dataclass took three times as long at 10k)."""

    id: int
    recipient: str
    alt_addresses: tuple[str, ...]
    alt_domains: tuple[str, ...]
    sent_at: datetime
    state: str
    company: str = ""
    role: str = ""


@dataclass(frozen=True)
class ThreadIndex:
    our_ids: dict[str, int]  # every Message-ID we sent -> its thread
    threads: tuple[IndexedThread, ...]


@dataclass(frozen=True)
class Incoming:
    """The few headers the watcher fetches for each new message."""

    message_id: str | None
    refs: tuple[str, ...]  # In-Reply-To + References
    sender: str  # From address, lower case
    sender_name: str
    subject: str
    received: datetime  # the server's INTERNALDATE
    report: bool  # looks like a delivery report: needs its body to be matched

    @classmethod
    def from_headers(cls, msg: Message, received: datetime) -> Incoming:
        """Read from untrusted headers: every value is cut to a bounded length first, so
        the work is bounded whatever the sender wrote (see :mod:`mailer.model.excerpt`)."""
        refs: list[str] = []
        for name in ("In-Reply-To", "References"):
            for value in msg.get_all(name, [])[:_MAX_REPEATS]:
                # The nearest ancestors are listed last: keep the end of a long list.
                text = without_nul(str(value)[-_MAX_REFS_TEXT:])
                found = _MSGID.findall(text)
                refs.extend(found or _bare_ids(text))
        name, addr = parse_address(header_text(msg.get("From", ""), _MAX_FROM))
        mid = _MSGID.search(_first(msg, "Message-ID"))
        ctype = _first(msg, "Content-Type").lower()
        # The classifier's own definition: one that skipped bounces@ or mdaemon@ here would
        # drop their plain-text bounces before they were classified.
        report = "multipart/report" in ctype or is_delivery_system(addr, name)
        return cls(
            message_id=mid.group(0) if mid else None,
            refs=tuple(refs),
            sender=addr.lower(),
            sender_name=name,
            subject=_decoded(_first(msg, "Subject")),
            received=received,
            report=report,
        )


def _bare_ids(text: str) -> list[str]:
    if "@" not in text:
        return []
    return [f"<{t}>" for t in _ID_GAPS.split(text) if t.count("@") == 1 and t.strip("@") == t]


def _first(msg: Message, name: str) -> str:
    return header_text(msg.get(name, ""), _MAX_VALUE)


def _decoded(value: str) -> str:
    """An RFC 2047 header as text; anything undecodable is kept as it came."""
    from email.errors import MessageError
    from email.header import decode_header, make_header

    try:
        text = str(make_header(decode_header(value)))
    except (UnicodeError, LookupError, ValueError, MessageError):  # e.g. broken base64
        text = value
    return " ".join(text.split())


def match(incoming: Incoming, index: ThreadIndex) -> int | None:
    """The thread this message answers, by headers alone; None if none (or it is ours)."""
    if incoming.message_id and incoming.message_id in index.our_ids:
        return None  # our own message (a Bcc to self, a copy in a watched folder)
    thread_id = by_reference(incoming, index)
    if thread_id is not None:
        return thread_id
    return by_sender(incoming.sender, incoming.received, index)


def by_sender(sender: str, received: datetime, index: ThreadIndex) -> int | None:
    """The newest thread sent to this address (or an alternate one) before the message came."""
    candidates = from_sender(sender, received, index)
    if not candidates:
        return None
    return _newest(candidates).id


def from_sender(sender: str, received: datetime, index: ThreadIndex) -> list[IndexedThread]:
    """Every thread sent to this address (or an alternate one) before the message came."""
    return [t for t in _to_address(sender, index) if t.sent_at - _CLOCK_SLACK <= received]


def sent_just_after(sender: str, received: datetime, index: ThreadIndex) -> list[IndexedThread]:
    """The threads to this address (or an alternate one) whose apology went, by this
    computer's clock, within a day after the message came, by the server's (and more than
    the clock slack after): a message written before the apology was read, or the answer
    itself when the two clocks disagree (a laptop's set hours wrong). Never taken as a
    reply on that alone: the watcher holds them for the user."""
    return [
        t
        for t in _to_address(sender, index)
        if t.sent_at - _JUST_BEFORE <= received < t.sent_at - _CLOCK_SLACK
    ]


def _to_address(sender: str, index: ThreadIndex) -> list[IndexedThread]:
    """The threads sent to this address, or to an alternate address or domain of theirs."""
    if not sender:
        return []
    domain = sender.rpartition("@")[2]
    return [
        t
        for t in index.threads
        if sender == t.recipient or sender in t.alt_addresses or domain in t.alt_domains
    ]


def _newest(threads: list[IndexedThread]) -> IndexedThread:
    return max(threads, key=lambda t: (t.sent_at, t.id))


def by_reference(incoming: Incoming, index: ThreadIndex) -> int | None:
    """The thread whose Message-ID this message's In-Reply-To/References carry, if any."""
    for ref in reversed(incoming.refs):  # the nearest ancestor is listed last
        if ref in index.our_ids:
            return index.our_ids[ref]
    return None


# --- an unthreaded human reply from an address with several threads ---------------------------

# States in which a thread may still get a follow-up (or is held from one): the ones a reply
# with no references must not leave open by guessing. Spelled here, not imported from
# followup, to keep this module free of policy; followup.OPEN_STATES is the same set.
_OPEN = frozenset({"awaiting_reply", "followed_up", "held"})
# How much of what the sender wrote is searched for a company or role.
_MAX_NAMING_TEXT = 8_000
# Legal forms left off when a company is named in passing ("Acme" for "Acme Ltd.").
_LEGAL_FORMS = frozenset(
    {"inc", "incorporated", "ltd", "limited", "llc", "llp", "plc", "gmbh", "ag", "sa", "sas"}
    | {"sarl", "bv", "nv", "corp", "corporation", "co", "company", "pty", "oy", "ab", "as"}
    | {"aps", "spa", "srl", "kk"}
)
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class ReplyChoice:
    """Where an unthreaded human reply goes: ``thread_id`` records it; ``hold`` lists the open
    threads (``thread_id`` among them) that must wait for the user, empty when one is named."""

    thread_id: int
    hold: tuple[int, ...] = ()


def choose_for_reply(
    sender: str, received: datetime, subject: str, text: str, index: ThreadIndex
) -> ReplyChoice | None:
    """The thread a human reply without our references answers, when its address has sent
    to several. A reply that names one thread (see :func:`named`) answers that one; one that
    names several open threads, or none while several are open, holds those open threads:
    stopping a follow-up to someone who has just answered matters more than guessing right.
    None when no thread was sent to that address."""
    candidates = from_sender(sender, received, index)
    if not candidates:
        return None
    chosen = named(candidates, subject, text) or candidates
    open_ones = [t for t in chosen if t.state in _OPEN]
    if len(open_ones) > 1:
        ids = tuple(sorted(t.id for t in open_ones))
        return ReplyChoice(_newest(open_ones).id, ids)
    if open_ones:
        return ReplyChoice(open_ones[0].id)
    # Every thread it may answer is closed: as before, the newest one (nothing changes).
    return ReplyChoice(_newest(chosen).id)


def carries(message_subject: str, apology_subject: str) -> bool:
    """Whether a message's subject carries an apology's ("RE: FW: <it>"), in any case and
    however its spaces were folded."""
    wanted = " ".join(apology_subject.split()).casefold()
    return bool(wanted) and wanted in " ".join(message_subject.split()).casefold()


def about_others(
    message_subject: str, own: Mapping[int, str], open_threads: Iterable[tuple[int, str]]
) -> tuple[int, ...]:
    """The open threads, not sent to the message's sender, whose apology subject a human
    message with no references carries, when it carries none of the subjects of the
    sender's own threads (``own``: id -> subject): someone an apology went to, writing
    about another apology (a recruiter handling two interviews, answering a forward). The
    same subject heading the sender's own thread makes it the sender's reply."""
    if any(carries(message_subject, s) for s in own.values()):
        return ()
    return tuple(i for i, s in open_threads if i not in own and carries(message_subject, s))


def closed_reference(incoming: Incoming, index: ThreadIndex) -> bool:
    """Whether the thread this message refers to is over (replied, cancelled, no answer...):
    a person who answers in an old conversation may well be answering a newer apology, so
    such a reply is placed as one without references is (:func:`choose_for_reply`)."""
    referenced = by_reference(incoming, index)
    if referenced is None:
        return False
    return any(t.id == referenced and t.state not in _OPEN for t in index.threads)


def named(threads: list[IndexedThread], subject: str, text: str) -> list[IndexedThread]:
    """The threads a message names in its subject or in what its sender wrote (``text``,
    quoted text already dropped): by company, whole words in any case, with or without a
    legal form ("Acme" names "Acme Ltd."); among those (or, when no company is named, among
    all) by role. Empty when it names none."""
    haystack = _words(f"{subject}\n{text[:_MAX_NAMING_TEXT]}")
    by_company = [t for t in threads if any(_has(haystack, n) for n in _company_names(t.company))]
    pool = by_company or threads
    by_role = [t for t in pool if _has(haystack, _words(t.role))]
    return by_role or by_company


def _words(text: str) -> tuple[str, ...]:
    return tuple(w.casefold() for w in _WORD.findall(text))


def same_company(a: str, b: str) -> bool:
    """Whether two spellings name one company: the same words, in any case, without the
    legal forms at the end ("Acme", "ACME Inc.", "Acme Ltd.")."""
    return _company_names(a)[-1] == _company_names(b)[-1]


def _company_names(company: str) -> list[tuple[str, ...]]:
    words = _words(company)
    names = [words]
    while len(words) > 1 and words[-1] in _LEGAL_FORMS:
        words = words[:-1]
        names.append(words)
    return names


def _has(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    """Whether ``needle`` occurs as consecutive whole words in ``haystack``."""
    n = len(needle)
    if not n:
        return False
    first = needle[0]
    return any(
        haystack[i] == first and haystack[i : i + n] == needle for i in range(len(haystack) - n + 1)
    )


def match_report(
    original_ids: set[str],
    failed_recipients: tuple[str, ...],
    received: datetime,
    index: ThreadIndex,
) -> int | None:
    """A delivery report: by the Message-ID of the original it carries, else by the failed
    recipient (bounces come from MAILER-DAEMON, not from the interviewer)."""
    ours = sorted({index.our_ids[mid] for mid in original_ids if mid in index.our_ids})
    if ours:
        # Of several of our threads, the one the report names a recipient of; the watcher
        # still checks that it does before applying it.
        failed = {r.lower() for r in failed_recipients}
        named = [t.id for t in index.threads if t.id in ours and addressed(t, failed)]
        return (named or ours)[0]
    for rcpt in failed_recipients:
        candidates = [
            t
            for t in index.threads
            if t.recipient == rcpt.lower() and t.sent_at - _CLOCK_SLACK <= received
        ]
        if candidates:
            return max(candidates, key=lambda t: (t.sent_at, t.id)).id
    return None


def addressed(thread: IndexedThread, addresses: set[str]) -> bool:
    """Whether any of ``addresses`` (lower case) is this thread's recipient or alternate."""
    return thread.recipient in addresses or bool(addresses.intersection(thread.alt_addresses))


def bounce_concerns(failed_recipients: tuple[str, ...], recipients: set[str]) -> bool:
    """Whether a bounce that names ``failed_recipients`` is about a thread sent to
    ``recipients`` (lower case: its To, Cc and alternate addresses). A report that names no
    one cannot be checked and is taken at its Message-ID's word; one that names only others
    carries our Message-ID for some other reason (quoted, forwarded, forged)."""
    return not failed_recipients or any(r.lower() in recipients for r in failed_recipients)
