"""Sending a campaign: each entry's apology at most once, over one SMTP connection per
account, paced, capped per day, resumable by simply running again.

What has been sent is read from the state store, never from a position in the file: an entry
is looked up by its key, and the store refuses a second live apology for the same key or the
same interview inside the transaction that records it (so two runs at once cannot both send).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

from mailer.adapters.clock import Clock
from mailer.adapters.config import Settings
from mailer.adapters.crashpoint import crash_point
from mailer.adapters.mailbox import Mailbox
from mailer.adapters.sender import Envelope, SmtpSession
from mailer.adapters.store import Store
from mailer.errors import DeliveryError, DuplicateError, StateError
from mailer.model import lifecycle
from mailer.model.lifecycle import Outcome as Fate
from mailer.model.runplan import Act, Feedback, RunPlan, Why
from mailer.model.throttle import Pacer, too_many
from mailer.services import sending
from mailer.services.campaign import Campaign, Entry
from mailer.services.delivery import daily_room, record_failure, settle_unrecorded, unrecorded
from mailer.services.history import past_attempts, plan_items

log = logging.getLogger("mailer.services.campaign")

# What happened to an entry in a run (or would, in a dry run).
SENT_NOW = "sent"
SKIPPED = "skipped"
FAILED_NOW = "failed"
IN_DOUBT_NOW = "in doubt"
HELD_BACK = "held back"
WOULD_SEND = "would send"
MAX_SLOW_DOWNS = 6
GATHER_SECONDS = 0.25  # how long the Sent-copy thread lets copies pile up before filing
BATCH = 50  # Sent copies filed in one APPEND at most


@dataclass(frozen=True)
class Outcome:
    key: str
    where: str
    result: str
    detail: str = ""
    thread_id: int | None = None
    account_down: bool = False  # the account's trouble: its other entries wait this run
    in_doubt: bool = False  # skipped, or not known to be sent, because it is in doubt
    changed: bool = False  # skipped until the user decides: an earlier version of it went


@dataclass
class RunReport:
    outcomes: list[Outcome] = field(default_factory=list)
    stopped: str = ""  # why the run stopped early, if it did
    sent_copy_problems: list[str] = field(default_factory=list)
    # Kept as outcomes are added: the progress display reads them after every entry, and
    # recounting the list each time made a run quadratic in its entries.
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self.counts[outcome.result] += 1

    def count(self, result: str) -> int:
        return self.counts[result]

    @property
    def held_back(self) -> int:
        return self.count(HELD_BACK)


Progress = Callable[[Outcome, RunReport], None]
# A Sent copy to file: (settings, message row, bytes, sent at, a Message-ID to look for first).
Job = tuple[Settings, int, bytes, datetime, str]


class SentCopies:
    """Files the Sent copies on its own thread and IMAP connection per account, so that the
    copy (a round trip or more each) is off each message's critical path."""

    def __init__(self, store: Store, report: RunReport) -> None:
        self.store = store
        self.report = report
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.ending = threading.Event()  # set by finish: no more gathering
        self.thread = threading.Thread(target=self._work, name="sent-copies", daemon=True)
        self.thread.start()

    def add(
        self,
        settings: Settings,
        row_id: int,
        raw: bytes,
        sent_at: datetime,
        unless_there: str = "",
    ) -> None:
        self.jobs.put((settings, row_id, raw, sent_at, unless_there))

    def finish(self, wait: bool = True) -> None:
        """No more copies; file those queued, waiting for them unless ``wait`` is False (a
        second Ctrl-C: the user said "now"). Copies cut off there are recorded as unfiled,
        or not at all, and the next command files them, looking in Sent first."""
        self.ending.set()
        self.jobs.put(None)
        if wait:
            self.thread.join()

    def _work(self) -> None:
        boxes: dict[str, Mailbox] = {}
        done = False
        try:
            while not done:
                # Take whatever has queued up: one APPEND and one commit for the lot.
                # Gather for a moment: one APPEND of 50 costs far less than 50 of one.
                batch = [self.jobs.get()]
                if batch[-1] is not None and self.jobs.qsize() < BATCH - 1:
                    # Not woken by each copy queued meanwhile: every wake-up would take the
                    # interpreter's lock from the thread that is sending. Only the end of the
                    # run cuts the wait short.
                    self.ending.wait(GATHER_SECONDS)
                while len(batch) < BATCH and batch[-1] is not None:
                    try:
                        batch.append(self.jobs.get_nowait())
                    except queue.Empty:
                        break
                if batch[-1] is None:
                    done = True
                jobs = [job for job in batch if job is not None]
                by_account: dict[str, list[Job]] = {}
                for job in jobs:
                    by_account.setdefault(job[0].account, []).append(job)
                outcomes = []
                for group in by_account.values():
                    outcome = self._append(boxes, group)
                    outcomes += [(job[1], outcome) for job in group]
                try:
                    if outcomes:
                        self.store.record_sent_copies(outcomes, durable=False)
                except Exception as exc:  # keep filing the rest; the run reports it
                    self.report.sent_copy_problems.append(f"could not record Sent copies: {exc}")
        finally:
            for box in boxes.values():
                box.close()

    def _append(self, boxes: dict[str, Mailbox], group: list[Job]) -> str:
        settings = group[0][0]
        name = settings.account
        try:
            if name not in boxes:
                box = Mailbox(settings.imap)
                box.connect()
                boxes[name] = box
            box = boxes[name]
            todo = [
                (raw, at)
                for _, _, raw, at, unless in group
                if not (unless and box.contains_message_id(box.sent_folder(), unless))
            ]
            if box.selected is not None:
                box.unselect()
            folder = box.append_sent_many(todo) if todo else box.sent_folder()
            return f"saved in {folder}"
        except Exception as exc:  # on this thread nothing else would report it
            self.report.sent_copy_problems.append(str(exc))
            if name in boxes:
                boxes.pop(name).close()  # a new connection for the next ones
            return f"failed: {exc}"


