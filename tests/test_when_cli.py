"""The echo of how typed dates were read, in `preview` and before `send` asks (issue #12)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import NOW, Stack, run_cli, send_args

# NOW is Wed 25 Nov 2026 15:00 UTC.
TOMORROW = (
    "interview read as Thu 26 Nov 2026 10:00 (Europe/London): "
    "'tomorrow' counted from today, Wed 25 Nov 2026"
)


def preview(**extra: str) -> list[str]:
    return ["preview", *[a for a in send_args(**extra)[1:] if a != "--yes"]]


def test_preview_echoes_how_each_typed_date_was_read(offline_workspace: Path) -> None:
    """Verify relative and no-year input is echoed, and the email uses the date as read."""
    r = run_cli(
        offline_workspace,
        *preview(interview="tomorrow 10am", situation="conflict", free="Dec 1 9am-11am"),
    )
    assert r.returncode == 0, r.stderr
    assert TOMORROW in r.stdout.splitlines()
    assert (
        "free time read as Tue 1 Dec 2026 09:00-11:00 (Europe/London): "
        "no year given: the next 1 Dec is in 2026"
    ) in r.stdout.splitlines()
    assert "26 November" in r.stdout  # the message itself says the day that was read


def test_preview_echoes_a_plain_iso_date_too(offline_workspace: Path) -> None:
    """Verify every input is echoed, not only the ones that needed resolving."""
    r = run_cli(offline_workspace, *preview(interview="2026-11-25 10:00"))
    assert r.returncode == 0, r.stderr
    assert "interview read as Wed 25 Nov 2026 10:00 (Europe/London)" in r.stdout.splitlines()


def test_an_ambiguous_numeric_date_is_refused_with_both_readings(offline_workspace: Path) -> None:
    """Verify "03/04/2026" without [sender] locale exits non-zero with one line naming both."""
    r = run_cli(offline_workspace, *preview(interview="03/04/2026 10:00"))
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "could be 3 April or 4 March" in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_a_set_locale_reads_numeric_dates_in_its_order(offline_workspace: Path) -> None:
    """Verify [sender] locale = "en_US" reads 03/04/2026 as 4 March, and says so."""
    config = offline_workspace / "config" / "mailer.toml"
    config.write_text(
        config.read_text().replace(
            'timezone = "Europe/London"', 'timezone = "Europe/London"\nlocale = "en_US"', 1
        )
    )
    r = run_cli(offline_workspace, *preview(interview="03/04/2026 10:00"))
    assert r.returncode == 0, r.stderr
    assert "interview read as Wed 4 Mar 2026 10:00 (Europe/London)" in r.stdout.splitlines()


def test_situation_names_and_address_typos_as_typed(offline_workspace: Path) -> None:
    """Verify --situation Illness works and a --cc typo warns on stderr without refusing."""
    r = run_cli(offline_workspace, *preview(situation="Illness", cc="boss@gmial.com"))
    assert r.returncode == 0, r.stderr
    assert "mailer: warning: --cc: boss@gmial.com: did you mean gmail.com?" in r.stderr
    assert "Cc: boss@gmial.com" in r.stdout


def test_send_dry_run_echoes_the_date(offline_workspace: Path) -> None:
    """Verify the echo shows with --dry-run (and so with --yes: the same path)."""
    r = run_cli(offline_workspace, *send_args(interview="tomorrow 10am"), "--dry-run")
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert TOMORROW in out
    assert out.index(TOMORROW) < out.index("(dry run: nothing was sent)")


@pytest.mark.integration
def test_send_echoes_the_date_before_asking_to_confirm(stack: Stack, workspace: Path) -> None:
    """Verify on a terminal the echo comes before "Send this to ...?", and "n" sends nothing."""
    mark = stack.log_mark()
    args = [a for a in send_args(interview="tomorrow 10am") if a != "--yes"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env.update({"MAILER_NOW": NOW, "COLUMNS": "200"})
    leader, follower = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailer.cli.main", *args],
        cwd=workspace,
        env=env,
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 60
    try:
        while b"now? [y/N]" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1)
            if ready:
                try:
                    seen += os.read(leader, 65536)
                except OSError:  # the child closed the terminal: it will not ask
                    break
        text = seen.decode(errors="replace").replace("\r\n", "\n")
        assert "now? [y/N]" in text, text
        assert TOMORROW in text and text.index(TOMORROW) < text.index("Send this to")
        os.write(leader, b"n\n")
        assert proc.wait(timeout=60) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    assert not [e for e in stack.log_since(mark) if e["event"] == "accepted"]


def test_campaign_check_warns_of_an_address_typo(offline_workspace: Path) -> None:
    """Verify a campaign entry's --cc typo warns on stderr, and the check still passes."""
    from .test_campaign import entry, write_campaign

    write_campaign(offline_workspace, entry("ana@sandbox.test", 1, cc=["boss@hotmial.com"]))
    r = run_cli(offline_workspace, "campaign", "check", "week49")
    assert r.returncode == 0, r.stderr
    assert "cc: boss@hotmial.com: did you mean hotmail.com?" in r.stderr
    assert "mailer: warning: " in r.stderr


