"""A write transaction on SQLite straight through the ``sqlite3`` module, for the store's
hot writes (a campaign's three per message, a follow-up's claim and marks).

SQLAlchemy's Core costs about 60 µs a statement and 100 µs a transaction in Python before
SQLite does anything; a campaign message makes nine statements in three transactions, so
that was most of the store's share of a send. The connection still comes from the
engine's pool (with the pragmas its ``connect`` event set: WAL, ``synchronous``, foreign
keys, busy timeout), so it is the same connection and the same durability as
:meth:`Store.tx`; only the Python between the statements is less.

:class:`Connection` offers the part of SQLAlchemy's ``Connection`` that the store's write
helpers use (``execute`` of a ``text()`` clause with named parameters, and from its result
``first``, ``scalar``, ``scalar_one``, ``mappings().first()/.all()``, ``all`` and
``rowcount``), so the same helpers run on either.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Result:
    """What one statement returned, read at once (the cursor is not kept)."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._names = [d[0] for d in cursor.description] if cursor.description else []
        self._rows = cursor.fetchall() if self._names else []
        # Read after the rows: for an UPDATE ... RETURNING, SQLite counts the rows as they
        # are stepped through.
        self.rowcount = cursor.rowcount

    def first(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def all(self) -> list[tuple[Any, ...]]:
        return list(self._rows)

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        if len(self._rows) != 1:
            raise sqlite3.ProgrammingError(f"expected one row, got {len(self._rows)}")
        return self._rows[0][0]

    def mappings(self) -> Mappings:
        return Mappings([dict(zip(self._names, r, strict=True)) for r in self._rows])


class Mappings:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self._rows = rows

    def first(self) -> dict[str, Any] | None:
        return self._rows[0] if self._rows else None

    def all(self) -> list[dict[str, Any]]:
        return self._rows


class Connection:
    """One sqlite3 connection inside a transaction, spoken to as the store's helpers speak
    to SQLAlchemy's."""

    def __init__(self, dbapi: sqlite3.Connection) -> None:
        self.dbapi = dbapi
        self.info: dict[str, Any] = {}  # (SQLAlchemy's: where PostgreSQL keeps later work)

    def execute(self, clause: Any, params: dict[str, Any] | None = None) -> Result:
        # A text() clause carries its SQL as ``.text``; sqlite3 takes the same :name binds.
        return Result(self.dbapi.execute(getattr(clause, "text", clause), params or {}))


@contextmanager
def transaction(engine: Any) -> Iterator[Connection]:
    """``BEGIN IMMEDIATE`` (the writers' lock, as :meth:`Store.tx` takes it) ... ``COMMIT``
    on a connection from ``engine``'s pool; ``ROLLBACK`` on any exception. sqlite3's own
    errors go out as they are (the store says them in one line)."""
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
