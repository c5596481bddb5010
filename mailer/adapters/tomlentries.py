"""A campaign file read a few ``[[entries]]`` tables at a time, not parsed whole.

Parsed whole, a file of 10,000 entries is 5 MB of dicts alive while every entry is checked.
Here the text is cut before lines that start an ``[[entries]]`` table, and each piece (a few
dozen entries) is parsed alone with tomllib: only that many entries' dicts are alive at a
time. The result is the whole parse's, or there is none: :class:`Unchunkable` asks the
caller to read the file whole (:func:`read_whole`), which gives the result, or the error, as
ever. A cut inside a multi-line string or array leaves the piece before it unterminated, an
error; a piece must be as many entry tables as it has header lines, and nothing else (not a
``[defaults]`` after the entries, nor a header spelt ``[["entries"]]``); so every file read
in pieces reads as it does whole (tests hold this to tomllib with hypothesis).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailer.adapters.config import MAX_TOML_DEPTH, depth, read_toml
from mailer.adapters.snapshot import Snapshot

# An ``[[entries]]`` header, with or without spaces: only such lines are cut before.
ENTRIES_HEADER = re.compile(r"\s*\[\[\s*entries\s*\]\]")
# The header of an entry's own table, [entries.vars] or [[entries.more]].
_ENTRIES_TABLE = re.compile(r"\s*\[\[?\s*entries\s*\.")
# Entries parsed at once: each call of tomllib costs as much as a few entries' parsing.
BATCH = 50


class Unchunkable(Exception):
    """The file does not read entry by entry as it reads whole: read it whole."""


@dataclass
class CampaignToml:
    """A campaign file's tables: every top-level one but ``entries``, and the entries in file
    order, each with the line of its header (None when not known)."""

    tables: dict[str, Any]
    entries: Iterator[tuple[int | None, Any]]
    has_entries: bool  # any at all (known before they are read)
    entries_valid: bool = True  # False: "entries" is not an array of tables


def read_chunked(path: Path) -> CampaignToml:
    """The file read entry by entry (the entries as they are iterated, each read then).
    Raises :class:`Unchunkable`, now or while the entries are read, where the result might
    differ from :func:`read_whole`'s; never a TOML error of its own."""
    try:
        # utf-8-sig: a byte order mark (Windows Notepad) is no part of the text, as read_toml
        # drops it; the digest still covers its bytes.
        snap = Snapshot(path, encoding="utf-8-sig")  # universal newlines, as read_text reads
    except (OSError, ValueError):
        raise Unchunkable from None
    f = snap.file
    try:
        head, header, line_no = [], None, 0
        for line in f:
            line_no += 1
            if "[[" in line and ENTRIES_HEADER.match(line):
                header = line
                break
            head.append(line)
        tables = _parse(head)
        if "entries" in tables or (header is not None and _tables_after(path)):
            raise Unchunkable
    except (OSError, UnicodeDecodeError, ValueError):
        snap.close()
        raise Unchunkable from None  # the whole read says what is wrong
    except BaseException:
        snap.close()
        raise
    return CampaignToml(tables, _entries(snap, header, line_no), has_entries=header is not None)


def _tables_after(path: Path) -> bool:
    """Whether a line after the first entry header looks like another table's header (as a
    ``[throttle]`` put at the end): read in pieces, the file would be refused only there,
    after every entry was checked, and all of that done again on the whole parse. (A line
    inside a string may look so too: the whole parse then reads the file, as well.)"""
    with path.open(encoding="utf-8-sig") as f:
        after = False
        for line in f:
            if "[" in line and line.lstrip().startswith("["):
                if ENTRIES_HEADER.match(line):
                    after = True
                elif after and not _ENTRIES_TABLE.match(line):
                    return True
    return False


def _entries(snap: Snapshot, header: str | None, line_no: int) -> Iterator[tuple[int | None, Any]]:
    with snap:
        chunk, starts = [header] if header is not None else [], [line_no]
        try:
            for line in snap.file if header is not None else ():
                line_no += 1
                if "[[" in line and ENTRIES_HEADER.match(line):
                    if len(starts) == BATCH:
                        yield from zip(starts, _batch(chunk, len(starts)), strict=True)
                        chunk, starts = [], []
                    starts.append(line_no)
                chunk.append(line)
            if header is not None:
                last = _batch(chunk, len(starts))
            # Read a piece at a time while each entry was checked, the file may have been
            # saved meanwhile: then what was read is neither version, and it is read whole.
            # (Bytes past the end the parser saw are such a change too.)
            unchanged = not snap.file.read() and snap.unchanged()
        except (OSError, UnicodeDecodeError, ValueError):
            raise Unchunkable from None
        if not unchanged:
            raise Unchunkable
        if header is not None:
            yield from zip(starts, last, strict=True)


def _batch(lines: list[str], headers: int) -> list[Any]:
    """The entries of ``lines``, which hold ``headers`` entry headers (a table each)."""
    data = _parse(lines)
    entries = data.get("entries")
    if len(data) != 1 or not isinstance(entries, list) or len(entries) != headers:
        raise Unchunkable
    return entries


def _parse(lines: list[str]) -> dict[str, Any]:
    try:
        data = tomllib.loads("".join(lines))
    except (tomllib.TOMLDecodeError, RecursionError):
        raise Unchunkable from None
    if depth(data) > MAX_TOML_DEPTH:
        raise Unchunkable  # the whole file's depth is the error's to name
    return data


def read_whole(path: Path) -> CampaignToml:
    """The file parsed whole (raises read_toml's errors)."""
    text, data = read_toml(path)
    inline = data.pop("entries", [])
    valid = isinstance(inline, list) and all(isinstance(e, dict) for e in inline)
    inline = inline if valid else []
    lines = entry_lines(text)
    known = len(lines) == len(inline)
    return CampaignToml(
        data,
        ((lines[i] if known else None, e) for i, e in enumerate(inline)),
        has_entries=bool(inline),
        entries_valid=valid,
    )


def entry_lines(text: str) -> list[int]:
    """The line of each ``[[entries]]`` header, to point at the entry with a problem. (A
    header holds "[[": only such lines are matched.) Lines end at "\\n" only, as tomllib
    counts them: a U+2028 in a note ends no line."""
    return [
        i
        for i, line in enumerate(text.split("\n"), 1)
        if "[[" in line and ENTRIES_HEADER.match(line)
    ]
