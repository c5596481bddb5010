"""The apology check: quiet on the default templates, loud on each bad example, for its rule.

Bad examples live in ``tests/bad_apologies/*.txt``, one problem each. A file starts with
``# key: value`` header lines, then the message as a user would write it (an optional
``Subject: ...`` line, a blank line, the body). Headers:

- ``# expect: RULE-ID`` (required): the one rule the file must trigger;
- ``# excerpt: TEXT``: a finding of that rule must quote a sentence containing TEXT;
- ``# kind: follow_up``: check it as a follow-up (default ``apology``);
- ``# note: TEXT``: the ``--note`` the user gave (default: none);
- ``# past: yes`` or ``no``: whether the interview has gone by (default: unknown).

The file must trigger its rule and nothing else, except the ``personal-note`` suggestion that
every note-less apology gets. Every rule in ``RULES`` must have at least one example. Company
and role are always Acme / Data Engineer.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailer.model.composer import Composer, compose_apology, compose_follow_up
from mailer.model.facts import SITUATIONS, make_facts
from mailer.model.lint import (
    ERROR,
    MAX_APOLOGY_WORDS,
    RULES,
    SUGGESTION,
    WARNING,
    WORD_BUDGET,
    Finding,
    format_finding,
    has_errors,
    lint_apology,
    split_subject,
    summary,
    word_count,
)
from mailer.model.settings import SenderSettings

ROOT = Path(__file__).resolve().parents[1]
BAD = Path(__file__).resolve().parent / "bad_apologies"
DOC = ROOT / "docs" / "apology-check.md"
TZ = ZoneInfo("Europe/London")
AFTER = datetime(2026, 11, 25, 15, 0, tzinfo=TZ)  # the interview has passed
BEFORE = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)  # still two days ahead
WITH_PHONE = SenderSettings(
    name="Sam Candidate", address="sam@example.com", phone="+44 7700 900123"
)
NO_PHONE = SenderSettings(name="Sam Candidate", address="sam@example.com")
NOTE = "I enjoyed hearing about the team's move to streaming pipelines at the open day."
COMPANY, ROLE = "Acme", "Data Engineer"
CASES = [
    (s, tense)
    for s in SITUATIONS
    for tense in ("past", "future")
    if not (s == "conflict" and tense == "past")
]

GOOD = """Dear Ana Ruiz,

I am writing to apologise for missing our interview for the Data Engineer position at Acme on
Wednesday 25 November at 10:00. I was taken ill that morning and was not well enough to attend.

{extra}

I remain very interested in the Data Engineer role at Acme. Would it be possible to reschedule
at a time that suits you?

Thank you for your understanding and for your time.

