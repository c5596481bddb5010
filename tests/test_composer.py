"""The composer: every situation, in both tenses, with every key element; and its refusals."""

from __future__ import annotations

import re
from datetime import datetime
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.errors import InputError, TemplateError
from mailer.model.composer import (
    Composer,
    _split,
    build_message,
    compose_apology,
    compose_follow_up,
)
from mailer.model.facts import SITUATIONS, make_facts
from mailer.model.settings import SenderSettings

TZ = ZoneInfo("Europe/London")
INTERVIEW = "2026-11-25 10:00"
AFTER = datetime(2026, 11, 25, 15, 0, tzinfo=TZ)  # the interview has passed
BEFORE = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)  # still two days ahead
SENDER = SenderSettings(name="Sam Candidate", address="sam@example.com", phone="+44 7700 900123")

# Phrases that carry each element the advice asks for.
ELEMENTS = {
    "regret": ("regret", "sorry"),
    "interest": ("remain very interested in the Data Engineer role at Acme",),
    "reschedule": ("Would it be possible to",),
    "thanks": ("Thank you for your understanding and for your time.",),
}
REASONS = {
    "illness": "ill",  # "taken ill" (past), "unwell" (future)
    "personal": "personal matter",
    "emergency": "emergency",
    "transport": "transport disruption",
    "technical": "internet connection",
    "conflict": "clashes",
}


def facts(situation: str = "illness", **kw: object):
    base = {
        "situation": situation,
        "to": "ana.ruiz@acme.example",
        "interviewer": "Ana Ruiz",
        "company": "Acme",
        "role": "Data Engineer",
        "interview": INTERVIEW,
        "tz": TZ,
    }
    return make_facts(**{**base, **kw})  # type: ignore[arg-type]


CASES = [
    (s, now)
    for s in SITUATIONS
    for now in ("past", "future")
    if not (s == "conflict" and now == "past")
]


def test_a_company_whose_name_ends_in_a_full_stop_gets_no_second_one() -> None:
    """Verify "at Acme Ltd." ends the sentence once, in the apology, the follow-up and the
    call script ("role at Acme Ltd.." went out: a verification walkthrough)."""
    from mailer.model.callscript import call_script

    f = facts(company="Acme Ltd.")
    apology_text = compose_apology(Composer(), f, SENDER, AFTER).text
    assert "role at Acme Ltd. " in apology_text and ".." not in apology_text
    assert "role at Acme Ltd. " in call_script(f, SENDER, AFTER)
    assert ".." not in call_script(f, SENDER, AFTER)
    follow_up = compose_follow_up(Composer(), f, SENDER, AFTER, "Apologies", AFTER).text
    assert "role at Acme Ltd." in follow_up and ".." not in follow_up
    plain = compose_apology(Composer(), facts(company="Acme"), SENDER, AFTER).text
    assert "role at Acme. " in plain


@pytest.mark.parametrize("company", ["Yahoo!", "Ask Jeeves?"])
def test_a_company_whose_name_ends_in_a_mark_gets_no_full_stop_after_it(company: str) -> None:
    """Verify "at Yahoo!" ends the sentence itself, in the apology, the follow-up and the call
    script ("at Yahoo!." went out; a walkthrough), and the apology check passes it."""
    from mailer.model.callscript import call_script
    from mailer.model.lint import lint_apology

    f = facts(company=company)
    draft = compose_apology(Composer(), f, SENDER, AFTER)
    follow_up = compose_follow_up(Composer(), f, SENDER, AFTER, "Apologies", AFTER).text
    for text in (draft.text, follow_up, call_script(f, SENDER, AFTER)):
        assert f"role at {company}" in text and f"{company}." not in text, text
    findings = lint_apology(draft.subject, draft.text, company=company, role=f.role, note=f.note)
    assert [x for x in findings if x.rule == "stray-punctuation"] == []