def run_campaign(
    campaign: Campaign,
    store: Store,
    clock: Clock,
    *,
    limit: int | None = None,
    dry_run: bool = False,
    retry_failed: bool = False,
    smtp: Callable[..., SmtpSession] = SmtpSession,
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> RunReport:
    """Send every entry not yet sent, in file order. Safe to interrupt and run again."""
    import random

    report = RunReport()
    stop = stop or threading.Event()
    if sleep is time.sleep:
        # Ctrl-C must end a pause at once: the next message must not go after it.
        def sleep(seconds: float) -> None:
            stop.wait(seconds)

    throttle = campaign.throttle
    pacer = Pacer(throttle.per_minute, throttle.jitter_seconds, clock, sleep, rng or random.random)
    entries = campaign.entries
    accounts = {e.account: e.settings for e in entries}
    plan = RunPlan(
        plan_items(campaign, past_attempts(campaign, store), retry_failed),
        room={a: daily_room(s, store, clock(), throttle.daily_cap) for a, s in accounts.items()},
        limit=limit,
        dry_run=dry_run,
    )
    sessions: dict[str, SmtpSession] = {}
    sent_on: dict[str, int] = {}  # messages on the current connection, per account
    zones: dict[tuple[str, str], tzinfo] = {}  # see _send_entry
    copies = None if dry_run else SentCopies(store, report)

    def upcoming(entry: Entry) -> Envelope | None:
        """The envelope of the entry that goes next on ``entry``'s connection if ``entry``
        is sent, with no pause between them; None if that is not known now."""
        if stop.is_set() or not pacer.immediate():
            return None
        action = plan.next_send(Feedback(took_room=True))
        if action is None or action.account != entry.account:
            return None
        after = entries[action.index]
        return after.settings.sender.address, after.message.recipients

    def record(outcome: Outcome) -> None:
        report.add(outcome)
        if progress is not None:
            progress(outcome, report)

    feedback: Feedback | None = None
    interrupted = False
    try:
        while True:
            if stop.is_set():
                report.stopped = report.stopped or "interrupted"
                break
            action = plan.next_action(feedback)
            feedback = None
            if action is None:
                report.stopped = report.stopped or plan.stopped
                break
            entry = entries[action.index]
            if action.act is Act.SKIP:
                record(
                    Outcome(
                        entry.key,
                        entry.where,
                        SKIPPED,
                        action.why,
                        action.thread_id,
                        in_doubt=action.in_doubt,
                        changed=action.skip is Why.CHANGED,
                    )
                )
            elif action.act is Act.FAIL:
                record(Outcome(entry.key, entry.where, FAILED_NOW, action.why, account_down=True))
            elif action.act is Act.HOLD_BACK:
                record(Outcome(entry.key, entry.where, HELD_BACK, action.why))
            elif action.act is Act.WOULD_SEND:
                record(Outcome(entry.key, entry.where, WOULD_SEND, entry.facts.to))
            else:
                outcome = _send_entry(
                    campaign,
                    entry,
                    store,
                    clock,
                    pacer,
                    sessions,
                    sent_on,
                    smtp,
                    copies,
                    sleep,
                    stop,
                    zones,
                    upcoming,
                )
                if outcome is None:  # stopped during a pause, before this entry was sent
                    report.stopped = "interrupted"
                    break
                feedback = Feedback(
                    took_room=outcome.result in (SENT_NOW, IN_DOUBT_NOW),
                    account_down=outcome.detail if outcome.account_down else "",
                )
                record(outcome)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        for session in sessions.values():
            session.close()
        if copies is not None:
            # (its thread is a daemon thread: the process does not wait for it either)
            copies.finish(wait=not interrupted)
    return report


def _send_entry(
    campaign: Campaign,
    entry: Entry,
    store: Store,
    clock: Clock,
    pacer: Pacer,
    sessions: dict[str, SmtpSession],
    sent_on: dict[str, int],
    smtp: Callable[..., SmtpSession],
    copies: SentCopies | None,
    sleep: Callable[[float], None],
    stop: threading.Event,
    zones: dict[tuple[str, str], tzinfo],
    upcoming: Callable[[Entry], Envelope | None] = lambda entry: None,
) -> Outcome | None:
    """Send one entry (retrying what may be retried). None if ``stop`` came during a pause:
    then nothing more was sent. ``zones``: the follow-up zones read so far in this run.
    ``upcoming``: the next entry's envelope, written behind this one's final dot."""
    settings, prepared = entry.settings, entry.sendable()
    facts, composed = prepared.facts, prepared.composed
    ids: list[int] = []  # (thread, message row) once recorded

    def claim() -> None:
        # The entry is recorded straight as "submitting" while the server reads its envelope
        # (see SmtpSession.submit's in_envelope): no final dot can have gone before it, so
        # no "queued" commit is needed (a run killed before this point has recorded nothing,
        # and sends it next time; one that fails here drops the connection, so the server
        # discards the envelope). Not synced: the final-dot mark is the one synced commit,
        # and a run killed before it sends the entry again.
        if ids:
            store.mark_submitting(ids[1], clock())
        else:
            ids.extend(
                sending.record(
                    settings,
                    prepared,
                    store,
                    clock(),
                    campaign=campaign.name,
                    entry_key=entry.key,
                    account=entry.account,
                    detail={"policy": entry.policy} if entry.policy else None,
                    submitting=True,
                    durable=False,
                )
            )
        crash_point("after-submitting")

    def outcome(result: str, detail: str, account_down: bool = False) -> Outcome:
        return Outcome(
            entry.key,
            entry.where,
            result,
            detail,
            ids[0] if ids else None,
            account_down=account_down,
            in_doubt=result == IN_DOUBT_NOW,
        )

    crash_point("after-queued")
    name = entry.account
    failures = 0
    while True:
        pacer.wait()
        if stop.is_set():
            return None
        session = sessions.get(name)
        if session is not None and sent_on.get(name, 0) >= campaign.throttle.reconnect_after:
            session.close()  # a fresh connection now and then: some servers cap per-connection
            sent_on[name] = 0
        if session is None:
            # Retries are ours (paced, slowing down on "too many"), not the session's.
            session = sessions[name] = smtp(settings.smtp, retries=0)
            sent_on[name] = 0
        # With PIPELINING the server reads the next entry's envelope while this one's
        # answer comes back and is recorded (unless this connection ends after this one).
        ahead = upcoming(entry) if sent_on[name] + 1 < campaign.throttle.reconnect_after else None
        try:
            reply = session.submit(
                settings.sender.address,
                composed.recipients,
                composed.raw,
                in_envelope=claim,
                before_final_dot=lambda: store.mark_final_dot(ids[1], clock()),
                next_envelope=ahead,
            )
            crash_point("after-250")
        except DuplicateError as exc:
            return outcome(SKIPPED, exc.headline)
        except DeliveryError as exc:
            fate = lifecycle.outcome_of(exc)
            # The campaign's own rules over what the error means for the message: an account
            # error stops the account; "too many" slows down; anything else retries a while.
            blocked = fate is Fate.REQUEUE and lifecycle.blocks_account(exc)
            slowed = fate is Fate.REQUEUE and not blocked and too_many(exc.code, str(exc))
            if fate is not Fate.REQUEUE or blocked:
                give_up = True
            elif slowed:
                give_up = pacer.slow_downs >= MAX_SLOW_DOWNS
            else:
                failures += 1
                give_up = failures > settings.retries
            if ids:
                # Given up: nothing retries it this run, so it is failed, not left queued.
                record_failure(store, ids[1], exc, clock(), one_shot=give_up)
            if fate is Fate.IN_DOUBT or (fate is Fate.REQUEUE and not blocked):
                session.close()
            if fate is Fate.IN_DOUBT:
                return outcome(IN_DOUBT_NOW, str(exc))
            if blocked:
                # Login, certificate, TLS: no entry from this account can go this run.
                return outcome(FAILED_NOW, str(exc), account_down=True)
            if fate is Fate.FAILED:  # refused recipient, 5xx: this entry only
                if ids:
                    store.set_thread_detail(ids[0], {"refused": True})
                return outcome(FAILED_NOW, str(exc))
            if slowed:
                if give_up:
                    return outcome(
                        FAILED_NOW,
                        f"the server keeps saying 'too many'; run again later ({exc})",
                        account_down=True,
                    )
                pause = pacer.slow_down()
                log.warning("%s: slowing down, next try in %.0f s", exc, pause)
                continue
            if give_up:
                # A server that cannot be reached stays so for the next entries too.
                return outcome(
                    FAILED_NOW,
                    f"{exc} (a temporary failure: the next run tries again)",
                    account_down=exc.kind in ("connection", "timeout"),
                )
            sleep(2.0 ** (failures - 1))
            if stop.is_set():
                return None
            continue
        break
    sent_on[name] = sent_on.get(name, 0) + 1
    sent_at = clock()
    due = None
    if settings.follow_up.max_follow_ups:
        # An IANA zone read once per run, not per message (the machine's costs file reads);
        # a fixed offset, the last resort, is today's only and is read again.
        zone_key = (settings.sender.timezone, facts.reader_tz)
        tz = zones.get(zone_key) or sending.recipient_zone(settings, facts.reader_tz)
        if isinstance(tz, ZoneInfo):
            zones[zone_key] = tz
        due = sending.due_after(settings, sent_at, facts.reader_tz, tz=tz)
    saved = settings.imap.save_sent and copies is not None
    # If a power cut loses this commit, the message shows as in doubt: never sent again.
    try:
        store.mark_sent(
            ids[1],
            sent_at,
            reply,
            due,
            durable=False,
            sent_copy=None if saved else sending.SKIPPED_COPY,
        )
    except StateError as exc:
        # The server took it: say so, as 'mailer send' does, not as a bare store error.
        if not settle_unrecorded(store, ids[1], reply, exc, clock()):
            raise unrecorded("apology", ids[0], reply, exc, entry.where) from None
        log.warning("%s: its record reported an error (%s), but it was recorded", entry.where, exc)
    crash_point("after-sent")
    if saved and copies is not None:
        copies.add(settings, ids[1], composed.raw, sent_at)
    return outcome(SENT_NOW, reply)


def catch_up_copies(campaign: Campaign, store: Store) -> tuple[int, list[str]]:
    """File the Sent copies that interrupted commands left, for every account this campaign
    sends from: on every run, even one with nothing left to send."""
    filed, problems = 0, []
    accounts = {e.account: e.settings for e in campaign.entries}
    for settings in accounts.values():
        n, warnings = sending.file_unfiled_copies(settings, store)
        filed += n
        problems += warnings
    return filed, problems


def cancel_campaign(name: str, store: Store, now: datetime, key: str | None = None) -> list[int]:
    """Stop the pending follow-ups of a campaign's threads (or one entry's). Returns the
    threads cancelled. Queued follow-ups are cancelled in the same transaction."""
    cancelled = []
    for t in store.campaign_threads(name):
        if key is not None and t.entry_key != key:
            continue
        # Which threads a campaign cancel stops is the lifecycle table's CAMPAIGN_CANCELLED.
        if store.move_thread_if_still(
            t.id,
            lifecycle.ThreadEvent.CAMPAIGN_CANCELLED,
            now,
            "cancelled",
            {"cancelled": f"with campaign {name}"},
        ):
            cancelled.append(t.id)
    return cancelled
