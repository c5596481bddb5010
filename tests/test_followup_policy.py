"""Follow-up policy (pure): sending windows, DST, holidays, return dates and decisions."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from mailer.model.decision import Classified, Policy, ThreadSnapshot, decide
from mailer.model.followup import (
    AWAITING,
    BOUNCED,
    HELD,
    REPLIED,
    after_return,
    first_due,
    next_in_window,
    send_time,
)
from mailer.model.settings import Wait, Window, parse_window

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
OFFICE = Window()  # weekdays 09:00-17:00


def test_window_parses_hours_and_days() -> None:
    """Verify '08:30-18:00' with 'mon,wed-fri' and 'always'."""
    w = parse_window("08:30-18:00", "mon,wed-fri")
    assert (w.start, w.end, w.days) == (time(8, 30), time(18, 0), frozenset({0, 2, 3, 4}))
    assert parse_window("always").always
    assert parse_window("00:00-24:00", "mon-sun").end == time(0, 0)


@pytest.mark.parametrize(
    ("hours", "days"), [("17:00-09:00", "mon-fri"), ("9-5", "mon-fri"), ("09:00-17:00", "funday")]
)
def test_bad_windows_are_refused(hours: str, days: str) -> None:
    """Verify reversed, unreadable hours and unknown days raise ValueError."""
    with pytest.raises(ValueError):
        parse_window(hours, days)


def test_overdue_follow_up_at_night_waits_for_the_morning() -> None:
    """Verify a follow-up due at 23:00 goes at 09:00 the next weekday, recipient's time."""
    due = datetime(2026, 12, 1, 23, 0, tzinfo=BERLIN)  # Tuesday night
    assert send_time(due, due, BERLIN, OFFICE) == datetime(2026, 12, 2, 9, 0, tzinfo=BERLIN)


def test_friday_evening_waits_for_monday() -> None:
    """Verify the weekend is skipped."""
    friday = datetime(2026, 11, 27, 18, 0, tzinfo=BERLIN)
    assert next_in_window(friday, BERLIN, OFFICE) == datetime(2026, 11, 30, 9, 0, tzinfo=BERLIN)


def test_window_is_in_the_recipients_zone() -> None:
    """Verify 15:00 in Berlin is 09:00 in New York: inside their window, not before it."""
    moment = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)  # 09:00 New York, 15:00 Berlin
    assert next_in_window(moment, NEW_YORK, OFFICE) == moment
    early = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)  # 07:00 in New York
    assert next_in_window(early, NEW_YORK, OFFICE) == datetime(2026, 12, 2, 9, 0, tzinfo=NEW_YORK)


def test_window_follows_daylight_saving_changes() -> None:
    """Verify 09:00 local stays 09:00 across the spring change (UTC offset moves)."""
    before = next_in_window(datetime(2027, 3, 25, 20, 0, tzinfo=UTC), BERLIN, OFFICE)
    after = next_in_window(datetime(2027, 3, 29, 5, 0, tzinfo=UTC), BERLIN, OFFICE)
    assert (before.astimezone(BERLIN).hour, after.astimezone(BERLIN).hour) == (9, 9)
    assert before.utcoffset() == timedelta(hours=1) and after.utcoffset() == timedelta(hours=2)


def test_holidays_are_not_sending_days() -> None:
    """Verify a public holiday is skipped like a weekend."""
    christmas_eve_evening = datetime(2026, 12, 24, 18, 0, tzinfo=BERLIN)
    hols = {date(2026, 12, 25), date(2026, 12, 26)}
    assert next_in_window(christmas_eve_evening, BERLIN, OFFICE, hols).date() == date(2026, 12, 28)


def test_first_due_is_three_business_days_then_the_window() -> None:
    """Verify the default: 3 business days after a Thursday 16:30 send, within hours."""
    sent = datetime(2026, 11, 26, 16, 30, tzinfo=BERLIN)
    assert first_due(sent, Wait(business_days=3), BERLIN, OFFICE) == datetime(
        2026, 12, 1, 16, 30, tzinfo=BERLIN
    )


def test_return_date_postpones_to_the_next_business_day() -> None:
    """Verify 'back on Friday 4 December' means Monday 7 December at opening time."""
    assert after_return(date(2026, 12, 4), BERLIN, OFFICE) == datetime(
        2026, 12, 7, 9, 0, tzinfo=BERLIN
    )


def _decide(kind: str, subtype: str | None, state: str = AWAITING, **kw):
    received = datetime(2026, 12, 1, 10, 0, tzinfo=BERLIN)
    message = Classified(
        kind,
        subtype,
        sender="ana@acme.example",
        subject="Re: x",
        received=received,
        reason="r",
        return_date=kw.get("return_date"),
        status=kw.get("status"),
    )
    return decide(ThreadSnapshot(1, state), message, received, Policy(BERLIN, OFFICE))


