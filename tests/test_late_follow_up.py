"""A follow-up that could not go until long after it was due (the laptop was shut for a
holiday, the daemon stopped) is held for the user's word, not sent unasked: the interviewer
may have answered by phone meanwhile, and the user expected it weeks ago.

The rule is pure (``plan.plan_due``) and driven here without servers; the whole loop (held by
``check``, named with its commands, released, sent once) runs against the real Dovecot and
SMTP server of the test stack.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailer.adapters.config import load_settings
from mailer.errors import ConfigError, ExitCode
from mailer.model.decision import Policy, ThreadSnapshot
from mailer.model.lifecycle import ThreadState
from mailer.model.plan import BounceAddress, CloseNoAnswer, HoldLate, SendFollowUp, plan_pass
from mailer.model.settings import Wait, Window, late_limit, parse_window

from .conftest import Pair, run_cli
from .test_config import BASE, edited, problems, write
from .test_followup import at, check_at, send, status

T = ThreadState
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=BERLIN)  # a Tuesday, inside office hours
WEEK = Wait(duration=timedelta(days=7))
LATE = Policy(BERLIN, Window(), late_after=WEEK)


def _thread(due: datetime, state: str = T.AWAITING, **detail: str) -> ThreadSnapshot:
    return ThreadSnapshot(1, state, detail, due)


# --- the rule (pure) --------------------------------------------------------------------------


def test_a_follow_up_more_than_the_limit_past_its_due_time_is_held_not_sent() -> None:
    """Verify a follow-up due eight days ago, with a limit of seven, is planned as a hold
    that carries its due time, and not as a send."""
    due = NOW - timedelta(days=8)
    assert plan_pass([_thread(due)], [], NOW, LATE) == [HoldLate(1, due)]


def test_a_follow_up_just_inside_the_limit_still_goes() -> None:
    """Verify the control case: due six days and 23 hours ago, it is sent."""
    due = NOW - timedelta(days=6, hours=23)
    assert plan_pass([_thread(due)], [], NOW, LATE) == [SendFollowUp(1)]


def test_the_limit_counts_from_the_first_open_moment_of_the_window() -> None:
    """Verify a follow-up due on Friday evening, after the window closed, is not late on
    Tuesday with a limit of two days: its first chance was Monday 09:00, not Friday."""
    friday_evening = datetime(2026, 11, 27, 18, 0, tzinfo=BERLIN)
    two_days = Policy(BERLIN, Window(), late_after=Wait(duration=timedelta(days=2)))
    assert plan_pass([_thread(friday_evening)], [], NOW, two_days) == [SendFollowUp(1)]
    # Counted from Friday evening it would have been late since Sunday: the control.
    wednesday = datetime(2026, 12, 2, 9, 0, tzinfo=BERLIN)
    assert plan_pass([_thread(friday_evening)], [], wednesday, two_days) == [
        HoldLate(1, friday_evening)
    ]


def test_a_release_after_the_due_time_lets_the_late_follow_up_go() -> None:
    """Verify a thread the user released after its due time (their word that it may go) is
    sent, however long ago it was due; a release before the due time does not count."""
    due = NOW - timedelta(days=30)
    released = _thread(due, released_at=(NOW - timedelta(hours=1)).isoformat())
    assert plan_pass([released], [], NOW, LATE) == [SendFollowUp(1)]
    earlier = _thread(due, released_at=(due - timedelta(days=1)).isoformat())
    assert plan_pass([earlier], [], NOW, LATE) == [HoldLate(1, due)]
    damaged = _thread(due, released_at="not a date")
    assert plan_pass([damaged], [], NOW, LATE) == [HoldLate(1, due)]


def test_a_release_while_the_window_is_shut_counts_from_when_it_opens() -> None:
    """Verify a release on Friday evening, with a limit of two days, lets the follow-up go
    at Monday 09:00, the first moment it may (counted from the release itself it was late
    again by then); and with a window open on Mondays only and a holiday on the next one, a
    release just after Monday's window still counts from the Monday after."""
    due = datetime(2026, 11, 2, 10, 0, tzinfo=BERLIN)
    friday_evening = datetime(2026, 11, 27, 18, 0, tzinfo=BERLIN)
    two_days = Policy(BERLIN, Window(), late_after=Wait(duration=timedelta(days=2)))
    t = _thread(due, released_at=friday_evening.isoformat())
    monday = datetime(2026, 11, 30, 9, 0, tzinfo=BERLIN)
    assert plan_pass([t], [], monday, two_days) == [SendFollowUp(1)]
    mondays = parse_window("09:00-17:00", "mon")
    holiday = frozenset({datetime(2026, 12, 7).date()})
    week = Policy(BERLIN, mondays, holiday, late_after=WEEK)
    t = _thread(due, released_at=datetime(2026, 11, 30, 17, 30, tzinfo=BERLIN).isoformat())
    assert plan_pass([t], [], datetime(2026, 12, 14, 9, 0, tzinfo=BERLIN), week) == [
        SendFollowUp(1)
    ]


