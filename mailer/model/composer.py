"""Templates + facts -> a finished message, as bytes. Pure: the clock is passed in.

A template renders to ``Subject: ...``, a blank line, then the body. The defaults live in the
repository's ``templates/`` (installed as ``mailer.templates``); a workspace ``templates/``
folder overrides them file by file.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable, Container
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email import quoprimime
from email._encoded_words import encode as _encoded_word
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from mailer.errors import InputError, MailerError, TemplateError
from mailer.model.facts import PLACEHOLDER as _PLACEHOLDER
from mailer.model.facts import SITUATIONS, Facts, FreeSlot, Situations
from mailer.model.settings import DAY_PATTERNS, SenderSettings
from mailer.model.values import HEADER_MAX, check_header, header_problem

FOLLOW_UP_TEMPLATE = "follow_up.txt.j2"
# The marks a fact may end a sentence with itself ("Acme Ltd.", "Yahoo!"): no full stop is
# written after them (the templates test the same three).
SENTENCE_ENDS = (".", "!", "?")
# Python's header folder leaves a space before a folded encoded word, which readers show as a
# double space. Headers are written unfolded up to RFC 5322's 998-octet limit instead; the body
# is encoded (at 76 columns) before this policy is applied.
_WRITE_POLICY = SMTP.clone(max_line_length=998)
_JINJA_LEFTOVER = re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}")


@dataclass(frozen=True)
class Draft:
    """What a template produced: checked, but not yet a message."""

    subject: str
    text: str
    template: str


@dataclass(frozen=True)
class Composed:
    """A finished message: the exact bytes that go to SMTP and to the Sent folder."""

    subject: str
    text: str
    message_id: str
    raw: bytes
    recipients: tuple[str, ...]


def default_templates_dir() -> Path:
    """The packaged templates (``mailer.templates``). Looked for first where they are on disk,
    without importlib.resources (a thirtieth of a preview's start-up): in an installed wheel,
    the package's templates/ folder; in a checkout (an editable install maps the package onto
    it), the repository's."""
    package = Path(__file__).resolve().parents[1]
    for path in (package / "templates", package.parent / "templates"):
        if (path / FOLLOW_UP_TEMPLATE).is_file():
            return path
    from importlib.resources import files

    try:
        path = Path(str(files("mailer.templates")))
        if (path / FOLLOW_UP_TEMPLATE).exists():
            return path
    except ModuleNotFoundError:
        pass
    return package.parent / "templates"


def template_name(situation: str) -> str:
    return f"{situation}.txt.j2"


# A workspace template's file name becomes a situation: plain lower-case words, so that it
# reads as one on the command line. Names starting with "_" are partials (_apology.txt.j2).
_SITUATION_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")


def builtin_situations() -> tuple[str, ...]:
    return tuple(SITUATIONS)


def situations_in(templates_dir: Path | None) -> Situations:
    """Every situation there is a template for: the built-in ones, then each
    ``templates/NAME.txt.j2`` of the workspace that is not one of them. A file whose name
    is not a situation's ("Family Wedding.txt.j2") is not one, but is kept in ``misnamed``
    with the name to rename it to."""
    found = dict(SITUATIONS)
    misnamed: dict[str, tuple[str, str]] = {}
    if templates_dir is not None and templates_dir.is_dir():
        for path in sorted(templates_dir.glob("*.txt.j2")):
            name = path.name[: -len(".txt.j2")]
            if name in found or name.lower() == "follow_up" or name.startswith("_"):
                continue
            if _SITUATION_NAME.fullmatch(name):
                found[name] = f"your own template ({path})"
                continue
            better = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")
            if better and not better[0].isalpha():
                better = f"my-{better}"
            misnamed[name.strip().lower()] = (path.name, better[:40] or "my-situation")
    return Situations(found, misnamed)


def same_as_builtin(templates_dir: Path) -> list[Path]:
    """Workspace templates identical to the packaged default (an older ``mailer init`` copied
    them all): while they stay, later wording fixes do not reach this workspace."""
    if not templates_dir.is_dir():
        return []
    defaults = default_templates_dir()
    same = []
    for path in sorted(templates_dir.glob("*.j2")):
        builtin = defaults / path.name
        try:
            if builtin.is_file() and path.read_bytes() == builtin.read_bytes():
                same.append(path)
        except OSError:
            continue
    return same


