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
from mailer.adapters.store import MEMORY_URL, Store, safe_url
from mailer.errors import MailerError
from mailer.model.redact import redact
from mailer.services.leases import LeaseKeeper
from mailer.services.passes import PassReport, every_account, run_pass

log = logging.getLogger("mailer.services.daemon")
JOB_ID = "check"
# IDLE must be re-issued before servers drop it (RFC 2177 says 29 minutes; many use less).
IDLE_RENEW_SECONDS = 9 * 60
# How often a watcher whose account another daemon holds looks whether it is ours now.
LEASE_LOOK_SECONDS = 1.0


def log_report(
    report: PassReport, said: dict[str, date] | None = None, today: date | None = None
) -> None:
    """Log a pass. With ``said`` (the daemon's memory, see :func:`once_a_day`), what waits
    for the user (a held thread, a message in doubt) is named on the first pass of the day
    (``today``, UTC), not on every pass."""
    held, in_doubt = report.held, [line for _, line in report.in_doubt]
    if said is not None:
        # One memory for both: a held thread by its line (a new reason is news), a message
        # in doubt by its Message-ID.
        keys = [f"held: {line}" for line in held] + [mid for mid, _ in report.in_doubt]
        fresh = set(once_a_day(keys, said, today or datetime.now(UTC).date()))
        held = [line for line in held if f"held: {line}" in fresh]
        in_doubt = [line for mid, line in report.in_doubt if mid in fresh]
    for seen in report.seen:
        # A reply that holds several threads holds them all: each is named (one was).
        together = seen.decision.detail.get("held_threads", "")  # (a hold's detail only)
        log.info(
            "thread %s: %s from %s (%r) -> %s",
            seen.thread_id,
            seen.verdict,
            seen.sender,
            seen.subject,
            f"{seen.decision.event} (threads {together.replace(',', ', ')})"
            if "," in together
            else seen.decision.event,
        )
    for thread_id, message_id in report.sent:
        log.info("thread %s: follow-up %s sent", thread_id, message_id)
    for line in report.settled:
        log.info("settled: %s", line)
    for thread_id in report.closed:
        log.info("thread %s: closed, no answer", thread_id)
    for line in report.waiting:
        log.debug("%s", line)
    for line in held:
        log.warning("%s", line)
    for line in report.problems:
        log.warning("%s", line)
    for line in in_doubt:
        log.warning("%s", line)


def once_a_day(keys: list[str], said: dict[str, date], today: date) -> list[str]:
    """The keys not said yet today; ``said`` remembers when each was, and forgets the ones
    no longer given (a settled thread or message that comes back later is news)."""
    fresh = [key for key in keys if said.get(key) != today]
    for key in list(said):
        if key not in keys:
            del said[key]
    said.update(dict.fromkeys(fresh, today))
    return fresh