@pytest.mark.parametrize(
    ("interview", "when_taken_ill"),
    [("2026-11-25 10:00", "that morning"), ("2026-11-25 15:30", "earlier that day")],
)
def test_an_illness_apology_says_when_the_illness_came_as_the_interview_hour_allows(
    interview: str, when_taken_ill: str
) -> None:
    """Verify an afternoon interview is not missed through an illness "that morning"."""
    draft = compose_apology(Composer(), facts(interview=interview), SENDER, AFTER.replace(hour=18))
    assert f"I was taken ill {when_taken_ill} " in draft.text
    assert draft.text.count("that morning") == (when_taken_ill == "that morning")


@pytest.mark.parametrize(("situation", "tense"), CASES)
def test_every_situation_and_tense_has_every_key_element(situation: str, tense: str) -> None:
    """Verify reason, regret, interest, reschedule request and thanks are all present."""
    now = AFTER if tense == "past" else BEFORE
    draft = compose_apology(
        Composer(), facts(situation, free=["2026-12-01 09:00-12:00"]), SENDER, now
    )
    text = draft.text
    assert text.startswith("Dear Ana,\n")  # the first name: see default_salutation
    reason = "unwell" if (situation, tense) == ("illness", "future") else REASONS[situation]
    assert reason in text
    for element, phrases in ELEMENTS.items():
        assert any(p in text for p in phrases), f"{situation}/{tense} lacks {element}"
    assert "Tuesday 1 December, 09:00–12:00" in text
    assert text.rstrip().endswith("Sam Candidate\n+44 7700 900123".rstrip())
    if tense == "past":
        assert "apologise for missing our interview" in text
        assert "Apologies for missing" in draft.subject
    else:
        assert "missing" not in text and "missed" not in text
        assert "move" in draft.subject or "reschedule" in draft.subject.lower()


def test_conflict_for_a_past_interview_is_refused() -> None:
    """Verify 'conflict' (asking in advance) cannot be used once the interview has passed."""
    with pytest.raises(InputError, match="still ahead"):
        compose_apology(Composer(), facts("conflict"), SENDER, AFTER)


def test_missing_variable_names_the_variable_and_template(tmp_path: Path) -> None:
    """Verify StrictUndefined: an unknown variable is an error naming it and the file."""
    (tmp_path / "illness.txt.j2").write_text(
        "Subject: Hi\n\nDear {{ interviewer }}, {{ favourite_colour }}\n"
    )
    with pytest.raises(TemplateError) as caught:
        compose_apology(Composer(tmp_path), facts(), SENDER, AFTER)
    # The file and the line that uses it, and how to give it.
    assert str(caught.value) == (
        f"template {tmp_path / 'illness.txt.j2'}:3: 'favourite_colour' is undefined "
        "(a missing fact)"
    )
    assert caught.value.hint.startswith("give it with --var favourite_colour=...")


def test_workspace_template_overrides_default_file_by_file(tmp_path: Path) -> None:
    """Verify a workspace template replaces only its own situation."""
    (tmp_path / "illness.txt.j2").write_text(
        "Subject: My own words\n\nDear {{ interviewer }}, {{ team }}.\n"
    )
    c = Composer(tmp_path)
    assert compose_apology(c, facts(var=["team=Platform"]), SENDER, AFTER).subject == "My own words"
    assert "transport disruption" in compose_apology(c, facts("transport"), SENDER, AFTER).text


@pytest.mark.parametrize(
    "line", ["Kind regards, [Your Name]", "See you at [Company]", "Hi {{ '{{' }} name }}"]
)
def test_leftover_placeholder_in_a_template_is_refused(tmp_path: Path, line: str) -> None:
    """Verify '[Your Name]'-style placeholders and raw template markup never go out."""
    (tmp_path / "illness.txt.j2").write_text(
        f"Subject: Sorry\n\nDear {{{{ interviewer }}}},\n{line}\n"
    )
    with pytest.raises(TemplateError, match=r"placeholder|markup"):
        compose_apology(Composer(tmp_path), facts(), SENDER, AFTER)