class Composer:
    """Renders the default templates and a workspace's own, which are data passed between a
    coach and candidates: sandboxed, confined to their folders and on a budget of work and
    output (see :mod:`mailer.model.templating`)."""

    def __init__(
        self,
        workspace_templates: Path | None = None,
        *,
        compiled_cache: Callable[[dict[str, Any]], Any] | None = None,
    ):
        """``compiled_cache``: given the environment's options, a Jinja2 bytecode cache that
        keeps compiled templates for the next run (the commands pass
        :func:`mailer.adapters.templatecache.template_cache`); None compiles every time."""
        from jinja2 import ChoiceLoader, StrictUndefined

        from mailer.model.templating import ConfinedLoader, TemplateEnvironment

        self.workspace_templates = workspace_templates
        self._situations: dict[str, str] | None = None
        self._builtin: dict[str, bool] = {}
        loaders = []
        if workspace_templates is not None and workspace_templates.is_dir():
            loaders.append(ConfinedLoader(str(workspace_templates)))
        loaders.append(ConfinedLoader(str(default_templates_dir())))
        options: dict[str, Any] = {
            "undefined": StrictUndefined,
            "autoescape": False,
            "trim_blocks": True,
            "lstrip_blocks": True,
            "keep_trailing_newline": True,
        }
        cache = compiled_cache(options) if compiled_cache is not None else None
        self.env = TemplateEnvironment(
            loader=ChoiceLoader(loaders), bytecode_cache=cache, **options
        )

    def builtin(self, name: str) -> bool:
        """Whether template ``name`` renders from the packaged (English) templates, not a
        workspace's own. Asked once per name: a campaign composes hundreds of messages."""
        found = self._builtin.get(name)
        if found is None:
            filename = self.env.get_template(name).filename or ""
            found = Path(filename).resolve().parent == default_templates_dir().resolve()
            self._builtin[name] = found
        return found

    def situations(self) -> dict[str, str]:
        """:func:`situations_in` its workspace templates, read once (its loaders are fixed
        when it is made, and a campaign composes hundreds of messages)."""
        if self._situations is None:
            self._situations = situations_in(self.workspace_templates)
        return self._situations

    def render(self, name: str, variables: dict[str, Any]) -> Draft:
        from jinja2 import TemplateNotFound, TemplateSyntaxError, UndefinedError
        from jinja2.sandbox import SecurityError

        from mailer.model.templating import render_limited

        try:
            text = render_limited(self.env.get_template(name), variables)
        except TemplateNotFound as exc:
            if exc.name == name:
                raise TemplateError(f"template {name!r} not found") from None
            raise TemplateError(f"template {name}: template {exc.name!r} not found") from None
        except SecurityError as exc:
            raise TemplateError(f"template {name}: refused: {_one_line(exc)}") from None
        except UndefinedError as exc:
            where, fact = _undefined_where(exc, name), _undefined_name(exc.message or "")
            raise TemplateError(
                f"template {where}: {exc.message} (a missing fact)",
                hint=f"give it with --var {fact}=... (in a campaign: {fact} = ... in the entry "
                "or its [defaults])"
                if fact
                else None,
            ) from None
        except TemplateSyntaxError as exc:
            raise TemplateError(
                f"template {exc.filename or name}:{exc.lineno}: {exc.message}"
            ) from None
        except MailerError:
            raise
        except UnicodeDecodeError as exc:
            raise TemplateError(
                f"template {name}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at "
                f"position {exc.start})",
                hint="save the file as UTF-8",
            ) from None
        except Exception as exc:  # a template is data: any failure of it is its own
            raise TemplateError(
                f"template {name}: cannot render: {type(exc).__name__}: {_one_line(exc)}"
            ) from None
        return _split(name, text)


def _undefined_where(exc: BaseException, name: str) -> str:
    """``file:line`` of the template line that used the missing fact, from the traceback
    (Jinja2 maps its frames back to the template's own lines), else the template's name."""
    tb, found = exc.__traceback__, name
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith((".j2", ".jinja", ".txt", ".html")):
            found = f"{filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


def _undefined_name(message: str) -> str:
    """The fact's name in Jinja2's "'name' is undefined" (else "")."""
    match = re.match(r"'([A-Za-z_][A-Za-z0-9_]*)' is undefined", message)
    return match.group(1) if match else ""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:199] + "…"