def run_daemon(
    settings: Settings,
    store: Store,
    clock: Clock,
    stop: threading.Event,
    keeper: LeaseKeeper | None = None,
) -> None:
    """Run until ``stop`` is set (by SIGTERM/SIGINT in the CLI). Works only on the accounts
    whose lease it holds (#17): other daemons on the same store have the others."""
    from apscheduler.events import EVENT_JOB_ERROR
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = BackgroundScheduler(
        timezone=UTC,
        # A tick missed while busy runs once, late, rather than being dropped.
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )

    busy = threading.Lock()
    again = threading.Event()

    held: dict[str, Mailbox] = {}  # per account, one IMAP connection kept between passes
    said: dict[str, date] = {}  # what waits for the user, named today (see log_report)
    if keeper is None:
        # On SQLite the CLI holds the store's file lock: no other daemon can be alive.
        keeper = LeaseKeeper(
            store,
            settings.account_names,
            settings.lease_seconds,
            exclusive=store.url.startswith("sqlite"),
        )

    def one_pass(account: Settings) -> PassReport:
        name = account.account
        lease = keeper.lease(name)
        if lease is None:  # another daemon's account, for now
            if name in held:
                held.pop(name).close()
            return PassReport()
        with store.under_lease(lease):
            return leased_pass(account)

    def leased_pass(account: Settings) -> PassReport:
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
            else:
                log.debug("account %s: pass done; its IMAP connection is kept", name or "main")
            if not (report.imap_failed and reused and attempt == 1):
                return report
            log.info("the kept IMAP connection was gone; reconnecting")
        return report

    def tick() -> None:
        with busy:
            while True:
                again.clear()
                started = datetime.now(UTC)
                keeper.beat()  # each pass renews its leases, then takes the free ones
                report = every_account(settings, store, one_pass)
                # What waits for the user is said once a day, not on every pass.
                log_report(report, said, clock().astimezone(UTC).date())
                # Mail that arrived during the pass gets another pass now, not a tick later.
                if not again.is_set() or stop.is_set():
                    break
        if not stop.is_set():
            _wake_at_next_due(scheduler, store, started)
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
    keeper.beat()
    scheduler.start()
    log.info(
        "daemon started: polling every %gs%s; %d account(s); state %s",
        settings.watch.poll_seconds,
        ", IDLE on INBOX" if settings.watch.idle else "",
        len(settings.account_names),
        safe_url(settings.state_url),
    )
    watchers = []
    heart = threading.Thread(
        target=_heartbeat, args=(settings, store, keeper, stop, wake_now), name="leases"
    )
    heart.start()
    if settings.watch.idle:
        # One IDLE connection per account: a reply lands in the mailbox it was sent from.
        for name in settings.account_names:
            watcher = threading.Thread(
                target=IdleWatcher(
                    settings.for_account(name).imap,
                    wake_now,
                    stop,
                    wanted=lambda name=name: keeper.lease(name) is not None,
                ).run,
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
        heart.join(timeout=10)
        keeper.release_all()  # another daemon takes the accounts at once
        busy.release()
    for watcher in watchers:
        watcher.join(timeout=5)
    log.info("stopped")


def _heartbeat(
    settings: Settings,
    store: Store,
    keeper: LeaseKeeper,
    stop: threading.Event,
    wake_now: Callable[[], None],
) -> None:
    """Renew the leases every third of their time, however long a pass takes, and take the
    free ones; a pass runs at once when an account is gained (a dead daemon's, taken over).
    The store's engine gives this thread a connection of its own. Not a second Store on the
    same SQLite file: opening one reads the file, and closing that descriptor would drop the
    POSIX locks SQLite holds on it for the whole process. An in-memory store has one
    connection only: then the passes alone renew."""
    if store.url == MEMORY_URL:
        return
    keeper.keep_renewed(stop, gained=wake_now)


def wake(scheduler) -> None:  # type: ignore[no-untyped-def]
    """Run the check now (or right after the one in progress)."""
    try:
        scheduler.modify_job(JOB_ID, next_run_time=datetime.now(UTC))
    except Exception as exc:  # the scheduler is shutting down
        log.debug("could not wake the scheduler: %s", exc)


def _wake_at_next_due(scheduler, store: Store, started: datetime) -> None:  # type: ignore[no-untyped-def]
    """Run the next pass when the next follow-up falls due, if that is before the next poll.

    Only a due time after the pass ``started`` counts: one the pass saw due but could not
    send (in doubt, outside the window, SMTP down) must wait for the regular poll, or passes
    would run back to back. One that fell due while the pass ran, which the pass did not
    see due, gets a pass at once: it waited a whole poll (two follow-ups due 10 ms apart
    went a minute apart; a walkthrough).
    """
    due = store.next_due(after=started)
    job = scheduler.get_job(JOB_ID)
    if due is None or job is None or job.next_run_time is None:
        return
    if due < job.next_run_time:
        scheduler.modify_job(JOB_ID, next_run_time=due)


class IdleWatcher:
    """Holds IDLE on INBOX and calls ``wake`` when mail arrives; reconnects with backoff.

    Only while ``wanted()``: this daemon holds the account's lease. Another daemon's account
    is watched by that daemon; a second IDLE connection here would only count against the
    account's connection limit (Gmail allows 15 per account, phones and laptops included).
    """

    def __init__(
        self,
        settings: ImapSettings,
        wake: Callable[[], None],
        stop: threading.Event,
        mailbox: Callable[[ImapSettings], Mailbox] = Mailbox,
        wanted: Callable[[], bool] = lambda: True,
    ) -> None:
        self.settings = settings
        self.wake = wake
        self.stop = stop
        self.mailbox = mailbox
        self.wanted = wanted

    def run(self) -> None:
        from imapclient.exceptions import IMAPClientError

        backoff = 1.0
        while not self.stop.is_set():
            if not self.wanted():
                if self.stop.wait(LEASE_LOOK_SECONDS):
                    return
                continue
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
                if not self.wanted():
                    log.info("this daemon does not hold the account's lease now: IDLE stopped")
                    break
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
