"""A campaign file: shared defaults and many entries (inline, or rows of a CSV file) ->
validated, rendered entries, or every problem in every entry, each with file, line and key.

Nothing here connects to a server or writes the state store; ``mailer.services.runner`` sends.
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, tzinfo
from itertools import chain
from pathlib import Path
from typing import Any

from mailer.adapters.claims import Claims
from mailer.adapters.clock import local_zone
from mailer.adapters.config import MAX_DAILY_CAP, Settings, has_control_chars, printable
from mailer.adapters.snapshot import Snapshot
from mailer.adapters.spill import IN_MEMORY, Spill, Spilled, SpillList
from mailer.adapters.tomlentries import CampaignToml, Unchunkable, read_chunked, read_whole
from mailer.errors import ConfigError, InputError, MailerError
from mailer.model.apology import Prepared, prepare, with_policy
from mailer.model.composer import Composed, Composer, Draft, situations_in
from mailer.model.facts import Facts, file_when, make_facts
from mailer.model.keys import dedupe_key, derive_key
from mailer.model.lint import Finding, has_errors
from mailer.model.settings import parse_window, validate_wait
from mailer.model.values import (
    NAME_MAX,
    PHONE_MAX,
    SHORT_MAX,
    SIGNATURE_MAX,
    body_problem,
    header_problem,
    shown,
)

CAMPAIGNS_DIR = Path("config") / "campaigns"
# What an entry (or [defaults]) may say. Lists may be written "a; b" in a CSV cell.
TEXT_KEYS = (
    "key",
    "to",
    "interviewer",
    "salutation",
    "company",
    "role",
    "interview",
    "situation",
    "note",
    "interviewer_tz",
    "interviewer_phone",
    "account",
    "timezone",
    "follow_up_wait",
    "sender_name",
    "sender_phone",
    "signature",
)
LIST_KEYS = ("free", "cc", "alt_addresses", "alt_domains")
INT_KEYS = ("max_follow_ups",)
ENTRY_KEYS = (*TEXT_KEYS, *LIST_KEYS, *INT_KEYS, "vars")
REQUIRED = ("to", "interviewer", "company", "role", "interview", "situation")
_MISSING = "missing (give it in the entry or in [defaults])"
# Entry keys that make_facts does not see, each checked by the rule for where it goes (the
# sender's name and phone reach headers; the signature only the body).
OWN_TEXT_RULES = {
    "key": (header_problem, SHORT_MAX),
    "account": (header_problem, SHORT_MAX),
    "timezone": (header_problem, SHORT_MAX),
    "follow_up_wait": (header_problem, SHORT_MAX),
    "sender_name": (header_problem, NAME_MAX),
    "sender_phone": (header_problem, PHONE_MAX),
    "signature": (body_problem, SIGNATURE_MAX),
}
EXAMPLE_DOMAINS = frozenset({"example.com", "example.net", "example.org"})
_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+/:-]{0,119}")


@dataclass(frozen=True)
class Throttle:
    """How fast a run may send. Zero means no limit."""

    per_minute: float = 0.0
    jitter_seconds: float = 0.0
    daily_cap: int = 0  # per account, across runs; the account's own cap may be lower
    reconnect_after: int = 0  # messages per SMTP connection; 0: only when the server drops it


@dataclass(slots=True)
class Entry:
    """A valid, rendered and checked entry. Only what sending needs is kept (the message's
    bytes, not the draft and text beside them, and one Settings per account and policy),
    and past the first entries of a campaign the entries go to a temporary file (see
    _entry_list and spill): memory stays flat in the number of entries while all are
    checked before the first is sent."""

    key: str
    where: str  # "file:line" or "file.csv:line"
    account: str
    settings: Settings  # the account's, with this entry's sender details and follow-up policy
    policy: dict[str, Any]  # kept with the thread, so its follow-ups use the same policy
    # (facts, message) or where they were put aside: the message is what goes to SMTP and
    # to Sent, its ``text`` left empty.
    held: tuple[Facts, Composed] | Spilled
    findings: tuple[Finding, ...] = ()
    template: str = ""
    derived_key: bool = False
    # The store's duplicate guard's key for this interview (address, time, account): kept
    # beside the facts so the checks of a big campaign need not read its facts back for it.
    interview_key: str = ""

    def _held(self) -> tuple[Facts, Composed]:
        held = self.held
        return held if isinstance(held, tuple) else held.get()

    @property
    def facts(self) -> Facts:
        return self._held()[0]

    @property
    def message(self) -> Composed:
        return self._held()[1]

    def sendable(self) -> Prepared:
        """The apology as the sending path records it: the message, no text read back."""
        facts, m = self._held()
        return Prepared(facts, Draft(m.subject, "", self.template), m, self.findings)

    @property
    def prepared(self) -> Prepared:
        """The apology as :func:`apology.prepare` made it, its text read back from the
        message's bytes (for preview and tests; the sending path uses ``message``)."""
        facts, m = self._held()
        text = message_text(m.raw)
        return Prepared(
            facts=facts,
            draft=Draft(subject=m.subject, text=text, template=self.template),
            composed=Composed(m.subject, text, m.message_id, m.raw, m.recipients),
            findings=self.findings,
        )


