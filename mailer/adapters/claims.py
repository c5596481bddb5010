"""What the entries of a campaign checked so far have claimed: their keys (and where each
entry is), and each address's subjects, which a later entry must not repeat.

Past the first :data:`~mailer.adapters.spill.IN_MEMORY` claims, they move from dicts into a
private temporary SQLite database: 10,000 entries' keys, places and subjects were 2 MB of
strings held while the campaign loads; there, SQLite's page cache (512 KB at most) holds what
is in use, and the rest is in a file no one else can open, gone when it is closed (or when
the process ends). A campaign of that size or smaller never opens one.
"""

from __future__ import annotations

import os
from typing import Any

from mailer.adapters.spill import IN_MEMORY
from mailer.errors import MailerError

_SCHEMA = """
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -512;
CREATE TABLE keys (key BLOB PRIMARY KEY, place BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE subjects (address BLOB, subject BLOB, PRIMARY KEY (address, subject))
    WITHOUT ROWID;
"""


class Claims:
    def __init__(self, in_memory: int | None = None) -> None:
        self._in_memory = IN_MEMORY if in_memory is None else in_memory
        self._keys: dict[str, str] = {}
        self._subjects: set[tuple[str, str]] = set()  # (address in lower case, subject)
        self._db: Any = None

    def claim_key(self, key: str, place: str) -> str | None:
        """Claim ``key`` for the entry at ``place``; if an earlier entry claimed it, that one
        keeps it and this says where it is."""
        if self._db is None:
            if key in self._keys:
                return self._keys[key]
            self._keys[key] = place
            self._move_if_many()
            return None
        if self._run("INSERT OR IGNORE INTO keys VALUES (?, ?)", key, place).rowcount:
            return None
        return _text(self._run("SELECT place FROM keys WHERE key = ?", key).fetchone()[0])

    def subject_taken(self, address: str, subject: str) -> bool:
        """Whether an earlier entry to ``address`` (compared without case) has ``subject``."""
        if self._db is None:
            return (address.lower(), subject) in self._subjects
        sql = "SELECT 1 FROM subjects WHERE address = ? AND subject = ?"
        return self._run(sql, address.lower(), subject).fetchone() is not None

    def claim_subject(self, address: str, subject: str) -> None:
        if self._db is None:
            self._subjects.add((address.lower(), subject))
            self._move_if_many()
        else:
            self._run("INSERT OR IGNORE INTO subjects VALUES (?, ?)", address.lower(), subject)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()

    def _move_if_many(self) -> None:
        if len(self._keys) + len(self._subjects) <= 2 * self._in_memory:
            return
        import sqlite3

        try:
            # "": a temporary database on disk, private to this connection.
            self._db = sqlite3.connect("", isolation_level=None)
            self._db.executescript(_SCHEMA)
            self._db.executemany(
                "INSERT INTO keys VALUES (?, ?)",
                ((_blob(k), _blob(p)) for k, p in self._keys.items()),
            )
            self._db.executemany(
                "INSERT INTO subjects VALUES (?, ?)",
                ((_blob(a), _blob(s)) for a, s in self._subjects),
            )
        except sqlite3.Error as exc:
            raise _trouble(exc) from None
        self._keys, self._subjects = {}, set()
        self._db_error = sqlite3.Error

    def _run(self, sql: str, *args: str) -> Any:
        try:
            return self._db.execute(sql, [_blob(a) for a in args])
        except self._db_error as exc:
            raise _trouble(exc) from None


def _blob(text: str) -> bytes:
    """Text as stored: bytes, for any string (a place's folder may hold a name that is not
    UTF-8, read as lone surrogates, which SQLite's text refuses)."""
    return text.encode("utf-8", "surrogatepass")


def _text(blob: bytes) -> str:
    return blob.decode("utf-8", "surrogatepass")


def _sqlite_temp_dir() -> str:
    """Where SQLite puts a temporary database: on Unix the first writable folder of
    SQLITE_TMPDIR, TMPDIR, /var/tmp, /usr/tmp and /tmp (its own order, not Python's)."""
    import tempfile

    if os.name == "nt":
        return tempfile.gettempdir()  # (GetTempPath, as Python's)
    for where in (
        os.environ.get("SQLITE_TMPDIR"),
        os.environ.get("TMPDIR"),
        "/var/tmp",
        "/usr/tmp",
        "/tmp",
    ):
        if where and os.path.isdir(where) and os.access(where, os.W_OK | os.X_OK):
            return where
    return "."


def _trouble(exc: Exception) -> MailerError:
    return MailerError(
        f"{_sqlite_temp_dir()}: cannot keep the campaign's keys and subjects in a temporary "
        f"database: {exc}",
        hint="free some disk space there, or point SQLITE_TMPDIR (or TMPDIR) elsewhere",
    )