def test_a_late_follow_up_is_held_at_once_even_outside_the_window() -> None:
    """Verify a follow-up ten days late, checked on a Saturday, is held then (the user hears
    of it now), not left waiting for Monday's window only to be held there."""
    saturday = datetime(2026, 12, 5, 11, 0, tzinfo=BERLIN)
    due = saturday - timedelta(days=10)
    assert plan_pass([_thread(due)], [], saturday, LATE) == [HoldLate(1, due)]
    # The control: not late, it waits for the window.
    fresh = _thread(saturday - timedelta(days=1))
    assert [type(a).__name__ for a in plan_pass([fresh], [], saturday, LATE)] == ["WaitForWindow"]


def test_with_no_limit_a_follow_up_goes_however_late() -> None:
    """Verify ``hold_if_late = "never"`` (no limit in the policy) sends a follow-up due two
    months ago."""
    assert plan_pass([_thread(NOW - timedelta(days=60))], [], NOW, Policy(BERLIN, Window())) == [
        SendFollowUp(1)
    ]


def test_closing_a_followed_up_thread_and_a_bounced_address_are_not_held() -> None:
    """Verify only sending waits for the user: a thread whose last follow-up went still closes
    as no answer when long due, and one whose address bounced in another thread is still
    marked bounced (nothing goes either way)."""
    due = NOW - timedelta(days=40)
    assert plan_pass([_thread(due, T.FOLLOWED_UP)], [], NOW, LATE) == [CloseNoAnswer(1)]
    bounced = ThreadSnapshot(1, T.AWAITING, {}, due, bounced_in=9)
    assert plan_pass([bounced], [], NOW, LATE) == [BounceAddress(1, 9)]


# --- the setting ------------------------------------------------------------------------------


def test_hold_if_late_takes_a_duration_or_never_and_defaults_to_a_week(tmp_path: Path) -> None:
    """Verify the default, "never", business days, and that nonsense is one problem naming
    the file and the key."""
    assert load_settings(write(tmp_path, BASE)).follow_up.hold_if_late == "7 days"
    assert late_limit("7 days") == WEEK
    assert late_limit(" Never ") is None
    assert late_limit("2 business days") == Wait(business_days=2)
    text = edited('wait = "3 business days"', 'wait = "3 business days"\nhold_if_late = "soon"')
    found = problems(tmp_path, text)
    assert len(found) == 1 and ": follow_up.hold_if_late: " in found[0], found
    assert '"never"' in found[0]
    with pytest.raises(ConfigError):
        load_settings(write(tmp_path, edited('wait = "3 business days"', "hold_if_late = 7")))


# --- over the real servers --------------------------------------------------------------------


@pytest.mark.integration
def test_a_follow_up_nine_days_late_is_held_then_released_and_sent_once(pair: Pair) -> None:
    """Verify ``check`` nine days after the due time sends nothing, holds the thread and names
    release, mark-replied and cancel (exit code: waiting for you); ``release`` says it goes on
    the next check, which sends exactly one threaded follow-up."""
    thread, root = send(pair)  # due 60 s after T0
    out = check_at(pair, timedelta(days=9), expect=int(ExitCode.WAITING))
    assert "0 follow-up(s) sent" in out and "1 held for you" in out, out
    assert f"'mailer release {thread}' to let it go on the next pass" in out, out
    assert f"mailer cancel {thread}" in out and f"mailer mark-replied {thread}" in out
    assert pair.follow_ups_received(root) == []
    s = status(pair, thread)
    assert s["state"] == "held" and s["held"]["kind"] == "late_follow_up", s
    shown = run_cli(pair.ws, "status", str(thread), env={"MAILER_NOW": at(timedelta(days=9))})
    assert "has not gone in the 9 days since" in shown.stdout, shown.stdout
    assert f"'mailer release {thread}' lets it go on the next pass" in shown.stdout
    assert f"'mailer mark-replied {thread}' if they have answered" in shown.stdout
    assert any(e["kind"] == "held" for e in s["events"])
    # Held, it stays held on later passes: nothing goes until the user says.
    check_at(pair, timedelta(days=9, minutes=5), expect=int(ExitCode.WAITING))
    assert pair.follow_ups_received(root) == []

    r = run_cli(
        pair.ws, "release", str(thread), env={"MAILER_NOW": at(timedelta(days=9, minutes=10))}
    )
    assert r.returncode == 0, r.stderr
    assert "goes out on the next 'mailer check'" in r.stdout, r.stdout
    out = check_at(pair, timedelta(days=9, minutes=11))
    assert "1 follow-up(s) sent" in out, out
    check_at(pair, timedelta(days=9, minutes=20))
    (received,) = pair.follow_ups_received(root)
    assert root.encode() in received
    assert status(pair, thread)["state"] == "no_answer"


