"""Replies, auto-replies, bounces and the one follow-up, over the real servers.

Each test has its own candidate and interviewer mailboxes. The clock is set per command with
MAILER_NOW (the apology goes out at T0; checks run at chosen later times), so nothing waits.
"""

from __future__ import annotations

import json
import re
import sqlite3
import zlib
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default

import pytest

from mailer.adapters.config import find_config, load_settings
from mailer.adapters.sender import SmtpSession
from mailer.adapters.store import Store
from mailer.model.lifecycle import ThreadEvent
from mailer.services import passes as passes_mod
from mailer.services.passes import run_pass

from .conftest import Pair, run_cli

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def at(delta: timedelta) -> str:
    return (T0 + delta).isoformat()


def _interview_of(extra: tuple[str, ...]) -> str:
    """10:00, or for another company a time of its own: one person at one time is one
    interview, whatever the company (the duplicate key leaves it out)."""
    if "--company" not in extra:
        return "2026-11-25 10:00"
    minutes = zlib.crc32(extra[extra.index("--company") + 1].encode()) % 480
    return f"2026-11-25 {9 + minutes // 60:02d}:{minutes % 60:02d}"


def send(pair: Pair, *extra: str, to: str | None = None, now: datetime = T0) -> tuple[int, str]:
    r = run_cli(
        pair.ws,
        "send",
        "--situation",
        "illness",
        "--to",
        to or pair.interviewer,
        "--interviewer",
        "Ana Ruiz",
        "--company",
        f"Co {pair.interviewer}",
        "--role",
        "Engineer",
        "--interview",
        _interview_of(extra),
        "--yes",
        *extra,
        env={"MAILER_NOW": now.isoformat()},
    )
    assert r.returncode == 0, r.stderr
    thread = int(re.search(r"thread (\d+)", r.stdout).group(1))
    return thread, re.search(r"Message-ID (<[^>]+>)", r.stdout).group(1)


def check_at(pair: Pair, delta: timedelta, expect: int = 0) -> str:
    r = run_cli(pair.ws, "check", env={"MAILER_NOW": at(delta)})
    assert r.returncode == expect, r.stdout + r.stderr
    return r.stdout + r.stderr


def status(pair: Pair, thread: int) -> dict:
    r = run_cli(pair.ws, "status", str(thread), "--json", "--explain")
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["version"] == 1
    return shown["thread"]


def test_no_reply_gives_exactly_one_threaded_follow_up(pair: Pair) -> None:
    """Verify one follow-up goes out after the wait, threaded, and never a second one."""
    thread, root = send(pair)
    check_at(pair, timedelta(seconds=30))  # not yet due
    assert pair.follow_ups_received(root) == []
    out = check_at(pair, timedelta(minutes=5))
    assert "1 follow-up(s) sent" in out
    check_at(pair, timedelta(minutes=6))
    check_at(pair, timedelta(minutes=30))
    received = pair.follow_ups_received(root)
    assert len(received) == 1
    msg = message_from_bytes(received[0], policy=default)
    original = status(pair, thread)
    assert msg["Subject"] == "Re: " + original["subject"]
    assert msg["In-Reply-To"] == root and root in msg["References"]
    assert "> Dear Ana," in msg.get_body(("plain",)).get_content()
    # The recipient's server puts both in one conversation.
    with pair.stack.imap(pair.interviewer) as c:
        c.select_folder("INBOX", readonly=True)
        threads = c.thread(algorithm="REFERENCES")
    assert any(
        len(str(t).split(",")) >= 2 or (isinstance(t, tuple) and len(t) == 2) for t in threads
    )
    assert status(pair, thread)["state"] == "no_answer"
    sent_copies = pair.stack.messages_with_id(pair.candidate, msg["Message-ID"], folder="Sent")
    assert len(sent_copies) == 1


def test_the_follow_up_quotes_the_apology_under_the_name_it_went_out_under(pair: Pair) -> None:
    """Verify the quote's "On ..., NAME wrote:" names the sender as the interviewer saw the
    apology, not as the config names them when the follow-up goes (a name changed since); the
    follow-up itself goes out under today's name."""
    _, root = send(pair)
    config = pair.ws / "config" / "mailer.toml"
    text = config.read_text(encoding="utf-8")
    assert 'name = "Sam Candidate"' in text
    config.write_text(text.replace('name = "Sam Candidate"', 'name = "Samantha Candidate"'))
    assert "1 follow-up(s) sent" in check_at(pair, timedelta(minutes=5))
    (received,) = pair.follow_ups_received(root)
    msg = message_from_bytes(received, policy=default)
    body = msg.get_body(("plain",)).get_content()
    assert "Sam Candidate wrote:" in body, body
    assert "Samantha Candidate wrote:" not in body
    assert msg["From"].addresses[0].display_name == "Samantha Candidate"


