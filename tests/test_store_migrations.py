"""The store's schema under Alembic (#17): the baseline is schema 5, old SQLite stores reach it
by the hand-rolled steps and are stamped, and an up-to-date store opens without Alembic."""

from __future__ import annotations

import importlib.abc
import importlib.util
import re
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from mailer.adapters import migrate, schema, store
from mailer.adapters.store import ALEMBIC_HEAD, SCHEMA_VERSION, Store
from mailer.errors import StateError

RAW = b"Subject: Sorry\r\n\r\nSorry.\r\n\x00\xff"


def _old_store(path: Path, version: int) -> None:
    """A SQLite store as a mailer of schema ``version`` left it, with one sent apology."""
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as c:
        for statement in store.MIGRATIONS[0]:  # type: ignore[union-attr]
            c.execute(text(statement))
        c.execute(
            text("""INSERT INTO threads (created_at, recipient, recipient_name, company, role,
               situation, interview_at, dedupe_key, facts, subject, root_message_id, state,
               follow_up_wait, follow_up_due, max_follow_ups)
               VALUES ('2026-11-20T10:00:00+00:00', 'ana@x.test', 'Ana', 'Acme', 'Dev',
               'illness', '2026-11-19T09:00:00+00:00', 'ana@x.test|acme|2026-11-19T09:00:00+00:00',
               '{"to": "ana@x.test"}', 'Sorry', '<a1@x.test>', 'awaiting_reply', '3 days',
               '2026-11-23T10:00:00+01:00', 1)""")
        )
        c.execute(
            text("""INSERT INTO messages (thread_id, kind, message_id, state, raw, envelope_from,
               recipients, created_at, sent_at, smtp_reply)
               VALUES (1, 'apology', '<a1@x.test>', 'sent', :raw, 'me@x.test',
               '["ana@x.test"]', '2026-11-20T10:00:00+00:00', '2026-11-20T10:00:01+00:00',
               '250 OK')"""),
            {"raw": RAW},
        )
        c.execute(
            text("""INSERT INTO events (thread_id, at, kind, detail)
               VALUES (1, '2026-11-20T10:00:01+00:00', 'sent', 'apology accepted')""")
        )
        for step in store.MIGRATIONS[1:version]:
            if callable(step):
                step(c)
            else:
                for statement in step:
                    c.execute(text(statement))
        c.execute(text("INSERT INTO meta VALUES ('schema_version', :v)"), {"v": str(version)})
    engine.dispose()


def _columns(path: Path) -> dict[str, list[str]]:
    db = sqlite3.connect(path)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            t: [r[1] for r in db.execute(f"PRAGMA table_info({t})")]
            for t in sorted(tables)
            if t != "sqlite_sequence"
        }
    finally:
        db.close()


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_an_old_sqlite_store_migrates_to_the_baseline_with_its_rows_intact(
    tmp_path: Path, version: int
) -> None:
    old = tmp_path / "old.db"
    _old_store(old, version)
    s = Store(f"sqlite:///{old}")
    try:
        assert s.migrated == [
            f"schema {version} -> {SCHEMA_VERSION} (hand-rolled steps)",
            "stamped Alembic revision 0005_baseline",
            "Alembic revision 0006_leases",  # the leases (#17), run after the stamp
            "Alembic revision 0007_dedupe_keys",  # duplicate keys without the company
            "Alembic revision 0008_incoming_indexes",  # the incoming messages' indexes
            f"Alembic revision {ALEMBIC_HEAD}",  # the status listing's partial indexes
        ]
        (thread,) = s.threads()
        assert (thread.recipient, thread.company, thread.state) == (
            "ana@x.test",
            "Acme",
            "awaiting_reply",
        )
        assert thread.follow_up_due == "2026-11-23T10:00:00+01:00"
        (message,) = s.messages(thread.id)
        assert (message.raw, message.state, message.smtp_reply) == (RAW, "sent", "250 OK")
        assert s.events(thread.id)[0]["kind"] == "sent"
        assert s.store_id
    finally:
        s.close()
    db = sqlite3.connect(old)
    assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(ALEMBIC_HEAD,)]
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("5",)
    db.close()
    # The same tables and columns as a store made new by the baseline.
    Store(f"sqlite:///{tmp_path / 'new.db'}").close()
    assert _columns(old) == _columns(tmp_path / "new.db")
    again = Store(f"sqlite:///{old}")
    assert again.migrated == []  # nothing more to do: migrating is idempotent
    again.close()