def message_text(raw: bytes) -> str:
    """The text/plain part of a message we built."""
    from email import message_from_bytes
    from email.policy import default

    msg = message_from_bytes(raw, policy=default)
    part = msg.get_body(preferencelist=("plain",))
    text = str(part.get_content()) if part is not None else ""  # type: ignore[union-attr]
    return text.replace("\r\n", "\n")  # written with CRLF line ends; composed with LF


@dataclass
class Campaign:
    name: str
    path: Path
    throttle: Throttle
    # Past the first IN_MEMORY, read back from ``spill`` when asked for (see _entry_list).
    entries: Sequence[Entry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # each "file:line: entry KEY: key: what"
    invalid: int = 0  # entries with at least one problem
    file_level: int = 0  # problems with the file itself, which --skip-invalid cannot skip
    total: int = 0  # entries in the file(s), valid or not
    # Where the entries past the first IN_MEMORY are kept (see _entry_list).
    spill: Spill = field(default_factory=Spill, repr=False)

    def entry(self, key: str) -> Entry:
        for e in self.entries:
            if e.key == key:
                return e
        own = [p for p in self.problems if f": entry {key}: " in p]
        if own:  # an entry of the file, with problems: those, not "no such entry"
            raise InputError(
                f"entry {key!r} is not valid: {own[0]}"
                + (
                    f" (and {len(own) - 1} more: 'mailer campaign check' lists them)"
                    if len(own) > 1
                    else ""
                )
            )
        raise InputError(f"{self.path}: no valid entry with key {key!r}")


def campaign_name(path: Path, data: dict[str, Any]) -> str:
    table = data.get("campaign", {})
    name = table.get("name") if isinstance(table, dict) else None
    return name if _is_name(name) else path.stem


def _is_name(value: Any) -> bool:
    """One line of text: a campaign's name is stored and printed in one-line reports."""
    return isinstance(value, str) and bool(value.strip()) and not has_control_chars(value)


def load_campaign(
    path: Path,
    settings: Settings,
    now: datetime,
    *,
    force: bool = False,
    composer: Composer | None = None,
    open_subjects: Callable[[str], frozenset[str]] | None = None,
) -> Campaign:
    """Read, check and render every entry. Problems are collected, never raised one by one;
    only an unreadable file raises. ``force`` lets apology-check errors through.
    ``open_subjects`` (the store's): the subjects of open threads to an address, which an
    entry's subject must not repeat, any more than another entry's to the same address."""
    args = (path, settings, now, force, composer, open_subjects)
    try:
        return _load(read_chunked(path), *args)
    except Unchunkable:
        # (Rare: a file cut into entries might read otherwise; the work done is redone.)
        return _load(read_whole(path), *args)


def _load(
    toml: CampaignToml,
    path: Path,
    settings: Settings,
    now: datetime,
    force: bool,
    composer: Composer | None,
    open_subjects: Callable[[str], frozenset[str]] | None,
) -> Campaign:
    data = toml.tables
    problems: list[str] = []

    def problem(where: str, message: str) -> None:
        problems.append(f"{where}: {message}")

    for key in data:
        if key not in ("campaign", "defaults", "follow_up", "throttle", "entries"):
            problem(
                f"{path}: {key}",
                "unknown table (known: campaign, defaults, follow_up, throttle, entries)",
            )
    meta = _table(data, "campaign", path, problem)
    for key in meta:
        if key not in ("name", "entries_csv"):
            problem(f"{path}: campaign.{key}", "unknown setting (known: name, entries_csv)")
    if "name" in meta and not _is_name(meta["name"]):
        problem(f"{path}: campaign.name", "must be a non-empty text on one line")
    name = campaign_name(path, data)
    defaults = _table(data, "defaults", path, problem)
    for key in defaults:
        if key not in ENTRY_KEYS or key == "key":
            problem(f"{path}: defaults.{key}", "unknown setting")
    throttle = _throttle(_table(data, "throttle", path, problem), path, problem)
    follow_up = _follow_up(_table(data, "follow_up", path, problem), settings, path, problem)

    if not toml.entries_valid:
        problem(f"{path}: entries", "must be a list of tables ([[entries]])")
    # The file's entries are read as they are checked, one at a time; a CSV's are read first
    # (its own problems come before any entry's).
    inline = (
        (f"{path}:{line}" if line else f"{path}: entries[{i}]", e)
        for i, (line, e) in enumerate(toml.entries)
    )
    csv_rows = 0
    csv_entries: Iterable[tuple[str, dict[str, Any]]] = ()
    csv_name = meta.get("entries_csv")
    if csv_name is not None:
        if not isinstance(csv_name, str) or not csv_name.strip() or has_control_chars(csv_name):
            problem(f"{path}: campaign.entries_csv", "must be the path of a CSV file")
        else:
            csv_rows, csv_entries = _csv_entries(path.parent / csv_name, path, problem)
    if not toml.has_entries and not csv_rows and not problems:
        problem(f"{path}: entries", "no entries: add [[entries]] tables or campaign.entries_csv")

    from mailer.adapters.templatecache import template_cache

    composer = composer or Composer(settings.templates_dir, compiled_cache=template_cache)
    campaign = Campaign(name=name, path=path, throttle=throttle, problems=problems)
    campaign.entries = _entry_list(campaign.spill)
    campaign.file_level = len(problems)
    claims = Claims(in_memory=IN_MEMORY)  # the keys and subjects taken so far
    shared: dict[Any, tuple[Settings, dict[str, Any]]] = {}  # see _with_policy
    # Read once for every entry: the templates folder's situations, and each zone named.
    situations = situations_in(settings.templates_dir)
    zones: dict[str, tzinfo] = {}
    try:
        for where, raw in chain(inline, csv_entries):
            campaign.total += 1
            entry, entry_problems = _entry(
                where,
                raw,
                defaults,
                follow_up,
                settings,
                now,
                composer,
                claims,
                open_subjects,
                shared,
                situations,
                zones,
                force=force,
            )
            if entry is not None:
                claims.claim_subject(entry.facts.to, entry.message.subject)
            if entry is not None and not force and has_errors(entry.findings):
                entry_problems += [
                    f"apology check: [{f.rule}] {f.message} (fix the entry, or pass --force)"
                    for f in entry.findings
                    if f.severity == "error"
                ]
            label = (
                f"entry {entry.key}" if entry else f"entry {shown(raw.get('key') or raw.get('to'))}"
            )
            if entry is not None and (earlier := claims.claim_key(entry.key, where)):
                entry_problems.append(
                    f"duplicate key {entry.key!r} (also at {earlier})"
                    + (
                        ": same address, company and interview time (two candidates for one "
                        "panel? each sends from an account of its own: [accounts.NAME] in the "
                        "config, and account = NAME in the entry)"
                        if entry.derived_key
                        else ""
                    )
                )
            elif entry is not None and (
                earlier := claims.claim_key(
                    "interview " + entry.interview_key,
                    where,
                )
            ):
                # Two keys, one interview ("Acme, Inc" and "ACME inc"): both would go.
                entry_problems.append(
                    f"the same interview as the entry at {earlier} (same address and time, "
                    "whatever the company): one apology per interview"
                )
            if entry_problems:
                campaign.invalid += 1
                problems += [f"{where}: {label}: {p}" for p in entry_problems]
            elif entry is not None:
                campaign.entries.append(entry)
        campaign.spill.flush()
    except BaseException:
        campaign.spill.close()
        raise
    finally:
        claims.close()
    # Keys, cells and values from the files appear in these lines: keep each one line.
    problems[:] = [printable(p) for p in problems]
    return campaign


def _entry_list(spill: Spill) -> SpillList[Entry]:
    """The valid entries: past the first IN_MEMORY, each entry is put in ``spill`` whole, its
    facts and message apart (read back only when they are used), and its settings and policy,
    one pair for many entries, as an index into a list of pairs."""
    pairs: list[tuple[Settings, dict[str, Any]]] = []
    index: dict[tuple[int, int], int] = {}

    def pack(e: Entry) -> tuple[Any, ...]:
        pair = (id(e.settings), id(e.policy))
        if pair not in index:
            index[pair] = len(pairs)
            pairs.append((e.settings, e.policy))
        held = e.held if isinstance(e.held, Spilled) else spill.put(e.held)
        return (
            e.key,
            e.where,
            e.account,
            index[pair],
            *held.place,
            e.findings,
            e.template,
            e.derived_key,
            e.interview_key,
        )

    def unpack(t: tuple[Any, ...]) -> Entry:
        key, where, account, pair, at, size, findings, template, derived_key, interview = t
        settings, policy = pairs[pair]
        held = Spilled(spill, at, size)
        return Entry(
            key, where, account, settings, policy, held, findings, template, derived_key, interview
        )

    return SpillList(spill, pack, unpack, in_memory=IN_MEMORY)


def _table(data: dict[str, Any], name: str, path: Path, problem: Any) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        problem(f"{path}: {name}", f"must be a table ([{name}])")
        return {}
    return value


def _throttle(t: dict[str, Any], path: Path, problem: Any) -> Throttle:
    known = ("rate", "jitter", "daily_cap", "reconnect_after")
    for key in t:
        if key not in known:
            problem(f"{path}: throttle.{key}", f"unknown setting (known: {', '.join(known)})")
    out = Throttle()
    rate = t.get("rate", 0)
    if isinstance(rate, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/|per)\s*(min|minute|hour|h)\s*", rate)
        if m:
            rate = float(m.group(1)) / (60 if m.group(2) in ("hour", "h") else 1)
    if (
        isinstance(rate, bool)
        or not isinstance(rate, (int, float))
        or not math.isfinite(rate)
        or not 0 <= rate <= 10_000
    ):
        problem(f"{path}: throttle.rate", "must be messages per minute, e.g. 20 or '300/hour'")
    else:
        out = replace(out, per_minute=float(rate))
    jitter = t.get("jitter", 0)
    try:
        seconds = (
            float(jitter)
            if isinstance(jitter, (int, float)) and not isinstance(jitter, bool)
            else 0.0
            if str(jitter).strip() in ("0", "0s")
            else validate_wait(str(jitter)).duration.total_seconds()
        )
        if not math.isfinite(seconds) or not 0 <= seconds <= 3600:
            raise ValueError(f"must be between 0 and 3600 seconds, not {jitter!r}")
        out = replace(out, jitter_seconds=seconds)
    except ValueError as exc:
        problem(f"{path}: throttle.jitter", f"{exc} (use a duration such as '3s')")
    for key in ("daily_cap", "reconnect_after"):
        value = t.get(key, getattr(out, key))
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DAILY_CAP:
            problem(f"{path}: throttle.{key}", f"must be a whole number from 0 to {MAX_DAILY_CAP}")
        else:
            out = replace(out, **{key: value})
    if out.reconnect_after == 0:
        out = replace(out, reconnect_after=10**9)
    return out


def _follow_up(t: dict[str, Any], settings: Settings, path: Path, problem: Any) -> dict[str, Any]:
    """The campaign's follow-up policy over the config's: wait, count and sending window."""
    known = ("wait", "max_follow_ups", "window", "window_days")
    for key in t:
        if key not in known:
            problem(f"{path}: follow_up.{key}", f"unknown setting (known: {', '.join(known)})")
    out: dict[str, Any] = {}
    if "window" in t or "window_days" in t:
        try:
            parse_window(str(t.get("window", "09:00-17:00")), str(t.get("window_days", "mon-fri")))
            out["window"] = str(t.get("window", "09:00-17:00"))
            out["window_days"] = str(t.get("window_days", "mon-fri"))
        except ValueError as exc:
            problem(f"{path}: follow_up.window", str(exc))
    if "wait" in t:
        try:
            validate_wait(str(t["wait"]))
            out["wait"] = str(t["wait"])
        except ValueError as exc:
            problem(f"{path}: follow_up.wait", str(exc))
    if "max_follow_ups" in t:
        n = t["max_follow_ups"]
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 5:
            problem(f"{path}: follow_up.max_follow_ups", "must be between 0 and 5")
        else:
            out["max_follow_ups"] = n
    return out


def _csv_entries(
    csv_path: Path, toml_path: Path, problem: Any
) -> tuple[int, Iterable[tuple[str, dict[str, Any]]]]:
    """Rows of a spreadsheet export: a header row of entry keys (``var.NAME`` for template
    variables); empty cells take the defaults; lists are separated by ';'. How many rows
    there are, and the rows as they are read.

    The file is read three times, never held whole: its bytes checked as UTF-8, then its
    rows as CSV (the file's own problems come before any entry's), then each row as it is
    checked. Each read must take the same bytes as the first (a file saved meanwhile would
    be checked half old, half new): if not, a problem, or on the last read (entries
    checked already), an error."""
    try:
        bad, first = _not_utf8(csv_path)
    except (OSError, ValueError) as exc:  # ValueError: a path no file system accepts
        problem(f"{toml_path}: campaign.entries_csv", f"cannot read {csv_path}: {exc}")
        return 0, ()
    if bad is not None:
        line, byte = bad
        problem(f"{csv_path}:{line}", f"not UTF-8 text (byte {byte:#x}); save it as 'CSV UTF-8'")
        return 0, ()
    rows = sum(1 for _ in _csv_rows(csv_path, toml_path, first, problem, problem))

    def changed(where: str, message: str) -> None:
        raise ConfigError(f"{where}: {message}", hint="nothing was sent; run it again")

    # (Its problems were told by the read before; a change since is an error now.)
    return rows, _csv_rows(csv_path, toml_path, first, lambda *_: None, changed)


def _not_utf8(path: Path) -> tuple[tuple[int, int] | None, bytes]:
    """The line and the value of the first byte that is not UTF-8, if there is one, and the
    digest of the file's bytes (see snapshot). (Line by line: no UTF-8 sequence holds a
    newline byte, so each line decodes as it would whole.)"""
    with Snapshot(path) as snap:
        for number, line in enumerate(snap.file, 1):
            try:
                line.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                return (number, exc.object[exc.start]), b""
        return None, snap.digest()


def _csv_rows(
    csv_path: Path, toml_path: Path, digest: bytes, problem: Any, changed: Any
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The rows, and the file's problems told to ``problem``. The file must hold the bytes
    whose ``digest`` the first read took, and be read whole: if not, ``changed`` is told."""
    try:
        snap = Snapshot(csv_path, encoding="utf-8-sig", newline="")
    except (OSError, ValueError) as exc:
        changed(f"{toml_path}: campaign.entries_csv", f"cannot read {csv_path}: {exc}")
        return
    with snap:
        lines = _Lines(snap.file)
        reader = csv.DictReader(lines)
        try:
            try:
                columns = reader.fieldnames or []
                if (
                    len(columns) == 1
                    and (sep := next((c for c in ";\t|" if c in columns[0]), None))
                    and {c.strip() for c in columns[0].split(sep)} & {"to", "company"}
                ):
                    # A spreadsheet's export where ',' is the decimal mark: one column named
                    # 'to;interviewer;company;...' is not a typo to name, but a separator.
                    shown = "';'" if sep == ";" else ("a tab" if sep == "\t" else f"'{sep}'")
                    problem(
                        f"{csv_path}:1",
                        f"the columns are separated by {shown}, not ','; save it again as "
                        "'CSV UTF-8 (comma delimited)'",
                    )
                    return  # (its rows would each be one unknown key: nothing to add)
                for col in columns:
                    if (col not in ENTRY_KEYS and not col.startswith("var.")) or col == "vars":
                        problem(
                            f"{csv_path}:1: column {col!r}",
                            f"unknown (known: {', '.join(k for k in ENTRY_KEYS if k != 'vars')}, "
                            "var.NAME)",
                        )
                for col in sorted({c for c in columns if columns.count(c) > 1}):
                    problem(f"{csv_path}:1: column {col!r}", "appears more than once")
                lines.row_done()
                for row in reader:
                    entry = _csv_entry(row)
                    if entry:
                        yield f"{csv_path}:{lines.row_start()}", entry
                    lines.row_done()
            except csv.Error as exc:
                # The row's first line: the reader's own count may not have reached the bad
                # line (a cell over the field limit is refused before its line is counted).
                problem(f"{csv_path}:{lines.row_start()}", f"cannot read the CSV: {exc}")
            # To its end, a block at a time (after a CSV error, the rest was not read).
            for _ in iter(lambda: snap.file.read(1 << 16), ""):
                pass
        except UnicodeDecodeError:  # (the first read found it UTF-8)
            changed(f"{csv_path}", "changed while it was being read (no longer UTF-8 text)")
            return
        except OSError as exc:
            changed(f"{toml_path}: campaign.entries_csv", f"cannot read {csv_path}: {exc}")
            return
        if snap.digest() != digest:
            changed(f"{csv_path}", "changed while it was being read")


class _Lines:
    """The file's lines as the CSV reader takes them, numbered, to name where a row starts:
    the reader skips blank lines between rows without counting them apart, and a cell may
    span lines."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self._taken = 0  # lines handed to the reader
        self._start = 0  # the first line of the row being read that is not blank; 0: none yet

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self._taken += 1
        if not self._start and line.strip("\r\n"):
            self._start = self._taken
        return line

    def row_done(self) -> None:
        self._start = 0

    def row_start(self) -> int:
        """Where the row last read (or being read) starts."""
        return self._start or self._taken + 1


def _csv_entry(row: dict[str | None, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    variables: dict[str, str] = {}
    for col, value in row.items():
        if col is None:  # DictReader files extra cells under None
            entry.setdefault("_problems", []).append("more cells than columns")
            continue
        value = (value or "").strip()
        if not value:
            continue
        if col.startswith("var."):
            variables[col[4:]] = value
        elif col in LIST_KEYS:
            entry[col] = [v.strip() for v in value.split(";") if v.strip()]
        elif col in INT_KEYS:
            # ASCII digits only: "²".isdigit() is true, but int() refuses it.
            entry[col] = int(value) if re.fullmatch(r"[0-9]{1,9}", value) else value
        elif col in ENTRY_KEYS:
            entry[col] = value
    if variables:
        entry["vars"] = variables
    return entry


def _entry(
    where: str,
    raw: dict[str, Any],
    defaults: dict[str, Any],
    follow_up: dict[str, Any],
    settings: Settings,
    now: datetime,
    composer: Composer,
    claims: Claims | None = None,
    open_subjects: Callable[[str], frozenset[str]] | None = None,
    shared: dict[Any, tuple[Settings, dict[str, Any]]] | None = None,
    situations: dict[str, str] | None = None,
    zones: dict[str, tzinfo] | None = None,
    facts_only: bool = False,
    force: bool = False,
) -> tuple[Entry | None, list[str]]:
    """The entry, or None and every problem it has. ``facts_only``: its facts are checked,
    not composed (for an entry missing some, read with stand-ins: see below). ``force``:
    the apology check's errors are let through (see load_campaign)."""
    raw = dict(raw)
    problems: list[str] = list(raw.pop("_problems", []))
    # An unknown key (a typo) stops nothing else from being checked: every problem of the
    # entry is listed at once, not the next one only after the first is mended.
    unknown = [
        f"{key}: unknown key (known: {', '.join(ENTRY_KEYS)})"
        for key in raw
        if key not in ENTRY_KEYS
    ]
    merged = {**defaults, **raw}
    for source in (defaults, raw):
        if "vars" in source and not isinstance(source["vars"], dict):
            problems.append('vars: must be a table of names and texts, e.g. { team = "Data" }')
    merged["vars"] = {**_dict(defaults.get("vars")), **_dict(raw.get("vars"))}
    values: dict[str, Any] = {}
    toml_when: date | None = None  # a TOML date-time: read once the entry's zone is known
    for key in TEXT_KEYS:
        v = merged.get(key, "")
        if key == "interview" and isinstance(v, (datetime, date)):
            toml_when, v = v, "(a TOML date-time)"
        if not isinstance(v, str):
            problems.append(f"{key}: must be text, not {v!r}")
            v = ""
        values[key] = v.strip() if key != "note" else v
        rule = OWN_TEXT_RULES.get(key)
        if rule and (problem := rule[0](values[key], rule[1])):
            problems.append(f"{key}: {problem}")
    for key in LIST_KEYS:
        v = merged.get(key, [])
        v = [v] if isinstance(v, str) else v
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            problems.append(f"{key}: must be a list of text")
            v = []
        values[key] = v
    missing = [key for key in REQUIRED if not values[key]]
    if problems:
        return None, [*unknown, *problems, *(f"{k}: {_MISSING}" for k in missing)]
    if missing:
        # Every problem at once: the rest is checked too, each missing fact standing in as
        # a harmless value, and the entry is refused with all of them (it used to stop at
        # "situation: missing", and its unreadable date came only on the next check).
        stand_ins = {
            "to": "someone@example.com",
            "interviewer": "Someone",
            "company": "Company",
            "role": "Role",
            "interview": f"{now:%Y-%m-%d %H:%M}",
            "situation": next(iter(situations or ()), "illness"),
        }
        _, rest = _entry(
            where,
            {**raw, **{k: stand_ins[k] for k in missing}},
            defaults,
            follow_up,
            settings,
            now,
            composer,
            situations=situations,
            zones=zones,
            facts_only=True,  # (the text would be about the stand-ins: "still ahead, but...")
        )
        # (Not a word about the stand-ins themselves: an example address, say.)
        rest = [p for p in rest if p not in unknown and p.partition(":")[0] not in missing]
        return None, [*unknown, *(f"{k}: {_MISSING}" for k in missing), *rest]
    problems = unknown

    account = values["account"]
    try:
        entry_settings = settings.for_account(account)
    except ConfigError:
        known = ", ".join(n for n in settings.account_names if n) or "none are configured"
        return None, [
            *problems,
            f"account: no account {account!r} in {settings.path} (known: {known})",
        ]
    sender_overrides = {
        field_name: values[key]
        for key, field_name in (
            ("sender_name", "name"),
            ("sender_phone", "phone"),
            ("signature", "signature"),
        )
        if values[key]
    }
    policy: dict[str, Any] = dict(follow_up)
    if values["follow_up_wait"]:
        try:
            validate_wait(values["follow_up_wait"])
            policy["wait"] = values["follow_up_wait"]
        except ValueError as exc:
            problems.append(f"follow_up_wait: {exc}")
    if "max_follow_ups" in merged:
        n = merged["max_follow_ups"]
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 5:
            problems.append("max_follow_ups: must be a whole number between 0 and 5")
        else:
            policy["max_follow_ups"] = n
    if sender_overrides:
        policy["sender"] = sender_overrides
    entry_settings, policy = _with_policy(entry_settings, account, policy, shared)
    zone_name = values["timezone"] or entry_settings.sender.timezone
    try:
        tz = zones[zone_name] if zones and zone_name in zones else local_zone(zone_name)
    except InputError as exc:
        return None, [*problems, f"timezone: {exc}"]
    if zones is not None:
        zones[zone_name] = tz  # (a zone refused is refused again, in the same words)
    if toml_when is not None:
        values["interview"] = _toml_time(toml_when, tz, problems)
    # (orders a numeric date's day and month, as for the command line)
    locale = entry_settings.sender.locale if entry_settings.sender.locale_set else None
    variables = merged["vars"]
    try:
        facts = make_facts(
            situation=values["situation"],
            to=values["to"],
            interviewer=values["interviewer"],
            company=values["company"],
            role=values["role"],
            interview=values["interview"],
            tz=tz,
            salutation=values["salutation"],
            note=values["note"],
            free=values["free"],
            interviewer_tz=values["interviewer_tz"],
            interviewer_phone=values["interviewer_phone"],
            cc=values["cc"],
            var=[f"{k}={v}" for k, v in variables.items()],
            alt_address=values["alt_addresses"],
            alt_domain=values["alt_domains"],
            allow_test_domains=settings.allow_test_domains,
            locale=locale,
            prefix="",
            situations=situations
            if situations is not None
            else situations_in(settings.templates_dir),
        )
    except InputError as exc:
        found = [*problems, *getattr(exc, "problems", [str(exc)])]
        # An interview time that reads may be far from today too, which the check of the
        # composed apology would say only once these are mended: said now, every problem
        # at once (a walkthrough).
        when = None if force or facts_only else _interview_of(values["interview"], tz, locale)
        if when is not None:
            found += _far_interview(when, now)
        return None, found
    for name, address in (("to", facts.to), *(("cc", a) for a in facts.cc)):
        domain = address.rpartition("@")[2].lower()
        if domain in EXAMPLE_DOMAINS or domain.endswith(".example"):
            # The example file's addresses: they receive no mail, so this is an unedited copy.
            problems.append(
                f"{name}: {address} is an example address (RFC 2606) that receives no mail; "
                "put in the real one"
            )
    key, derived = values["key"], False
    if key and not _KEY_RE.fullmatch(key):
        problems.append(f"key: {key!r} may use letters, digits and . _ @ + / : - only")
    if not key:
        key, derived = derive_key(facts.to, facts.company, facts.interview, account), True
    if facts_only:
        return None, problems
    try:
        opened = open_subjects(facts.to) if open_subjects is not None else frozenset()
        taken = _Taken(facts.to, opened, claims)
        prepared = prepare(
            entry_settings, facts, now, composer, unattended=True, taken_subjects=taken
        )
    except MailerError as exc:  # (a free time in the past stops the apology's check)
        far = [] if force else _far_interview(facts.interview, now)
        return None, [*problems, *getattr(exc, "problems", [str(exc)]), *far]
    if problems:
        return None, problems
    return (
        Entry(
            key=key,
            where=where,
            account=account,
            settings=entry_settings,
            policy=policy,
            held=(prepared.facts, replace(prepared.composed, text="")),
            findings=prepared.findings,
            template=sys.intern(prepared.draft.template),  # (one copy for all entries)
            derived_key=derived,
            interview_key=dedupe_key(prepared.facts.to, prepared.facts.interview, account),
        ),
        [],
    )


def _interview_of(text: Any, tz: tzinfo, locale: str | None) -> datetime | None:
    """The interview time of an entry whose facts failed, if it reads as make_facts reads it
    (else that is among their problems)."""
    try:
        if isinstance(text, datetime):
            return text
        return file_when(str(text), tz, "interview", locale)
    except (InputError, ValueError):
        return None


def _far_interview(when: datetime, now: datetime) -> list[str]:
    """The far-date problem of an entry whose apology could not be checked, in the words
    that check gives it."""
    from mailer.model.apology import far_date

    far = far_date(when, now)
    return [f"apology check: [far-date] {far} (fix the entry, or pass --force)"] if far else []


class _Taken(Container[str]):
    """The subjects an entry to ``address`` must not repeat: an open thread's to it, or an
    earlier entry's (asked of the claims, not copied: that was quadratic)."""

    def __init__(self, address: str, opened: frozenset[str], claims: Claims | None) -> None:
        self.address, self.opened, self.claims = address, opened, claims

    def __contains__(self, subject: object) -> bool:
        if not isinstance(subject, str):
            return False
        if subject in self.opened:
            return True
        return self.claims is not None and self.claims.subject_taken(self.address, subject)


def _with_policy(
    settings: Settings,
    account: str,
    policy: dict[str, Any],
    shared: dict[Any, tuple[Settings, dict[str, Any]]] | None,
) -> tuple[Settings, dict[str, Any]]:
    """The account's settings under ``policy``, one object for every entry with the same
    account and policy (most of a campaign's entries share both): not one copy each."""
    if shared is None:
        return with_policy(settings, policy), policy
    # (Most entries have no policy of their own: their key is the account's name alone.)
    key: Any = (
        (account,) if not policy else json.dumps([account, policy], sort_keys=True, default=str)
    )
    if key not in shared:
        shared[key] = (with_policy(settings, policy), policy)
    return shared[key]


def _toml_time(value: date, tz: tzinfo, problems: list[str]) -> str:
    """A TOML date-time (``interview = 2026-12-01T10:00:00``) as the text make_facts reads in
    the entry's zone ``tz``; one with an offset is first moved into that zone."""
    if not isinstance(value, datetime):
        problems.append(f"interview: {value} has no time of day; write '{value} HH:MM'")
        return ""
    if value.tzinfo is not None:
        try:
            value = value.astimezone(tz)
        except OverflowError:  # 0001-01-01 or 9999-12-31 moved across midnight
            problems.append(f"interview: {value} is out of range")
            return ""
        if value.fold and value.replace(fold=0).utcoffset() != value.utcoffset():
            # The second of the two hours the clocks repeat: the wall time alone is read as
            # the first, an hour off, so the offset goes with it.
            return f"{value:%Y-%m-%d %H:%M} {value:%z}"
    return f"{value:%Y-%m-%d %H:%M}"


def _dict(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return {}
