"""Fuzzing campaign files, TOML and CSV: whatever they say, loading gives entries or
problem lines (each naming its file), or a ConfigError for an unreadable file, never another
exception; and every entry that loads can have its follow-up time computed."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.adapters.config import Settings, load_settings
from mailer.errors import ConfigError
from mailer.model.composer import Composer
from mailer.services.campaign import ENTRY_KEYS, Campaign, load_campaign
from mailer.services.sending import due_after

from .fuzzing import (
    FUZZ,
    MIN_CASES,
    ODD_STRINGS,
    durations,
    mutated,
    plausible,
    raw_edits,
    text,
    toml_document,
)

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
CONFIG = """\
[sender]
name = "Sam Candidate"
address = "sam@sandbox.test"
timezone = "Europe/London"
[smtp]
host = "127.0.0.1"
[imap]
host = "127.0.0.1"
[addresses]
allow_test_domains = true
[accounts.bea.sender]
name = "Bea Candidate"
address = "bea@sandbox.test"
[accounts.bea.smtp]
host = "127.0.0.1"
[accounts.bea.imap]
host = "127.0.0.1"
"""
BASE = {
    "campaign": {"name": "spring"},
    "defaults": {
        "situation": "illness",
        "role": "Analyst",
        "interviewer": "Ana Ruiz",
        "note": "I had a fever.",
        "free": ["2026-12-07 09:00-12:00"],
    },
    "follow_up": {
        "wait": "2 business days",
        "max_follow_ups": 1,
        "window": "09:00-17:00",
        "window_days": "mon-fri",
    },
    "throttle": {"rate": 20, "jitter": "3s", "daily_cap": 50, "reconnect_after": 10},
    "entries": [
        {
            "to": "ana@sandbox.test",
            "company": "Acme",
            "interview": "2026-11-24 10:00",
            "interviewer_tz": "Europe/Madrid",
            "follow_up_wait": "5 days",
            "vars": {"team": "Data"},
        },
        {
            "key": "globex-1",
            "to": "bo@sandbox.test",
            "company": "Globex",
            "interview": datetime(2026, 11, 24, 15, 30),
            "account": "bea",
            "situation": "emergency",
            "max_follow_ups": 2,
            "cc": ["cc@sandbox.test"],
            "alt_domains": ["globex.test"],
        },
    ],
}
VALID = toml_document(BASE)

CSV_COLUMNS = [k for k in ENTRY_KEYS if k != "vars"]
# A valid row for a header of every kind of column: the mutations start from it.
CSV_VALID = {
    "to": "cy@sandbox.test",
    "company": "Initech",
    "interview": "2026-11-24 09:00",
    "key": "initech-1",
    "account": "bea",
    "max_follow_ups": "1",
    "follow_up_wait": "3 days",
    "timezone": "Europe/Berlin",
    "interviewer_tz": "America/St_Johns",
    "free": "2026-12-07 14:00-17:00; 2026-12-08 14:00-15:00",
    "cc": "cc@sandbox.test",
    "var.team": "Data",
}
# Cells that look like numbers but are not ASCII digits, or are out of range.
NUMBERISH = ["²", "٣", "１２", "1" * 5000, "-1", "6", "1e3", "0x10", " 1 ", "1.0", "nan", ""]


def csv_cell(value: str) -> str:
    return '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\r\n') else value


def csv_text(header: list[str], rows: list[list[str]], newline: str = "\n") -> bytes:
    lines = [",".join(map(csv_cell, header)), *(",".join(map(csv_cell, r)) for r in rows)]
    return newline.join(lines).encode("utf-8")


cells = st.one_of(st.sampled_from(ODD_STRINGS), text, durations, plausible.map(str), st.just(""))
columns = st.one_of(st.sampled_from([*CSV_COLUMNS, "var.x", "var.", "vars", "", "to"]), text)


def cell_for(column: str) -> st.SearchStrategy[str]:
    """Hostile cells, with the ones aimed at a column's own parsing drawn more often."""
    aimed = {
        "max_follow_ups": st.sampled_from(NUMBERISH),
        "follow_up_wait": durations,
        "interview": st.sampled_from(["2026-02-30 10:00", "9999-12-31 23:59", "0001-01-01 00:00"]),
    }.get(column, cells)
    return st.one_of(aimed, cells)


@st.composite
def mutated_csv(draw: st.DrawFn) -> bytes:
    """The valid file with one to three cells replaced (or a row cut short or made longer)."""
    header = list(CSV_VALID)
    rows = [list(CSV_VALID.values()) for _ in range(draw(st.integers(1, 3)))]
    for _ in range(draw(st.integers(1, 3))):
        r, c = draw(st.integers(0, len(rows) - 1)), draw(st.integers(0, len(header) - 1))
        rows[r][c] = draw(cell_for(header[c]))
    if draw(st.booleans()):
        r = draw(st.integers(0, len(rows) - 1))
        rows[r] = rows[r][: draw(st.integers(0, len(header) + 1))] + draw(
            st.lists(cells, max_size=2)
        )
    return csv_text(header, rows, draw(st.sampled_from(["\n", "\r\n"])))