def test_threaded_human_reply_stops_the_follow_up(pair: Pair) -> None:
    """Verify a reply with In-Reply-To marks the thread replied and no follow-up goes out."""
    thread, root = send(pair)
    pair.send_as(
        pair.interviewer,
        pair.candidate,
        "Re: our interview",
        "No problem at all. How about Friday at 10?",
        {"In-Reply-To": root, "References": root},
    )
    check_at(pair, timedelta(seconds=10))
    check_at(pair, timedelta(hours=2))
    s = status(pair, thread)
    assert s["state"] == "replied"
    assert s["reply"]["by"] == pair.interviewer
    assert s["reply"]["subject"] == "Re: our interview"
    assert pair.follow_ups_received(root) == []
    assert any(e["kind"] == "replied" for e in s["events"])


def test_unthreaded_reply_from_the_interviewer_stops_it(pair: Pair) -> None:
    """Verify a fresh message (no In-Reply-To) from the interviewer's address counts."""
    thread, root = send(pair)
    pair.send_as(pair.interviewer, pair.candidate, "Rescheduling", "Let's talk Monday.")
    check_at(pair, timedelta(hours=2))
    assert status(pair, thread)["state"] == "replied"
    assert pair.follow_ups_received(root) == []


def test_reply_from_an_alternate_address_stops_it(pair: Pair) -> None:
    """Verify a threaded reply from --alt-address (e.g. the recruiter) counts as the answer."""
    thread, root = send(pair, "--alt-address", pair.alternate)
    pair.send_as(
        pair.alternate,
        pair.candidate,
        "Re: your message",
        "I'll set something up.",
        {"In-Reply-To": root},
    )
    check_at(pair, timedelta(hours=2))
    s = status(pair, thread)
    assert s["state"] == "replied" and s["reply"]["by"] == pair.alternate
    assert pair.follow_ups_received(root) == []


def test_unthreaded_reply_from_an_alternate_domain_stops_it(pair: Pair) -> None:
    """Verify --alt-domain: any address there, even without threading headers."""
    thread, _root = send(pair, "--alt-domain", "sandbox.test")
    pair.send_as(pair.alternate, pair.candidate, "Interview", "Our coordinator will call you.")
    check_at(pair, timedelta(hours=2))
    assert status(pair, thread)["state"] == "replied"


def test_out_of_office_does_not_stop_it(pair: Pair) -> None:
    """Verify an auto-reply without a return date leaves the follow-up on schedule."""
    thread, root = send(pair)
    pair.send_as(
        pair.interviewer,
        pair.candidate,
        "Automatic reply: Re: our interview",
        "Thank you for your email. I am currently out of the office with limited access to email.",
        {"Auto-Submitted": "auto-replied", "In-Reply-To": root},
    )
    check_at(pair, timedelta(seconds=10))
    s = status(pair, thread)
    assert s["state"] == "awaiting_reply" and s["auto_reply"]["kind"] == "out_of_office"
    check_at(pair, timedelta(hours=2))
    assert len(pair.follow_ups_received(root)) == 1


def test_out_of_office_with_a_return_date_postpones_it(pair: Pair) -> None:
    """Verify 'back on 3 December' moves the follow-up to the next business day after."""
    thread, root = send(pair)
    pair.send_as(
        pair.interviewer,
        pair.candidate,
        "Out of Office: Re: our interview",
        "I am out of the office until Thursday 3 December 2026 and will reply when I return.",
        {"Auto-Submitted": "auto-replied", "In-Reply-To": root},
    )
    check_at(pair, timedelta(hours=2))
    s = status(pair, thread)
    assert s["auto_reply"]["until"] == "2026-12-03"
    assert s["follow_up_due"].startswith("2026-12-04")
    assert pair.follow_ups_received(root) == []
    check_at(pair, timedelta(days=9, hours=2))  # 4 December, 17:00
    assert len(pair.follow_ups_received(root)) == 1