Kind regards,
Sam Candidate
"""


def facts(situation: str = "illness", **kw: object):
    base = {
        "situation": situation,
        "to": "ana.ruiz@acme.example",
        "interviewer": "Ana Ruiz",
        "company": COMPANY,
        "role": ROLE,
        "interview": "2026-11-25 10:00",
        "tz": TZ,
    }
    return make_facts(**{**base, **kw})  # type: ignore[arg-type]


def rules(findings: list[Finding]) -> list[str]:
    return [f.rule for f in findings]


def check(text: str, **kw: object) -> list[Finding]:
    args: dict[str, object] = {"company": COMPANY, "role": ROLE, "note": None, **kw}
    return lint_apology("Apologies for missing our interview", text, **args)  # type: ignore[arg-type]


def good(extra: str = "") -> str:
    return GOOD.format(extra=extra)


# --- the default templates --------------------------------------------------------------------


@pytest.mark.parametrize(("situation", "tense"), CASES)
@pytest.mark.parametrize("free", [(), ("2026-12-01 09:00-12:00", "2026-12-02 14:00-17:00")])
@pytest.mark.parametrize("sender", [WITH_PHONE, NO_PHONE], ids=["phone", "no-phone"])
def test_default_template_with_a_note_has_no_findings(
    situation: str, tense: str, free: tuple[str, ...], sender: SenderSettings
) -> None:
    """Verify every default situation, both tenses, renders to a text the check finds clean."""
    now = AFTER if tense == "past" else BEFORE
    draft = compose_apology(Composer(), facts(situation, free=free, note=NOTE), sender, now)
    assert lint_apology(draft.subject, draft.text, company=COMPANY, role=ROLE, note=NOTE) == []


@pytest.mark.parametrize(("situation", "tense"), CASES)
def test_default_template_without_a_note_only_suggests_one(situation: str, tense: str) -> None:
    """Verify a note-less default apology gets the personal-note suggestion and nothing else."""
    now = AFTER if tense == "past" else BEFORE
    draft = compose_apology(Composer(), facts(situation), WITH_PHONE, now)
    findings = lint_apology(draft.subject, draft.text, company=COMPANY, role=ROLE)
    assert rules(findings) == ["personal-note"]
    assert findings[0].severity == SUGGESTION and "--note" in findings[0].fix


@pytest.mark.parametrize("free", [(), ("2026-12-01 09:00-12:00",)])
@pytest.mark.parametrize("sender", [WITH_PHONE, NO_PHONE], ids=["phone", "no-phone"])
def test_default_follow_up_has_no_findings(free: tuple[str, ...], sender: SenderSettings) -> None:
    """Verify the follow-up template passes as a follow-up (no reason or regret needed)."""
    draft = compose_follow_up(
        Composer(), facts(free=free), sender, AFTER, "Apologies for missing our interview", BEFORE
    )
    findings = lint_apology(draft.subject, draft.text, company=COMPANY, role=ROLE, kind="follow_up")
    assert findings == []


def test_follow_up_needs_no_reason_or_regret_but_an_apology_does() -> None:
    """Verify the elements required depend on the kind of message."""
    text = (
        "Dear Ana Ruiz,\n\nI remain very interested in the Data Engineer role at Acme. Could we "
        "find a new time to speak?\n\nThank you again for your time.\n"
    )
    assert check(text, kind="follow_up") == []
    assert set(rules(check(text))) == {"missing-reason", "missing-regret"}


# --- the bad examples -------------------------------------------------------------------------


def load_example(path: Path) -> tuple[dict[str, str], str, str]:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    meta: dict[str, str] = {}
    while lines and lines[0].startswith("# "):
        key, _, value = lines.pop(0)[2:].partition(":")
        meta[key.strip()] = value.strip()
    subject, body = split_subject("".join(lines))
    return meta, subject, body


EXAMPLES = sorted(BAD.glob("*.txt"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_bad_example_is_caught_for_its_rule_only(path: Path) -> None:
    """Verify each bad example triggers its expected rule, quoting the right sentence, and no
    other rule."""
    meta, subject, body = load_example(path)
    expected = meta["expect"]
    findings = lint_apology(
        subject,
        body,
        company=COMPANY,
        role=ROLE,
        note=meta.get("note", ""),
        kind=meta.get("kind", "apology"),
        past={"yes": True, "no": False}.get(meta.get("past", "")),
    )
    found = set(rules(findings))
    assert expected in found, f"{path.name}: expected {expected}, got {sorted(found)}"
    assert found - {expected} <= {"personal-note"}, f"{path.name}: also {sorted(found)}"
    mine = [f for f in findings if f.rule == expected]
    assert all(f.severity == RULES[expected].severity for f in mine)
    if excerpt := meta.get("excerpt"):
        assert any(excerpt in f.excerpt for f in mine), [f.excerpt for f in mine]


def test_every_rule_has_a_bad_example() -> None:
    """Verify no rule goes untested: each rule id is some example's expected rule."""
    expected = {load_example(p)[0]["expect"] for p in EXAMPLES}
    assert expected == set(RULES)


def test_every_rule_is_documented_with_its_severity() -> None:
    """Verify docs/apology-check.md lists each rule id with the severity the code gives it."""
    doc = DOC.read_text(encoding="utf-8")
    for rule in RULES.values():
        assert re.search(rf"`{rule.id}`[^\n]*\| {rule.severity} \|", doc), rule.id


def test_documented_thresholds_match_the_code() -> None:
    """Verify the word budgets and apology count in the docs are the ones the code uses."""
    doc = DOC.read_text(encoding="utf-8")
    for warn, error in WORD_BUDGET.values():
        assert f"{warn} words" in doc and f"{error} words" in doc
    assert f"more than {MAX_APOLOGY_WORDS}" in doc


# --- element detection survives rewording ---------------------------------------------------

REWORDED = [
    (
        "Please accept my apologies for not making our interview for the Data Engineer "
        "position at Acme yesterday; my car broke down on the motorway. I am still keen on "
        "the role at Acme and would love to rearrange. I appreciate your patience."
    ),
    (
        "I apologize for missing our call. My internet connection dropped just before it. "
        "I'm excited about the Data Engineer opportunity at ACME and hope we can find another "
        "time. I'm grateful for your understanding."
    ),
    (
        "I regret that a family emergency kept me from our interview. I am enthusiastic about "
        "joining Acme as a Data Engineer. Could we move our interview to a new time? Thanks "
        "so much for bearing with me."
    ),
]