def test_times_written_in_a_zone_are_shown_in_it_in_the_email(offline_workspace: Path) -> None:
    """Verify an interview written "10:00 CET" (no --interviewer-tz) is shown in the email as
    10:00 CET, and so is a free time: they were shown in the sender's zone (09:00 London),
    unlabelled, and a Paris interviewer read them an hour early (a walkthrough)."""
    r = run_cli(
        offline_workspace,
        *preview(interview="2026-12-10 10:00 CET", situation="conflict"),
        "--free",
        "2026-12-14 10:00-12:00 CET",
    )
    assert r.returncode == 0, r.stderr
    body = r.stdout.split("\n\n", 1)[1]
    assert "10 December at 10:00 CET" in body, body
    assert "Monday 14 December, 10:00–12:00 CET" in body, body
    assert "09:00" not in body.split("Apology check")[0]
    assert "times in the email are shown in Europe/Paris" in r.stdout
    mine = run_cli(
        offline_workspace,
        *preview(interview="2026-12-10 10:00 Europe/London", situation="conflict"),
    )
    assert mine.returncode == 0 and "at 10:00." in mine.stdout and " GMT" not in mine.stdout
    assert "times in the email are shown" not in mine.stdout


@pytest.mark.parametrize(
    ("written", "shown", "zone"),
    [
        ("2026-12-10 10:00 +09:00", "10 December at 10:00 UTC+09", "Etc/GMT-9"),
        ("2026-12-10T10:00-03:00", "10 December at 10:00 UTC-03", "Etc/GMT+3"),
        ("2026-12-10 10:00 +05:30", "10 December at 10:00 IST", "Asia/Kolkata"),
        ("2026-12-10 10:00 +05:45", "10 December at 10:00 UTC+05:45", "Asia/Kathmandu"),
        ("2026-12-10 10:00 +14:00", "10 December at 10:00 UTC+14", "Etc/GMT-14"),
        ("2026-12-10 10:00 -12:00", "10 December at 10:00 UTC-12", "Etc/GMT+12"),
    ],
)
def test_an_interview_written_with_a_utc_offset_is_shown_at_that_offset(
    offline_workspace: Path, written: str, shown: str, zone: str
) -> None:
    """Verify "10:00 +09:00" is shown to the interviewer as 10:00 at that offset, labelled, as
    "10:00 JST" is: it was shown in the sender's zone, unlabelled ("at 01:00"; a walkthrough),
    and the follow-up kept the sender's office hours."""
    r = run_cli(offline_workspace, *preview(interview=written, situation="conflict"))
    assert r.returncode == 0, r.stderr
    body = r.stdout.split("\n\n", 1)[1]
    assert shown in body, body
    assert f"times in the email are shown in {zone}" in r.stdout, r.stdout


def test_an_offset_no_zone_has_keeps_the_senders_zone_without_an_error(
    offline_workspace: Path,
) -> None:
    """Verify "-13:00" (tzdata's Etc zones stop 12 hours behind UTC) is read, shown in the
    sender's zone as before; it was an internal error (a review)."""
    r = run_cli(offline_workspace, *preview(interview="2026-12-10 10:00 -13:00"))
    assert r.returncode == 0, r.stderr
    assert "times in the email are shown in" not in r.stdout


def test_a_locale_of_another_language_is_refused_with_the_built_in_templates(
    offline_workspace: Path,
) -> None:
    """Verify [sender] locale = "de_DE" with the built-in English templates is an apology-check
    error naming the fix (the dates came out in German in English sentences: "on Donnerstag,
    10. Dezember at 10:00"; a walkthrough), and a workspace template of its own may use it."""
    config = offline_workspace / "config" / "mailer.toml"
    config.write_text(
        config.read_text().replace(
            'timezone = "Europe/London"', 'timezone = "Europe/London"\nlocale = "de_DE"', 1
        )
    )
    r = run_cli(offline_workspace, *preview(interview="2026-11-25 10:00"))
    assert "error: [locale-language]" in r.stdout and "en_GB" in r.stdout, r.stdout
    dry = run_cli(offline_workspace, *send_args(interview="2026-11-25 10:00"), "--dry-run")
    assert dry.returncode != 0 and "locale-language" in dry.stdout + dry.stderr
    own = offline_workspace / "templates"
    own.mkdir(exist_ok=True)
    (own / "krank.txt.j2").write_text(
        "Subject: Entschuldigung\n\nSehr geehrte Damen und Herren,\n\n"
        "unser Gespräch am {{ interview_when }} habe ich verpasst.\n"
    )
    mine = run_cli(offline_workspace, *preview(interview="2026-11-25 10:00", situation="krank"))
    assert "locale-language" not in mine.stdout and "Mittwoch" in mine.stdout, mine.stdout
