"""Reading and checking campaign files: pure, no mail server (the servers in the config are
never contacted)."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.adapters.config import load_settings
from mailer.errors import ConfigError
from mailer.services.campaign import load_campaign

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
ACCOUNT = """
[accounts.bea]
[accounts.bea.sender]
name = "Bea Candidate"
address = "bea@sandbox.test"
[accounts.bea.smtp]
host = "127.0.0.1"
[accounts.bea.imap]
host = "127.0.0.1"
"""


def load(tmp_path: Path, body: str, files: dict[str, bytes] | None = None):  # type: ignore[no-untyped-def]
    (tmp_path / "config" / "campaigns").mkdir(parents=True, exist_ok=True)
    (tmp_path / "config" / "mailer.toml").write_text(
        textwrap.dedent("""\
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
            """)
        + ACCOUNT,
        encoding="utf-8",
    )
    for name, data in (files or {}).items():
        (tmp_path / "config" / "campaigns" / name).write_bytes(data)
    path = tmp_path / "config" / "campaigns" / "c.toml"
    path.write_text(
        '[defaults]\nsituation = "illness"\nrole = "Analyst"\ninterviewer = "Ana"\n' + body,
        encoding="utf-8",
    )
    settings = load_settings(tmp_path / "config" / "mailer.toml")
    return load_campaign(path, settings, NOW), path


def test_an_interview_time_with_an_offset_is_kept_as_that_instant(tmp_path: Path) -> None:
    c, _ = load(
        tmp_path,
        '[[entries]]\nto = "ana@sandbox.test"\ncompany = "Acme"\n'
        'timezone = "America/New_York"\ninterview = 2026-12-01T10:00:00-05:00\n'
        '[[entries]]\nto = "bo@sandbox.test"\ncompany = "Acme"\n'
        "interview = 2026-12-01T10:00:00\n",
    )
    assert c.problems == []
    ny, london = (e.prepared.facts.interview for e in c.entries)
    assert ny == datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    assert (london.hour, london.utcoffset()) == (10, datetime(2026, 12, 1, tzinfo=UTC).utcoffset())


def test_an_interview_time_with_an_offset_in_the_hour_the_clocks_repeat_keeps_its_instant(
    tmp_path: Path,
) -> None:
    """Verify 01:30+00:00 on the night the clocks go back in London, the second 01:30 there,
    stays that instant (it was read as the first 01:30, BST: the apology and its key an hour
    off); the first, 01:30+01:00, stays the first."""
    c, _ = load(
        tmp_path,
        '[[entries]]\nto = "ana@sandbox.test"\ncompany = "Acme"\n'
        "interview = 2026-10-25T01:30:00+00:00\n"
        '[[entries]]\nto = "bo@sandbox.test"\ncompany = "Acme"\n'
        "interview = 2026-10-25T01:30:00+01:00\n",
    )
    assert c.problems == []
    second, first = (e.prepared.facts.interview for e in c.entries)
    # astimezone: Python's == between zones is False for any time in a repeated hour
    assert second.astimezone(UTC) == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert first.astimezone(UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


def test_an_interview_in_the_hour_the_clocks_skip_is_refused_however_it_is_written(
    tmp_path: Path,
) -> None:
    """Verify 01:30 on the night summer time starts in London, which names no instant, is a
    problem of its entry written as the file format asks, as a TOML date-time, or in full,
    as it is when typed on the command line (it was read an hour off)."""
    c, path = load(
        tmp_path,
        '[[entries]]\nto = "ana@sandbox.test"\ncompany = "Acme"\ninterview = "2027-03-28 01:30"\n'
        '[[entries]]\nto = "bo@sandbox.test"\ncompany = "Acme"\ninterview = 2027-03-28T01:30:00\n'
        '[[entries]]\nto = "cy@sandbox.test"\ncompany = "Acme"\ninterview = "28 Mar 2027 01:30"\n'
        '[[entries]]\nto = "di@sandbox.test"\ncompany = "Acme"\ninterview = "2027-03-28 02:30"\n',
    )
    assert len(c.problems) == 3 and len(c.entries) == 1
    for line, problem in zip((5, 9, 13), c.problems, strict=True):
        assert problem.startswith(f"{path}:{line}: ")
        assert "01:30 does not exist on 28 Mar 2027 in Europe/London" in problem


def test_free_times_at_night_for_the_interviewer_stop_the_entry_as_they_stop_a_send(
    tmp_path: Path,
) -> None:
    """Verify an entry offering free times that fall at night in the interviewer's zone is a
    problem unless forced, as `send` refuses it (a campaign run shows no warnings; the
    walkthrough of session 16 found such entries sent)."""
    body = (
        '[[entries]]\nto = "ana@sandbox.test"\ncompany = "Acme"\ninterview = "2026-11-24 10:00"\n'
        'interviewer_tz = "America/New_York"\nfree = ["2026-12-03 09:00-12:00"]\n'
    )
    c, path = load(tmp_path, body)
    (problem,) = c.problems
    assert problem.startswith(f"{path}:5: ") and "apology check: [odd-hours]" in problem
    assert problem.endswith("(fix the entry, or pass --force)"), problem
    forced = load_campaign(
        path, load_settings(tmp_path / "config" / "mailer.toml"), NOW, force=True
    )
    assert forced.problems == [] and len(forced.entries) == 1


def test_a_campaign_problem_names_the_key_as_the_file_spells_it(tmp_path: Path) -> None:
    """Verify problems with interviewer_tz, interviewer_phone and alt_addresses name those
    keys, not the command line's --interviewer-tz, interviewer-phone, alt-address (the
    walkthrough of session 16 found 'interviewer-tz' in a campaign's error)."""
    c, _ = load(
        tmp_path,
        '[[entries]]\nto = "ana@sandbox.test"\ncompany = "Acme"\ninterview = "2026-11-24 10:00"\n'
        'interviewer_tz = "Mars/Olympus"\ninterviewer_phone = "+1\\u0007"\n'
        'alt_addresses = ["not an address"]\n',
    )
    problem = "\n".join(c.problems)
    for key in ("interviewer_tz:", "interviewer_phone:", "alt_addresses:"):
        assert key in problem, problem
    assert "interviewer-" not in problem and "alt-address" not in problem, problem


