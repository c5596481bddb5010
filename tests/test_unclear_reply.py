"""An unthreaded human reply from an address two open threads were sent to, over the wire
(real Dovecot + SMTP; issue #13 item 7): it answers the thread it names; naming none, it holds
both until the user confirms one (``mark-replied``) or releases it (``release``)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from mailer.adapters.config import find_config, load_settings
from mailer.adapters.store import Store

from .conftest import Pair, run_cli
from .test_followup import T0, _crashed_send, check_at, send, status

pytestmark = pytest.mark.integration


def _two_threads(pair: Pair) -> tuple[tuple[int, str], tuple[int, str]]:
    a = send(pair, "--company", "Acme Ltd", "--role", "Data Engineer")
    b = send(pair, "--company", "Borealis", "--role", "Product Manager")
    return a, b


def test_an_unthreaded_reply_naming_one_company_answers_that_thread_only(pair: Pair) -> None:
    """Verify a fresh message from the interviewer naming Acme (the older thread) marks
    Acme's thread replied, not the newest one, and Borealis's still gets its follow-up."""
    (a, root_a), (b, root_b) = _two_threads(pair)
    pair.send_as(pair.interviewer, pair.candidate, "Next steps", "About ACME: can we talk Monday?")
    check_at(pair, timedelta(seconds=10))
    assert status(pair, a)["state"] == "replied"
    borealis = status(pair, b)
    assert borealis["state"] == "awaiting_reply" and borealis["held"] is None
    out = check_at(pair, timedelta(minutes=5))
    assert "1 follow-up(s) sent" in out
    assert len(pair.follow_ups_received(root_b)) == 1
    assert pair.follow_ups_received(root_a) == []


def test_an_unthreaded_reply_naming_none_holds_both_until_the_user_decides(pair: Pair) -> None:
    """Verify a reply naming neither thread holds both: no follow-up goes though both are
    due, check names them with the commands to run; release lets Acme's follow-up go, and
    mark-replied closes Borealis's."""
    (a, root_a), (b, root_b) = _two_threads(pair)
    pair.send_as(pair.interviewer, pair.candidate, "Hello again", "Can we talk on Monday?")
    out = check_at(pair, timedelta(seconds=10), expect=9)  # 9: something waits for the user
    assert f"mailer release {a}" in out and f"mailer mark-replied {b}" in out
    for thread in (a, b):
        s = status(pair, thread)
        assert s["state"] == "held"
        assert s["held"]["kind"] == "unclear_reply"
        assert s["held"]["threads"] == [a, b]
        assert s["held"]["by"] == pair.interviewer and s["held"]["subject"] == "Hello again"
    out = check_at(pair, timedelta(minutes=5), expect=9)  # both due now
    assert "0 follow-up(s) sent" in out and "2 held for you" in out
    assert pair.follow_ups_received(root_a) == [] and pair.follow_ups_received(root_b) == []

    released = run_cli(pair.ws, "release", str(a))
    assert released.returncode == 0, released.stderr
    assert "released" in released.stdout
    again = run_cli(pair.ws, "release", str(a))
    assert again.returncode == 0 and "not held" in again.stdout
    confirmed = run_cli(pair.ws, "mark-replied", str(b))
    assert confirmed.returncode == 0, confirmed.stderr

    out = check_at(pair, timedelta(minutes=10))
    assert "1 follow-up(s) sent" in out and "held for you" not in out
    assert len(pair.follow_ups_received(root_a)) == 1
    assert pair.follow_ups_received(root_b) == []
    assert status(pair, b)["state"] == "replied"
    closed = run_cli(pair.ws, "release", str(b))
    assert closed.returncode != 0 and "not held" in closed.stderr


def test_a_threaded_reply_still_answers_its_own_thread_whatever_it_names(pair: Pair) -> None:
    """Verify the naming rule is only for replies without our references: a reply threaded
    to Acme's apology that mentions Borealis answers Acme's thread."""
    (a, root_a), (b, _) = _two_threads(pair)
    pair.send_as(
        pair.interviewer,
        pair.candidate,
        "Re: apology",
        "Fine. Borealis called me about you too.",
        {"In-Reply-To": root_a, "References": root_a},
    )
    check_at(pair, timedelta(seconds=10))
    assert status(pair, a)["state"] == "replied"
    assert status(pair, b)["state"] == "awaiting_reply"


