"""``mailer daemon``: APScheduler decides when to look; IMAP IDLE says when to look *now*.

The only module that imports APScheduler. Every tick runs :func:`mailer.services.passes.run_pass`, the
same pass as ``mailer check``. The scheduler keeps its jobs in memory: what is pending lives
in our own tables, so nothing is lost when the daemon stops, and a ``mailer send`` from
another process is picked up at the next tick without a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime

from mailer.adapters.clock import Clock
from mailer.adapters.config import ImapSettings, Settings
from mailer.adapters.mailbox import Mailbox
from mailer.adapters.store import Store, safe_url
from mailer.errors import MailerError
from mailer.model.redact import redact
from mailer.services.passes import PassReport, every_account, run_pass

log = logging.getLogger("mailer.services.daemon")
JOB_ID = "check"
# IDLE must be re-issued before servers drop it (RFC 2177 says 29 minutes; many use less).
IDLE_RENEW_SECONDS = 9 * 60


def log_report(report: PassReport, told: dict[str, str] | None = None) -> None:
    """Log a pass. With ``told`` (the daemon's memory: Message-ID -> the UTC day it was last
    named), each message in doubt is named once a day rather than on every pass."""
    for seen in report.seen:
        log.info(
            "thread %s: %s from %s (%r) -> %s",
            seen.thread_id,
            seen.verdict,
            seen.sender,
            seen.subject,
            seen.decision.event,
        )
    for thread_id, message_id in report.sent:
        log.info("thread %s: follow-up %s sent", thread_id, message_id)
    for line in report.settled:
        log.info("settled: %s", line)
    for thread_id in report.closed:
        log.info("thread %s: closed, no answer", thread_id)
    for line in report.waiting:
        log.debug("%s", line)
    for line in report.held:
        log.warning("%s", line)
    for line in report.problems:
        log.warning("%s", line)
    today = datetime.now(UTC).date().isoformat()
    for message_id, line in report.in_doubt:
        if told is not None:
            if told.get(message_id) == today:
                continue
            told[message_id] = today
        log.warning("%s", line)
    if told is not None:  # settled ones are forgotten, so one that comes back is named again
        for message_id in set(told) - {mid for mid, _ in report.in_doubt}:
            del told[message_id]


def once_a_day(lines: list[str], said: dict[str, date], today: date) -> list[str]:
    """The lines not said yet today; ``said`` remembers when each was, and forgets the
    ones no longer given (a settled thread said again later is news)."""
    fresh = [line for line in lines if said.get(line) != today]
    for line in list(said):
        if line not in lines:
            del said[line]
    said.update(dict.fromkeys(fresh, today))
    return fresh


def run_daemon(settings: Settings, store: Store, clock: Clock, stop: threading.Event) -> None:
    """Run until ``stop`` is set (by SIGTERM/SIGINT in the CLI)."""
    from apscheduler.events import EVENT_JOB_ERROR
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = BackgroundScheduler(
        timezone=UTC,
        # A tick missed while busy runs once, late, rather than being dropped.
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )

    busy = threading.Lock()
    again = threading.Event()

    reminded: dict[str, date] = {}
    held: dict[str, Mailbox] = {}  # per account, one IMAP connection kept between passes
    told: dict[str, str] = {}  # messages in doubt named today (see log_report)

    def one_pass(account: Settings) -> PassReport:
        # A kept connection may have been closed by the server since the last pass: then the
        # pass is run again at once on a new one, rather than waiting for the next poll.
        name = account.account
        for attempt in (1, 2):
            reused = name in held
            if not reused:
                box = Mailbox(account.imap)
                try:
                    box.connect()
                except MailerError as exc:
                    report = PassReport(imap_failed=True)
                    report.problems.append(
                        f"cannot look for replies, so no follow-up goes out now: {exc}"
                    )
                    return report
                held[name] = box
            report = run_pass(account, store, clock, box=held[name])
            if report.imap_failed or report.problems:
                held.pop(name).close()  # start afresh next time
            if not (report.imap_failed and reused and attempt == 1):
                return report
            log.info("the kept IMAP connection was gone; reconnecting")
        return report

    def tick() -> None:
        with busy:
            while True:
                again.clear()
                report = every_account(settings, store, one_pass)
                # A held thread waits for the user: said once a day, not on every pass.
                report.held = once_a_day(report.held, reminded, clock().date())
                log_report(report, told)
                # Mail that arrived during the pass gets another pass now, not a tick later.
                if not again.is_set() or stop.is_set():
                    break
        if not stop.is_set():
            _wake_at_next_due(scheduler, store)
            if again.is_set():  # woken between the last check and releasing the lock
                wake(scheduler)

    def wake_now() -> None:
        again.set()
        if not busy.locked():
            wake(scheduler)

    def on_error(event) -> None:  # type: ignore[no-untyped-def]
        log.error("check failed: %s", event.exception)

    scheduler.add_listener(on_error, EVENT_JOB_ERROR)
    # Its "skipped: maximum number of running instances" warnings are expected here.
    # Job errors reach the user through on_error, in one line; its own log would add a traceback.
    logging.getLogger("apscheduler").setLevel(
        logging.ERROR if log.isEnabledFor(logging.DEBUG) else logging.CRITICAL
    )
    scheduler.add_job(
        tick,
        "interval",
        seconds=settings.watch.poll_seconds,
        id=JOB_ID,
        next_run_time=datetime.now(UTC),
    )
    scheduler.start()
    log.info(
        "daemon started: polling every %gs%s; %d account(s); state %s",
        settings.watch.poll_seconds,
        ", IDLE on INBOX" if settings.watch.idle else "",
        len(settings.account_names),
        safe_url(settings.state_url),
    )
    watchers = []
    if settings.watch.idle:
        # One IDLE connection per account: a reply lands in the mailbox it was sent from.
        for name in settings.account_names:
            watcher = threading.Thread(
                target=IdleWatcher(settings.for_account(name).imap, wake_now, stop).run,
                name=f"imap-idle-{name or 'main'}",
                daemon=True,
            )
            watcher.start()
            watchers.append(watcher)
    while not stop.wait(0.5):
        pass
    log.info("stopping")
    # shutdown(wait=True) would hold the scheduler's lock while the running pass may need it:
    # stop scheduling first, then wait for the pass in progress ourselves.
    scheduler.shutdown(wait=False)
    if busy.acquire(timeout=60):
        for box in held.values():
            box.close()
        busy.release()
    for watcher in watchers:
        watcher.join(timeout=5)
    log.info("stopped")


def wake(scheduler) -> None:  # type: ignore[no-untyped-def]
    """Run the check now (or right after the one in progress)."""
    try:
        scheduler.modify_job(JOB_ID, next_run_time=datetime.now(UTC))
    except Exception as exc:  # the scheduler is shutting down
        log.debug("could not wake the scheduler: %s", exc)


def _wake_at_next_due(scheduler, store: Store) -> None:  # type: ignore[no-untyped-def]
    """Run the next pass when the next follow-up falls due, if that is before the next poll.

    Only a due time still ahead counts: one already past but not sendable (in doubt, outside
    the window, SMTP down) must wait for the regular poll, or passes would run back to back.
    """
    due = store.next_due(after=datetime.now(UTC))
    job = scheduler.get_job(JOB_ID)
    if due is None or job is None or job.next_run_time is None:
        return
    if due < job.next_run_time:
        scheduler.modify_job(JOB_ID, next_run_time=due)


class IdleWatcher:
    """Holds IDLE on INBOX and calls ``wake`` when mail arrives; reconnects with backoff."""

    def __init__(
        self,
        settings: ImapSettings,
        wake: Callable[[], None],
        stop: threading.Event,
        mailbox: Callable[[ImapSettings], Mailbox] = Mailbox,
    ) -> None:
        self.settings = settings
        self.wake = wake
        self.stop = stop
        self.mailbox = mailbox

    def run(self) -> None:
        from imapclient.exceptions import IMAPClientError

        backoff = 1.0
        while not self.stop.is_set():
            try:
                if not self._session():
                    return  # the server has no IDLE: the scheduler's polling does the work
                backoff = 1.0
            except (MailerError, IMAPClientError, OSError) as exc:
                # IDLE talks to imapclient directly: its errors may quote the server.
                s = self.settings
                why = redact(str(exc), s.username, s.password)
                # Signed in with OAuth2, the secret is the access token of the last login.
                why = getattr(self, "_scrub", str)(why)
                log.warning("IMAP watch connection lost (%s); reconnecting in %gs", why, backoff)
                if self.stop.wait(backoff):
                    return
                backoff = min(backoff * 2, 60.0)

    def _session(self) -> bool:
        box = self.mailbox(self.settings)
        box.connect()
        self._scrub = getattr(box, "_scrub", str)
        try:
            if not box.idle_capable():
                log.info("the IMAP server does not offer IDLE; polling only")
                return False
            box.idle_select("INBOX")
            self.wake()  # catch up on whatever came while we were not listening
            box.idle()
            log.info("watching INBOX with IDLE")
            started = time.monotonic()
            while not self.stop.is_set():
                asked = time.monotonic()
                responses = box.idle_check(1.0)
                if not responses and time.monotonic() - asked < 0.5:
                    # A dropped connection looks like "no new mail" but returns at once.
                    raise ConnectionError("IDLE returned at once: the connection is gone")
                if any(r[0] == b"BYE" for r in responses if r):
                    raise ConnectionError("the server said BYE")
                if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                    self.wake()
                if time.monotonic() - started > IDLE_RENEW_SECONDS:
                    box.idle_done()
                    box.idle()
                    started = time.monotonic()
            box.idle_done()
            return True
        finally:
            box.close()