def test_an_entry_missing_a_fact_still_has_its_other_problems_named(tmp_path: Path) -> None:
    """Verify an entry missing a required fact is checked for everything else too, and
    names all of it at once (it stopped at "situation: missing", and its relative date and
    unknown zone came only on the next check; walkthrough, session 16), and that the value
    standing in for the missing fact earns no problem of its own."""
    c, path = load(
        tmp_path,
        '[[entries]]\nto = "ana@sandbox.test"\ncompany = "Acme"\nsituation = ""\n'
        'interview = "tomorrow 10:00"\ninterviewer_tz = "Mars/Olympus"\n'
        '[[entries]]\ncompany = "Acme"\ninterview = "2026-11-24 10:00"\n'
        '[[entries]]\nto = "bo@sandbox.test"\ncompany = "Acme"\nsituation = "conflict"\n',
    )
    first = [p for p in c.problems if p.startswith(f"{path}:5: ")]
    assert [p.split(": ", 3)[2] for p in first] == ["situation", "interviewer_tz", "interview"]
    assert "would change with the day the file is run" in first[2]
    second = [p for p in c.problems if p.startswith(f"{path}:11: ")]
    assert [p.split(": ", 2)[2] for p in second] == [
        "to: missing (give it in the entry or in [defaults])"
    ]
    # Nothing about the time standing in for a missing interview ("still ahead, but ...").
    third = [p for p in c.problems if p.startswith(f"{path}:14: ")]
    assert [p.split(": ", 2)[2] for p in third] == [
        "interview: missing (give it in the entry or in [defaults])"
    ], c.problems


def test_two_candidates_may_apologise_for_the_same_panel(tmp_path: Path) -> None:
    entry = (
        '[[entries]]\nto = "ana@sandbox.test"\ncompany = "Acme"\ninterview = "2026-12-01 10:00"\n'
    )
    c, _ = load(tmp_path, entry + entry.replace("[[entries]]\n", '[[entries]]\naccount = "bea"\n'))
    assert c.problems == []
    assert len({e.key for e in c.entries}) == 2

    twice, _ = load(tmp_path, entry + entry)
    assert len(twice.problems) == 1 and "duplicate key" in twice.problems[0]
    # The refusal says how two candidates do it (it did not; a walkthrough).
    assert "account = NAME in the entry" in twice.problems[0]


