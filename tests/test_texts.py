"""Texts a hiring manager would accept (issue #15): every rendering measured, the greeting,
subjects, free times read in the interviewer's day, follow-ups that offer only times still
ahead, the example campaign's tense, and the apology-check rules added for them."""

from __future__ import annotations

import re
import tomllib
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailer.adapters.config import load_settings
from mailer.adapters.workspace import example_campaign
from mailer.model.apology import prepare
from mailer.model.callscript import call_script, voicemail
from mailer.model.composer import (
    FOLLOW_UP_NOTICE,
    Composer,
    compose_apology,
    compose_follow_up,
    default_salutation,
)
from mailer.model.facts import SITUATIONS, Facts, make_facts, odd_hours
from mailer.model.lint import ERROR, SUGGESTION, WARNING, lint_apology, word_count
from mailer.model.settings import SenderSettings

LONDON = ZoneInfo("Europe/London")
SENDER = SenderSettings(name="Sam Candidate", address="sam@example.com", phone="+44 7700 900123")
COMPANY, ROLE = "Acme Analytics", "Data Engineer"
NOTE = "I enjoyed hearing about the team's move to streaming pipelines at the open day."
INTERVIEW = "2026-11-25 10:00"  # a Wednesday
AFTER = datetime(2026, 11, 25, 15, 0, tzinfo=LONDON)  # the interview has passed
BEFORE = datetime(2026, 11, 23, 9, 0, tzinfo=LONDON)  # still two days ahead
# In the sender's zone (London); each falls in office hours for the far zone it is paired with.
FAR_ZONES = {
    "America/Los_Angeles": ("2026-12-01 17:00-19:00", "2026-12-02 18:00-20:00"),
    "Asia/Tokyo": ("2026-12-01 00:00-02:00", "2026-12-02 01:00-03:00"),
}
CASES = [
    (s, tense)
    for s in SITUATIONS
    for tense in ("past", "future")
    if not (s == "conflict" and tense == "past")
]


def facts(situation: str = "illness", **kw: object) -> Facts:
    base: dict[str, object] = {
        "situation": situation,
        "to": "ana.ruiz@acme.example",
        "interviewer": "Ana Ruiz",
        "company": COMPANY,
        "role": ROLE,
        "interview": INTERVIEW,
        "tz": LONDON,
    }
    return make_facts(**{**base, **kw})  # type: ignore[arg-type]


