"""The apology check's work is linear: no regex reads more than a piece of a long sentence,
the patterns that backtracked are matchers that read each character a bounded number of
times, and the shortcuts change no finding."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.model import lint
from mailer.model.lint import lint_apology

from .conftest import run_cli

PIECE = 1000  # lint.MAX_PIECE
OK = (
    "Dear Ana,\n\nI am sorry I missed our interview because I was ill. I remain very "
    "interested in the Data Engineer role at Acme. Would it be possible to reschedule? "
    "Thank you for your understanding.\n\nSam\n"
)
# One sentence each (no '.', '!' or '?'), 50,000 characters: shapes that made a pattern
# backtrack over the rest of the sentence from every word, and an ordinary one.
LONG = {
    "words": "we spoke about the pipeline and the team and the plans for next year " * 700,
    "intensifiers": "so " * 16_000,
    "your-email": "your email " * 4_500,
    "request-verbs": "reply call me " * 3_500,
    "braces": "{{ x " * 10_000,
    "angle-spaces": "<A" + " " * 50_000 + "z",
    "told": "I was told " * 4_500,
}


class Counting:
    """A pattern that records the length of every text it is asked to read."""

    def __init__(self, pattern: Any, reads: list[int]) -> None:
        self.pattern, self.reads = pattern, reads

    def search(self, text: str, *args: Any) -> Any:
        self.reads.append(len(text))
        return self.pattern.search(text, *args)

    def finditer(self, text: str, *args: Any) -> Any:
        self.reads.append(len(text))
        return self.pattern.finditer(text, *args)


@pytest.mark.parametrize("shape", LONG)
def test_no_sentence_pattern_reads_more_than_a_piece_of_a_long_sentence(
    monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    """Verify every tone and placeholder regex is handed at most 1,000 characters at a time
    and about the text's length in all, however long the sentence."""
    reads: list[int] = []

    def counting(patterns: Any) -> tuple[Any, ...]:
        return tuple(Counting(p, reads) if isinstance(p, re.Pattern) else p for p in patterns)

    monkeypatch.setattr(
        lint, "_TONE_CHECKS", tuple((r, counting(ps), x) for r, ps, x in lint._TONE_CHECKS)
    )
    monkeypatch.setattr(lint, "_PLACEHOLDERS", counting(lint._PLACEHOLDERS))
    monkeypatch.setattr(lint, "_NEGATION_BEFORE", Counting(lint._NEGATION_BEFORE, reads))
    for name in ("_ANY_TONE", "_ANY_PLACEHOLDER"):
        if hasattr(lint, name):
            monkeypatch.setattr(lint, name, Counting(getattr(lint, name), reads))
    text = LONG[shape]
    lint_apology("Sorry", OK + text, company="Acme", role="Data Engineer", note="")
    patterns = sum(len(ps) for _, ps, _ in lint._TONE_CHECKS) + len(lint._PLACEHOLDERS) + 3
    assert max(reads) <= PIECE
    assert sum(reads) <= 2 * patterns * (len(OK) + len(text))


# The regexes as they were: the specification the linear matchers must meet.
INTENSIFIER = r"(?:so|very|really|terribly|truly|deeply|awfully|incredibly|extremely|sincerely)"
GROVEL = re.compile(rf"\b(?:{INTENSIFIER},?\s+){{2,}}(?:sorry|apologetic)\b", re.I)
YOUR_THING_BLAMED = re.compile(
    r"\byour (?:directions|instructions|email|emails|invitation|invite|link|address|calendar|"
    r"system|software|website|receptionist|recruiter|colleague|office|team|map|booking)\b"
    r"(?=[^.!?\n]*\b(?:wrong|unclear|confusing|incorrect|misleading|broken|vague|didn't|"
    r"did not|never|failed|wasn't|was not|fault|blame|mistake|error|hard to|impossible|"
    r"lost)\b)",
    re.I,
)
LEGAL_SUFFIX = re.compile(
    r"[\s,]+(?:ltd|limited|inc|plc|llc|gmbh|ag|sa|bv|co|corp|corporation)\.?$", re.I
)


