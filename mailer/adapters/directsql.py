"""The SQLite store spoken to straight through the ``sqlite3`` module, without SQLAlchemy.

SQLAlchemy's Core costs about 60 µs a statement and 100 µs a transaction in Python before
SQLite does anything, and importing it (with the schema's MetaData) took about 250 ms of
every command that opened a store: more than a 300-message campaign's store work. So a
SQLite store has an :class:`Engine` of its own here: a small pool of ``sqlite3``
connections, each with the pragmas the store relies on (WAL, ``synchronous``, foreign keys,
a busy timeout) and ``BEGIN IMMEDIATE`` for every write transaction, the writers' lock that
stops two processes from both reading "not yet sent" and both sending. PostgreSQL, the
migrations of an old store and ``store copy``'s Core statements still go through
SQLAlchemy.

:class:`Connection` offers the part of SQLAlchemy's ``Connection`` that the store uses
(``execute`` of its ``text()`` statements with named parameters, ``exec_driver_sql``, and
from a result ``first``, ``scalar``, ``scalar_one``, ``mappings()``, ``all``, iteration,
``fetchmany`` and ``rowcount``), so the same store code runs on either.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# Idle connections an engine keeps (SQLAlchemy's pool kept five too).
POOL_SIZE = 5


class Result:
    """What one statement returned. A SELECT is read as it is asked for (``store copy``
    reads tables in batches); anything else is read at once, so that its effects and
    ``rowcount`` are complete before the next statement."""

    def __init__(self, cursor: sqlite3.Cursor, lazy: bool = False) -> None:
        self._cursor = cursor
        self._names = [d[0] for d in cursor.description] if cursor.description else []
        self._rows: list[tuple[Any, ...]] | None = None
        if not lazy:
            self._read()

    def _read(self) -> list[tuple[Any, ...]]:
        if self._rows is None:
            self._rows = self._cursor.fetchall() if self._names else []
        return self._rows

    @property
    def rowcount(self) -> int:
        # Read after the rows: for an UPDATE ... RETURNING, SQLite counts the rows as they
        # are stepped through.
        self._read()
        return self._cursor.rowcount

    def keys(self) -> list[str]:
        return list(self._names)

    def first(self) -> tuple[Any, ...] | None:
        rows = self._read()
        return rows[0] if rows else None

    def all(self) -> list[tuple[Any, ...]]:
        return list(self._read())

    fetchall = all

    def fetchmany(self, size: int) -> list[tuple[Any, ...]]:
        if self._rows is not None:
            batch, self._rows = self._rows[:size], self._rows[size:]
            return batch
        return self._cursor.fetchmany(size) if self._names else []

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._read())

    def scalar(self) -> Any:
        rows = self._read()
        return rows[0][0] if rows else None

    def one(self) -> tuple[Any, ...]:
        rows = self._read()
        if len(rows) != 1:
            raise sqlite3.ProgrammingError(f"expected one row, got {len(rows)}")
        return rows[0]

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalars(self) -> list[Any]:
        return [r[0] for r in self._read()]

    def mappings(self) -> Mappings:
        return Mappings([dict(zip(self._names, r, strict=True)) for r in self._read()])


class Mappings:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self._rows = rows

    def first(self) -> dict[str, Any] | None:
        return self._rows[0] if self._rows else None

    def all(self) -> list[dict[str, Any]]:
        return self._rows

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._rows)


class _Dialect:
    name = "sqlite"
    driver = "pysqlite"


class Pooled:
    """One connection out of an :class:`Engine`'s pool; :meth:`close` gives it back."""

    def __init__(self, engine: Engine, dbapi: sqlite3.Connection) -> None:
        self._engine = engine
        self.dbapi_connection = self.driver_connection = dbapi

    def cursor(self) -> sqlite3.Cursor:
        return self.dbapi_connection.cursor()

    def close(self) -> None:
        self._engine._give_back(self.dbapi_connection)


