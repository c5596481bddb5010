"""Reading and checking campaign files: pure, no mail server (the servers in the config are
never contacted)."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

from mailer.campaign import load_campaign
from mailer.config import load_settings

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


def test_two_candidates_may_apologise_for_the_same_panel(tmp_path: Path) -> None:
    entry = (
        '[[entries]]\nto = "ana@sandbox.test"\ncompany = "Acme"\ninterview = "2026-12-01 10:00"\n'
    )
    c, _ = load(tmp_path, entry + entry.replace("[[entries]]\n", '[[entries]]\naccount = "bea"\n'))
    assert c.problems == []
    assert len({e.key for e in c.entries}) == 2

    twice, _ = load(tmp_path, entry + entry)
    assert len(twice.problems) == 1 and "duplicate key" in twice.problems[0]


def test_a_csv_that_is_not_utf8_is_named_with_its_line(tmp_path: Path) -> None:
    csv = "to,company,interview\nana@sandbox.test,Caf\xe9 Co,2026-12-01 10:00\n".encode("cp1252")
    c, path = load(tmp_path, '[campaign]\nentries_csv = "p.csv"\n', {"p.csv": csv})
    assert len(c.problems) == 1
    assert f"{path.parent / 'p.csv'}:2: not UTF-8" in c.problems[0]


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
    from mailer.config import load_settings

    load(tmp_path, "")
    settings = load_settings(tmp_path / "config" / "mailer.toml")
    bea = settings.for_account("bea")
    assert (bea.imap.security, bea.imap.port) == (settings.imap.security, 993) == ("ssl", 993)
    assert bea.smtp.security == "starttls"