def span(m: Any) -> tuple[int, int] | None:
    return None if m is None else (m.start(), m.end())


def phrases(*words: str) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(words), max_size=14).map("".join)


@settings(max_examples=400, deadline=None)
@given(phrases("so ", "So, ", "very ", "really  ", "sorry", "apologetic", " ", "\n", "also ", "x"))
def test_the_backward_matcher_finds_what_the_intensifier_regex_found(text: str) -> None:
    """Verify the reversed-text matcher returns the same first match as the old regex."""
    matcher = next(p for p in lint._GROVEL_RE if not isinstance(p, re.Pattern))
    assert span(matcher.search(text)) == span(GROVEL.search(text))


@settings(max_examples=400, deadline=None)
@given(
    phrases(
        "your email ", "Your link", " was ", "wrong", " never ", "did not", ". ", "!", "\n",
        "x ", "yours ", "emailwrong ", " hard to ",
    )
)  # fmt: skip
def test_the_clause_matcher_finds_what_the_lookahead_regex_found(text: str) -> None:
    """Verify the two-pass matcher returns the same first match as the old lookahead regex."""
    matcher = next(p for p in lint._BLAME_RE if not isinstance(p, re.Pattern))
    assert span(matcher.search(text)) == span(YOUR_THING_BLAMED.search(text))


@settings(max_examples=300, deadline=None)
@given(phrases("Acme", " ", ",", "\t", "Ltd", "ltd.", "Co", "x", " Inc", ".", "Corp "))
def test_the_legal_suffix_is_removed_as_before(company: str) -> None:
    """Verify the linear suffix regex removes exactly what the old one did."""
    assert lint._LEGAL_SUFFIX.sub("", company) == LEGAL_SUFFIX.sub("", company)


WORDS = [
    "I", "you", "your", "must", "need", "to", "ASAP", "please", "reply", "immediately",
    "not", "my", "fault", "nobody", "told", "me", "email", "was", "wrong", "so", "very",
    "sorry", "traffic", "terrible", "[Your Name]", "{{ x }}", "TBD", "interested", "role",
    "reschedule", "thank", "ill", ",", ".", "!", "?", "\n", "\n\n", "> quoted", "- item",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(WORDS), max_size=60).map(" ".join))
def test_the_shortcuts_change_no_finding(text: str) -> None:
    """Verify the one-regex shortcut per sentence finds exactly what checking every pattern
    on every sentence finds."""
    fast = lint_apology("Sorry", text, company="Acme", role="Data Engineer", note="")
    with pytest.MonkeyPatch.context() as m:
        everything = re.compile("")
        m.setattr(lint, "_ANY_TONE", everything)
        m.setattr(lint, "_ANY_PLACEHOLDER", everything)
        slow = lint_apology("Sorry", text, company="Acme", role="Data Engineer", note="")
    assert fast == slow


@pytest.mark.parametrize(
    "phrase",
    ["I need you to reply", "it was not my fault", "your email was wrong", "so very sorry"],
)
def test_a_finding_is_found_wherever_it_sits_in_a_long_sentence(phrase: str) -> None:
    """Verify a phrase is found at every offset of a sentence many pieces long, across the
    cuts between pieces too."""
    filler = "and then we talked about data "
    expected = {f.rule for f in lint_apology("", phrase, company="", role="", note=None)}
    for offset in range(0, 4000, 37):
        words = (filler * 200)[:offset].rsplit(" ", 1)[0]
        text = f"{words} {phrase} {filler * 50}"
        found = {f.rule for f in lint_apology("", text, company="", role="", note=None)}
        assert expected <= found, (offset, expected - found)