def greeting_to_thanks(text: str) -> str:
    """The part a reader reads as the message: from 'Dear ...' to the 'Thank you ...' line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Dear "))
    end = next(i for i, line in enumerate(lines) if line.startswith("Thank you"))
    return "\n".join(lines[start : end + 1])


# --- Measured: every rendering ------------------------------------------------------------------


@pytest.mark.parametrize(("situation", "tense"), CASES)
@pytest.mark.parametrize("note", [NOTE, ""], ids=["note", "no-note"])
@pytest.mark.parametrize("zone", ["", *FAR_ZONES], ids=["own-zone", *FAR_ZONES])
def test_every_rendering_passes_the_check_and_runs_70_to_130_words(
    situation: str, tense: str, note: str, zone: str
) -> None:
    """Verify each situation, in both tenses, with and without a note, with free times for an
    interviewer far away, passes the check with no error or warning (a note-less one gets only the note
    suggestion, which is neither), has
    no free time outside their day, and runs 70 to 130 words from greeting to thanks."""
    now = AFTER if tense == "past" else BEFORE
    free = FAR_ZONES.get(zone, ("2026-12-01 09:00-12:00", "2026-12-02 14:00-17:00"))
    f = facts(situation, note=note, free=free, interviewer_tz=zone)
    draft = compose_apology(Composer(), f, SENDER, now)
    findings = lint_apology(
        draft.subject, draft.text, company=COMPANY, role=ROLE, note=note, past=tense == "past"
    )
    # No error and no warning; a note-less one gets the personal-note suggestion only.
    assert [x for x in findings if x.severity != SUGGESTION] == []
    assert [x.rule for x in findings] == ([] if note else ["personal-note"])
    assert odd_hours(f.free, zone) == []
    words = word_count(greeting_to_thanks(draft.text))
    assert 70 <= words <= 130, (words, draft.text)
    assert draft.text.count(COMPANY) == 1 and draft.text.count(ROLE) == 1
    assert COMPANY in draft.subject


@pytest.mark.parametrize("remaining", [1, 0], ids=["one-left", "none-left"])
def test_follow_up_after_some_slots_passed_passes_and_runs_70_to_130_words(
    remaining: int,
) -> None:
    """Verify a follow-up composed after some free times have passed offers only the rest (or
    asks for a time that suits them), passes the check and runs 70 to 130 words."""
    f = facts(free=("2026-11-26 09:00-12:00", "2026-11-30 09:00-12:00"), note=NOTE)
    now = datetime(2026, 11, 27, 9, 0, tzinfo=LONDON)
    if not remaining:
        now = datetime(2026, 12, 1, 9, 0, tzinfo=LONDON)
    draft = compose_follow_up(Composer(), f, SENDER, now, "Apologies", AFTER)
    assert "Thursday 26 November" not in draft.text
    assert ("Monday 30 November, 09:00–12:00" in draft.text) == bool(remaining)
    if not remaining:
        assert "Could you let me know a time that suits you?" in draft.text
    findings = lint_apology(draft.subject, draft.text, company=COMPANY, role=ROLE, kind="follow_up")
    assert findings == []
    assert 70 <= word_count(greeting_to_thanks(draft.text)) <= 130, draft.text


def test_follow_up_drops_a_slot_starting_within_the_notice() -> None:
    """Verify a free time that starts sooner than FOLLOW_UP_NOTICE is not offered, and one
    starting just after it is."""
    f = facts(free=("2026-11-30 09:00-12:00", "2026-11-30 15:00-17:00"))
    now = datetime(2026, 11, 30, 9, 0, tzinfo=LONDON) - FOLLOW_UP_NOTICE + timedelta(minutes=1)
    text = compose_follow_up(Composer(), f, SENDER, now, "Apologies", AFTER).text
    assert "09:00–12:00" not in text and "15:00–17:00" in text


# --- the greeting ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interviewer", "greeting"),
    [
        ("Ana Ruiz", "Ana"),
        ("Dr Bo Li", "Dr Bo Li"),
        ("Ms. Ruiz", "Ms. Ruiz"),
        ("Cher", "Cher"),
        # The surname first, as exports write it (it was "Dear Smith,,"; a walkthrough).
        ("Smith, John", "John"),
        ("de la Cruz, Juan", "Juan"),
        ("Ana Ruiz, PhD", "Ana"),
        # Titles of other languages, and initials, are kept whole ("Dear Mme,", "Dear J.,").
        ("Mme Claire Dupont", "Mme Claire Dupont"),
        ("M. Jean Dupont", "M. Jean Dupont"),
        ("Dott. Marco Rossi", "Dott. Marco Rossi"),
        ("J. R. R. Tolkien", "J. R. R. Tolkien"),
    ],
)
def test_default_salutation_is_the_first_name_or_the_titled_name(
    interviewer: str, greeting: str
) -> None:
    """Verify the greeting without --salutation: the first name, or the whole name after a
    title."""
    assert default_salutation(interviewer) == greeting


@pytest.mark.parametrize(
    "typed", ["Ms Ruiz", "Dear Ms Ruiz,", "  hello  Ms Ruiz ", "Ms Ruiz!", "Dear Ms Ruiz:"]
)
def test_salutation_greets_in_email_call_script_and_voicemail(typed: str) -> None:
    """Verify --salutation is the greeting everywhere, the full name stays in To:, and a typed
    'Dear', comma or closing mark is not doubled ("Dear Ms Ruiz!,"; a walkthrough)."""
    f = facts(salutation=typed)
    assert f.salutation == "Ms Ruiz"
    draft = compose_apology(Composer(), f, SENDER, AFTER)
    assert draft.text.startswith("Dear Ms Ruiz,\n") and "Ana Ruiz" not in draft.text
    assert "Hello, is that Ms Ruiz?" in call_script(f, SENDER, AFTER)
    assert voicemail(f, SENDER, AFTER).startswith("Hello Ms Ruiz, this is Sam Candidate")
    follow = compose_follow_up(Composer(), f, SENDER, AFTER, "Apologies", AFTER)
    assert follow.text.startswith("Dear Ms Ruiz,\n")


def test_salutation_is_kept_with_the_thread() -> None:
    """Verify a follow-up composed from the stored record greets as the apology did."""
    f = facts(salutation="Ms Ruiz")
    assert Facts.from_record(f.to_record()).salutation == "Ms Ruiz"
    assert Facts.from_record({**f.to_record(), "salutation": ""}).salutation == ""


# --- subjects -------------------------------------------------------------------------------


def test_subject_names_the_company_and_adds_the_role_then_the_time_when_taken() -> None:
    """Verify two open threads to one address never share a subject: the role is added, then
    the role and the time."""
    f = facts()
    first = compose_apology(Composer(), f, SENDER, AFTER).subject
    assert first == (
        "Apologies for missing our interview at Acme Analytics on Wednesday 25 November "
        "– Sam Candidate"
    )
    second = compose_apology(Composer(), f, SENDER, AFTER, frozenset({first})).subject
    assert second == first.replace(" – ", " (Data Engineer) – ")
    third = compose_apology(Composer(), f, SENDER, AFTER, frozenset({first, second})).subject
    assert third == first.replace(" – ", " (Data Engineer, 10:00) – ")


def test_workspace_template_without_subject_detail_still_gets_a_distinct_subject(
    tmp_path: Path,
) -> None:
    """Verify a user's own template, which knows nothing of subject_detail, is made distinct
    by adding the role at the end."""
    (tmp_path / "illness.txt.j2").write_text(
        "Subject: Sorry\n\nDear {{ salutation }}, I was ill. Thank you.\n", encoding="utf-8"
    )
    subject = compose_apology(Composer(tmp_path), facts(), SENDER, AFTER, frozenset({"Sorry"}))
    assert subject.subject == "Sorry (Data Engineer)"


# --- free times in the interviewer's day ----------------------------------------------------


def test_free_time_in_the_interviewers_night_is_flagged_with_their_local_times() -> None:
    """Verify the issue's example: 09:00-12:00 London is 04:00-07:00 in New York."""
    f = facts(free=("2026-12-07 09:00-12:00",), interviewer_tz="America/New_York")
    assert odd_hours(f.free, f.interviewer_tz) == [
        "--free Mon 07 Dec 09:00-12:00 is Mon 07 Dec 04:00-07:00 EST for the interviewer: "
        "outside 08:00-19:00 in their zone"
    ]