def test_a_reply_that_holds_threads_is_notified_with_the_commands(pair: Pair) -> None:
    """Verify [watch] notify = true also emails the candidate when an unclear reply holds
    threads, naming them, and the notification itself changes nothing on the next pass."""
    cfg = pair.ws / "config" / "mailer.toml"
    cfg.write_text(
        cfg.read_text().replace('poll_interval = "1s"', 'poll_interval = "1s"\nnotify = true')
    )
    (a, _), (b, _) = _two_threads(pair)
    pair.send_as(pair.interviewer, pair.candidate, "Quick note", "Is Monday fine?")
    check_at(pair, timedelta(seconds=30), expect=9)
    with pair.stack.imap(pair.candidate) as c:
        c.select_folder("INBOX", readonly=True)
        found = c.search(["SUBJECT", f"thread(s) {a},{b} held"])
    assert len(found) == 1
    check_at(pair, timedelta(seconds=40), expect=9)
    assert status(pair, a)["state"] == "held" and status(pair, b)["state"] == "held"


def test_threads_released_stay_released_when_the_reply_is_read_again(pair: Pair) -> None:
    """Verify a pass that reads the unclear reply again (its folder position lost) does not
    hold again the threads the user released: both follow-ups go."""
    (a, root_a), (b, root_b) = _two_threads(pair)
    pair.send_as(pair.interviewer, pair.candidate, "One more thing", "Is Monday fine?")
    check_at(pair, timedelta(seconds=10), expect=9)
    for thread in (a, b):
        assert run_cli(pair.ws, "release", str(thread)).returncode == 0
    store = Store(load_settings(find_config(pair.ws)).state_url)
    try:
        validity, _ = store.folder_state("INBOX")
        store.set_folder_state("INBOX", validity, 0)
    finally:
        store.close()
    out = check_at(pair, timedelta(minutes=5))
    assert "2 follow-up(s) sent" in out and "held" not in out
    assert len(pair.follow_ups_received(root_a)) == 1
    assert len(pair.follow_ups_received(root_b)) == 1


def test_a_reply_in_a_closed_conversation_answers_the_open_thread_to_that_address(
    pair: Pair,
) -> None:
    """Verify a person who answers by replying in an older conversation that is over (its
    thread cancelled) stops the follow-up of the newer open apology to the same address: the
    reply is placed as an unthreaded one is, not recorded on the closed thread alone."""
    old, old_root = send(pair)
    assert run_cli(pair.ws, "cancel", str(old)).returncode == 0
    new, new_root = send(pair, "--company", "Other Co", "--role", "Analyst")
    pair.send_as(
        pair.interviewer,
        pair.candidate,
        "Re: our interview",
        "Hi Sam, sorry to hear you were ill - happy to move the interview to Friday.",
        {"In-Reply-To": old_root, "References": old_root},
    )
    check_at(pair, timedelta(hours=2))
    assert status(pair, new)["state"] == "replied"
    assert pair.follow_ups_received(new_root) == []
    assert status(pair, old)["state"] == "cancelled"


def _arrived_at(pair: Pair, when: datetime, subject: str) -> None:
    """A message from the interviewer with no references, in the candidate's INBOX as if it
    had arrived at ``when`` (its INTERNALDATE)."""
    raw = (
        f"From: Ana Ruiz <{pair.interviewer}>\r\nTo: {pair.candidate}\r\n"
        f"Subject: {subject}\r\nMessage-ID: <{subject.replace(' ', '-')}@sandbox.test>\r\n"
        "\r\nAre you on your way? We are waiting for you.\r\n"
    ).encode()
    with pair.stack.imap(pair.candidate) as c:
        c.append("INBOX", raw, msg_time=when)