def test_lint_refuses_oversized_facts_and_files(tmp_path: Path) -> None:
    """Verify 'mailer lint FILE' refuses a company of 100,000 characters and a file over
    1 MB with one line each, before checking anything."""
    apology = tmp_path / "apology.txt"
    apology.write_text(OK)
    r = run_cli(tmp_path, "lint", str(apology), "--company", "Acme" + " " * 100_000 + "Ltd")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "mailer: error: --company: is 100,007 characters long; at most 200 are allowed"
    ]
    apology.write_text(OK + "x" * 1_000_001)
    r = run_cli(tmp_path, "lint", str(apology))
    assert (
        r.returncode == 2 and f"is {len(OK) + 1_000_001:,} bytes; at most 1,000,000 are" in r.stderr
    )


def test_cache_keys_tell_objects_apart_by_identity_not_equality() -> None:
    """Verify each object gets one cache key part, kept for it, and that two equal but
    distinct objects (a table swapped in, say) get two."""
    table, twin = [re.compile("x")], [re.compile("x")]
    assert table == twin
    assert lint._same(table) is lint._same(table)
    assert lint._same(table) is not lint._same(twin)
    assert lint._same(table) != lint._same(twin)
    assert lint._same(table).value is table


def test_a_sentence_is_judged_again_under_a_swapped_gate() -> None:
    """Verify a tone answer remembered for a sentence is not reused once a gate is swapped
    for one that lets nothing through, nor lost once the original is back."""
    sentence = "I need you to reply to me ASAP about this."

    def rules() -> set[str]:
        return {f.rule for f in lint_apology("", sentence, company="", role="", note=None)}

    assert "demanding-tone" in rules()
    with pytest.MonkeyPatch.context() as m:
        m.setattr(lint, "_ANY_TONE", re.compile(r"(?!)"))
        assert "demanding-tone" not in rules()
    assert "demanding-tone" in rules()


@pytest.mark.parametrize(
    ("source", "letters"),
    [
        (r"\bI need you to\b", {"i"}),
        (r"(?<!\bif )(?<!n't )\byou (?:have|need) to\b", {"y"}),
        (r"\b(?:it is|it's|(?:this|that) is) urgent\b", {"i", "t"}),
        (r"\bI(?: am|'m) an? idiot\b", {"i"}),
        (r"a+b", {"a"}),
        # What it cannot read for sure: no letters, so every word start tries it.
        (r"a?b", None),
        (r"a*b", None),
        (r"a{0,2}b", None),
        (r"(?:ab)?c", None),
        (r"(?:a|)b", None),
        (r"[ab]c", None),
        (r"\w+", None),
        (r"a|\d", None),
        (r"(?i)abc", None),
        (r"(?:a|b[)]|c)", {"a", "b", "c"}),  # a ")" in a class closes no group
        (r"(?:é|e)", None),
        (r"(?:a", None),
    ],
)
def test_the_tone_gate_reads_first_letters_only_where_it_is_sure(
    source: str, letters: set[str] | None
) -> None:
    """Verify _first_letters reads the letter (or letters) a pattern's match must start with
    through lookbehinds, a \\b and groups of alternatives, and says None wherever the first
    character could be anything else."""
    found = lint._first_letters(source)
    assert (None if found is None else set(found)) == letters


TONE_WORDS = [
    *WORDS, "ASAP", "urgent", "URGENT", "it's", "your", "job", "blame", "the", "traffic",
    "was", "terrible", "ſorry", "Sorry", "SORRY", "ıt", "İt", "I", "ı", "İ", "\u212aeen",
    "owe", "me", "demand", "insist", "if", "do", "should", "have", "to", "nothing", "could",
    "done", "grovelling", "é", "ﬁne",
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TONE_WORDS), max_size=30).map(" ".join))
def test_the_word_by_word_tone_gate_answers_as_one_alternation_does(text: str) -> None:
    """Verify the tone gate, trying at each word start only the patterns that can start
    there, matches exactly the texts one alternation of every tone pattern matches, letters
    outside ASCII that case-fold to ASCII ones ('ſ', 'ı', 'İ', the Kelvin sign) included."""
    gate = lint._get("_ANY_TONE")
    whole = lint._any_of(gate._everything, r"\b(?=[^\W\d_])")
    assert (gate.search(text) is None) == (whole.search(text) is None)


# --- the check of the whole body, as it was: the specification of the paragraph by paragraph
# one (lint_apology before its paragraphs were remembered, with the helpers it alone used).