def test_a_template_saved_with_a_byte_order_mark_reads_its_subject(tmp_path: Path) -> None:
    """Verify a template a Windows editor saved with a UTF-8 BOM is read as written (it was
    refused: "the first line must be 'Subject: ...'"; a walkthrough)."""
    (tmp_path / "illness.txt.j2").write_bytes(
        "\ufeffSubject: Sorry\n\nDear {{ interviewer }},\n".encode()
    )
    assert compose_apology(Composer(tmp_path), facts(), SENDER, AFTER).subject == "Sorry"


@pytest.mark.parametrize("line", ["Bcc: boss@example.com", "cc:me@example.com", "Reply-To: x@y.z"])
def test_a_header_written_after_the_subject_is_refused(tmp_path: Path, line: str) -> None:
    """Verify a template that seems to set a header under its Subject is refused naming it:
    only the Subject is read, and "Bcc: boss@example.com" went into the email as text (a
    walkthrough)."""
    (tmp_path / "illness.txt.j2").write_text(f"Subject: Sorry\n{line}\n\nDear Ana,\n")
    with pytest.raises(TemplateError, match="is not a header"):
        compose_apology(Composer(tmp_path), facts(), SENDER, AFTER)


def test_a_template_not_in_utf8_is_refused_in_one_line(tmp_path: Path) -> None:
    """Verify a Latin-1 template says it is not UTF-8 and what to do (it said "cannot render:
    UnicodeDecodeError: 'utf-8' codec can't decode byte 0xfc ..."; a walkthrough)."""
    (tmp_path / "illness.txt.j2").write_bytes(
        "Subject: Entschuldigung\n\nGrüße\n".encode("latin-1")
    )
    with pytest.raises(TemplateError, match=r"illness.txt.j2: not UTF-8 text \(byte 0xfc") as err:
        compose_apology(Composer(tmp_path), facts(), SENDER, AFTER)
    assert err.value.hint == "save the file as UTF-8"


@pytest.mark.parametrize(
    ("text", "part", "char"),
    [
        ("Subject: Sorry\n\nDear Ana,\nbody \x00 nul\n", "body", "U+0000"),
        ("Subject: Sorry\n\nDear Ana,\n\x1b[31mred\x1b[0m\n", "body", "U+001B"),
        ("Subject: Sorry\n\nDear Ana,\npage\x0cbreak\n", "body", "U+000C"),
        ("Subject: Sorry \x07\n\nDear Ana,\n", "subject", "U+0007"),
    ],
    ids=["nul", "escape", "form-feed", "bell-in-subject"],
)
def test_a_control_character_in_a_template_is_refused_naming_it(
    tmp_path: Path, text: str, part: str, char: str
) -> None:
    """Verify a template's own control characters (a NUL, a terminal escape) are refused, as
    they are in the facts (they went into the sent email; a walkthrough). Tabs and line
    breaks are text."""
    (tmp_path / "illness.txt.j2").write_text(text, encoding="utf-8")
    with pytest.raises(TemplateError) as err:
        compose_apology(Composer(tmp_path), facts(), SENDER, AFTER)
    assert str(err.value) == (
        f"template illness.txt.j2: the {part} contains the control character {char}"
    )
    (tmp_path / "illness.txt.j2").write_text(
        "Subject: Sorry\n\nDear Ana,\n\tI was ill.\r\nThank you.\n", encoding="utf-8"
    )
    assert "\tI was ill." in compose_apology(Composer(tmp_path), facts(), SENDER, AFTER).text


@pytest.mark.parametrize("field", ["note", "interviewer", "company", "role"])
@pytest.mark.parametrize("char", ["\u200b", "\u202e", "\u2066", "\ufeff"])
def test_an_invisible_character_in_a_fact_is_refused_naming_it(field: str, char: str) -> None:
    """Verify a zero-width space ("Ana\u200bRuiz" read "Dear AnaRuiz,") or a direction
    override (U+202E went into the To: header) typed in a fact is refused naming the option
    and the character (a walkthrough); the marks a right-to-left name needs are allowed."""
    with pytest.raises(InputError, match=f"--{field}: contains the invisible character U\\+"):
        facts(**{field: f"Ana{char}Ruiz"})
    assert facts(interviewer="\u0633\u0627\u0631\u0629\u200f \u0623\u062d\u0645\u062f")