_TRAILING_BLANKS = re.compile(r"[ \t]+\n")
_BLANK_LINES = re.compile(r"\n{3,}")


# A header a template may seem to set on the lines after its Subject: they would go into the
# body as text ("Bcc: boss@example.com" in the letter itself; a walkthrough).
_HEADER_LIKE = re.compile(
    r"(?i:bcc|cc|to|from|reply-to|sender|date|message-id|in-reply-to|references|"
    r"content-type|content-transfer-encoding|mime-version|x-[\w-]+)[ \t]*:"
)


# Control characters other than tab and the line breaks, in a rendered template.
_TEMPLATE_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _split(name: str, text: str) -> Draft:
    # (A BOM, as Windows editors save UTF-8, is no part of the first line.)
    first, _, body = text.lstrip("\ufeff\n").partition("\n")
    if not first.lower().startswith("subject:"):
        raise TemplateError(f"template {name}: the first line must be 'Subject: ...'")
    for line in body.split("\n"):
        if not line.strip():
            break
        if _HEADER_LIKE.match(line):
            raise TemplateError(
                f"template {name}: {line.split(':', 1)[0]!r} after the Subject line is not a "
                "header: only the Subject is read from a template, and this line would go "
                "into the email as text",
                hint="delete it (Cc: --cc, or cc in a campaign entry); leave a blank line "
                "after the Subject",
            )
    subject = " ".join(first[len("subject:") :].split())
    # Each substitution only where it has something to do (a test for that is a tenth of a
    # search of a whole body for it).
    if " \n" in body or "\t\n" in body:
        body = _TRAILING_BLANKS.sub("\n", body)
    if "\n\n\n" in body:
        body = _BLANK_LINES.sub("\n\n", body)
    body = body.strip("\n") + "\n"
    if not subject:
        raise TemplateError(f"template {name}: the subject is empty")
    for part, content in (("subject", subject), ("body", body)):
        if m := _TEMPLATE_CONTROL.search(content):
            # The facts are checked for these before they are put in: it is the template's
            # own text (a NUL, a terminal escape, a form feed pasted from another program).
            raise TemplateError(
                f"template {name}: the {part} contains the control character "
                f"U+{ord(m.group(0)):04X}",
                hint="delete it from the template (an editor that shows invisible characters "
                "finds it)",
            )
        if m := _PLACEHOLDER.search(content):
            raise TemplateError(
                f"template {name}: the {part} still contains the placeholder {m.group(0)!r}"
            )
        if m := _JINJA_LEFTOVER.search(content):
            raise TemplateError(
                f"template {name}: the {part} still contains template markup {m.group(0)!r}"
            )
    return Draft(subject=subject, text=body, template=name)


# What Babel writes for those two, without loading it (~70 ms of start-up for the default
# locale); tests/test_composer.py compares every day of a year with Babel's.
_EN_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_EN_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def _fmt_day(dt: datetime, locale: str = "en_GB") -> str:
    """'Tuesday 1 December' (en_GB), 'Tuesday, December 1' (en_US): Babel, because the
    machine may have no system locales."""
    if locale in DAY_PATTERNS:
        return f"{_EN_WEEKDAYS[dt.weekday()]} {dt.day} {_EN_MONTHS[dt.month - 1]}"
    from babel import Locale
    from babel.dates import format_date

    pattern = DAY_PATTERNS.get(locale)
    if pattern is None:
        full = Locale.parse(locale).date_formats["full"].pattern  # e.g. "EEEE, MMMM d, y"
        pattern = re.sub(r"[,\s.]*(?:'de'\s+)?\by+\b\.?|y+年", "", full).strip(" ,")
    return format_date(dt, format=pattern, locale=locale)


def _fmt_when(dt: datetime, show_zone: bool, locale: str = "en_GB") -> str:
    when = f"{_fmt_day(dt, locale)} at {dt:%H:%M}"
    return f"{when} {zone_label(dt)}" if show_zone else when


def zone_label(dt: datetime) -> str:
    """The zone's abbreviation ("CET", "JST"), or, where tzdata has only digits ("+04" for
    Dubai, "+09" for an offset written as "+09:00"), the offset from UTC: "UTC+04"."""
    name = dt.tzname() or ""
    if name[:1] in "+-" and name[1:].isdigit():
        hours, minutes = name[1:3], name[3:5]
        return f"UTC{name[0]}{hours}{f':{minutes}' if minutes else ''}"
    return name