def test_free_time_on_the_interviewers_weekend_is_flagged() -> None:
    """Verify a Friday evening in London that is Saturday morning in Tokyo is flagged."""
    f = facts(free=("2026-12-04 23:00-23:59",), interviewer_tz="Asia/Tokyo")
    (line,) = odd_hours(f.free, f.interviewer_tz)
    assert "is Sat 05 Dec 08:00-08:59 JST for the interviewer: their weekend" in line


@pytest.mark.parametrize(
    ("slot", "tz"),
    [
        ("2026-12-07 14:00-17:00", "America/New_York"),  # 09:00-12:00 EST
        ("2026-12-07 08:00-19:00", "Europe/London"),  # the whole day, to the minute
        ("2026-12-07 03:00-05:00", ""),  # no zone given: nothing to compare with
    ],
)
def test_free_time_within_the_interviewers_day_is_not_flagged(slot: str, tz: str) -> None:
    """Verify times inside 08:00-19:00 on a weekday for them, or with no zone, pass."""
    f = facts(free=(slot,), interviewer_tz=tz)
    assert odd_hours(f.free, f.interviewer_tz) == []


def test_odd_hours_is_a_warning_in_preview_and_an_error_when_sending(tmp_path: Path) -> None:
    """Verify prepare() reports odd-hours as a warning, and as an error for send (so --force
    is the one override)."""
    config = tmp_path / "config" / "mailer.toml"
    config.parent.mkdir()
    config.write_text(
        '[sender]\nname = "Sam Candidate"\naddress = "sam@candidate.example"\n', encoding="utf-8"
    )
    settings = load_settings(config, offline=True)
    f = facts(free=("2026-12-07 09:00-12:00",), interviewer_tz="America/New_York", note=NOTE)
    looked = prepare(settings, f, AFTER)
    assert [(x.rule, x.severity) for x in looked.findings] == [("odd-hours", WARNING)]
    assert "04:00-07:00 EST" in looked.findings[0].message
    sending = prepare(settings, f, AFTER, sending=True)
    assert [(x.rule, x.severity) for x in sending.findings] == [("odd-hours", ERROR)]


