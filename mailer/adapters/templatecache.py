"""Compiled templates kept between runs, in the user's cache directory.

Compiling the two templates of an apology (lexing, parsing, the budget's rewriting, Python's
``compile``) was a twentieth of a ``preview``; loading the compiled code is a fraction of
that. Jinja2's :class:`~jinja2.FileSystemBytecodeCache` does the work: it keys each template
by its name and file, and keeps a checksum of its source, so an edited template is compiled
again. This adds what Jinja2's key leaves out, the code that compiles: the Jinja2 and Python
versions, the environment's options and our own code generator (``templating.py``); a
template compiled by another version of either is never used. A cache that cannot be read
or written is no cache: the template is compiled, as without one.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any

from jinja2 import FileSystemBytecodeCache
from jinja2.bccache import Bucket

from mailer.adapters.userdirs import user_cache_dir


def cache_dir() -> Path:
    """``templates`` in the user's cache directory (see :func:`user_cache_dir`)."""
    return user_cache_dir() / "templates"


class TemplateCache(FileSystemBytecodeCache):
    """A :class:`FileSystemBytecodeCache` whose keys also name the compiler (see the
    module's docstring), and which never fails a render."""

    def __init__(self, directory: Path, compiler: str) -> None:
        super().__init__(str(directory), "%s.jinja")
        self.compiler = compiler

    def get_cache_key(self, name: str, filename: str | None = None) -> str:
        text = f"{self.compiler}\0{name}\0{filename or ''}"
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    def load_bytecode(self, bucket: Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # unreadable or damaged: compile it again
            bucket.reset()

    def dump_bytecode(self, bucket: Bucket) -> None:
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            super().dump_bytecode(bucket)
        except OSError:
            return  # a read-only or full disk: the next run compiles it again
        # Here, and not on every load: a dump is rare (a new or edited template, another
        # version of mailer), and each one may leave older entries nobody will ask for.
        prune(Path(self.directory), time.time() - PRUNE_AFTER_SECONDS)


# Entries not written for this long go (a template still in use is compiled once again):
# each upgrade of mailer, Jinja2 or Python, and each workspace's own templates, leave some.
PRUNE_AFTER_SECONDS = 30 * 24 * 3600


def prune(directory: Path, older_than: float) -> int:
    """Remove the cache's entries last written before ``older_than`` (a time.time());
    returns how many. Anything that cannot be looked at or removed is left as it is."""
    removed = 0
    try:
        entries = list(directory.glob("*.jinja"))
    except OSError:
        return 0
    for entry in entries:
        try:
            if entry.stat().st_mtime < older_than:
                entry.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def template_cache(options: dict[str, Any]) -> TemplateCache | None:
    """The cache for an environment made with ``options``; None when there is no home to
    keep it in."""
    import jinja2

    from mailer.model import templating

    try:
        directory = cache_dir()
        ours = Path(templating.__file__).read_bytes()
    except (OSError, RuntimeError):  # no home directory, or the module's file is gone
        return None
    compiler = "\0".join(
        (
            jinja2.__version__,
            sys.version,
            hashlib.sha256(ours).hexdigest(),
            repr(sorted((k, repr(v)) for k, v in options.items())),
        )
    )
    return TemplateCache(directory, compiler)