def _in_zone(dt: datetime, tz: str) -> datetime:
    return dt.astimezone(ZoneInfo(tz)) if tz else dt


# Free times that start sooner than this are not offered in a follow-up: the reader could not
# act on them in time.
FOLLOW_UP_NOTICE = timedelta(hours=6)

_TITLES = frozenset(
    [
        *("mr", "mrs", "ms", "miss", "mx", "dr", "prof", "professor", "sir", "dame", "lord"),
        *("lady", "rev", "revd", "fr", "hon", "capt", "sheikh", "herr", "frau", "señor"),
        *("señora", "señorita", "sr", "sra", "srta", "dra", "don", "doña", "m", "mme", "mlle"),
        *("dott", "dott.ssa", "ing", "mag", "eng", "lic", "mevr", "dhr", "ir"),
    ]
)
# After a comma, these finish a name ("Ana Ruiz, PhD"); anything else there is a first name
# written after the surname ("Müller, Hans").
_SUFFIXES = frozenset(
    ["phd", "md", "mba", "jr", "sr", "ii", "iii", "iv", "esq", "cpa", "msc", "ma", "bsc", "dphil"]
)


def default_salutation(interviewer: str) -> str:
    """Who 'Dear ...,' names when no --salutation is given: the first name ("Ana" for "Ana
    Ruiz"), as most hiring managers sign and are answered after an interview has been set up.
    A name that starts with a title ("Dr Li", "Ms Ruiz", "Mme Dupont") or an initial ("J. R.
    R. Tolkien") is kept whole: the title is how they asked to be called, and an initial is
    not a name to greet. "Müller, Hans" (the surname first, as a CSV export writes it) is
    "Hans" (it was "Dear Müller,,"; a walkthrough); "Ana Ruiz, PhD" is "Ana"."""
    name = " ".join(interviewer.split())
    if "," in name:
        before, _, after = name.partition(",")
        rest = [
            w for w in after.replace(",", " ").split() if w.rstrip(".").casefold() not in _SUFFIXES
        ]
        name = " ".join([*rest, before]) if rest and not _titled(before.split()) else before
    words = name.split()
    if not words:
        return interviewer.strip()
    first = words[0].rstrip(".")
    if _titled(words) or (len(first) == 1 and first.isalpha()):
        return " ".join(words)
    return words[0].rstrip(",;:")


def _titled(words: list[str]) -> bool:
    return bool(words) and words[0].rstrip(".").casefold() in _TITLES


def salutation(facts: Facts) -> str:
    return facts.salutation or default_salutation(facts.interviewer)


def upcoming_slots(facts: Facts, now: datetime) -> tuple[FreeSlot, ...]:
    """The free times a later message may still offer: not past, not starting within
    FOLLOW_UP_NOTICE."""
    return tuple(s for s in facts.free if s.start >= now + FOLLOW_UP_NOTICE)


def variables(facts: Facts, sender: SenderSettings, now: datetime) -> dict[str, Any]:
    """Everything a template may use. Times are shown in the interviewer's zone when known."""
    show_zone = bool(facts.interviewer_tz) and (
        _in_zone(facts.interview, facts.interviewer_tz).utcoffset() != facts.interview.utcoffset()
    )
    interview = _in_zone(facts.interview, facts.interviewer_tz)
    free_times = []
    for slot in facts.free:
        a, b = _in_zone(slot.start, facts.interviewer_tz), _in_zone(slot.end, facts.interviewer_tz)
        zone = f" {zone_label(a)}" if show_zone else ""
        free_times.append(f"{_fmt_day(a, sender.locale)}, {a:%H:%M}–{b:%H:%M}{zone}")
    return {
        **facts.extra,
        "situation": facts.situation,
        "interviewer": facts.interviewer,
        "salutation": salutation(facts),
        "subject_detail": "",
        "company": facts.company,
        "role": facts.role,
        "interview_when": _fmt_when(interview, show_zone, sender.locale),
        "interview_date": _fmt_day(interview, sender.locale),
        "interview_time": f"{interview:%H:%M}",
        "past": facts.interview <= now,
        "days_since": max(0, (now - facts.interview).days),
        "note": facts.note,
        "free_times": free_times,
        "interviewer_phone": facts.interviewer_phone,
        "sender_name": sender.name,
        "sender_email": sender.address,
        "sender_phone": sender.phone,
        "signature": sender.signature.strip() or sender.name,
    }


