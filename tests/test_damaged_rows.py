"""Store rows with damaged JSON or dates are named and passed over; the work on every other
thread goes on (issue #10, item 13)."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest

from .conftest import Pair, run_cli
from .test_followup import at, send

pytestmark = pytest.mark.integration


def _damage(pair: Pair, sql: str, *args: object) -> None:
    with sqlite3.connect(pair.ws / ".mailer" / "state.db") as db:
        db.execute(sql, args)


def _one_clean_line(stderr: str) -> str:
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    return stderr


def test_damaged_rows_are_named_and_the_other_threads_carry_on(pair: Pair) -> None:
    """Verify a thread with broken JSON facts and one with a broken date are named by
    status, check, cancel and preview --follow-up, and a healthy thread still gets its
    follow-up."""
    bad_json, _ = send(pair, "--company", "Broken Json")
    bad_date, _ = send(pair, "--company", "Broken Date")
    _, root = send(pair, "--company", "Healthy")
    _damage(pair, "UPDATE threads SET facts = '{not json' WHERE id = ?", bad_json)
    _damage(pair, "UPDATE threads SET follow_up_due = 'soon' WHERE id = ?", bad_date)

    listed = run_cli(pair.ws, "status")
    assert listed.returncode == 1
    err = _one_clean_line(listed.stderr)
    assert f"thread {bad_json}: facts" in err and f"thread {bad_date}: follow_up_due" in err
    assert "Healthy" in listed.stdout

    checked = run_cli(pair.ws, "check", env={"MAILER_NOW": at(timedelta(minutes=5))})
    assert checked.returncode != 0
    err = _one_clean_line(checked.stdout + checked.stderr)
    assert f"thread {bad_date}: follow_up_due" in err
    assert len(pair.follow_ups_received(root)) == 1

    preview = run_cli(pair.ws, "preview", "--follow-up", str(bad_json))
    assert preview.returncode != 0
    (line,) = _one_clean_line(preview.stderr).strip().splitlines()
    assert f"thread {bad_json}: facts" in line

    shown = run_cli(pair.ws, "status", str(bad_date))
    assert shown.returncode != 0
    assert f"thread {bad_date}: follow_up_due" in _one_clean_line(shown.stderr)

    cancelled = run_cli(pair.ws, "cancel", str(bad_json))
    assert cancelled.returncode == 0, cancelled.stderr


def test_a_reply_is_recorded_on_a_thread_whose_detail_is_damaged(pair: Pair) -> None:
    """Verify a reply still stops the follow-up of a thread whose stored detail is not JSON,
    and the damaged text is kept, not lost."""
    thread, root = send(pair)
    _damage(pair, "UPDATE threads SET detail = 'oops' WHERE id = ?", thread)
    pair.send_as(pair.interviewer, pair.candidate, "Re: hello", "Friday?", {"In-Reply-To": root})
    run_cli(pair.ws, "check", env={"MAILER_NOW": at(timedelta(minutes=1))})
    run_cli(pair.ws, "check", env={"MAILER_NOW": at(timedelta(hours=2))})
    assert pair.follow_ups_received(root) == []
    with sqlite3.connect(pair.ws / ".mailer" / "state.db") as db:
        state, detail = db.execute(
            "SELECT state, detail FROM threads WHERE id = ?", (thread,)
        ).fetchone()
    assert state == "replied" and '"damaged_detail": "oops"' in detail
