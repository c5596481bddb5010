"""The state store: threads, messages and the decision log, in SQL via SQLAlchemy Core.

SQLite in the workspace by default (``.mailer/state.db``, mode 0600); the URL is configurable.
Or PostgreSQL (``postgresql://``, through psycopg 3), whose write transactions are serialised
as SQLite's are (see :func:`_pg_engine`). Schema changes up to version 5 are small hand-rolled
migrations keyed by ``schema_version`` in ``meta``; from there on, Alembic revisions (version 5
is their baseline, see mailer.adapters.schema and mailer.adapters.migrate).

A message's life is recorded in separate commits around the SMTP transaction:
``queued`` (before connecting) -> ``submitting`` (just before MAIL FROM) -> ``sent`` (at the
250 after DATA) or ``failed``. Inside DATA, just before the final dot, ``final_dot_at`` is
committed durably: the one commit that must survive a power cut, since a server can accept
nothing before that dot. A ``submitting`` row whose process is gone is *in doubt* only if it
carries that mark (it is then never resent automatically); without it nothing can have been
accepted, and the message is requeued.
"""

from __future__ import annotations

import enum
import functools
import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from mailer.adapters import listing, process
from mailer.errors import ClaimError, InputError, StateError
from mailer.model.lifecycle import (
    DATED_BY_APOLOGY_SENT,
    DUE_THREAD,
    GONE_MESSAGE,
    OPEN_THREAD,
    WAITING_THREAD,
    MessageEvent,
    MessageState,
    ThreadEvent,
    ThreadState,
    TransitionRefused,
    allowed,
    apply,
    incoming_event,
    message_shown,
    settles_not_sent,
    target,
)
from mailer.model.lifecycle import describe as describe_state

if TYPE_CHECKING:
    from sqlalchemy import TextClause

    from mailer.model.decision import Decision
    from mailer.model.matching import IndexedThread, ThreadIndex

SCHEMA_VERSION = 5
# The Alembic revision a store up to date carries (mailer/adapters/migrations). Compared as
# text when a store opens, so that Alembic is imported only to migrate.
ALEMBIC_HEAD = "0009_listing_indexes"

# Each entry moves the schema from version i to i+1. Never edit a released step; append.
# A step is SQL statements, or a function that rewrites rows and returns what to report.
MIGRATIONS: list[list[str] | Callable[[Any], list[str]]] = [
    [
        """CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
        """CREATE TABLE threads (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            created_at TEXT NOT NULL,
            recipient TEXT NOT NULL,
            recipient_name TEXT NOT NULL,
            company TEXT NOT NULL,
            role TEXT NOT NULL,
            situation TEXT NOT NULL,
            interview_at TEXT NOT NULL,
            dedupe_key TEXT NOT NULL,
            facts TEXT NOT NULL,
            subject TEXT NOT NULL,
            root_message_id TEXT NOT NULL,
            state TEXT NOT NULL,
            follow_up_wait TEXT NOT NULL,
            follow_up_due TEXT,
            follow_ups_sent INTEGER NOT NULL DEFAULT 0,
            max_follow_ups INTEGER NOT NULL,
            campaign TEXT,
            entry_key TEXT,
            recipient_tz TEXT NOT NULL DEFAULT '',
            alt_addresses TEXT NOT NULL DEFAULT '[]',
            alt_domains TEXT NOT NULL DEFAULT '[]',
            sent_at TEXT,
            detail TEXT NOT NULL DEFAULT '{}'
        )""",
        """CREATE INDEX threads_dedupe ON threads (dedupe_key)""",
        """CREATE TABLE messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            thread_id INTEGER NOT NULL REFERENCES threads (id),
            kind TEXT NOT NULL,
            message_id TEXT NOT NULL UNIQUE,
            state TEXT NOT NULL,
            raw BLOB NOT NULL,
            envelope_from TEXT NOT NULL,
            recipients TEXT NOT NULL,
            created_at TEXT NOT NULL,
            submitting_at TEXT,
            sent_at TEXT,
            failed_at TEXT,
            error TEXT,
            smtp_reply TEXT,
            sent_copy TEXT,
            owner TEXT
        )""",
        """CREATE INDEX messages_thread ON messages (thread_id)""",
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            thread_id INTEGER NOT NULL REFERENCES threads (id),
            at TEXT NOT NULL,
            kind TEXT NOT NULL,
            detail TEXT NOT NULL
        )""",
        # Where the watcher stopped in each folder (reset when UIDVALIDITY changes).
        """CREATE TABLE folders (
            folder TEXT PRIMARY KEY,
            uidvalidity INTEGER NOT NULL,
            last_uid INTEGER NOT NULL
        )""",
        # Every incoming message that was matched to a thread, so none is acted on twice.
        """CREATE TABLE incoming (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            folder TEXT NOT NULL,
            uidvalidity INTEGER NOT NULL,
            uid INTEGER NOT NULL,
            thread_id INTEGER NOT NULL REFERENCES threads (id),
            message_id TEXT,
            sender TEXT NOT NULL,
            subject TEXT NOT NULL,
            verdict TEXT NOT NULL,
            at TEXT NOT NULL,
            UNIQUE (folder, uidvalidity, uid)
        )""",
    ],
    [
        # Which account sent the thread ("" is the main one): its follow-ups go from there,
        # and its replies arrive there.
        """ALTER TABLE threads ADD COLUMN account TEXT NOT NULL DEFAULT ''""",
        """CREATE INDEX threads_entry ON threads (campaign, entry_key)""",
    ],
    lambda c: _utc_keys(c) + _name_store(c) + _unreadable_table(c),
    lambda c: _final_dot_column(c),
    lambda c: _due_column(c),
]


def _due_column(c: Any) -> list[str]:
    """Migration 5: ``due_at``, the instant ``follow_up_due`` names, in UTC and in one
    fixed-width format (see :func:`due_at`), so that finding the due threads is an indexed
    range, not a decode of every open thread on every pass. A damaged ``follow_up_due`` gets
    none and is still named as damaged (see :meth:`Store.due_threads`). Indexes too for what
    every pass asks with no new mail: the held threads, the open threads of an account that
    is gone, and the messages still unsettled or unfiled; and one that gives the thread
    index our Message-IDs without reading the raw messages."""
    from sqlalchemy import inspect

    # Tolerant of a column or index already there: a store put back to an older version by
    # hand (or by a test) keeps what it has.
    if "due_at" not in {col["name"] for col in inspect(c).get_columns("threads")}:
        c.execute(text("ALTER TABLE threads ADD COLUMN due_at TEXT"))
    rows = c.execute(
        text("SELECT id, follow_up_due FROM threads WHERE follow_up_due IS NOT NULL")
    ).all()
    values = [{"d": due_at(due), "t": tid} for tid, due in rows]
    if values:
        c.execute(text("UPDATE threads SET due_at = :d WHERE id = :t"), values)
    for statement in (
        "CREATE INDEX IF NOT EXISTS threads_due ON threads (state, due_at)",
        "CREATE INDEX IF NOT EXISTS threads_account ON threads (account, state)",
        "CREATE INDEX IF NOT EXISTS messages_state ON messages (state, sent_copy)",
        # The thread index's first read of our Message-IDs, without the raw messages.
        "CREATE INDEX IF NOT EXISTS messages_ours ON messages (message_id, thread_id)",
    ):
        c.execute(text(statement))
    return []


def due_at(value: datetime | str | None) -> str | None:
    """A due time as the ``due_at`` column keeps it: the instant in UTC, always
    ``YYYY-MM-DDTHH:MM:SS.ffffff``, so text order is time order whatever offset the
    recipient's time was written with. None where there is none or it is not a date."""
    when = value if isinstance(value, datetime) else stored_time(value)
    if when is None:
        return None
    if when.tzinfo is None:  # as the migrations read a date without an offset
        when = when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
    except OverflowError:  # at the ends of time: never due, and named by nobody
        return None


def _final_dot_column(c: Any) -> list[str]:
    """Migration 4: when the final dot of DATA was about to go (see mark_final_dot). A row
    caught mid-send by an older mailer may have passed it: it stays in doubt. Like every
    migration it keeps the state strings of its day, whatever the lifecycle later calls them."""
    c.execute(text("ALTER TABLE messages ADD COLUMN final_dot_at TEXT"))
    c.execute(
        text("""UPDATE messages SET final_dot_at = COALESCE(submitting_at, created_at)
                WHERE state IN ('submitting', 'in_doubt')""")
    )
    return []


def _unreadable_table(c: Any) -> list[str]:
    """Migration 3 too: messages the watcher could not read and passed over, so each is
    logged once and a pass never stops on it again."""
    c.execute(
        text("""CREATE TABLE unreadable (folder TEXT NOT NULL,
                uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL,
                reason TEXT NOT NULL, at TEXT NOT NULL,
                PRIMARY KEY (folder, uidvalidity, uid))""")
    )
    return []


def _utc_keys(c: Any) -> list[str]:
    """Migration 3: duplicate keys (and derived campaign entry keys) name the interview's
    instant in UTC. Before, they kept the offset it was written with, so 09:00 UTC and 10:00
    Europe/Berlin were two interviews. Apologies that slipped through that way are reported,
    with an event on each thread, and kept: both were sent, and a unique index would only
    make this step fail."""
    from mailer.model.keys import company_dedupe_key, derive_key, legacy_derive_key

    notices: list[str] = []
    rows = c.execute(
        text("""SELECT id, recipient, company, interview_at, account, campaign, entry_key, state
                FROM threads ORDER BY id""")
    ).mappings()
    live: dict[str, list[int]] = {}
    for r in list(rows):
        try:
            when = datetime.fromisoformat(r["interview_at"])
        except (TypeError, ValueError):
            notices.append(f"thread {r['id']}: interview_at {r['interview_at']!r} is not a date")
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        try:
            # (the key of its day; revision 0007 rewrites it without the company)
            key = company_dedupe_key(r["recipient"], r["company"], when, r["account"])
            entry = r["entry_key"]
            old_entry = legacy_derive_key(r["recipient"], r["company"], when, r["account"])
            if r["campaign"] is not None and entry == old_entry:
                entry = derive_key(r["recipient"], r["company"], when, r["account"])
        except OverflowError:  # a date at the ends of time: its old key still guards it
            notices.append(f"thread {r['id']}: interview_at {r['interview_at']!r} kept its key")
            continue
        c.execute(
            text("UPDATE threads SET dedupe_key = :k, entry_key = :e WHERE id = :t"),
            {"k": key, "e": entry, "t": r["id"]},
        )
        if r["state"] != "failed":
            live.setdefault(key, []).append(int(r["id"]))
    for key, ids in live.items():
        if len(ids) < 2:
            continue
        recipient, _, rest = key.partition("|")
        when = rest.split("|")[1]
        what = (
            f"threads {', '.join(map(str, ids))} are apologies to {recipient} for the same "
            f"interview ({when}), written in different time zones"
        )
        notices.append(f"{what}; both were kept; 'mailer status' shows them")
        for tid in ids:
            c.execute(
                text("""INSERT INTO events (thread_id, at, kind, detail)
                        VALUES (:t, :at, 'duplicate', :d)"""),
                {
                    "t": tid,
                    "at": datetime.now(UTC).isoformat(),
                    "d": f"found in migration 3: {what}",
                },
            )
    return notices


def _name_store(c: Any) -> list[str]:
    """Migration 3 too: a name for this store, so a workspace can tell it from a new, empty
    one put in its place (see :mod:`mailer.adapters.anchor`)."""
    import uuid

    c.execute(
        text("INSERT INTO meta (key, value) VALUES ('store_id', :v)"), {"v": uuid.uuid4().hex}
    )
    return []


# Message states (lifecycle.MessageState), under the names the callers know.
QUEUED, SUBMITTING, SENT = MessageState.QUEUED, MessageState.SUBMITTING, MessageState.SENT
FAILED, IN_DOUBT = MessageState.FAILED, MessageState.IN_DOUBT
AWAITING, SENDING = ThreadState.AWAITING, ThreadState.SENDING


class Sql(str):
    """A statement of the store's, as text with ``:name`` parameters: run as it is by a
    SQLite store (mailer.adapters.directsql), and as SQLAlchemy's ``text()`` by the others,
    which SQLAlchemy asks of it through ``_execute_on_connection``."""

    __slots__ = ()

    @property
    def text(self) -> str:
        return str(self)

    def _execute_on_connection(
        self, connection: Any, distilled_params: Any, execution_options: Any
    ) -> Any:
        return _parsed(str(self))._execute_on_connection(
            connection, distilled_params, execution_options
        )


@functools.lru_cache(maxsize=512)
def text(sql: str) -> Sql:
    """A statement of the store's (see :class:`Sql`), made once per text: the statements
    are made from constants only (no values), so the cache stays small."""
    return Sql(sql)


@functools.lru_cache(maxsize=512)
def _parsed(sql: str) -> TextClause:
    """SQLAlchemy's ``text()``, parsed once per statement. Parsing the bind parameters
    again on every call was a quarter of a small transaction's time."""
    from sqlalchemy import text as parsed

    return parsed(sql)


# Addresses per statement in bounced_threads_to (a power of two).
_IN_CHUNK = 256

_REQUEUED = "requeued: the sending process stopped before the final dot, so nothing was accepted"


def _in(
    name: str, states: Iterator[str] | tuple[str, ...] | frozenset[str]
) -> tuple[str, dict[str, str]]:
    """``(:name0, :name1, ...)`` and its parameters: a state set for ``WHERE state IN``."""
    values = sorted(str(v) for v in states)
    params = {f"{name}{i}": v for i, v in enumerate(values)}
    return "(" + ", ".join(f":{k}" for k in params) + ")", params


class Applied(enum.Enum):
    """What :meth:`Store.apply_incoming` did with a decision."""

    RECORDED = "recorded"
    SEEN = "seen"  # the message was recorded before: nothing done
    MOVED = "moved"  # the thread is not as it was decided from: nothing done, decide again


@dataclass(frozen=True)
class MessageRow:
    id: int
    thread_id: int
    kind: str
    message_id: str
    state: str
    raw: bytes
    envelope_from: str
    recipients: tuple[str, ...]
    created_at: str
    submitting_at: str | None
    sent_at: str | None
    failed_at: str | None
    error: str | None
    smtp_reply: str | None
    sent_copy: str | None
    owner: str | None
    final_dot_at: str | None = None

    @property
    def state_now(self) -> MessageState:
        """The state as the user must see it: ``submitting`` by a process that is gone is
        in doubt."""
        alive = self.state != SUBMITTING or owner_alive(self.owner)
        return message_shown(self.state, alive, bool(self.final_dot_at))

    @property
    def abandoned_before_final_dot(self) -> bool:
        """See :func:`abandoned_before_final_dot`."""
        return abandoned_before_final_dot(self._fields)

    @property
    def _fields(self) -> dict[str, Any]:
        return {"state": self.state, "owner": self.owner, "final_dot_at": self.final_dot_at}


@dataclass(frozen=True)
class ThreadRow:
    id: int
    created_at: str
    recipient: str
    recipient_name: str
    company: str
    role: str
    situation: str
    interview_at: str
    dedupe_key: str
    facts: dict[str, Any]
    subject: str
    root_message_id: str
    state: str
    follow_up_wait: str
    follow_up_due: str | None
    follow_ups_sent: int
    max_follow_ups: int
    campaign: str | None
    entry_key: str | None
    recipient_tz: str
    alt_addresses: tuple[str, ...]
    alt_domains: tuple[str, ...]
    sent_at: str | None
    detail: dict[str, Any]
    account: str = ""


def _boot_id() -> str:
    return process.boot_mark()


def _start_time(pid: int) -> str:
    """When the process started (see mailer.adapters.process), so a reused PID is told apart."""
    return process.start_mark(pid)


def owner_token() -> str:
    """Who is working on a message: host, boot, PID and the PID's start time."""
    pid = os.getpid()
    if _token[0] != pid:  # worked out once per process (a forked child is a new one)
        _token[:] = [pid, f"{socket.gethostname()}:{_boot_id()}:{pid}:{_start_time(pid)}"]
    return str(_token[1])


_token: list[Any] = [None, ""]


def owner_alive(owner: str | None, leases: Mapping[str, str] | None = None) -> bool:
    """Whether the process that marked a message is still running (so it is not abandoned).

    After a reboot the PID may belong to another program; the boot id and start time in the
    token tell them apart. Tokens written before mailer.adapters.process have the same form on Linux
    (boot id, clock ticks), so a live owner that wrote one is still seen as alive.

    A daemon's token also names the lease it worked under (``token|epoch|account``, see
    :meth:`Store.under_lease`): with ``leases`` (account -> epoch of each unexpired lease, by
    the database's clock) that lease decides, on any machine: once the account's epoch has
    moved on or its lease expired, the message belongs to nobody alive, however alive its
    process may be. Without them (a listing), the process is asked as for any other token.
    """
    if not owner:
        return False
    token, lease_mark, lease = owner.partition("|")
    if lease_mark:
        if leases is not None:
            epoch, _, account = lease.partition("|")
            return leases.get(account) == epoch
        owner = token
    parts = owner.split(":")
    if len(parts) != 4:
        return False  # an older or foreign token: treat the work as abandoned
    host, boot, pid_text, started = parts
    if host != socket.gethostname():
        return True  # cannot tell for another machine: assume it is still working
    if not process.same_boot(boot, _boot_id()):
        return False
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    return process.is_running(pid, started)