@pytest.mark.parametrize("field", ["note", "interviewer", "company", "role"])
def test_placeholder_in_a_fact_names_the_option(field: str) -> None:
    """Verify a bracket placeholder typed as a fact is refused before composing."""
    with pytest.raises(InputError, match=f"--{field}: '\\[Your Name\\]' is a placeholder"):
        facts(**{field: "[Your Name]"})


@pytest.mark.parametrize("field", ["note", "interviewer", "company", "role"])
@pytest.mark.parametrize(
    ("value", "token"),
    [("See you {{ sender_name }} soon", "{{"), ("{% if x %}yes", "{%")],
)
def test_template_markup_in_a_fact_names_the_fact(field: str, value: str, token: str) -> None:
    """Verify markup typed into a fact is refused naming the fact, not the template (it was
    "template illness.txt.j2: the body still contains template markup"; a walkthrough)."""
    with pytest.raises(InputError, match=f"--{field}: {re.escape(repr(token))} is template"):
        facts(**{field: value})


def test_single_braces_in_a_fact_are_words() -> None:
    """Verify single braces are not refused as a merge field: "{sic}", a team called
    "{code}" are words, and a refused fact has no --force (a review)."""
    draft = compose_apology(
        Composer(),
        facts(note="The brief said {sic} Friday; the room code was {1, 2}.", company="{code}"),
        SENDER,
        AFTER,
    )
    assert "{sic}" in draft.text and "{1, 2}" in draft.text


def test_lowercase_brackets_in_a_note_are_fine() -> None:
    """Verify ordinary bracketed text such as '[sic]' is not mistaken for a placeholder."""
    draft = compose_apology(
        Composer(), facts(note="My train (the 8:05) was cancelled [sic]."), SENDER, AFTER
    )
    assert "[sic]" in draft.text


@pytest.mark.parametrize("field", ["company", "role", "interviewer"])
@pytest.mark.parametrize("bad", ["Acme\r\nBcc: x@example.com", "Acme\nX: y", "Acme\rX"])
def test_cr_or_lf_in_a_header_fact_is_refused(field: str, bad: str) -> None:
    """Verify CR/LF in any fact that can reach a header is rejected before composing."""
    with pytest.raises(InputError, match=f"--{field}: contains a line break"):
        facts(**{field: bad})


def test_cr_lf_in_sender_name_is_refused_when_building() -> None:
    """Verify a line break in the configured name is caught too."""
    bad = SenderSettings(name="Sam\r\nBcc: x@example.com", address="sam@example.com")
    f = facts()
    with pytest.raises(InputError, match="line break"):
        build_message(compose_apology(Composer(), f, SENDER, AFTER), f, bad, AFTER)


def test_message_has_own_message_id_date_names_and_plain_text() -> None:
    """Verify the built message: our Message-ID domain, Date, display names, Cc, no HTML."""
    f = facts(cc=["recruiter@acme.example"])
    m = build_message(compose_apology(Composer(), f, SENDER, AFTER), f, SENDER, AFTER)
    msg = message_from_bytes(m.raw, policy=default)
    assert msg["Message-ID"] == m.message_id and m.message_id.endswith("@example.com>")
    assert msg["Date"] == "Wed, 25 Nov 2026 15:00:00 +0000"
    assert msg["To"] == "Ana Ruiz <ana.ruiz@acme.example>"
    assert msg["Cc"] == "recruiter@acme.example"
    assert m.recipients == ("ana.ruiz@acme.example", "recruiter@acme.example")
    assert msg.get_content_type() == "text/plain"
    assert "<" not in msg.get_content()
    other = build_message(compose_apology(Composer(), f, SENDER, AFTER), f, SENDER, AFTER)
    assert other.message_id != m.message_id