@pytest.mark.integration
def test_a_reply_to_a_thread_held_late_closes_it_and_nothing_is_sent(pair: Pair) -> None:
    """Verify the interviewer's reply, arriving while the late follow-up waits for the user,
    makes the thread replied: a release is then refused and no follow-up ever goes."""
    thread, root = send(pair)
    check_at(pair, timedelta(days=8), expect=int(ExitCode.WAITING))
    assert status(pair, thread)["state"] == "held"
    pair.send_as(
        pair.interviewer,
        pair.candidate,
        "Re: our interview",
        "Thanks, we spoke on the phone; see you Friday.",
        {"In-Reply-To": root, "References": root},
    )
    check_at(pair, timedelta(days=8, minutes=5))
    assert status(pair, thread)["state"] == "replied"
    refused = run_cli(pair.ws, "release", str(thread))
    assert refused.returncode != 0 and "not held" in refused.stderr
    check_at(pair, timedelta(days=8, minutes=10))
    assert pair.follow_ups_received(root) == []


@pytest.mark.integration
@pytest.mark.process
def test_a_follow_up_in_doubt_for_days_is_not_held_as_one_that_could_not_go(pair: Pair) -> None:
    """Verify a follow-up cut off after its final dot (it may have arrived) and left unsettled
    for nine days is not held as late: the thread stays awaiting with the in-doubt advice
    ('resolve'), which settles it; nothing is sent again."""
    from .test_in_doubt import _follow_up_in_doubt

    thread, root, _ = _follow_up_in_doubt(pair)
    out = check_at(pair, timedelta(days=9), expect=int(ExitCode.WAITING))
    assert "held for you" not in out and f"mailer resolve {thread} --sent" in out, out
    assert status(pair, thread)["state"] == "awaiting_reply"
    r = run_cli(pair.ws, "resolve", str(thread), "--sent")
    assert r.returncode == 0, r.stderr
    assert status(pair, thread)["state"] == "followed_up"
    check_at(pair, timedelta(days=9, minutes=5))
    assert len(pair.follow_ups_received(root)) <= 1  # (it may have arrived before the cut)


@pytest.mark.integration
def test_hold_if_late_never_sends_a_late_follow_up_at_once(stack, tmp_path: Path) -> None:
    """Verify the user's opt-out: with ``hold_if_late = "never"`` the follow-up nine days late
    goes on the first check, as before this rule."""
    from .conftest import FOLLOW_UP_CONFIG, write_config

    p = Pair(stack, tmp_path / "ws")
    extra = FOLLOW_UP_CONFIG.format(wait="60s").replace(
        'window = "always"', 'window = "always"\nhold_if_late = "never"'
    )
    write_config(p.ws, stack.info, sender=p.candidate, extra=extra)
    _, root = send(p)
    assert "1 follow-up(s) sent" in check_at(p, timedelta(days=9))
    assert len(p.follow_ups_received(root)) == 1


# --- the executor, against a real SQLite store ------------------------------------------------


def _awaiting(tmp_path: Path) -> tuple[object, int, datetime]:
    from .test_lifecycle import T0, _store_with_apology

    store, tid, mid = _store_with_apology(tmp_path)
    store.mark_submitting(mid, T0)
    due = T0 + timedelta(days=1)
    store.mark_sent(mid, T0, "250 ok", due)
    return store, tid, due


def test_a_hold_planned_on_a_due_time_that_moved_since_is_not_made(tmp_path: Path) -> None:
    """Verify the executor holds a thread only if it is still due when the plan read it: an
    out-of-office found meanwhile (the last look before another follow-up) moved it, and the
    next pass decides from there; the control, due as planned, is held."""
    from mailer.services.passes import _still_late

    store, tid, due = _awaiting(tmp_path)
    thread = store.thread(tid)
    assert _still_late(store, thread, HoldLate(tid, due))
    assert not _still_late(store, thread, HoldLate(tid, due - timedelta(days=3)))
    store.close()


def test_after_release_of_a_thread_with_a_damaged_release_date_says_the_plain_words(
    tmp_path: Path,
) -> None:
    """Verify 'release' can always say what happens next: a release mark with no zone (an
    edit by hand) gives the plain "goes out when due", not a crash comparing the two dates;
    a good mark after the due time says it goes on the next check."""
    from mailer.services.decisions import after_release

    store, tid, due = _awaiting(tmp_path)
    store.set_thread_detail(tid, {"released_at": "2026-12-01T10:00:00"})
    assert after_release(store.thread(tid)) == "its follow-up goes out when due"
    store.set_thread_detail(tid, {"released_at": (due + timedelta(days=9)).isoformat()})
    assert "goes out on the next 'mailer check'" in after_release(store.thread(tid))
    store.close()