def test_a_csv_that_is_not_utf8_is_named_with_its_line(tmp_path: Path) -> None:
    csv = "to,company,interview\nana@sandbox.test,Caf\xe9 Co,2026-12-01 10:00\n".encode("cp1252")
    c, path = load(tmp_path, '[campaign]\nentries_csv = "p.csv"\n', {"p.csv": csv})
    assert len(c.problems) == 1
    assert f"{path.parent / 'p.csv'}:2: not UTF-8" in c.problems[0]


@pytest.mark.parametrize("sep", [";", "\t"])
def test_a_csv_whose_columns_are_not_separated_by_commas_is_one_clear_problem(
    tmp_path: Path, sep: str
) -> None:
    """Verify a spreadsheet export with ';' (or tabs) between its columns, Excel's default
    where ',' is the decimal mark, is named as such, once, with what to do; not as one
    unknown column named 'to;interviewer;...' and a problem for every row (walkthrough,
    session 16)."""
    csv = sep.join(["to", "company", "interview"]) + "\n"
    csv += sep.join(["ana@sandbox.test", "Acme", "2026-12-01 10:00"]) + "\n"
    c, path = load(tmp_path, '[campaign]\nentries_csv = "p.csv"\n', {"p.csv": csv.encode()})
    (problem,) = c.problems
    assert problem.startswith(f"{path.parent / 'p.csv'}:1: the columns are separated by ")
    assert "'CSV UTF-8 (comma delimited)'" in problem and c.file_level == 1


def test_csv_problems_name_the_line_where_the_row_starts(tmp_path: Path) -> None:
    csv = (
        b"to,company,interview,note,to\n"
        b'ana@sandbox.test,Acme,2026-12-01 10:00,"two\nlines",x\n'
        b"bo@sandbox.test,Globex,2026-12-02 10:00,,y,extra\n"
    )
    c, path = load(tmp_path, '[campaign]\nentries_csv = "p.csv"\n', {"p.csv": csv})
    where = path.parent / "p.csv"
    assert any(f"{where}:1: column 'to'" in p and "more than once" in p for p in c.problems)
    assert any(f"{where}:4: entry" in p and "more cells than columns" in p for p in c.problems)


def test_a_csv_row_the_reader_refuses_is_named_by_the_line_it_starts_on(tmp_path: Path) -> None:
    """Verify a cell over the CSV reader's size limit is named by the line where its row
    starts (the reader's own count lags behind), after a cell over two lines too."""
    big = b"x" * 200_000
    csv = (
        b"to,company,interview\n"
        b"ana@sandbox.test,Acme,2026-12-01 10:00\n"
        b"bo@sandbox.test," + big + b",2026-12-02 10:00\n"
    )
    c, path = load(tmp_path, '[campaign]\nentries_csv = "p.csv"\n', {"p.csv": csv})
    (problem,) = [p for p in c.problems if "cannot read the CSV" in p]
    assert problem.startswith(f"{path.parent / 'p.csv'}:3: cannot read the CSV: field larger")
    # After a cell over two lines: the third row starts on line 4.
    csv = b'to,company,interview\nana@sandbox.test,"Acme\nEast",2026-12-01 10:00\nbo@sandbox.test,'
    c, path = load(tmp_path / "q", '[campaign]\nentries_csv = "p.csv"\n', {"p.csv": csv + big})
    (problem,) = [p for p in c.problems if "cannot read the CSV" in p]
    assert problem.startswith(f"{path.parent / 'p.csv'}:4: cannot read the CSV")


def test_csv_problems_after_blank_lines_name_the_line_the_row_is_on(tmp_path: Path) -> None:
    """Verify a row's problem, and a row the reader refuses, are named by the row's own line
    when blank lines come before it (the reader skips them without saying so)."""
    csv = (
        b"to,company,interview\n"
        b"ana@sandbox.test,Acme,2026-12-01 10:00\n"
        b"\n"
        b"\r\n"
        b"bo@sandbox.test,Globex,2026-13-02 10:00\n"
        b"\n"
        b"cy@sandbox.test," + b"x" * 200_000 + b",2026-12-03 10:00\n"
    )
    c, path = load(tmp_path, '[campaign]\nentries_csv = "p.csv"\n', {"p.csv": csv})
    where = path.parent / "p.csv"
    assert any(p.startswith(f"{where}:5: entry bo@sandbox.test: interview") for p in c.problems)
    assert any(p.startswith(f"{where}:7: cannot read the CSV") for p in c.problems)