@st.composite
def random_csv(draw: st.DrawFn) -> bytes:
    header = draw(st.lists(columns, min_size=1, max_size=6))
    width = st.integers(max(0, len(header) - 1), len(header) + 1)
    rows = draw(
        st.lists(width.flatmap(lambda n: st.lists(cells, min_size=n, max_size=n)), max_size=3)
    )
    return csv_text(header, rows)


csv_files = st.one_of(
    mutated_csv(),
    mutated_csv(),
    mutated_csv(),
    random_csv(),
    raw_edits(csv_text(list(CSV_VALID), [list(CSV_VALID.values())]).decode()).map(str.encode),
    st.binary(max_size=200),
)


@pytest.fixture(scope="module")
def place() -> Iterator[tuple[Path, Settings, Composer]]:
    with tempfile.TemporaryDirectory() as d:
        ws = Path(d)
        (ws / "config" / "campaigns").mkdir(parents=True)
        (ws / "config" / "mailer.toml").write_text(CONFIG, encoding="utf-8")
        loaded = load_settings(ws / "config" / "mailer.toml")
        yield ws / "config" / "campaigns" / "c.toml", loaded, Composer(loaded.templates_dir)


def check_loads_or_refuses(path: Path, loaded: Settings, composer: Composer) -> Campaign | None:
    """Load the campaign at ``path``: entries and problem lines that each name a file, or a
    ConfigError for the whole file. Any other exception fails the test."""
    try:
        c = load_campaign(path, loaded, NOW, composer=composer)
    except ConfigError as exc:
        assert exc.problems and all(p.startswith(f"{path}: ") for p in exc.problems), exc.problems
        return None
    csv = path.parent / "p.csv"
    for problem in c.problems:
        assert problem.startswith((f"{path}:", f"{csv}:", f"{path.parent}")), problem
        assert "\n" not in problem and "\r" not in problem, problem
    assert len(c.entries) + c.invalid == c.total
    for entry in c.entries:
        due = due_after(entry.settings, NOW, entry.prepared.facts.reader_tz)
        assert due is None or due >= NOW
    return c


def test_the_fuzzers_start_from_a_valid_campaign(place: tuple[Path, Settings, Composer]) -> None:
    """Verify the base campaign and CSV load without problems, so mutations start from valid."""
    path, loaded, composer = place
    path.write_text(toml_document({**BASE, "campaign": {"name": "s", "entries_csv": "p.csv"}}))
    (path.parent / "p.csv").write_bytes(csv_text(list(CSV_VALID), [list(CSV_VALID.values())]))
    c = check_loads_or_refuses(path, loaded, composer)
    assert c is not None and c.problems == [] and len(c.entries) == 3


def test_no_campaign_file_crashes_the_loader(place: tuple[Path, Settings, Composer]) -> None:
    """Verify 1,000+ hostile campaign TOML files each load or give problem lines."""
    path, loaded, composer = place
    seen = {"cases": 0, "entries": 0}

    @settings(max_examples=MIN_CASES, **FUZZ)
    @given(
        body=st.one_of(
            mutated(BASE).map(toml_document),
            mutated(BASE).map(toml_document),
            mutated(BASE, pool=plausible, changes=2, only_values=True).map(toml_document),
            raw_edits(VALID),
        )
    )
    def fuzz(body: str) -> None:
        seen["cases"] += 1
        path.write_text(body, encoding="utf-8")
        c = check_loads_or_refuses(path, loaded, composer)
        seen["entries"] += len(c.entries) if c else 0

    fuzz()
    assert seen["cases"] >= MIN_CASES
    assert seen["entries"] > 0


def test_no_csv_file_crashes_the_loader(place: tuple[Path, Settings, Composer]) -> None:
    """Verify 1,000+ hostile CSV files each load or give problem lines naming file and line."""
    path, loaded, composer = place
    path.write_text(
        '[campaign]\nentries_csv = "p.csv"\n' + toml_document({"defaults": BASE["defaults"]})
    )
    seen = {"cases": 0, "entries": 0}

    @settings(max_examples=MIN_CASES, **FUZZ)
    @given(data=csv_files)
    def fuzz(data: bytes) -> None:
        seen["cases"] += 1
        (path.parent / "p.csv").write_bytes(data)
        c = check_loads_or_refuses(path, loaded, composer)
        seen["entries"] += len(c.entries) if c else 0

    fuzz()
    assert seen["cases"] >= MIN_CASES
    assert seen["entries"] > 0
