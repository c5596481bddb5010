"""Follow-up timing (pure): when one may go out, and the status line of a thread.

What an incoming message does to a thread is decided in :mod:`decision`.

No clock, no I/O: every function takes the times it needs, so tests can drive it freely.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo

from mailer.model.lifecycle import OPEN_THREAD, ThreadState
from mailer.model.schedule import follow_up_due, is_business_day
from mailer.model.settings import Wait, Window


def _open_on(day: date, window: Window, holidays: frozenset[date] | set[date]) -> bool:
    return day.weekday() in window.days and day not in holidays


def next_in_window(
    moment: datetime,
    tz: tzinfo,
    window: Window,
    holidays: frozenset[date] | set[date] = frozenset(),
) -> datetime:
    """The earliest instant at or after ``moment`` inside the window (DST-correct)."""
    if window.always:
        return moment
    local = moment.astimezone(tz)
    for offset in range(0, 370):
        day = local.date() + timedelta(days=offset)
        if not _open_on(day, window, holidays):
            continue
        # Wall-clock times are built per day, so a DST change moves the instant, not the hour.
        opens = datetime.combine(day, window.start, tzinfo=tz)
        closes = (
            datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
            if window.end == time(0, 0)
            else datetime.combine(day, window.end, tzinfo=tz)
        )
        if local < opens:
            return opens
        if local < closes:
            return local
    raise ValueError("no sending day in the next year: check follow_up.window_days and holidays")


def first_due(
    sent_at: datetime,
    wait: Wait,
    tz: tzinfo,
    window: Window,
    holidays: frozenset[date] | set[date] = frozenset(),
) -> datetime:
    """When the follow-up becomes due: after the wait, at the next open moment."""
    return next_in_window(
        follow_up_due(sent_at.astimezone(tz), wait, holidays), tz, window, holidays
    )


def after_return(
    return_date: date,
    tz: tzinfo,
    window: Window,
    holidays: frozenset[date] | set[date] = frozenset(),
) -> datetime:
    """An out-of-office says they are back on ``return_date``: the next business day after it."""
    day = return_date + timedelta(days=1)
    while not is_business_day(day, holidays):
        day += timedelta(days=1)
    start = window.start if not window.always else time(9, 0)
    return next_in_window(datetime.combine(day, start, tzinfo=tz), tz, window, holidays)


def send_time(
    due: datetime,
    now: datetime,
    tz: tzinfo,
    window: Window,
    holidays: frozenset[date] | set[date] = frozenset(),
) -> datetime:
    """When a due follow-up may actually go: never at night, never before it is due.

    An overdue follow-up (the daemon was down) waits for the next open moment.
    """
    return next_in_window(max(due, now), tz, window, holidays)


# --- the thread's state in words --------------------------------------------------------------

# Thread states (lifecycle.ThreadState), under the names the callers know. A thread is open
# while it may still get a follow-up or a reply.
AWAITING, FOLLOWED_UP = ThreadState.AWAITING, ThreadState.FOLLOWED_UP
REPLIED, BOUNCED, HELD = ThreadState.REPLIED, ThreadState.BOUNCED, ThreadState.HELD
NO_ANSWER, CANCELLED, FAILED = ThreadState.NO_ANSWER, ThreadState.CANCELLED, ThreadState.FAILED
OPEN_STATES = OPEN_THREAD
