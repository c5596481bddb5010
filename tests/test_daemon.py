"""`mailer daemon`: IDLE, restarts, crash points, the lock and a clean stop, as real processes.

Synchronisation is by polling a condition (a log line, the state store, a mailbox) with a
deadline, never by sleeping a fixed time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from .conftest import NOW, Pair, Stack, run_cli
from .test_followup import T0, at, send, status

pytestmark = [pytest.mark.integration, pytest.mark.process]

# Logged (with --verbose) when a pass for an account has ended well.
PASS_KEPT = "pass done; its IMAP connection is kept"


def wait_for(condition: Callable[[], object], what: str, timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


class Daemon:
    def __init__(
        self, ws: Path, now: str, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> None:
        self.log = ws / f"daemon-{time.monotonic_ns()}.log"
        full = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
        full.update({"MAILER_NOW": now, "PYTHONFAULTHANDLER": "1", **(env or {})})
        self.out = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailer.cli.main", "daemon", *args],
            cwd=ws,
            env=full,
            stdin=subprocess.DEVNULL,
            stdout=self.out,
            stderr=subprocess.STDOUT,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_log(self, needle: str, count: int = 1, timeout: float = 30) -> None:
        wait_for(
            lambda: self.text().count(needle) >= count or self.proc.poll() is not None,
            f"{needle!r} in the daemon log",
            timeout,
        )
        assert self.text().count(needle) >= count, self.text()

    def stop(self, timeout: float = 30) -> float:
        """SIGTERM; returns how long it took to exit."""
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGABRT)  # PYTHONFAULTHANDLER dumps the stacks
                self.proc.wait(timeout=10)
                raise AssertionError(f"daemon did not stop on SIGTERM:\n{self.text()}") from None
        self.out.close()
        return time.monotonic() - started

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.out.close()


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        if d.proc.poll() is None:
            d.kill()


def start(
    daemons: list[Daemon], pair: Pair, now: str, args: tuple[str, ...] = (), **env: str
) -> Daemon:
    d = Daemon(pair.ws, now, env, args)
    daemons.append(d)
    return d


def test_reply_is_seen_through_idle_and_sigterm_stops_cleanly(
    pair: Pair, daemons: list[Daemon]
) -> None:
    """Verify IDLE notices a reply within seconds and SIGTERM stops the daemon quickly."""
    thread, root = send(pair)
    d = start(daemons, pair, at(timedelta(seconds=5)))
    d.wait_log("watching INBOX with IDLE")
    pair.send_as(
        pair.interviewer,
        pair.candidate,
        "Re: apology",
        "Happy to reschedule.",
        {"In-Reply-To": root},
    )
    wait_for(lambda: status(pair, thread)["state"] == "replied", "the reply to be recorded", 60)
    # The pass records the reply before it logs it (the log comes once the pass is over):
    # seeing the state is no proof the line is written yet.
    d.wait_log("-> replied")
    assert d.stop() < 5
    assert d.proc.returncode == 0
    assert pair.follow_ups_received(root) == []


def test_imap_restart_during_idle_reconnects_and_still_sees_a_reply(
    pair: Pair, daemons: list[Daemon], stack: Stack
) -> None:
    """Verify a dropped IDLE connection is noticed, re-established, and replies still count."""
    thread, root = send(pair)
    d = start(daemons, pair, at(timedelta(seconds=5)))
    d.wait_log("watching INBOX with IDLE")
    stack.stack.restart_dovecot()
    # The old session outlives Dovecot's master: it says BYE only about 10 s later.
    d.wait_log("IMAP watch connection lost", timeout=60)
    # Reconnecting backs off 1, 2, 4, 8 s while Dovecot is down: allow for a slow restart.
    d.wait_log("watching INBOX with IDLE", count=2, timeout=60)
    pair.send_as(pair.interviewer, pair.candidate, "Re: apology", "Call me.", {"In-Reply-To": root})
    wait_for(lambda: status(pair, thread)["state"] == "replied", "the reply after reconnect", 60)
    d.stop()


def test_killed_imap_sessions_are_replaced_and_a_reply_is_still_seen(
    pair: Pair, daemons: list[Daemon], stack: Stack
) -> None:
    """Verify both the IDLE connection and the one kept between passes come back."""
    thread, root = send(pair)
    d = start(daemons, pair, at(timedelta(seconds=5)), ("--verbose",))
    d.wait_log("watching INBOX with IDLE")
    # The connection kept between passes exists only once a pass has ended well: killed
    # during the first pass, it would be a new connection's failure, not a kept one's.
    d.wait_log(PASS_KEPT)
    instance = Path(stack.info.dir).name
    # Dovecot keeps sessions across a restart; killing their processes really drops them.
    subprocess.run(["pkill", "-9", "-f", f"^dovecot-mailer-{instance}/imap$"], check=True)
    d.wait_log("IMAP watch connection lost")
    d.wait_log("the kept IMAP connection was gone; reconnecting")
    pair.send_as(pair.interviewer, pair.candidate, "Re: apology", "Call me.", {"In-Reply-To": root})
    wait_for(lambda: status(pair, thread)["state"] == "replied", "the reply after the drop", 60)
    d.stop()


def test_send_from_the_cli_while_the_daemon_runs_gets_its_follow_up(
    pair: Pair, daemons: list[Daemon]
) -> None:
    """Verify a thread recorded by another process is picked up without a restart."""
    d = start(daemons, pair, at(timedelta(hours=2)))
    d.wait_log("daemon started")
    thread, root = send(pair)  # sent "at T0": its follow-up is already due for the daemon
    wait_for(lambda: len(pair.follow_ups_received(root)) == 1, "the follow-up", 60)
    wait_for(lambda: status(pair, thread)["follow_ups_sent"] == 1, "the follow-up to be recorded")
    d.stop()
    assert len(pair.follow_ups_received(root)) == 1


def shown_state(s: dict) -> str:
    """The thread's state in words, or its unsettled message's while that is open."""
    u = s["unsettled"]
    if u:
        return ("follow-up " if u["kind"] == "follow_up" else "") + u["state"].replace("_", " ")
    return s["state"].replace("_", " ")


@pytest.mark.parametrize(
    ("point", "delivered", "final"),
    [
        ("after-claim", 1, "followed up"),  # queued, never submitted: resumed once
        # Killed before the final dot of DATA: the server took nothing, so it is requeued
        ("after-submitting", 1, "followed up"),
        ("before-final-dot", 1, "followed up"),
        ("after-final-dot", 0, "follow-up in doubt"),  # the mark is on disk: cannot know
        ("after-250", 1, "follow-up in doubt"),  # accepted, not recorded: never resent
        ("after-sent", 1, "followed up"),
    ],
)
def test_daemon_killed_at_a_crash_point_never_sends_twice(
    pair: Pair, daemons: list[Daemon], point: str, delivered: int, final: str
) -> None:
    """Verify a SIGKILL at each step, then a restart: once, or in doubt, never twice."""
    thread, root = send(pair)
    crashed = start(daemons, pair, at(timedelta(hours=2)), MAILER_CRASH_AT=point)
    assert crashed.proc.wait(timeout=60) == -signal.SIGKILL, crashed.text()
    restarted = start(daemons, pair, at(timedelta(hours=2)), ("--verbose",))
    restarted.wait_log("daemon started")
    wait_for(lambda: shown_state(status(pair, thread)) == final, f"status {final!r}", 60)
    assert len(pair.follow_ups_received(root)) == delivered
    # Give it more passes: nothing changes. Counted, because no other log line means a pass
    # ended: two more ends mean at least one whole pass begun after the state was seen.
    done = restarted.text().count(PASS_KEPT)
    restarted.wait_log(PASS_KEPT, count=done + 2)
    check = run_cli(pair.ws, "status", str(thread))
    assert final in check.stdout
    restarted.stop()
    assert len(pair.follow_ups_received(root)) == delivered


def test_daemon_killed_during_the_wait_sends_once_after_restart(
    pair: Pair, daemons: list[Daemon]
) -> None:
    """Verify a pending follow-up survives a kill before it is due, and goes out once."""
    thread, root = send(pair)
    early = start(daemons, pair, at(timedelta(seconds=5)))  # due in about 55 s
    early.wait_log("watching INBOX with IDLE")
    early.kill()
    late = start(daemons, pair, at(timedelta(hours=2)))
    wait_for(lambda: len(pair.follow_ups_received(root)) == 1, "the follow-up", 60)
    wait_for(lambda: status(pair, thread)["follow_ups_sent"] == 1, "the follow-up to be recorded")
    late.stop()
    assert len(pair.follow_ups_received(root)) == 1


def test_one_daemon_per_store_and_a_killed_one_does_not_block(
    pair: Pair, daemons: list[Daemon]
) -> None:
    """Verify the flock: a second daemon and `check` are refused; after SIGKILL a restart works."""
    first = start(daemons, pair, NOW)
    first.wait_log("daemon started")
    second = start(daemons, pair, NOW)
    assert second.proc.wait(timeout=60) == 8
    assert "held by mailer daemon (pid" in second.text()
    assert "Traceback" not in second.text()
    chk = run_cli(pair.ws, "check")
    assert chk.returncode == 8 and "only one daemon" in chk.stderr
    first.kill()
    third = start(daemons, pair, NOW)
    third.wait_log("daemon started")
    assert third.stop() < 5
    assert third.proc.returncode == 0


def test_status_shows_the_decision_log(pair: Pair) -> None:
    """Verify `status ID --explain` names the message that caused each decision."""
    thread, root = send(pair)
    pair.send_as(
        pair.interviewer, pair.candidate, "Re: sorry", "No worries.", {"In-Reply-To": root}
    )
    assert run_cli(pair.ws, "check", env={"MAILER_NOW": at(timedelta(seconds=30))}).returncode == 0
    r = run_cli(pair.ws, "status", str(thread), "--explain")
    assert "decisions:" in r.stdout
    assert "replied" in r.stdout and "human: " in r.stdout
    assert f"from {pair.interviewer}" in r.stdout and "INBOX UID" in r.stdout
    listing = json.loads(run_cli(pair.ws, "status", "--json").stdout)["threads"]
    assert listing[0]["state"] == "replied"
    sent = datetime.fromisoformat(listing[0]["sent_at"])
    assert sent.utcoffset() is not None and abs(sent - T0) < timedelta(minutes=1)


def test_held_threads_and_messages_in_doubt_share_one_once_a_day_memory(caplog) -> None:
    """Verify the daemon's pass log names a held thread and a message in doubt on the first
    pass of a day only, both through the same memory, and names again one that went away
    and came back."""
    import logging
    from datetime import date

    from mailer.services.daemon import log_report
    from mailer.services.passes import PassReport

    held = "thread 1 (Acme) is held: ...; run 'mailer release 1'"
    doubt = ("<a@x>", "thread 2: run 'mailer resolve 2 --sent'")
    report = PassReport(held=[held], in_doubt=[doubt])
    said: dict[str, date] = {}
    day = date(2026, 11, 25)
    caplog.set_level(logging.INFO, logger="mailer.services.daemon")
    log_report(report, said, day)
    log_report(report, said, day)
    assert [r.getMessage() for r in caplog.records] == [held, doubt[1]]
    log_report(PassReport(held=[held]), said, day)  # the message was settled: forgotten
    log_report(report, said, day)
    assert [r.getMessage() for r in caplog.records] == [held, doubt[1], doubt[1]]
    log_report(report, said, date(2026, 11, 26))
    assert [r.getMessage() for r in caplog.records][-2:] == [held, doubt[1]]


def test_the_pass_log_names_every_thread_one_reply_held(caplog) -> None:
    """Verify the log line of a reply that held several threads names them all (it named
    the one the reply was matched to; a walkthrough), and a reply that held one says held."""
    import logging

    from mailer.model.decision import Decision
    from mailer.services.daemon import log_report
    from mailer.services.incoming import Seen
    from mailer.services.passes import PassReport

    def seen(threads: str) -> Seen:
        held = Decision("held", "held", {"held_threads": threads})
        return Seen(11, "human", "ana@b.test", "Hello", held)

    caplog.set_level(logging.INFO, logger="mailer.services.daemon")
    log_report(PassReport(seen=[seen("11,12,14"), seen("11")]))
    assert [r.getMessage() for r in caplog.records] == [
        "thread 11: human from ana@b.test ('Hello') -> held (threads 11, 12, 14)",
        "thread 11: human from ana@b.test ('Hello') -> held",
    ]