def test_html_alternative_carries_the_same_text_escaped() -> None:
    """Verify the optional HTML part mirrors the text and escapes it."""
    f = facts(note="Fish & chips <3")
    m = build_message(
        compose_apology(Composer(), f, SENDER, AFTER), f, SENDER, AFTER, html_part=True
    )
    msg = message_from_bytes(m.raw, policy=default)
    assert msg.get_content_type() == "multipart/alternative"
    assert "Fish & chips <3" in msg.get_body(("plain",)).get_content()
    assert "Fish &amp; chips &lt;3" in msg.get_body(("html",)).get_content()


def test_times_are_shown_in_the_interviewers_zone_with_its_name() -> None:
    """Verify --interviewer-tz converts the interview and free times and names the zone."""
    f = facts(interviewer_tz="Europe/Berlin", free=["2026-12-03 09:00-12:00"])
    text = compose_apology(Composer(), f, SENDER, AFTER).text
    assert "Wednesday 25 November at 11:00 CET" in text
    assert "Thursday 3 December, 10:00–13:00 CET" in text


def test_follow_up_is_a_reply_to_the_original_subject() -> None:
    """Verify the follow-up template renders with Re: and the original date."""
    draft = compose_follow_up(
        Composer(), facts(), SENDER, AFTER, "Apologies for missing our interview", AFTER
    )
    assert draft.subject == "Re: Apologies for missing our interview"
    assert "Wednesday 25 November" in draft.text and "remain very interested" in draft.text


def test_internationalised_domain_is_sent_as_punycode() -> None:
    """Verify 'hr@bücher.de' becomes 'hr@xn--bcher-kva.de' in To and the envelope."""
    f = facts(to="hr@bücher.de")
    m = build_message(compose_apology(Composer(), f, SENDER, AFTER), f, SENDER, AFTER)
    assert m.recipients == ("hr@xn--bcher-kva.de",)
    assert b"To: Ana Ruiz <hr@xn--bcher-kva.de>" in m.raw


def test_non_ascii_local_part_is_refused_up_front() -> None:
    """Verify an address the SMTP server would choke on is refused before anything is sent."""
    with pytest.raises(InputError, match="--to: invalid email address"):
        facts(to="jörg@acme.example")


def test_unset_sender_zone_uses_the_machines_iana_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Verify summer time is applied to a date after the change, not today's offset."""
    from mailer.adapters.clock import local_zone

    monkeypatch.setenv("TZ", "Europe/Berlin")
    zone = local_zone("")
    winter = datetime(2026, 3, 20, 12, 0, tzinfo=zone)
    summer = datetime(2026, 4, 2, 10, 0, tzinfo=zone)
    assert (winter.utcoffset().total_seconds(), summer.utcoffset().total_seconds()) == (3600, 7200)


@pytest.mark.parametrize("locale", ["en_GB", "en_IE"])
def test_the_british_day_is_written_as_babel_writes_it(locale: str) -> None:
    """Verify the Babel-free day ('Tuesday 1 December') matches Babel's on every day of a
    leap year."""
    from datetime import timedelta

    from babel.dates import format_date

    from mailer.model.composer import _fmt_day
    from mailer.model.settings import DAY_PATTERNS

    day = datetime(2028, 1, 1, 10, 0)
    for _ in range(366):
        assert _fmt_day(day, locale) == format_date(day, DAY_PATTERNS[locale], locale=locale)
        day += timedelta(days=1)