def test_bounce_from_the_server_marks_the_thread_bounced(pair: Pair) -> None:
    """Verify a real DSN from the SMTP server bounces the thread and stops follow-ups."""
    thread, _root = send(pair, to="ghost@unreachable.test")
    check_at(pair, timedelta(seconds=10))
    s = status(pair, thread)
    assert s["state"] == "bounced", s
    assert s["bounce"]["kind"] == "hard" and s["bounce"]["status"] == "5.1.2"
    out = check_at(pair, timedelta(hours=2))
    assert "0 follow-up(s) sent" in out
    mark = pair.stack.log_mark()
    check_at(pair, timedelta(days=3))
    assert not [e for e in pair.stack.log_since(mark) if e["event"] == "accepted"]


def test_reply_arriving_while_the_follow_up_is_prepared_stops_it(pair: Pair, monkeypatch) -> None:
    """Verify the last-moment inbox check: a reply during preparation wins."""
    thread, root = send(pair)
    settings = load_settings(find_config(pair.ws), need_secrets=True)
    store = Store(settings.state_url)
    real_build = passes_mod.build_follow_up

    def build_and_reply(*args, **kwargs):
        composed = real_build(*args, **kwargs)
        pair.send_as(
            pair.interviewer,
            pair.candidate,
            "Re: sorry",
            "Just saw this - call me.",
            {"In-Reply-To": root},
        )
        return composed

    monkeypatch.setattr(passes_mod, "build_follow_up", build_and_reply)
    mark = pair.stack.log_mark()
    report = run_pass(settings, store, lambda: T0 + timedelta(hours=2))
    assert report.sent == []
    assert store.thread(thread).state == "replied"
    assert pair.follow_ups_received(root) == []
    accepted = [e for e in pair.stack.log_since(mark) if e["event"] == "accepted"]
    assert all(e["mail_from"] != pair.candidate for e in accepted)
    kinds = [m.state for m in store.messages(thread) if m.kind == "follow_up"]
    assert kinds == ["failed"]  # the claimed follow-up was cancelled, never submitted


def test_reply_arriving_while_smtp_signs_in_stops_the_follow_up(pair: Pair) -> None:
    """Verify the last look comes after the SMTP connection is made (TLS, sign-in), not
    before: a reply delivered while the connection is being opened stops the follow-up."""
    thread, root = send(pair)
    settings = load_settings(find_config(pair.ws), need_secrets=True)
    store = Store(settings.state_url)

    class ReplyWhileConnecting(SmtpSession):
        def connect(self) -> None:
            pair.send_as(
                pair.interviewer, pair.candidate, "Re: sorry", "Call me.", {"In-Reply-To": root}
            )
            super().connect()

    report = run_pass(settings, store, lambda: T0 + timedelta(hours=2), smtp=ReplyWhileConnecting)
    assert report.sent == []
    assert store.thread(thread).state == "replied"
    assert pair.follow_ups_received(root) == []


def test_challenge_response_while_the_follow_up_is_prepared_cancels_it(
    pair: Pair, monkeypatch
) -> None:
    """Verify a challenge-response notice arriving after the follow-up was claimed holds the
    thread and cancels the queued follow-up in the same step: nothing goes now, and a later
    pass sends nothing either."""
    thread, root = send(pair)
    settings = load_settings(find_config(pair.ws), need_secrets=True)
    store = Store(settings.state_url)
    real_build = passes_mod.build_follow_up

    def build_and_challenge(*args, **kwargs):
        composed = real_build(*args, **kwargs)
        pair.send_as(
            pair.interviewer,
            pair.candidate,
            "Re: Sorry I missed our interview",
            "This account is protected by SpamShield. Please click on the following link to "
            "have your address added to the recipient's allowed list:\nhttps://cr.example/v/1",
            {"In-Reply-To": root, "References": root},
        )
        return composed

    monkeypatch.setattr(passes_mod, "build_follow_up", build_and_challenge)
    mark = pair.stack.log_mark()
    report = run_pass(settings, store, lambda: T0 + timedelta(hours=2))
    assert report.sent == []
    assert store.thread(thread).state == "held"
    (follow_up,) = [m for m in store.messages(thread) if m.kind == "follow_up"]
    assert (follow_up.state, follow_up.error) == ("failed", "held: follow-up cancelled")
    monkeypatch.setattr(passes_mod, "build_follow_up", real_build)
    later = run_pass(settings, store, lambda: T0 + timedelta(hours=3))
    assert later.sent == [] and store.thread(thread).state == "held"
    assert pair.follow_ups_received(root) == []
    accepted = [e for e in pair.stack.log_since(mark) if e["event"] == "accepted"]
    assert all(e["mail_from"] != pair.candidate for e in accepted)