@pytest.mark.parametrize("text", REWORDED)
def test_reworded_apology_still_has_every_element(text: str) -> None:
    """Verify synonyms (apologize, keen, rearrange, grateful, ...) count as the elements."""
    assert check(text) == []


def test_interest_far_from_the_company_is_not_specific() -> None:
    """Verify the company must be named next to the interest, not anywhere in the text."""
    text = good().replace(
        "I remain very interested in the Data Engineer role at Acme.", "I am still interested."
    )
    findings = check(text)
    assert rules(findings) == ["interest-not-specific"]
    assert findings[0].excerpt == "I am still interested."
    assert "Data Engineer role at Acme" in findings[0].fix


def test_company_legal_suffix_is_optional_in_the_text() -> None:
    """Verify 'Acme' in the text matches the company 'Acme Ltd'."""
    assert check(good(), company="Acme Ltd") == []


def test_company_name_is_matched_case_insensitively() -> None:
    """Verify 'ACME' in the text matches the company 'Acme'."""
    assert check(good().replace("Acme", "ACME")) == []


# --- no false alarms ------------------------------------------------------------------------

INNOCENT = [
    "I know you must be very busy at this time of year.",
    "I could take a call at 10:00 (your time) on Monday.",
    "I waited, and waited... and then the bus came.",
    "The train fare was $40, and it was cancelled at the last minute.",
    "I wanted to let you know as soon as I could.",
    "I wanted to let you know as early as I could.",
    "An urgent family matter came up on the way.",
    "I tried to call you immediately afterwards, but could not get through.",
    "I could not reply straight away because I was in hospital.",
    "If you need to check anything with my references, please ask.",
    "I expect to be fully recovered by Monday.",
    "The fault was entirely mine, and I take the blame.",
    "Any day next week works for me.",
    "The notes I made [sic] were from the job advert.",
    "Please write to me at <sam@example.com> if that is easier.",
    "An unforeseen personal matter needed my immediate attention.",
    "Thank you for your clear directions to the office last time.",
]


@pytest.mark.parametrize("sentence", INNOCENT)
def test_innocent_sentence_is_not_flagged(sentence: str) -> None:
    """Verify ordinary polite phrasing does not trip the tone and placeholder rules."""
    assert check(good(sentence)) == []


@pytest.mark.parametrize(
    ("sentence", "rule"),
    [
        ("Please get back to me right away.", "pushy-timing"),
        ("I insist on a new interview.", "demanding-tone"),
        ("You have to give me another slot.", "demanding-tone"),
        ("Your recruiter sent me the wrong address.", "blame-shifting"),
        ("You should have reminded me the day before.", "blame-shifting"),
        ("It couldn't be helped.", "excuse-making"),
        ("I feel terrible about it.", "over-apologising"),
        ("Dear {name}, see you soon.", "placeholder"),
        ("See you at %COMPANY%.", "placeholder"),
        ("Signed, FIRST_NAME.", "placeholder"),
        # Any language, any script, other styles (a walkthrough sent "[votre nom]").
        ("Signed, [votre nom].", "placeholder"),
        ("Signed, [Ваше имя].", "placeholder"),
        ("Signed, [姓名].", "placeholder"),
        ("Signed, (Your Name).", "placeholder"),
        ("Signed, $name.", "placeholder"),
        ("Signed, INSERT NAME HERE.", "placeholder"),
        ("Signed, ____.", "placeholder"),
        # A fact repeating the template's words, or its own mark before the template's.
        ("I remain keen on the the role.", "repeated-word"),
        ("I enjoyed meeting the team at Yahoo!.", "stray-punctuation"),
        ("It wasn’t my fault.", "blame-shifting"),  # a curly apostrophe
    ],
)
def test_bad_sentence_is_flagged_by_its_rule(sentence: str, rule: str) -> None:
    """Verify a sentence added to a good apology is caught, with itself as the excerpt."""
    findings = check(good(sentence))
    assert [(f.rule, f.excerpt) for f in findings] == [(rule, sentence)]


def test_hard_wrapped_sentence_is_quoted_whole() -> None:
    """Verify a sentence broken over lines is rejoined for the excerpt."""
    findings = check(good("Please let me know\nASAP which day works."))
    assert [f.excerpt for f in findings] == ["Please let me know ASAP which day works."]