def test_revision_0007_writes_every_duplicate_key_without_the_company(tmp_path: Path) -> None:
    """Verify a store at 0006 gets keys of recipient, instant and account only, so an
    apology for the same interview with the company spelt otherwise is refused; a thread
    whose interview time cannot be read keeps its old key."""
    from mailer.errors import DuplicateError
    from mailer.model.keys import dedupe_key

    old = tmp_path / "old.db"
    _old_store(old, 4)
    Store(f"sqlite:///{old}").close()
    db = sqlite3.connect(old)
    db.execute("UPDATE alembic_version SET version_num = '0006_leases'")
    db.execute(
        """INSERT INTO threads (created_at, recipient, recipient_name, company, role, situation,
           interview_at, dedupe_key, facts, subject, root_message_id, state, follow_up_wait,
           max_follow_ups, account)
           VALUES ('2026-11-20T10:00:00+00:00', 'bo@x.test', 'Bo', 'Beta', 'Dev', 'illness',
           'not a date', 'bo@x.test|beta|not a date|bea', '{}', 'S', '<b1@x.test>',
           'awaiting_reply', '3 days', 1, 'bea')"""
    )
    db.commit()
    db.close()

    s = Store(f"sqlite:///{old}")
    try:
        assert s.migrated == [
            "Alembic revision 0007_dedupe_keys",
            "Alembic revision 0008_incoming_indexes",
            f"Alembic revision {ALEMBIC_HEAD}",
        ]
        when = datetime(2026, 11, 19, 9, 0, tzinfo=UTC)
        with sqlite3.connect(old) as db:
            keys = db.execute("SELECT dedupe_key FROM threads ORDER BY id").fetchall()
        assert keys == [
            (dedupe_key("ana@x.test", when),),
            ("bo@x.test|beta|not a date|bea",),
        ]
        assert keys[0][0] == "ana@x.test|" + when.isoformat()
        with pytest.raises(DuplicateError, match=r"thread 1 already holds .*\(at Acme\)"):
            s.guard_duplicate(dedupe_key("Ana@x.test", when), "ana@x.test", when)
    finally:
        s.close()


def downgrade(path: Path, revision_name: str) -> None:
    """Run one Alembic revision's downgrade on the SQLite store at ``path``."""
    spec = importlib.util.spec_from_file_location(
        revision_name, migrate.HERE / "versions" / f"{revision_name}.py"
    )
    assert spec is not None and spec.loader is not None
    revision = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(revision)
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as c, Operations.context(MigrationContext.configure(c)):
        revision.downgrade()
    engine.dispose()


def test_revision_0008_indexes_the_incoming_messages_and_the_last_look_uses_them(
    tmp_path: Path,
) -> None:
    """Verify a store at 0007 gets the incoming messages' indexes, and the last look's two
    questions (a thread's Message-IDs, whether a Message-ID was recorded) read them, not the
    whole table; a downgrade takes them away again."""
    path = tmp_path / "state.db"
    Store(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as db:
        for name in schema.INCOMING_INDEXES:
            db.execute(f"DROP INDEX {name}")
        db.execute("UPDATE alembic_version SET version_num = '0007_dedupe_keys'")
    s = Store(f"sqlite:///{path}")
    try:
        assert s.migrated == [
            "Alembic revision 0008_incoming_indexes",
            f"Alembic revision {ALEMBIC_HEAD}",
        ]
    finally:
        s.close()
    with sqlite3.connect(path) as db:
        for question in (
            "SELECT message_id FROM incoming WHERE thread_id = 1 AND message_id IS NOT NULL",
            "SELECT 1 FROM incoming WHERE message_id = '<m@x.test>' LIMIT 1",
        ):
            plan = " ".join(row[-1] for row in db.execute(f"EXPLAIN QUERY PLAN {question}"))
            assert re.search(r"USING (COVERING )?INDEX incoming_", plan), plan
    downgrade(path, "0008_incoming_indexes")
    with sqlite3.connect(path) as db:
        names = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert names.isdisjoint(schema.INCOMING_INDEXES)


def test_a_new_store_is_made_by_the_baseline_revision(tmp_path: Path) -> None:
    s = Store(f"sqlite:///{tmp_path / 'state.db'}")
    s.close()
    db = sqlite3.connect(tmp_path / "state.db")
    assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(ALEMBIC_HEAD,)]
    meta = dict(db.execute("SELECT key, value FROM meta"))
    assert meta["schema_version"] == str(SCHEMA_VERSION) and len(meta["store_id"]) == 32
    db.close()


