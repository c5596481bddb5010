"""A hypothesis state machine drives mailer's own lifecycle and pass code over the fakes
(issue #13, item 4): apologies (some with ``--again``), replies threaded or not,
out-of-office notices, bounces and delay notices, cancels, releases, ``resolve``, the clock,
passes of ``check``, server faults, and a process killed at any step, or frozen there (alive,
its claims holding) until a later rule kills it; a new process takes over either way.

Its invariants count what the FAKE SMTP server accepted, never what the store says:

- an apology per key at most once, plus once per ``--again``;
- no Message-ID accepted twice (the user in this machine resolves truthfully: ``--sent``
  when the server did take the message, ``--resend`` only when it did not);
- at most ``max_follow_ups`` follow-ups per thread;
- no follow-up accepted after a pass began with a human reply (or a hard bounce to its
  address) already in the mailbox, nor after the user cancelled or marked the thread
  replied (``release`` lifts what an unthreaded reply held: the user says it was not this
  thread's);
- after a pass that reached the account, every message recorded as sent is in Sent;
- after a pass with the servers healthy, no thread that is due and may be sent is left.

Everything runs in memory (``Store.in_memory()``, FakeImap, FakeSmtp, FakeProcesses).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from mailer.adapters import crashpoint, process
from mailer.adapters.clock import local_zone
from mailer.adapters.config import Settings, load_settings
from mailer.adapters.store import Store
from mailer.errors import MailerError
from mailer.model import apology
from mailer.model import plan as plan_mod
from mailer.model.composer import Composer
from mailer.model.decision import Decision
from mailer.model.facts import make_facts
from mailer.model.followup import send_time
from mailer.model.lifecycle import MessageState, ThreadState
from mailer.model.schedule import holidays_for
from mailer.services import decisions, sending
from mailer.services import passes as check
from mailer.testing import FakeImap, FakeProcesses, FakeSmtp
from mailer.testing.settings import write_fake_workspace

YOU, ANA, BOB = "you@sandbox.test", "ana@sandbox.test", "bob@sandbox.test"
PASSWORD = "you-pw"
START = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # a Monday
# (recipient, interviewer, company, interview): two keys to one address, so an unthreaded
# reply from it may answer either (and holds both).
KEYS = (
    (ANA, "Ana Ruiz", "Acme", "2026-11-26 10:00"),
    (ANA, "Ana Ruiz", "Borealis", "2026-11-27 14:00"),
    (BOB, "Bob Stone", "Cobalt", "2026-11-27 11:00"),
)
# Where a process may die: mailer's crash points, and two moments only the server sees
# (MAIL FROM arrived; the message taken and delivered but its 250 not yet answered).
KILL_POINTS = (*crashpoint.POINTS, "after-claim", "smtp:mail", "smtp:accepted")
# "freeze:" stops the process there but leaves it alive (stopped, swapping, a debugger):
# its claims must hold off the process that takes over, until it dies (a later rule).
KILL = st.sampled_from(
    (None,) * len(KILL_POINTS) * 3 + KILL_POINTS + tuple(f"freeze:{p}" for p in KILL_POINTS)
)
STEPS = (
    timedelta(minutes=30),
    timedelta(hours=3),
    timedelta(hours=20),
    timedelta(days=1),
    timedelta(days=3),
)
OPEN = (ThreadState.AWAITING, ThreadState.FOLLOWED_UP, ThreadState.HELD)


class Killed(BaseException):
    """The process died here: nothing after this point runs, no ``except Exception`` sees it."""


def write_config(root: Path, window: str) -> Settings:
    return load_settings(
        write_fake_workspace(root, YOU, PASSWORD, wait="1 day", window=window, max_follow_ups=2)
    )


@dataclass
class Stop:
    """Something after which no follow-up may go out for a thread: ``at`` is the number of
    messages the server had accepted when it took effect (None: not yet seen by a pass)."""

    why: str
    at: int | None


def header(raw: bytes, name: str) -> str | None:
    value = BytesHeaderParser().parsebytes(raw).get(name)
    return None if value is None else str(value).strip()


class LifecycleMachine(RuleBasedStateMachine):
    settings: Settings  # set by machine_for
    composer: Composer  # one for every run: compiling the templates is most of a send's time

    def __init__(self) -> None:
        super().__init__()
        self.now = START
        self.imap = FakeImap({YOU: PASSWORD, ANA: "ana-pw", BOB: "bob-pw"})
        self.smtp = FakeSmtp(users={YOU: PASSWORD}, imap=self.imap)
        self.store = Store.in_memory()
        self.kill_at: str | None = None
        self.apologies: dict[str, tuple[str, ...]] = {}  # Message-ID -> key
        self.again: Counter[tuple[str, ...]] = Counter()
        self.stops: dict[str, list[Stop]] = {}  # root Message-ID -> stops
        self.last_pass: check.PassReport | None = None  # the last step's, if a whole pass
        self.trouble = False  # a server fault was scripted for the coming pass
        self._stack = ExitStack()
        self.processes = self._stack.enter_context(FakeProcesses())
        self._stack.enter_context(mock.patch.object(process, "kill_self", self._die))
        self._stack.enter_context(mock.patch.dict(os.environ, {crashpoint.ENV: ""}))
        self.smtp.moment = self._smtp_moment

    def teardown(self) -> None:
        self._stack.close()
        self.store.close()

    # --- the process, the clock, the mail ---

    def clock(self) -> datetime:
        return self.now

    def _die(self) -> None:
        os.environ[crashpoint.ENV] = ""
        raise Killed(self.kill_at)

    def _smtp_moment(self, moment: str) -> None:
        if self.kill_at == f"smtp:{moment}":
            self.kill_at = None
            raise Killed(moment)

    def _as_process(self, kill_at: str | None, action: Callable[[], Any]) -> Any:
        """Run ``action`` as the current process, which dies at ``kill_at`` if reached; a
        death makes a new process (a new owner token) for what follows."""
        frozen = bool(kill_at and kill_at.startswith("freeze:"))
        if kill_at:
            kill_at = kill_at.removeprefix("freeze:")
        self.kill_at = kill_at
        crashpoint._hits.clear()
        if kill_at and not kill_at.startswith("smtp:"):
            os.environ[crashpoint.ENV] = kill_at
        try:
            return action()
        except Killed:
            if frozen:
                self.processes.become(self.processes.spawn("took over from a frozen one"))
            else:
                self.processes.restart()
            return None
        finally:
            self.kill_at = None
            os.environ[crashpoint.ENV] = ""

    def deliver(self, raw: bytes) -> None:
        self.now += timedelta(minutes=1)  # an answer takes a moment to arrive
        self.imap.deliver("INBOX", raw, self.now, user=YOU)

    def accepted_apologies(self) -> list[str]:
        return [m.message_id for m in self.smtp.accepted if m.message_id in self.apologies]

    def stop(self, root: str, why: str, now: bool = False) -> None:
        self.stops.setdefault(root, []).append(Stop(why, len(self.smtp.accepted) if now else None))

    # --- rules ---

    @initialize(key=st.sampled_from(KEYS))
    def first_apology(self, key: tuple[str, ...]) -> None:
        self.send_apology(key, again=False, kill_at=None)

    @rule(key=st.sampled_from(KEYS), again=st.booleans(), kill_at=KILL)
    def send_apology(self, key: tuple[str, ...], again: bool, kill_at: str | None) -> None:
        to, interviewer, company, interview = key
        facts = make_facts(
            situation="illness",
            to=to,
            interviewer=interviewer,
            company=company,
            role="Data Engineer",
            interview=interview,
            tz=local_zone(self.settings.sender.timezone),
            allow_test_domains=True,
        )
        prepared = apology.prepare(self.settings, facts, self.now, self.composer)
        self.apologies[prepared.composed.message_id] = key
        self.again[key] += again
        self.last_pass = None

        def send() -> None:
            # Refused as a duplicate, or by the server: the invariants judge either way.
            with suppress(MailerError):
                sending.send(
                    self.settings,
                    prepared,
                    self.store,
                    self.clock,
                    again=again,
                    smtp=self.smtp,
                    mailbox=self.imap,
                )

        self._as_process(kill_at, send)

    @rule(kill_at=KILL)
    def run_pass(self, kill_at: str | None) -> None:
        if self.imap.down == 0:
            # The pass scans first: whatever reply or bounce is in the mailbox now, it sees.
            for stops in self.stops.values():
                for s in stops:
                    if s.at is None:
                        s.at = len(self.smtp.accepted)
        report = self._as_process(
            kill_at,
            lambda: check.run_pass_all(
                self.settings, self.store, self.clock, mailbox=self.imap, smtp=self.smtp
            ),
        )
        self.last_pass = None if report is None or report.imap_failed else report
        if self.trouble:
            self.last_pass = None  # a scripted fault may rightly leave work for later
        self.trouble = False
        self.smtp.clear_faults()
        self.imap.down = 0

    @precondition(lambda self: self.others_alive())
    @rule(data=st.data())
    def a_frozen_process_dies(self, data: st.DataObject) -> None:
        token = data.draw(st.sampled_from(sorted(self.others_alive())))
        self.processes.kill(next(p for p in self.processes.table.values() if p.token == token))
        self.last_pass = None

    def others_alive(self) -> set[str]:
        """Owner tokens of frozen processes: alive, but not the one acting now."""
        current = self.processes.current
        return {p.token for p in self.processes.table.values() if p.alive and p is not current}

    @rule(step=st.sampled_from(STEPS))
    def advance_clock(self, step: timedelta) -> None:
        self.now += step
        self.last_pass = None

    @rule(step=st.sampled_from(STEPS), kill_at=KILL)
    def time_passes_then_a_pass(self, step: timedelta, kill_at: str | None) -> None:
        """The daemon's rhythm: time goes by, then it wakes for a pass."""
        self.advance_clock(step)
        self.run_pass(kill_at)

    @precondition(lambda self: self.accepted_apologies())
    @rule(
        kind=st.sampled_from(
            ("reply", "unthreaded reply", "out of office", "out of office until", "bounce", "delay")
        ),
        data=st.data(),
    )
    def mail_arrives(self, kind: str, data: st.DataObject) -> None:
        """An answer to one of the apologies the server took, from a human or a machine."""
        root = data.draw(st.sampled_from(self.accepted_apologies()))
        if kind == "reply":
            self.human_reply_threaded(root)
        elif kind == "unthreaded reply":
            self.human_reply_unthreaded(self.apologies[root][0])
        elif kind.startswith("out of office"):
            self.out_of_office(
                root, data.draw(st.sampled_from((2, 6))) if "until" in kind else None
            )
        else:
            self.bounce_or_delay(root, hard=kind == "bounce")
        self.last_pass = None

    def human_reply_threaded(self, root: str) -> None:
        to, name, _, _ = self.apologies[root]
        self.deliver(
            (
                f"From: {name} <{to}>\r\nTo: {YOU}\r\nSubject: Re: your message\r\n"
                f"Date: {format_datetime(self.now + timedelta(minutes=1))}\r\n"
                f"Message-ID: {make_msgid(domain='sandbox.test')}\r\n"
                f"In-Reply-To: {root}\r\nReferences: {root}\r\n\r\n"
                "Thank you for letting me know. Monday at 10 works for us.\r\n"
            ).encode()
        )
        self.stop(root, "a threaded reply")

    def human_reply_unthreaded(self, to: str) -> None:
        name = "Ana Ruiz" if to == ANA else "Bob Stone"
        self.deliver(
            (
                f"From: {name} <{to}>\r\nTo: {YOU}\r\nSubject: Rescheduling\r\n"
                f"Date: {format_datetime(self.now + timedelta(minutes=1))}\r\n"
                f"Message-ID: {make_msgid(domain='sandbox.test')}\r\n\r\n"
                "Hello, happy to find another time. Would Thursday suit you?\r\n"
            ).encode()
        )
        # It answers one of the open threads to that address, or holds them all.
        for t in self.store.threads():
            if t.recipient == to and t.state in OPEN:
                self.stop(t.root_message_id, "an unthreaded reply")

    def out_of_office(self, root: str, back_in: int | None) -> None:
        to, name, _, _ = self.apologies[root]
        if back_in is None:
            body = "I am out of the office Friday."
        else:
            back = (self.now + timedelta(days=back_in)).date()
            body = f"I am out of the office until {back.day} {back:%B %Y}."
        self.deliver(
            (
                f"From: {name} <{to}>\r\nTo: {YOU}\r\nSubject: Automatic reply: your message\r\n"
                f"Date: {format_datetime(self.now + timedelta(minutes=1))}\r\n"
                f"Message-ID: {make_msgid(domain='sandbox.test')}\r\n"
                f"In-Reply-To: {root}\r\nAuto-Submitted: auto-replied\r\n\r\n{body}\r\n"
            ).encode()
        )

    def bounce_or_delay(self, root: str, hard: bool) -> None:
        to = self.apologies[root][0]
        action, status, subject = (
            ("failed", "5.1.1", "Undelivered Mail Returned to Sender")
            if hard
            else ("delayed", "4.4.1", "Delayed Mail (still being retried)")
        )
        self.deliver(
            (
                "Return-Path: <>\r\n"
                "From: MAILER-DAEMON@sandbox.test (Mail Delivery System)\r\n"
                f"To: {YOU}\r\nSubject: {subject}\r\n"
                f"Date: {format_datetime(self.now + timedelta(minutes=1))}\r\n"
                f"Message-ID: {make_msgid(domain='mx.sandbox.test')}\r\n"
                "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
                "Content-Type: multipart/report; report-type=delivery-status; "
                'boundary="B"\r\n\r\n'
                "--B\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
                "This is the mail system at host mx.sandbox.test.\r\n\r\n"
                "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
                "Reporting-MTA: dns; mx.sandbox.test\r\n\r\n"
                f"Final-Recipient: rfc822; <{to}>\r\nAction: {action}\r\n"
                f"Status: {status}\r\nDiagnostic-Code: smtp; 550 {status} <{to}>: "
                "user unknown\r\n\r\n"
                "--B\r\nContent-Type: message/rfc822\r\n\r\n"
                f"From: {YOU}\r\nTo: {to}\r\nSubject: Sorry\r\nMessage-ID: {root}\r\n\r\n"
                "I am sorry.\r\n\r\n--B--\r\n"
            ).encode()
        )
        if hard:
            # No follow-up goes to an address that has bounced for good: not in this thread,
            # nor in any other whose apology to it went before the bounce came back.
            for mid in dict.fromkeys(self.accepted_apologies()):
                if self.apologies[mid][0] == to:
                    self.stop(mid, "a hard bounce" if mid == root else "its address bounced")

    @precondition(lambda self: self.store.threads())
    @rule(command=st.sampled_from(("cancel", "mark-replied")), data=st.data())
    def user_stops_a_thread(self, command: str, data: st.DataObject) -> None:
        thread = data.draw(st.sampled_from(self.store.threads()))
        self.last_pass = None
        try:
            if command == "cancel":
                decisions.cancel(self.store, thread.id, self.now)
            else:
                decisions.mark_replied(self.store, thread.id, self.now, "")
        except MailerError:
            return  # not waiting for anything
        self.stop(thread.root_message_id, command, now=True)

    @precondition(lambda self: self.store.held_threads())
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        thread = data.draw(st.sampled_from(self.store.held_threads()))
        if decisions.release(self.store, thread.id, self.now, self.settings):
            # The user says the unthreaded reply was not for this thread.
            stops = self.stops.get(thread.root_message_id, [])
            stops[:] = [s for s in stops if s.why != "an unthreaded reply"]
        self.last_pass = None

    @precondition(lambda self: self.store.unsettled_messages())
    @rule(data=st.data(), kill_at=KILL)
    def resolve(self, data: st.DataObject, kill_at: str | None) -> None:
        m = data.draw(st.sampled_from(self.store.unsettled_messages()))
        # A truthful user: it arrived (the server took it), or it did not.
        took = m.message_id in {a.message_id for a in self.smtp.accepted}

        def settle() -> None:
            with suppress(MailerError):
                decisions.resolve(
                    self.settings,
                    self.store,
                    m.thread_id,
                    sent=took,
                    clock=self.clock,
                    smtp=self.smtp,
                    mailbox=self.imap,
                )

        self._as_process(kill_at, settle)
        self.last_pass = None

    @rule(fault=st.sampled_from(("451", "550", "in doubt", "smtp down", "imap down")))
    def server_trouble(self, fault: str) -> None:
        """The next pass meets a fault: a temporary or permanent refusal at the end of DATA,
        a connection lost after the final dot, a server that refuses connections."""
        if fault == "imap down":
            self.imap.down = 1
        elif fault == "smtp down":
            self.smtp.set_faults(down=1)
        elif fault == "in doubt":
            self.smtp.set_faults(drop_after_data=1)
        else:
            self.smtp.set_faults(
                data=[f"{fault} 4.3.0 try later" if fault == "451" else f"{fault} 5.7.1 refused"]
            )
        self.trouble = True
        self.last_pass = None

    # --- invariants ---

    @invariant()
    def no_message_accepted_twice(self) -> None:
        ids = Counter(a.message_id for a in self.smtp.accepted)
        twice = [mid for mid, n in ids.items() if n > 1]
        assert not twice, f"accepted more than once: {twice}"

    @invariant()
    def one_apology_per_key_unless_again(self) -> None:
        per_key = Counter(self.apologies[mid] for mid in self.accepted_apologies())
        for key, n in per_key.items():
            assert n <= 1 + self.again[key], (
                f"{n} apologies accepted for {key[:3]} with {self.again[key]} --again"
            )

    def follow_ups(self) -> list[tuple[int, str]]:
        """(index in the server's accepted list, root Message-ID) of every follow-up."""
        out = []
        for i, a in enumerate(self.smtp.accepted):
            root = header(a.data, "In-Reply-To")
            if a.message_id not in self.apologies and root in self.apologies:
                out.append((i, root))
        return out

    @invariant()
    def at_most_max_follow_ups_per_thread(self) -> None:
        per_root = Counter(root for _, root in self.follow_ups())
        limit = self.settings.follow_up.max_follow_ups
        assert all(n <= limit for n in per_root.values()), f"follow-ups per thread: {per_root}"

    @invariant()
    def no_follow_up_after_a_stop(self) -> None:
        for i, root in self.follow_ups():
            for s in self.stops.get(root, []):
                assert s.at is None or i < s.at, (
                    f"a follow-up in thread {root} was accepted after {s.why} had been seen"
                )

    @invariant()
    def every_sent_message_is_filed_after_a_pass(self) -> None:
        if self.last_pass is None or not self.settings.imap.save_sent:
            return
        filed = {header(raw, "Message-ID") for raw in self.imap.messages("Sent", user=YOU).values()}
        others = self.others_alive()
        for t in self.store.threads():
            for m in self.store.messages(t.id):
                if m.owner in others or (m.sent_copy or "").removeprefix("filing: ") in others:
                    continue  # a live process sent it, or is filing it: it files it itself
                if m.state == MessageState.SENT:
                    assert m.message_id in filed, f"{m.kind} {m.message_id} is not in Sent"

    @invariant()
    def nothing_due_is_left_after_a_pass(self) -> None:
        if self.last_pass is None:
            return
        s = self.settings
        others = self.others_alive()
        holidays = holidays_for(
            s.follow_up.holidays_country, range(self.now.year, self.now.year + 2)
        )
        for t in self.store.threads():
            if t.state not in (ThreadState.AWAITING, ThreadState.FOLLOWED_UP):
                continue
            if t.follow_up_due is None or datetime.fromisoformat(t.follow_up_due) > self.now:
                continue
            if any(
                m.state_now == MessageState.IN_DOUBT
                or (m.owner in others and m.state in (MessageState.QUEUED, MessageState.SUBMITTING))
                for m in self.store.messages(t.id)
            ):
                continue  # in doubt, or in the hands of another live process
            due = datetime.fromisoformat(t.follow_up_due)
            tz = sending.recipient_zone(s, t.recipient_tz or t.facts.get("interviewer_tz", ""))
            if send_time(due, self.now, tz, s.follow_up.window, holidays) > self.now:
                continue  # outside its sending window
            raise AssertionError(f"thread {t.id} ({t.state}) was due at {t.follow_up_due} and left")