class Engine:
    """``sqlite3`` connections to one store, pooled (one per thread at a time: the daemon's
    watcher, scheduler and Sent-copy threads each take their own). ``memory``: the one
    connection of an in-memory store, shared, since each new one would be a new, empty
    database."""

    dialect = _Dialect()

    def __init__(
        self, path: str, synchronous: str, memory: sqlite3.Connection | None = None
    ) -> None:
        self._path = path
        self._synchronous = synchronous
        self._memory = memory
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    @classmethod
    def in_memory(cls) -> tuple[sqlite3.Connection, Engine]:
        db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA foreign_keys=ON")
        return db, cls(":memory:", "OFF", memory=db)

    def connect(self) -> sqlite3.Connection:
        """A new connection with the store's pragmas (also SQLAlchemy's, to migrate)."""
        # isolation_level=None: no implicit BEGIN; the store says BEGIN IMMEDIATE itself.
        # timeout=30: SQLite's busy timeout, 30 s.
        db = sqlite3.connect(self._path, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            _wal(db)
            db.execute(f"PRAGMA synchronous={self._synchronous}")
            db.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            db.close()
            raise
        return db

    def raw_connection(self) -> Pooled:
        if self._memory is not None:
            return Pooled(self, self._memory)
        with self._lock:
            db = self._idle.pop() if self._idle else None
        return Pooled(self, db if db is not None else self.connect())

    def _give_back(self, db: sqlite3.Connection) -> None:
        if db is self._memory:
            return  # (its transactions are ended by whoever began them)
        if db.in_transaction:  # never handed on in the middle of a transaction
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                db.close()
                return
        with self._lock:
            if len(self._idle) < POOL_SIZE:
                self._idle.append(db)
                return
        db.close()

    def dispose(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        if self._memory is not None:
            idle.append(self._memory)  # closed with the store, its data gone
        for db in idle:
            with contextlib.suppress(sqlite3.Error):
                db.close()


class Connection:
    """One sqlite3 connection inside a transaction, spoken to as the store speaks to
    SQLAlchemy's."""

    dialect = _Dialect()

    def __init__(self, dbapi: sqlite3.Connection) -> None:
        self.dbapi = dbapi
        self.info: dict[str, Any] = {}  # (SQLAlchemy's: where PostgreSQL keeps later work)

    @property
    def connection(self) -> Connection:
        return self  # (SQLAlchemy's ``c.connection.dbapi_connection``)

    @property
    def dbapi_connection(self) -> sqlite3.Connection:
        return self.dbapi

    def execute(self, clause: Any, params: Any = None) -> Result:
        if isinstance(clause, str):
            sql = clause
        elif hasattr(clause, "text"):  # SQLAlchemy's own text() (store copy)
            sql = clause.text
        else:  # a Core statement (store copy's inserts and counts)
            sql, params = _compiled(clause, params)
        return self.exec_driver_sql(sql, params)

    def exec_driver_sql(self, sql: str, params: Any = None) -> Result:
        if isinstance(params, list):
            return Result(self.dbapi.executemany(sql, params))
        cursor = self.dbapi.execute(sql, params if params is not None else ())
        return Result(cursor, lazy=sql.lstrip()[:6].upper() == "SELECT")


def _compiled(clause: Any, params: Any) -> tuple[str, Any]:
    """A SQLAlchemy Core statement as SQLite text with named parameters: its own bound
    values, and over them the caller's (each row's, for many)."""
    from sqlalchemy.dialects import sqlite

    first = params[0] if isinstance(params, list) and params else params
    compiled = clause.compile(
        dialect=sqlite.dialect(paramstyle="named"), column_keys=list(first or {})
    )
    own = compiled.params
    if isinstance(params, list):
        return str(compiled), [{**own, **row} for row in params]
    return str(compiled), {**own, **(params or {})}


def _wal(db: sqlite3.Connection) -> None:
    """WAL mode (kept in the file: once a store has it, this only reads it). Two processes
    switching a store to it at once make SQLite answer one of them "database is locked"
    at once, without its busy timeout, so that answer is waited out here."""
    if str(db.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + 30
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def transaction(engine: Any) -> Iterator[Connection]:
    """``BEGIN IMMEDIATE`` (the writers' lock) ... ``COMMIT`` on a connection from
    ``engine``'s pool; ``ROLLBACK`` on any exception. sqlite3's own errors go out as they
    are (the store says them in one line)."""
    pooled = engine.raw_connection()
    try:
        dbapi = pooled.dbapi_connection
        dbapi.execute("BEGIN IMMEDIATE")
        try:
            yield Connection(dbapi)
            dbapi.execute("COMMIT")
        except BaseException:
            # The body's error, or the COMMIT's (a full disk): undone either way, and a
            # ROLLBACK that fails too must not hide the error that says what went wrong.
            with contextlib.suppress(sqlite3.Error):
                if dbapi.in_transaction:
                    dbapi.execute("ROLLBACK")
            raise
    finally:
        pooled.close()  # back to the pool