def test_human_reply_stops_follow_ups() -> None:
    """Verify a human reply moves the thread to replied and stops follow-ups."""
    d = _decide("human", None)
    assert d.state == REPLIED and d.stop_follow_ups and d.detail["replied_by"] == "ana@acme.example"


def test_nothing_reopens_a_replied_thread() -> None:
    """Verify a bounce or auto-reply after a human reply changes nothing."""
    for kind, sub in (("bounce", "hard"), ("auto-reply", "out-of-office"), ("human", None)):
        assert _decide(kind, sub, state=REPLIED).state is None


def test_auto_replies_never_count_as_replies() -> None:
    """Verify out-of-office, autoresponder and delivered reports keep the thread waiting."""
    for sub in ("out-of-office", "autoresponder", "delivered"):
        d = _decide("auto-reply", sub)
        assert d.state is None and not d.stop_follow_ups


def test_challenge_response_holds_the_thread() -> None:
    """Verify a challenge-response system is reported: the interviewer has not seen it."""
    d = _decide("auto-reply", "challenge-response")
    assert d.state == HELD and d.stop_follow_ups  # its queued follow-ups go with the hold


def test_bounces_hard_and_soft_stop_but_delay_is_at_risk() -> None:
    """Verify hard/soft bounces close the thread and a delay only flags it."""
    assert _decide("bounce", "hard", status="5.1.1").state == BOUNCED
    assert _decide("bounce", "soft").state == BOUNCED
    delay = _decide("bounce", "delay")
    assert delay.state is None and "at_risk" in delay.detail and not delay.stop_follow_ups


def test_a_bounce_for_a_cc_recipient_alone_keeps_the_thread_going() -> None:
    """Verify a bounce naming only Cc recipients changes no state and stops no follow-up,
    and records every bounced Cc address, the earlier ones kept."""
    received = datetime(2026, 12, 1, 10, 0, tzinfo=BERLIN)
    message = Classified(
        "bounce", "hard", "mailer-daemon@x", "Undelivered", received, only_cc=("bo@x.test",)
    )
    earlier = ThreadSnapshot(1, AWAITING, {"cc_bounced": "al@x.test"})
    d = decide(earlier, message, received, Policy(BERLIN, OFFICE))
    assert d.state is None and not d.stop_follow_ups and d.event == "cc_bounced"
    assert d.detail == {"cc_bounced": "al@x.test, bo@x.test"}
    assert _decide("bounce", "hard").state == BOUNCED  # naming the interviewer: bounced
    late = Classified("bounce", "delay", "m@x", "Delayed", received, only_cc=("bo@x.test",))
    d = decide(earlier, late, received, Policy(BERLIN, OFFICE))
    assert d.state is None and d.detail == {} and d.event == "cc_delayed"  # not at risk


def test_out_of_office_with_return_date_postpones() -> None:
    """Verify the decision carries the postponed due time."""
    d = _decide("auto-reply", "out-of-office", return_date=date(2026, 12, 3))
    assert d.postpone_to == datetime(2026, 12, 4, 9, 0, tzinfo=BERLIN)
    assert d.detail["auto_reply_until"] == "2026-12-03"


def test_status_lines_say_what_each_state_means() -> None:
    """Verify the status line (threadview.describe) for the states the user must understand."""
    from mailer.adapters.store import MessageBrief, ThreadSummary
    from mailer.services.threadview import describe

    def thread(state: str, detail: dict[str, str], due: str | None = None) -> ThreadSummary:
        return ThreadSummary(1, "ana@acme.test", "Acme", "illness", None, state, due, detail)

    assert describe(
        thread(
            AWAITING,
            {"auto_reply": "out of office", "auto_reply_until": "2026-12-03"},
            "2026-12-04T09:00:00+01:00",
        ),
        [],
        BERLIN,
    ) == (
        "awaiting reply, follow-up due 2026-12-04 09:00 CET; auto-replied: out of office "
        "until 2026-12-03"
    )
    assert "has not seen" in describe(thread(HELD, {}), [], BERLIN)
    bounced = thread(BOUNCED, {"bounce_reason": "hard bounce 5.1.1: user unknown"})
    assert describe(bounced, [], BERLIN) == "bounced: hard bounce 5.1.1: user unknown"
    doubt = MessageBrief(2, "follow_up", "in_doubt", None, None, "2026-12-04T09:00:00+00:00")
    assert describe(thread(AWAITING, {}), [doubt], BERLIN) == "follow-up in doubt"