def test_quoted_lines_are_not_checked() -> None:
    """Verify '>' lines (an earlier message below a reply) are ignored."""
    assert check(good("> Please reschedule ASAP, [Your Name]")) == []


# --- length and counts ------------------------------------------------------------------------

FILLER_WORD = "pipelines "


@pytest.mark.parametrize("kind", ["apology", "follow_up"])
def test_length_budget_boundaries(kind: str) -> None:
    """Verify: at the budget nothing, one word over a warning, over the limit an error."""
    warn, error = WORD_BUDGET[kind]
    base = good()
    pad = warn - word_count(base)
    assert pad > 0
    assert check(good(FILLER_WORD * pad), kind=kind) == []
    assert rules(check(good(FILLER_WORD * (pad + 1)), kind=kind)) == ["long-message"]
    assert rules(check(good(FILLER_WORD * (error - warn + pad)), kind=kind)) == ["long-message"]
    too_long = check(good(FILLER_WORD * (error - warn + pad + 1)), kind=kind)
    assert rules(too_long) == ["too-long"] and too_long[0].severity == ERROR


def test_apology_count_over_the_limit_is_over_apologising() -> None:
    """Verify up to MAX_APOLOGY_WORDS apologies pass and one more is flagged."""
    base_count = 1  # "apologise" in GOOD
    ok = " ".join(["I am sorry."] * (MAX_APOLOGY_WORDS - base_count))
    assert check(good(ok)) == []
    findings = check(good(ok + " Sorry."))
    assert rules(findings) == ["over-apologising"] and findings[0].excerpt == ""


# --- the personal note ------------------------------------------------------------------------


def test_note_given_and_used_silences_the_suggestion() -> None:
    """Verify a note that appears in the text earns no warning."""
    assert check(good(NOTE), note=NOTE) == []


def test_no_note_suggests_one_and_unknown_note_skips_it() -> None:
    """Verify note='' gives the suggestion and note=None (hand-written text) does not."""
    assert rules(check(good(), note="")) == ["personal-note"]
    assert check(good(), note=None) == []


def test_follow_up_never_asks_for_a_note() -> None:
    """Verify the personal-note suggestion is only for apologies."""
    assert "personal-note" not in rules(check(good(), note="", kind="follow_up"))


# --- API --------------------------------------------------------------------------------------


def test_errors_come_before_warnings_and_block() -> None:
    """Verify ordering and has_errors: a warning alone does not block, an error does."""
    findings = check(good("Please reply immediately. I need you to confirm."), note="")
    assert [f.severity for f in findings] == [ERROR, WARNING, SUGGESTION]
    assert has_errors(findings)
    assert not has_errors([f for f in findings if f.severity != ERROR])
    assert summary(findings) == "1 error, 1 warning, 1 suggestion"
    assert summary([f for f in findings if f.severity == SUGGESTION]) == (
        "no problems found; 1 suggestion"
    )
    assert summary([]) == "no problems found"


def test_format_finding_shows_rule_excerpt_and_fix() -> None:
    """Verify the terminal form: severity, rule, message and sentence, then the fix."""
    (finding,) = check(good("Please reschedule ASAP."))
    first, second = format_finding(finding).splitlines()
    assert first.startswith("error: [demanding-tone] 'ASAP'")
    assert first.endswith(': "Please reschedule ASAP."')
    assert second.strip().startswith("fix: ")


def test_long_excerpt_is_trimmed() -> None:
    """Verify a run-on sentence is shortened in the excerpt."""
    (finding,) = check(good("Please reschedule ASAP " + "and " * 60 + "soon."))
    assert len(finding.excerpt) <= 160 and finding.excerpt.endswith("…")


def test_unknown_kind_is_refused() -> None:
    """Verify a typo in kind is a programming error, not a silent pass."""
    with pytest.raises(ValueError, match="kind"):
        check(good(), kind="followup")


def test_split_subject_reads_an_optional_subject_line() -> None:
    """Verify a file's 'Subject:' line is split off, and its absence is fine."""
    assert split_subject("Subject:  Hello  there\n\nBody\n") == ("Hello there", "Body\n")
    assert split_subject("Dear Ana,\nBody\n") == ("", "Dear Ana,\nBody\n")


