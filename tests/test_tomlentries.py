"""A campaign file read one [[entries]] table at a time (mailer.adapters.tomlentries): the
same tables, entries and lines as the file parsed whole, or a refusal that sends the caller
to the whole parse; never a result of its own."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.adapters import tomlentries
from mailer.adapters.tomlentries import Unchunkable, read_chunked, read_whole
from mailer.errors import ConfigError
from mailer.services import campaign as campaign_module

from .test_campaign_file import load

# Pieces of campaign files, tricky ones among them: headers in multi-line strings, arrays
# across lines, sub-tables of an entry, tables after the entries, duplicate keys, a header
# spelt otherwise, CR LF and lone CR, a BOM, U+2028, comments, invalid lines.
PIECES = [
    '[campaign]\nname = "x"\n',
    '[defaults]\nnote = "n"\n',
    "[throttle]\nrate = 5\n",
    "[[entries]]\n",
    " [[ entries ]] # a comment\n",
    "[[entries]]",
    '[["entries"]]\n',
    "[entries]\n",
    "entries = []\n",
    '[[entries]]\nto = "a@b.test"\n',
    'to = "a@b.test"\n',
    'company = "Co"\n',
    'note = """\n',
    '"""\n',
    "note = '''\n",
    "'''\n",
    "[entries.vars]\n",
    'team = "d"\n',
    "[[entries.sub]]\n",
    "free = [\n",
    '"2026-12-07 09:00-12:00",\n',
    "]\n",
    "# [[entries]] in a comment\n",
    "\r\n",
    "\r",
    "\n",
    "\ufeff",
    'note = "a\u2028b"\n',
    "\u2028",
    "[[entries]] x\n",
    "interview = 2026-12-01T10:00:00Z\n",
    "k.dotted = 2\n",
    "x = 1\n",
    "[x]\n",
    "= broken\n",
    "a = [[1], [[2]]]\n",
]


def _both(text: str | bytes, batch: int = tomlentries.BATCH) -> tuple[Any, Any]:
    """(chunked, whole): each the tables and the list of (line, entry), or the exception.
    ``batch``: entries parsed at once."""
    default, tomlentries.BATCH = tomlentries.BATCH, batch
    try:
        return _read_both(text)
    finally:
        tomlentries.BATCH = default


def _read_both(text: str | bytes) -> tuple[Any, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.toml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        results: list[Any] = []
        for read in (read_chunked, read_whole):
            try:
                toml = read(path)
                results.append((toml.tables, list(toml.entries), toml.has_entries))
            except (Unchunkable, ConfigError) as exc:
                results.append(exc)
        return results[0], results[1]


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=14).map("".join), st.sampled_from([1, 2, 3, 50]))
def test_a_file_read_entry_by_entry_reads_as_it_does_whole(text: str, batch: int) -> None:
    """Verify that wherever the file is read in pieces, the tables, the entries and their
    header lines equal the whole parse's (tomllib's); anything else is refused, and the whole
    parse then gives its result or its error, as ever."""
    chunked, whole = _both(text, batch)
    if not isinstance(chunked, Unchunkable):
        assert not isinstance(whole, Exception), (text, whole)
        assert chunked == whole


HEADERS = ["[[entries]]\n", " [[ entries ]] # c\n", "[[entries]]\r\n", "[[entries]]\r"]
BODY = [
    'to = "a@b.test"\n',
    'company = "Co"\r\n',
    'note = """\n[[entries]]\n"""\n',  # a header inside a string
    "note = '''\n [[ entries ]]\n'''\n",
    'free = [\n"2026-12-07 09:00-12:00",\n]\n',
    "# [[entries]]\n",
    "\n",
    'salutation = "a\u2028b"\n',
    "interview = 2026-12-01T10:00:00Z\n",
    "[entries.vars]\nteam = 'd'\n",
    "[[entries.sub]]\nx = 1\n",
    '[defaults]\nnote = "after"\n',  # a table after the entries
    '[["entries"]]\n',
]
HEAD = ['[campaign]\nname = "x"\n', '[defaults]\nnote = "n"\n', "[throttle]\nrate = 5\n", "\n"]


@settings(max_examples=700, deadline=None)
@given(
    st.lists(st.sampled_from(HEAD), unique=True).map("".join),
    st.lists(
        st.tuples(
            st.sampled_from(HEADERS),
            st.lists(st.sampled_from(BODY), unique=True, max_size=4).map("".join),
        ).map("".join),
        max_size=8,
    ).map("".join),
    st.sampled_from([1, 2, 3, 50]),
)
def test_a_mostly_valid_file_read_entry_by_entry_reads_as_it_does_whole(
    head: str, entries: str, batch: int
) -> None:
    """Verify the same on files shaped like campaigns (mostly valid, so mostly read in
    pieces), with the tricky lines among their entries."""
    chunked, whole = _both(head + entries, batch)
    if not isinstance(chunked, Unchunkable):
        assert chunked == whole


