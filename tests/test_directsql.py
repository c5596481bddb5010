"""A SQLite store goes straight through sqlite3 (mailer.adapters.directsql), without
SQLAlchemy. These prove the direct path answers as SQLAlchemy's does for what the store asks
of it, that it keeps the store's transaction rules (the writers' lock, rollback on error,
the synced and the unsynced connection, one-line errors), and that a SQLite store is made,
opened and written without importing SQLAlchemy."""

from __future__ import annotations

import importlib.abc
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mailer.adapters import directsql
from mailer.adapters.store import Store, _sqlite_engine, text
from mailer.errors import StateError

T0 = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)

STATEMENTS = [
    ("INSERT INTO meta (key, value) VALUES (:k, :v) RETURNING key", {"k": "a", "v": "1"}),
    ("INSERT INTO meta (key, value) VALUES (:k, :v) RETURNING key", {"k": "b", "v": "2"}),
    ("UPDATE meta SET value = :v WHERE key IN ('a', 'b')", {"v": "3"}),
    ("UPDATE meta SET value = :v WHERE key = :k RETURNING key, value", {"k": "a", "v": "4"}),
    ("SELECT key, value FROM meta WHERE key IN ('a', 'b') ORDER BY key", {}),
    ("SELECT value FROM meta WHERE key = 'nobody'", {}),
    ("DELETE FROM meta WHERE key IN ('a', 'b')", {}),
]


def answers(c) -> list[tuple]:  # type: ignore[no-untyped-def]
    """What the store reads from each statement's result, through either connection."""
    out = []
    for sql, params in STATEMENTS:
        r = c.execute(text(sql), params)
        if sql.startswith(("SELECT", "UPDATE meta SET value = :v WHERE key = :k")):
            out.append(("rows", [tuple(row) for row in r.all()]))
            r = c.execute(text(sql), params)  # (both statements may run twice)
            out.append(("mappings", [dict(m) for m in r.mappings().all()]))
        elif "RETURNING" in sql:
            out.append(("scalar_one", r.scalar_one()))
        else:
            out.append(("rowcount", r.rowcount))
    return out