def test_an_unknown_key_does_not_hide_the_entrys_other_problems(tmp_path: Path) -> None:
    """Verify an entry with a typo'd key, a line break in its company and a month 13 gets all
    three named at once (the typo used to stop the other checks)."""
    c, _ = load(
        tmp_path,
        '[[entries]]\nto = "ana@sandbox.test"\ncolour = "red"\ncompany = "Acme\\r\\nBcc: x@y.z"\n'
        'interview = "2026-13-01 10:00"\n',
    )
    found = "\n".join(c.problems)
    assert "colour: unknown key" in found
    assert "company: contains a line break" in found
    assert "interview:" in found
    assert len(c.problems) == 3 and all(": entry ana@sandbox.test: " in p for p in c.problems)


def test_numbers_that_are_not_finite_are_refused(tmp_path: Path) -> None:
    entry = (
        '[[entries]]\nto = "ana@sandbox.test"\ncompany = "Acme"\ninterview = "2026-12-01 10:00"\n'
    )
    c, _path = load(tmp_path, "[throttle]\nrate = inf\njitter = nan\n" + entry)
    assert sorted(p.split(": ")[1] for p in c.problems) == ["throttle.jitter", "throttle.rate"]


def test_vars_must_be_a_table(tmp_path: Path) -> None:
    c, _ = load(
        tmp_path,
        '[[entries]]\nto = "ana@sandbox.test"\ncompany = "Acme"\n'
        'interview = "2026-12-01 10:00"\nvars = "oops"\n',
    )
    assert len(c.problems) == 1 and "vars: must be a table" in c.problems[0]


def test_an_accounts_imap_defaults_to_implicit_tls_like_the_main_one(tmp_path: Path) -> None:
    from mailer.adapters.config import load_settings

    load(tmp_path, "")
    settings = load_settings(tmp_path / "config" / "mailer.toml")
    bea = settings.for_account("bea")
    assert (bea.imap.security, bea.imap.port) == (settings.imap.security, 993) == ("ssl", 993)
    assert bea.smtp.security == "starttls"


ENTRY = '[[entries]]\nto = "ana@sandbox.test"\ncompany = "Acme"\ninterview = "2026-12-01 10:00"\n'
HUGE_WAITS = ["3000000 business days", "1000000 weeks", "1" + "0" * 400 + " weeks", "400 days"]


@pytest.mark.parametrize("wait", HUGE_WAITS)
def test_a_campaign_wait_out_of_range_is_refused_wherever_it_is_given(
    tmp_path: Path, wait: str
) -> None:
    """Verify [follow_up] wait, an entry's and a CSV row's follow_up_wait are range-checked."""
    csv = f"to,company,interview,follow_up_wait\nbo@sandbox.test,Globex,2026-12-02 10:00,{wait}\n"
    c, path = load(
        tmp_path,
        f'[campaign]\nentries_csv = "p.csv"\n[follow_up]\nwait = "{wait}"\n'
        + ENTRY.replace("[[entries]]\n", f'[[entries]]\nfollow_up_wait = "{wait}"\n'),
        {"p.csv": csv.encode()},
    )
    assert c.entries == []
    assert any(p.startswith(f"{path}: follow_up.wait: ") for p in c.problems), c.problems
    for where in (f"{path}:", f"{path.parent / 'p.csv'}:2:"):
        assert any(p.startswith(where) and "follow_up_wait: " in p for p in c.problems), c.problems


@pytest.mark.parametrize("cell", ["²", "٣", "1" * 5000, "-1", "6"])
def test_a_count_cell_that_is_not_a_small_whole_number_is_a_problem(
    tmp_path: Path, cell: str
) -> None:
    """Verify "²" (and other non-ASCII or huge digits) in max_follow_ups is a problem line."""
    csv = f"to,company,interview,max_follow_ups\nana@sandbox.test,Acme,2026-12-01 10:00,{cell}\n"
    c, path = load(tmp_path, '[campaign]\nentries_csv = "p.csv"\n', {"p.csv": csv.encode()})
    assert len(c.problems) == 1, c.problems
    assert c.problems[0].startswith(f"{path.parent / 'p.csv'}:2: ")
    assert "max_follow_ups: must be a whole number between 0 and 5" in c.problems[0]


@pytest.mark.parametrize("name", ["p\\u0000.csv", "\\u0000", " ", "p.csv\\u001b"])
def test_an_entries_csv_name_with_control_characters_is_a_problem(
    tmp_path: Path, name: str
) -> None:
    """Verify a NUL (or other control character) in entries_csv is a problem, not a ValueError."""
    c, path = load(tmp_path, f'[campaign]\nentries_csv = "{name}"\n', {"p.csv": b"to\n"})
    assert c.problems == [f"{path}: campaign.entries_csv: must be the path of a CSV file"]