def test_a_new_sqlite_store_has_exactly_the_tables_alembic_revisions_make(
    tmp_path: Path,
) -> None:
    """Verify a new SQLite store, made without loading Alembic, has the same tables, columns,
    indexes and revision as one made by running every Alembic revision: a revision added
    later and not made by sqlite_schema.STATEMENTS fails here."""
    Store(f"sqlite:///{tmp_path / 'fast.db'}").close()
    engine = create_engine(f"sqlite:///{tmp_path / 'alembic.db'}")
    with engine.begin() as c:
        assert migrate.upgrade(c) == [
            "0005_baseline",
            "0006_leases",
            "0007_dedupe_keys",
            "0008_incoming_indexes",
            ALEMBIC_HEAD,
        ]
    engine.dispose()

    def made(path: Path) -> tuple[list[tuple[Any, ...]], dict[str, list[tuple[Any, ...]]]]:
        db = sqlite3.connect(path)
        try:
            schema = db.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
            ).fetchall()
            rows = {
                name: sorted(db.execute(f"SELECT * FROM {name}").fetchall())
                for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            # Every row alike but the store's name, which is new for every store.
            rows["meta"] = [(k, "<id>" if k == "store_id" else v) for k, v in rows["meta"]]
            return schema, rows
        finally:
            db.close()

    fast, by_alembic = made(tmp_path / "fast.db"), made(tmp_path / "alembic.db")
    assert len(fast[0]) > 10 and fast[1]["meta"] == [("schema_version", "5"), ("store_id", "<id>")]
    assert fast == by_alembic


def test_the_head_constant_is_the_newest_shipped_revision() -> None:
    """Verify the revision the store compares without Alembic is Alembic's own head."""
    assert migrate.head() == ALEMBIC_HEAD


class _NoAlembic(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> None:
        if name == "alembic" or name.startswith("alembic."):
            raise AssertionError(f"an up-to-date store imported {name}")


def test_opening_an_up_to_date_store_does_not_import_alembic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    Store(url).close()
    for name in [n for n in sys.modules if n == "alembic" or n.startswith("alembic.")]:
        monkeypatch.delitem(sys.modules, name)
    for name in ("mailer.adapters.migrate",):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(sys, "meta_path", [_NoAlembic(), *sys.meta_path])
    s = Store(url)
    assert s.migrated == [] and s.store_id
    s.close()
    store.open_to_read(url).close()


def test_a_store_from_a_newer_mailer_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    Store(url).close()
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute("UPDATE alembic_version SET version_num = '0099_from_the_future'")
    db.commit()
    db.close()
    with pytest.raises(StateError, match="0099_from_the_future is newer than this mailer"):
        Store(url)


def test_status_reads_a_store_from_before_alembic_through_the_full_store_once(
    tmp_path: Path,
) -> None:
    """Verify a version-5 store never stamped is stamped by the first open, even to read."""
    path = tmp_path / "state.db"
    Store(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE alembic_version")
    first = store.open_to_read(f"sqlite:///{path}")
    assert isinstance(first, Store)
    assert first.migrated == [
        "stamped Alembic revision 0005_baseline",
        "Alembic revision 0006_leases",  # over its leases table, which it keeps
        "Alembic revision 0007_dedupe_keys",
        "Alembic revision 0008_incoming_indexes",  # over its indexes, which it keeps
        f"Alembic revision {ALEMBIC_HEAD}",  # and over these
    ]
    first.close()
    second = store.open_to_read(f"sqlite:///{path}")
    assert isinstance(second, store.StoreReader)
    second.close()


def test_safe_url_never_shows_a_password() -> None:
    for url in (
        "postgresql://mailer:hunter2@db.example.com:5432/m",
        "postgresql+psycopg://mailer:hunter2@db/m",
        "postgresql://mailer:hun%40ter2@[::1]/m",
    ):
        assert "hunter2" not in store.safe_url(url) and "hun%40ter2" not in store.safe_url(url)