def test_the_direct_path_answers_as_sqlalchemy_does(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = Store(url)
    engine = _sqlite_engine(url, "FULL")  # SQLAlchemy's, as a store used to have
    try:
        with engine.begin() as c:
            through_sqlalchemy = answers(c)
        with store.tx() as c:
            direct = answers(c)
    finally:
        engine.dispose()
        store.close()
    assert direct == through_sqlalchemy
    assert ("rowcount", 2) in direct  # the UPDATE of two rows, and the DELETE
    assert ("mappings", [{"key": "a", "value": "4"}, {"key": "b", "value": "3"}]) in direct


def test_first_scalar_and_mappings_first_on_no_rows_are_none(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with directsql.transaction(store.engine) as c:
            none = text("SELECT value FROM meta WHERE key = 'nobody'")
            assert c.execute(none).first() is None
            assert c.execute(none).scalar() is None
            assert c.execute(none).mappings().first() is None
            with pytest.raises(sqlite3.ProgrammingError, match="expected one row, got 0"):
                c.execute(none).scalar_one()
    finally:
        store.close()


def test_a_failing_body_rolls_everything_back(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with pytest.raises(RuntimeError), directsql.transaction(store.engine) as c:
            c.execute(text("INSERT INTO meta (key, value) VALUES ('gone', 'x')"))
            raise RuntimeError("the body failed")
        assert store._rows("SELECT value FROM meta WHERE key = 'gone'") == []
        # The pooled connection is back, and usable, outside any transaction.
        with directsql.transaction(store.engine) as c:
            c.execute(text("INSERT INTO meta (key, value) VALUES ('kept', 'y')"))
        assert store._rows("SELECT value FROM meta WHERE key = 'kept'")[0]["value"] == "y"
    finally:
        store.close()


@pytest.mark.parametrize(("durable", "level"), [(True, 2), (False, 1)])
def test_only_durable_writes_use_the_synced_connection(
    tmp_path: Path, durable: bool, level: int
) -> None:
    """synchronous FULL (2) syncs the WAL at each commit; NORMAL (1) leaves it to the next
    synced commit: the final-dot mark is the durable one."""
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with store._write(durable) as c:
            assert c.execute(text("PRAGMA synchronous")).scalar() == level
    finally:
        store.close()


def test_the_direct_write_holds_the_writers_lock(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE, as Store.tx: another writer cannot start until it commits, so two
    processes cannot both read "not yet sent" and then both send."""
    db = tmp_path / "state.db"
    store = Store(f"sqlite:///{db}")
    other = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        with store._write() as c:
            c.execute(text("SELECT 1"))
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # free once it committed
        other.execute("ROLLBACK")
    finally:
        other.close()
        store.close()


def test_a_database_error_in_a_direct_write_is_one_line_naming_the_store(
    tmp_path: Path,
) -> None:
    db = tmp_path / "state.db"
    store = Store(f"sqlite:///{db}")
    try:
        with pytest.raises(StateError) as caught, store._write() as c:
            c.execute(text("INSERT INTO no_such_table VALUES (1)"))
        message = str(caught.value)
        assert str(db) in message and "no such table: no_such_table" in message
        assert "\n" not in message
    finally:
        store.close()


def test_the_hot_writes_of_a_send_go_the_direct_way_on_sqlite(tmp_path: Path, monkeypatch) -> None:
    """A send's claim, final-dot mark and 250 record: three transactions through directsql."""
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    used: list[str] = []
    real = directsql.transaction

    def counted(engine):  # type: ignore[no-untyped-def]
        used.append("direct")
        return real(engine)

    monkeypatch.setattr(directsql, "transaction", counted)
    try:
        facts = {
            "to": "ana@example.com",
            "interviewer": "Ana",
            "company": "Co",
            "role": "R",
            "situation": "illness",
            "interview": "2026-11-24T10:00Z",
        }
        tid, mid = store.create_thread(
            now=T0,
            facts=facts,
            key="k",
            subject="S",
            message_id="<m@x>",
            raw=b"raw",
            envelope_from="me@example.com",
            recipients=("ana@example.com",),
            follow_up_wait="P3D",
            max_follow_ups=1,
            guard_duplicates=True,
            submitting=True,
            durable=False,
        )
        store.mark_final_dot(mid, T0)
        store.mark_sent(mid, T0, "250 ok", None, durable=False)
        assert used == ["direct"] * 3
        assert store.message(mid).state == "sent"
        assert store.thread(tid).state == "awaiting_reply"
    finally:
        store.close()


def test_a_commit_that_fails_writes_nothing_and_leaves_the_connection_clean(
    tmp_path: Path,
) -> None:
    """A deferred foreign key checked at COMMIT: the COMMIT is refused, the transaction is
    undone, the error is one line, and the next write on the pooled connection works."""
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with pytest.raises(StateError, match="FOREIGN KEY constraint failed"), store._write() as c:
            c.execute(text("PRAGMA defer_foreign_keys = ON"))
            c.execute(
                text("INSERT INTO events (thread_id, at, kind, detail) VALUES (999, 'x', 'k', 'd')")
            )
            c.execute(text("INSERT INTO meta (key, value) VALUES ('lost', 'x')"))
        assert store._rows("SELECT key FROM meta WHERE key = 'lost'") == []
        with store._write() as c:
            c.execute(text("INSERT INTO meta (key, value) VALUES ('next', 'y')"))
        assert store._rows("SELECT value FROM meta WHERE key = 'next'")[0]["value"] == "y"
    finally:
        store.close()


class _NoSqlAlchemy(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> None:
        if name.split(".")[0] in ("sqlalchemy", "alembic"):
            raise AssertionError(f"a SQLite store imported {name}")


def test_a_sqlite_store_is_made_opened_and_written_without_sqlalchemy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Importing SQLAlchemy (and the schema's MetaData) took about 250 ms of every command
    that opened a store: a new store is made from SQL text, and an up-to-date one opened,
    read and written through sqlite3."""
    for name in [n for n in sys.modules if n.split(".")[0] in ("sqlalchemy", "alembic")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_NoSqlAlchemy(), *sys.meta_path])
    for _ in range(2):  # made, then opened again
        store = Store(f"sqlite:///{tmp_path / 'state.db'}")
        try:
            with store.tx() as c:
                c.execute(text("INSERT OR REPLACE INTO meta (key, value) VALUES ('k', 'v')"))
            with pytest.raises(StateError, match="no such table"), store.tx() as c:
                c.execute(text("SELECT * FROM no_such_table"))
            assert store.threads() == [] and len(store.store_id) == 32
        finally:
            store.close()
    assert not [n for n in sys.modules if n.split(".")[0] in ("sqlalchemy", "alembic")]


def test_the_pool_gives_each_thread_its_own_connection_and_keeps_them(tmp_path: Path) -> None:
    """Connections go back to the pool outside any transaction, and are used again; two
    taken at once are two connections (the daemon's threads each take one)."""
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        first = store.engine.raw_connection()
        second = store.engine.raw_connection()
        assert first.dbapi_connection is not second.dbapi_connection
        first.dbapi_connection.execute("BEGIN")
        first.close()  # given back in the middle of a transaction: rolled back
        second.close()
        again = store.engine.raw_connection()
        assert again.dbapi_connection in (first.dbapi_connection, second.dbapi_connection)
        assert not again.dbapi_connection.in_transaction
        again.close()
    finally:
        store.close()


def test_a_large_select_is_read_in_batches(tmp_path: Path) -> None:
    """store copy reads a table with fetchmany: a SELECT is not read whole at once."""
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with store.tx() as c:
            c.exec_driver_sql("CREATE TABLE n (i INTEGER)")
            c.exec_driver_sql("INSERT INTO n VALUES (?)", [(i,) for i in range(10)])
            rows = c.execute(text("SELECT i FROM n ORDER BY i"))
            assert rows.fetchmany(4) == [(0,), (1,), (2,), (3,)]
            assert rows.fetchmany(4) == [(4,), (5,), (6,), (7,)]
            assert rows.fetchmany(4) == [(8,), (9,)]
            assert rows.fetchmany(4) == []
    finally:
        store.close()


def test_sqlalchemy_core_statements_run_on_the_direct_path(tmp_path: Path) -> None:
    """store copy into a SQLite store sends SQLAlchemy Core statements (its inserts, its
    counts): compiled for SQLite and run as they are."""
    from sqlalchemy import func, select

    from mailer.adapters import schema

    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with store.tx() as c:
            c.execute(schema.meta.delete())
            c.execute(
                schema.meta.insert(), [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]
            )
            n = c.execute(select(func.count()).select_from(schema.meta)).scalar_one()
        assert n == 2
        assert [r["key"] for r in store._rows("SELECT key FROM meta ORDER BY key")] == ["a", "b"]
    finally:
        store.close()


def test_a_read_whose_connection_cannot_be_opened_is_one_line_naming_the_store(
    tmp_path: Path,
) -> None:
    """Opening a pooled connection can fail (its folder gone, no file descriptors left):
    a read, a snapshot and a write all say so in one line, as every other store error."""
    store = Store(f"sqlite:///{tmp_path / 'd' / 'state.db'}")
    try:
        store.engine.dispose()  # no idle connection: the next use opens one
        store.fast_engine.dispose()
        (tmp_path / "d").rename(tmp_path / "moved")
        with pytest.raises(StateError, match="unable to open database file"):
            store.threads()
        with (
            pytest.raises(StateError, match="unable to open database file"),
            store.reading() as query,
        ):
            query("SELECT 1")
        with pytest.raises(StateError, match="unable to open database file"), store.tx() as c:
            c.execute(text("SELECT 1"))
    finally:
        store.close()


def test_closing_an_in_memory_store_closes_its_connection() -> None:
    store = Store.in_memory()
    memory = store._memory
    assert memory is not None
    store.close()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        memory.execute("SELECT 1")


def test_switching_a_store_to_wal_waits_out_another_process_doing_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two processes opening an old (pre-WAL) store at once: SQLite answers one of the two
    switches "database is locked" at once, without its busy timeout."""

    class Racing:
        def __init__(self) -> None:
            self.tries = 0

        def execute(self, sql: str) -> sqlite3.Cursor:
            if sql == "PRAGMA journal_mode":
                return sqlite3.connect(":memory:").execute("SELECT 'delete'")
            self.tries += 1
            if self.tries < 3:
                raise sqlite3.OperationalError("database is locked")
            return sqlite3.connect(":memory:").execute("SELECT 'wal'")

    monkeypatch.setattr(directsql.time, "sleep", lambda s: None)
    db = Racing()
    directsql._wal(db)  # type: ignore[arg-type]
    assert db.tries == 3

    class Broken(Racing):
        def execute(self, sql: str) -> sqlite3.Cursor:
            if sql == "PRAGMA journal_mode":
                return super().execute(sql)
            raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        directsql._wal(Broken())  # type: ignore[arg-type]