def test_headers_parsed_once_write_the_same_bytes_as_headers_parsed_each_time() -> None:
    """Verify reusing a parsed From/To/Date header for many messages writes exactly what
    parsing it afresh for each message writes: plain, non-ASCII and folded names alike."""
    from mailer.model import composer

    draft = compose_apology(Composer(), facts(), SENDER, AFTER)
    people = [
        ("Ana Ruiz", "ana.ruiz@acme.example"),
        ("Zoë Ñúñez-Łukasiewicz", "zoe@acme.example"),
        ("Dr " + "Verylongname " * 12, "dr@acme.example"),
        ("O'Brien, Pat", "pat@acme.example"),
    ]
    senders = [SENDER, SenderSettings(name="Søren Kierkegård", address="s@example.com")]

    def written(n: int) -> list[bytes]:
        out = []
        for _ in range(n):
            for name, to in people:
                for sender in senders:
                    f = facts(interviewer=name, to=to)
                    raw = build_message(draft, f, sender, AFTER).raw
                    out.append(
                        b"\r\n".join(x for x in raw.split(b"\r\n") if b"Message-ID" not in x)
                    )
        return out

    composer._header.cache_clear()
    composer._address_header.cache_clear()
    cached = written(3)
    assert composer._address_header.cache_info().hits > 0
    with pytest.MonkeyPatch.context() as m:
        m.setattr(composer, "_header", composer._header.__wrapped__)
        m.setattr(composer, "_address_header", composer._address_header.__wrapped__)
        m.setattr(composer, "_addresses_in", composer._addresses_in.__wrapped__)
        fresh = written(3)
    assert cached == fresh
    assert cached[0] == cached[len(people) * len(senders)]  # the second round, all from cache


def _old_body(body: str) -> str:
    """What _split made of a rendered body before its substitutions were skipped where they
    have nothing to do: the specification."""
    body = re.sub(r"[ \t]+\n", "\n", body)
    return re.sub(r"\n{3,}", "\n\n", body).strip("\n") + "\n"


_RENDERED = [" ", "\t", "\n", "\n\n\n", "a", "b c", "\r", "\u3000"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_RENDERED), max_size=40).map("".join))
def test_a_rendered_body_is_tidied_as_before_whether_or_not_there_is_anything_to_tidy(
    body: str,
) -> None:
    """Verify _split's body (blanks before line ends dropped, blank lines squeezed to one)
    is what the two substitutions always made, on many shapes of rendered text."""
    assert _split("t", f"Subject: x\n{body}").text == _old_body(body)


@settings(max_examples=300, deadline=None)
@given(st.datetimes(timezones=st.none() | st.timezones() | st.just(ZoneInfo("Europe/London"))))
def test_the_date_header_text_is_the_librarys_for_any_time_and_zone(when: datetime) -> None:
    """Verify the remembered Date text, keyed on the time's ISO text, is format_datetime's
    for naive times, fixed offsets and zones, the second time from memory too."""
    from email.utils import format_datetime

    from mailer.model.composer import _date_text

    assert _date_text(when.isoformat()) == format_datetime(when)
    assert _date_text(when.isoformat()) == format_datetime(when)


@settings(max_examples=300, deadline=None)
@given(
    day=st.sampled_from(["2026-12-07", "2026-02-30", "1969-12-31", "2026-13-01", "x"]),
    hours=st.sampled_from(["09:00-12:00", "12:00-09:00", "9:00-9:30", "25:00-26:00", "09-12"]),
    zone=st.sampled_from(["Europe/London", "America/New_York", "Pacific/Kiritimati", "UTC"]),
)
def test_a_remembered_free_time_is_the_one_read_afresh_in_the_very_zone_given(
    day: str, hours: str, zone: str
) -> None:
    """Verify parse_slot, which remembers what it read in a ZoneInfo, gives what reading
    afresh gives (the slot, or the same refusal), twice, with the very zone object it was
    handed, and keeps a distinct but equal-named zone apart."""
    from mailer.model.facts import _parse_slot, parse_slot

    text = f"{day} {hours}"
    for tz in (ZoneInfo(zone), ZoneInfo.no_cache(zone)):
        try:
            fresh: object = _parse_slot(text, tz, "--free")
        except InputError as exc:
            fresh = str(exc)
        for _ in range(2):
            try:
                got: object = parse_slot(text, tz, "--free")
            except InputError as exc:
                got = str(exc)
            assert got == fresh
            if not isinstance(got, str):
                assert got.start.tzinfo is tz and got.end.tzinfo is tz  # type: ignore[attr-defined]