# --- the new apology-check rules ------------------------------------------------------------

BODY = """Dear Ana,

{middle}

I remain very interested in the Data Engineer role at Acme Analytics. Would it be possible to
reschedule at a time that suits you?

Thank you for your understanding and for your time.
"""
REASON = "I was taken ill that morning, and I am sorry for the inconvenience."


def rules_of(middle: str, **kw: object) -> dict[str, str]:
    args: dict[str, object] = {"company": COMPANY, "role": ROLE, "note": None, **kw}
    found = lint_apology("Apologies", BODY.format(middle=middle), **args)  # type: ignore[arg-type]
    return {f.rule: f.severity for f in found}


@pytest.mark.parametrize(
    "sentence",
    [
        "Our interview was missed on Wednesday.",
        "I know the interview was sadly missed.",
        "The call had been missed before I could reach a phone.",
    ],
)
def test_passive_missed_flags_the_interview_was_missed(sentence: str) -> None:
    """Verify the passive, which owns nothing, is a warning."""
    assert rules_of(f"{REASON} {sentence}") == {"passive-missed": WARNING}


@pytest.mark.parametrize(
    "sentence",
    [
        "I missed our interview, and I am sorry.",
        "The train was missed by a minute, so I was late.",
        "I have missed the chance to meet the team.",
    ],
)
def test_passive_missed_leaves_owned_and_other_misses_alone(sentence: str) -> None:
    """Verify 'I missed ...' and a missed train are not the passive about the interview."""
    assert "passive-missed" not in rules_of(f"{REASON} {sentence}")


def test_three_excuses_are_one_stacked_excuses_error() -> None:
    """Verify a pile of three excuse sentences is an error that replaces the warnings."""
    middle = (
        f"{REASON} The traffic was terrible. There was nothing I could do. These things happen."
    )
    assert rules_of(middle) == {"stacked-excuses": ERROR}


def test_two_excuses_stay_warnings() -> None:
    """Verify two excuse sentences are still only excuse-making warnings, not stacked."""
    middle = f"{REASON} The traffic was terrible. There was nothing I could do."
    assert rules_of(middle) == {"excuse-making": WARNING}


@pytest.mark.parametrize(
    ("note", "past"),
    [
        ("I came down with a fever that week and could not attend.", False),
        ("Sadly I missed the interview because of it.", False),
        ("I will not be able to attend while I am ill.", True),
        ("I can't make it on that day, I am afraid.", True),
    ],
)
def test_note_in_the_other_tense_is_a_tense_mismatch(note: str, past: bool) -> None:
    """Verify a past-tense note on an interview still ahead, or the reverse, is an error."""
    found = rules_of(f"{REASON}\n\n{note}", note=note, past=past)
    assert found == {"tense-mismatch": ERROR}


@pytest.mark.parametrize(
    ("note", "past"),
    [
        ("I came down with a fever that week and could not attend.", True),
        ("I will not be able to attend while I am ill.", False),
        ("I could not be more keen on the role.", False),
        ("I enjoyed meeting the team last month.", False),
    ],
)
def test_note_in_the_same_tense_is_not_a_tense_mismatch(note: str, past: bool) -> None:
    """Verify a note that agrees with the interview's tense, or says nothing of attending,
    passes."""
    assert "tense-mismatch" not in rules_of(f"{REASON}\n\n{note}", note=note, past=past)


def test_tense_is_not_checked_when_unknown() -> None:
    """Verify `mailer lint FILE` (past unknown) does not guess the tense."""
    note = "I could not attend."
    assert "tense-mismatch" not in rules_of(f"{REASON}\n\n{note}", note=note)


