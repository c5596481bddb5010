"""The apology check: is a drafted message fit to send? Pure: text in, findings out.

``lint_apology`` reads a subject and body and returns :class:`Finding` objects, errors first.
An error blocks sending unless the user forces it; a warning is only shown. Every rule, its
severity and its thresholds are listed in ``RULES`` and explained in ``docs/apology-check.md``.

Lines quoted with ``>`` (an earlier message below a reply) are not checked.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple, Protocol

ERROR = "error"
WARNING = "warning"
# A way to make a sound message better (no personal note): shown, never a problem.
SUGGESTION = "suggestion"
KINDS = ("apology", "follow_up")

# Body words: above the first number is a warning, above the second an error.
WORD_BUDGET: dict[str, tuple[int, int]] = {"apology": (250, 400), "follow_up": (150, 250)}
# More apology words than this in one body reads as grovelling.
MAX_APOLOGY_WORDS = 3
# This many excuse phrases in one body is an error, not a warning each.
MAX_EXCUSES = 2
# A note this short is a slip of the keyboard ("." or "ok"), not something to send.
MIN_NOTE_CHARS = 3


@dataclass(frozen=True)
class Rule:
    """One check: its id, how serious it is, what it means and the usual fix."""

    id: str
    severity: str
    title: str
    fix: str


@dataclass(frozen=True)
class Finding:
    """One problem found in a message. ``excerpt`` is the offending sentence, when there is one."""

    rule: str
    severity: str
    message: str
    fix: str
    excerpt: str = ""


_RULE_LIST = (
    Rule(
        "missing-reason",
        ERROR,
        "no reason is given for missing or moving the interview",
        "Add one short, honest sentence saying why, e.g. 'I was taken ill that morning.'",
    ),
    Rule(
        "missing-regret",
        ERROR,
        "the message never says sorry",
        "Say it once, plainly: 'I am sorry for the inconvenience this caused.'",
    ),
    Rule(
        "missing-interest",
        ERROR,
        "the message does not say you still want the role",
        "Add: 'I remain very interested in the {role} role at {company}.'",
    ),
    Rule(
        "interest-not-specific",
        WARNING,
        "your interest is not tied to the company and the role",
        "Name both next to your interest: 'I remain very interested in the {role} role at "
        "{company}.'",
    ),
    Rule(
        "missing-reschedule",
        ERROR,
        "the message does not ask for another time",
        "Ask: 'Would it be possible to reschedule at a time that suits you?'",
    ),
    Rule(
        "missing-thanks",
        ERROR,
        "the message does not thank the reader",
        "End with: 'Thank you for your understanding and for your time.'",
    ),
    Rule(
        "other-language",
        WARNING,
        "the message is not in English, and the check of its key elements reads English only",
        "Check by hand that it gives a reason, says sorry, says you still want the {role} "
        "role at {company}, asks for another time, and thanks them.",
    ),
    Rule(
        "placeholder",
        ERROR,
        "a placeholder was left in the text",
        "Replace it with the real detail, or delete it.",
    ),
    Rule(
        "long-message",
        WARNING,
        "the body is longer than a concise apology should be",
        "Cut it to the five elements (reason, sorry, interest, new time, thanks); one "
        "sentence each is enough.",
    ),
    Rule(
        "too-long",
        ERROR,
        "the body is far too long to be read on a busy day",
        "Cut it to the five elements (reason, sorry, interest, new time, thanks); one "
        "sentence each is enough.",
    ),
    Rule(
        "demanding-tone",
        ERROR,
        "demanding or entitled wording",
        "Ask, and let them choose: 'Would it be possible to find another time that suits you?'",
    ),
    Rule(
        "pushy-timing",
        WARNING,
        "pressing the reader to act at once",
        "Leave the timing to them: 'whenever suits you' instead of 'immediately'.",
    ),
    Rule(
        "blame-shifting",
        ERROR,
        "the wording puts the fault on someone else",
        "Own what happened in one sentence, without pointing at anyone: 'I misread the time, "
        "and I am sorry.'",
    ),
    Rule(
        "excuse-making",
        WARNING,
        "the wording excuses rather than explains",
        "State the reason plainly once, and do not argue it was unavoidable.",
    ),
    Rule(
        "stacked-excuses",
        ERROR,
        "three or more excuses in one message",
        "Give one reason, once, and own the rest: 'I was held up, and I should have allowed "
        "more time.'",
    ),
    Rule(
        "passive-missed",
        WARNING,
        "the passive 'the interview was missed' owns nothing",
        "Say who missed it: 'I missed our interview.'",
    ),
    Rule(
        "tense-mismatch",
        ERROR,
        "the note's tense contradicts the message: the interview is past in one, ahead in the "
        "other",
        "Write the note for an interview that is {tense}: e.g. '{example}'",
    ),
    Rule(
        "note-too-short",
        ERROR,
        "the note is one or two characters: a slip, not a sentence",
        "Write a whole sentence with --note, or leave it out.",
    ),
    Rule(
        "over-apologising",
        WARNING,
        "too many apologies, or grovelling",
        "Apologise once or twice, sincerely and calmly: 'I am sorry for the inconvenience.'",
    ),
    Rule(
        "personal-note",
        SUGGESTION,
        "the message is generic: nothing in it is personal to this interview",
        "Add a sentence only you could write (something from your last conversation, or why "
        "this role) with --note.",
    ),
    Rule(
        "note-not-used",
        WARNING,
        "the personal note you gave does not appear in the message",
        "Put {{ note }} in your template, or write the note into the text.",
    ),
    Rule(
        "repeated-word",
        WARNING,
        "a word twice in a row ('the the', 'role role'): usually a fact that repeats the "
        "template's own words",
        "Give the fact without the template's words (--role 'Data Engineer', not 'the Data "
        "Engineer role'), or mend the template.",
    ),
    Rule(
        "stray-punctuation",
        WARNING,
        "two marks in a row ('Yahoo!.', 'Jeeves?.', ',,'): a fact's own mark before the template's",
        "Reword the template around that fact, or leave the mark out of the fact.",
    ),
)
RULES: dict[str, Rule] = {r.id: r for r in _RULE_LIST}

_I = re.IGNORECASE

# Every regex here is compiled on first use, not at import: there are about ninety, and a
# command that never checks a message (or a message that trips no rule) should not pay for
# them. ``_LAZY`` holds how to build each module-level name; :func:`_get` builds it once.
_LAZY: dict[str, Callable[[], Any]] = {}


def _get(name: str) -> Any:
    """The module-level ``name``, built by ``_LAZY[name]`` on first use. A value already set
    (by an earlier call, or by a test's monkeypatch) is used as it is."""
    g = globals()
    if name not in g:
        g[name] = _LAZY[name]()
    return g[name]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return _get(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- the key elements -------------------------------------------------------------------------

_LAZY["_REASON"] = lambda: re.compile(
    r"\b(?:because|due to|owing to|as a result|caused by|on account of|"
    r"ill|illness|sick|unwell|fever|flu|covid|migraine|hospital|doctor|medical|injur\w*|"
    r"emergenc\w*|accident|family|personal|bereavement|funeral|passed away|childcare|"
    r"transport|traffic|trains?|bus|tube|flight|car|broke down|breakdown|strike|delay\w*|"
    r"disruption|cancell?ed|held up|stuck|"
    r"internet|connection|power cut|outage|technical|laptop|computer|wi-?fi|"
    r"clash\w*|conflict\w*|commitment|double[- ]booked|"
    r"came up|come up|arisen|arose|circumstances?|matter|overslept|forgot|mistake|mix-up|"
    r"mixed up|misread|wrote down|late|lost|wrong)\b",
    _I,
)
_LAZY["_REGRET"] = lambda: re.compile(r"\b(?:sorry|apolog\w*|regret\w*)\b", _I)
_LAZY["_THANKS"] = lambda: re.compile(r"\b(?:thank\w*|grateful|gratitude|appreciat\w*)\b", _I)
_LAZY["_RESCHEDULE"] = lambda: re.compile(
    r"\b(?:re-?schedul\w*|re-?arrang\w*|postpon\w*|"
    r"(?:another|a new|new|a different|different|an alternative|alternative|other|a later|"
    r"later) (?:time|date|day|slot|opportunity|chance)s?|"
    r"move (?:our|the|my|it)\b|"
    r"find (?:a|another|some) (?:time|date|slot)|"
    r"(?:a|any) time that (?:suits|works)|when (?:it )?(?:would )?suits? you|"
    r"fit around your (?:calendar|schedule|diary)|second chance|"
    r"(?:I am|I'm|I would be) (?:also )?(?:available|free) (?:on|at|any|from|this|next))",
    _I,
)
_LAZY["_INTEREST"] = lambda: re.compile(
    r"\b(?:interest\w*|keen|enthusias\w*|excit\w*|eager\w*|look(?:ing)? forward|passionate|"
    r"would (?:love|like) to (?:join|work|be part)|still want)\b",
    _I,
)
_LAZY["_ROLE_WORD"] = lambda: re.compile(r"\b(?:role|position|job|post|vacancy|opportunity)\b", _I)
# Tried only where a run of separators starts, and the run taken whole: a company name of
# many spaces costs one pass, not one pass per space.
_LAZY["_LEGAL_SUFFIX"] = lambda: re.compile(
    r"(?<![\s,])[\s,]++(?:ltd|limited|inc|plc|llc|gmbh|ag|sa|bv|co|corp|corporation)\.?$", _I
)

# --- placeholders -----------------------------------------------------------------------------

_PLACEHOLDER_SOURCES: tuple[tuple[str, int], ...] = (
    (r"\[\s*[A-Z][A-Za-z0-9 _./'-]{0,40}\]", 0),  # [Your Name], [Company]
    (r"\[\s*(?:insert|your|add|enter|name|company|date|time|role)\b[^\]\n]{0,40}\]", _I),
    (r"\{\{.*?\}\}|\{%.*?%\}|\{\{|\}\}|\{%|%\}|\{#|#\}", 0),  # Jinja2 markup
    (r"\$?\{\s*[A-Za-z_]\w{0,30}\s*\}", 0),  # {name}, ${name}
    (r"%[A-Z][A-Z_]{1,30}%", 0),  # %NAME%
    (r"<\s*[A-Z][A-Z0-9 _-]{1,40}\s*>", 0),  # <NAME>
    (r"<\s*(?:your|insert|the|company|interviewer|name|date|time|role)\b[^<>@\n]{0,40}>", _I),
    (r"\bX{3,}\b|\bXX[:/.-]XX\b", 0),  # XXX, XX/XX
    (r"\b(?:TBD|TBC|TBA|TODO|FIXME)\b", 0),
    (r"\b[A-Z]{2,}(?:_[A-Z]+)+\b", 0),  # FIRST_NAME
    (r"\blorem ipsum\b", _I),
    # In any language or script ("[votre nom]", "[Ваше имя]", "[姓名]"): a square-bracketed
    # word in an apology is a blank left to fill (a walkthrough sent "[votre nom]"), but
    # for a quotation's "[sic]".
    (r"\[\s*(?!sic\s*\])[^\W\d_][^\[\]\n]{0,40}\]", 0),
    (r"\(\s*(?:insert|enter|add)\b[^()\n]{0,40}\)|\(\s*your (?:full )?name\s*\)", _I),
    (r"(?<![\w$])\$[A-Za-z_]\w{0,30}\b", 0),  # $name
    (r"\b(?:insert|enter|add) (?:your |the |a )?[\w ]{1,30}? here\b", _I),  # INSERT NAME HERE
    (r"_{3,}", 0),  # a blank line to fill: ____
)
_LAZY["_PLACEHOLDERS"] = lambda: tuple(re.compile(p, f) for p, f in _PLACEHOLDER_SOURCES)

# --- tone -------------------------------------------------------------------------------------

_LAZY["_NEGATION_BEFORE"] = lambda: re.compile(
    r"(?:n't|\bnot|\bnever|\bunable to|\bno way to)\W+(?:\w+\W+){0,2}$", _I
)

_DEMANDING = (
    r"\bI (?:would )?expect (?:you|a (?:reply|response|call|answer|decision|new)|"
    r"an (?:answer|offer|interview|apology|explanation)|to (?:hear|be (?:given|offered|"
    r"rescheduled|seen|interviewed))|that you|the (?:company|interview|team))\b",
    r"\byou must\b(?! (?:be|have|get|hear|know|see|receive)\b)",
    r"\bI need you to\b",
    r"\bI need (?:a|an|your) (?:reply|answer|response|decision|confirmation)\b",
    r"\bI (?:demand|insist)\b",
    r"\bI (?:deserve|am entitled|'m entitled)\b",
    r"\byou owe me\b",
    r"(?<!\bif )(?<!\bdo )(?<!\bwhat )(?<!\ball )(?<!\bshould )\byou (?:have|need) to\b",
    r"\bI want you to\b",
    r"\bmake sure (?:that )?you\b",
    r"\bASAP\b",
    r"\bas soon as possible for me\b",
    r"\bat my (?:earliest )?convenience\b",
    r"\b(?:it is|it's) your (?:job|responsibility|duty)\b",
)
_URGENCY = (
    r"(?:immediately|right away|straight away|urgently|as soon as possible|without delay|"
    r"at once|by (?:today|tonight|tomorrow|the end of (?:the )?day|end of (?:the )?day|eod|"
    r"close of business)|within (?:\d+|one|two|a few|twenty-four|forty-eight) (?:hours?|days?))"
)
_REQUEST_VERB = (
    r"\b(?:reply|respond|answer|get back to me|call me|ring me|phone me|contact me|email me|"
    r"write back|confirm|reschedule|rearrange|let me know|send|arrange|book|set up|tell me)"
)
_PUSHY = (
    _REQUEST_VERB + r"\b[^.!?\n]{0,40}?\b" + _URGENCY + r"\b",
    r"\bURGENT\b",
    r"\b(?:this is|it is|it's) (?:very |really )?urgent\b",
)
_YOUR_THING = (
    r"\byour (?:directions|instructions|email|emails|invitation|invite|link|address|calendar|"
    r"system|software|website|receptionist|recruiter|colleague|office|team|map|booking)\b"
)
_BLAMED = (
    r"\b(?:wrong|unclear|confusing|incorrect|misleading|broken|vague|didn't|did not|never|"
    r"failed|wasn't|was not|fault|blame|mistake|error|hard to|impossible|lost)\b"
)
# What the regex f"{_YOUR_THING}(?=[^.!?\n]*{_BLAMED})" means; it is not used as a regex,
# because its lookahead rescans the rest of the clause from every "your email".
_YOUR_THING_BLAMED = "your-thing-then-blamed"
_BLAME = (
    r"\b(?:not|wasn't|wasnt|isn't|isnt) (?:really |entirely |even |at all )?my fault\b",
    r"\b(?:no one|no-one|nobody) (?:told|informed|reminded|warned|let) me\b",
    r"\bI (?:was|had been) (?:never |not )?(?:told|given|sent)\b[^.!?\n]{0,30}"
    r"\b(?:wrong|incorrect)\b",
    r"\bI (?:was never|was not|wasn't|had not been|hadn't been) (?:told|informed|reminded)\b",
    r"\byou (?:gave|sent|told|wrote|said|put|listed)\b[^.!?\n]{0,40}"
    r"\b(?:wrong|incorrect|confusing|unclear)\b",
    _YOUR_THING_BLAMED,  # see _ClauseLookahead: "your directions ... were wrong"
    r"\b(?:because of|due to|thanks to) your (?:directions|instructions|email|invitation|invite|"
    r"link|system|software|website|receptionist|recruiter|colleague|office|team|map)\b",
    r"\byou (?:should|could) have (?:told|informed|reminded|sent|called|let|mentioned|made)\b",
    r"\bif (?:only )?you had\b",
    r"\b(?:blame|fault) (?:lies|lay|rests|is) with (?:you|your|the)\b",
    r"(?<!n't )(?<!not )\bblam(?:e|ed|ing) (?:the|your|you|it on|them|him|her)\b",
)
_EXCUSE = (
    r"\b(?:traffic|trains?|buses|bus|tube|roads?|weather|parking|queues?) (?:was|were|is|are) "
    r"(?:so |really |just )?(?:terrible|awful|horrendous|horrible|a nightmare|crazy|insane|"
    r"ridiculous|unbelievable|a joke|bad)\b",
    r"\bnothing (?:else )?I could (?:have )?do(?:ne)?\b",
    r"\b(?:couldn't|could not|can't|cannot) (?:have )?be(?:en)? helped\b",
    r"\b(?:these|such) things happen\b",
    r"\bit happens to (?:the best|everyone|everybody|anyone)\b",
    r"\bwhat can you do\b",
    r"\bin my defen[cs]e\b",
    r"\bto be fair\b",
    r"\bI had no (?:other )?choice\b",
    r"\bout of my hands\b",
    r"\banyone (?:else )?would have\b",
    r"\b(?:it's|it is) not like\b",
    r"\bnot (?:such )?a big deal\b",
    r"\bI couldn't help it\b",
)
# Said of attending an interview: a past form and a future form. Either, in a note, against a
# message of the other tense contradicts it ("could not attend" above "I am unwell at the moment").
_ATTEND = r"(?:attend|make it|join|come|be there|take part)"
_LAZY["_PAST_ATTEND"] = lambda: re.compile(
    rf"\b(?:(?:could not|couldn't|was unable to|wasn't able to|was not able to|did not|didn't) "
    rf"{_ATTEND}|missed (?:the|our|my|it)|had to miss)\b",
    _I,
)
_LAZY["_FUTURE_ATTEND"] = lambda: re.compile(
    rf"\b(?:(?:will not|won't|will be unable to|cannot|can't|am unable to|am not able to|"
    rf"will not be able to|won't be able to) {_ATTEND}|will (?:have to )?miss)\b",
    _I,
)
_LAZY["_PASSIVE_MISSED"] = lambda: re.compile(
    r"\b(?:the|our|my|this|that) (?:interview|meeting|call|appointment|video call) "
    r"(?:was|got|has been|had been|were) (?:\w+ )?missed\b",
    _I,
)

_INTENSIFIERS = "so very really terribly truly deeply awfully incredibly extremely sincerely"
_INTENSIFIER = f"(?:{'|'.join(_INTENSIFIERS.split())})"
# What rf"\b(?:{_INTENSIFIER},?\s+){{2,}}(?:sorry|apologetic)\b" means; matched backwards
# (see _Backward), because forwards the regex retries a run of intensifiers from each word.
_INTENSIFIED_SORRY = "intensified-sorry"
_GROVEL = (
    _INTENSIFIED_SORRY,  # see _Backward: "so very sorry"
    r"\bsorry,? sorry\b",
    r"\bplease,? please\b",
    r"\bforgive me\b",
    r"\bI (?:beg|am begging|'m begging)\b",
    r"\bon my knees\b",
    r"\bI (?:feel|am feeling|'m feeling) (?:so |really |absolutely |truly )?(?:terrible|awful|"
    r"horrible|ashamed|mortified|devastated|sick about)\b",
    r"\bI(?: am|'m) (?:such )?an? (?:idiot|fool|failure)\b",
    r"\bunforgivable\b",
    r"\bnever forgive myself\b",
    r"\bI (?:don't|do not) deserve\b",
    r"\bI hate myself\b",
    r"\b(?:can't|cannot|can not) apologi[sz]e enough\b",
    r"\b(?:a thousand|a million) apologies\b",
    r"\bmortified\b",
    r"\bgrovel\w*\b",
)


class _Pattern(Protocol):
    def search(self, text: str) -> _Span | re.Match[str] | None: ...


@dataclass(frozen=True)
class _Span:
    """Where a matcher that is not a regex matched: what _tone needs of a re.Match."""

    s: int
    e: int

    def start(self) -> int:
        return self.s

    def end(self) -> int:
        return self.e


class _Backward:
    """A regex whose unbounded part comes before a fixed word (two or more intensifiers, then
    'sorry'), matched on the reversed text: each run is then read once, from its word, where
    a forward search reads it again from each of its words (quadratic on 'so so so ...')."""

    linear = True

    def __init__(self, reversed_pattern: str, words: str) -> None:
        self.regex = re.compile(reversed_pattern, _I)
        self.words = re.compile(words, _I)  # one of them must be there: a cheap first test

    def search(self, text: str) -> _Span | None:
        if not self.words.search(text):
            return None
        last = None
        for last in self.regex.finditer(text[::-1]):  # noqa: B007 - the last is the leftmost
            pass
        return None if last is None else _Span(len(text) - last.end(), len(text) - last.start())


class _ClauseLookahead:
    """``FIRST(?=[^.!?\n]*SECOND)``: FIRST, with SECOND later in the same clause. One pass for
    each regex and a binary search per FIRST, where the lookahead rescans the clause from
    every FIRST (quadratic on 'your email your email ...')."""

    linear = True

    def __init__(self, first: str, second: str) -> None:
        self.first, self.second = re.compile(first, _I), re.compile(second, _I)
        self.clause_end = re.compile(r"[.!?\n]")

    def search(self, text: str) -> _Span | None:
        if not self.first.search(text):
            return None  # the common case: one pass
        ends = [m.start() for m in self.clause_end.finditer(text)]
        seconds = [m.start() for m in self.second.finditer(text)]
        for m in self.first.finditer(text):
            clause_end = ends[i] if (i := bisect_left(ends, m.end())) < len(ends) else len(text)
            j = bisect_left(seconds, m.end())
            if j < len(seconds) and seconds[j] < clause_end:
                return _Span(m.start(), m.end())
        return None


_LAZY["_MATCHERS"] = lambda: {
    _INTENSIFIED_SORRY: _Backward(
        rf"\b(?:yrros|citegolopa)(?:\s+,?(?:{'|'.join(w[::-1] for w in _INTENSIFIERS.split())})){{2,}}\b",
        r"sorry|apologetic",
    ),
    _YOUR_THING_BLAMED: _ClauseLookahead(_YOUR_THING, _BLAMED),
}

# Each tone rule's patterns as (source, flags); a source that is a key of _MATCHERS stands for
# that matcher. Compiled on first use: most sentences match none of them (see _ANY_TONE).
_TONE_SOURCES: dict[str, tuple[tuple[str, int], ...]] = {
    "demanding-tone": tuple((p, _I) for p in _DEMANDING),
    "pushy-timing": (
        (_PUSHY[0], _I),
        (_PUSHY[1], 0),  # capitals only: "an urgent family matter" is a reason, not pressure
        (_PUSHY[2], _I),
    ),
    "blame-shifting": tuple((p, _I) for p in _BLAME),
    "excuse-making": tuple((p, _I) for p in _EXCUSE),
    "over-apologising": tuple((p, _I) for p in _GROVEL),
}


def _compile(rule_id: str) -> tuple[_Pattern, ...]:
    matchers = _get("_MATCHERS")
    return tuple(matchers.get(p) or re.compile(p, f) for p, f in _TONE_SOURCES[rule_id])


_LAZY["_DEMANDING_RE"] = lambda: _compile("demanding-tone")
_LAZY["_PUSHY_RE"] = lambda: _compile("pushy-timing")
_LAZY["_BLAME_RE"] = lambda: _compile("blame-shifting")
_LAZY["_EXCUSE_RE"] = lambda: _compile("excuse-making")
_LAZY["_GROVEL_RE"] = lambda: _compile("over-apologising")

# Sentence checks read a long "sentence" in overlapping pieces (see _pieces). Real sentences are
# far shorter than a piece; in a longer one, a match that spans more than the overlap across
# two pieces is missed.
MAX_PIECE = 1000
_OVERLAP = 200
_SLACK = 100  # how far back from a cut a space is looked for
# How many pieces each cache below remembers. A campaign's entries share most of their lines
# and sentences, used by every entry and so never the least recent; the lines only one entry
# has (its company, its subject) are not asked again, and a bigger bound only kept more of
# them: 3 MB more at 10,000 entries than at 1,000, for no hits.
REMEMBERED = 1024

_LAZY["_LIST_ITEM"] = lambda: re.compile(r"^\s*(?:[-*•–]|\d+[.)])\s+")
_LAZY["_SENTENCE_END"] = lambda: re.compile(r"(?<=[.!?])\s+")
_LAZY["_WORD"] = lambda: re.compile(r"[^\W_]+(?:['-][^\W_]+)*")
_EXCERPT_MAX = 160


# --- public API -------------------------------------------------------------------------------


def lint_apology(
    subject: str,
    text: str,
    *,
    company: str,
    role: str,
    note: str | None = "",
    kind: str = "apology",
    past: bool | None = None,
) -> list[Finding]:
    """Check one message and return its findings, errors first.

    ``kind`` is ``"apology"`` (needs reason, regret, interest, reschedule request, thanks) or
    ``"follow_up"`` (needs interest, reschedule request, thanks). ``note`` is the personal note
    the user gave (``""``: none, which earns the ``personal-note`` suggestion); pass ``None``
    when that is unknown, e.g. for a text written by hand. An empty ``company`` skips the check
    that interest names the company. ``past``: whether the interview has gone by, when known;
    the note's tense is then checked against it.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    body = _unquoted(text)
    # What each paragraph says on its own, remembered (see _Part): what the whole body's
    # checks find is what its paragraphs' parts add up to.
    tables = tuple(_same(globals().get(name)) for name in _PART_TABLES)
    parts = [_part(paragraph, tables) for paragraph in _get("_PARAGRAPH_BREAK").split(body)]
    sentences = [s for part in parts for s in part.sentences]
    subject_line = [f"Subject: {subject}"] if subject.strip() else []
    findings: list[Finding] = []
    elements = list(_elements(parts, sentences, kind=kind, company=company, role=role))
    # (Its language is judged only when an element is missing: most messages have them all.)
    if any(f.rule in _KEY_ELEMENTS for f in elements) and _not_english(parts, company, role):
        # Its key elements are all "missing": the words looked for are English.
        findings.append(
            _finding(
                "other-language",
                "This message is not in English; the apology check cannot tell whether it "
                "gives a reason, says sorry, says you still want the role, asks for another "
                "time and thanks them.",
                company=company,
                role=role,
            )
        )
    else:
        findings += elements
    findings += _placeholders(subject_line)
    findings += [f for part in parts for f in part.placeholders]
    findings += _length_of(sum(part.words for part in parts), kind)
    findings += _tone(subject_line)
    findings += [f for part in parts for f in part.tone]
    findings += [f for sentence in subject_line + sentences for f in _slips(sentence)]
    findings += _apology_count_of(sum(part.regrets for part in parts))
    if stacked := list(_stacked_excuses([s for part in parts for s in part.excuses])):
        # One error for the pile says it better than a warning for each excuse in it.
        findings = [f for f in findings if f.rule != "excuse-making"] + stacked
    findings += next(([part.passive] for part in parts if part.passive), [])
    if kind == "apology" and note is not None:
        findings += _note(body, note)
        if past is not None:
            findings += _note_tense(note, past)
    return sorted(findings, key=lambda f: _RANK[f.severity])


# A body's paragraphs, as the check has always cut them: nothing checked spans such a break
# (the lines it takes are blank, and no key-element or apology regex matches blank space).
_LAZY["_PARAGRAPH_BREAK"] = lambda: re.compile(r"\n\s*\n")


class _Part(NamedTuple):
    """What the checks read from one paragraph of a body. A campaign's messages share most
    of their paragraphs (only those naming the company or the time differ), and each check
    of the body is the sum, union or first of its paragraphs' answers, so a paragraph seen
    before costs a lookup instead of some twenty searches. (A NamedTuple: a fifth of a
    dataclass's cost at import.)"""

    sentences: tuple[str, ...]
    interested: tuple[bool, ...]  # for each sentence: has it an interest word?
    norm: str  # the paragraph, apostrophes straightened (_norm)
    # Which key elements (_BY_LINE) it has, each looked for when first asked: an element
    # an earlier paragraph has is never looked for in a later one (see _elements).
    elements: dict[str, bool]
    words: int
    regrets: int
    placeholders: tuple[Finding, ...]
    tone: tuple[Finding, ...]
    excuses: tuple[str, ...]  # its sentences that make an excuse
    passive: Finding | None  # its first passive "was missed"


# Every module-level table a part is read with: a part found with others is not reused (a
# test may swap one). Those not built yet are keyed as missing, as in _tone.
_PART_TABLES = (
    *("_REASON", "_REGRET", "_INTEREST", "_RESCHEDULE", "_THANKS"),
    *("_WORD", "_LIST_ITEM", "_SENTENCE_END", "_ANY_PLACEHOLDER", "_PLACEHOLDERS"),
    *("_ANY_TONE", "_TONE_CHECKS", "_MATCHER_CHECKS", "_NEGATION_BEFORE", "_EXCUSE_RE"),
    *("_PASSIVE_MISSED", "_MATCHERS"),
)
# Paragraphs longer than this are read each time (the bound keeps the cache's memory small).
_PART_MAX = 2 * MAX_PIECE


def _part(paragraph: str, tables: tuple[_Same, ...]) -> _Part:
    if len(paragraph) > _PART_MAX:
        return _read_part(paragraph)
    return _remembered_part(paragraph, tables)


@lru_cache(maxsize=REMEMBERED)
def _remembered_part(paragraph: str, tables: tuple[_Same, ...]) -> _Part:
    return _read_part(paragraph)


def _has(part: _Part, name: str) -> bool:
    """Whether the key-element regex ``name`` matches the part's paragraph (remembered)."""
    found = part.elements.get(name)
    if found is None:
        found = part.elements[name] = _found(name, part.norm)
    return found


def _read_part(paragraph: str) -> _Part:
    sentences = _paragraph_sentences(paragraph)
    norm = _norm(paragraph)
    return _Part(
        sentences=tuple(sentences),
        interested=tuple(_interested(s) for s in sentences),
        norm=norm,
        elements={},
        words=word_count(paragraph),
        regrets=len(_get("_REGRET").findall(norm)),
        placeholders=tuple(_placeholders(sentences)),
        tone=tuple(_tone(sentences)),
        excuses=tuple(_excuses(sentences)),
        passive=next(iter(_passive(sentences)), None),
    )


# Function words, lower-case: English's, and those of the other languages of Latin script an
# apology is most often written in here (German, French, Spanish, Italian, Dutch,
# Portuguese) that are not English words too ("a", "die", "no", "me", "was", "is" are left
# out). Only their counts matter: which other language it is is not said.
_ENGLISH_WORDS = frozenset(
    word
    for words in (
        "i the and to of you your for in my is that it at with be have this would am on me",
        "was as will are not we our they can could been an",
    )
    for word in words.split(" ")
)
_OTHER_WORDS = (
    frozenset(
        word
        for words in (
            "der das und ich nicht ist zu sie es mit für auf ein eine einen dass ihnen habe "
            "bin wir sehr leider ihr ihre mich mir wäre können möchte bitte vielen dank gespräch "
            "termin stelle freundlichen grüßen",
            "les et je ne pas est que vous pour une avec mon mes suis été "
            "très merci votre vos nous désolé désolée entretien madame monsieur cordialement "
            "nouvelle poste",
            "los las yo usted para una con mis estoy fue muy gracias sus siento nos lamento "
            "mucho entrevista puesto posible fecha atentamente estimada estimado del nueva",
            "gli io non è che lei mio mia sono stato molto grazie suo sua scusa scuso gentile "
            "colloquio posizione possibile nuovo cordiali saluti ancora alla sarebbe",
            "het een ik niet voor op mijn zeer graag bedankt uw wij excuses heb gesprek afspraak "
            "vriendelijke groet spijt",
            "os as eu não é você um uma meu minha estou foi muito obrigado obrigada seu desculpe "
            "entrevista vaga atenciosamente prezada prezado desculpas peço",
        )
        for word in words.split(" ")
    )
    - _ENGLISH_WORDS
)


def _tongue(paragraph: str, facts: frozenset[str]) -> tuple[int, int, int, int, int]:
    """Words, English function words, other languages' distinct function words (not those
    of the company or role: "Le Monde"), characters, and letters outside the Latin script."""
    words = _get("_WORD").findall(paragraph.lower())
    english = sum(map(_ENGLISH_WORDS.__contains__, words))
    other = len(_OTHER_WORDS.intersection(words) - facts)
    if paragraph.isascii():  # (nearly every paragraph of an English campaign)
        return len(words), english, other, len(paragraph), 0
    beyond = _get("_LATIN").sub("", paragraph)  # what is left is outside the Latin script
    return len(words), english, other, len(paragraph), sum(map(str.isalpha, beyond))


# Every character of the Latin script's blocks, and every one that is not a letter.
_LAZY["_LATIN"] = lambda: re.compile(r"[\x00-\u024f\u1e00-\u1eff]|[\W\d_]")


_KEY_ELEMENTS = frozenset(
    ("missing-reason", "missing-regret", "missing-interest", "missing-reschedule", "missing-thanks")
)
# The least a body must hold before its language is judged, and the shares that say it is
# another one: a short or mixed text is checked as English, as before.
_JUDGED_WORDS = 15


def _not_english(parts: list[_Part], company: str = "", role: str = "") -> bool:
    """Whether the body is plainly in another language than English: most of its letters
    outside the Latin script (Russian, Greek, Chinese...), or many of another Latin-script
    language's function words (three different ones at least) and few of English's (an English
    apology has about a third)."""
    if not parts:
        return False
    facts = frozenset(_get("_WORD").findall(f"{company} {role}".lower()))
    counts = zip(*(_tongue(part.norm, facts) for part in parts), strict=True)
    words, english, other, chars, foreign = (sum(c) for c in counts)
    # (Characters, not letters: the spaces and marks between words count too. Russian or
    # Greek is still over half, and Chinese or Japanese, with no spaces, is most of it.)
    if chars >= 2 * _JUDGED_WORDS and foreign * 2 >= chars:
        return True
    return (
        words >= _JUDGED_WORDS
        and other >= 3
        and other * 8 >= words
        and english * 12 <= words
        and other >= 2 * english
    )


_RANK = {ERROR: 0, WARNING: 1, SUGGESTION: 2}


def has_errors(findings: Iterable[Finding]) -> bool:
    """True if any finding should block sending (unless forced)."""
    return any(f.severity == ERROR for f in findings)


def format_finding(f: Finding) -> str:
    """One or two lines for the terminal: what and where, then the fix."""
    what = f'{f.message.rstrip(".")}: "{f.excerpt}"' if f.excerpt else f.message
    return f"{f.severity}: [{f.rule}] {what}\n    fix: {f.fix}"


def summary(findings: Iterable[Finding]) -> str:
    """'2 errors, 1 warning' ('no problems found', with '; 1 suggestion' when there is one)."""
    items = list(findings)
    errors = sum(f.severity == ERROR for f in items)
    warnings = sum(f.severity == WARNING for f in items)
    suggestions = len(items) - errors - warnings
    parts = [
        f"{n} {word}{'' if n == 1 else 's'}"
        for n, word in ((errors, "error"), (warnings, "warning"), (suggestions, "suggestion"))
        if n
    ]
    if not errors and not warnings:
        return "; ".join(["no problems found", *parts])
    return ", ".join(parts)


def split_subject(raw: str) -> tuple[str, str]:
    """A text file as ``mailer lint FILE`` reads it: an optional 'Subject: ...' first line,
    then the body. Returns ``(subject, body)``; the subject is empty when there is none."""
    stripped = raw.lstrip("\n")
    first, _, rest = stripped.partition("\n")
    if first.lower().startswith("subject:"):
        return " ".join(first[len("subject:") :].split()), rest.lstrip("\n")
    return "", stripped


def word_count(text: str) -> int:
    """Words as the length rules count them (quoted '>' lines excluded). Counted line by line
    (no word spans a line break), each line's count remembered: a campaign's entries share
    most of their lines."""
    unquoted = (line for line in text.splitlines() if not line.lstrip().startswith(">"))
    return sum(_line_words(line.replace("’", "'")) for line in unquoted)


@lru_cache(maxsize=REMEMBERED)
def _remembered_words(line: str, word: _Same) -> int:
    return len(word.value.findall(line))  # type: ignore[attr-defined]


def _line_words(line: str) -> int:
    word = _get("_WORD")
    if len(line) > MAX_PIECE:  # (the bound keeps the cache's memory small)
        return len(word.findall(line))
    return _remembered_words(line, _same(word))


# --- checks -----------------------------------------------------------------------------------


def _finding(rule_id: str, message: str, excerpt: str = "", **fill: str) -> Finding:
    rule = RULES[rule_id]
    fix = rule.fix
    # Unknown facts read as "<role>" / "<company>" so the suggestion never says "role role".
    for key, value in fill.items():
        fix = fix.replace("{" + key + "}", value or f"<{key}>")
    return Finding(rule_id, rule.severity, message, fix, _trim(excerpt))


def _elements(
    parts: list[_Part], sentences: list[str], *, kind: str, company: str, role: str
) -> Iterator[Finding]:
    """The key elements a body lacks: an element is in the body where it is in one of its
    paragraphs."""
    # Paragraphs seen before (they hold answers) are asked first: in a campaign, those that
    # differ per entry (naming the time, the company) are then searched only for what the
    # shared ones lack, not for all five (and a failed search reads a whole line).
    parts_in_order = [part for part in parts if part.elements] + [
        part for part in parts if not part.elements
    ]
    found = {name for name in _BY_LINE if any(_has(part, name) for part in parts_in_order)}
    fill = {"company": company, "role": role}
    if kind == "apology":
        if "_REASON" not in found:
            yield _finding(
                "missing-reason", "No reason is given for missing or moving the interview."
            )
        if "_REGRET" not in found:
            yield _finding("missing-regret", "The message never says sorry (or apologises).")
    if "_INTEREST" not in found:
        yield _finding(
            "missing-interest",
            "The message does not say you are still interested in the role.",
            **fill,
        )
    else:
        interested = [i for part in parts for i in part.interested]
        yield from _interest_specific(sentences, company, role, interested)
    if "_RESCHEDULE" not in found:
        yield _finding("missing-reschedule", "The message does not ask to reschedule.")
    if "_THANKS" not in found:
        yield _finding("missing-thanks", "The message does not thank the reader.")


# The key-element regexes: none matches a line break, and none asserts anything but word
# boundaries, which a line's ends keep; so one matches a text where it matches one of its
# lines (test_lint holds each to it).
_BY_LINE = frozenset({"_REASON", "_REGRET", "_INTEREST", "_RESCHEDULE", "_THANKS"})


def _found(name: str, text: str) -> bool:
    """Whether the key-element regex ``name`` matches ``text``: line by line, each line's
    answer remembered (a campaign's entries share most of their lines)."""
    pattern = _get(name)
    same = _same(pattern)
    return any(
        pattern.search(line) is not None if len(line) > MAX_PIECE else _line_found(line, same)
        for line in text.split("\n")
    )


@lru_cache(maxsize=REMEMBERED)
def _line_found(line: str, pattern: _Same) -> bool:
    return pattern.value.search(line) is not None  # type: ignore[attr-defined]


def _interest_specific(
    sentences: list[str], company: str, role: str, interested: list[bool] | None = None
) -> Iterator[Finding]:
    """Interest counts as specific when a sentence with an interest word, or the sentence just
    before or after it, names the company, and the role (its name or 'role', 'position', ...).
    ``interested``: which sentences have an interest word, when known."""
    if not company.strip():
        return
    names = {company.strip().casefold(), _get("_LEGAL_SUFFIX").sub("", company.strip()).casefold()}
    role_name = role.strip().casefold()
    first = ""
    for i, sentence in enumerate(sentences):
        if not (_interested(sentence) if interested is None else interested[i]):
            continue
        first = first or sentence
        window = " ".join(sentences[max(0, i - 1) : i + 2]).casefold()
        has_company = any(n and n in window for n in names)
        has_role = bool(role_name and role_name in window) or bool(
            _get("_ROLE_WORD").search(window)
        )
        if has_company and has_role:
            return
    yield _finding(
        "interest-not-specific",
        f"Your interest is not tied to {company}"
        + (f" and the {role} role" if role.strip() else "")
        + " (name them in the same sentence or the one next to it).",
        first,
        company=company,
        role=role,
    )


def _interested(sentence: str) -> bool:
    return _get("_INTEREST").search(_norm(sentence)) is not None


def _placeholders(sentences: list[str]) -> Iterator[Finding]:
    for sentence in sentences:
        if not _gate(_get("_ANY_PLACEHOLDER"), sentence):
            continue
        for pattern in _get("_PLACEHOLDERS"):
            if span := _search(pattern, sentence):
                found = sentence[span[0] : span[1]]
                yield _finding("placeholder", f"Leftover placeholder {found!r}.", sentence)
                break


# A word (two letters or more) straight after itself; a mark of a fact's own before the
# template's full stop or comma, or a doubled comma. Neither spans sentences.
_LAZY["_REPEATED_WORD"] = lambda: re.compile(r"\b([^\W\d_]{2,})\s+\1\b", _I)
_LAZY["_STRAY_MARKS"] = lambda: re.compile(r"[!?][.,](?!\.)|,,|(?<!\.)\.\.(?!\.)")


_DOUBLED_ON_PURPOSE = frozenset({"so", "very", "really", "truly", "much", "that", "had", "bye"})


@lru_cache(maxsize=REMEMBERED)
def _slips(sentence: str) -> tuple[Finding, ...]:
    """Slips of a fact dropped into a template: a repeated word, two marks in a row.
    Remembered per sentence: a campaign's entries share most of theirs."""
    out = []
    for m in _get("_REPEATED_WORD").finditer(sentence):
        word = m.group(1).casefold()
        before = sentence[: m.start()].rstrip().rsplit(None, 1)[-1:]
        after = sentence[m.end() :].split(None, 1)[:1]
        # A pair only: "so so sorry" is grovelling (its own rule), "that that" and "had had"
        # are grammar, and a run of three or more ("and and and") is no slip of a fact.
        if word in _DOUBLED_ON_PURPOSE or [w.casefold() for w in (*before, *after)].count(word):
            continue
        out.append(_finding("repeated-word", f"{m.group(0)!r} repeats a word.", sentence))
        break
    if m := _get("_STRAY_MARKS").search(sentence):
        out.append(_finding("stray-punctuation", f"{m.group(0)!r}: two marks in a row.", sentence))
    return tuple(out)


def _length_of(words: int, kind: str) -> Iterator[Finding]:
    warn, error = WORD_BUDGET[kind]
    if words > error:
        yield _finding(
            "too-long", f"The body is {words} words; keep it under {warn} (limit {error})."
        )
    elif words > warn:
        yield _finding("long-message", f"The body is {words} words; aim for {warn} or fewer.")


_EXPLAIN: dict[str, Callable[[str], str]] = {
    "demanding-tone": lambda m: f"{m!r} sounds demanding to someone you kept waiting.",
    "pushy-timing": lambda m: f"{m!r} presses them to act on your timetable.",
    "blame-shifting": lambda m: f"{m!r} puts the fault on someone else.",
    "excuse-making": lambda m: f"{m!r} sounds like an excuse rather than a reason.",
    "over-apologising": lambda m: f"{m!r} is grovelling; one calm apology is stronger.",
}
_LAZY["_TONE_CHECKS"] = lambda: (
    ("demanding-tone", _get("_DEMANDING_RE"), _EXPLAIN["demanding-tone"]),
    ("pushy-timing", _get("_PUSHY_RE"), _EXPLAIN["pushy-timing"]),
    ("blame-shifting", _get("_BLAME_RE"), _EXPLAIN["blame-shifting"]),
    ("excuse-making", _get("_EXCUSE_RE"), _EXPLAIN["excuse-making"]),
    ("over-apologising", _get("_GROVEL_RE"), _EXPLAIN["over-apologising"]),
)
# Where no tone regex matches a sentence, only the matchers can: the rules that have one,
# with just their matchers, in the same order.
_LAZY["_MATCHER_CHECKS"] = lambda: tuple(
    (rule_id, found, _EXPLAIN[rule_id])
    for rule_id, sources in _TONE_SOURCES.items()
    if (found := tuple(_get("_MATCHERS")[p] for p, _ in sources if p in _MATCHER_NAMES))
)
_MATCHER_NAMES = (_INTENSIFIED_SORRY, _YOUR_THING_BLAMED)


def _any_of(sources: Iterable[tuple[str, int]], starts: str) -> re.Pattern[str]:
    """One regex that matches wherever any of the regexes ``sources`` would: most sentences
    match none, and are then done in one call instead of one per pattern, and without
    compiling the patterns one by one. ``starts`` is what holds where any match can start,
    tested first so that other places cost one test, not one per pattern."""
    parts = [f"(?{'i' if flags & _I else '-i'}:{source})" for source, flags in sources]
    return re.compile(f"{starts}(?:{'|'.join(parts)})")


def _tone(sentences: list[str]) -> Iterator[Finding]:
    # The tables as they are now (a test may swap one): answers found with others are not
    # reused.
    tables = tuple(_same(globals().get(name)) for name in _TONE_TABLES)
    for sentence in sentences:
        if len(sentence) <= MAX_PIECE:
            yield from _remembered_tone(sentence, tables)
        else:
            yield from _sentence_tone(sentence)


_TONE_TABLES = ("_ANY_TONE", "_TONE_CHECKS", "_MATCHER_CHECKS", "_NEGATION_BEFORE")


class _Same:
    """Part of a cache key that equals only a key part holding the very same object. Made by
    :func:`_same` only, one per object: it then compares and hashes by its own identity, in
    C (a campaign's lint looks up its caches some hundred times an entry, and a Python
    ``__hash__`` and ``__eq__`` on each lookup were a tenth of the lint)."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value


# One _Same per object, and the object kept alive by it: its identity is never reused while
# a cache holds a key made with it.
_SAMES: dict[int, _Same] = {}


def _same(value: object) -> _Same:
    same = _SAMES.get(id(value))
    if same is None or same.value is not value:
        same = _SAMES[id(value)] = _Same(value)
    return same


@lru_cache(maxsize=REMEMBERED)
def _remembered_tone(sentence: str, tables: tuple[_Same, ...]) -> tuple[Finding, ...]:
    """A sentence's tone findings depend on the sentence alone (and the tables), and a
    campaign's entries share most of their sentences: each is judged once. The bound keeps
    the cache's memory small."""
    return tuple(_sentence_tone(sentence))


def _sentence_tone(sentence: str) -> Iterator[Finding]:
    norm = _norm(sentence)
    # Where no tone regex matches, only the matchers (linear, quick to say no) can.
    checks = _get("_TONE_CHECKS" if _gate(_get("_ANY_TONE"), norm) else "_MATCHER_CHECKS")
    demanding = False
    for rule_id, patterns, explain in checks:
        if rule_id == "pushy-timing" and demanding:
            continue  # one sentence, one complaint: "ASAP for me" is demanding, not also pushy
        for pattern in patterns:
            span = (
                _first_unnegated(pattern, norm)  # type: ignore[arg-type]
                if rule_id == "pushy-timing"
                else _search(pattern, norm)
            )
            if span:
                yield _finding(rule_id, explain(sentence[span[0] : span[1]]), sentence)
                demanding = demanding or rule_id == "demanding-tone"
                break


class _Gate:
    """A gate regex, hashed by identity: a compiled pattern hashes its whole program (~30 µs
    for _ANY_TONE, more than a cached answer should cost). The cache below keeps each key,
    so an identity is never reused while its answers are remembered."""

    __slots__ = ("regex",)

    def __init__(self, regex: re.Pattern[str]) -> None:
        self.regex = regex

    def search(self, text: str) -> re.Match[str] | None:
        return self.regex.search(text)


class _WordGate:
    """_ANY_TONE: whether any tone regex matches, as one alternation of them all would say,
    looked for word by word. Every tone pattern starts at the start of a word, and most with
    a letter that can be read from its text (:func:`_first_letters`): at each word start only
    the patterns that can start with its letter are tried (a few, not fifty). The patterns
    of one letter make one alternation, and those that may start with several letters
    another, each compiled once, on first use: a preview compiles no more than one
    alternation of them all did. A word starting with a letter outside ASCII that case-folds
    to one of theirs ('ſ', 'K') is tried against them all; a pattern whose first letter
    cannot be read, at every word start. The one alternation was a tenth of a campaign
    check."""

    __slots__ = (
        *("_anywhere", "_by_letter", "_compiled", "_everything", "_several", "_several_letters"),
        *("_several_regex", "_starts"),
    )

    def __init__(self, sources: Iterable[tuple[str, int]]) -> None:
        self._everything = list(sources)
        self._by_letter: dict[str, list[tuple[str, int]]] = {}
        self._several: list[tuple[str, int]] = []  # those that may start with several
        self._several_letters: set[str] = set()
        self._several_regex: re.Pattern[str] | None = None
        self._anywhere: list[tuple[str, int]] = []
        for source in self._everything:
            letters = _first_letters(source[0])
            if letters is None:
                self._anywhere.append(source)
            elif len(letters) == 1:
                self._by_letter.setdefault(next(iter(letters)), []).append(source)
            else:
                self._several.append(source)
                self._several_letters |= letters
        self._compiled: dict[str, tuple[re.Pattern[str], ...]] = {}
        if self._anywhere:
            self._starts = re.compile(r"\b(?=[^\W\d_])")
        else:  # only where a word starts with one of their letters, in any case
            letters = "".join(sorted({*self._by_letter, *self._several_letters}))
            self._starts = re.compile(rf"\b(?=(?i:[{letters}]))")

    def search(self, text: str) -> re.Match[str] | None:
        for start in self._starts.finditer(text):
            at = start.start()
            first = text[at]
            key = first.lower() if first.isascii() else ""
            regexes = self._compiled.get(key)
            if regexes is None:
                regexes = self._compiled[key] = self._regexes(key)
            for regex in regexes:
                if m := regex.match(text, at):
                    return m
        return None

    def _regexes(self, key: str) -> tuple[re.Pattern[str], ...]:
        """What to try where a word starts with ``key`` ("": a letter outside ASCII)."""
        if not key:
            return (_any_of(self._everything, ""),)
        own = [*self._by_letter.get(key, ()), *self._anywhere]
        out = [_any_of(own, "")] if own else []
        if key in self._several_letters:
            if self._several_regex is None:  # compiled once, for every letter of theirs
                self._several_regex = _any_of(self._several, "")
            out.append(self._several_regex)
        return tuple(out)


def _first_letters(source: str) -> frozenset[str] | None:
    """The ASCII letters, in lower case, a match of the regex ``source`` can start with, read
    from its text: after any lookbehinds and a \\b, a letter (not made optional), or a group
    of alternatives each starting so. None when it cannot tell (anything else)."""
    while m := _get("_LOOKBEHIND").match(source):
        source = source[m.end() :]
    source = source.removeprefix(r"\b")
    alternatives = _split_alternatives(source)
    if alternatives is None:
        return None
    if len(alternatives) > 1:
        found = [_first_letters(a) for a in alternatives]
        return None if None in found else frozenset().union(*found)  # type: ignore[arg-type]
    first, after = source[:1], source[1:2]
    if first.isascii() and first.isalpha():
        return None if after in _OPTIONAL else frozenset(first.lower())
    if source.startswith("(?:"):
        end = _group_end(source)
        if end is None or source[end + 1 : end + 2] in _OPTIONAL:
            return None
        return _first_letters(source[3:end])
    return None


_LAZY["_LOOKBEHIND"] = lambda: re.compile(r"\(\?<[!=](?:[^()\\\[\]]|\\.)*\)")
_OPTIONAL = ("?", "*", "{")


def _split_alternatives(source: str) -> list[str] | None:
    """``source`` cut at its top-level '|' (outside groups, classes and escapes); None if its
    parentheses do not balance."""
    parts, start, depth = [], 0, 0
    for i, c, depth in _structure(source):
        if depth < 0:  # a ')' too many, or a class left open
            return None
        if c == "|" and depth == 0:
            parts.append(source[start:i])
            start = i + 1
    return None if depth else [*parts, source[start:]]


def _group_end(source: str) -> int | None:
    """The index of the ')' closing the group that opens ``source``."""
    for i, c, depth in _structure(source):
        if depth < 0:
            return None
        if c == ")" and depth == 0:
            return i
    return None


def _structure(source: str) -> Iterator[tuple[int, str, int]]:
    """Each '(', ')' and '|' of ``source`` outside escapes and character classes, with the
    group depth after it; a class left open ends it with ``(-1, "", -1)``."""
    depth, i = 0, 0
    while i < len(source):
        c = source[i]
        if c == "\\":
            i += 1
        elif c == "[":
            i = _class_end(source, i)
            if i < 0:
                yield -1, "", -1
                return
        elif c in "()|":
            depth += 1 if c == "(" else -1 if c == ")" else 0
            yield i, c, depth
        i += 1


def _class_end(source: str, i: int) -> int:
    """The index of the ']' closing the class opened at ``i`` (-1: none)."""
    j = i + 1
    if source[j : j + 1] == "^":
        j += 1
    if source[j : j + 1] == "]":  # a ']' first is a member
        j += 1
    while j < len(source):
        if source[j] == "\\":
            j += 1
        elif source[j] == "]":
            return j
        j += 1
    return -1


def _gate(gate: _Pattern, sentence: str) -> bool:
    """Whether ``gate`` (_ANY_TONE, _ANY_PLACEHOLDER) matches ``sentence``. Remembered for
    sentences up to a piece long: the entries of a campaign share most of their sentences,
    and the gate is the costly search; the bound keeps the cache's memory small."""
    if len(sentence) > MAX_PIECE:
        return _search(gate, sentence) is not None
    return _remembered_gate(gate, sentence)


@lru_cache(maxsize=REMEMBERED)
def _remembered_gate(gate: _Pattern, sentence: str) -> bool:
    # The gate is part of the key, so a different one is never answered from the cache.
    return _search(gate, sentence) is not None


def _first_unnegated(pattern: re.Pattern[str], text: str) -> tuple[int, int] | None:
    """'I could not call you right away' reports the past, it asks for nothing."""
    for offset, piece in _pieces(text):
        for m in pattern.finditer(piece):
            start = offset + m.start()
            if not _get("_NEGATION_BEFORE").search(text[max(0, start - 30) : start]):
                return start, offset + m.end()
    return None


def _search(pattern: _Pattern, text: str) -> tuple[int, int] | None:
    """Where ``pattern`` first matches ``text``: a regex reads it piece by piece; the matchers
    that stand in for regexes are linear as they are, and read it whole."""
    if len(text) <= MAX_PIECE or getattr(pattern, "linear", False):
        m = pattern.search(text)
        return (m.start(), m.end()) if m else None
    for offset, piece in _pieces(text):
        if m := pattern.search(piece):
            return offset + m.start(), offset + m.end()
    return None


def _pieces(text: str) -> Iterator[tuple[int, str]]:
    """``text`` as overlapping pieces of at most MAX_PIECE characters, with their offsets, cut
    at spaces where there is one near: no regex then sees more than MAX_PIECE characters at
    once, so the check stays linear whatever a pattern's backtracking costs."""
    start = 0
    while len(text) - start > MAX_PIECE:
        cut = text.rfind(" ", start + MAX_PIECE - _SLACK, start + MAX_PIECE)
        end = cut if cut > start else start + MAX_PIECE
        yield start, text[start:end]
        back = text.rfind(" ", end - _OVERLAP - _SLACK, end - _OVERLAP)
        start = back + 1 if back > start else end - _OVERLAP
    yield start, text[start:] if start else text


def _apology_count_of(count: int) -> Iterator[Finding]:
    if count > MAX_APOLOGY_WORDS:
        yield _finding(
            "over-apologising",
            f"{count} apologies ('sorry', 'apologise', 'regret'); {MAX_APOLOGY_WORDS} at most "
            "reads as sincere.",
        )


def _excuses(sentences: list[str]) -> Iterator[str]:
    """The sentences that make an excuse."""
    for s in sentences:
        norm = _norm(s)
        if _gate(_get("_ANY_TONE"), norm) and any(_search(p, norm) for p in _get("_EXCUSE_RE")):
            yield s


def _stacked_excuses(found: list[str]) -> Iterator[Finding]:
    """Each excuse is a warning; a pile of them reads as arguing, and is an error."""
    if len(found) > MAX_EXCUSES:
        yield _finding(
            "stacked-excuses",
            f"{len(found)} sentences make excuses; more than {MAX_EXCUSES} reads as arguing "
            "the point.",
            found[0],
        )


def _passive(sentences: list[str]) -> Iterator[Finding]:
    for sentence in sentences:
        if m := _get("_PASSIVE_MISSED").search(_norm(sentence)):
            yield _finding(
                "passive-missed", f"{m.group(0)!r} says it happened, not that you did it.", sentence
            )
            return


def _note_tense(note: str, past: bool) -> Iterator[Finding]:
    wrong = _get("_FUTURE_ATTEND" if past else "_PAST_ATTEND")
    if m := wrong.search(_norm(note)):
        tense, example = (
            ("past", "I could not attend, and I am sorry.")
            if past
            else ("still ahead", "I will not be able to attend on that day.")
        )
        yield _finding(
            "tense-mismatch",
            f"Your note says {m.group(0)!r}, but the interview is {tense}.",
            note,
            tense=tense,
            example=example,
        )


def _note(body: str, note: str) -> Iterator[Finding]:
    if 0 < len(note.strip()) < MIN_NOTE_CHARS:
        yield _finding(
            "note-too-short", f"The note is only {note.strip()!r}: a slip, not a sentence."
        )
        return
    if not note.strip():
        yield _finding("personal-note", "Nothing in this message is personal to this interview.")
    elif _squash(note) not in _squash(body):
        yield _finding("note-not-used", "Your --note is not in the message.", note)


# --- text helpers -----------------------------------------------------------------------------


def _norm(text: str) -> str:
    """Curly apostrophes as straight ones (same length, so match offsets still fit the text)."""
    return text.replace("’", "'").replace("‘", "'")


def _squash(text: str) -> str:
    return " ".join(_norm(text).split()).casefold()


def _unquoted(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(">"))


def _paragraph_sentences(paragraph: str) -> list[str]:
    """A paragraph's sentences, for excerpts and nearness. Hard-wrapped lines are joined back
    together; list items stay apart."""
    out: list[str] = []
    pending: list[str] = []
    for line in (ln.strip() for ln in paragraph.splitlines()):
        if not line:
            continue
        if _get("_LIST_ITEM").match(line):
            out += _split_sentences(" ".join(pending))
            pending = []
            out.append(line)
        else:
            pending.append(line)
    out += _split_sentences(" ".join(pending))
    return out


def _split_sentences(text: str) -> list[str]:
    return [s for s in _get("_SENTENCE_END").split(text) if s.strip()]


def _trim(excerpt: str) -> str:
    excerpt = " ".join(excerpt.split())
    return excerpt if len(excerpt) <= _EXCERPT_MAX else excerpt[: _EXCERPT_MAX - 1].rstrip() + "…"


# Every tone pattern starts at the start of a word; every placeholder at a bracket, a brace,
# a parenthesis, '$', '%', '#', '<', '_' or a letter.
_LAZY["_ANY_TONE"] = lambda: _WordGate(
    source
    for sources in _TONE_SOURCES.values()
    for source in sources
    if source[0] not in _MATCHER_NAMES
)
_LAZY["_ANY_PLACEHOLDER"] = lambda: _Gate(
    _any_of(_PLACEHOLDER_SOURCES, r"(?=[\[\]{}$%#<(_]|\b[^\W\d_])")
)
