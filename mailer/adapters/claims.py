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


# Past the move, a claim is first looked up in a filter of fixed size (a Bloom filter: 1 MiB,
# two bits a claim), and only a "maybe" asks the database; new claims go to the database a
# batch at a time. Most claims are new, and each used to cost a statement or two of its own.
_FILTER_BITS = 1 << 23
_BATCH = 512


class Claims:
    def __init__(self, in_memory: int | None = None) -> None:
        self._in_memory = IN_MEMORY if in_memory is None else in_memory
        self._keys: dict[str, str] = {}
        self._subjects: set[tuple[str, str]] = set()  # (address in lower case, subject)
        self._db: Any = None
        self._filter = bytearray()

    def claim_key(self, key: str, place: str) -> str | None:
        """Claim ``key`` for the entry at ``place``; if an earlier entry claimed it, that one
        keeps it and this says where it is."""
        if key in self._keys:
            return self._keys[key]
        if self._db is not None and self._maybe(("", key)):
            row = self._run("SELECT place FROM keys WHERE key = ?", key).fetchone()
            if row is not None:
                return _text(row[0])
        self._keys[key] = place
        self._added(("", key))
        return None

    def subject_taken(self, address: str, subject: str) -> bool:
        """Whether an earlier entry to ``address`` (compared without case) has ``subject``."""
        claim = (address.lower(), subject)
        if claim in self._subjects:
            return True
        if self._db is None or not self._maybe(claim):
            return False
        sql = "SELECT 1 FROM subjects WHERE address = ? AND subject = ?"
        return self._run(sql, *claim).fetchone() is not None

    def claim_subject(self, address: str, subject: str) -> None:
        claim = (address.lower(), subject)
        self._subjects.add(claim)
        self._added(claim)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()

    def _added(self, claim: tuple[str, str]) -> None:
        if self._db is not None:
            self._mark(claim)
            if len(self._keys) + len(self._subjects) >= _BATCH:
                self._write()
        elif len(self._keys) + len(self._subjects) > 2 * self._in_memory:
            self._move()

    def _move(self) -> None:
        import sqlite3

        try:
            # "": a temporary database on disk, private to this connection.
            self._db = sqlite3.connect("", isolation_level=None)
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise _trouble(exc) from None
        self._db_error = sqlite3.Error
        self._filter = bytearray(_FILTER_BITS // 8)
        for key in self._keys:
            self._mark(("", key))
        for claim in self._subjects:
            self._mark(claim)
        self._write()

    def _write(self) -> None:
        """The claims held in memory, into the database (each is new there: looked up first)."""
        try:
            self._db.executemany(
                "INSERT OR IGNORE INTO keys VALUES (?, ?)",
                ((_blob(k), _blob(p)) for k, p in self._keys.items()),
            )
            self._db.executemany(
                "INSERT OR IGNORE INTO subjects VALUES (?, ?)",
                ((_blob(a), _blob(s)) for a, s in self._subjects),
            )
        except self._db_error as exc:
            raise _trouble(exc) from None
        self._keys, self._subjects = {}, set()

    def _bits(self, claim: tuple[str, str]) -> tuple[int, int]:
        h = hash(claim)  # (salted per process: the filter lives no longer than the process)
        return h & (_FILTER_BITS - 1), (h >> 32) & (_FILTER_BITS - 1)

    def _mark(self, claim: tuple[str, str]) -> None:
        for bit in self._bits(claim):
            self._filter[bit >> 3] |= 1 << (bit & 7)

    def _maybe(self, claim: tuple[str, str]) -> bool:
        """False: never claimed. True: perhaps (the database says)."""
        return all(self._filter[bit >> 3] & (1 << (bit & 7)) for bit in self._bits(claim))

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