def test_check_stopped_by_sigterm_finishes_its_follow_up_and_begins_no_other(
    pair: Pair, monkeypatch
) -> None:
    """Verify SIGTERM to `mailer check` (a SQLite store) while it prepares a follow-up: that
    follow-up goes, the next due one is not begun, and check exits 143 with one line; the
    next check sends the one left."""
    import os
    import signal

    first, first_root = send(pair)
    second, second_root = send(pair, "--company", "Second Co")
    real_build = passes_mod.build_follow_up
    built: list[int] = []

    def build_then_sigterm(settings, store, thread, now):
        built.append(thread.id)
        os.kill(os.getpid(), signal.SIGTERM)  # check's handler takes it: no process dies
        return real_build(settings, store, thread, now)

    monkeypatch.setattr(passes_mod, "build_follow_up", build_then_sigterm)
    # Should check not take the signal, this test fails rather than the test run dying.
    stray: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: stray.append(signum))
    try:
        r = run_cli(pair.ws, "check", env={"MAILER_NOW": at(timedelta(hours=2))})
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stray == [], "check left SIGTERM to the default handler"
    assert r.returncode == 143, r.stdout + r.stderr
    assert [line for line in r.stderr.splitlines() if "SIGTERM" in line] == [
        "mailer: check stopped by SIGTERM after the step it was on (what it did is "
        "recorded); run 'mailer check' again for the rest"
    ]
    assert "1 follow-up(s) sent" in r.stdout
    (done,) = built
    left = second if done == first else first
    roots = {first: first_root, second: second_root}
    assert len(pair.follow_ups_received(roots[done])) == 1
    assert pair.follow_ups_received(roots[left]) == []
    assert [
        m.kind for m in Store(load_settings(find_config(pair.ws)).state_url).messages(left)
    ] == ["apology"]
    monkeypatch.setattr(passes_mod, "build_follow_up", real_build)
    check_at(pair, timedelta(hours=2, minutes=1))
    assert [len(pair.follow_ups_received(roots[t])) for t in (first, second)] == [1, 1]


def test_check_stopped_by_sigterm_after_a_problem_exits_with_the_problem_and_restores_sigterm(
    pair: Pair, monkeypatch
) -> None:
    """Verify SIGTERM to `mailer check` during a pass that had a problem (a follow-up the
    server put off with 451): the SIGTERM line names the problem, the exit code is the
    problem's (5), not 143; and the SIGTERM handler in place before check is back once check
    returns (a caller running it in its own process keeps its own)."""
    import os
    import signal

    from mailer.errors import ExitCode
    from mailer.services import daemon as daemon_mod

    _, root = send(pair)
    _, second_root = send(pair, "--company", "Second Co")  # left by the stop
    real_build = passes_mod.build_follow_up

    def build_then_sigterm(settings, store, t, now):
        os.kill(os.getpid(), signal.SIGTERM)  # check's handler takes it: no process dies
        return real_build(settings, store, t, now)

    handler_after: list[object] = []
    real_log_report = daemon_mod.log_report

    def log_report_seeing_the_handler(report, *args, **kwargs):
        handler_after.append(signal.getsignal(signal.SIGTERM))
        return real_log_report(report, *args, **kwargs)

    monkeypatch.setattr(passes_mod, "build_follow_up", build_then_sigterm)
    monkeypatch.setattr(daemon_mod, "log_report", log_report_seeing_the_handler)
    pair.stack.set_faults(data=["451 4.3.0 try again later"] * 10)
    stray: list[int] = []

    def catch_stray(signum, _frame) -> None:
        stray.append(signum)

    previous = signal.signal(signal.SIGTERM, catch_stray)
    try:
        r = run_cli(pair.ws, "check", env={"MAILER_NOW": at(timedelta(hours=2))})
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stray == [], "check left SIGTERM to the handler before it"
    assert handler_after == [catch_stray]
    assert r.returncode == ExitCode.NETWORK, r.stdout + r.stderr
    assert "follow-up will be retried" in r.stderr
    assert [line for line in r.stderr.splitlines() if "SIGTERM" in line] == [
        "mailer: check stopped by SIGTERM after the step it was on (1 problem(s) above); "
        "run 'mailer check' again for the rest"
    ]
    assert pair.follow_ups_received(root) == pair.follow_ups_received(second_root) == []