def test_an_entries_csv_path_too_long_for_the_file_system_is_a_problem(tmp_path: Path) -> None:
    """Verify a CSV path the OS refuses is a problem naming campaign.entries_csv."""
    c, path = load(tmp_path, f'[campaign]\nentries_csv = "{"x" * 5000}.csv"\n')
    assert len(c.problems) == 1 and c.problems[0].startswith(f"{path}: campaign.entries_csv: ")


@pytest.mark.parametrize("depth", [20, 1000, 100_000])
def test_a_campaign_nested_too_deep_is_a_config_error(tmp_path: Path, depth: int) -> None:
    """Verify a campaign file nested 1,000 deep is a ConfigError naming the file."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, "[[entries]]\nvars = { a = " + "[" * depth + "]" * depth + " }\n")
    assert len(caught.value.problems) == 1
    assert "c.toml: invalid TOML" in caught.value.problems[0]


@pytest.mark.parametrize("key", ["daily_cap", "reconnect_after"])
def test_throttle_counts_beyond_a_million_are_refused(tmp_path: Path, key: str) -> None:
    """Verify the throttle's whole numbers are bounded as well as non-negative."""
    c, path = load(tmp_path, f"[throttle]\n{key} = 9223372036854775807\n" + ENTRY)
    assert c.problems == [f"{path}: throttle.{key}: must be a whole number from 0 to 1000000"]


@pytest.mark.parametrize(
    "when", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:00-05:00", "0001-01-01T00:00:00Z"]
)
def test_an_interview_at_the_edge_of_time_is_a_problem(tmp_path: Path, when: str) -> None:
    """Verify a TOML date-time that cannot be moved into the entry's zone is a problem line."""
    c, path = load(tmp_path, ENTRY.replace('interview = "2026-12-01 10:00"', f"interview = {when}"))
    assert c.entries == [] and len(c.problems) >= 1
    assert all(p.startswith(f"{path}:") for p in c.problems)


def test_a_campaign_name_on_two_lines_is_refused(tmp_path: Path) -> None:
    """Verify [campaign] name with a line break or NUL is a problem and not used as the name."""
    c, path = load(tmp_path, '[campaign]\nname = "spring\\nhires\\u0000"\n' + ENTRY)
    assert c.problems == [f"{path}: campaign.name: must be a non-empty text on one line"]
    assert c.name == "c"


def test_problems_naming_odd_keys_and_cells_stay_one_line(tmp_path: Path) -> None:
    """Verify an entry key and a CSV column with line breaks are escaped in the problems."""
    csv = b'to,company,interview,"col\nx\x1b"\nana@sandbox.test,Acme,2026-12-01 10:00,1\n'
    c, _path = load(
        tmp_path,
        '[campaign]\nentries_csv = "p.csv"\n'
        + ENTRY.replace("[[entries]]\n", '[[entries]]\n"k\\u2028y\\r" = 1\n'),
        {"p.csv": csv},
    )
    assert len(c.problems) == 2, c.problems
    for line in c.problems:
        assert len(line.splitlines()) == 1 and "\x1b" not in line, line


def test_the_store_is_asked_for_open_subjects_once_per_address_while_loading() -> None:
    from mailer.cli.campaign import once_each

    asked: list[str] = []

    def lookup(address: str) -> frozenset[str]:
        asked.append(address)
        return frozenset({f"subject for {address.lower()}"})

    cached = once_each(lookup)
    answers = [cached(a) for a in ("ana@x.test", "ANA@x.test", "bo@x.test", "ana@x.test")]
    assert asked == ["ana@x.test", "bo@x.test"]
    assert answers[0] == answers[1] == answers[3] == frozenset({"subject for ana@x.test"})


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["[[entries]]", " [[ entries ]] # x", "[entries]", "[[", "]]", "entries",
                         "\t", " ", "x = '[[entries]]'", "\n", "\r\n", "\u2028", "[[campaign]]"]),
        max_size=30,
    ).map("".join)
)  # fmt: skip
def test_entry_headers_are_found_on_the_lines_the_old_search_found(text: str) -> None:
    """Verify entry_lines, which skips lines without '[[', finds the header lines the
    regex alone found on every line (lines ending at "\\n" only, as tomllib counts them)."""
    from mailer.adapters.tomlentries import entry_lines

    old = [
        i
        for i, line in enumerate(text.split("\n"), 1)
        if re.match(r"\s*\[\[\s*entries\s*\]\]", line)
    ]
    assert entry_lines(text) == old


