"""Header values and body values: one rule each, applied at every entry point (CLI facts and
--var, campaign entries and CSV cells, config senders), and the composer's own check of the
bytes it writes."""

from __future__ import annotations

import functools
import textwrap
from dataclasses import replace
from datetime import datetime
from email.header import decode_header
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailer.adapters.config import load_settings
from mailer.errors import ConfigError, InputError, TemplateError
from mailer.model.composer import Composer, Draft, build_message, compose_apology
from mailer.model.facts import make_facts
from mailer.model.settings import SenderSettings
from mailer.model.values import NAME_MAX, NOTE_MAX, PHONE_MAX, VAR_MAX, has_encoded_word

from .test_campaign_file import load as load_campaign_file

TZ = ZoneInfo("Europe/London")
AFTER = datetime(2026, 11, 25, 15, 0, tzinfo=TZ)
SENDER = SenderSettings(name="Sam Candidate", address="sam@example.com")
# The value, and the same attack spelt in the other ways RFC 2047 allows.
ENCODED = [
    "=?utf-8?q?Ivy=0D=0AReply-To:_evil@attacker.test?=",
    "=?UTF-8?Q?Ivy=0AReply-To:_evil@attacker.test?=",
    "=?utf-8?b?SXZ5DQpSZXBseS1UbzogZXZpbEBhdHRhY2tlci50ZXN0?=",
    "Ana =?iso-8859-1?q?Ruiz=0D=0ABcc:_x@attacker.test?= Ltd",
    "=?utf-8*en?q?Ivy=0D=0AX-Evil:_1?=",
    "Acme=?utf-8?q?=00?=",
]
# C0 (but TAB), DEL, C1, and the Unicode line and paragraph separators.
CONTROLS = ["\x00", "\x01", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\x9b", "\u2028", "\u2029"]
HEADER_FACTS = ["interviewer", "company", "role", "interviewer_phone", "var"]


def facts(**kw: object):
    base: dict[str, object] = {
        "situation": "illness",
        "to": "ana.ruiz@acme.example",
        "interviewer": "Ana Ruiz",
        "company": "Acme",
        "role": "Data Engineer",
        "interview": "2026-11-25 10:00",
        "tz": TZ,
    }
    return make_facts(**{**base, **kw})  # type: ignore[arg-type]


def with_fact(field: str, value: str):
    return facts(var=[f"team={value}"]) if field == "var" else facts(**{field: value})


def option(field: str) -> str:
    return "--var team" if field == "var" else "--" + field.replace("_", "-")


@pytest.mark.parametrize("value", ENCODED)
@pytest.mark.parametrize("field", [*HEADER_FACTS, "note"])
def test_encoded_words_are_refused_in_every_fact(field: str, value: str) -> None:
    """Verify an RFC 2047 encoded word is refused in any fact, naming the option."""
    if field == "interviewer_phone":
        value = value[: PHONE_MAX - 1]  # keep under the phone's length limit
        value = value if has_encoded_word(value) else "=?utf-8?q?=0A?="
    with pytest.raises(InputError, match=f"{option(field)}: contains RFC 2047 encoded-word"):
        with_fact(field, value)


@pytest.mark.parametrize("char", [*CONTROLS, "\r", "\n"])
@pytest.mark.parametrize("field", HEADER_FACTS)
def test_control_characters_are_refused_in_header_facts(field: str, char: str) -> None:
    """Verify NUL, the other C0 and C1 controls and line breaks are refused in a header fact."""
    with pytest.raises(InputError, match=rf"{option(field)}: contains (the control|a line)"):
        with_fact(field, f"Ana{char}Ruiz")


@pytest.mark.parametrize("char", [*CONTROLS, "\r"])
def test_body_facts_refuse_control_characters_but_lf(char: str) -> None:
    """Verify the note refuses control characters (CR included) other than LF and TAB."""
    with pytest.raises(InputError, match=r"--note: contains (the control|a carriage|a line or)"):
        facts(note=f"First line{char}second line")


def test_tab_is_allowed_everywhere_and_lf_in_the_note() -> None:
    """Verify TAB in a header fact and LF in the note are kept."""
    f = facts(interviewer="Ana\tRuiz", note="One line.\nAnother\tline.", var=["team=Data\tOps"])
    assert (f.interviewer, f.note, f.extra["team"]) == (
        "Ana\tRuiz",
        "One line.\nAnother\tline.",
        "Data\tOps",
    )


@pytest.mark.parametrize(
    ("field", "limit"),
    [
        ("interviewer", NAME_MAX),
        ("company", NAME_MAX),
        ("role", NAME_MAX),
        ("interviewer_phone", PHONE_MAX),
        ("var", VAR_MAX),
        ("note", NOTE_MAX),
    ],
)
def test_facts_longer_than_their_limit_are_refused(field: str, limit: int) -> None:
    """Verify each fact's length limit: the limit is accepted, one more is refused, and a
    10 MB value gets the same one-line refusal without being quoted back."""
    assert with_fact(field, "a" * limit)
    with pytest.raises(InputError, match=f"{option(field)}: is {limit + 1:,} characters"):
        with_fact(field, "a" * (limit + 1))
    with pytest.raises(InputError) as huge:
        with_fact(field, "a" * 10_000_000)
    assert str(huge.value) == (
        f"{option(field)}: is 10,000,000 characters long; at most {limit:,} are allowed"
    )


@pytest.mark.parametrize("field", ["free", "cc", "var", "alt_address", "alt_domain"])
def test_lists_with_too_many_items_are_refused_before_their_items_are_read(field: str) -> None:
    """Verify a list fact with over 50 items is one problem, and its items are not parsed."""
    with pytest.raises(InputError) as exc:
        facts(**{field: ["not valid"] * 10_000})
    assert exc.value.problems == [  # type: ignore[attr-defined]
        f"--{field.replace('_', '-')}: 10,000 given; at most 50 are allowed"
    ]


def test_a_refused_value_is_never_quoted_back_whole() -> None:
    """Verify every problem with 10 MB values stays one short line."""
    huge = "x\x1b" * 5_000_000
    with pytest.raises(InputError) as exc:
        facts(situation=huge, interview=huge, free=[huge], to=huge, interviewer_tz=huge)
    assert len(exc.value.problems) == 5  # type: ignore[attr-defined]
    assert all(len(p) < 300 for p in exc.value.problems)  # type: ignore[attr-defined]
    assert "\x1b" not in str(exc.value)


def write_config(tmp_path: Path, sender: str, account_sender: str = "") -> Path:
    path = tmp_path / "config" / "mailer.toml"
    path.parent.mkdir(parents=True)
    path.write_text(
        textwrap.dedent("""\
            [sender]
            address = "sam@sandbox.test"
            """)
        + sender
        + textwrap.dedent("""
            [smtp]
            host = "127.0.0.1"
            [imap]
            host = "127.0.0.1"
            [accounts.bea.sender]
            address = "bea@sandbox.test"
            """)
        + account_sender
        + '[accounts.bea.smtp]\nhost = "127.0.0.1"\n[accounts.bea.imap]\nhost = "127.0.0.1"\n',
        encoding="utf-8",
    )
    return path


def test_config_sender_values_follow_the_header_and_body_rules(tmp_path: Path) -> None:
    """Verify [sender] and [accounts.NAME.sender]: encoded words, control characters and
    over-long values are each reported with file and key, all at once."""
    path = write_config(
        tmp_path,
        f'name = "{ENCODED[0]}"\nphone = "+44\\u001b[2J"\nsignature = "Sam\\r\\nBcc: x"\n',
        f'name = "{"B" * 1_000_000}"\n',
    )
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    assert exc.value.problems == [
        f"{path}: sender.name: contains RFC 2047 encoded-word syntax ('=?...?='), which mail "
        "programs would decode; write the text itself",
        f"{path}: sender.phone: contains the control character U+001B",
        f"{path}: sender.signature: contains a carriage return",
        f"{path}: accounts.bea.sender.name: is 1,000,000 characters long; at most 200 are allowed",
    ]


def test_config_signature_may_span_lines(tmp_path: Path) -> None:
    """Verify LF stays allowed in the signature, which only goes into the body."""
    path = write_config(tmp_path, 'name = "Sam"\nsignature = "Sam\\nData Engineer"\n', 'name="B"\n')
    assert load_settings(path).sender.signature == "Sam\nData Engineer"


def test_campaign_entries_and_csv_cells_follow_the_same_rules(tmp_path: Path) -> None:
    """Verify campaign keys (sender_name, signature, company, vars) and CSV cells (var.NAME)
    are refused like the CLI's facts, each problem naming its entry and key."""
    csv = (
        "to,company,interview,var.team,sender_phone\n"
        f'c@sandbox.test,Acme,2026-11-20 10:00,"{ENCODED[2]}",+44\n'
        "d@sandbox.test,Acme,2026-11-20 11:00,Data,+44\x1b[2J\n"
    )
    body = (
        '[campaign]\nentries_csv = "people.csv"\n'
        '[[entries]]\nto = "a@sandbox.test"\ncompany = "Acme"\ninterview = "2026-11-20 09:00"\n'
        f'sender_name = "{ENCODED[0]}"\nsignature = "Sam\\u0000"\n'
        '[[entries]]\nto = "b@sandbox.test"\ninterview = "2026-11-20 09:30"\n'
        f'company = "{ENCODED[3]}"\nvars = {{ team = "{"x" * 501}" }}\n'
    )
    campaign, _ = load_campaign_file(tmp_path, body, {"people.csv": csv.encode()})
    problems = "\n".join(campaign.problems)
    for needle in (
        "entry a@sandbox.test: sender_name: contains RFC 2047 encoded-word",
        "entry a@sandbox.test: signature: contains the control character U+0000",
        "entry b@sandbox.test: company: contains RFC 2047 encoded-word",
        "entry b@sandbox.test: var team: is 501 characters long",
        "people.csv:2: entry c@sandbox.test: var team: contains RFC 2047 encoded-word",
        "people.csv:3: entry d@sandbox.test: sender_phone: contains the control character U+001B",
    ):
        assert needle in problems, (needle, problems)
    assert campaign.entries == [] and campaign.invalid == 4


@functools.cache  # frozen values; compiling the templates was most of the property tests' time
def draft_and_facts():
    f = facts()
    return compose_apology(Composer(), f, SENDER, AFTER), f


@pytest.mark.parametrize("value", [ENCODED[0], ENCODED[2], "Ivy\r\nReply-To: x@y", "Ivy\x00"])
def test_composer_refuses_bad_header_values_however_the_facts_were_built(value: str) -> None:
    """Verify build_message itself refuses a bad interviewer, sender name or subject, even
    from Facts, SenderSettings or a Draft made without the entry checks."""
    draft, f = draft_and_facts()
    with pytest.raises(InputError, match="--interviewer: contains"):
        build_message(draft, replace(f, interviewer=value), SENDER, AFTER)
    with pytest.raises(InputError, match=r"sender\.name: contains"):
        build_message(draft, f, replace(SENDER, name=value), AFTER)
    with pytest.raises(TemplateError, match=r"template illness\.txt\.j2: the subject contains"):
        build_message(replace(draft, subject=f"Sorry {value}"), f, SENDER, AFTER)


def test_composer_refuses_a_name_that_cannot_fit_a_header_line() -> None:
    """Verify a 5,000-character name is refused, and a 998-character unbroken one (which
    cannot be folded) is refused by reading the written header back."""
    draft, f = draft_and_facts()
    with pytest.raises(InputError, match="--interviewer: is 5,000 characters long"):
        build_message(draft, replace(f, interviewer="A" * 5000), SENDER, AFTER)
    with pytest.raises(InputError, match=r"--interviewer: too long for one header line \(999"):
        build_message(draft, replace(f, interviewer="A" * 998), SENDER, AFTER)


def test_a_template_subject_with_an_encoded_word_is_refused(tmp_path: Path) -> None:
    """Verify a company or --var that a template puts in the Subject is refused as a fact,
    and the composer refuses the rendered subject when the facts skipped that check."""
    (tmp_path / "illness.txt.j2").write_text(
        "Subject: {{ company }} {{ team }}\n\nDear {{ interviewer }},\n"
    )
    with pytest.raises(InputError, match="--var team: contains RFC 2047"):
        facts(var=[f"team={ENCODED[0]}"])
    f = replace(facts(var=["team=Data"]), company=ENCODED[0])
    with pytest.raises(TemplateError, match=r"template illness\.txt\.j2: the subject contains RFC"):
        build_message(compose_apology(Composer(tmp_path), f, SENDER, AFTER), f, SENDER, AFTER)


TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from(list('=?qQbB_:-\r\n\t \x00\x85Aé😀@<>",\\')), max_size=60),
    st.sampled_from(ENCODED),
    st.integers(min_value=0, max_value=2000).map(lambda n: "W" * n),
    st.integers(min_value=0, max_value=1200).map(lambda n: "Wörd " * n),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(interviewer=TEXT, sender_name=TEXT, subject=TEXT)
