"""Compiled regexes kept between runs, in the user's cache directory.

Python compiles a regex in Python code (its parser and code generator), and keeps the result
only in memory: the apology check's regexes (one gate alone is 3,500 characters) cost a
tenth of a ``preview`` every run. This keeps what the compiler makes, the program the regex
engine runs, and gives it to the engine directly the next time (``_sre.compile``, as
``re.compile`` itself does).

Only what compiles to the very pattern ``re.compile`` makes is kept (checked when it is
written); a kept program is used only by the same Python (its version and the engine's
magic number are in the key), and the engine checks it before running it. Anything else
(no cache directory, a damaged file, another Python's internals) falls back to
``re.compile``.
"""

from __future__ import annotations

import _sre
import contextlib
import hashlib
import marshal
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from mailer.adapters.userdirs import user_cache_dir


def cache_dir() -> Path:
    """``regex`` in the user's cache directory (see :func:`user_cache_dir`)."""
    return user_cache_dir() / "regex"


def compiled(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """``re.compile(pattern, flags)``, from the cache when it holds it."""
    flags = int(flags)
    if flags & re.DEBUG:
        return re.compile(pattern, flags)
    key = hashlib.sha256(
        f"{sys.version}\0{_sre.MAGIC}\0{flags}\0{pattern}".encode("utf-8", "surrogatepass")
    ).hexdigest()
    try:
        path = cache_dir() / f"{key}.re"
        source, source_flags, *program = marshal.loads(path.read_bytes())
        if source == pattern and source_flags == flags:  # (not another one's program)
            return _sre.compile(pattern, *program)  # type: ignore[no-any-return]
    except Exception:  # not kept yet, or unreadable: compile it, and keep it
        pass
    made = re.compile(pattern, flags)
    try:
        program = _program(pattern, flags)
        if _sre.compile(pattern, *program) == made:  # the same flags, groups and code
            _write(path, marshal.dumps((pattern, flags, *program)))
    except Exception:  # another Python's internals, or nowhere to write: no cache
        pass
    return made


def _program(pattern: str, flags: int) -> tuple[Any, ...]:
    """What re._compiler.compile gives the engine for ``pattern``, as CPython 3.11 does it
    (where another version differs, the check in :func:`compiled` keeps nothing)."""
    from re import _compiler, _parser  # type: ignore[attr-defined]

    parsed = _parser.parse(pattern, flags)
    code = _compiler._code(parsed, flags)
    groupindex = dict(parsed.state.groupdict)
    indexgroup = [None] * parsed.state.groups
    for name, i in groupindex.items():
        indexgroup[i] = name
    return (
        int(flags | parsed.state.flags),
        [int(op) for op in code],
        parsed.state.groups - 1,
        groupindex,
        tuple(indexgroup),
    )


def _write(path: Path, data: bytes) -> None:
    """Whole or not at all: a reader never sees half a file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