def _csv_entries_whole(csv_path: Path) -> tuple[list[str], list[Any]]:
    """The CSV read as it was before it was streamed: decoded whole, then parsed from the
    text (the reference for the test below; a bad byte's line counted after a BOM)."""
    import csv
    import io

    from mailer.services.campaign import ENTRY_KEYS, INT_KEYS, LIST_KEYS

    problems: list[str] = []
    data = csv_path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        return [f"{csv_path}:{line}: not UTF-8 text (byte {exc.object[exc.start]:#x})"], []
    out = []
    taken, starts = 0, [0]  # lines given to the reader; the current row's first non-blank one

    def numbered() -> Iterator[str]:
        nonlocal taken
        for line in io.StringIO(text, newline=""):
            taken += 1
            if not starts[-1] and line.strip("\r\n"):
                starts[-1] = taken
            yield line

    reader = csv.DictReader(numbered())

    def first() -> int:
        return starts[-1] or taken + 1

    try:
        columns = reader.fieldnames or []
        for col in columns:
            if (col not in ENTRY_KEYS and not col.startswith("var.")) or col == "vars":
                problems.append(f"{csv_path}:1: column {col!r}")
        for col in sorted({c for c in columns if columns.count(c) > 1}):
            problems.append(f"{csv_path}:1: column {col!r}: appears more than once")
        starts.append(0)
        for row in reader:
            entry: dict[str, Any] = {}
            variables = {}
            for col, value in row.items():
                if col is None:
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
                    entry[col] = int(value) if re.fullmatch(r"[0-9]{1,9}", value) else value
                elif col in ENTRY_KEYS:
                    entry[col] = value
            if variables:
                entry["vars"] = variables
            if entry:
                out.append((f"{csv_path}:{first()}", entry))
            starts.append(0)
    except csv.Error as exc:
        problems.append(f"{csv_path}:{first()}: cannot read the CSV: {exc}")
    return problems, out


CSV_PIECES = [
    b"to,company,interview\n", b"to,cc,var.team,max_follow_ups\n", b"to,to\n", b"bogus,",
    b"ana@x.test,", b"Acme,", b"2026-12-01 10:00\n", b"a; b;;c,", b"7,", b"\xc2\xb2,", b",,,\n",
    b'"multi\nline",', b'"unterminated', b"\r\n", b"\r", b"\n", b"\xef\xbb\xbf", b"\xff",
    b"caf\xc3\xa9,", b"\xe2\x82\n", b"\x00", b'"a""b",', b"x,y,z,w,v\n",
]  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(CSV_PIECES), max_size=12).map(b"".join))
def test_a_csv_read_row_by_row_reads_as_it_did_whole(data: bytes) -> None:
    """Verify that the CSV read three times row by row (never held whole) gives the same
    entries, places and problems as the whole file decoded and parsed."""
    import tempfile

    from mailer.services.campaign import _csv_entries

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.csv"
        path.write_bytes(data)
        problems: list[str] = []
        count, rows = _csv_entries(
            path, Path(folder) / "c.toml", lambda w, m: problems.append(f"{w}: {m}")
        )
        entries = list(rows)
        whole_problems, whole_entries = _csv_entries_whole(path)
    assert entries == whole_entries and count == len(entries)
    assert len(problems) == len(whole_problems)
    for new, old in zip(problems, whole_problems, strict=True):
        assert new.startswith(old)


@pytest.mark.parametrize("to_bytes", [b"bob", b"b\xffb"])
def test_a_csv_saved_while_its_rows_are_checked_is_an_error_not_a_shorter_campaign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, to_bytes: bytes
) -> None:
    """Verify a CSV of entries changed between its reads (here, after its rows were counted
    and while they are checked): loading fails with one line naming the file, instead of
    checking a mix of two versions or silently fewer rows."""
    from mailer.services import campaign as campaign_module

    # (More than the reader's buffer holds: the change must be there to be read.)
    rows = "".join(f"ana{i}@sandbox.test,Ana,Co {i},Analyst,2026-11-20 10:00\n" for i in range(600))
    csv = ("to,interviewer,company,role,interview\n" + rows).encode()
    real_entry, calls = campaign_module._entry, [0]

    def entry(*args: Any, **kw: Any) -> Any:
        calls[0] += 1
        if calls[0] == 2:
            (tmp_path / "config" / "campaigns" / "p.csv").write_bytes(csv.replace(b"ana", to_bytes))
        return real_entry(*args, **kw)

    monkeypatch.setattr(campaign_module, "_entry", entry)
    with pytest.raises(ConfigError, match=r"p\.csv: changed while it was being read"):
        load(
            tmp_path,
            '[campaign]\nentries_csv = "p.csv"\n',
            {"p.csv": csv},
        )