def test_smtp_down_when_due_retries_later_and_sends_once(pair: Pair) -> None:
    """Verify a follow-up due while SMTP is unreachable stays queued and goes out later."""
    from dataclasses import replace

    from mailer.sandbox.stack import free_ports

    thread, root = send(pair)
    settings = load_settings(find_config(pair.ws), need_secrets=True)
    store = Store(settings.state_url)
    down = replace(settings, smtp=replace(settings.smtp, port=free_ports(1)[0]), retries=0)
    report = run_pass(down, store, lambda: T0 + timedelta(hours=2))
    assert report.sent == [] and any("retried" in p for p in report.problems)
    (queued,) = [m for m in store.messages(thread) if m.kind == "follow_up"]
    assert queued.state == "queued"
    report = run_pass(settings, store, lambda: T0 + timedelta(hours=3))
    assert [t for t, _ in report.sent] == [thread]
    assert len(pair.follow_ups_received(root)) == 1
    run_pass(settings, store, lambda: T0 + timedelta(hours=4))
    assert len(pair.follow_ups_received(root)) == 1


def test_imap_down_means_no_follow_up(pair: Pair) -> None:
    """Verify we never assume 'no reply' when the mailbox cannot be read."""
    from dataclasses import replace

    from mailer.sandbox.stack import free_ports

    _thread, root = send(pair)
    settings = load_settings(find_config(pair.ws), need_secrets=True)
    store = Store(settings.state_url)
    blind = replace(settings, imap=replace(settings.imap, port=free_ports(1)[0]))
    report = run_pass(blind, store, lambda: T0 + timedelta(hours=2))
    assert report.sent == [] and "cannot look for replies" in report.problems[0]
    assert pair.follow_ups_received(root) == []


def test_cancel_and_mark_replied_stop_follow_ups(pair: Pair) -> None:
    """Verify the user's own decisions stop follow-ups."""
    t1, root1 = send(pair)
    assert run_cli(pair.ws, "cancel", str(t1)).returncode == 0
    check_at(pair, timedelta(hours=2))
    assert pair.follow_ups_received(root1) == []
    assert status(pair, t1)["state"] == "cancelled"
    # Cancelling twice reached what the user wanted: said, not an error (issue 12).
    again = run_cli(pair.ws, "cancel", str(t1))
    assert again.returncode == 0 and "already cancelled" in again.stdout
    # A thread that is over for another reason still cannot be cancelled.
    t2, _ = send(pair, "--company", "Replied Co")
    assert run_cli(pair.ws, "mark-replied", str(t2)).returncode == 0
    closed = run_cli(pair.ws, "cancel", str(t2))
    assert closed.returncode != 0 and "nothing to cancel" in closed.stderr


def test_mark_replied_records_an_answer_by_phone(pair: Pair) -> None:
    """Verify mark-replied closes the thread as replied, with the note."""
    thread, root = send(pair)
    r = run_cli(pair.ws, "mark-replied", str(thread), "--note", "phoned on Monday")
    assert r.returncode == 0, r.stderr
    check_at(pair, timedelta(hours=2))
    s = status(pair, thread)
    assert s["state"] == "replied" and s["reply"]["by"] == "phoned on Monday"
    assert pair.follow_ups_received(root) == []
    # Shown as what it is, not "replied ... by phoned on Monday" (walkthrough, session 16).
    shown = run_cli(pair.ws, "status", str(thread)).stdout
    assert "(marked by you: phoned on Monday)" in shown, shown


def test_preview_follow_up_shows_the_threaded_message(pair: Pair) -> None:
    """Verify preview --follow-up shows Re: subject, In-Reply-To and the quote, sending nothing."""
    thread, root = send(pair)
    r = run_cli(pair.ws, "preview", "--follow-up", str(thread))
    assert r.returncode == 0, r.stderr
    assert f"In-Reply-To: {root}" in r.stdout
    assert "Subject: Re: Apologies for missing our interview" in r.stdout
    assert "> Dear Ana," in r.stdout
    assert pair.follow_ups_received(root) == []
    # A held thread's preview says nothing goes until it is released (a walkthrough).
    with sqlite3.connect(pair.ws / ".mailer" / "state.db") as db:
        db.execute("UPDATE threads SET state = 'held' WHERE id = ?", (thread,))
    held = run_cli(pair.ws, "preview", "--follow-up", str(thread))
    assert held.returncode == 0 and f"'mailer release {thread}'" in held.stderr, held.stderr