class Store:
    """One database. Each public method is one transaction."""

    def __init__(
        self, url: str, *, connect: dict[str, Any] | None = None, _new: bool = False
    ) -> None:
        """``connect``: what the driver needs beyond the URL (PostgreSQL's password, sslmode,
        sslrootcert), kept out of the URL so that no message can show the password."""
        self.url = url
        self._connect = dict(connect or {})
        self.migrated: list[str] = []  # what opening it did to its schema (store migrate)
        self.notices: list[str] = []  # what opening it found worth telling (migrations)
        self.damaged: list[str] = []  # rows passed over because they cannot be read
        self.named_now = False  # the store got its id in this open (it predates ids)
        # The thread index, kept between calls (see thread_index): id -> (state, sent, entry).
        self._indexed: dict[int, tuple[str, str, IndexedThread]] = {}
        self._ours: dict[str, int] = {}
        self._ours_upto = 0
        self._pg = is_postgresql(url)
        # Hot writes straight through sqlite3 (see _write): only on the engines made here,
        # whose connections carry the pragmas and whose BEGIN takes the writers' lock.
        self._direct = False
        # The in-memory store's one connection (directsql.Engine.in_memory), to see whether a
        # transaction is open on it (_rows).
        self._memory: sqlite3.Connection | None = None
        try:
            self._open(url, _new)
        except StateError:
            raise
        except Exception as exc:
            raise StateError(
                f"{safe_url(url)}: cannot open the state store: {_one_line(exc)}"
            ) from None

    def _open(self, url: str, new: bool) -> None:
        from mailer.adapters import directsql

        if url.startswith("sqlite:///"):
            path = Path(url[len("sqlite:///") :])
            if not new:  # (``new``: the empty file _create_sqlite_store is filling)
                if not path.exists():
                    _create_sqlite_store(path)
                _check_sqlite_file(path)
            # Straight through sqlite3, no SQLAlchemy (see directsql).
            self.engine = directsql.Engine(str(path), "FULL")
            # Commits that may skip the fsync (see tx): a connection of their own, so no
            # PRAGMA has to be switched back and forth around each one. Both write the same
            # WAL file, and the next synced commit flushes their frames with its own.
            self.fast_engine = directsql.Engine(str(path), "NORMAL")
            self._direct = True
        elif url == MEMORY_URL:
            self._memory, self.engine = directsql.Engine.in_memory()
            self.fast_engine = self.engine
            self._direct = True
        elif is_postgresql(url):
            self.engine = self.fast_engine = _pg_engine(url, self._connect)
        else:
            from sqlalchemy import create_engine

            self.engine = self.fast_engine = create_engine(url)
        self._migrate()

    @classmethod
    def in_memory(cls) -> Store:
        """A store in this process's memory, gone when closed: the same SQL on SQLite, for
        tests (see mailer.testing). One connection, so use it from one thread at a time."""
        return cls(MEMORY_URL)

    @property
    def store_id(self) -> str:
        """The name written into the store when it was made (it survives a move)."""
        with self.tx() as c:
            row = c.execute(text("SELECT value FROM meta WHERE key = 'store_id'")).first()
        return str(row[0]) if row else ""

    @contextmanager
    def tx(self, durable: bool = True) -> Iterator[Any]:
        """One write transaction: on SQLite ``BEGIN IMMEDIATE``, the writers' lock, so two
        processes cannot both read "not yet sent" and then both send. ``durable=False``:
        a commit that may skip the fsync (SQLite's ``synchronous=NORMAL``)."""
        if self._direct:
            with self._write(durable) as c:
                yield c
            return
        from sqlalchemy.exc import DBAPIError

        engine = self.engine if durable else self.fast_engine
        try:
            for attempt in range(TX_BEGIN_TRIES):
                # Only the BEGIN (with PostgreSQL's write lock) is tried again: a failure
                # there comes before the body, which runs once (see _RETRY_SQLSTATES), on a
                # serialization failure or a deadlock, or on a connection found dropped.
                began = engine.begin()
                try:
                    conn = began.__enter__()
                except DBAPIError as exc:
                    # A connection the server dropped (SQLAlchemy has invalidated the pool's
                    # connections then): the next attempt opens a new one.
                    again = _retryable(exc) or exc.connection_invalidated
                    if not again or attempt == TX_BEGIN_TRIES - 1:
                        raise
                    continue
                break
            # PostgreSQL: statements whose answer nothing waits for, sent with the COMMIT
            # (_event, _cancel_queued, _commit_with).
            later: list[tuple[str, tuple[Any, ...]]] | None = None
            if conn.dialect.name == "postgresql":
                later = conn.info[_LATER] = []
            info = conn.info  # the pooled connection's: still there once this one is closed
            try:
                with _entered(began):  # ends it: commit, or rollback on an exception
                    yield conn
                    if later:
                        _commit_with(conn, later)
            finally:
                info.pop(_LATER, None)
        except DBAPIError as exc:
            # "database is locked", a full disk, a read-only file, a dropped connection: say
            # where, not a traceback.
            raise StateError(_db_error(self.url, exc)) from exc

    @contextmanager
    def _write(self, durable: bool = True) -> Iterator[Any]:
        """:meth:`tx` for the writes made for every message sent (the claim, the final-dot
        mark, the 250's record). On SQLite every transaction goes this way, straight
        through sqlite3 (see directsql); the name marks the calls counted as durable
        commits by the tests."""
        if not self._direct:
            with self.tx(durable) as c:
                yield c
            return
        from mailer.adapters import directsql

        try:
            with directsql.transaction(self.engine if durable else self.fast_engine) as c:
                yield c
        except sqlite3.Error as exc:
            raise StateError(_db_error(self.url, exc)) from exc

    def run(self, work: Callable[[Any], Any], tries: int = 5) -> Any:
        """``work(connection)`` in one write transaction, all of it tried again (up to
        ``tries`` times) when the database reports a serialization failure or a deadlock.
        For work that does nothing but SQL: never an SMTP step."""
        for attempt in range(tries):
            try:
                with self.tx() as c:
                    return work(c)
            except StateError as exc:
                # (PostgreSQL's only: SQLite's writers wait for the lock at BEGIN instead.)
                if not (self._pg and _retryable(exc.__cause__)):
                    raise
                if attempt == tries - 1:
                    raise
        return None

    def _schema_current(self) -> bool:
        """The usual open, a store already at this mailer's schema, told by one read with no
        writers' lock (on PostgreSQL one round trip, not seven). Anything else (a new store,
        an old one, someone else's database) goes the locked way, which tells them apart."""
        try:
            rows = self._rows(
                """SELECT (SELECT value FROM meta WHERE key = 'schema_version') AS v,
                   (SELECT version_num FROM alembic_version) AS r"""
            )
        except StateError as exc:
            if _schema_unlike_ours(exc.__cause__):
                return False  # a table missing, or more than one Alembic revision
            raise  # a server out of reach: said now, not after a second try at connecting
        return str(rows[0]["v"]) == str(SCHEMA_VERSION) and rows[0]["r"] == ALEMBIC_HEAD

    def _migrate(self) -> None:
        if self._schema_current():
            return
        with self.tx() as c:
            tables = _table_names(c)
            if "meta" not in tables and tables:
                # Someone else's database: migrating it would bury our tables among theirs.
                raise StateError(
                    f"{safe_url(self.url)}: this database is not a mailer state store",
                    hint="point state.url at mailer's own store",
                )
            if not tables and self._direct:  # a new store, at the newest revision
                from mailer.adapters import sqlite_schema

                sqlite_schema.create(c, ALEMBIC_HEAD)
                self.migrated = [f"a new store, at Alembic revision {ALEMBIC_HEAD}"]
                return
            if not tables:  # a new PostgreSQL store: made whole by the revisions
                from mailer.adapters import migrate

                ran = migrate.upgrade(c)
                self.migrated = [f"a new store, made by Alembic revision {', '.join(ran)}"]
                return
            if not self._direct:
                self._upgrade(c, tables)
                return
            if self._pending(c, tables) is None:
                return
        # An older SQLite store: its steps and Alembic's revisions run on SQLAlchemy, under
        # the writers' lock again (so it is read again: another process may have done it).
        from sqlalchemy.exc import DBAPIError

        engine = _sqlite_engine(self.url, "FULL")
        try:
            with engine.begin() as c:
                self._upgrade(c, _table_names(c))
        except DBAPIError as exc:
            raise StateError(_db_error(self.url, exc)) from exc
        finally:
            engine.dispose()

    def _pending(self, c: Any, tables: set[str]) -> tuple[int, str | None] | None:
        """The store's schema version and Alembic revision if it needs migrating, None if
        it is up to date; refuses one newer than this mailer, and an old schema on
        PostgreSQL."""
        row = c.execute(text("SELECT value FROM meta WHERE key='schema_version'")).first()
        version = int(row[0]) if row else 0
        revision = None
        if "alembic_version" in tables:
            revision = c.execute(text("SELECT version_num FROM alembic_version")).scalar()
        if version == SCHEMA_VERSION and revision == ALEMBIC_HEAD:
            return None  # up to date: the usual open, with no Alembic to import
        if version > SCHEMA_VERSION or (
            revision is not None and revision != ALEMBIC_HEAD and not _known(revision)
        ):
            raise StateError(
                f"{safe_url(self.url)}: schema version {revision or version} is newer than "
                f"this mailer understands ({ALEMBIC_HEAD}); upgrade mailer"
            )
        if version < SCHEMA_VERSION and self.engine.dialect.name != "sqlite":
            raise StateError(
                f"{safe_url(self.url)}: schema version {version} on "
                f"{self.engine.dialect.name}: only SQLite stores predate version 5",
                hint="restore the database, or copy a SQLite store into an empty one "
                "with 'mailer store copy'",
            )
        return version, revision

    def _upgrade(self, c: Any, tables: set[str]) -> None:
        """The hand-rolled steps up to version 5, then Alembic's revisions, on a
        SQLAlchemy connection ``c`` inside its transaction."""
        pending = self._pending(c, tables)
        if pending is None:
            return
        version, revision = pending
        self.named_now = version < 3 and "meta" in tables
        if version < SCHEMA_VERSION:
            self.migrated.append(f"schema {version} -> {SCHEMA_VERSION} (hand-rolled steps)")
        for step in range(version, SCHEMA_VERSION):
            migration = MIGRATIONS[step]
            if callable(migration):
                self.notices += migration(c)
            else:
                for statement in migration:
                    c.execute(text(statement))
            c.execute(
                text("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', :v)")
                if self.engine.dialect.name == "sqlite"
                else text("INSERT INTO meta (key, value) VALUES ('schema_version', :v)"),
                {"v": str(step + 1)},
            )
        from mailer.adapters import migrate

        if revision is None:  # the store reached the baseline by the hand-rolled steps
            migrate.stamp(c)
            self.migrated.append(f"stamped Alembic revision {migrate.BASELINE}")
        self.migrated += [f"Alembic revision {r}" for r in migrate.upgrade(c)]

    # --- threads -----------------------------------------------------------------------

    def guard_duplicate(
        self, key: str, to: str, now: datetime, company: str | None = None, account: str = ""
    ) -> None:
        """Raise DuplicateError if a live apology exists for this key, or (given ``company``)
        an open thread to ``to`` at that company (see create_thread)."""
        with self.tx() as c:
            self._guard_duplicate(c, key, to, now, open_at=company, account=account)

    def create_thread(
        self,
        *,
        now: datetime,
        facts: dict[str, Any],
        key: str,
        subject: str,
        message_id: str,
        raw: bytes,
        envelope_from: str,
        recipients: tuple[str, ...],
        follow_up_wait: str,
        max_follow_ups: int,
        guard_duplicates: bool,
        recipient_tz: str = "",
        campaign: str | None = None,
        entry_key: str | None = None,
        account: str = "",
        durable: bool = True,
        detail: dict[str, Any] | None = None,
        submitting: bool = False,
    ) -> tuple[int, int]:
        """Record the thread and its apology as ``queued``, in one transaction.

        With ``guard_duplicates`` the duplicate check happens inside the same write
        transaction, so two concurrent ``send`` runs cannot both pass it. A campaign entry is
        also guarded by its key. ``durable=False`` skips the fsync: nothing the server could
        accept leaves the machine before ``mark_final_dot``, whose synced commit carries this
        one to disk (one WAL). That holds for a row recorded straight as ``submitting`` too.
        """
        first = SUBMITTING if submitting else QUEUED
        with self._write(durable) as c:
            if guard_duplicates:
                self._guard_duplicate(
                    c,
                    key,
                    facts["to"],
                    now,
                    campaign,
                    entry_key,
                    # A one-shot apology: not while another to the same person and company
                    # is open (a campaign's entries are checked against each other instead).
                    open_at=str(facts.get("company", "")) if campaign is None else None,
                    account=account,
                )
            tid = c.execute(
                text("""INSERT INTO threads (created_at, recipient, recipient_name, company, role,
                        situation, interview_at, dedupe_key, facts, subject, root_message_id,
                        state, follow_up_wait, max_follow_ups, campaign, entry_key, recipient_tz,
                        alt_addresses, alt_domains, account, detail)
                        VALUES (:now, :to, :name, :company, :role, :situation, :interview, :key,
                        :facts, :subject, :mid, :sending, :wait, :maxf, :campaign, :entry, :tz,
                        :alt_a, :alt_d, :account, :detail) RETURNING id"""),
                {
                    "now": now.isoformat(),
                    "to": facts["to"],
                    "name": facts["interviewer"],
                    "company": facts["company"],
                    "role": facts["role"],
                    "situation": facts["situation"],
                    "interview": facts["interview"],
                    "key": key,
                    "facts": json.dumps(facts),
                    "subject": subject,
                    "mid": message_id,
                    "sending": SENDING,
                    "wait": follow_up_wait,
                    "maxf": max_follow_ups,
                    "campaign": campaign,
                    "entry": entry_key,
                    "tz": recipient_tz,
                    "alt_a": json.dumps([a.lower() for a in facts.get("alt_addresses", [])]),
                    "alt_d": json.dumps([d.lower() for d in facts.get("alt_domains", [])]),
                    "account": account,
                    "detail": json.dumps(detail or {}),
                },
            ).scalar_one()
            mid = self._insert_message(
                c,
                tid,
                "apology",
                message_id,
                raw,
                envelope_from,
                recipients,
                now,
                first,
            )
            self._event(c, tid, now, str(first), f"apology {message_id} {first}")
        return int(tid), mid

    def _guard_duplicate(
        self,
        c: Any,
        key: str,
        to: str,
        now: datetime,
        campaign: str | None = None,
        entry_key: str | None = None,
        open_at: str | None = None,
        account: str = "",
    ) -> None:
        from mailer.errors import DuplicateError

        rows = (
            c.execute(
                text("""SELECT t.id AS tid, t.company, m.id AS mid, m.state, m.owner,
                    m.final_dot_at FROM threads t
                    JOIN messages m ON m.thread_id = t.id AND m.kind = 'apology'
                    WHERE (t.dedupe_key = :k OR (t.campaign = :c AND t.entry_key = :e))
                    AND m.state != :failed"""),
                {"k": key, "c": campaign, "e": entry_key, "failed": FAILED},
            )
            .mappings()
            .all()
        )
        for r in rows:
            if _never_reached_server(r):
                # Stopped before connecting, or before the final dot: nothing the server could
                # accept left the machine, so it cannot be a duplicate. Close it so the new
                # attempt is the only live one.
                self._move_in(
                    c,
                    r["mid"],
                    MessageEvent.DROP_QUEUED if r["state"] == QUEUED else MessageEvent.FAIL,
                    now,
                    "failed_at",
                    {
                        "error": "abandoned before "
                        + ("connecting" if r["state"] == QUEUED else "the final dot of DATA")
                        + ": the process stopped"
                    },
                )
                self._move_thread_if(c, r["tid"], ThreadEvent.APOLOGY_FAILED)
                continue
            shown = message_shown(r["state"], owner_alive(r["owner"]), bool(r["final_dot_at"]))
            raise DuplicateError(
                f"thread {r['tid']} already holds an apology to {to} about this interview"
                # (named: the key leaves the company out, so it may be spelt differently)
                + (f" (at {r['company']})" if r["company"] else ""),
                state=describe_state(shown),
                hint="'mailer status' shows it; pass --again to send another anyway",
            )
        if open_at is not None:
            self._guard_open_thread(c, key, to, open_at, account)

    def _guard_open_thread(self, c: Any, key: str, to: str, company: str, account: str) -> None:
        """Refuse an apology to someone whose apology about another interview at the same
        company is still open: the same command typed again after midnight, with "today"
        or "tomorrow" in it, names another interview, and sent a second, wrong apology. An
        attempt that never reached the server (its process gone before the final dot) is
        not open."""
        from mailer.errors import DuplicateError
        from mailer.model.matching import same_company

        states, params = _in("s", WAITING_THREAD)
        rows = (
            c.execute(
                text(f"""SELECT t.id AS tid, t.company, t.interview_at, t.state AS tstate,
                    m.state, m.owner, m.final_dot_at FROM threads t
                    LEFT JOIN messages m ON m.thread_id = t.id AND m.kind = 'apology'
                    WHERE t.account = :account AND lower(t.recipient) = :to
                    AND t.dedupe_key != :k AND t.state IN {states} ORDER BY t.id"""),
                {"to": to.lower(), "account": account, "k": key, **params},
            )
            .mappings()
            .all()
        )
        for r in rows:
            if not same_company(str(r["company"] or ""), company):
                continue
            if r["tstate"] == ThreadState.SENDING and _never_reached_server(r):
                continue
            when = str(r["interview_at"])[:16].replace("T", " ")
            raise DuplicateError(
                f"thread {r['tid']} is still open with an apology to {to} at {r['company']} "
                f"about the interview of {when}",
                state=str(r["tstate"]).replace("_", " "),
                hint=f"'mailer status {r['tid']}' shows it; if this is another interview, "
                "pass --again",
            )

    def _insert_message(
        self,
        c: Any,
        thread_id: int,
        kind: str,
        message_id: str,
        raw: bytes,
        envelope_from: str,
        recipients: tuple[str, ...],
        now: datetime,
        state: str = QUEUED,
    ) -> int:
        return int(
            c.execute(
                text("""INSERT INTO messages (thread_id, kind, message_id, state, raw, envelope_from,
                    recipients, created_at, owner, submitting_at)
                    VALUES (:t, :kind, :mid, :state, :raw, :from, :rcpts, :now, :owner,
                    CASE WHEN :state = :submitting THEN :now END) RETURNING id"""),
                {
                    "t": thread_id,
                    "kind": kind,
                    "mid": message_id,
                    "state": state,
                    "submitting": SUBMITTING,
                    "raw": raw,
                    "from": envelope_from,
                    "rcpts": json.dumps(list(recipients)),
                    "now": now.isoformat(),
                    "owner": self._owner(),
                },
            ).scalar_one()
        )

    def _event(self, c: Any, thread_id: int, now: datetime, kind: str, detail: str) -> None:
        later = c.info.get(_LATER)
        if later is not None:
            # PostgreSQL: no answer is awaited for the log line; it goes with the COMMIT.
            later.append(
                (
                    "INSERT INTO events (thread_id, at, kind, detail) VALUES (%s, %s, %s, %s)",
                    (thread_id, now.isoformat(), kind, detail),
                )
            )
            return
        c.execute(
            text("INSERT INTO events (thread_id, at, kind, detail) VALUES (:t, :at, :k, :d)"),
            {"t": thread_id, "at": now.isoformat(), "k": kind, "d": detail},
        )

    # --- the message life cycle ---------------------------------------------------------

    def mark_submitting(self, message_row_id: int, now: datetime) -> None:
        """``queued`` -> ``submitting``, the claim made right before MAIL FROM.

        Only for a row this process queued, or one whose process is gone: a row another live
        process holds is its to send, and taking it here would send a second copy. The claim
        must be seen by other processes, but need not survive a power cut: a server can
        accept nothing before the final dot, whose mark (mark_final_dot) is synced, and its
        fsync carries this commit to disk with it (one WAL).
        """
        with self._write(durable=False) as c:
            # The usual claim, a row this process queued itself a moment ago: one UPDATE whose
            # WHERE is the whole check (one round trip on PostgreSQL, not two).
            if c.execute(
                text("""UPDATE messages SET state = :s, submitting_at = :now
                        WHERE id = :id AND state = :q AND owner = :o"""),
                {
                    "s": target(MessageEvent.SUBMIT),
                    "now": now.isoformat(),
                    "id": message_row_id,
                    "q": QUEUED,
                    "o": self._owner(),
                },
            ).rowcount:
                return
            row = self._claimable(c, message_row_id)
            if row["state"] != QUEUED:
                raise ClaimError(
                    f"message {row['message_id']} is {_shown(row)}, not queued; "
                    "it is not sent from here"
                )
            self._move_in(c, message_row_id, MessageEvent.SUBMIT, now, "submitting_at")

    def mark_final_dot(self, message_row_id: int, now: datetime) -> None:
        """Synced, right before the final dot of DATA: from here on the server may take the
        message, so a process that dies leaves it in doubt. Before it, nothing can have been
        accepted, and a dead process's message is requeued (requeue_abandoned)."""
        # A daemon's message (see under_lease): only while its lease is still held at its
        # epoch, in this same statement, so a daemon that stalled and lost it sends no dot.
        fence, fence_params = self._fence_sql()
        with self._write() as c:
            done = c.execute(
                text(f"""UPDATE messages SET final_dot_at = :now
                        WHERE id = :id AND state = :s AND owner = :o{fence}"""),
                {
                    "now": now.isoformat(),
                    "id": message_row_id,
                    "s": SUBMITTING,
                    "o": self._owner(),
                    **fence_params,
                },
            ).rowcount
            if done != 1:
                self._lease_lost(c)
                # Not ours to finish: the final dot is not sent, so the server takes nothing.
                raise ClaimError(
                    f"message {message_row_id} is no longer being sent by this process; "
                    "its DATA was abandoned before the final dot"
                )

    def requeue_abandoned(self, now: datetime, account: str | None = None) -> list[MessageRow]:
        """Put back in ``queued`` every message a dead process left ``submitting`` before the
        final dot: the server cannot have taken it. Returns them. Nobody owns them then, so
        the next pass (a follow-up) or the next ``send``/campaign run (an apology) sends it."""
        candidates = """SELECT m.* FROM messages m JOIN threads t ON t.id = m.thread_id
                        WHERE m.state = :s AND m.final_dot_at IS NULL
                        AND (CAST(:a AS TEXT) IS NULL OR t.account = :a) ORDER BY m.id"""
        if not self._rows(candidates, s=SUBMITTING, a=account):
            # Nearly every pass: nothing is being sent. One read tells, with no writers' lock
            # and no transaction to end; a row abandoned just after it waits for the next pass.
            return []
        with self.tx() as c:
            rows = c.execute(text(candidates), {"s": SUBMITTING, "a": account}).mappings().all()
            live = self._live_leases(c)
            moved = [r for r in rows if abandoned_before_final_dot(r, live)]
            for r in moved:
                # Owned by nobody: whichever pass or run comes next sends it. No time stamp:
                # it did not fail, it never went.
                self._move_in(
                    c, r["id"], MessageEvent.REQUEUE, now, None, {"error": _REQUEUED}, owner=None
                )
                self._event(
                    c,
                    r["thread_id"],
                    now,
                    "requeued",
                    f"{r['kind']} {r['message_id']}: {_REQUEUED}",
                )
        return self._decoded(moved, _message)

    def claim_resend(
        self, message_row_id: int, now: datetime, thread_states: tuple[str, ...]
    ) -> None:
        """Take an in-doubt message to send it again: ``in_doubt`` (or ``submitting`` by a
        process that is gone) -> ``submitting``, by this process, in one synced transaction.

        Whether it may be resent is decided here, inside the transaction that claims it, so
        of several ``resolve --resend`` runs at once exactly one sends; the others are
        refused before MAIL FROM. ``thread_states`` are the thread states that still want it.
        """
        with self.tx() as c:
            row = self._claimable(c, message_row_id)
            self._check_lease(c, row["thread_id"])
            if row["state"] not in (IN_DOUBT, SUBMITTING) or abandoned_before_final_dot(
                row, self._live_leases(c)
            ):
                raise ClaimError(
                    f"message {row['message_id']} is {_shown(row)} now, no longer in doubt; "
                    "it is not sent again"
                )
            thread = c.execute(
                text("SELECT state FROM threads WHERE id = :t"), {"t": row["thread_id"]}
            ).first()
            if thread is None or thread[0] not in thread_states:
                raise ClaimError(
                    f"thread {row['thread_id']} is "
                    f"{(thread[0] if thread else 'gone').replace('_', ' ')}, so its "
                    f"{row['kind'].replace('_', '-')} is not sent again",
                    hint=f"use --sent if it did arrive; 'mailer status {row['thread_id']} "
                    "--explain' shows what happened",
                )
            # The doubt is settled by the user: its words ("it may or may not have been
            # delivered") no longer describe the message; a failure of this try writes its own.
            self._move_in(
                c, message_row_id, MessageEvent.RESEND, now, "submitting_at", {"error": None}
            )
            self._event(
                c, row["thread_id"], now, "resend", f"{row['kind']} {row['message_id']} resent"
            )

    def _claimable(self, c: Any, message_row_id: int) -> Any:
        """The row, unless a live process other than this one is working on it."""
        row = (
            c.execute(
                text("""SELECT thread_id, kind, message_id, state, owner, final_dot_at
                        FROM messages WHERE id = :id"""),
                {"id": message_row_id},
            )
            .mappings()
            .first()
        )
        if row is None:
            raise StateError(f"message {message_row_id} not found in the state store")
        if (
            row["state"] in (QUEUED, SUBMITTING)
            and row["owner"] != self._owner()
            and owner_alive(row["owner"], self._live_leases(c))
        ):
            raise ClaimError(
                f"message {row['message_id']} is being sent by another mailer process "
                f"({row['owner']}) right now; it is not sent from here",
                hint="wait for that process to finish, then look at 'mailer status'",
            )
        return row

    def mark_sent(
        self,
        message_row_id: int,
        now: datetime,
        reply: str,
        follow_up_due: datetime | None,
        durable: bool = True,
        sent_copy: str | None = None,
        settling: bool = False,
    ) -> None:
        """The server said 250 (or, with ``settling``, the user or the Sent folder says an
        in-doubt message did go: then a message another live process is resending right now
        is left to it). For an apology, ``follow_up_due`` is when the follow-up is due;
        for a follow-up, when the thread's next step is (another follow-up, or closing as no
        answer). A thread a reply has already settled is never moved back.

        ``durable=False`` (campaigns) skips the fsync: if a power cut loses this commit, the
        message is left ``submitting`` and so shows as in doubt; it is never sent again.
        """
        with self._write(durable) as c:
            if settling:
                row = self._claimable(c, message_row_id)
                if row["state"] not in (IN_DOUBT, SUBMITTING):
                    raise ClaimError(
                        f"message {row['message_id']} is {_shown(row)} now, no longer in doubt"
                    )
            extra: dict[str, Any] = {"smtp_reply": reply}
            if settling:
                # It went: the words of the doubt are history now (kept in its events), not
                # what the message is ("sent ... it may or may not have been delivered").
                extra.update(error=None, failed_at=None)
            if sent_copy is not None:
                extra["sent_copy"] = sent_copy
            row = self._move_in(c, message_row_id, MessageEvent.SENT, now, "sent_at", extra)
            due = follow_up_due.isoformat() if follow_up_due else None
            if row["kind"] == "apology":
                # A thread a reply (or a cancel) has settled meanwhile stays as it is; when
                # its apology went is recorded all the same.
                moved = self._move_thread_if(
                    c,
                    row["thread_id"],
                    ThreadEvent.APOLOGY_SENT,
                    "follow_up_due = :due, due_at = :due_at, sent_at = :now",
                    {"due": due, "due_at": due_at(follow_up_due), "now": now.isoformat()},
                )
                if not moved:  # (one that moved has its sent_at set already)
                    self._date_held(c, row["thread_id"], now, follow_up_due)
            else:
                last, last_params = _in("l", allowed(ThreadEvent.LAST_FOLLOW_UP_SENT))
                c.execute(
                    text(f"""UPDATE threads SET follow_ups_sent = follow_ups_sent + 1,
                            follow_up_due = CASE WHEN state = :a THEN :due ELSE follow_up_due END,
                            due_at = CASE WHEN state = :a THEN :due_at ELSE due_at END,
                            state = CASE WHEN state IN {last}
                                         AND follow_ups_sent + 1 >= max_follow_ups
                                         THEN :last ELSE state END
                            WHERE id = :t"""),
                    {
                        "a": AWAITING,
                        "due": due,
                        "due_at": due_at(follow_up_due),
                        "t": row["thread_id"],
                        "last": target(ThreadEvent.LAST_FOLLOW_UP_SENT),
                        **last_params,
                    },
                )
            self._event(
                c,
                row["thread_id"],
                now,
                "sent",
                f"{row['kind']} {row['message_id']} accepted: {reply}",
            )

    def _date_held(
        self, c: Any, thread_id: int, now: datetime, follow_up_due: datetime | None
    ) -> None:
        """An apology's 250 for a thread that did not move (sent_at still NULL): when it went
        is recorded all the same, and held meanwhile (see DATED_BY_APOLOGY_SENT) it is dated
        as well, so its release finds the follow-up due."""
        due = follow_up_due.isoformat() if follow_up_due else None
        held, held_params = _in("h", DATED_BY_APOLOGY_SENT)
        dated = f"state IN {held} AND follow_up_due IS NULL"
        c.execute(
            text(f"""UPDATE threads SET sent_at = :now,
                    follow_up_due = CASE WHEN {dated} THEN :due ELSE follow_up_due END,
                    due_at = CASE WHEN {dated} THEN :due_at ELSE due_at END
                    WHERE id = :t AND sent_at IS NULL"""),
            {
                "now": now.isoformat(),
                "t": thread_id,
                "due": due,
                "due_at": due_at(follow_up_due),
                **held_params,
            },
        )

    def mark_abandoned_in_doubt(self, message_row_id: int, now: datetime, error: str) -> bool:
        """``submitting`` -> ``in_doubt``, but only if its owner is really gone (checked inside
        the transaction, so a resend running right now is left alone)."""
        with self.tx() as c:
            row = (
                c.execute(text("SELECT * FROM messages WHERE id = :id"), {"id": message_row_id})
                .mappings()
                .first()
            )
            if (
                row is None
                or row["state"] != SUBMITTING
                or not row["final_dot_at"]  # before the dot: requeued, not in doubt
                or owner_alive(row["owner"], self._live_leases(c))
            ):
                return False
            # The owner stays the process that marked the final dot and died: the record
            # says who may have sent it, not which process noticed (the settler owns nothing).
            self._move_with_error(
                c,
                message_row_id,
                MessageEvent.ABANDONED,
                now,
                error,
                "in_doubt",
                owner=row["owner"],
            )
        return True

    def requeue(self, message_row_id: int, now: datetime, error: str) -> None:
        """The server refused the message for now (it did not take it): try again later."""
        with self.tx() as c:
            self._move_with_error(
                c,
                message_row_id,
                MessageEvent.REQUEUE,
                now,
                error,
                "retry",
                # A refusal at the final dot is an answer: the next try starts unmarked.
                {"final_dot_at": None},
            )

    def mark_failed(self, message_row_id: int, now: datetime, error: str) -> None:
        with self.tx() as c:
            row = self._move_with_error(c, message_row_id, MessageEvent.FAIL, now, error, "failed")
            if row["kind"] == "apology":
                self._move_thread_if(c, row["thread_id"], ThreadEvent.APOLOGY_FAILED)

    def mark_not_arrived(self, message_row_id: int, now: datetime, why: str) -> None:
        """A follow-up in doubt of a closed thread settled as not delivered (``resolve
        --not-sent``): it stays unsent for good, and the thread as it is. Decided inside the
        transaction, as a resend's claim is (see lifecycle.settles_not_sent)."""
        with self.tx() as c:
            row = self._claimable(c, message_row_id)
            thread = c.execute(
                text("SELECT state FROM threads WHERE id = :t"), {"t": row["thread_id"]}
            ).first()
            state = thread[0] if thread is not None else "gone"
            if not settles_not_sent(row["kind"], state):
                raise ClaimError(
                    f"thread {row['thread_id']} is {describe_state(state)}: its "
                    f"{row['kind'].replace('_', '-')} {row['message_id']} is not recorded as "
                    "not sent",
                    hint=f"look at 'mailer status {row['thread_id']} --explain'",
                )
            # The owner stays the process that may have sent it (see mark_sent's settling).
            self._move_with_error(
                c,
                message_row_id,
                MessageEvent.NOT_ARRIVED,
                now,
                why,
                "settled_not_sent",
                owner=row["owner"],
            )

    def mark_in_doubt(self, message_row_id: int, now: datetime, error: str) -> None:
        with self.tx() as c:
            self._move_with_error(c, message_row_id, MessageEvent.DOUBT, now, error, "in_doubt")

    def _move_with_error(
        self,
        c: Any,
        message_row_id: int,
        move: MessageEvent,
        now: datetime,
        error: str,
        event: str,
        extra: dict[str, Any] | None = None,
        owner: str | bool | None = True,
    ) -> Any:
        """Move a message, keep why, and log it: the shape of every unhappy transition.
        ``owner``: as for :meth:`_move_in`."""
        extra = {"error": error, **(extra or {})}
        row = self._move_in(c, message_row_id, move, now, "failed_at", extra, owner)
        self._event(c, row["thread_id"], now, event, f"{row['kind']} {row['message_id']}: {error}")
        return row

    def record_sent_copy(self, message_row_id: int, outcome: str, durable: bool = True) -> None:
        self.record_sent_copies([(message_row_id, outcome)], durable)

    def record_sent_copies(self, outcomes: list[tuple[int, str]], durable: bool = True) -> None:
        with self.tx(durable) as c:
            later = c.info.get(_LATER)
            if later is not None:
                # PostgreSQL: nothing waits for the answer; it goes with the COMMIT (_event).
                later.extend(
                    ("UPDATE messages SET sent_copy = %s WHERE id = %s", (outcome, row_id))
                    for row_id, outcome in outcomes
                )
                return
            c.execute(
                text("UPDATE messages SET sent_copy = :o WHERE id = :id"),
                [{"o": outcome, "id": row_id} for row_id, outcome in outcomes],
            )

    def _move_in(
        self,
        c: Any,
        message_row_id: int,
        move: MessageEvent,
        now: datetime,
        stamp: str | None,
        extra: dict[str, Any] | None = None,
        owner: str | bool | None = True,
    ) -> Any:
        """Move one message as the lifecycle table allows, inside the caller's transaction;
        ``extra`` sets more columns in the same UPDATE. :class:`TransitionRefused` (and
        nothing written) if the table does not allow ``move`` from the row's state. The row
        is this process's afterwards, unless ``owner`` names another (None: nobody's).
        Returns its thread_id, kind and message_id."""
        # One statement where the move is allowed (the usual case): the UPDATE's own WHERE
        # state IN is the table's check, and RETURNING gives what callers need of the row.
        new = target(move)
        extra = extra or {}
        sets = "".join(f", {column} = :x_{column}" for column in extra)
        states, params = _in("from", allowed(move))
        row = (
            c.execute(
                text(
                    f"UPDATE messages SET state = :s, {f'{stamp} = :now, ' if stamp else ''}"
                    f"owner = :o{sets} WHERE id = :id AND state IN {states} "
                    "RETURNING thread_id, kind, message_id"
                ),
                {
                    "s": new,
                    "now": now.isoformat(),
                    "o": self._owner() if owner is True else owner,
                    "id": message_row_id,
                    **params,
                    **{f"x_{column}": value for column, value in extra.items()},
                },
            )
            .mappings()
            .first()
        )
        if row is not None:
            return row
        # Nothing written: say why, from the row as it is.
        now_row = (
            c.execute(
                text("SELECT message_id, state FROM messages WHERE id = :id"),
                {"id": message_row_id},
            )
            .mappings()
            .first()
        )
        if now_row is None:
            raise StateError(f"message {message_row_id} not found in the state store")
        apply(move, now_row["state"], f"message {now_row['message_id']}")
        raise TransitionRefused(f"message {now_row['message_id']}", "changed", move, new)

    def _move_thread_if(
        self,
        c: Any,
        thread_id: int,
        move: ThreadEvent,
        sets: str = "",
        params: dict[str, Any] | None = None,
    ) -> bool:
        """Move a thread as a side effect of its message's move, if the table allows it from
        the thread's state now; a thread that has moved on (a reply, a cancel) is left as it
        is, and the message's own move still counts. True if it moved."""
        states, state_params = _in("from", allowed(move))
        done = c.execute(
            text(
                f"UPDATE threads SET state = :to{', ' + sets if sets else ''} "
                f"WHERE id = :t AND state IN {states}"
            ),
            {"to": target(move), "t": thread_id, **state_params, **(params or {})},
        )
        return bool(done.rowcount)

    # --- reading ---------------------------------------------------------------------------

    def _rows(self, sql: str, **params: Any) -> list[Any]:
        """One read: one statement, so one snapshot of its own, with no BEGIN and no writers'
        lock (SQLite's BEGIN IMMEDIATE, PostgreSQL's advisory lock). Those serialise what a
        transaction reads with what it then writes; a read on its own writes nothing, and
        seeing the store just before a concurrent write commits is what a read taken a
        moment earlier would have seen. On PostgreSQL one round trip, not five (ping, BEGIN,
        lock, SELECT, COMMIT)."""
        if self._memory is not None and self._memory.in_transaction:
            # The in-memory store has one connection: this read would be read inside the
            # tx() that is open on it (and, through SQLAlchemy's pool, used to end it).
            raise AssertionError(
                "Store._rows inside an open tx() of the in-memory store would end that "
                "transaction: read through the transaction's connection instead"
            )
        if self._direct:
            from mailer.adapters import directsql

            pooled = None
            try:
                # (Inside the try: opening a connection can fail too, e.g. a folder gone.)
                pooled = self.engine.raw_connection()
                read = directsql.Connection(pooled.dbapi_connection)
                return read.exec_driver_sql(sql, params).mappings().all()
            except sqlite3.Error as exc:
                raise StateError(_db_error(self.url, exc)) from exc
            finally:
                if pooled is not None:
                    pooled.close()
        from sqlalchemy.exc import DBAPIError

        for attempt in range(2):
            try:
                options = _ONE_READ_OPTIONS if self._pg else {_ONE_READ: True}
                with self.engine.connect().execution_options(**options) as c:
                    return list(c.execute(text(sql), params).mappings().all())
            except DBAPIError as exc:
                # A connection the server dropped: a read is safe to send again, once.
                if not exc.connection_invalidated or attempt:
                    raise StateError(_db_error(self.url, exc)) from exc
        raise AssertionError("unreachable")

    def threads(self) -> list[ThreadRow]:
        return self._decoded(self._rows("SELECT * FROM threads ORDER BY id"), _thread)

    def thread(self, thread_id: int, *, lenient: bool = False) -> ThreadRow | None:
        """One thread. ``lenient`` (the watcher): damaged stored data is replaced by empty
        values instead of refused, so a reply to that thread is still recorded."""
        rows = self._rows("SELECT * FROM threads WHERE id = :id", id=thread_id)
        if not rows:
            return None
        if not lenient:
            return _thread(rows[0])
        d = dict(rows[0])
        d["facts"] = _detail(d["facts"])
        d["detail"] = _detail(d["detail"])
        d["alt_addresses"] = tuple(_list(d["alt_addresses"]))
        d["alt_domains"] = tuple(_list(d["alt_domains"]))
        d.pop("due_at", None)  # the index's copy of follow_up_due
        return ThreadRow(**d)

    def messages(self, thread_id: int) -> list[MessageRow]:
        sql = "SELECT * FROM messages WHERE thread_id = :t ORDER BY id"
        return [_message(r) for r in self._rows(sql, t=thread_id)]

    def message(self, message_row_id: int) -> MessageRow:
        rows = self._rows("SELECT * FROM messages WHERE id = :id", id=message_row_id)
        if not rows:
            raise StateError(f"message {message_row_id} not found in the state store")
        return _message(rows[0])

    def message_and_thread_state(self, message_row_id: int) -> tuple[MessageRow, str]:
        """A message and the state its thread is in now, in one read (a follow-up's last
        look before it is sent)."""
        rows = self._rows(
            """SELECT m.*, t.state AS thread_state FROM messages m
               JOIN threads t ON t.id = m.thread_id WHERE m.id = :id""",
            id=message_row_id,
        )
        if not rows:
            raise StateError(f"message {message_row_id} not found in the state store")
        row = dict(rows[0])
        thread_state = str(row.pop("thread_state"))
        return _message(row), thread_state

    def events(self, thread_id: int) -> list[dict[str, Any]]:
        sql = "SELECT at, kind, detail FROM events WHERE thread_id = :t ORDER BY id"
        return [dict(r) for r in self._rows(sql, t=thread_id)]

    # --- the watcher's bookkeeping ----------------------------------------------------

    def thread_index(self, account: str | None = None) -> ThreadIndex:
        """What the matcher needs: every Message-ID we sent, and who may answer which thread.

        With ``account``, only that account's threads: its mailbox is where their replies
        arrive. Our own Message-IDs are all kept, so none of them is ever taken for a reply.

        Kept between calls (the daemon asks on every pass with new mail): a thread's address,
        alternates, company and role never change once written, nor a message's Message-ID,
        so only new rows are read in full; what does change (state, sent time) is read for
        every thread, a narrow column read instead of 20k JSON parses at 10k threads.
        """
        from mailer.model.matching import IndexedThread, ThreadIndex  # not for status

        with self.tx() as c:
            ours = self._our_ids(c)
            known = self._indexed
            # A thread still sending (or in doubt) can be answered too: from its creation,
            # not only once the send is recorded. The first call reads every column it
            # needs in one go; later ones only what may have changed, then any new thread.
            wide = ", recipient, alt_addresses, alt_domains, company, role" if not known else ""
            rows = self._tuples(
                c,
                f"""SELECT id, state, COALESCE(sent_at, created_at){wide} FROM threads
                    WHERE state != :failed AND (CAST(:a AS TEXT) IS NULL OR account = :a) ORDER BY id""",
                {"a": account, "failed": str(ThreadState.FAILED)},
            )
            fresh = {r[0]: r[3:] for r in rows} if wide else {}
            missing = [r[0] for r in rows if r[0] not in known and r[0] not in fresh]
            if missing:
                fresh = {
                    r[0]: r[1:]
                    for r in self._tuples(
                        c,
                        """SELECT id, recipient, alt_addresses, alt_domains, company, role
                            FROM threads WHERE id >= :lo AND id <= :hi""",
                        {"lo": min(missing), "hi": max(missing)},
                    )
                }
        threads = []
        for tid, state, sent, *_ in rows:
            hit = known.get(tid)
            if hit is None or hit[0] != state or hit[1] != sent:
                if hit is not None:
                    entry = hit[2]._replace(state=state, sent_at=_sent_at(sent))
                else:
                    entry = _indexed_thread(IndexedThread, tid, state, sent, *fresh[tid])
                hit = known[tid] = (state, sent, entry)
            threads.append(hit[2])
        return ThreadIndex(our_ids=ours, threads=tuple(threads))

    def batch_index(
        self, account: str | None, message_ids: Collection[str], senders: Collection[str]
    ) -> ThreadIndex:
        """The part of :meth:`thread_index` that a batch of new messages can match: of our
        Message-IDs, those among ``message_ids`` (the batch's own and the ones it refers
        to); of the threads, those the IDs found lead to, and every thread that
        :func:`~mailer.model.matching.from_sender` could return for one of ``senders`` (lower
        case, as :class:`~mailer.model.matching.Incoming` has them). For those messages,
        every decision of the matcher is the one the whole index gives; a message outside
        the batch (a delivery report's quoted original, say) needs the whole index.

        What it costs in Python follows the batch, not the store: IDs are looked up in the
        messages_ours index, and the threads are a superset chosen in SQL (a scan of the
        table in C, there being no index on a lowered address), cut down by the same Python
        as the whole index. SQL folds case in ASCII only, Python in every script: a thread
        whose address has any other character, or that has alternate addresses or domains
        at all, is always read (rare rows), so none is missed for its case."""
        from mailer.model.excerpt import without_nul
        from mailer.model.matching import IndexedThread, ThreadIndex  # not for status

        pg = self.engine.dialect.name == "postgresql"
        # COLLATE "C": lower() and the character range in code points, in any locale (a
        # Turkish one lowers "I" to a dotless i, which no address Python lowered has).
        recipient = 'recipient COLLATE "C"' if pg else "recipient"
        # Any character past ASCII: in UTF-8 more bytes than characters (4x faster than a
        # GLOB at 10k rows; a NUL or a UTF-16 store only makes the superset larger).
        rare = (
            f"{recipient} ~ '[^ -~]'"
            if pg
            else "length(CAST(recipient AS BLOB)) != length(recipient)"
        )
        scope = """SELECT id, state, COALESCE(sent_at, created_at), recipient, alt_addresses,
                alt_domains, company, role FROM threads
                WHERE state != :failed AND (CAST(:a AS TEXT) IS NULL OR account = :a)"""
        where = {"a": account, "failed": str(ThreadState.FAILED)}
        ours: dict[str, int] = {}
        rows: dict[int, tuple[Any, ...]] = {}
        # Values from untrusted headers, as the watcher reads them (see without_nul): a NUL
        # would make PostgreSQL refuse the statement, and the pass, on every pass after.
        message_ids = [without_nul(m) for m in message_ids]
        senders = [without_nul(s) for s in senders]
        with self.tx() as c:
            for listed, params in _in_lists("m", message_ids):
                sql = f"SELECT message_id, thread_id FROM messages WHERE message_id IN {listed}"
                ours.update(self._tuples(c, sql, params))
            for listed, params in _in_lists("s", {s for s in senders if s}):
                sql = f"""{scope} AND (lower({recipient}) IN {listed} OR {rare}
                    OR alt_addresses != '[]' OR alt_domains != '[]')"""
                rows.update((r[0], r) for r in self._tuples(c, sql, params | where))
            for listed, params in _in_lists("t", set(ours.values())):
                sql = f"{scope} AND id IN {listed}"
                rows.update((r[0], r) for r in self._tuples(c, sql, params | where))
        threads = tuple(_indexed_thread(IndexedThread, *rows[tid]) for tid in sorted(rows))
        return ThreadIndex(our_ids=ours, threads=threads)

    def _our_ids(self, c: Any) -> dict[str, int]:
        """Every Message-ID we sent, and its thread. Messages are never deleted nor renamed:
        on SQLite, whose writers commit one at a time (so row ids commit in order), only the
        rows added since the last call are read."""
        if self.engine.dialect.name != "sqlite":
            return dict(self._tuples(c, "SELECT message_id, thread_id FROM messages", {}))
        # The first read takes them all from the messages_ours index (no raw message is
        # read); later ones, the rows after the last seen.
        sql = "SELECT id, message_id, thread_id FROM messages"
        if self._ours_upto:
            sql += " WHERE id > :n"
        for row_id, message_id, thread_id in self._tuples(c, sql, {"n": self._ours_upto}):
            self._ours[message_id] = thread_id
            self._ours_upto = max(self._ours_upto, row_id)
        return dict(self._ours)  # a copy: the next call adds to the kept one

    def _tuples(self, c: Any, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Rows as plain tuples, inside the transaction ``c``: on SQLite straight from its
        cursor (for 10k rows SQLAlchemy's row objects cost several times the query)."""
        if self.engine.dialect.name == "sqlite":
            return c.connection.dbapi_connection.execute(sql, params).fetchall()
        return [tuple(r) for r in c.execute(text(sql), params)]

    def folder_state(self, folder: str) -> tuple[int, int] | None:
        rows = self._rows("SELECT uidvalidity, last_uid FROM folders WHERE folder = :f", f=folder)
        return (int(rows[0]["uidvalidity"]), int(rows[0]["last_uid"])) if rows else None

    def set_folder_state(self, folder: str, uidvalidity: int, last_uid: int) -> None:

        # Losing this position in a power cut only means looking at a few messages again
        # (each is acted on once, see apply_incoming), so it skips the fsync the message
        # states get. The next FULL commit flushes it anyway.
        with self.tx(durable=False) as c:
            c.execute(text("DELETE FROM folders WHERE folder = :f"), {"f": folder})
            c.execute(
                text("INSERT INTO folders (folder, uidvalidity, last_uid) VALUES (:f, :v, :u)"),
                {"f": folder, "v": uidvalidity, "u": last_uid},
            )

    def incoming_ids(self, thread_id: int) -> set[str]:
        """The Message-IDs of the messages recorded for this thread (in any folder)."""
        rows = self._rows(
            "SELECT message_id FROM incoming WHERE thread_id = :t AND message_id IS NOT NULL",
            t=thread_id,
        )
        return {str(r["message_id"]) for r in rows}

    def has_incoming(self, message_id: str) -> bool:
        """Whether a message with this Message-ID was recorded for any thread, in any
        folder (read-only; the watcher asks it of the few messages a last look finds)."""
        from mailer.model.excerpt import without_nul

        return bool(
            self._rows(
                "SELECT 1 FROM incoming WHERE message_id = :m LIMIT 1", m=without_nul(message_id)
            )
        )

    def seen_incoming(self, folder: str, uidvalidity: int, uid: int) -> bool:
        """Whether this message was recorded already (see :meth:`apply_incoming`)."""
        return bool(
            self._rows(
                """SELECT 1 FROM incoming WHERE folder = :f AND uidvalidity = :v
                   AND uid = :u""",
                f=folder,
                v=uidvalidity,
                u=uid,
            )
        )

    def apply_incoming(
        self,
        *,
        thread_id: int,
        folder: str,
        uidvalidity: int,
        uid: int,
        message_id: str | None,
        sender: str,
        subject: str,
        verdict: str,
        now: datetime,
        decision: Decision,
        expected_state: str | None,
        expected_due: datetime | None = None,
    ) -> Applied:
        """Record one matched message and write the decision made for it, in one transaction.

        The decision was made from the thread in ``expected_state`` (and, for a postponement,
        with ``expected_due``): if the thread is no longer so (another process moved it), or
        is gone, nothing is written and :attr:`Applied.MOVED` says to decide again.
        ``expected_state`` None: the decision holds whatever the thread's state. A message
        recorded before is :attr:`Applied.SEEN`, and nothing is written either.
        """
        from mailer.model.excerpt import without_nul  # (not for status)

        # What the sender wrote, as text PostgreSQL takes (see without_nul: the watcher's
        # headers have no NUL left, a classifier's words may quote one).
        message_id = without_nul(message_id) if message_id is not None else None
        sender, subject, verdict = without_nul(sender), without_nul(subject), without_nul(verdict)
        with self.tx() as c:
            seen = c.execute(
                text("""SELECT 1 FROM incoming WHERE folder = :f AND uidvalidity = :v
                        AND uid = :u"""),
                {"f": folder, "v": uidvalidity, "u": uid},
            ).first()
            if seen:
                return Applied.SEEN
            thread = (
                c.execute(
                    text("SELECT state, detail, follow_up_due FROM threads WHERE id = :t"),
                    {"t": thread_id},
                )
                .mappings()
                .first()
            )
            if thread is None or (
                expected_state is not None
                and (
                    thread["state"] != expected_state
                    or (
                        decision.postpone_to is not None
                        and stored_time(thread["follow_up_due"]) != expected_due
                    )
                )
            ):
                return Applied.MOVED
            c.execute(
                text("""INSERT INTO incoming (folder, uidvalidity, uid, thread_id, message_id,
                        sender, subject, verdict, at) VALUES (:f, :v, :u, :t, :m, :s, :subj,
                        :verdict, :at)"""),
                {
                    "f": folder,
                    "v": uidvalidity,
                    "u": uid,
                    "t": thread_id,
                    "m": message_id,
                    "s": sender,
                    "subj": subject,
                    "verdict": verdict,
                    "at": now.isoformat(),
                },
            )
            detail = {**_detail(thread["detail"]), **decision.detail}
            due = thread["follow_up_due"]
            if decision.postpone_to is not None:
                due = decision.postpone_to.isoformat()
            values = {"d": json.dumps(detail), "due": due, "due_at": due_at(due), "t": thread_id}
            if decision.state is None:  # details only: no transition
                c.execute(
                    text("""UPDATE threads SET detail = :d, follow_up_due = :due, due_at = :due_at
                            WHERE id = :t"""),
                    values,
                )
            else:
                move = incoming_event(decision.state)
                apply(move, thread["state"], f"thread {thread_id}")
                states, params = _in("from", allowed(move))
                c.execute(
                    text(f"""UPDATE threads SET state = :s, detail = :d, follow_up_due = :due,
                            due_at = :due_at WHERE id = :t AND state IN {states}"""),
                    {"s": target(move), **values, **params},
                )
            if decision.stop_follow_ups:
                self._cancel_queued(c, thread_id, now, f"{decision.event}: follow-up cancelled")
            self._event(
                c,
                thread_id,
                now,
                decision.event,
                f"{verdict} from {sender} ({subject!r}, {folder} UID {uid})"
                + (f"; follow-up postponed to {due}" if decision.postpone_to else ""),
            )
        return Applied.RECORDED

    def _cancel_queued(self, c: Any, thread_id: int, now: datetime, why: str) -> None:
        states, params = _in("from", allowed(MessageEvent.DROP_QUEUED))
        later = c.info.get(_LATER)
        if later is not None:
            # PostgreSQL: nothing waits for its answer either (the callers log an event and
            # commit next): it goes with the COMMIT, in order (see _event).
            froms = allowed(MessageEvent.DROP_QUEUED)
            later.append(
                (
                    "UPDATE messages SET state = %s, failed_at = %s, error = %s WHERE "
                    "thread_id = %s AND kind = 'follow_up' AND state = ANY(%s)",
                    (
                        target(MessageEvent.DROP_QUEUED),
                        now.isoformat(),
                        why,
                        thread_id,
                        list(froms),
                    ),
                )
            )
            return
        c.execute(
            text(f"""UPDATE messages SET state = :f, failed_at = :now, error = :why
                    WHERE thread_id = :t AND kind = 'follow_up' AND state IN {states}"""),
            {
                "f": target(MessageEvent.DROP_QUEUED),
                "now": now.isoformat(),
                "why": why,
                "t": thread_id,
                **params,
            },
        )

    def set_thread_state(
        self,
        thread_id: int,
        move: ThreadEvent,
        now: datetime,
        event: str,
        detail: dict[str, str],
        expected: str | None = None,
        follow_up_due: datetime | None = None,
    ) -> str:
        """Move a thread (cancel, mark replied, close as no answer) as the lifecycle table
        allows, and log it as ``event``. Stops queued follow-ups. Returns the new state;
        :class:`TransitionRefused` (nothing written) if the table does not allow ``move`` from
        the thread's state now, or if the thread is not in ``expected`` (the state the move
        was decided from) any more. ``follow_up_due``: a new due time, set with the move."""
        with self.tx() as c:
            row = (
                c.execute(text("SELECT state, detail FROM threads WHERE id = :t"), {"t": thread_id})
                .mappings()
                .first()
            )
            if row is None:  # the user named one that is not there (as status says it)
                raise InputError(f"no thread {thread_id} in the state store")
            if expected is not None and row["state"] != expected:
                raise TransitionRefused(f"thread {thread_id}", row["state"], move, target(move))
            state = apply(move, row["state"], f"thread {thread_id}")
            states, params = _in("from", allowed(move))
            # Conditional on the state just read, and checked by its row count: where reads
            # and writes are not serialised (another engine, #17), a move made meanwhile makes
            # this one write nothing and refuse, never log a move that did not happen.
            dated = "" if follow_up_due is None else ", follow_up_due = :due, due_at = :due_at"
            moved = c.execute(
                text(
                    f"""UPDATE threads SET state = :s, detail = :d{dated}
                        WHERE id = :t AND state = :was AND state IN {states}"""
                ),
                {
                    "due": None if follow_up_due is None else follow_up_due.isoformat(),
                    "due_at": due_at(follow_up_due),
                    "s": state,
                    "d": json.dumps({**_detail(row["detail"]), **detail}),
                    "t": thread_id,
                    "was": row["state"],
                    **params,
                },
            )
            if moved.rowcount != 1:
                now_state = c.execute(
                    text("SELECT state FROM threads WHERE id = :t"), {"t": thread_id}
                ).scalar()
                raise TransitionRefused(
                    f"thread {thread_id}", str(now_state or "gone"), move, target(move)
                )
            if state != AWAITING:
                self._cancel_queued(c, thread_id, now, f"{event}: follow-up cancelled")
            self._event(c, thread_id, now, event, "; ".join(f"{k}: {v}" for k, v in detail.items()))
        return state

    def move_thread_if_still(
        self,
        thread_id: int,
        move: ThreadEvent,
        now: datetime,
        event: str,
        detail: dict[str, str],
        expected: str | None = None,
        follow_up_due: datetime | None = None,
    ) -> bool:
        """:meth:`set_thread_state` for a move that another process (a reply, a cancel) may
        have made moot meanwhile: False, nothing written, if the table refuses it now (or the
        thread left ``expected``)."""
        try:
            self.set_thread_state(thread_id, move, now, event, detail, expected, follow_up_due)
        except TransitionRefused:
            return False
        return True

    def set_thread_detail(self, thread_id: int, detail: dict[str, Any]) -> None:
        """Remember something about a thread (a campaign's permanent refusal)."""
        with self.tx(durable=False) as c:
            row = c.execute(
                text("SELECT detail FROM threads WHERE id = :t"), {"t": thread_id}
            ).first()
            if row is not None:
                c.execute(
                    text("UPDATE threads SET detail = :d WHERE id = :t"),
                    {"d": json.dumps({**_detail(row[0]), **detail}), "t": thread_id},
                )

    def claim_follow_up(
        self,
        thread_id: int,
        now: datetime,
        *,
        message_id: str,
        raw: bytes,
        envelope_from: str,
        recipients: tuple[str, ...],
    ) -> int | None:
        """Reserve the next follow-up for a thread that is still due, in one transaction.

        Returns the message row to send, or None when the thread no longer wants one. A
        follow-up already queued by a process that is gone is resumed (it never left the
        machine), and so is one a gone process left submitting before the final dot (the server
        took nothing); one that is submitting, sent or in doubt blocks another.
        """
        unsettled, unsettled_params = _in("u", (QUEUED, SUBMITTING, IN_DOUBT))
        with self.tx() as c:
            self._check_lease(c, thread_id)
            # The thread and its unsettled follow-ups in one statement (one round trip on
            # PostgreSQL): a row per such follow-up, or one row with no message.
            rows = (
                c.execute(
                    text(f"""SELECT t.state, t.follow_up_due, t.follow_ups_sent, t.max_follow_ups,
                        m.id AS m_id, m.state AS m_state, m.owner AS m_owner,
                        m.final_dot_at AS m_final_dot_at
                        FROM threads t LEFT JOIN messages m ON m.thread_id = t.id
                        AND m.kind = 'follow_up' AND m.state IN {unsettled}
                        WHERE t.id = :t ORDER BY m.id"""),
                    {"t": thread_id, **unsettled_params},
                )
                .mappings()
                .all()
            )
            t = rows[0] if rows else None
            if t is None or t["state"] != AWAITING or t["follow_ups_sent"] >= t["max_follow_ups"]:
                return None
            due = stored_time(t["follow_up_due"])
            if due is None or due > now:
                return None
            live = [
                {k: r[f"m_{k}"] for k in ("id", "state", "owner", "final_dot_at")}
                for r in rows
                if r["m_id"] is not None
            ]
            leases = self._live_leases(c)
            for m in live:
                if (
                    m["state"] == QUEUED
                    and (not owner_alive(m["owner"], leases) or m["owner"] == self._owner())
                ) or abandoned_before_final_dot(m, leases):
                    c.execute(
                        text("UPDATE messages SET state = :q, owner = :o WHERE id = :id"),
                        {"q": QUEUED, "o": self._owner(), "id": m["id"]},
                    )
                    return int(m["id"])
                return None
            row_id = self._insert_message(
                c, thread_id, "follow_up", message_id, raw, envelope_from, recipients, now
            )
            self._event(c, thread_id, now, "claimed", f"follow-up {message_id} queued")
        return row_id

    def bounced_threads(self, recipient: str, other_than: int) -> list[tuple[int, dict[str, Any]]]:
        """The other threads to this address that are bounced, with their details."""
        found = self.bounced_threads_to([recipient]).get(recipient.lower(), [])
        return [(tid, detail) for tid, detail in found if tid != other_than]

    def bounced_threads_to(
        self, recipients: Collection[str]
    ) -> dict[str, list[tuple[int, dict[str, Any]]]]:
        """:meth:`bounced_threads` for many addresses in one read (a pass's due threads):
        the bounced threads to each address (in lower case), oldest first."""
        found: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        wanted = {r.lower() for r in recipients}
        if not wanted:
            return found
        ordered = sorted(wanted)
        for start in range(0, len(ordered), _IN_CHUNK):
            chunk = ordered[start : start + _IN_CHUNK]
            # Padded to a power of two (repeating an address changes nothing): a few shapes
            # of statement, not one per count, and never past an old SQLite's 999 parameters.
            chunk += chunk[-1:] * ((1 << (len(chunk) - 1).bit_length()) - len(chunk))
            params = {f"r{i}": a for i, a in enumerate(chunk)}
            addresses = "(" + ", ".join(f":{k}" for k in params) + ")"
            rows = self._rows(
                f"""SELECT id, lower(recipient) AS r, detail FROM threads
                   WHERE lower(recipient) IN {addresses} AND state = :bounced ORDER BY id""",
                bounced=ThreadState.BOUNCED,
                **params,
            )
            for r in rows:
                found.setdefault(str(r["r"]), []).append((int(r["id"]), _detail(r["detail"])))
        return found  # (an address is in one chunk: its threads are in id order)

    def due_threads(self, now: datetime, account: str | None = None) -> list[ThreadRow]:
        """Threads whose next step (a follow-up, or closing as no answer) is due, soonest
        first: an indexed range on ``due_at`` (instants, whatever offset each time was written
        with), so a pass reads the due threads, not every open one."""
        states, params = _in("s", DUE_THREAD)
        # "account || ''": a bare "account = :acct" let SQLite take the (account, state)
        # index instead of the due one, and read every open thread of the account on every
        # pass (8 ms at 10,000 open).
        acct = "" if account is None else "AND account || '' = :acct"
        rows = self._rows(
            f"""SELECT * FROM threads WHERE state IN {states} AND due_at <= :now {acct}
               ORDER BY due_at, id""",
            now=due_at(now),
            acct=account,
            **params,
        )
        # Rows whose follow_up_due is not a date have no due_at: decoding them names them as
        # damaged (see _decoded), as every pass did when it read every open thread.
        unreadable = self._rows(
            f"""SELECT * FROM threads WHERE state IN {states} AND due_at IS NULL
               AND follow_up_due IS NOT NULL {acct} ORDER BY id""",
            acct=account,
            **params,
        )
        dues = [
            (t, due)
            for t in self._decoded([*rows, *unreadable], _thread)
            # Read back from the row itself: a due_at left stale by an edit by hand is not
            # believed (the SQL bound only narrows what is read).
            if (due := stored_time(t.follow_up_due)) is not None and due <= now
        ]
        dues.sort(key=lambda p: p[1])  # stable: ties stay in id order
        return [t for t, _ in dues]

    def next_due(self, after: datetime | None = None) -> datetime | None:
        """The soonest due time of an open thread (after ``after``), with its own offset."""
        later = "" if after is None else "AND due_at > :after"
        found: list[datetime] = []
        with self.tx() as c:
            # One state at a time: each is then a walk along the index in due order that
            # stops at its first row, where an IN list would sort all of them. A few rows at
            # a time: a result is read whole, and reading every open thread's took 10 ms of
            # every daemon tick at 10,000 open.
            for state in sorted(DUE_THREAD):
                offset = 0
                while True:
                    rows = c.execute(
                        text(f"""SELECT follow_up_due FROM threads WHERE state = :s
                                AND due_at IS NOT NULL {later} ORDER BY due_at, id
                                LIMIT {_NEXT_DUE_BATCH} OFFSET :offset"""),
                        {
                            "s": str(state),
                            "after": due_at(after) if after else None,
                            "offset": offset,
                        },
                    ).all()
                    # The first readable one; normally the first row.
                    due = next(
                        (
                            d
                            for (value,) in rows
                            if (d := stored_time(value)) is not None
                            and (after is None or d > after)
                        ),
                        None,
                    )
                    if due is not None:
                        found.append(due)
                    if due is not None or len(rows) < _NEXT_DUE_BATCH:
                        break
                    offset += _NEXT_DUE_BATCH
        return min(found) if found else None

    def unsettled_messages(self, account: str | None = None) -> list[MessageRow]:
        """Messages whose fate is unknown: in doubt, or submitting by a process that is gone."""
        sql = """SELECT m.* FROM messages m JOIN threads t ON t.id = m.thread_id
                 WHERE m.state IN (:s, :d) AND (CAST(:a AS TEXT) IS NULL OR t.account = :a) ORDER BY m.id"""
        rows = self._rows(sql, s=SUBMITTING, d=IN_DOUBT, a=account)
        messages = self._decoded(rows, _message)
        if any(m.state == SUBMITTING and "|" in (m.owner or "") for m in messages):
            # A daemon's: its lease says whether its process still works on it.
            with self.tx() as c:
                leases = dict(self._live_leases(c).items())
            alive = {m.id: owner_alive(m.owner, leases) for m in messages}
            shown = [message_shown(m.state, alive[m.id], bool(m.final_dot_at)) for m in messages]
            return [m for m, st in zip(messages, shown, strict=True) if st == IN_DOUBT]
        return [m for m in messages if m.state_now == IN_DOUBT]

    # --- campaigns ---------------------------------------------------------------------------

    def sent_since(self, account: str, since: datetime, until: datetime | None = None) -> int:
        """Messages that left (or may have left) ``account`` since ``since`` (and before
        ``until``): the daily cap counts every run and every kind, follow-ups included."""
        states, params = _in("s", GONE_MESSAGE)
        rows = self._rows(
            f"""SELECT m.submitting_at FROM messages m JOIN threads t ON t.id = m.thread_id
               WHERE t.account = :a AND m.submitting_at IS NOT NULL
               AND m.state IN {states}""",
            a=account,
            **params,
        )
        # A damaged date counts: the cap errs on the side of sending less.
        # Before ``until``: a message stamped days ahead (the clock was fast when it went, and
        # has been put right) is not today's; one stamped within ``until`` still counts.
        times = (stored_time(r["submitting_at"]) or since for r in rows)
        return sum(1 for t in times if since <= t and (until is None or t < until))

    def open_subjects(self, recipient: str) -> frozenset[str]:
        """The subjects of threads to ``recipient`` that are still open (read-only): a new
        apology to the same address must not share one, or mail clients merge the threads."""
        waiting, params = _in("w", WAITING_THREAD)
        rows = self._rows(
            f"""SELECT subject FROM threads WHERE lower(recipient) = :r
               AND state IN {waiting}""",
            r=recipient.lower(),
            **params,
        )
        return frozenset(str(r["subject"]) for r in rows)

    def open_thread_subjects(self, account: str | None) -> list[tuple[int, str]]:
        """The id and subject of every open thread (a reply may still stop or hold it) sent
        from ``account`` (None: from any), oldest first (read-only): a message with no
        references that carries one of these subjects speaks of that apology."""
        states, params = _in("s", OPEN_THREAD)
        rows = self._rows(
            f"""SELECT id, subject FROM threads WHERE state IN {states}
               AND (CAST(:a AS TEXT) IS NULL OR account = :a) ORDER BY id""",
            a=account,
            **params,
        )
        return [(int(r["id"]), str(r["subject"])) for r in rows]

    def open_threads_by_account(self, other_than: Collection[str] = ()) -> dict[str, list[int]]:
        """Threads that still wait for something (a reply, a follow-up, a send to settle),
        by the account they were sent from; with ``other_than``, leaving out those accounts'
        (the configured ones): every pass asks, and the answer is then almost always empty."""
        states, params = _in("s", WAITING_THREAD)
        out: dict[str, list[int]] = {}
        with self.tx() as c:
            # The accounts one index seek at a time (there are a handful), not a scan.
            account = c.execute(text("SELECT MIN(account) FROM threads")).scalar()
            while account is not None:
                if account not in other_than:
                    ids = c.execute(
                        text(f"""SELECT id FROM threads WHERE account = :a
                                AND state IN {states} ORDER BY id"""),
                        {"a": account, **params},
                    ).scalars()
                    if found := [int(i) for i in ids]:
                        out[account] = found
                account = c.execute(
                    text("SELECT MIN(account) FROM threads WHERE account > :a"), {"a": account}
                ).scalar()
        return dict(sorted(out.items(), key=lambda kv: kv[1][0]))  # as the threads came

    def held_threads(self) -> list[ThreadRow]:
        """Threads held from their follow-ups until the user decides (``release`` or
        ``mark-replied``)."""
        rows = self._rows(
            "SELECT * FROM threads WHERE state = :held ORDER BY id", held=ThreadState.HELD
        )
        return self._decoded(rows, _thread)

    def claim_unfiled_copies(self, account: str) -> list[MessageRow]:
        """Take the messages of ``account`` recorded as sent whose Sent copy was never
        recorded as filed (the process was killed between the 250 and the APPEND, or the
        APPEND failed), to file them: marked ``filing: <this process>`` in one transaction,
        so two commands catching up at once never both append one copy. Rows another live
        process sent (it files them itself) or is filing are left alone."""
        me = owner_token()
        # Three ranges of the (state, sent_copy) index, not every sent message: a copy never
        # filed, one whose filing failed, one being filed.
        unfiled = """SELECT m.* FROM messages m JOIN threads t ON t.id = m.thread_id
                     WHERE t.account = :a AND m.id IN (
                     SELECT id FROM messages WHERE state = :s AND sent_copy IS NULL
                     UNION ALL SELECT id FROM messages WHERE state = :s
                     AND sent_copy >= 'failed:' AND sent_copy < 'failed;'
                     UNION ALL SELECT id FROM messages WHERE state = :s
                     AND sent_copy >= 'filing: ' AND sent_copy < 'filing:!')
                     ORDER BY m.id"""
        if not self._rows(unfiled, a=account, s=SENT):
            return []  # nearly every pass: one read, no writers' lock (see requeue_abandoned)
        with self.tx() as c:
            rows = c.execute(text(unfiled), {"a": account, "s": SENT}).mappings().all()
            mine = []
            leases = self._live_leases(c)
            for m in self._decoded(rows, _message):
                filer = (m.sent_copy or "").removeprefix("filing: ")
                if m.sent_copy and m.sent_copy.startswith("filing: "):
                    busy = filer != me and owner_alive(filer)
                else:
                    busy = m.owner not in (me, self._owner()) and owner_alive(m.owner, leases)
                if not busy:
                    mine.append(m)
            if mine:
                c.execute(
                    text("UPDATE messages SET sent_copy = :f WHERE id = :id"),
                    [{"f": f"filing: {me}", "id": m.id} for m in mine],
                )
        return mine

    def campaign_apologies(self, campaign: str) -> list[tuple[ThreadRow, MessageRow]]:
        """Each thread of a campaign with its apology, oldest first, in one read transaction
        (no write lock: ``campaign check`` reads it through :class:`StoreReader` too)."""
        with self.reading() as query:
            t_columns, t_rows = query(
                "SELECT * FROM threads WHERE campaign = :c ORDER BY id", c=campaign
            )
            m_columns, m_rows = query(
                """SELECT m.* FROM messages m JOIN threads t ON t.id = m.thread_id
                   WHERE t.campaign = :c AND m.kind = 'apology'""",
                c=campaign,
            )
        return self._paired(t_columns, t_rows, m_columns, m_rows)

    def apologies_by_id(self, ids: Collection[int]) -> list[tuple[ThreadRow, MessageRow]]:
        """These threads, each with its apology, oldest first (as campaign_apologies)."""
        out: list[tuple[ThreadRow, MessageRow]] = []
        for listed, params in _in_lists("i", set(ids)):
            with self.reading() as query:
                t_columns, t_rows = query(
                    f"SELECT * FROM threads WHERE id IN {listed} ORDER BY id", **params
                )
                m_columns, m_rows = query(
                    f"SELECT * FROM messages WHERE kind = 'apology' AND thread_id IN {listed}",
                    **params,
                )
            out += self._paired(t_columns, t_rows, m_columns, m_rows)
        return out

    def _paired(
        self, t_columns: list[str], t_rows: Any, m_columns: list[str], m_rows: Any
    ) -> list[tuple[ThreadRow, MessageRow]]:
        threads = (dict(zip(t_columns, r, strict=True)) for r in t_rows)
        by_id = {t.id: t for t in self._decoded(threads, _thread)}
        roots = (dict(zip(m_columns, r, strict=True)) for r in m_rows)
        apology = {m.thread_id: m for m in self._decoded(roots, _message)}
        return [(t, apology[tid]) for tid, t in by_id.items() if tid in apology]

    def campaign_messages(
        self, campaign: str, thread_ids: Collection[int]
    ) -> dict[int, list[MessageRow]]:
        """The messages of the campaign's threads ``thread_ids``, by thread, in one query
        (``campaign status`` asked once per thread). Without the raw message, which nothing
        shown needs: ``raw`` is empty. Only those threads' messages are decoded: a damaged
        message of an older thread of an entry stops nothing, as before."""
        columns = ", ".join(
            "x'' AS raw" if f.name == "raw" else f"m.{f.name}" for f in fields(MessageRow)
        )
        rows = self._rows(
            f"""SELECT {columns} FROM messages m JOIN threads t ON t.id = m.thread_id
                WHERE t.campaign = :c ORDER BY m.id""",
            c=campaign,
        )
        found: dict[int, list[MessageRow]] = {}
        for r in rows:
            if r["thread_id"] in thread_ids:
                found.setdefault(r["thread_id"], []).append(_message(r))
        return found

    def campaign_threads(self, campaign: str) -> list[ThreadRow]:
        rows = self._rows("SELECT * FROM threads WHERE campaign = :c ORDER BY id", c=campaign)
        return self._decoded(rows, _thread)

    def apologies_for(self, recipient: str, company: str) -> list[ThreadRow]:
        """Threads to this address about this company (any campaign or none), sent or live."""
        rows = self._rows(
            """SELECT * FROM threads WHERE lower(recipient) = :r AND state != :failed
               ORDER BY id""",
            r=recipient.lower(),
            failed=ThreadState.FAILED,
        )
        norm = " ".join(company.lower().split())
        return [
            t for t in self._decoded(rows, _thread) if " ".join(t.company.lower().split()) == norm
        ]

    def _decoded(self, rows: Any, decode: Callable[[Any], Any]) -> list[Any]:
        """Each row decoded; a damaged one is named in ``damaged`` and passed over, so one
        bad row does not stop the work on all the others."""
        out = []
        for r in rows:
            try:
                out.append(decode(r))
            except CorruptRowError as exc:
                if str(exc) not in self.damaged:
                    self.damaged.append(str(exc))
        return out

    def close(self) -> None:
        self.engine.dispose()
        self.fast_engine.dispose()

    def record_unreadable(
        self, folder: str, uidvalidity: int, uid: int, reason: str, now: datetime
    ) -> bool:
        """Remember a message the watcher could not read and passed over (True the first
        time)."""
        with self.tx(durable=False) as c:
            key = {"f": folder, "v": uidvalidity, "u": uid}
            if c.execute(
                text(
                    "SELECT 1 FROM unreadable WHERE folder = :f AND uidvalidity = :v AND uid = :u"
                ),
                key,
            ).first():
                return False
            c.execute(
                text("""INSERT INTO unreadable (folder, uidvalidity, uid, reason, at)
                        VALUES (:f, :v, :u, :r, :at)"""),
                {**key, "r": reason, "at": now.isoformat()},
            )
        return True

    def apology_keys(self) -> list[tuple[int, str, str, str | None, str]]:
        """(id, recipient, company, campaign, duplicate key) of every thread not failed,
        oldest first: what a campaign's checks index once instead of a query per entry."""
        with self.reading() as query:
            _, rows = query(
                "SELECT id, recipient, company, campaign, dedupe_key FROM threads "
                "WHERE state != :failed ORDER BY id",
                failed=str(ThreadState.FAILED),
            )
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    # --- reads for status: one read transaction each -----------------------------------

    @contextmanager
    def reading(self) -> Iterator[Callable[..., tuple[list[str], list[tuple[Any, ...]]]]]:
        """A read transaction; yields ``query(sql, **params) -> (columns, rows)``.

        A deferred BEGIN, not the BEGIN IMMEDIATE of :meth:`tx`: a read takes no write lock,
        so ``status`` neither waits for a sending process nor holds one up. In WAL mode every
        query in it reads one snapshot, so a listing never mixes two moments.
        """
        if self.engine.dialect.name != "sqlite":
            from sqlalchemy.exc import DBAPIError

            # One snapshot (REPEATABLE READ), read only, and without the writers' lock.
            try:
                with (
                    self.engine.connect().execution_options(
                        isolation_level="REPEATABLE READ", postgresql_readonly=True
                    ) as c,
                    c.begin(),
                ):

                    def query(sql: str, **params: Any) -> tuple[list[str], list[tuple[Any, ...]]]:
                        result = c.execute(text(sql), params)
                        return list(result.keys()), [tuple(r) for r in result]

                    yield query
            except DBAPIError as exc:
                raise StateError(_db_error(self.url, exc)) from exc
            return
        # The DB-API connection itself, with a deferred BEGIN (not the writers' lock).
        try:
            raw = self.engine.raw_connection()
        except sqlite3.Error as exc:
            raise StateError(_db_error(self.url, exc)) from exc
        try:
            with _snapshot(raw.cursor(), self.url) as query:
                yield query
        finally:
            raw.close()

    def thread_list(self) -> list[tuple[ThreadRow, list[MessageBrief] | None]]:
        """Every thread with what a listing shows of its messages (no raw message), in one
        query. A thread whose own row is damaged is left out; one with a damaged message is
        listed with None instead of its messages. Either is named in :attr:`damaged`."""
        with self.reading() as query:
            _, rows = query(
                f"""SELECT {", ".join(f"t.{c}" for c in _THREAD_FIELDS)},
                           {", ".join(f"m.{c}" for c in _BRIEF_COLUMNS)}
                    FROM threads t LEFT JOIN messages m ON m.thread_id = t.id
                    ORDER BY t.id, m.id"""
            )
        cut = len(_THREAD_FIELDS)
        listed: list[tuple[ThreadRow, list[MessageBrief] | None]] = []
        current: int | None = None
        messages: list[MessageBrief] | None = None
        for row in rows:
            if row[0] != current:  # the first row of the next thread (t.id comes first)
                current, messages = row[0], []
                thread = self._decoded([row[:cut]], _listed_thread)
                if thread:
                    listed.append((thread[0], messages))
                else:
                    messages = None  # its messages are not shown either
            if messages is None or row[cut] is None:  # a damaged thread, or no message yet
                continue
            try:
                messages.append(_listed_message(row[cut:]))
            except CorruptRowError as exc:
                if str(exc) not in self.damaged:
                    self.damaged.append(str(exc))
                listed[-1], messages = (listed[-1][0], None), None
        return listed

    def thread_summaries(self) -> list[tuple[ThreadSummary, list[MessageBrief] | None]]:
        """What the ``status`` table shows of every thread: the columns it prints, and of the
        messages only those its words depend on (any unsettled one, and a followed-up
        thread's follow-ups), each as :meth:`thread_list` gives them. Damage is found as
        there and named in the same words and order: a thread whose own row is damaged is
        left out, one with a damaged message comes with None. On SQLite the rows that may
        be damaged are found in the partial indexes and the table of
        :mod:`mailer.adapters.listing`, and only those are decoded in full, so 10k threads
        cost little more than one query."""
        if not self.url.startswith("sqlite"):
            return self._listed_summaries()
        try:
            with self.reading() as query:
                _, threads = query(listing.THREADS)
                _, suspect_threads = query(listing.SUSPECT_THREADS)
                _, unchecked = query(listing.UNCHECKED)
                _, unsettled = query(listing.UNSETTLED)
                _, follow_ups = query(listing.FOLLOW_UPS)
                _, suspect_messages = query(listing.SUSPECT_MESSAGES)
                # In id order, each once (a follow-up may be unsettled as well).
                needed = {row[1]: row for row in (*unsettled, *follow_ups)}
                briefs = [needed[mid] for mid in sorted(needed)]
                suspects = [mid for _, mid in suspect_messages]
                details: dict[int, dict[str, Any]] = {}
                doubted = {tid for (tid,) in suspect_threads} | {tid for (tid,) in unchecked}
                for row in threads:
                    d = None if row[0] in doubted else _dict_or_none(row[7])
                    if d is not None:
                        details[row[0]] = d
                    else:
                        doubted.add(row[0])
                found, damage = self._read_in_full(query, sorted(doubted))
                details.update(found)
                broken = self._broken_messages(query, suspects, details)
        except StateError as exc:
            # A store without revision 0009's indexes or table (dropped or changed by
            # hand): read every row, as on PostgreSQL.
            if not any(
                words in str(exc)
                for words in ("no such index", "no query solution", "no such table")
            ):
                raise
            return self._listed_summaries()
        # Named as thread_list names them: thread by thread, a thread's own row before its
        # messages, and only a thread's first damaged message.
        damage += [((tid, mid), words) for tid, (mid, words) in broken.items()]
        for _, words in sorted(damage):
            if words not in self.damaged:
                self.damaged.append(words)
        by_thread: dict[int, list[MessageBrief]] = {}
        for row in briefs:
            by_thread.setdefault(row[0], []).append(MessageBrief(*row[1:]))
        # tuple.__new__ as ThreadSummary._make does, without a call through Python a row.
        new = tuple.__new__
        return [
            (
                new(ThreadSummary, (*row[:7], detail)),
                None if row[0] in broken else by_thread.get(row[0], []),
            )
            for row in threads
            if (detail := details.get(row[0])) is not None  # else damaged, and named
        ]

    def _listed_summaries(self) -> list[tuple[ThreadSummary, list[MessageBrief] | None]]:
        return [(_summary_of(t), briefs) for t, briefs in self.thread_list()]

    def _read_in_full(
        self, query: Callable[..., Any], ids: list[int]
    ) -> tuple[dict[int, dict[str, Any]], list[tuple[tuple[int, int], str]]]:
        """The threads the SQL check doubted, decoded by _thread: the detail of each it
        reads, and the words of each it refuses (keyed to sort as thread_list names them)."""
        found, damage = {}, []
        for tid in ids:
            columns, rows = query("SELECT * FROM threads WHERE id = :id", id=tid)
            for r in rows:
                try:
                    found[tid] = _thread(dict(zip(columns, r, strict=True))).detail
                except CorruptRowError as exc:
                    damage.append(((tid, -1), str(exc)))
        return found, damage

    def _broken_messages(
        self, query: Callable[..., Any], ids: list[int], listed: Collection[int]
    ) -> dict[int, tuple[int, str]]:
        """Of the suspect messages (in id order) of the threads ``listed``, those
        _listed_message refuses: for each thread its first, and the words naming it."""
        broken: dict[int, tuple[int, str]] = {}
        for mid in ids:
            _, rows = query(
                f"SELECT thread_id, {', '.join(_BRIEF_COLUMNS)} FROM messages WHERE id = :id",
                id=mid,
            )
            for row in rows:
                if row[0] not in listed or row[0] in broken:
                    continue
                try:
                    _listed_message(row[1:])
                except CorruptRowError as exc:
                    broken[row[0]] = (mid, str(exc))
        return broken

    def thread_whole(
        self, thread_id: int, *, events: bool = False
    ) -> tuple[ThreadRow, list[MessageRow], list[dict[str, Any]]] | None:
        """One thread, its messages and (with ``events``) its decision log, in one read
        transaction that reads nothing of any other thread; None if there is no such
        thread. A damaged row raises CorruptRowError naming it."""
        with self.reading() as query:
            columns, rows = query("SELECT * FROM threads WHERE id = :id", id=thread_id)
            if not rows:
                return None
            m_columns, m_rows = query(
                "SELECT * FROM messages WHERE thread_id = :t ORDER BY id", t=thread_id
            )
            e_rows: list[tuple[Any, ...]] = []
            if events:
                _, e_rows = query(
                    "SELECT at, kind, detail FROM events WHERE thread_id = :t ORDER BY id",
                    t=thread_id,
                )
        return (
            _thread(dict(zip(columns, rows[0], strict=True))),
            [_message(dict(zip(m_columns, r, strict=True))) for r in m_rows],
            [{"at": at, "kind": kind, "detail": detail} for at, kind, detail in e_rows],
        )

    # --- leases (#17): several daemons on one store ----------------------------------------
    # A daemon works on an account only while it holds the account's lease. Expiry is judged
    # by the database's clock (seconds since 1970, see _DB_NOW), never a machine's, so the
    # machines' clocks need not agree. Every new acquisition gets the next epoch: the fencing
    # token that a daemon's claims and final-dot marks are conditional on (under_lease).

    lease: Lease | None = None  # the lease this store's claims are made under, if any

    def _db_now(self) -> str:
        return _DB_NOW[_dialect_of(self)]

    def acquire_lease(
        self, account: str, owner: str, seconds: float, *, dead_owner: str | None = None
    ) -> Lease | None:
        """Take ``account``'s lease for ``owner`` (a daemon id) if it is free or expired, with
        the next epoch; None if a live lease of another (or an earlier one of the same owner)
        holds it. One conditional upsert, checked by its row count. ``dead_owner``: a holder
        known to be dead (a daemon of this machine whose process is gone), whose unexpired
        lease is taken too, as long as it is still that one's."""
        now = self._db_now()
        with self.tx() as c:
            done = c.execute(
                text(f"""INSERT INTO leases
                        (account, owner, epoch, acquired_at, heartbeat_at, expires_at)
                        VALUES (:a, :o, 1, {now}, {now}, {now} + :s)
                        ON CONFLICT (account) DO UPDATE SET owner = excluded.owner,
                        epoch = leases.epoch + 1, acquired_at = excluded.acquired_at,
                        heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at
                        WHERE leases.expires_at <= excluded.acquired_at
                        OR leases.owner = :dead"""),
                {"a": account, "o": owner, "s": float(seconds), "dead": dead_owner},
            ).rowcount
            if done != 1:
                return None
            epoch = c.execute(
                text("SELECT epoch FROM leases WHERE account = :a AND owner = :o"),
                {"a": account, "o": owner},
            ).scalar_one()
        return Lease(account, owner, int(epoch), float(seconds))

    def renew_lease(self, lease: Lease) -> bool:
        """Push the lease's expiry on, if it is still ``lease``'s (same owner and epoch) and
        not expired: False means it is lost, and its holder must stop working on it."""
        now = self._db_now()
        with self.tx() as c:
            done = c.execute(
                text(f"""UPDATE leases SET heartbeat_at = {now}, expires_at = {now} + :s
                        WHERE account = :a AND owner = :o AND epoch = :e AND expires_at > {now}"""),
                {"a": lease.account, "o": lease.owner, "e": lease.epoch, "s": lease.seconds},
            ).rowcount
        return done == 1

    def release_lease(self, lease: Lease) -> bool:
        """Give the lease back (a clean shutdown): expired now, so another daemon takes the
        account at once rather than after the lease time. Its epoch stays, for the next."""
        now = self._db_now()
        with self.tx() as c:
            done = c.execute(
                text(f"""UPDATE leases SET expires_at = {now}, heartbeat_at = {now}
                        WHERE account = :a AND owner = :o AND epoch = :e AND expires_at > {now}"""),
                {"a": lease.account, "o": lease.owner, "e": lease.epoch},
            ).rowcount
        return done == 1

    def leases(self) -> list[LeaseRow]:
        """Every account's lease, held or not, by account; times by the database's clock."""
        now = _DB_NOW[_dialect_of(self)]
        with self.reading() as query:
            _, rows = query(
                f"""SELECT account, owner, epoch, acquired_at, heartbeat_at, expires_at, {now}
                    FROM leases ORDER BY account"""
            )
        return [
            LeaseRow(
                account=str(a),
                owner=str(o),
                epoch=int(e),
                acquired_at=_from_epoch(acq),
                heartbeat_at=_from_epoch(hb),
                expires_at=_from_epoch(exp),
                held=float(exp) > float(db_now),
            )
            for a, o, e, acq, hb, exp, db_now in rows
        ]

    @contextmanager
    def under_lease(self, lease: Lease) -> Iterator[None]:
        """Make this store's claims as ``lease``'s holder: the follow-ups and resends claimed
        and the final-dot marks written meanwhile are conditional on the lease still being
        held at its epoch, and the messages carry it in their owner token. For the daemon,
        one account at a time, and for ``check`` on a shared store (``send`` and campaigns
        take no lease)."""
        self.lease = lease
        try:
            yield
        finally:
            self.lease = None

    def _owner(self) -> str:
        """The owner token written on the messages this process claims now."""
        lease = self.lease
        if lease is None:
            return owner_token()
        return f"{owner_token()}|{lease.epoch}|{lease.account}"

    def _fence_sql(self) -> tuple[str, dict[str, Any]]:
        """The condition (``AND EXISTS ...``) that the current lease is still held at its
        epoch and unexpired, for a statement's WHERE; nothing without a lease."""
        lease = self.lease
        if lease is None:
            return "", {}
        return (
            f""" AND EXISTS (SELECT 1 FROM leases WHERE account = :fence_a
                AND owner = :fence_o AND epoch = :fence_e AND expires_at > {self._db_now()})""",
            {"fence_a": lease.account, "fence_o": lease.owner, "fence_e": lease.epoch},
        )

    def _check_lease(self, c: Any, thread_id: int) -> None:
        """Inside a claim's transaction: refuse unless the current lease (if any) is the
        thread's account's and still held at its epoch."""
        lease = self.lease
        if lease is None:
            return
        fence, params = self._fence_sql()
        found = c.execute(
            text(f"SELECT 1 FROM threads WHERE id = :t AND account = :fence_a{fence}"),
            {"t": thread_id, **params},
        ).first()
        if found is None:
            self._lease_lost(c)
            raise LeaseLostError(
                f"thread {thread_id} is not of {account_label_of(lease.account)}, "
                f"whose lease this daemon holds; it is not claimed here"
            )

    def _lease_lost(self, c: Any) -> None:
        """Raise LeaseLostError if the current lease is no longer held at its epoch."""
        lease = self.lease
        if lease is None:
            return
        fence, params = self._fence_sql()
        if c.execute(text(f"SELECT 1 WHERE 1 = 1{fence}"), params).first() is None:
            raise LeaseLostError(
                f"{account_label_of(lease.account)}: this daemon lost its lease (epoch "
                f"{lease.epoch}): it expired or another daemon took it; nothing more is "
                "claimed or sent on it"
            )

    def _live_leases(self, c: Any) -> _LiveLeases:
        return _LiveLeases(c, self._db_now())


class LeaseLostError(ClaimError):
    """A daemon's claim or final-dot mark refused: its lease expired or moved on."""


@dataclass(frozen=True)
class Lease:
    """A lease held: account, holder (a daemon id), epoch, and its length in seconds."""

    account: str
    owner: str
    epoch: int
    seconds: float


@dataclass(frozen=True)
class LeaseRow:
    account: str
    owner: str
    epoch: int
    acquired_at: datetime
    heartbeat_at: datetime
    expires_at: datetime
    held: bool  # unexpired, by the database's clock


class _LiveLeases(Mapping[str, str]):
    """account -> epoch (as text) of every unexpired lease, read in the caller's transaction
    the first time it is asked (most transactions never need it)."""

    def __init__(self, c: Any, now_sql: str) -> None:
        self._c = c
        self._now = now_sql
        self._found: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        if self._found is None:
            rows = self._c.execute(
                text(f"SELECT account, epoch FROM leases WHERE expires_at > {self._now}")
            ).all()
            self._found = {str(a): str(e) for a, e in rows}
        return self._found

    def __getitem__(self, key: str) -> str:
        return self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


# Now, in seconds since 1970, by the database's own clock, one value for a whole statement
# (as SQLite's 'now' is). statement_timestamp() and not now(): now() is when the transaction
# began, which may be long before it got the write lock.
_DB_NOW = {
    "postgresql": "extract(epoch from statement_timestamp())",
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
}


def _dialect_of(store: Any) -> str:
    engine = getattr(store, "engine", None)  # a StoreReader has none: it is SQLite
    return "postgresql" if engine is not None and engine.dialect.name == "postgresql" else "sqlite"


def _from_epoch(seconds: Any) -> datetime:
    return datetime.fromtimestamp(float(seconds), UTC)


def account_label_of(name: str) -> str:
    return f"account {name!r}" if name else "the main account"


def _shown(row: Any) -> str:
    """A message row's state as ``status`` words it (a dead process's submitting is in
    doubt past the final-dot mark, and queued again before it)."""
    alive = row["state"] != SUBMITTING or owner_alive(row["owner"])
    return describe_state(message_shown(row["state"], alive, bool(row["final_dot_at"])))


def _never_reached_server(row: Any) -> bool:
    """An apology whose process stopped before connecting, or before the final dot: nothing
    the server could accept left the machine (``row``: its state, owner and final_dot_at)."""
    return (row["state"] == QUEUED and not owner_alive(row["owner"])) or (
        abandoned_before_final_dot(row)
    )


def abandoned_before_final_dot(row: Any, leases: Mapping[str, str] | None = None) -> bool:
    """Submitting by a process that is gone, which never reached the final dot: the server
    cannot have accepted it, so it is safe to send again (``leases``: see owner_alive)."""
    return (
        row["state"] == SUBMITTING
        and not row["final_dot_at"]
        and not owner_alive(row["owner"], leases)
    )


class CorruptRowError(StateError):
    """A row whose stored JSON or date cannot be read (an edit by hand, a bad copy)."""


def _column(row: Any, table: str, column: str, kind: type) -> Any:
    """One stored JSON value, checked for its shape, or CorruptRowError naming the row."""
    try:
        value = json.loads(row[column])
    except (TypeError, ValueError, RecursionError):
        value = None
    if not isinstance(value, kind):
        raise CorruptRowError(
            f"{table[:-1]} {row['id']}: {column} is not valid stored data ({row[column]!r:.60})",
            hint="the other rows are fine; repair or delete this one with the sqlite3 tool",
        )
    return value


def _check_dates(row: Any, table: str, columns: tuple[str, ...]) -> None:
    for column in columns:
        value = row[column]
        try:
            if value is not None:
                datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise CorruptRowError(
                f"{table[:-1]} {row['id']}: {column} is not a date ({value!r:.60})",
                hint="the other rows are fine; repair or delete this one with the sqlite3 tool",
            ) from None


def _thread(r: Any) -> ThreadRow:
    d = dict(r)
    d["facts"] = _column(r, "threads", "facts", dict)
    d["detail"] = _column(r, "threads", "detail", dict)
    d["alt_addresses"] = tuple(_column(r, "threads", "alt_addresses", list))
    d["alt_domains"] = tuple(_column(r, "threads", "alt_domains", list))
    _check_dates(r, "threads", ("created_at", "interview_at", "follow_up_due", "sent_at"))
    d.pop("due_at", None)  # the index's copy of follow_up_due
    return ThreadRow(**d)


def _message(r: Any) -> MessageRow:
    d = dict(r)
    d["recipients"] = tuple(_column(r, "messages", "recipients", list))
    d["raw"] = bytes(d["raw"])
    _check_dates(
        r, "messages", ("created_at", "submitting_at", "sent_at", "failed_at", "final_dot_at")
    )
    return MessageRow(**d)


def stored_time(value: Any) -> datetime | None:
    """A stored date, or None where it is missing or damaged."""
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _indexed_thread(
    make: type[IndexedThread],
    tid: int,
    state: str,
    sent: Any,
    recipient: str,
    alt_addresses: Any,
    alt_domains: Any,
    company: Any,
    role: Any,
) -> IndexedThread:
    """A thread as the matcher sees it, from its row (the whole index's and a batch's).
    ``make`` is IndexedThread, imported by the caller (once, not once a row)."""
    return make(
        id=tid,
        recipient=recipient.lower(),
        alt_addresses=tuple(_list(alt_addresses)),
        alt_domains=tuple(_list(alt_domains)),
        sent_at=_sent_at(sent),
        state=state,
        # What a reply with no references may name to say which thread it answers.
        company=str(company or ""),
        role=str(role or ""),
    )


def _in_lists(prefix: str, values: Collection[Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``values`` as ``IN (...)`` lists of at most _IN_CHUNK parameters named ``prefix``N,
    each padded to a power of two (repeating a value changes nothing): a few shapes of
    statement, not one per count, and never past an old SQLite's 999 parameters."""
    ordered = sorted(values)
    for start in range(0, len(ordered), _IN_CHUNK):
        chunk = ordered[start : start + _IN_CHUNK]
        chunk += chunk[-1:] * ((1 << (len(chunk) - 1).bit_length()) - len(chunk))
        params = {f"{prefix}{i}": v for i, v in enumerate(chunk)}
        yield "(" + ", ".join(f":{k}" for k in params) + ")", params


def _sent_at(value: Any) -> datetime:
    # A damaged date must not hide a reply: any message may answer the thread. (Read for
    # every thread by the thread index: no call to stored_time for the usual value.)
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return _EPOCH


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _list(text: Any) -> list[str]:
    if text == "[]":  # the usual value: no parse (the thread index reads two a thread)
        return []
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def _detail(text: str | None) -> dict[str, Any]:
    """A thread's detail to add to: a damaged one is kept, as text, rather than lost or left
    to stop a reply from being recorded."""
    try:
        value = json.loads(text or "{}")
    except (TypeError, ValueError, RecursionError):
        value = None
    return value if isinstance(value, dict) else {"damaged_detail": str(text)[:2000]}


def _sqlite_engine(url: str, synchronous: str) -> Any:
    """SQLAlchemy's engine on a SQLite store: only to migrate an old store (Alembic needs
    SQLAlchemy). Its connections are directsql's (the same pragmas), and its BEGIN takes
    the writers' lock, as directsql.transaction does."""
    from sqlalchemy import create_engine, event

    from mailer.adapters import directsql

    path = url[len("sqlite:///") :]
    engine = create_engine(url, creator=directsql.Engine(path, synchronous).connect)

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


MEMORY_URL = "sqlite://"


def _create_sqlite_store(path: Path) -> None:
    """Make a new store whole, under another name, and only then put it in place: a file
    at ``path`` is always a complete store, so an empty one is never ours (see
    :func:`_check_sqlite_file`)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.new-{os.getpid()}")
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        leftover.unlink(missing_ok=True)
    os.close(os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
    try:
        Store(f"sqlite:///{tmp}", _new=True).close()
        # Everything into the main file before it is linked in place: the WAL stays behind.
        db = sqlite3.connect(tmp)
        try:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()
        try:
            os.link(tmp, path)  # never over a store another process made meanwhile
        except FileExistsError:
            pass
        except OSError:  # no hard links here (FAT, some network and shared folders)
            if not path.exists():
                os.replace(tmp, path)
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            leftover.unlink(missing_ok=True)


_SQLITE_MAGIC = b"SQLite format 3\x00"
# Rows next_due reads at a time, looking for the first whose due time can be read.
_NEXT_DUE_BATCH = 8


def _check_sqlite_file(path: Path) -> None:
    """An existing store file must look like a database: an empty or foreign file is a
    truncated store or a bad copy, and taking it for a new store would forget every apology
    already sent."""
    try:
        with path.open("rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise StateError(f"{path}: cannot read the state store: {exc.strerror}") from None
    # A store anyone may read (an older mailer's, made under a 022 umask) is made private: it
    # holds the user's applications. One shared on purpose, through its group only, is left
    # as it is. A chmod refused (another user's file, a read-only copy) stops nothing: a
    # command that must write says so when it tries.
    with suppress(OSError):
        if path.stat().st_mode & 0o007:
            path.chmod(0o600)
    hint = (
        "restore the store from a backup; to start a new, empty history on purpose "
        "(mailer will not know what it already sent), move this file away"
    )
    if not head:
        raise StateError(
            f"{path}: the state store is empty (0 bytes): it was truncated or badly copied",
            hint=hint,
        )
    if head != _SQLITE_MAGIC:
        raise StateError(f"{path}: this file is not a mailer state store", hint=hint)


def safe_url(url: str) -> str:
    """The URL without a password, for messages."""
    if url.startswith("sqlite:"):
        return url  # (a path: no password to hide, and no SQLAlchemy to import)
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "the state store"


@dataclass(frozen=True)
class MessageBrief:
    """What a listing shows of a message: its fate, never its bytes (see Store.thread_list)."""

    id: int
    kind: str
    state: str
    sent_at: str | None
    owner: str | None
    final_dot_at: str | None


class ThreadSummary(NamedTuple):
    """What the ``status`` table shows of a thread (see Store.thread_summaries)."""

    id: int
    recipient: str
    company: str
    situation: str
    sent_at: str | None
    state: str
    follow_up_due: str | None
    detail: dict[str, Any]


def _summary_of(t: ThreadRow) -> ThreadSummary:
    return ThreadSummary(
        t.id, t.recipient, t.company, t.situation, t.sent_at, t.state, t.follow_up_due, t.detail
    )


def _dict_or_none(text: Any) -> dict[str, Any] | None:
    if text == "{}":
        return {}
    try:
        value = _json_whole(text)
    except (TypeError, ValueError, RecursionError, StopIteration):  # (the scanner's "no value")
        return None
    return value if isinstance(value, dict) else None


# The columns of a listed thread, in ThreadRow's order; and what a listing reads of a message:
# its brief and every column _message checks, so a damaged message is named as everywhere.
_THREAD_FIELDS = tuple(f.name for f in fields(ThreadRow))
_BRIEF_COLUMNS = (
    "id",
    "kind",
    "state",
    "sent_at",
    "owner",
    "final_dot_at",
    "recipients",
    "created_at",
    "submitting_at",
    "failed_at",
)
_THREAD_JSON = tuple(
    (_THREAD_FIELDS.index(name), kind)
    for name, kind in (
        ("facts", dict),
        ("detail", dict),
        ("alt_addresses", list),
        ("alt_domains", list),
    )
)
_THREAD_DATES = tuple(
    _THREAD_FIELDS.index(name)
    for name in ("created_at", "interview_at", "follow_up_due", "sent_at")
)
_EMPTY_JSON = {"{}": dict, "[]": list}
# json.loads without its per-call wrapping (most of its cost on a short value): the same C
# scanner, given the whole text; the slow path judges anything it does not take whole.
_scan_json = json.JSONDecoder().scan_once


def _json_whole(text: str) -> Any:
    value, end = _scan_json(text, 0)
    if end != len(text):
        raise ValueError(text)
    return value


def _listed_thread(row: tuple[Any, ...]) -> ThreadRow:
    """:func:`_thread` of a row in ThreadRow's column order, the same result, quicker for the
    usual row (10k threads are 50k JSON values). Any doubt is settled by _thread itself, so
    a damaged row is refused in the same words."""
    try:
        values = list(row)
        for i, kind in _THREAD_JSON:
            text = values[i]
            value = kind() if _EMPTY_JSON.get(text) is kind else _json_whole(text)
            if type(value) is not kind:
                raise ValueError(text)
            values[i] = value if kind is dict else tuple(value)
        for i in _THREAD_DATES:
            if values[i] is not None:
                datetime.fromisoformat(values[i])
        return ThreadRow(*values)
    except Exception:  # _thread names what is wrong (or finds nothing is)
        return _thread(dict(zip(_THREAD_FIELDS, row, strict=True)))


def _listed_message(row: tuple[Any, ...]) -> MessageBrief:
    """A message's brief, its row checked as :func:`_message` checks it (and refused in the
    same words)."""
    try:
        if type(_json_whole(row[6])) is not list:
            raise ValueError(row[6])
        for value in row[3], row[5], row[7], row[8], row[9]:
            if value is not None:
                datetime.fromisoformat(value)
        return MessageBrief(*row[:6])
    except Exception:  # the checks of _message name what is wrong
        r = dict(zip(_BRIEF_COLUMNS, row, strict=True))
        _column(r, "messages", "recipients", list)
        _check_dates(
            r, "messages", ("created_at", "submitting_at", "sent_at", "failed_at", "final_dot_at")
        )
        return MessageBrief(*row[:6])


@contextmanager
def _snapshot(
    cur: Any, url: str
) -> Iterator[Callable[..., tuple[list[str], list[tuple[Any, ...]]]]]:
    """A deferred read transaction on a sqlite3 cursor (see :meth:`Store.reading`)."""

    def query(sql: str, **params: Any) -> tuple[list[str], list[tuple[Any, ...]]]:
        cur.execute(sql, params)
        return [d[0] for d in cur.description], cur.fetchall()

    try:
        cur.execute("BEGIN")
        try:
            yield query
        finally:
            cur.execute("ROLLBACK")  # nothing was written: this only ends the snapshot
    except sqlite3.Error as exc:
        raise StateError(f"{safe_url(url)}: {exc}") from exc


class StoreReader:
    """A SQLite store opened only to read it, through the standard library's sqlite3: no
    SQLAlchemy to import (most of what ``status`` cost before it read anything), no engine,
    no migration. :func:`open_to_read` gives one only for a store that needs nothing done to
    it; it reads as :class:`Store` does (the same methods, the same damaged-row handling)."""

    def __init__(self, url: str, db: sqlite3.Connection, store_id: str) -> None:
        self.url = url
        self.notices: list[str] = []
        self.damaged: list[str] = []
        self.named_now = False
        self.store_id = store_id
        self._db = db

    @contextmanager
    def reading(self) -> Iterator[Callable[..., tuple[list[str], list[tuple[Any, ...]]]]]:
        with _snapshot(self._db.cursor(), self.url) as query:
            yield query

    _decoded = Store._decoded
    thread_list = Store.thread_list
    thread_whole = Store.thread_whole
    campaign_apologies = Store.campaign_apologies
    apologies_by_id = Store.apologies_by_id
    _paired = Store._paired
    apology_keys = Store.apology_keys
    thread_summaries = Store.thread_summaries
    _read_in_full = Store._read_in_full
    _listed_summaries = Store._listed_summaries
    _broken_messages = Store._broken_messages
    leases = Store.leases

    def close(self) -> None:
        self._db.close()


def open_to_read(url: str, connect: dict[str, Any] | None = None) -> Store | StoreReader:
    """The store at ``url``, to read: a :class:`StoreReader` when it is a SQLite file already
    at this schema version; otherwise (another database, a store to create or to migrate, a
    file that is not a store) the full :class:`Store`, which does that and says so."""
    if not url.startswith("sqlite:///"):
        return Store(url, connect=connect)
    path = Path(url[len("sqlite:///") :])
    if not path.exists():
        return Store(url)
    _check_sqlite_file(path)
    try:
        db = sqlite3.connect(path, timeout=30, isolation_level=None)
    except sqlite3.Error:
        return Store(url)  # which says why, in its words
    try:
        db.execute("PRAGMA busy_timeout=30000")
        meta = dict(
            db.execute(
                "SELECT key, value FROM meta WHERE key IN ('schema_version', 'store_id')"
            ).fetchall()
        )
        # A store at version 5 from before Alembic is stamped by the full Store first.
        meta["revision"] = db.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    except (sqlite3.Error, TypeError):  # no meta table: not ours, or not a database at all
        meta = {}
    if (
        meta.get("schema_version") != str(SCHEMA_VERSION)
        or meta.get("revision") != ALEMBIC_HEAD
        or not meta.get("store_id")
    ):
        db.close()
        return Store(url)
    return StoreReader(url, db, meta["store_id"])


# --- PostgreSQL (#17) ----------------------------------------------------------------------

# The one advisory lock every write transaction on PostgreSQL takes right after BEGIN: it
# serialises them as BEGIN IMMEDIATE does on SQLite, so every read-then-write in this module
# (a claim, a guard against a duplicate) stays exactly-once. Any constant will do, as long as
# it is this one ("mailer" in ASCII).
PG_WRITE_LOCK = 0x6D61696C6572
# Taking that lock is the only wait in a transaction: lock-order deadlocks between two of
# ours cannot happen, and READ COMMITTED raises no serialization failure. Should the server
# still report one (40001, 40P01) at BEGIN, the transaction is tried again (Store.tx): no body
# has run yet. Store.run tries a whole transaction again, for work that is only SQL.
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})
TX_BEGIN_TRIES = 5
# A pooled connection idle longer than this (seconds) is pinged before use (_pg_engine).
PG_PING_IDLE = 10.0
# Seconds a write transaction may sit idle before the server ends its session (_pg_engine).
PG_IDLE_IN_TRANSACTION = 30.0
# The execution option of a read that is one statement, run without BEGIN (Store._rows):
# in autocommit on PostgreSQL (psycopg sends no BEGIN; Python's sqlite3 is in it already,
# and SQLAlchemy would switch SQLite's PRAGMA read_uncommitted to and fro), and without the
# writers' lock (the engines' begin hooks leave it out).
_ONE_READ = "mailer_one_read"
_ONE_READ_OPTIONS = {_ONE_READ: True, "isolation_level": "AUTOCOMMIT"}


def is_postgresql(url: str) -> bool:
    return url.startswith(("postgresql://", "postgresql+psycopg://", "postgres://"))


def driver_url(url: str) -> str:
    """The SQLAlchemy URL for a user's ``postgresql://`` URL: psycopg 3's driver."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


def _pg_engine(url: str, connect: dict[str, Any]) -> Any:
    from sqlalchemy import create_engine, event, exc

    engine = create_engine(
        driver_url(url),
        # No hstore column here: without this, the first connection asks the server for
        # hstore's type, a transaction of three round trips in every process's start.
        use_native_hstore=False,
        connect_args={"connect_timeout": 10, **connect},
    )

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if options.get("postgresql_readonly") or options.get(_ONE_READ):
            return  # a status snapshot or a single read: no writers' lock (Store.reading)
        # A process stopped inside a write transaction (SIGSTOP, a frozen VM) would hold the
        # writers' lock, and so stop every other daemon's writes, until it woke: the server
        # ends such a session instead. Set for this transaction only, in the lock's own round
        # trip (not as a connection option, which would replace the user's own ``options``
        # and which poolers such as PgBouncer refuse). No transaction of ours waits on
        # anything but SQL; a long copy lifts the limit (storecopy).
        conn.exec_driver_sql(
            "SELECT set_config('idle_in_transaction_session_timeout', %(t)s, true), "
            "pg_advisory_xact_lock(%(k)s)",
            {"t": str(int(PG_IDLE_IN_TRANSACTION * 1000)), "k": PG_WRITE_LOCK},
        )

    # A connection lost during SQLAlchemy's own COMMIT (a transaction with nothing left for
    # _commit_with) is said as _commit_with says it: the outcome is unknown (_db_error).
    @event.listens_for(engine, "begin")
    def _not_committing(conn: Any) -> None:
        conn.info.pop(_COMMITTING, None)

    @event.listens_for(engine, "commit")
    def _committing(conn: Any) -> None:
        conn.info[_COMMITTING] = True

    @event.listens_for(engine, "handle_error")
    def _lost_in_commit(context: Any) -> None:
        conn, error = context.connection, context.sqlalchemy_exception
        if conn is None or error is None or not conn.info.pop(_COMMITTING, False):
            return
        if context.is_disconnect and context.statement is None:
            error.statement = _COMMIT

    # A connection the server dropped (a restart, a failover) must not fail a claim. Every
    # transaction's first round trip (psycopg's BEGIN, before the lock above; or a single
    # read) is safe to send again
    # on a new connection (Store.tx, Store._rows), so a ping is sent only for a connection
    # that sat idle in the pool long enough for a server or a firewall to have dropped it:
    # a ping on every checkout was a round trip in each of a follow-up's ~11 transactions.
    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("idle_since", time.monotonic()) < PG_PING_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi)  # SQLAlchemy's own, outside any transaction
        except Exception as e:
            raise exc.DisconnectionError(str(e)) from e  # the pool makes a new connection

    return engine


# Where a PostgreSQL write transaction keeps, until its commit, the statements whose answer
# it does not wait for: the events it logs, the follow-ups it cancels.
_LATER = "mailer_later"


def _commit_with(conn: Any, later: list[tuple[str, tuple[Any, ...]]]) -> None:
    """Send a transaction's last statements and its COMMIT in one round trip (psycopg's
    pipeline mode), in the order they were made: they return nothing the transaction
    waits for, so they need not cost a round trip each. Any error rolls the whole
    transaction back, as it would have."""
    import psycopg
    from sqlalchemy.exc import DBAPIError

    raw = conn.connection.driver_connection
    try:
        with raw.pipeline(), raw.cursor() as cur:
            for sql, params in later:
                cur.execute(sql, params)
            raw.commit()
    except psycopg.Error as exc:
        lost = raw.closed
        if lost:
            # The connection went with the COMMIT in flight: the rollback that leaving the
            # transaction would send next could only fail ("the connection is lost") and
            # hide this error; invalidated, the connection is dropped instead.
            conn.invalidate(exc)
        # Said as SQLAlchemy's own errors are (Store.tx, _db_error): one line, host and port.
        raise DBAPIError.instance(
            _COMMIT, None, exc, psycopg.Error, connection_invalidated=lost
        ) from exc


# Set on a pooled connection from SQLAlchemy's COMMIT to the next BEGIN (_pg_engine).
_COMMITTING = "mailer_committing"
# The statement named by a failed COMMIT's error (_commit_with, _pg_engine): with a lost
# connection, _db_error says the COMMIT's outcome is unknown.
_COMMIT = "COMMIT"


@contextmanager
def _entered(manager: Any) -> Iterator[None]:
    """Leave a context manager that was entered by hand (see Store.tx), as ``with`` would."""
    try:
        yield
    except BaseException as exc:
        if not manager.__exit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        manager.__exit__(None, None, None)


# What the read of the schema's version raises on a store that is not (yet) at this mailer's
# schema: a table missing (PostgreSQL's undefined_table), or more than one Alembic revision
# (cardinality_violation). SQLite says the first as "no such table" and never the second.
_SCHEMA_SQLSTATES = frozenset({"42P01", "21000"})


def _table_names(c: Any) -> set[str]:
    """The tables in the database ``c`` is connected to."""
    if c.dialect.name == "sqlite":
        # (Without SQLite's own: sqlite_sequence, sqlite_stat1.)
        rows = c.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        )
        return {r[0] for r in rows}
    from sqlalchemy import inspect

    return set(inspect(c).get_table_names())


def _schema_unlike_ours(exc: BaseException | None) -> bool:
    """Whether ``exc`` (from Store._schema_current's read) says the schema differs, which
    the locked way sorts out, rather than that the database could not be asked at all."""
    orig = getattr(exc, "orig", exc)  # (SQLite's own, straight from sqlite3: see directsql)
    if isinstance(orig, sqlite3.OperationalError):
        return str(orig).startswith("no such table")
    return getattr(orig, "sqlstate", None) in _SCHEMA_SQLSTATES


def _retryable(exc: Any) -> bool:
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in _RETRY_SQLSTATES


def _known(revision: str) -> bool:
    from mailer.adapters import migrate

    return migrate.known(revision)


def _one_line(exc: BaseException) -> str:
    """The driver's own words, first line only: SQLAlchemy's text adds the SQL and a link."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def _db_error(url: str, exc: Any) -> str:
    """One line for a database error. A lost PostgreSQL connection names host and port."""
    if (
        is_postgresql(url)
        and getattr(exc, "statement", None) == _COMMIT
        and getattr(exc, "connection_invalidated", False)
    ):
        # The COMMIT was sent, or was being sent: the server may have committed or not.
        return (
            f"{_host_port(url)}: the connection to the state store was lost during COMMIT; "
            "whether it committed is unknown"
        )
    orig = getattr(exc, "orig", None)
    if is_postgresql(url) and (
        getattr(exc, "connection_invalidated", False)
        # The connection's own errors only: psycopg's subclasses of OperationalError also
        # stand for a serialization failure, a deadlock, a full disk (not a lost server).
        or type(orig).__name__ in ("OperationalError", "InterfaceError", "ConnectionTimeout")
        # Connection exceptions (08), and a server shutting down or starting up (57P0x).
        or str(getattr(orig, "sqlstate", None) or "").startswith(("08", "57P0"))
    ):
        where = _host_port(url)
        return f"{where}: the connection to the state store failed: {_one_line(exc)}"
    said = _one_line(exc)
    if url.startswith("sqlite") and (
        "unable to open database file" in said or "readonly database" in said
    ):
        # A read-only folder or file (a copy on a share, another user's store): say what
        # SQLite needs, which its words do not.
        said += (
            " (if the file or its folder is read-only: mailer must be able to write both, "
            "since SQLite keeps its -wal and -shm files beside the file)"
        )
    return f"{safe_url(url)}: {said}"


def _host_port(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        u = make_url(driver_url(url))
    except Exception:
        return "the state store"
    return f"{u.host or 'localhost'}:{u.port or 5432}"
