"""A new SQLite store's tables as SQL text: what :mod:`mailer.adapters.schema`'s MetaData
compiles to on SQLite, then Alembic's own table. Kept as text so that making a new store (a
first ``mailer send``, every fresh workspace) imports neither SQLAlchemy nor Alembic: the
import alone took longer than a campaign's store work.

Two tests hold this to its sources: tests/test_store_migrations.py compares a store made
from it with one made by every Alembic revision, and tests/test_sqlite_schema.py compares
the text with what the MetaData compiles to today.
"""

from __future__ import annotations

import uuid
from typing import Any

from mailer.adapters import listing

STATEMENTS: tuple[str, ...] = (
    "CREATE TABLE folders (\n\tfolder TEXT NOT NULL, \n\tuidvalidity INTEGER NOT NULL, \n\tlast_uid INTEGER NOT NULL, \n\tPRIMARY KEY (folder)\n)",
    'CREATE TABLE meta (\n\t"key" TEXT NOT NULL, \n\tvalue TEXT NOT NULL, \n\tPRIMARY KEY ("key")\n)',
    "CREATE TABLE threads (\n\tid INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, \n\tcreated_at TEXT NOT NULL, \n\trecipient TEXT NOT NULL, \n\trecipient_name TEXT NOT NULL, \n\tcompany TEXT NOT NULL, \n\trole TEXT NOT NULL, \n\tsituation TEXT NOT NULL, \n\tinterview_at TEXT NOT NULL, \n\tdedupe_key TEXT NOT NULL, \n\tfacts TEXT NOT NULL, \n\tsubject TEXT NOT NULL, \n\troot_message_id TEXT NOT NULL, \n\tstate TEXT NOT NULL, \n\tfollow_up_wait TEXT NOT NULL, \n\tfollow_up_due TEXT, \n\tfollow_ups_sent INTEGER DEFAULT 0 NOT NULL, \n\tmax_follow_ups INTEGER NOT NULL, \n\tcampaign TEXT, \n\tentry_key TEXT, \n\trecipient_tz TEXT DEFAULT '' NOT NULL, \n\talt_addresses TEXT DEFAULT '[]' NOT NULL, \n\talt_domains TEXT DEFAULT '[]' NOT NULL, \n\tsent_at TEXT, \n\tdetail TEXT DEFAULT '{}' NOT NULL, \n\taccount TEXT DEFAULT '' NOT NULL, \n\tdue_at TEXT\n)",
    "CREATE INDEX threads_account ON threads (account, state)",
    "CREATE INDEX threads_dedupe ON threads (dedupe_key)",
    "CREATE INDEX threads_due ON threads (state, due_at)",
    "CREATE INDEX threads_entry ON threads (campaign, entry_key)",
    "CREATE TABLE unreadable (\n\tfolder TEXT NOT NULL, \n\tuidvalidity INTEGER NOT NULL, \n\tuid INTEGER NOT NULL, \n\treason TEXT NOT NULL, \n\tat TEXT NOT NULL, \n\tPRIMARY KEY (folder, uidvalidity, uid)\n)",
    "CREATE TABLE events (\n\tid INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, \n\tthread_id INTEGER NOT NULL, \n\tat TEXT NOT NULL, \n\tkind TEXT NOT NULL, \n\tdetail TEXT NOT NULL, \n\tFOREIGN KEY(thread_id) REFERENCES threads (id)\n)",
    "CREATE TABLE incoming (\n\tid INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, \n\tfolder TEXT NOT NULL, \n\tuidvalidity INTEGER NOT NULL, \n\tuid INTEGER NOT NULL, \n\tthread_id INTEGER NOT NULL, \n\tmessage_id TEXT, \n\tsender TEXT NOT NULL, \n\tsubject TEXT NOT NULL, \n\tverdict TEXT NOT NULL, \n\tat TEXT NOT NULL, \n\tUNIQUE (folder, uidvalidity, uid), \n\tFOREIGN KEY(thread_id) REFERENCES threads (id)\n)",
    "CREATE TABLE messages (\n\tid INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, \n\tthread_id INTEGER NOT NULL, \n\tkind TEXT NOT NULL, \n\tmessage_id TEXT NOT NULL, \n\tstate TEXT NOT NULL, \n\traw BLOB NOT NULL, \n\tenvelope_from TEXT NOT NULL, \n\trecipients TEXT NOT NULL, \n\tcreated_at TEXT NOT NULL, \n\tsubmitting_at TEXT, \n\tsent_at TEXT, \n\tfailed_at TEXT, \n\terror TEXT, \n\tsmtp_reply TEXT, \n\tsent_copy TEXT, \n\towner TEXT, \n\tfinal_dot_at TEXT, \n\tFOREIGN KEY(thread_id) REFERENCES threads (id), \n\tUNIQUE (message_id)\n)",
    "CREATE INDEX messages_ours ON messages (message_id, thread_id)",
    "CREATE INDEX messages_state ON messages (state, sent_copy)",
    "CREATE INDEX messages_thread ON messages (thread_id)",
    "CREATE TABLE leases (\n\taccount TEXT NOT NULL, \n\towner TEXT NOT NULL, \n\tepoch INTEGER NOT NULL, \n\tacquired_at FLOAT NOT NULL, \n\theartbeat_at FLOAT NOT NULL, \n\texpires_at FLOAT NOT NULL, \n\tPRIMARY KEY (account)\n)",
    "CREATE INDEX incoming_message ON incoming (message_id)",
    "CREATE INDEX incoming_thread ON incoming (thread_id)",
    "CREATE TABLE alembic_version (\n\tversion_num VARCHAR(32) NOT NULL, \n\tCONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)\n)",
)


def first_meta_rows() -> list[dict[str, str]]:
    """What a new store's ``meta`` holds: the rows the baseline revision writes (which
    stays as shipped; tests/test_store_migrations.py holds the two equal)."""
    return [
        {"key": "schema_version", "value": "5"},
        {"key": "store_id", "value": uuid.uuid4().hex},
    ]


def create(connection: Any, head: str) -> None:
    """Make a new store at Alembic revision ``head`` on ``connection`` (in its transaction):
    the tables, the revision recorded as Alembic records it, and the first ``meta`` rows."""
    for statement in STATEMENTS:
        connection.exec_driver_sql(statement)
    listing.create_objects(connection)  # revision 0009's, SQLite's own SQL
    connection.exec_driver_sql("INSERT INTO alembic_version (version_num) VALUES (?)", (head,))
    for row in first_meta_rows():
        connection.exec_driver_sql(
            "INSERT INTO meta (key, value) VALUES (?, ?)", (row["key"], row["value"])
        )