def test_preview_follow_up_of_a_followed_up_thread_says_no_further_one_goes(pair: Pair) -> None:
    """Verify preview --follow-up of a thread whose only follow-up went says no further one
    goes and shows no message (it showed a new follow-up with a fresh Message-ID; a
    walkthrough)."""
    thread, _ = send(pair)
    assert "1 follow-up(s) sent" in check_at(pair, timedelta(minutes=5))
    r = run_cli(pair.ws, "preview", "--follow-up", str(thread))
    assert r.returncode == 0, r.stderr
    assert "1 of its 1 follow-up(s): no further follow-up will go" in r.stdout, r.stdout
    assert "Message-ID" not in r.stdout


def test_preview_follow_up_shows_it_as_it_would_go_when_due(pair: Pair) -> None:
    """Verify preview --follow-up composes the follow-up at its due time, not now: after an
    out-of-office moved it past a free time, that time is no longer offered (it offered
    times that would be past by then; newcomer walkthrough, session 16)."""
    thread, root = send(
        pair, "--free", "2026-12-01 09:00-12:00", "--free", "2026-12-17 09:00-12:00"
    )
    pair.send_as(
        pair.interviewer,
        pair.candidate,
        "Automatic reply: our interview",
        "I am out of the office until 15 December with no access to email.",
        {"In-Reply-To": root, "References": root, "Auto-Submitted": "auto-replied"},
    )
    check_at(pair, timedelta(seconds=30))
    assert status(pair, thread)["follow_up_due"] > "2026-12-14", status(pair, thread)
    r = run_cli(
        pair.ws, "preview", "--follow-up", str(thread), env={"MAILER_NOW": at(timedelta(minutes=1))}
    )
    assert r.returncode == 0, r.stderr
    assert "as it would go when due" in r.stderr
    own = r.stdout.split(" wrote:\n")[0]  # (the quoted apology lists both, as it did)
    assert "Thursday 17 December" in own and "Tuesday 1 December" not in own, r.stdout


def _crashed_send(pair: Pair, point: str) -> int:
    r = run_cli(
        pair.ws,
        "send",
        "--situation",
        "illness",
        "--to",
        pair.interviewer,
        "--interviewer",
        "Ana Ruiz",
        "--company",
        "Doubtful Ltd",
        "--role",
        "Engineer",
        "--interview",
        "2026-11-25 10:00",
        "--yes",
        env={"MAILER_NOW": T0.isoformat(), "MAILER_CRASH_AT": point},
    )
    assert r.returncode == -9
    (thread,) = json.loads(run_cli(pair.ws, "status", "--json").stdout)["threads"]
    assert thread["state"] == "sending"
    assert thread["unsettled"] == {"kind": "apology", "state": "in_doubt"}
    return thread["id"]


def _apology_copies(pair: Pair) -> int:
    with pair.stack.imap(pair.interviewer) as c:
        c.select_folder("INBOX", readonly=True)
        return len(c.search(["SUBJECT", "Apologies for missing"]))


@pytest.mark.process
def test_resolve_sent_settles_an_in_doubt_apology(pair: Pair) -> None:
    """Verify `resolve --sent` records the delivered apology and schedules its follow-up."""
    thread = _crashed_send(pair, "after-250")
    # Cannot prove it either way: stays in doubt, named with what to run, and check says
    # something waits for the user.
    out = check_at(pair, timedelta(seconds=5), expect=9)
    assert f"mailer resolve {thread} --sent" in out and "1 in doubt" in out
    assert status(pair, thread)["unsettled"] == {"kind": "apology", "state": "in_doubt"}
    r = run_cli(pair.ws, "resolve", str(thread), "--sent")
    assert r.returncode == 0, r.stderr
    s = status(pair, thread)
    assert s["state"] == "awaiting_reply" and s["follow_up_due"]
    assert _apology_copies(pair) == 1
    # Asked twice, the first reached what the user wanted: said so, exit 0 (as cancel).
    again = run_cli(pair.ws, "resolve", str(thread), "--sent")
    assert again.returncode == 0 and "no message in doubt" in again.stdout, again.stderr


@pytest.mark.process
def test_resolve_resend_sends_the_same_message_once(pair: Pair) -> None:
    """Verify `resolve --resend` delivers the recorded bytes (same Message-ID) exactly once."""
    thread = _crashed_send(pair, "after-final-dot")
    assert _apology_copies(pair) == 0
    check_at(pair, timedelta(seconds=5), expect=9)  # a pass finds it in doubt, and says why
    r = run_cli(pair.ws, "resolve", str(thread), "--resend")
    assert r.returncode == 0, r.stderr
    s = status(pair, thread)
    assert s["state"] == "awaiting_reply"
    # Its line no longer says it may or may not have been delivered (a walkthrough).
    shown = run_cli(pair.ws, "status", str(thread)).stdout
    assert "may or may not" not in shown, shown
    (apology,) = [m for m in s["messages"] if m["kind"] == "apology"]
    assert len(pair.stack.messages_with_id(pair.interviewer, apology["message_id"])) == 1
    again = run_cli(pair.ws, "resolve", str(thread), "--resend")
    assert again.returncode != 0 and "no message in doubt" in again.stderr
    assert _apology_copies(pair) == 1


