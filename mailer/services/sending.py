"""Sending one prepared apology (mailer.model.apology): record it, submit it once, file its
Sent copy; and when the next follow-up falls due after it.

The CLI and campaigns call these; nothing here parses options or prints.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

from mailer.adapters.clock import Clock, local_zone
from mailer.adapters.config import Settings
from mailer.adapters.crashpoint import crash_point
from mailer.adapters.sender import SmtpSession
from mailer.adapters.store import MessageRow, Store
from mailer.errors import DeliveryError, MailerError, StateError
from mailer.model.apology import Prepared
from mailer.model.facts import Facts, zone
from mailer.model.followup import first_due
from mailer.model.keys import dedupe_key
from mailer.model.lifecycle import settle_advice
from mailer.model.schedule import holidays_for
from mailer.model.settings import parse_wait
from mailer.services.delivery import record_failure, settle_unrecorded, unrecorded

if TYPE_CHECKING:
    from mailer.adapters.mailbox import Mailbox

log = logging.getLogger(__name__)


@dataclass
class SendResult:
    thread_id: int
    message_id: str
    smtp_reply: str
    follow_up_due: datetime | None
    sent_copy: str
    warnings: list[str] = field(default_factory=list)


def refuse_duplicate(store: Store, facts: Facts, now: datetime, account: str = "") -> None:
    """Fail early (before asking for confirmation) if this interview already has an apology."""
    key = dedupe_key(facts.to, facts.interview, account)
    store.guard_duplicate(key, facts.to, now, company=facts.company, account=account)


def recipient_zone(settings: Settings, interviewer_tz: str) -> tzinfo:
    """Follow-ups keep the interviewer's office hours (``interviewer_tz``: their zone, as
    :attr:`Facts.reader_tz` or a thread's ``recipient_tz`` gives it) when it is known."""
    return (
        zone(interviewer_tz, "interviewer_tz")
        if interviewer_tz
        else local_zone(settings.sender.timezone)
    )


def due_after(
    settings: Settings, sent_at: datetime, interviewer_tz: str = "", tz: tzinfo | None = None
) -> datetime | None:
    """When the next follow-up is due after a message sent at ``sent_at``. ``tz``: the
    :func:`recipient_zone` already read (a campaign reads each once per run)."""
    if settings.follow_up.max_follow_ups == 0:
        return None
    tz = tz or recipient_zone(settings, interviewer_tz)
    years = range(sent_at.year, sent_at.year + 2)
    return first_due(
        sent_at,
        parse_wait(settings.follow_up.wait),
        tz,
        settings.follow_up.window,
        holidays_for(settings.follow_up.holidays_country, years),
    )


def send(
    settings: Settings,
    prepared: Prepared,
    store: Store,
    clock: Clock,
    *,
    again: bool = False,
    session: SmtpSession | None = None,
    smtp: Callable[..., SmtpSession] = SmtpSession,
    mailbox: Callable[..., Mailbox] | None = None,
) -> SendResult:
    """Record, submit and file one apology. Never sends a second copy without ``again``.

    With ``session`` the caller's open connection is reused (batches); otherwise one is
    opened (with ``smtp``) and closed here. ``smtp`` and ``mailbox`` build the connections
    (the real ones by default; a test passes the fakes of :mod:`mailer.testing`).
    """
    facts, composed = prepared.facts, prepared.composed
    # The thread remembers its account: its follow-ups go out from the same mailbox.
    account = {"account": settings.account} if settings.account else {}
    thread_id, row_id = record(
        settings, prepared, store, clock(), guard_duplicates=not again, **account
    )
    crash_point("after-queued")
    try:
        if session is None:
            with smtp(settings.smtp, retries=settings.retries) as own:
                reply = submit(store, own, row_id, clock)
        else:
            reply = submit(store, session, row_id, clock)
    except DeliveryError as exc:
        # Requeued or refused alike fail here: nothing retries a one-shot apology.
        record_failure(store, row_id, exc, clock(), one_shot=True)
        if exc.kind == "in-doubt":  # the thread is known here: name the command in full
            exc.hint = settle_advice(thread_id, not settings.imap.save_sent)
        raise
    sent_at = clock()
    due = due_after(settings, sent_at, facts.reader_tz)
    try:
        store.mark_sent(row_id, sent_at, reply, due)
    except StateError as exc:
        if not settle_unrecorded(store, row_id, reply, exc, clock()):
            raise unrecorded("apology", thread_id, reply, exc) from None
        log.warning("the apology's record reported an error (%s), but it was recorded", exc)
    crash_point("after-sent")
    outcome, warnings = save_sent_copy(
        settings, store, row_id, composed.raw, sent_at, mailbox=mailbox
    )
    if not outcome.startswith("failed"):
        # This account's copies an earlier, interrupted command left unfiled. The apology
        # itself is sent and recorded: trouble here is only a warning.
        try:
            warnings += file_unfiled_copies(settings, store, mailbox=mailbox)[1]
        except MailerError as exc:
            warnings.append(f"older Sent copies are still to file: {exc}")
    return SendResult(
        thread_id=thread_id,
        message_id=composed.message_id,
        smtp_reply=reply,
        follow_up_due=due,
        sent_copy=outcome,
        warnings=warnings,
    )