def compose_apology(
    composer: Composer,
    facts: Facts,
    sender: SenderSettings,
    now: datetime,
    taken_subjects: Container[str] = frozenset(),
) -> Draft:
    """``taken_subjects``: the subjects of open threads to the same address (from the store),
    which this one must not repeat."""
    if facts.situation not in composer.situations():
        raise InputError(f"--situation: unknown situation {facts.situation!r}")
    if facts.situation == "conflict" and facts.interview <= now:
        raise InputError(
            f"--situation conflict asks to move an interview that is still ahead, but "
            f"{facts.interview:%Y-%m-%d %H:%M} has passed; pick the situation that explains why "
            "you missed it (illness, personal, emergency, transport, technical)"
        )
    v = variables(facts, sender, now)
    draft = composer.render(template_name(facts.situation), v)
    if draft.subject in taken_subjects:
        draft = _distinct(composer, facts, v, draft, taken_subjects)
    return draft


def _distinct(
    composer: Composer, facts: Facts, v: dict[str, Any], draft: Draft, taken: Container[str]
) -> Draft:
    """Mail clients (and IMAP THREAD=REFERENCES) merge messages that share a subject: when an
    open thread to the same address already has this one, add the role, then the time too."""
    found = draft
    for detail in (f" ({facts.role})", f" ({facts.role}, {v['interview_time']})"):
        found = composer.render(template_name(facts.situation), {**v, "subject_detail": detail})
        if found.subject == draft.subject:
            # A workspace template without {{ subject_detail }}: the detail goes at the end.
            found = Draft(f"{draft.subject}{detail}", draft.text, draft.template)
        if found.subject not in taken:
            break
    return found


def compose_follow_up(
    composer: Composer,
    facts: Facts,
    sender: SenderSettings,
    now: datetime,
    original_subject: str,
    original_sent: datetime,
) -> Draft:
    # Times that have passed, or are too close to be taken up, are not offered again.
    v = variables(replace(facts, free=upcoming_slots(facts, now)), sender, now)
    v["original_subject"] = original_subject
    v["original_sent"] = _fmt_day(original_sent, sender.locale)
    return composer.render(FOLLOW_UP_TEMPLATE, v)


def build_message(
    draft: Draft,
    facts: Facts,
    sender: SenderSettings,
    now: datetime,
    *,
    html_part: bool = False,
    in_reply_to: str | None = None,
    references: str | None = None,
    subject: str | None = None,
    quote: str | None = None,
) -> Composed:
    """Headers + text (+ optional HTML) -> bytes, serialised once."""
    subject = subject if subject is not None else draft.subject
    # Checked again here, whatever built the facts: a stored thread, a campaign, a test.
    if problem := header_problem(subject, HEADER_MAX):
        raise TemplateError(f"template {draft.template}: the subject {problem}")
    for what, value in (
        ("sender.name", sender.name),
        ("sender.address", sender.address),
        ("--interviewer", facts.interviewer),
        ("--to", facts.to),
        *(("--cc", a) for a in facts.cc),
        ("In-Reply-To", in_reply_to or ""),
        ("References", references or ""),
    ):
        check_header(value, what, HEADER_MAX)
    domain = sender.address.rpartition("@")[2]
    message_id = make_msgid(idstring="mailer", domain=domain)
    headers: list[tuple[str, Any]] = [
        ("From", _address_header("From", sender.name, sender.address)),
        ("To", _address_header("To", facts.interviewer, facts.to)),
    ]
    if facts.cc:
        headers.append(("Cc", ", ".join(facts.cc)))
    headers += [
        ("Subject", subject),
        ("Date", _header("Date", _date_text(now.isoformat()))),
        ("Message-ID", message_id),
    ]
    if in_reply_to:
        headers += [("In-Reply-To", in_reply_to), ("References", references or in_reply_to)]
    headers.append(("MIME-Version", _header("MIME-Version", "1.0")))
    text = draft.text if quote is None else draft.text + "\n" + quote
    raw = library_bytes(headers, text, html_part) if html_part else plain_bytes(headers, text)
    raw = _short_encoded_words(raw)
    # A multipart/alternative's transfer encodings are in its parts.
    mime = ["Content-Type"] if html_part else ["Content-Type", "Content-Transfer-Encoding"]
    names = [name for name, _ in headers] + mime
    _check_written(raw, names, draft.template, {"From": (sender.address,), "To": (facts.to,)})
    return Composed(
        subject=subject,
        text=text,
        message_id=message_id,
        raw=raw,
        recipients=(facts.to, *facts.cc),
    )