def whole_body_lint(
    subject: str,
    text: str,
    *,
    company: str,
    role: str,
    note: str | None = "",
    kind: str = "apology",
    past: bool | None = None,
) -> list[lint.Finding]:
    body = lint._unquoted(text)
    sentences = old_sentences(body)
    subject_line = [f"Subject: {subject}"] if subject.strip() else []
    findings: list[lint.Finding] = []
    findings += old_elements(body, sentences, kind=kind, company=company, role=role)
    findings += lint._placeholders(subject_line + sentences)
    findings += old_length(body, kind)
    findings += lint._tone(subject_line + sentences)
    findings += [f for s in subject_line + sentences for f in lint._slips(s)]
    findings += old_apology_count(body)
    if stacked := list(old_excuse_count(sentences)):
        findings = [f for f in findings if f.rule != "excuse-making"] + stacked
    findings += lint._passive(sentences)
    if kind == "apology" and note is not None:
        findings += lint._note(body, note)
        if past is not None:
            findings += lint._note_tense(note, past)
    return sorted(findings, key=lambda f: lint._RANK[f.severity])


def old_elements(
    body: str, sentences: list[str], *, kind: str, company: str, role: str
) -> Iterator[lint.Finding]:
    text = lint._norm(body)
    fill = {"company": company, "role": role}
    if kind == "apology":
        if not lint._found("_REASON", text):
            yield lint._finding(
                "missing-reason", "No reason is given for missing or moving the interview."
            )
        if not lint._found("_REGRET", text):
            yield lint._finding("missing-regret", "The message never says sorry (or apologises).")
    if not lint._found("_INTEREST", text):
        yield lint._finding(
            "missing-interest",
            "The message does not say you are still interested in the role.",
            **fill,
        )
    else:
        yield from lint._interest_specific(sentences, company, role)
    if not lint._found("_RESCHEDULE", text):
        yield lint._finding("missing-reschedule", "The message does not ask to reschedule.")
    if not lint._found("_THANKS", text):
        yield lint._finding("missing-thanks", "The message does not thank the reader.")


def old_length(body: str, kind: str) -> Iterator[lint.Finding]:
    words = lint.word_count(body)
    warn, error = lint.WORD_BUDGET[kind]
    if words > error:
        yield lint._finding(
            "too-long", f"The body is {words} words; keep it under {warn} (limit {error})."
        )
    elif words > warn:
        yield lint._finding("long-message", f"The body is {words} words; aim for {warn} or fewer.")


def old_apology_count(body: str) -> Iterator[lint.Finding]:
    count = len(lint._get("_REGRET").findall(lint._norm(body)))
    if count > lint.MAX_APOLOGY_WORDS:
        yield lint._finding(
            "over-apologising",
            f"{count} apologies ('sorry', 'apologise', 'regret'); {lint.MAX_APOLOGY_WORDS} at "
            "most reads as sincere.",
        )


def old_excuse_count(sentences: list[str]) -> Iterator[lint.Finding]:
    found = [
        s
        for s in sentences
        if lint._gate(lint._get("_ANY_TONE"), norm := lint._norm(s))
        and any(lint._search(p, norm) for p in lint._get("_EXCUSE_RE"))
    ]
    if len(found) > lint.MAX_EXCUSES:
        yield lint._finding(
            "stacked-excuses",
            f"{len(found)} sentences make excuses; more than {lint.MAX_EXCUSES} reads as arguing "
            "the point.",
            found[0],
        )


def old_sentences(body: str) -> list[str]:
    out: list[str] = []
    for paragraph in re.split(r"\n\s*\n", body):
        pending: list[str] = []
        for line in (ln.strip() for ln in paragraph.splitlines()):
            if not line:
                continue
            if lint._get("_LIST_ITEM").match(line):
                out += old_split_sentences(" ".join(pending))
                pending = []
                out.append(line)
            else:
                pending.append(line)
        out += old_split_sentences(" ".join(pending))
    return out


