"""The phone script: every element, for every situation and tense, and a short voicemail."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from mailer.errors import InputError
from mailer.model.callscript import REASONS, SHORT_REASONS, call_script, voicemail
from mailer.model.composer import variables
from mailer.model.facts import SITUATIONS, make_facts
from mailer.model.lint import lint_apology
from mailer.model.settings import SenderSettings

TZ = ZoneInfo("Europe/London")
AFTER = datetime(2026, 11, 25, 15, 0, tzinfo=TZ)  # the interview has passed
BEFORE = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)  # still two days ahead
WITH_PHONE = SenderSettings(
    name="Sam Candidate", address="sam@example.com", phone="+44 7700 900123"
)
NO_PHONE = SenderSettings(name="Sam Candidate", address="sam@example.com")
FREE = ("2026-12-01 09:00-12:00", "2026-12-02 14:00-17:00")
CASES = [
    (s, tense)
    for s in SITUATIONS
    for tense in ("past", "future")
    if not (s == "conflict" and tense == "past")
]
# A word of each situation's reason, as the templates have it.
REASON_WORDS = {
    "illness": "ill",
    "personal": "personal matter",
    "emergency": "emergency",
    "transport": "transport disruption",
    "technical": "internet connection",
    "conflict": "clashes",
}
# Spoken at about 150 words a minute, 30 seconds is 75 words.
VOICEMAIL_MAX_WORDS = 75


def facts(situation: str = "illness", **kw: object):
    base = {
        "situation": situation,
        "to": "ana.ruiz@acme.example",
        "interviewer": "Ana Ruiz",
        "company": "Acme",
        "role": "Data Engineer",
        "interview": "2026-11-25 10:00",
        "tz": TZ,
    }
    return make_facts(**{**base, **kw})  # type: ignore[arg-type]


def split(script: str) -> tuple[str, str]:
    call, sep, mail = script.partition("\nVOICEMAIL (under 30 seconds):\n")
    assert sep, script
    return call, mail


@pytest.mark.parametrize(("situation", "tense"), CASES)
@pytest.mark.parametrize("free", [(), FREE], ids=["no-free", "free"])
@pytest.mark.parametrize("sender", [WITH_PHONE, NO_PHONE], ids=["phone", "no-phone"])
def test_call_script_has_every_element(
    situation: str, tense: str, free: tuple[str, ...], sender: SenderSettings
) -> None:
    """Verify greeting, apology or request, reason, interest, reschedule and thanks, in order."""
    now = AFTER if tense == "past" else BEFORE
    f = facts(situation, free=free)
    call, _ = split(call_script(f, sender, now))
    assert call.startswith("CALL SCRIPT — Ana Ruiz, Acme (Data Engineer)\n")
    second = "2. Apology: " if tense == "past" else "2. Request to move: "
    labels = ["1. Greeting: ", second, "3. Reason: ", "4. Interest: ", "5. Reschedule: "]
    labels.append("6. Thanks: ")
    positions = [call.index(label) for label in labels]
    assert positions == sorted(positions)
    assert "This is Sam Candidate" in call
    assert REASON_WORDS[situation] in call
    assert REASONS[situation][tense] in call
    assert "interested in the Data Engineer role at Acme" in call
    assert "Thank you" in call
    if tense == "past":
        assert "apologise for missing" in call and "reschedule" in call
    else:
        assert "missing" not in call and "move" in call


@pytest.mark.parametrize(("situation", "tense"), CASES)
def test_free_times_are_listed_as_the_email_shows_them(situation: str, tense: str) -> None:
    """Verify each free slot appears, formatted by the composer, in the interviewer's zone."""
    now = AFTER if tense == "past" else BEFORE
    f = facts(situation, free=FREE, interviewer_tz="America/New_York")
    call, _ = split(call_script(f, WITH_PHONE, now))
    expected = variables(f, WITH_PHONE, now)["free_times"]
    assert expected == [
        "Tuesday 1 December, 04:00–07:00 EST",
        "Wednesday 2 December, 09:00–12:00 EST",
    ]
    for slot in expected:
        assert f"- {slot}\n" in call


def test_without_free_times_the_script_offers_to_fit_around_them() -> None:
    """Verify no empty list is read out when the user gave no free times."""
    call, _ = split(call_script(facts(), WITH_PHONE, AFTER))
    assert "fit around your calendar" in call and "- " not in call


@pytest.mark.parametrize(("situation", "tense"), CASES)
@pytest.mark.parametrize("sender", [WITH_PHONE, NO_PHONE], ids=["phone", "no-phone"])
def test_voicemail_is_short_and_complete(
    situation: str, tense: str, sender: SenderSettings
) -> None:
    """Verify name, short reason, apology, interest, callback or email, in under 30 seconds."""
    now = AFTER if tense == "past" else BEFORE
    f = facts(situation, free=FREE)
    _, mail = split(call_script(f, sender, now))
    assert mail == voicemail(f, sender, now)
    assert "this is Sam Candidate" in mail
    assert SHORT_REASONS[situation][tense] in mail
    assert "sorry" in mail and "interested in the role at Acme" in mail
    assert "sending you an email" in mail
    if sender.phone:
        assert f"call me back on {sender.phone}" in mail
    else:
        assert "call me back" not in mail and sender.address in mail
    assert len(mail.split()) <= VOICEMAIL_MAX_WORDS


def test_interviewer_phone_and_note_are_shown() -> None:
    """Verify the number to dial heads the script, and the note is a prompt under the reason."""
    f = facts(interviewer_phone="+1 212 555 0100", note="I enjoyed the office tour.")
    call, _ = split(call_script(f, WITH_PHONE, AFTER))
    assert "call +1 212 555 0100" in call.splitlines()[1]
    assert "   Also mention: I enjoyed the office tour.\n4. Interest" in call


@pytest.mark.parametrize(("situation", "tense"), CASES)
def test_call_script_has_the_elements_the_apology_check_wants(situation: str, tense: str) -> None:
    """Verify the spoken script passes the email check's element and tone rules."""
    now = AFTER if tense == "past" else BEFORE
    call, mail = split(call_script(facts(situation, free=FREE), WITH_PHONE, now))
    for text in (call, mail):
        found = lint_apology("", text, company="Acme", role="Data Engineer", note=None)
        assert found == [], [f.rule for f in found]


def test_conflict_for_a_past_interview_is_refused() -> None:
    """Verify, as in the composer, 'conflict' cannot explain an interview already missed."""
    with pytest.raises(InputError, match="still ahead"):
        call_script(facts("conflict"), WITH_PHONE, AFTER)


def test_every_situation_has_spoken_reasons() -> None:
    """Verify a new situation cannot be added without its call-script wording."""
    for situation in SITUATIONS:
        tenses = {"future"} if situation == "conflict" else {"past", "future"}
        assert set(REASONS[situation]) == tenses == set(SHORT_REASONS[situation])


def test_an_afternoon_interview_was_not_missed_through_an_illness_that_morning() -> None:
    """Verify the spoken reason says when the illness came as the email does."""
    morning = call_script(facts(), NO_PHONE, AFTER)
    afternoon = call_script(facts(interview="2026-11-25 14:00"), NO_PHONE, AFTER)
    assert "taken ill that morning" in morning
    assert "taken ill earlier that day" in afternoon and "morning" not in afternoon