@pytest.mark.parametrize(
    "text",
    [
        '[campaign]\nname = "x"\n[[entries]]\nto = "a@b.test"\n[entries.vars]\nt = "1"\n'
        '\n[[entries]] # two\r\nto = "c@d.test"\n',
        "[[entries]]\n[[entries]]\n",
        "",
        '[defaults]\nnote = "only tables"\n',
        # A byte order mark (Windows Notepad) is no part of the text, read whole or not.
        '\ufeff[[entries]]\nto = "a@b.test"\n[[entries]]\nto = "c@d.test"\n',
        '\ufeff[defaults]\nnote = "n"\n[[entries]]\n',
    ],
)
@pytest.mark.parametrize("batch", [1, 50])
def test_a_plain_campaign_file_is_read_entry_by_entry(text: str, batch: int) -> None:
    """Verify that the usual shapes are read in pieces (not refused), as they read whole."""
    chunked, whole = _both(text, batch)
    assert not isinstance(chunked, Exception) and chunked == whole


@pytest.mark.parametrize(
    "text",
    [
        '[[entries]]\nnote = """\n[[entries]]\n"""\n',  # a header inside a string
        "[[entries]]\nnote = '''\n[[entries]]\n'''\n",
        '[[entries]]\nto = "a"\n[defaults]\nnote = "after the entries"\n',
        '[[entries]]\nto = "a"\n[["entries"]]\nto = "b"\n',  # a header spelt otherwise
        "entries = []\n[[entries]]\n",
        '[[entries]]\nto = "a"\nto = "b"\n',  # invalid: refused, the whole parse says why
        "\ufeff\ufeff[[entries]]\n",  # a second BOM is a character: invalid
        '[[entries]]\nto = "a"\n[throttle]\nrate = 5\n',  # a table after the entries
        b"[[entries]]\nto = '\xff'\n",  # not UTF-8: the whole read says so
        b"\xff\n[[entries]]\n",
    ],
)
@pytest.mark.parametrize("batch", [1, 50])
def test_a_file_that_might_read_otherwise_in_pieces_is_refused(text: str, batch: int) -> None:
    chunked, _ = _both(text, batch)
    assert isinstance(chunked, Unchunkable)