def record(
    settings: Settings,
    prepared: Prepared,
    store: Store,
    now: datetime,
    *,
    guard_duplicates: bool = True,
    **campaign: Any,
) -> tuple[int, int]:
    """Record the thread and its apology as ``queued``; returns (thread, message row).

    ``campaign`` passes on the campaign's columns (campaign, entry_key, account, detail,
    durable) to :meth:`Store.create_thread`.
    """
    facts, composed = prepared.facts, prepared.composed
    return store.create_thread(
        now=now,
        facts=facts.to_record(),
        key=dedupe_key(facts.to, facts.interview, campaign.get("account", "")),
        subject=composed.subject,
        message_id=composed.message_id,
        raw=composed.raw,
        envelope_from=settings.sender.address,
        recipients=composed.recipients,
        follow_up_wait=settings.follow_up.wait,
        max_follow_ups=settings.follow_up.max_follow_ups,
        guard_duplicates=guard_duplicates,
        recipient_tz=facts.reader_tz or settings.sender.timezone,
        **campaign,
    )


def submit(
    store: Store, session: SmtpSession, row_id: int, clock: Clock, row: MessageRow | None = None
) -> str:
    """Run the SMTP transaction for a recorded message, committing ``submitting`` first and
    the durable final-dot mark inside DATA. ``row``: the message as the caller has just read
    it (its bytes and envelope do not change), so it is not read again."""
    row = row or store.message(row_id)

    def before_mail() -> None:
        store.mark_submitting(row_id, clock())
        crash_point("after-submitting")

    reply = session.submit(
        row.envelope_from,
        row.recipients,
        row.raw,
        before_mail=before_mail,
        before_final_dot=lambda: store.mark_final_dot(row_id, clock()),
    )
    crash_point("after-250")
    return reply


def save_sent_copy(
    settings: Settings,
    store: Store,
    row_id: int,
    raw: bytes,
    sent_at: datetime,
    box: Mailbox | None = None,
    *,
    mailbox: Callable[..., Mailbox] | None = None,
) -> tuple[str, list[str]]:
    """Append the very bytes that were sent to the Sent folder; a failure only warns.

    ``box`` reuses an open IMAP connection (the follow-up pass has one); otherwise one is
    opened with ``mailbox`` (by default the real :class:`~mailer.adapters.mailbox.Mailbox`).
    """
    from mailer.adapters.mailbox import Mailbox

    mailbox = mailbox or Mailbox

    if not settings.imap.save_sent:
        store.record_sent_copy(row_id, SKIPPED_COPY)
        return "skipped", []
    try:
        if box is not None:
            folder = box.append_sent(raw, sent_at)
        else:
            with mailbox(settings.imap) as own:
                folder = own.append_sent(raw, sent_at)
    except MailerError as exc:
        store.record_sent_copy(row_id, f"failed: {exc}")
        return "failed", [f"the message was sent, but no copy could be saved in Sent: {exc}"]
    crash_point("after-copy")
    store.record_sent_copy(row_id, f"saved in {folder}")
    return f"saved in {folder}", []


SKIPPED_COPY = "skipped: the provider files sent mail itself"


def file_unfiled_copies(
    settings: Settings,
    store: Store,
    box: Mailbox | None = None,
    *,
    mailbox: Callable[..., Mailbox] | None = None,
) -> tuple[int, list[str]]:
    """File the Sent copies of this account's sent messages that never got one: a process
    killed between the 250 and the APPEND, a failed APPEND, ``resolve --sent``. Each copy's
    fate is unknown, so Sent is searched for its Message-ID before anything is appended:
    none is filed twice. Returns (copies filed, warnings). The normal path never comes here:
    it files its copy right after the 250, with no search. Without ``box`` one connection
    is opened with ``mailbox`` (by default the real :class:`~mailer.adapters.mailbox.Mailbox`).
    """
    from mailer.adapters.mailbox import Mailbox

    mailbox = mailbox or Mailbox

    rows = store.claim_unfiled_copies(settings.account)
    if not rows:
        return 0, []
    if not settings.imap.save_sent:
        store.record_sent_copies([(m.id, SKIPPED_COPY) for m in rows])
        return 0, []
    own = box is None
    filed = 0
    done: set[int] = set()
    try:
        if box is None:
            box = mailbox(settings.imap)
            box.connect()
        folder = box.sent_folder()
        for m in rows:
            if box.contains_message_id(folder, m.message_id):
                outcome = f"found in {folder}"
            else:
                when = datetime.fromisoformat(m.sent_at) if m.sent_at else None
                box.append_sent(m.raw, when or datetime.now().astimezone())
                outcome = f"saved in {folder} (caught up)"
                filed += 1
            # One by one: a run killed here leaves the rest for the next, which looks first.
            store.record_sent_copy(m.id, outcome)
            done.add(m.id)
        if box.selected is not None:
            box.unselect()  # the watcher expects no folder left open behind its back
    except MailerError as exc:
        # Left for the next command, which looks in Sent first.
        store.record_sent_copies([(m.id, f"failed: {exc}") for m in rows if m.id not in done])
        return filed, [f"{len(rows) - len(done)} Sent cop(ies) still to file: {exc}"]
    finally:
        if own and box is not None:
            box.close()
    return filed, []