def test_a_csv_date_written_as_a_spreadsheet_exports_it_is_read(tmp_path: Path) -> None:
    """Verify a CSV row's interview written in full with slashes (a spreadsheet's export) is
    read as on the command line, and one without its year is refused by its line (newcomer,
    session 15)."""
    csv = (
        b"to,company,interview\n"
        b"ana@sandbox.test,Umbrella,26/11/2026 11:30\n"
        b"bo@sandbox.test,Globex,Nov 27 10:00\n"
    )
    c, path = load(tmp_path, '[campaign]\nentries_csv = "p.csv"\n', {"p.csv": csv})
    (entry,) = c.entries
    assert entry.facts.interview.isoformat() == "2026-11-26T11:30:00+00:00"
    (problem,) = c.problems
    assert problem.startswith(f"{path.parent / 'p.csv'}:3: ")
    assert "would change with the day the file is run" in problem


def test_a_mistyped_year_in_a_campaign_entry_is_an_error(tmp_path: Path) -> None:
    """Verify an entry whose interview is a year off (a spreadsheet's "26/11/2025") is an
    apology-check error in a campaign, as in send: a run shows no warnings, so a warning
    would let it go (review of session 15)."""
    csv = b"to,company,interview\nana@sandbox.test,Umbrella,26/11/2025 11:30\n"
    c, _ = load(tmp_path, '[campaign]\nentries_csv = "p.csv"\n', {"p.csv": csv})
    (problem,) = c.problems
    assert "apology check: [far-date] The interview (Wed 26 Nov 2025) was" in problem, problem
    assert "is the date right?" in problem and "--force" in problem


def test_a_campaign_date_error_keeps_its_own_reason(tmp_path: Path) -> None:
    """Verify a date a campaign cannot take is refused with its reason (a weekday that does
    not match, an unknown zone's suggestion), and the advice never offers "tomorrow"."""
    csv = (
        b"to,company,interview\n"
        b"ana@sandbox.test,Umbrella,Wed 26 Nov 2026 11:30\n"
        b"bo@sandbox.test,Globex,25 Nov 2026 10:00 Berlim\n"
        b"cy@sandbox.test,Initech,whenever\n"
    )
    c, path = load(tmp_path, '[campaign]\nentries_csv = "p.csv"\n', {"p.csv": csv})
    weekday, zone, unreadable = c.problems
    assert "is a Thursday, not a Wednesday" in weekday
    assert "did you mean Europe/Berlin?" in zone
    assert unreadable.startswith(f"{path.parent / 'p.csv'}:4: ")
    assert "write it as 'YYYY-MM-DD HH:MM'" in unreadable and "tomorrow" not in unreadable


def test_campaign_check_works_before_the_mail_servers_are_set_up(tmp_path: Path) -> None:
    """Verify a coach can check a campaign file with only [sender] in the config: the check
    never connects, so it checks every entry, then names what 'campaign run' will still need
    (it said "smtp.host: is required" and checked nothing); 'campaign run' still refuses,
    sending nothing."""
    from .conftest import run_cli

    ws = tmp_path / "ws"
    (ws / "config").mkdir(parents=True)
    (ws / "config" / "mailer.toml").write_text(
        '[sender]\nname = "Sam Candidate"\naddress = "sam@sandbox.test"\n'
        "[addresses]\nallow_test_domains = true\n",
        encoding="utf-8",
    )
    (ws / "c.toml").write_text(
        '[defaults]\nsituation = "illness"\nrole = "Analyst"\ninterviewer = "Ana"\n'
        'timezone = "Europe/London"\nfree = ["2099-12-07 09:00-12:00"]\n'
        '[[entries]]\nto = "ana@sandbox.test"\ncompany = "Acme"\ninterview = "2026-11-20 10:00"\n',
        encoding="utf-8",
    )
    checked = run_cli(ws, "campaign", "check", "c.toml")
    assert checked.returncode == 3, checked.stderr
    assert "1 entry valid" in checked.stdout
    assert "smtp.host: is required" in checked.stderr and "imap.host: is required" in checked.stderr
    assert "the entries are checked; 'mailer campaign run' needs these settings" in checked.stderr
    ran = run_cli(ws, "campaign", "run", "c.toml", "--yes")
    assert ran.returncode != 0 and "smtp.host: is required" in ran.stderr
    # The example address 'mailer init' writes is named too: 'run' refuses it (a review).
    config = ws / "config" / "mailer.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace("sam@sandbox.test", "you@example.com"),
        encoding="utf-8",
    )
    example = run_cli(ws, "campaign", "check", "c.toml")
    assert example.returncode == 3 and "1 entry valid" in example.stdout, example.stderr
    assert "sender.address: still 'you@example.com'" in example.stderr
    assert (
        not (ws / ".mailer" / "state.db").exists() or "No threads" in run_cli(ws, "status").stdout
    )