def test_a_file_read_whole_gives_the_same_campaign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify that a campaign loaded entry by entry equals the one loaded from the whole
    parse: entries, places, problems and counts."""
    body = "".join(
        f'\n[[entries]]\nto = "ana{i % 3}@sandbox.test"\ncompany = "Co {i}"\n'
        f'interview = "2026-11-24 1{i}:00"\nfree = ["2026-12-07 09:00-12:00"]\n'
        + ('key = "same"\n' if i in (2, 5) else "")
        + ("bogus = 1\n" if i == 4 else "")
        for i in range(8)
    )
    chunked, _ = load(tmp_path / "a", body)
    monkeypatch.setattr(campaign_module, "read_chunked", _refuse)
    whole, _ = load(tmp_path / "a", body)
    assert chunked.problems == whole.problems and len(chunked.problems) == 2
    assert (chunked.total, chunked.invalid, chunked.file_level) == (8, 2, 0)
    assert (whole.total, whole.invalid, whole.file_level) == (8, 2, 0)
    assert [(e.key, e.where, e.facts) for e in chunked.entries] == [
        (e.key, e.where, e.facts) for e in whole.entries
    ]
    assert chunked.entries[0].where.endswith("c.toml:6")


def _refuse(path: Path) -> Any:
    raise Unchunkable


def test_a_campaign_file_saved_with_a_bom_is_read_in_pieces_with_its_lines(
    tmp_path: Path,
) -> None:
    """Verify a campaign file that starts with a byte order mark (as Windows Notepad saves
    it) is read entry by entry, not refused, and each entry keeps the line of its header:
    the mark adds no line."""
    text = '[defaults]\nnote = "n"\n\n[[entries]]\nto = "a@b.test"\n\n[[entries]]\nto = "c"\n'
    path = tmp_path / "c.toml"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    read = read_chunked(path)
    assert read.tables == {"defaults": {"note": "n"}}
    assert list(read.entries) == [(4, {"to": "a@b.test"}), (7, {"to": "c"})]
    assert [line for line, _ in read_whole(path).entries] == [4, 7]


def test_invalid_toml_late_in_the_file_is_the_same_error_as_ever(tmp_path: Path) -> None:
    """Verify that a TOML error after entries already checked is reported as the whole
    parse reports it: the file, the line and the column of the whole file."""
    body = "".join(
        f'\n[[entries]]\nto = "ana@sandbox.test"\ncompany = "Co {i}"\n'
        f'interview = "2026-11-24 10:00"\nfree = ["2026-12-07 09:00-12:00"]\n'
        for i in range(3)
    )
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, body + '\n[[entries]]\nto = "x"\nto = "y"\n')
    path = tmp_path / "config" / "campaigns" / "c.toml"
    assert str(caught.value) == (
        f"{path}: invalid TOML: Cannot overwrite a value (at line 26, column 9)"
    )


def test_a_table_after_the_entries_is_refused_before_any_entry_is_read(tmp_path: Path) -> None:
    """Verify that a [throttle] at the end of the file sends the caller to the whole parse at
    once, not after every entry was checked (which would then be checked twice)."""
    path = tmp_path / "c.toml"
    path.write_text('[[entries]]\nto = "a"\n[entries.vars]\nt = "1"\n[[entries]]\n[throttle]\n')
    with pytest.raises(Unchunkable):
        read_chunked(path)
    path.write_text('[[entries]]\nto = "a"\n[entries.vars]\nt = "1"\n[[entries]]\n')
    assert [e for _, e in read_chunked(path).entries] == [{"to": "a", "vars": {"t": "1"}}, {}]


def test_a_file_that_is_not_utf8_is_the_whole_read_s_error(tmp_path: Path) -> None:
    chunked, whole = _both(b"[[entries]]\nto = '\xff'\n")
    assert isinstance(chunked, Unchunkable) and isinstance(whole, ConfigError)
    assert "cannot read" in str(whole)


def _campaign_text(tag: str, n: int) -> str:
    body = '[defaults]\nsituation = "illness"\ninterviewer = "Ana"\nrole = "Analyst"\n'
    body += 'interview = "2026-11-20 10:00"\n'
    for i in range(n):
        body += f'\n[[entries]]\nto = "{tag}{i:03d}@sandbox.test"\ncompany = "Co {i:03d}"\n'
    return body


def test_a_file_saved_while_it_is_read_in_pieces_is_refused_to_the_whole_read(
    tmp_path: Path,
) -> None:
    """Verify a file saved (same size, other addresses) after its first pieces were read is
    refused by the piecewise reader, whose entries would be half one version and half the
    other, so the caller reads it whole: one version."""
    path = tmp_path / "c.toml"
    path.write_text(_campaign_text("old", 120))
    read = read_chunked(path)
    first = next(read.entries)
    assert first[1]["to"] == "old000@sandbox.test"
    path.write_text(_campaign_text("new", 120))
    with pytest.raises(Unchunkable):
        list(read.entries)


def test_a_campaign_saved_while_it_is_checked_is_checked_as_one_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify a campaign file saved while its entries are being checked (as by an editor):
    the campaign loaded is the new version whole, not the old one's first entries and the
    new one's last."""

    def entries(tag: str) -> str:
        return "".join(
            f'\n[[entries]]\nto = "{tag}{i:03d}@sandbox.test"\ncompany = "Co {i:03d}"\n'
            'interview = "2026-11-20 10:00"\n'
            for i in range(120)
        )

    path = tmp_path / "config" / "campaigns" / "c.toml"
    real_entry, calls = campaign_module._entry, [0]

    def entry(*args: Any, **kw: Any) -> Any:
        calls[0] += 1
        if calls[0] == 10:  # (the load's helper writes these defaults first)
            head = '[defaults]\nsituation = "illness"\nrole = "Analyst"\ninterviewer = "Ana"\n'
            path.write_text(head + entries("new"), encoding="utf-8")
        return real_entry(*args, **kw)

    monkeypatch.setattr(campaign_module, "_entry", entry)
    c, _ = load(tmp_path, entries("old"))
    assert {e.facts.to[:3] for e in c.entries} == {"new"}
    assert len(c.entries) == 120 and not c.problems


def test_bytes_added_after_the_last_piece_was_read_send_the_file_to_the_whole_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify a file that grows after its last piece was read (its end seen by the parser,
    the rest of a save landing just after) is refused to the whole read: what was parsed
    must be all the file holds."""
    path = tmp_path / "c.toml"
    path.write_text(_campaign_text("old", 3))
    real_batch = tomlentries._batch

    def batch(lines: list[str], headers: int) -> list[Any]:
        with path.open("a") as f:
            f.write('role = "Engineer"\n')
        return real_batch(lines, headers)

    monkeypatch.setattr(tomlentries, "_batch", batch)
    read = read_chunked(path)
    with pytest.raises(Unchunkable):
        list(read.entries)
