"""Apology craft in the commands: the check blocks bad text, timing advice, free times,
the call script and locales."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailer.errors import InputError
from mailer.model.composer import Composer, compose_apology
from mailer.model.facts import check_free_times, make_facts
from mailer.model.settings import SenderSettings

from .conftest import Stack, run_cli, send_args

LONDON = ZoneInfo("Europe/London")


def fact_args(**extra: str) -> list[str]:
    return [a for a in send_args(**extra)[1:] if a != "--yes"]


def preview_args(**extra: str) -> list[str]:
    return ["preview", *fact_args(**extra)]


def test_preview_suggests_a_personal_note_only_when_none_is_given(offline_workspace: Path) -> None:
    """Verify the default templates get no findings except the note suggestion."""
    bare = run_cli(offline_workspace, *preview_args())
    assert bare.returncode == 0, bare.stderr
    assert "Apology check: no problems found; 1 suggestion" in bare.stdout
    assert "suggestion: [personal-note]" in bare.stdout
    noted = run_cli(offline_workspace, *preview_args(note="I am recovered and keen to talk."))
    assert "Apology check: no problems found" in noted.stdout


@pytest.mark.integration
def test_send_refuses_demanding_text_unless_forced(stack: Stack, workspace: Path) -> None:
    """Verify an error from the check blocks the send (exit 6, nothing sent); --force sends."""
    mark = stack.log_mark()
    bad = send_args(company="Pushy Ltd", note="I expect you to reschedule ASAP.")
    r = run_cli(workspace, *bad)
    assert r.returncode == 6
    assert "[demanding-tone]" in r.stdout
    assert r.stderr.strip().splitlines() == [
        "mailer: error: the apology check found errors (listed above); fix the text or pass --force"
    ]
    assert not [e for e in stack.log_since(mark) if e["event"] in ("connect", "accepted")]
    forced = run_cli(workspace, *bad, "--force")
    assert forced.returncode == 0, forced.stderr
    assert [e for e in stack.log_since(mark) if e["event"] == "accepted"]


def test_late_apology_and_last_minute_request_get_timing_advice(offline_workspace: Path) -> None:
    """Verify the urgency advice: late after 24 h; under a day before, call as well."""
    late = run_cli(offline_workspace, *send_args(interview="2026-11-22 10:00"), "--dry-run")
    assert "The interview was 3 days ago, so this apology is late; sent today" in late.stdout
    assert "hour counts" not in late.stdout  # (pressure the user does not need)
    soon = run_cli(
        offline_workspace,
        *send_args(
            interview="2026-11-25 20:00", situation="conflict", interviewer_phone="+44 20 7946 0000"
        ),
        "--dry-run",
    )
    assert "The interview is in 5 hours:" in soon.stdout and "Call +44 20 7946 0000" in soon.stdout
    fresh = run_cli(offline_workspace, *send_args(interview="2026-11-25 10:00"), "--dry-run")
    assert "Timing:" not in fresh.stdout


def test_lint_command_checks_a_file_and_exits_6_on_errors(
    offline_workspace: Path, tmp_path: Path
) -> None:
    """Verify `mailer lint FILE` reports the rule and its fix, and fails on errors."""
    text = tmp_path / "draft.txt"
    text.write_text(
        "Subject: Interview\n\nHi, it was not my fault, the traffic was terrible. "
        "Reschedule ASAP.\n"
    )
    r = run_cli(offline_workspace, "lint", str(text), "--company", "Acme", "--role", "Engineer")
    assert r.returncode == 6
    for rule in ("blame-shifting", "demanding-tone", "missing-thanks", "missing-interest"):
        assert f"[{rule}]" in r.stdout
    assert "fix:" in r.stdout
    good = run_cli(offline_workspace, "lint", *fact_args(note="I am well again."))
    assert good.returncode == 0 and "no problems found" in good.stdout


def test_lint_reads_the_draft_from_standard_input_given_a_dash(offline_workspace: Path) -> None:
    """Verify `mailer lint -` checks the text piped to it (a draft pasted from another
    program), a byte-order mark before its Subject: line included, as it checks a file."""
    draft = "\ufeffSubject: Reschedule ASAP\n\nHi, it was not my fault.\n"
    r = run_cli(offline_workspace, "lint", "-", "--company", "Acme", input=draft)
    assert r.returncode == 6, r.stderr
    assert "[blame-shifting]" in r.stdout
    # The subject is read as the subject: the mark is not part of it.
    assert '"Subject: Reschedule ASAP"' in r.stdout, r.stdout
    good = run_cli(offline_workspace, "lint", *fact_args(note="I am well again."))
    assert good.returncode == 0
    # "./-" is a file called "-", not standard input (a review).
    (offline_workspace / "-").write_text("Subject: Sorry\n\nHi, it was not my fault.\n")
    r = run_cli(offline_workspace, "lint", "./-", input="Reschedule ASAP")
    assert "[blame-shifting]" in r.stdout and "demanding" not in r.stdout, r.stdout
    r = run_cli(offline_workspace, "lint", "-", input="x" * 1_000_001)
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "mailer: error: standard input: is over 1,000,000 bytes; at most 1,000,000 are read "
        "(an apology is far shorter)"
    )


def test_call_script_has_every_element(offline_workspace: Path) -> None:
    """Verify the phone script: greeting, apology, reason, interest, times, thanks, voicemail."""
    r = run_cli(offline_workspace, "call-script", *fact_args(free="2026-12-01 09:00-12:00"))
    assert r.returncode == 0, r.stderr
    for part in (
        "CALL SCRIPT",
        "Greeting",
        "Apolog",
        "ill",
        "Data Engineer",
        "Acme",
        "Tuesday 1 December, 09:00–12:00",
        "Thank",
        "VOICEMAIL",
        "+44 7700 900123",
    ):
        assert part in r.stdout, part


def test_send_reminds_to_call_when_the_number_is_known(stack: Stack, workspace: Path) -> None:
    """Verify the reminder after sending, only with an interviewer phone number."""
    r = run_cli(workspace, *send_args(company="Phone Co", interviewer_phone="+44 20 7946 0001"))
    assert r.returncode == 0, r.stderr
    assert "Now call Ana Ruiz on +44 20 7946 0001" in r.stdout


NOW = datetime(2026, 11, 25, 15, 0, tzinfo=LONDON)


def slots(*texts: str):
    return make_facts(
        situation="illness",
        to="a@acme.example",
        interviewer="A",
        company="C",
        role="R",
        interview="2026-11-25 10:00",
        tz=LONDON,
        free=texts,
    ).free


def test_past_and_overlapping_free_times_are_refused() -> None:
    """Verify a slot already over, and two that overlap, are errors."""
    with pytest.raises(InputError, match="in the past"):
        check_free_times(slots("2026-11-24 09:00-12:00"), NOW)
    with pytest.raises(InputError, match="overlaps"):
        check_free_times(slots("2026-12-01 09:00-12:00", "2026-12-01 11:00-13:00"), NOW)


def test_weekend_free_times_warn() -> None:
    """Verify a Saturday slot is accepted with a warning."""
    warnings = check_free_times(slots("2026-11-28 09:00-12:00", "2026-11-30 09:00-12:00"), NOW)
    assert len(warnings) == 1 and "Saturday 2026-11-28 is a weekend day" in warnings[0]


@pytest.mark.parametrize(
    ("tz", "slot", "expected"),
    [
        # Across the end of summer time in Europe (25 October 2026).
        ("Europe/Berlin", "2026-10-23 09:00-10:00", "Friday 23 October, 10:00–11:00 CEST"),
        ("Europe/Berlin", "2026-10-26 09:00-10:00", "Monday 26 October, 10:00–11:00 CET"),
        # West of UTC, and far east of it (the day changes).
        ("America/New_York", "2026-12-03 15:00-16:00", "Thursday 3 December, 10:00–11:00 EST"),
        ("Asia/Tokyo", "2026-12-03 16:00-17:00", "Friday 4 December, 01:00–02:00 JST"),
    ],
)
def test_free_times_are_shown_in_the_interviewers_zone(tz: str, slot: str, expected: str) -> None:
    """Verify DST and both sides of UTC, with the zone named."""
    facts = make_facts(
        situation="conflict",
        to="a@acme.example",
        interviewer="A",
        company="C",
        role="R",
        interview="2026-12-10 10:00",
        tz=LONDON,
        interviewer_tz=tz,
        free=[slot],
    )
    sender = SenderSettings(name="S", address="s@example.com")
    text = compose_apology(Composer(), facts, sender, datetime(2026, 10, 1, tzinfo=LONDON)).text
    assert expected in text


def test_date_format_follows_the_configured_locale() -> None:
    """Verify en_US writes 'Tuesday, December 1' where en_GB writes 'Tuesday 1 December'."""
    facts = make_facts(
        situation="illness",
        to="a@acme.example",
        interviewer="A",
        company="C",
        role="R",
        interview="2026-11-24 10:00",
        tz=LONDON,
        free=["2026-12-01 09:00-10:00"],
    )
    us = SenderSettings(name="S", address="s@example.com", locale="en_US")
    text = compose_apology(Composer(), facts, us, NOW).text
    assert "Tuesday, November 24 at 10:00" in text and "Tuesday, December 1, 09:00–10:00" in text


@pytest.mark.integration
def test_send_refuses_a_free_time_in_the_interviewers_night_unless_forced(
    stack: Stack, workspace: Path
) -> None:
    """Verify a free time that is 04:00 for the interviewer is an apology-check error in send
    (exit 6, shown with their local times, nothing sent), and --force sends it."""
    mark = stack.log_mark()
    night = send_args(
        free="2026-12-07 09:00-12:00",
        interviewer_tz="America/New_York",
        note="I am fully recovered and keen to talk.",
    )
    r = run_cli(workspace, *night)
    assert r.returncode == 6, r.stderr
    assert "error: [odd-hours]" in r.stdout and "04:00-07:00 EST" in r.stdout
    assert not [e for e in stack.log_since(mark) if e["event"] in ("connect", "accepted")]
    forced = run_cli(workspace, *night, "--force")
    assert forced.returncode == 0, forced.stderr
    assert [e for e in stack.log_since(mark) if e["event"] == "accepted"]


@pytest.mark.integration
def test_second_open_thread_to_one_address_gets_the_role_in_its_subject(
    stack: Stack, workspace: Path
) -> None:
    """Verify two apologies to one address about interviews on the same day do not share a
    subject: the second, while the first is open, adds the role. (The second is another
    interview at the same company while the first is open: sent with --again.)"""
    import json

    note = "I am fully recovered and keen to talk."
    first = run_cli(workspace, *send_args(interview="2026-11-25 10:00", note=note))
    assert first.returncode == 0, first.stderr
    args = send_args(interview="2026-11-25 12:00", note=note)
    assert run_cli(workspace, *args).returncode == 7  # without --again: refused
    second = run_cli(workspace, *args, "--again")
    assert second.returncode == 0, second.stderr
    status = run_cli(workspace, "status", "--json")
    subjects = [t["subject"] for t in json.loads(status.stdout)["threads"]]
    assert subjects == [
        "Apologies for missing our interview at Acme on Wednesday 25 November – Sam Candidate",
        "Apologies for missing our interview at Acme on Wednesday 25 November (Data Engineer) "
        "– Sam Candidate",
    ]


def test_the_hours_left_read_as_words_do() -> None:
    """Verify "in 1 hour", "in 5 hours" and "in less than an hour", never "hour(s)"."""
    from datetime import UTC, datetime, timedelta

    from mailer.model.callscript import urgency

    now = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    said = {h: urgency(now + timedelta(hours=h), now) or "" for h in (0.3, 1, 5)}
    assert said[0.3].startswith("The interview is in less than an hour: ")
    assert said[1].startswith("The interview is in 1 hour: ")
    assert said[5].startswith("The interview is in 5 hours: ")


@pytest.mark.parametrize(
    ("interview", "said"),
    [
        ("2024-11-25 10:00", "days ago; is the date right?"),
        ("2028-01-10 10:00", "is the year right?"),
        # The year typed one too high for the interview missed days ago (review, session 15).
        ("2027-11-24 10:00", "is the year right?"),
    ],
)
def test_an_interview_far_from_today_is_a_warning_in_preview_and_refused_by_send(
    offline_workspace: Path, interview: str, said: str
) -> None:
    """Verify an interview two years ago (a mistyped year) or over a year ahead is flagged:
    a warning in preview, an apology-check error in send (exit 6, before any connection),
    which --force overrides (newcomer, session 15)."""
    looked = run_cli(offline_workspace, *preview_args(interview=interview))
    assert looked.returncode == 0, looked.stderr
    assert "warning: [far-date]" in looked.stdout and said in looked.stdout, looked.stdout
    sent = run_cli(offline_workspace, *send_args(interview=interview))
    assert sent.returncode == 6, sent.stderr
    assert "error: [far-date]" in sent.stdout
    assert "--force" in sent.stdout


def test_a_free_time_that_is_the_interview_to_be_moved_is_an_error(
    offline_workspace: Path,
) -> None:
    """Verify asking to move an interview while offering its own time as free (a campaign's
    default free times, say) is an apology-check error, in preview and in send (exit 6);
    a free time beside it is not (newcomer walkthrough, session 16)."""
    moved = {"situation": "conflict", "interview": "2026-12-04 14:00"}
    looked = run_cli(offline_workspace, *preview_args(**moved, free="2026-12-04 14:00-17:00"))
    assert "error: [free-at-interview]" in looked.stdout, looked.stdout
    assert "Fri 04 Dec 14:00-17:00" in looked.stdout
    sent = run_cli(offline_workspace, *send_args(**moved, free="2026-12-04 14:00-17:00"))
    assert sent.returncode == 6 and "[free-at-interview]" in sent.stdout, sent.stdout
    beside = run_cli(offline_workspace, *preview_args(**moved, free="2026-12-04 15:00-17:00"))
    assert "[free-at-interview]" not in beside.stdout, beside.stdout
