"""The apology check's work is linear: no regex reads more than a piece of a long sentence,
the patterns that backtracked are matchers that read each character a bounded number of
times, and the shortcuts change no finding."""

from __future__ import annotations

import re
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