def test_a_message_that_came_just_before_the_apology_holds_it_instead_of_answering_it(
    pair: Pair,
) -> None:
    """Verify "where are you?" from the interviewer, arriving a minute before the apology
    went (within the clock slack that matches it to the thread), holds the thread for the
    user: it was marked replied, and the follow-up was lost (a walkthrough). Released, the
    follow-up goes; the same message a minute after the apology still answers it."""
    _arrived_at(pair, T0 - timedelta(minutes=1), "Where are you")
    thread, root = send(pair)
    out = check_at(pair, timedelta(seconds=10), expect=9)  # 9: something waits for the user
    assert f"mailer release {thread}" in out, out
    held = status(pair, thread)
    assert held["state"] == "held", held
    assert held["held"]["kind"] == "unclear_reply" and held["held"]["threads"] == [thread]
    shown = run_cli(pair.ws, "status", str(thread)).stdout
    assert "came before the apology went" in shown, shown
    assert "0 follow-up(s) sent" in check_at(pair, timedelta(minutes=5), expect=9)
    assert run_cli(pair.ws, "release", str(thread)).returncode == 0
    assert "1 follow-up(s) sent" in check_at(pair, timedelta(minutes=10))
    assert len(pair.follow_ups_received(root)) == 1


@pytest.mark.parametrize("early", [timedelta(hours=3), timedelta(hours=13)])
def test_a_message_from_the_interviewer_hours_before_the_apology_by_the_clocks_holds_it(
    pair: Pair, early: timedelta
) -> None:
    """Verify a message from the interviewer with no references that the server stamped
    hours before the apology went by this computer's clock (the answer itself, when the
    laptop's clock is fast or set to the wrong zone) holds the thread: it was passed over
    as older than the apology, and the follow-up went after the interviewer had answered
    (a walkthrough). Released, the follow-up goes."""
    _arrived_at(pair, T0 - early, "Your interview")
    thread, root = send(pair)
    out = check_at(pair, timedelta(minutes=5), expect=9)
    assert "0 follow-up(s) sent" in out, out
    assert status(pair, thread)["state"] == "held"
    assert "came before the apology went" in run_cli(pair.ws, "status", str(thread)).stdout
    assert pair.follow_ups_received(root) == []
    assert run_cli(pair.ws, "release", str(thread)).returncode == 0
    assert "1 follow-up(s) sent" in check_at(pair, timedelta(minutes=10))


def test_an_early_message_holds_the_new_apology_and_an_older_open_one_to_that_address(
    pair: Pair,
) -> None:
    """Verify a message from the interviewer stamped hours before a second apology to them
    (the answer to it, with this computer's clock fast) holds both threads: it matched the
    older thread by address, answered it, and the new one got its follow-up (a review)."""
    old, _ = send(pair, "--company", "Oldco", now=T0 - timedelta(days=2))
    _arrived_at(pair, T0 - timedelta(hours=3), "Your interview")
    new, new_root = send(pair)
    check_at(pair, timedelta(minutes=5), expect=9)
    assert status(pair, new)["state"] == "held"
    assert status(pair, old)["state"] == "held"
    assert pair.follow_ups_received(new_root) == []


def test_a_message_from_the_interviewer_over_a_day_before_the_apology_is_not_about_it(
    pair: Pair,
) -> None:
    """Verify the hold reaches back a day only: the interviewer's message of 30 hours before
    (the invitation; the first look at the inbox reads it) neither holds nor answers the
    apology, and its follow-up goes."""
    _arrived_at(pair, T0 - timedelta(hours=30), "Invitation")
    thread, root = send(pair)
    assert "1 follow-up(s) sent" in check_at(pair, timedelta(minutes=5))
    assert status(pair, thread)["state"] == "followed_up"
    assert len(pair.follow_ups_received(root)) == 1


def test_a_message_that_came_just_after_the_apology_still_answers_it(pair: Pair) -> None:
    """Verify the hold is only for a message that came before the apology went."""
    thread, _ = send(pair)
    _arrived_at(pair, T0 + timedelta(minutes=1), "Where are you")
    check_at(pair, timedelta(minutes=2))
    assert status(pair, thread)["state"] == "replied"