@pytest.mark.process
def test_resolve_with_both_answers_is_refused_and_changes_nothing(pair: Pair) -> None:
    """Verify `resolve --sent --resend` (either order) is refused in one line, exit 2: the
    message stays in doubt, nothing is sent again, nothing is recorded as sent."""
    thread = _crashed_send(pair, "after-250")
    for args in (("--sent", "--resend"), ("--resend", "--sent")):
        r = run_cli(pair.ws, "resolve", str(thread), *args)
        assert r.returncode == 2, r.stdout + r.stderr
        assert r.stderr.splitlines() == [
            "mailer: error: --sent and --resend do not go together: say which happened "
            "(see 'mailer resolve --help')"
        ]
    assert status(pair, thread)["unsettled"] == {"kind": "apology", "state": "in_doubt"}
    assert _apology_copies(pair) == 1


@pytest.mark.process
def test_in_doubt_is_settled_from_sent_where_the_provider_files_it(pair: Pair) -> None:
    """Verify the Gmail case: a copy in Sent (filed by the provider) proves it went."""
    cfg = pair.ws / "config" / "mailer.toml"
    cfg.write_text(
        cfg.read_text().replace('security = "ssl"', 'security = "ssl"\nsave_sent = false', 1)
    )
    thread = _crashed_send(pair, "after-250")
    settings = load_settings(find_config(pair.ws))
    (row,) = Store(settings.state_url).messages(thread)
    with pair.stack.imap(pair.candidate) as c:  # what Gmail does on acceptance
        c.append("Sent", row.raw)
    check_at(pair, timedelta(seconds=5))
    s = status(pair, thread)
    assert s["state"] == "awaiting_reply", s
    assert any("found in Sent" in (e["detail"] or "") for e in s["events"])


def test_no_follow_up_to_an_address_that_bounced_in_another_thread(pair: Pair) -> None:
    """Verify a hard bounce on one thread stops follow-ups to that address everywhere."""
    first, _ = send(pair)
    r = run_cli(
        pair.ws,
        "send",
        "--situation",
        "transport",
        "--to",
        pair.interviewer,
        "--interviewer",
        "Ana Ruiz",
        "--company",
        "Second Co",
        "--role",
        "Engineer",
        "--interview",
        "2026-11-24 10:00",
        "--yes",
        env={"MAILER_NOW": T0.isoformat()},
    )
    assert r.returncode == 0, r.stderr
    second_root = re.search(r"Message-ID (<[^>]+>)", r.stdout).group(1)
    settings = load_settings(find_config(pair.ws), need_secrets=True)
    store = Store(settings.state_url)
    store.set_thread_state(
        first,
        ThreadEvent.BOUNCE,
        T0,
        "bounced",
        {
            "bounce_reason": "hard bounce 5.1.1: user unknown",
            "bounced_at": (T0 + timedelta(minutes=1)).isoformat(),
        },
    )
    report = run_pass(settings, store, lambda: T0 + timedelta(hours=2))
    assert report.sent == []
    (second,) = [t for t in store.threads() if t.id != first]
    assert second.state == "bounced" and f"thread {first}" in second.detail["bounce_reason"]
    assert pair.follow_ups_received(second_root) == []

    assert pair.follow_ups_received(second_root) == []


def test_an_old_bounce_does_not_stop_a_later_thread(pair: Pair) -> None:
    """Verify a hard bounce from before this thread was sent does not block its follow-up."""
    first, _ = send(pair)
    settings = load_settings(find_config(pair.ws), need_secrets=True)
    store = Store(settings.state_url)
    store.set_thread_state(
        first,
        ThreadEvent.BOUNCE,
        T0,
        "bounced",
        {
            "bounce_reason": "hard bounce 5.1.1: user unknown",
            "bounced_at": (T0 - timedelta(days=30)).isoformat(),
        },
    )
    r = run_cli(
        pair.ws,
        "send",
        "--situation",
        "transport",
        "--to",
        pair.interviewer,
        "--interviewer",
        "Ana Ruiz",
        "--company",
        "Later Co",
        "--role",
        "Engineer",
        "--interview",
        "2026-11-24 10:00",
        "--yes",
        env={"MAILER_NOW": T0.isoformat()},
    )
    root = re.search(r"Message-ID (<[^>]+>)", r.stdout).group(1)
    report = run_pass(settings, store, lambda: T0 + timedelta(hours=2))
    assert len(report.sent) == 1
    assert len(pair.follow_ups_received(root)) == 1