# An RFC 2047 encoded word, as the library writes them (utf-8, B or Q).
_ENCODED_WORD = re.compile(rb"=\?utf-8\?([bBqQ])\?([^?\s]*)\?=")
_WORD_MAX = 75  # RFC 2047 section 2: an encoded word is at most 75 characters
_CHUNK = 45  # UTF-8 bytes a base64 word of 75 characters holds: 12 for =?utf-8?b??=, 60 of data


def _short_encoded_words(raw: bytes) -> bytes:
    """``raw`` with every encoded word in its header made at most 75 characters long: the
    library, writing a header unfolded (see _WRITE_POLICY), writes one word for a whole run
    of words ("=?utf-8?b?...?=" of 200 characters for "Société Générale on Tuesday 24
    November –"), which RFC 2047 forbids and strict readers then show as it is (a
    walkthrough). A long one is written again as several base64 words on the same line: a
    reader joins adjacent encoded words without the space between them, so the text read is
    the same."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not any(len(m.group(0)) > _WORD_MAX for m in _ENCODED_WORD.finditer(head)):
        return raw
    return _ENCODED_WORD.sub(_split_word, head) + sep + body


def _split_word(m: re.Match[bytes]) -> bytes:
    if len(m.group(0)) <= _WORD_MAX:
        return m.group(0)
    import base64

    data = m.group(2)
    if m.group(1) in b"bB":
        text = base64.b64decode(data).decode("utf-8")
    else:
        import quopri

        text = quopri.decodestring(data.replace(b"_", b" "), header=True).decode("utf-8")
    # Cut after a space where there is one (kept inside the word before the cut): a reader
    # that keeps the space between two encoded words, as Python's own parser of a display
    # name does against RFC 2047, then shows two spaces, not a word cut in two.
    words, chunk = [], b""
    for char in text:
        piece = char.encode("utf-8")
        if len(chunk) + len(piece) > _CHUNK:
            cut = chunk.rfind(b" ") + 1 or len(chunk)
            words.append(chunk[:cut])
            chunk = chunk[cut:]
        chunk += piece
    words.append(chunk)
    return b" ".join(b"=?utf-8?b?" + base64.b64encode(w) + b"?=" for w in words if w)


def library_bytes(headers: list[tuple[str, Any]], text: str, html_part: bool = False) -> bytes:
    """The message as the email library writes it from an EmailMessage: the reference that
    :func:`plain_bytes` must match byte for byte, and the writer of the HTML alternative."""
    msg = EmailMessage(policy=SMTP)
    for name, value in headers:
        msg[name] = value.parsed if isinstance(value, _Ready) else value
    msg.set_content(text, charset="utf-8")
    if html_part:
        msg.add_alternative(_as_html(text), subtype="html", charset="utf-8")
    return msg.as_bytes(policy=_WRITE_POLICY)


def plain_bytes(headers: list[tuple[str, Any]], text: str) -> bytes:
    """A text/plain message, written straight from the library's own header folding and body
    encoding, without building an EmailMessage: that object's bookkeeping (re-parsing every
    header it is given, the Content-Type parameters, the generator) was two thirds of
    composing a campaign entry. The bytes are the library's: tests hold this to
    :func:`library_bytes` on the same input."""
    out = [_folded(name, value) for name, value in headers]
    cte, payload = _encode_text(text)
    out.append(b'Content-Type: text/plain; charset="utf-8"\r\n')
    out.append(_header("Content-Transfer-Encoding", cte).line)
    out.append(b"\r\n")
    # The generator writes the payload's lines with the policy's line ending.
    out.append(payload.encode("ascii", "surrogateescape").replace(b"\n", b"\r\n"))
    return b"".join(out)


def _folded(name: str, value: Any) -> bytes:
    """One header line as the generator writes it (the policy's own parse and fold; a header
    object made by :func:`_header` is taken as it is, as EmailMessage takes it)."""
    if isinstance(value, _Ready):
        return value.line
    if _AS_IS.fullmatch(value) and "=?" not in value and len(name) + len(value) <= 996:
        # Printable ASCII words, one space apart, on one line: the library writes it as is
        # (nothing to encode, nothing to fold below 998 octets), at a fraction of the cost.
        return f"{name}: {value}\r\n".encode("ascii")
    if (line := _one_encoded_word(name, value)) is not None:
        return line
    return _WRITE_POLICY.fold_binary(*SMTP.header_store_parse(name, value))


_AS_IS = re.compile(r"[!-~]+(?: [!-~]+)*")


def _one_encoded_word(name: str, value: str) -> bytes | None:
    """An unstructured header of printable words one space apart, some not ASCII (a
    subject with a dash or an accent: most of a campaign's), as the library writes it: the
    words from the first to the last that is not ASCII in one RFC 2047 encoded word (the
    library's own encoder), the others as they are, on one line. None for anything else,
    which the library writes (tests hold this to the library's bytes)."""
    if name.lower() not in _UNSTRUCTURED or "=?" in value or not value.isprintable():
        return None
    words = value.split(" ")
    outside = [i for i, word in enumerate(words) if not word.isascii()]
    if not outside or "" in words:
        return None
    first, last = outside[0], outside[-1]
    encoded = _utf8_word(" ".join(words[first : last + 1]))
    line = " ".join([*words[:first], encoded, *words[last + 1 :]])
    if len(name) + len(line) > _ONE_LINE:
        return None
    return f"{name}: {line}\r\n".encode("ascii")


@lru_cache(maxsize=1024)
def _utf8_word(text: str) -> str:
    """The library's RFC 2047 encoded word for ``text``, remembered: a campaign's subjects
    differ in their ASCII words (the company), and share the rest (a dash, an accent)."""
    return _encoded_word(text, charset="utf-8")


# Headers the library reads as unstructured text; and a bound well below its 998-octet fold.
_UNSTRUCTURED = frozenset({"subject", "comments"})
_ONE_LINE = 900


def _encode_text(text: str) -> tuple[str, str]:
    """The transfer encoding and payload that ``set_content(text, charset="utf-8")`` picks
    (email.contentmanager's heuristic, for the SMTP policy: 78 columns, 8bit allowed)."""
    lines = text.encode("utf-8").splitlines()
    body = b"\n".join(lines) + b"\n"
    if max((len(line) for line in lines), default=0) <= SMTP.max_line_length:
        try:
            return "7bit", body.decode("ascii")
        except UnicodeDecodeError:
            return "8bit", body.decode("ascii", "surrogateescape")
    sniff = b"\r\n".join(lines[:10]) + b"\r\n"
    sniff_qp = _quoted_printable(lines[:10])
    if len(sniff_qp) > len(binascii.b2a_base64(sniff)):
        return "base64", _base64(b"\r\n".join(lines) + b"\r\n")
    if len(lines) <= 10:
        return "quoted-printable", sniff_qp
    return "quoted-printable", _quoted_printable(lines)


def _quoted_printable(lines: list[bytes]) -> str:
    """``quoprimime.body_encode`` of the lines (none holding CR or LF), each ended by LF,
    read as Latin-1, as the library encodes them: it encodes each line on its own, so each
    line's encoding is remembered (a campaign's messages share most of their lines; tests
    hold this to the library's function)."""
    return "".join(
        (_qp_line(line) if len(line) <= _QP_REMEMBERED else _qp(line)) + "\n" for line in lines
    )


def _qp(line: bytes) -> str:
    return quoprimime.body_encode(line.decode("latin-1"), SMTP.max_line_length)


_QP_REMEMBERED = 1000  # longer lines are encoded each time (the cache's memory stays small)
_qp_line = lru_cache(maxsize=1024)(_qp)


def _base64(data: bytes) -> str:
    # email.contentmanager._encode_base64: lines of at most 78 columns, each ending in \n.
    width = SMTP.max_line_length // 4 * 3
    return "".join(
        binascii.b2a_base64(data[i : i + width]).decode("ascii") for i in range(0, len(data), width)
    )


class _Ready(NamedTuple):
    """A header parsed once, and its line as written: a campaign writes the same From, To,
    Date and MIME-Version hundreds of times, and parsing and folding one costs ~0.5 ms."""

    parsed: Any  # EmailPolicy.header_store_parse passes a parsed header of that name through
    line: bytes


@lru_cache(maxsize=1024)
def _header(name: str, value: str) -> _Ready:
    parsed = SMTP.header_factory(name, value)
    return _Ready(parsed, _folded(name, parsed))


@lru_cache(maxsize=1024)
def _address_header(name: str, display_name: str, addr_spec: str) -> _Ready:
    parsed = SMTP.header_factory(name, Address(display_name=display_name, addr_spec=addr_spec))
    return _Ready(parsed, _folded(name, parsed))


@lru_cache(maxsize=64)
def _date_text(iso: str) -> str:
    """``format_datetime`` of the time written ``iso`` (its ISO text: a campaign's entries
    share one ``now``, so it is worked out once). Keyed on the text, which holds the offset
    the Date is written with: two equal times in two zones write two Dates."""
    return format_datetime(datetime.fromisoformat(iso))


# Who to blame when a header line cannot be written within RFC 5322's limit.
_HEADER_SOURCE = {"from": "sender.name", "to": "--interviewer", "cc": "--cc"}


def _check_written(
    raw: bytes, names: list[str], template: str, addresses: dict[str, tuple[str, ...]]
) -> None:
    """Read the serialised header back: only the headers we set, each once, no line over
    998 octets, and the addresses we meant. The library's own encoding and folding are what
    go out, so this is checked on them rather than trusted."""

    head = raw.split(b"\r\n\r\n", 1)[0]
    written: list[str] = []
    lines_of: dict[str, list[bytes]] = {}
    for line in head.split(b"\r\n"):
        if line[:1] not in (b" ", b"\t"):
            written.append(line.partition(b":")[0].decode("ascii", "replace").lower())
        lines_of.setdefault(written[-1] if written else "", []).append(line)
        if len(line) > 998:
            name = written[-1] if written else "?"
            if name == "subject":
                raise TemplateError(
                    f"template {template}: the subject has a word too long for one header line "
                    f"({len(line)} octets; at most 998)"
                )
            raise InputError(
                f"{_HEADER_SOURCE.get(name, name)}: too long for one header line "
                f"({len(line)} octets; at most 998)"
            )
    if sorted(written) != sorted(n.lower() for n in names):
        extra = sorted(set(written) - {n.lower() for n in names}) or sorted(written)
        raise InputError(f"the message would carry headers it was not given: {', '.join(extra)}")
    for name, expected in addresses.items():
        # Each header is there once (checked above), so it reads the same on its own.
        found = _addresses_in(b"\r\n".join(lines_of[name.lower()]) + b"\r\n", name)
        if found != expected:
            raise InputError(
                f"{_HEADER_SOURCE.get(name.lower(), name)}: the {name} header would name "
                f"{', '.join(found) or 'nobody'} instead of {', '.join(expected)}"
            )


@lru_cache(maxsize=1024)
def _addresses_in(header: bytes, name: str) -> tuple[str, ...]:
    """The addresses a header, as written, names. Cached: a campaign writes the same From
    and the same few To lines again and again."""
    from email.parser import BytesHeaderParser
    from email.policy import default

    return tuple(
        a.addr_spec for a in BytesHeaderParser(policy=default).parsebytes(header)[name].addresses
    )


def _as_html(text: str) -> str:
    import html  # (only an HTML part needs it: its entity table is a hundredth of a preview)

    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    body = "\n".join(
        "<p>" + "<br>\n".join(html.escape(line) for line in p.splitlines()) + "</p>"
        for p in paragraphs
    )
    return (
        f'<!DOCTYPE html>\n<html><body style="font-family: sans-serif">\n{body}\n</body></html>\n'
    )


def quote_original(text: str, sent: datetime, sender_name: str, locale: str = "en_GB") -> str:
    lines = "\n".join(f"> {line}" if line else ">" for line in text.rstrip("\n").splitlines())
    when = f"{_fmt_day(sent, locale)} {sent:%Y} at {sent:%H:%M}"
    return f"On {when}, {sender_name} wrote:\n{lines}\n"