@pytest.mark.parametrize("note", [".", "ok", " x "])
def test_note_of_one_or_two_characters_is_an_error(note: str) -> None:
    """Verify a stray one- or two-character note is an error (and not also 'not used')."""
    assert rules_of(f"{REASON}\n\n{note.strip()}", note=note) == {"note-too-short": ERROR}
    # Its words say what is wrong: a campaign's problem line shows them alone (walkthrough).
    body = BODY.format(middle=f"{REASON}\n\n{note.strip()}")
    (finding,) = lint_apology("Apologies", body, company=COMPANY, role=ROLE, note=note)
    assert finding.message == f"The note is only {note.strip()!r}: a slip, not a sentence."


@pytest.mark.parametrize("note", ["", "Yes", "Keen to talk."])
def test_note_of_three_characters_or_none_is_not_too_short(note: str) -> None:
    """Verify an absent note (the suggestion instead) and a short real one are not flagged."""
    assert "note-too-short" not in rules_of(f"{REASON}\n\n{note}", note=note)


# --- the example campaign init writes -------------------------------------------------------


@pytest.mark.parametrize("today", [date(2026, 11, 29), date(2026, 12, 2), date(2027, 3, 1)])
def test_example_campaign_is_dated_around_the_day_init_runs(today: date) -> None:
    """Verify the example's interviews are on weekdays just before ``today`` and its free
    times on weekdays after it, so its past-tense notes fit every text it renders."""
    text = example_campaign(today)
    assert not re.search(r"@[A-Z_0-9]+@", text)
    data = tomllib.loads(text)
    interviews = [datetime.fromisoformat(e["interview"]) for e in data["entries"]]
    free = [datetime.fromisoformat(s[:16]) for s in data["defaults"]["free"]]
    assert all(i.date() < today and i.weekday() < 5 for i in interviews)
    assert all(s.date() > today + timedelta(days=2) and s.weekday() < 5 for s in free)
    assert all(i.date() >= today - timedelta(days=5) for i in interviews)
    # Each entry has a note of its own: one in [defaults] went to every entry whatever its
    # situation (the walkthrough of session 16: an illness note under a transport reason).
    assert "note" not in data["defaults"]
    notes = [e["note"] for e in data["entries"]]
    for note in notes:
        found = rules_of(f"{REASON}\n\n{note}", note=note, past=True)
        assert "tense-mismatch" not in found


def test_campaign_entries_to_one_address_get_distinct_subjects(tmp_path: Path) -> None:
    """Verify two campaign entries to one address, interviews on the same day, do not share a
    subject, nor repeat one the store has open for that address; salutation is an entry key."""
    from mailer.services.campaign import load_campaign

    config = tmp_path / "config" / "mailer.toml"
    config.parent.mkdir()
    config.write_text(
        '[sender]\nname = "Sam Candidate"\naddress = "sam@candidate.example.org"\n',
        encoding="utf-8",
    )
    entry = (
        '[[entries]]\nto = "ana.ruiz@acme-analytics.com"\ninterviewer = "Ana Ruiz"\n'
        'salutation = "Ms Ruiz"\ncompany = "Acme Analytics"\nrole = "{role}"\n'
        'interview = "2026-11-25 {time}"\nsituation = "illness"\n'
        'note = "I am fully recovered and keen to talk."\n\n'
    )
    path = tmp_path / "c.toml"
    path.write_text(
        entry.format(role="Data Engineer", time="10:00")
        + entry.format(role="Data Analyst", time="14:00"),
        encoding="utf-8",
    )
    settings = load_settings(config, offline=True)
    first, second = load_campaign(path, settings, AFTER).entries
    base = "Apologies for missing our interview at Acme Analytics on Wednesday 25 November"
    assert first.prepared.composed.subject == f"{base} – Sam Candidate"
    assert second.prepared.composed.subject == f"{base} (Data Analyst) – Sam Candidate"
    assert first.prepared.draft.text.startswith("Dear Ms Ruiz,\n")

    def open_subjects(to: str) -> frozenset[str]:
        return frozenset({f"{base} – Sam Candidate"}) if to.startswith("ana.ruiz@") else frozenset()

    again = load_campaign(path, settings, AFTER, open_subjects=open_subjects).entries
    assert [e.prepared.composed.subject for e in again] == [
        f"{base} (Data Engineer) – Sam Candidate",
        f"{base} (Data Analyst) – Sam Candidate",
    ]