def old_split_sentences(text: str) -> list[str]:
    return [s for s in lint._get("_SENTENCE_END").split(text) if s.strip()]


PARAGRAPH_PIECES = [
    *TONE_WORDS, "because", "ill", "apologise", "thank", "thanks", "grateful", "another",
    "time", "keen", "interested", "Acme", "Acme Ltd", "Data Engineer", "role", "position",
    "the interview was missed", "traffic was terrible", "nothing I could do", "to be fair",
    "’", "‘", "-", "- ", "* ", "1. ", "  - Monday 7 December", "\n", "\n\n", "\n \n",
    "\n\t\n", "\r\n", "\r\n\r\n", "\n\n\n", "\u2028", "\x0c", "\x1c", "\x85", "> quoted",
    "\n> quoted\n", "Subject: x", "[Your Name]", "{{ x }}", "TBD",
]  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(
    text=st.lists(st.sampled_from(PARAGRAPH_PIECES), max_size=50).map(" ".join),
    subject=st.sampled_from(["", "Sorry", "URGENT: [Company]", "Missed interview at Acme"]),
    company=st.sampled_from(["", "Acme", "Acme Ltd"]),
    note=st.sampled_from([None, "", "ok", "I could not attend.", "I will not be able to attend"]),
    kind=st.sampled_from(lint.KINDS),
    past=st.sampled_from([None, True, False]),
)
def test_the_check_by_paragraph_finds_what_the_check_of_the_whole_body_found(
    text: str, subject: str, company: str, note: str | None, kind: str, past: bool | None
) -> None:
    """Verify lint_apology, which reads a body paragraph by paragraph and remembers each
    paragraph's answers, returns the very findings (same order) the checks of the whole
    body return, on a first reading and on a second one from its memory."""
    args = {"company": company, "role": "Data Engineer", "note": note, "kind": kind, "past": past}
    whole = whole_body_lint(subject, text, **args)  # type: ignore[arg-type]
    assert lint_apology(subject, text, **args) == whole  # type: ignore[arg-type]
    assert lint_apology(subject, text, **args) == whole  # type: ignore[arg-type]


def test_a_paragraph_is_read_again_under_a_swapped_table() -> None:
    """Verify a paragraph's remembered answers are not reused once a table it was read with
    is swapped (here the key-element regex for regret), nor lost once the original is back."""
    text = "I am sorry I missed it.\n\nThank you."

    def rules() -> set[str]:
        return {f.rule for f in lint_apology("", text, company="", role="", note=None)}

    assert "missing-regret" not in rules()
    with pytest.MonkeyPatch.context() as m:
        m.setattr(lint, "_REGRET", re.compile(r"(?!)"))
        assert "missing-regret" in rules()
    assert "missing-regret" not in rules()


def test_a_campaigns_differing_paragraph_is_searched_only_for_what_the_shared_ones_lack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Verify that, once a campaign's shared paragraphs hold their answers, the paragraph
    naming each entry's company is searched for the one key element they lack (interest),
    not for the four they have: a failed search reads its whole line, for every entry."""
    asked: list[tuple[str, str]] = []
    found = lint._found

    def counting(name: str, text: str) -> bool:
        asked.append((name, text))
        return found(name, text)

    monkeypatch.setattr(lint, "_found", counting)

    def body(i: int) -> str:
        return (
            f"Dear Ana,\n\nI remain very interested in the role at Firm {i:04d}.\n\n"
            "I am sorry: I was ill and missed our interview.\n\n"
            "Could we reschedule? Thank you for your time.\n"
        )

    for i in range(2):  # the shared paragraphs' answers are found, and kept
        lint_apology("Missed interview", body(i), company=f"Firm {i:04d}", role="", note=None)
    asked.clear()
    for i in range(2, 6):
        findings = lint_apology(
            "Missed interview", body(i), company=f"Firm {i:04d}", role="", note=None
        )
        assert not [f for f in findings if f.rule.startswith("missing-")]
    differing = sorted({name for name, text in asked if "Firm" in text})
    assert differing == ["_INTEREST"], asked