# Small enough for the whole file to stay under 30 s on a busy machine. For a longer hunt:
# MAILER_MACHINE_EXAMPLES=500 pytest tests/test_lifecycle_machine.py -k keeps
MACHINE = hsettings(
    max_examples=int(os.environ.get("MAILER_MACHINE_EXAMPLES", "20")),
    stateful_step_count=40,
    deadline=None,
    database=None,
    print_blob=True,  # with the steps, the line that replays a failure
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def machine_for(settings: Settings) -> Callable[[], LifecycleMachine]:
    composer = Composer(settings.templates_dir)
    return type("Machine", (LifecycleMachine,), {"settings": settings, "composer": composer})


@pytest.fixture(scope="module")
def always(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return write_config(tmp_path_factory.mktemp("always"), "always")


@pytest.fixture(scope="module")
def office_hours(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return write_config(tmp_path_factory.mktemp("office"), "09:00-17:00")


def test_lifecycle_keeps_its_invariants_with_no_sending_window(always: Settings) -> None:
    run_state_machine_as_test(machine_for(always), settings=MACHINE)


def test_lifecycle_keeps_its_invariants_inside_office_hours(office_hours: Settings) -> None:
    run_state_machine_as_test(machine_for(office_hours), settings=MACHINE)


def _no_sent_copy(*args: Any, **kwargs: Any) -> tuple[str, list[str]]:
    return "saved in Sent", []


@pytest.mark.parametrize(
    ("target", "name", "broken", "found"),
    [
        # A pass blind to the mailbox: a follow-up goes to someone who has answered.
        (
            plan_mod,
            "decide",
            lambda *args, **kwargs: Decision(None, "ignored", {}),
            "accepted after",
        ),
        # A pass that sends nothing: a due thread is left.
        (check, "send_due", lambda *args, **kwargs: None, "was due"),
        # A duplicate guard that lets everything through.
        (Store, "_guard_duplicate", lambda *args, **kwargs: None, "apologies accepted"),
        # A Sent copy recorded as saved but never appended.
        (sending, "save_sent_copy", _no_sent_copy, "is not in Sent"),
    ],
    ids=["pass ignores replies", "pass sends nothing", "no duplicate guard", "no Sent copy"],
)
def test_the_machine_finds_a_broken_lifecycle(
    always: Settings,
    monkeypatch: pytest.MonkeyPatch,
    target: Any,
    name: str,
    broken: Any,
    found: str,
) -> None:
    """The invariants can fail: with one piece of the lifecycle broken on purpose, the
    machine finds a run that breaks the invariant guarding it."""
    monkeypatch.setattr(target, name, broken)
    with pytest.raises(AssertionError, match=found):
        run_state_machine_as_test(
            machine_for(always),
            settings=hsettings(
                MACHINE,
                max_examples=1000,
                stateful_step_count=20,
                phases=[Phase.explicit, Phase.generate],
            ),
        )


# --- what the machine found ------------------------------------------------------------------


def test_a_pass_sends_no_more_follow_ups_in_a_day_than_the_daily_cap(tmp_path: Path) -> None:
    """Verify the follow-up pass holds back what the account's daily cap does not allow
    (found by the machine: the pass used to ignore the cap; only campaigns kept it)."""
    write_config(tmp_path, "always")
    config = tmp_path / "config" / "mailer.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[imap]", "daily_cap = 1\n\n[imap]"), encoding="utf-8")
    settings = load_settings(config)
    assert settings.daily_cap == 1
    machine = machine_for(settings)()
    try:
        machine.send_apology(KEYS[0], again=False, kill_at=None)
        machine.send_apology(KEYS[2], again=False, kill_at=None)
        machine.advance_clock(timedelta(days=1))  # Tuesday 08:00 in London: both are due
        machine.run_pass(None)
        assert len(machine.follow_ups()) <= 1
    finally:
        machine.teardown()
