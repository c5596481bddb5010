"""Compiled regular expressions kept between runs, in the user's cache directory.

The apology check compiles some forty regexes on first use. Python compiles a regex in
Python (its parser, then its compiler, into a list of numbers the regex engine ``_sre``
runs), and for the check's long alternations that was most of the first check of every
process: about a thirtieth of a ``campaign check``. This keeps each compiled program, keyed
on its pattern and flags, in a file named for the Python that compiled it (its version and
build, the engine's MAGIC and code size, and the source of its compiler), and builds the
regex from it the next time, which costs a few microseconds.

It is a cache, never a source of truth: a program is kept only after the regex built from
it compared equal (same pattern, flags and program) to the one ``re.compile`` made; a file
that cannot be read or written, or a program the engine refuses, is no cache, and the regex
is compiled as without one. It relies on how CPython 3.11-3.13 hand a parsed pattern to
``_sre.compile`` (``re._compiler.compile``); anywhere that differs, nothing is kept.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mailer.adapters.userdirs import user_cache_dir

# Programs kept in one file at most (the check has about forty).
MAX_PROGRAMS = 256
# Files not written for this long go (each upgrade of Python leaves one).
PRUNE_AFTER_SECONDS = 30 * 24 * 3600
_FORMAT = b"mailer-regexcache-1"

Program = tuple[int, list[int], int, dict[str, int], tuple[str | None, ...]]


def cache_dir() -> Path:
    return user_cache_dir() / "regex"


def compiler_key() -> str:
    """What the compiled programs depend on: the Python (version and build), the engine's
    MAGIC, code size and limits, and the source of the regex parser and compiler."""
    import _sre

    parts = [_FORMAT, sys.version.encode(), sys.implementation.cache_tag.encode()]
    parts += [str(v).encode() for v in (_sre.MAGIC, _sre.CODESIZE, _sre.MAXREPEAT, _sre.MAXGROUPS)]
    folder = Path(re.__file__).parent
    for name in ("_compiler.py", "_parser.py", "_constants.py", "_casefix.py"):
        path = folder / name
        parts.append(path.read_bytes() if path.is_file() else b"")
    return hashlib.sha256(b"\0".join(parts)).hexdigest()


def program(pattern: str, flags: int) -> Program | None:
    """What ``re._compiler.compile`` hands ``_sre.compile`` for ``pattern``, or None where
    this Python does it otherwise."""
    try:
        from re import _compiler, _parser  # type: ignore[attr-defined]

        parsed = _parser.parse(pattern, flags)
        code = _compiler._code(parsed, flags)
        groupindex = dict(parsed.state.groupdict)
        indexgroup: list[str | None] = [None] * parsed.state.groups
        for name, i in groupindex.items():
            indexgroup[i] = name
        return (
            int(flags | parsed.state.flags),
            [int(c) for c in code],
            int(parsed.state.groups - 1),
            groupindex,
            tuple(indexgroup),
        )
    except Exception:  # another Python's internals: no program, the regex is compiled as usual
        return None


def from_program(pattern: str, kept: Program) -> re.Pattern[str]:
    import _sre

    return _sre.compile(pattern, *kept)  # type: ignore[no-any-return]


class RegexCache:
    """``compile(pattern, flags)`` as ``re.compile``, from the programs in ``path`` where it
    has them; :meth:`save` adds those it compiled."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._kept: dict[tuple[str, int], Program] | None = None
        self._new: dict[tuple[str, int], Program] = {}

    def _programs(self) -> dict[tuple[str, int], Program]:
        if self._kept is None:
            self._kept = _read(self.path)
        return self._kept

    def compile(self, pattern: str, flags: int = 0) -> re.Pattern[str]:
        kept = self._programs().get((pattern, int(flags)))
        if kept is not None:
            try:
                return from_program(pattern, kept)
            except Exception:  # refused by the engine: compiled as without a cache
                pass
        compiled = re.compile(pattern, flags)
        if len(self._programs()) + len(self._new) < MAX_PROGRAMS:
            found = program(pattern, int(flags))
            try:
                if found is not None and from_program(pattern, found) == compiled:
                    self._new[(pattern, int(flags))] = found
            except Exception:
                pass
        return compiled

    def save(self) -> None:
        """Write the programs compiled since the file was read, if any. Never fails: a file
        that cannot be written is no cache."""
        if not self._new:
            return
        programs = {**self._programs(), **self._new}
        self._new = {}
        self._kept = programs
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".regex-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(_FORMAT + b"\n" + marshal.dumps(programs))
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except (OSError, ValueError):
            return
        _prune(self.path.parent, keep=self.path, older_than=time.time() - PRUNE_AFTER_SECONDS)


def _read(path: Path) -> dict[tuple[str, int], Program]:
    """The programs in ``path``; none if it is missing, damaged or not ours."""
    try:
        head, _, body = path.read_bytes().partition(b"\n")
        if head != _FORMAT:
            return {}
        data: Any = marshal.loads(body)
    except (OSError, ValueError, EOFError, TypeError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        key: value
        for key, value in data.items()
        if isinstance(key, tuple)
        and len(key) == 2
        and isinstance(key[0], str)
        and isinstance(key[1], int)
        and isinstance(value, tuple)
        and len(value) == 5
    }


def _prune(directory: Path, keep: Path, older_than: float) -> None:
    try:
        entries = list(directory.glob("*.marshal"))
    except OSError:
        return
    for entry in entries:
        try:
            if entry != keep and entry.stat().st_mtime < older_than:
                entry.unlink()
        except OSError:
            continue


def regex_cache() -> RegexCache | None:
    """The cache for this Python; None when there is no home to keep it in."""
    try:
        return RegexCache(cache_dir() / f"{compiler_key()}.marshal")
    except (OSError, RuntimeError):  # no home directory, or the regex sources are gone
        return None