def test_reply_notification_reaches_the_candidate(pair: Pair) -> None:
    """Verify [watch] notify = true emails the candidate when the interviewer answers."""
    cfg = pair.ws / "config" / "mailer.toml"
    cfg.write_text(
        cfg.read_text().replace('poll_interval = "1s"', 'poll_interval = "1s"\nnotify = true')
    )
    thread, root = send(pair)
    pair.send_as(
        pair.interviewer, pair.candidate, "Re: interview", "Monday at 9?", {"In-Reply-To": root}
    )
    check_at(pair, timedelta(seconds=30))
    assert status(pair, thread)["state"] == "replied"
    with pair.stack.imap(pair.candidate) as c:
        c.select_folder("INBOX", readonly=True)
        found = c.search(["SUBJECT", f"replied (thread {thread})"])
    assert len(found) == 1
    # The notification itself is never mistaken for anything: the next pass changes nothing.
    check_at(pair, timedelta(minutes=1))
    assert status(pair, thread)["state"] == "replied"


def test_follow_up_offers_only_free_times_still_ahead_and_preview_shows_the_same(
    pair: Pair,
) -> None:
    """Verify a follow-up drops the free times that have passed, and preview --follow-up at
    the same moment shows the very text that is then sent."""
    thread, root = send(
        pair, "--free", "2026-11-26 09:00-12:00", "--free", "2026-11-30 09:00-12:00"
    )
    later = timedelta(days=2)  # Friday 27 November: the Thursday slot has passed
    shown = run_cli(pair.ws, "preview", "--follow-up", str(thread), env={"MAILER_NOW": at(later)})
    assert shown.returncode == 0, shown.stderr
    assert "Monday 30 November, 09:00" in shown.stdout
    # Only the quoted apology (its lines start with ">") still lists the passed time.
    assert not re.search(r"^\s*- Thursday 26 November", shown.stdout, re.MULTILINE)
    assert re.search(r"^>\s+- Thursday 26 November", shown.stdout, re.MULTILINE)
    check_at(pair, later)
    (received,) = pair.follow_ups_received(root)
    body = message_from_bytes(received, policy=default).get_body(("plain",)).get_content()
    own = body.replace("\r\n", "\n").split("\nOn ")[0].strip()  # without the quoted apology
    assert own.startswith("Dear Ana,") and "Monday 30 November" in own
    assert own in shown.stdout


@pytest.mark.process
def test_a_resend_whose_record_fails_says_it_went_and_is_never_resent_again(
    pair: Pair, monkeypatch
) -> None:
    """Verify `resolve --resend` whose 250 cannot be recorded says the copy WAS accepted
    (not a bare store error, which reads as "not sent"), and marks it so that a further
    --resend sends no third copy: the interviewer gets exactly the original and one resend."""
    from mailer.errors import InputError, StateError
    from mailer.services.decisions import resolve
    from mailer.services.delivery import was_accepted

    thread = _crashed_send(pair, "after-250")  # delivered, never recorded: in doubt
    assert _apology_copies(pair) == 1
    settings = load_settings(find_config(pair.ws), need_secrets=True)
    real = Store.mark_sent

    def full_disk(self: Store, *args, settling: bool = False, **kwargs) -> None:  # type: ignore[no-untyped-def]
        if not settling:
            raise StateError("state store: database or disk is full")
        real(self, *args, settling=settling, **kwargs)

    monkeypatch.setattr(Store, "mark_sent", full_disk)
    store = Store(settings.state_url)
    clock = lambda: T0 + timedelta(hours=1)  # noqa: E731
    with pytest.raises(StateError) as caught:
        resolve(settings, store, thread, sent=False, clock=clock)
    assert "the apology WAS accepted by the server (250" in str(caught.value)
    assert f"mailer resolve {thread} --sent" in caught.value.hint
    (row,) = store.messages(thread)
    assert was_accepted(row), row
    with pytest.raises(InputError, match="it is not sent again"):
        resolve(settings, store, thread, sent=False, clock=clock)
    assert _apology_copies(pair) == 2  # the original and the one resend
    store.close()