@pytest.mark.process  # the send is killed at a crash point
def test_a_message_that_came_just_before_an_apology_in_doubt_still_answers_it(
    pair: Pair,
) -> None:
    """Verify the hold is for open threads only: a thread whose apology is in doubt (still
    sending) would ignore a hold, and the message be lost for good (a review); it is marked
    replied, as it was before the hold existed."""
    _arrived_at(pair, T0 - timedelta(minutes=1), "Where are you")
    thread = _crashed_send(pair, "after-final-dot")
    check_at(pair, timedelta(seconds=10), expect=9)  # (9: the apology in doubt waits)
    assert status(pair, thread)["state"] == "replied"


def test_release_and_mark_replied_say_what_a_followed_up_thread_does_next(pair: Pair) -> None:
    """Verify releasing a held thread whose only follow-up has gone says it closes as no
    answer (it said "its follow-up goes out when due": none would), and marking a replied
    thread replied again says so and exits 0, as cancel and release do (a walkthrough)."""
    (a, root_a), (b, _) = _two_threads(pair)
    assert "2 follow-up(s) sent" in check_at(pair, timedelta(minutes=5))
    assert status(pair, a)["state"] == "followed_up"
    pair.send_as(pair.interviewer, pair.candidate, "Hello again", "Can we talk on Monday?")
    check_at(pair, timedelta(minutes=6), expect=9)
    released = run_cli(pair.ws, "release", str(a))
    assert released.returncode == 0, released.stderr
    assert "closes as no answer" in released.stdout and "goes out" not in released.stdout
    assert status(pair, a)["state"] == "followed_up"
    assert len(pair.follow_ups_received(root_a)) == 1
    assert run_cli(pair.ws, "mark-replied", str(b)).returncode == 0
    again = run_cli(pair.ws, "mark-replied", str(b))
    assert again.returncode == 0 and "replied already" in again.stdout, again.stderr


@pytest.mark.process
def test_a_held_thread_with_a_follow_up_in_doubt_gets_no_second_one(pair: Pair) -> None:
    """Verify a follow-up in doubt of a thread an unclear reply then held is not offered
    --not-sent, which is refused (a release takes the thread back to awaiting a reply, and a
    follow-up recorded as not sent would be followed by another; a review): released, the
    thread still sends nothing while its follow-up is in doubt."""
    (a, root_a), (b, root_b) = _two_threads(pair)
    crashed = run_cli(
        pair.ws,
        "check",
        env={
            "MAILER_NOW": (T0 + timedelta(minutes=5)).isoformat(),
            "MAILER_CRASH_AT": "after-final-dot",
        },
        process=True,
    )
    assert crashed.returncode == -9, crashed.stdout + crashed.stderr

    def follow_ups(thread: int) -> list[str]:
        return [m["state"] for m in status(pair, thread)["messages"] if m["kind"] == "follow_up"]

    # The pass died on the first of the two: that one is in doubt, the other not begun.
    (thread, root) = next((t, r) for t, r in ((a, root_a), (b, root_b)) if follow_ups(t))
    assert follow_ups(thread) == ["in_doubt"]
    pair.send_as(pair.interviewer, pair.candidate, "Hello again", "Can we talk on Monday?")
    out = check_at(pair, timedelta(minutes=6), expect=9)
    (line,) = [ln for ln in out.splitlines() if f"thread {thread}: follow-up" in ln]
    assert "is in doubt" in line and "--not-sent" not in line, line
    refused = run_cli(pair.ws, "resolve", str(thread), "--not-sent")
    assert refused.returncode == 2 and f"mailer release {thread}" in refused.stderr, refused.stderr
    assert run_cli(pair.ws, "release", str(thread)).returncode == 0
    check_at(pair, timedelta(minutes=20), expect=9)  # still in doubt: waits for the user
    assert pair.follow_ups_received(root) == []
    assert follow_ups(thread) == ["in_doubt"]
