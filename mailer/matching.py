"""Which thread an incoming message belongs to (pure: headers in, thread ID out)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import Message

from .excerpt import header_text, parse_address
from .senders import is_delivery_system

_MSGID = re.compile(r"<[^<>\s]+>")
# Server clocks drift; a reply stamped a little before our send is still a reply.
_CLOCK_SLACK = timedelta(minutes=5)
# Bounds on what is read of a new message's headers (decoding costs time in the length).
_MAX_VALUE = 2_000
_MAX_REFS_TEXT = 16_000
_MAX_FROM = 16_000  # parse_address strips deep comments before it bounds the rest
_MAX_REPEATS = 20


@dataclass(frozen=True)
class IndexedThread:
    id: int
    recipient: str
    alt_addresses: tuple[str, ...]
    alt_domains: tuple[str, ...]
    sent_at: datetime
    state: str


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
        the work is bounded whatever the sender wrote (see :mod:`mailer.excerpt`)."""
        refs: list[str] = []
        for name in ("In-Reply-To", "References"):
            for value in msg.get_all(name, [])[:_MAX_REPEATS]:
                # The nearest ancestors are listed last: keep the end of a long list.
                refs.extend(_MSGID.findall(str(value)[-_MAX_REFS_TEXT:]))
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
    for ref in reversed(incoming.refs):  # the nearest ancestor is listed last
        if ref in index.our_ids:
            return index.our_ids[ref]
    return by_sender(incoming.sender, incoming.received, index)


def by_sender(sender: str, received: datetime, index: ThreadIndex) -> int | None:
    """The newest thread sent to this address (or an alternate one) before the message came."""
    if not sender:
        return None
    domain = sender.rpartition("@")[2]
    candidates = [
        t
        for t in index.threads
        if (sender == t.recipient or sender in t.alt_addresses or domain in t.alt_domains)
        and t.sent_at - _CLOCK_SLACK <= received
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda t: (t.sent_at, t.id)).id


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