# Words the key-element regexes look for, split and joined by what a line break may fall
# between ("due\nto", "re-\nschedule", "sorry\n", "thank-you").
_PIECES = [
    "due", "to", "because", "ill", "sorry", "apologise", "thank", "thanks", "grateful",
    "reschedule", "re-", "schedule", "another", "time", "keen", "looking", "forward",
    "interested", "I'm", "available", "on", "wi-", "fi", "power", "cut", "double-booked",
    "’", "'", "-", ",", ".", " ", " ", "\n", "\n\n", "\r\n", "\u2028", "> quoted", "x_y",
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=40))
@example(["due", " ", "to"])
@example(["due", "\n", "to"])
@example(["power", " ", "cut", "\n", "thank"])
@example(["I'm", " ", "available", " ", "on"])
@example(["looking", "\n", "forward", " ", "sorry"])
@example(["re-", "\n", "schedule", "\r\n", "> quoted", "\n", "keen"])
def test_the_key_elements_and_word_count_read_by_line_as_the_whole_text(
    pieces: list[str],
) -> None:
    """Verify each key-element regex, asked line by line (and remembered), answers as one
    search of the whole text, and the word count line by line is the whole text's count."""
    from mailer.model import lint

    text = "".join(pieces)
    for name in lint._BY_LINE:
        assert lint._found(name, text) == bool(lint._get(name).search(text)), (name, text)
    whole = len(lint._get("_WORD").findall(lint._unquoted(text).replace("’", "'")))
    assert lint.word_count(text) == whole


# --- another language --------------------------------------------------------------------------

OTHER_LANGUAGES = {
    "French": (
        "Madame Ruiz,\n\nJe suis vraiment désolé d'avoir manqué notre entretien de mardi pour "
        "le poste chez Acme. J'étais malade. Je reste très intéressé par le poste. Serait-il "
        "possible de convenir d'une nouvelle date ? Merci pour votre compréhension.\n\nSam"
    ),
    "Spanish": (
        "Estimada Sra. Ruiz:\n\nLamento mucho no haber asistido a la entrevista del martes. "
        "Estuve enfermo. Sigo muy interesado en el puesto en Acme. ¿Sería posible fijar una "
        "nueva fecha? Muchas gracias por su comprensión.\n\nSam"
    ),
    "Russian": (
        "Уважаемая Ана,\n\nПриношу извинения за то, что пропустил собеседование во вторник. "
        "Я заболел. Я по-прежнему очень заинтересован в этой должности в Acme. Можно ли "
        "перенести встречу? Спасибо за понимание.\n\nСэм"
    ),
    "Chinese": (
        "尊敬的鲁伊斯女士：\n\n非常抱歉我错过了周二的面试。我当时生病了。我仍然对Acme的这个职位"
        "非常感兴趣。请问是否可以重新安排时间？感谢您的理解。\n\n山姆"
    ),
}


@pytest.mark.parametrize("language", sorted(OTHER_LANGUAGES))
@pytest.mark.parametrize("kind", ["apology", "follow_up"])
def test_an_apology_in_another_language_gets_one_warning_not_five_errors(
    language: str, kind: str
) -> None:
    """Verify a text plainly in another language is not called missing every key element
    (the words looked for are English): one warning says the check cannot tell, and asks
    for them to be checked by hand, naming the role and company."""
    found = lint_apology(
        "Acme", OTHER_LANGUAGES[language], company="Acme", role="Data Engineer", kind=kind
    )
    assert [f.rule for f in found if f.severity != SUGGESTION] == ["other-language"]
    assert not has_errors(found)
    assert "the Data Engineer role at Acme" in found[0].fix


@pytest.mark.parametrize(
    "text",
    [
        # English, terse or rude: the key elements are still checked.
        "Hi Ana, it was not my fault, the traffic was terrible. Reschedule ASAP. I expect a "
        "reply today. Sam",
        # English with names in other languages (de la Cruz, Banco do Brasil e Companhia).
        "Dear Ms de la Cruz, the interview at Banco do Brasil e Companhia: it did not happen, "
        "and we will see what comes of it. Regards, Sam",
        # Terse English with French-looking names and one-letter words (a review).
        "Dear Ms Le, Re Data Engineer post, Le Monde: sudden illness, hospital per doctor. "
        "Monday impossible. New slot e-mail o phone OK: Tue, Wed, Thu 9-17 CET. U can reach "
        "me any day.",
        # Too short to judge: checked as English.
        "Es tut mir leid, ich war krank. Neuer Termin? Danke!",
    ],
)
def test_an_english_or_too_short_text_still_has_its_key_elements_checked(text: str) -> None:
    """Verify the language signal never spares an English text (or one too short to judge)
    the key-element errors."""
    found = lint_apology("", text, company="Acme", role="Data Engineer")
    assert "other-language" not in {f.rule for f in found}
    assert has_errors(found)