def test_written_header_holds_only_our_headers_in_lines_of_at_most_998_octets(
    interviewer: str, sender_name: str, subject: str
) -> None:
    """Verify, for any names and subject, that build_message either refuses or writes only
    the headers it set, each once, no line over 998 octets, To and From our addresses."""
    draft, f = draft_and_facts()
    try:
        m = build_message(
            Draft(subject=subject, text=draft.text, template=draft.template),
            replace(f, interviewer=interviewer),
            replace(SENDER, name=sender_name),
            AFTER,
        )
    except (InputError, TemplateError):
        return
    head = m.raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert max(len(line) for line in head) <= 998
    names = [line.split(b":", 1)[0] for line in head if line[:1] not in (b" ", b"\t")]
    assert sorted(names) == sorted(
        [
            b"From",
            b"To",
            b"Subject",
            b"Date",
            b"Message-ID",
            b"MIME-Version",
            b"Content-Type",
            b"Content-Transfer-Encoding",
        ]
    )
    from email import message_from_bytes
    from email.policy import default

    parsed = message_from_bytes(m.raw, policy=default)
    assert [a.addr_spec for a in parsed["To"].addresses] == [f.to]
    assert [a.addr_spec for a in parsed["From"].addresses] == [SENDER.address]


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("=?qQbBu8tf-_*aA=0DX")), max_size=40))
def test_text_without_encoded_word_syntax_is_never_decoded_by_the_email_library(
    text: str,
) -> None:
    """Verify the syntax check covers the library's decoder: what it lets through, the
    email library leaves as it is."""
    if not has_encoded_word(text):
        assert decode_header(text) == [(text, None)]


@settings(max_examples=400, deadline=None)
@given(
    value=st.lists(
        st.sampled_from(["Ana", " ", "\t", "\n", "\r", "\x00", "\x85", "\u2028", "=?", "?=",
                         "utf-8?q?", "=0D=0A", "é", "x" * 120]),
        max_size=6,
    ).map("".join),
    limit=st.sampled_from([5, 50, 200, 998]),
)  # fmt: skip
def test_a_remembered_header_answer_is_the_answer_worked_out_again(value: str, limit: int) -> None:
    """Verify header_problem, which remembers its answers for short values, says what the
    check says when worked out afresh, for the same value under every limit, twice."""
    from mailer.model import values

    fresh = values._length_problem(value, limit) or values._header_problem(value)
    assert values.header_problem(value, limit) == fresh
    assert values.header_problem(value, limit) == fresh