def test_an_entrys_own_zone_keeps_its_follow_up_in_office_hours_and_dates_its_words(
    tmp_path: Path,
) -> None:
    """Verify an entry written in New York time (its ``timezone``, no ``interviewer_tz``) is
    recorded with that zone: its follow-up is due in New York's office hours (it was judged
    in the sender's zone, London: 09:00 there is 04:00 in New York), and the follow-up's
    "my message of <day>" is that day in New York, as the apology's other times are."""
    from mailer.adapters.store import Store
    from mailer.services.passes import build_follow_up
    from mailer.services.sending import due_after, record

    c, _ = load(
        tmp_path,
        '[[entries]]\nto = "ana@sandbox.test"\ncompany = "Acme"\n'
        'timezone = "America/Los_Angeles"\ninterview = "2026-11-30 17:00"\n',
    )
    (entry,) = c.entries
    facts = entry.prepared.facts
    assert facts.interviewer_tz == "" and facts.reader_tz == "America/Los_Angeles"
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        tid, row = record(entry.settings, entry.prepared, store, NOW)
        thread = store.thread(tid)
        assert thread is not None and thread.recipient_tz == "America/Los_Angeles"
        sent = datetime(2026, 12, 1, 2, 21, tzinfo=UTC)  # Monday 18:21 in Los Angeles
        due = due_after(entry.settings, sent, facts.reader_tz)
        assert due is not None
        local = due.astimezone(ZoneInfo("America/Los_Angeles"))
        assert 9 <= local.hour < 17 and local.weekday() < 5, local
        store.mark_submitting(row, sent)
        store.mark_sent(row, sent, "250 ok", due)
        thread = store.thread(tid)
        assert thread is not None
        text = build_follow_up(entry.settings, store, thread, due).text
        assert "my message of Monday 30 November" in " ".join(text.split()), text
    finally:
        store.close()


def test_an_entry_whose_facts_fail_is_told_its_interview_is_far_from_today_too(
    tmp_path: Path,
) -> None:
    """Verify every problem of an entry comes at once: a free time in the past and an
    interview a year ago (a mistyped year) are both named. The far date was said only once
    the free time was mended (a coach walkthrough); --force lets it through, as ever."""
    body = (
        '[[entries]]\nto = "ana@sandbox.test"\ncompany = "Acme"\n'
        'interview = "2025-11-20 15:00"\nfree = ["2026-11-20 14:00-16:00"]\n'
    )
    c, _ = load(
        tmp_path,
        body.replace(
            '"2026-11-20 14:00-16:00"', '"2026-11-20 14:00-16:00", "2026-11-21 09:00-10:00"'
        ),
    )
    (line,) = [p for p in c.problems if "far-date" in p]
    assert "days ago; is the date right?" in line
    past = [p for p in c.problems if "is in the past" in p]  # each of them (a walkthrough)
    assert len(past) == 2 and "2026-11-21 09:00" in past[1], c.problems
    settings = load_settings(tmp_path / "config" / "mailer.toml")
    forced = load_campaign(tmp_path / "config" / "campaigns" / "c.toml", settings, NOW, force=True)
    assert forced.problems and not [p for p in forced.problems if "far-date" in p]
    # And when a fact itself fails (a Cc that is no address), before any apology is made.
    c, _ = load(tmp_path, body.replace("free = [", 'cc = ["not an address"]\nfree = ['))
    assert [p for p in c.problems if "far-date" in p] and "cc" in " ".join(c.problems)
