"""The state store's tables as SQLAlchemy MetaData: schema version 5, the Alembic baseline.

The same tables on SQLite and PostgreSQL. What differs is spelled here once: ids are SQLite's
``INTEGER PRIMARY KEY AUTOINCREMENT`` (the rowid, never reused) and PostgreSQL identity
columns; ``raw`` is a BLOB or BYTEA; IMAP UIDs and UIDVALIDITY (unsigned 32-bit) are BIGINT on
PostgreSQL. Text compares byte by byte on both (``COLLATE "C"`` on PostgreSQL, SQLite's
BINARY): the store's range scans (``sent_copy >= 'failed:' AND < 'failed;'``, ``due_at``
ranges) rely on that order, which a locale's collation would change.

Column order is the order the hand-rolled migrations left an old store in, so that a store
made new and one migrated from version 1 read alike (``SELECT *``).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects import postgresql

metadata = MetaData()

TEXT = Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
# On SQLite the id must be spelled INTEGER to be the rowid (BIGINT would not be).
ID = BigInteger().with_variant(Integer(), "sqlite")
BIG = BigInteger().with_variant(Integer(), "sqlite")


def _id() -> Column[int]:
    return Column("id", ID, Identity(), primary_key=True)


def _text(name: str, nullable: bool = False, default: str | None = None) -> Column[str]:
    return Column(
        name,
        TEXT,
        nullable=nullable,
        server_default=None if default is None else default,
    )


meta = Table(
    "meta",
    metadata,
    Column("key", TEXT, primary_key=True),
    _text("value"),
)

threads = Table(
    "threads",
    metadata,
    _id(),
    _text("created_at"),
    _text("recipient"),
    _text("recipient_name"),
    _text("company"),
    _text("role"),
    _text("situation"),
    _text("interview_at"),
    _text("dedupe_key"),
    _text("facts"),
    _text("subject"),
    _text("root_message_id"),
    _text("state"),
    _text("follow_up_wait"),
    _text("follow_up_due", nullable=True),
    Column("follow_ups_sent", Integer, nullable=False, server_default=text("0")),
    Column("max_follow_ups", Integer, nullable=False),
    _text("campaign", nullable=True),
    _text("entry_key", nullable=True),
    _text("recipient_tz", default=""),
    _text("alt_addresses", default="[]"),
    _text("alt_domains", default="[]"),
    _text("sent_at", nullable=True),
    _text("detail", default="{}"),
    _text("account", default=""),
    _text("due_at", nullable=True),
    Index("threads_dedupe", "dedupe_key"),
    Index("threads_entry", "campaign", "entry_key"),
    Index("threads_due", "state", "due_at"),
    Index("threads_account", "account", "state"),
    sqlite_autoincrement=True,
)

messages = Table(
    "messages",
    metadata,
    _id(),
    Column("thread_id", ID, ForeignKey("threads.id"), nullable=False),
    _text("kind"),
    Column("message_id", TEXT, nullable=False, unique=True),
    _text("state"),
    Column("raw", LargeBinary, nullable=False),
    _text("envelope_from"),
    _text("recipients"),
    _text("created_at"),
    _text("submitting_at", nullable=True),
    _text("sent_at", nullable=True),
    _text("failed_at", nullable=True),
    _text("error", nullable=True),
    _text("smtp_reply", nullable=True),
    _text("sent_copy", nullable=True),
    _text("owner", nullable=True),
    _text("final_dot_at", nullable=True),
    Index("messages_thread", "thread_id"),
    Index("messages_state", "state", "sent_copy"),
    Index("messages_ours", "message_id", "thread_id"),
    sqlite_autoincrement=True,
)

events = Table(
    "events",
    metadata,
    _id(),
    Column("thread_id", ID, ForeignKey("threads.id"), nullable=False),
    _text("at"),
    _text("kind"),
    _text("detail"),
    sqlite_autoincrement=True,
)

# Where the watcher stopped in each folder (reset when UIDVALIDITY changes).
folders = Table(
    "folders",
    metadata,
    Column("folder", TEXT, primary_key=True),
    Column("uidvalidity", BIG, nullable=False),
    Column("last_uid", BIG, nullable=False),
)

# Every incoming message that was matched to a thread, so none is acted on twice.
incoming = Table(
    "incoming",
    metadata,
    _id(),
    _text("folder"),
    Column("uidvalidity", BIG, nullable=False),
    Column("uid", BIG, nullable=False),
    Column("thread_id", ID, ForeignKey("threads.id"), nullable=False),
    _text("message_id", nullable=True),
    _text("sender"),
    _text("subject"),
    _text("verdict"),
    _text("at"),
    UniqueConstraint("folder", "uidvalidity", "uid"),
    sqlite_autoincrement=True,
)

# Revision 0008 (#14): the incoming messages by Message-ID and by thread, for the last look
# before a follow-up. Not Index objects on the table: the baseline revision makes every table
# of ``metadata`` as it shipped, and these come after it, as the leases do.
INCOMING_INDEXES: dict[str, tuple[str, ...]] = {
    "incoming_message": ("message_id",),
    "incoming_thread": ("thread_id",),
}

# Messages the watcher could not read and passed over.
unreadable = Table(
    "unreadable",
    metadata,
    _text("folder"),
    Column("uidvalidity", BIG, nullable=False),
    Column("uid", BIG, nullable=False),
    _text("reason"),
    _text("at"),
    PrimaryKeyConstraint("folder", "uidvalidity", "uid"),
)

# In the order a copy must fill them: a table after the tables it refers to.
TABLES = ("meta", "threads", "messages", "events", "folders", "incoming", "unreadable")

# --- revision 0006: leases (#17) -------------------------------------------------------------
# Apart from ``metadata``: the baseline revision makes every table of that one, and a new store
# gets this one from revision 0006, as an old store does.
lease_metadata = MetaData()

# One row per account: which daemon may work on it, under which epoch (the fencing token, +1 on
# every new acquisition), until when. Times are seconds since 1970 by the DATABASE's clock (see
# mailer.adapters.store.Store.acquire_lease), never a machine's: daemons on several machines
# compare them with one clock.
FLOAT = Float().with_variant(postgresql.DOUBLE_PRECISION(), "postgresql")
leases = Table(
    "leases",
    lease_metadata,
    Column("account", TEXT, primary_key=True),
    _text("owner"),
    Column("epoch", BigInteger().with_variant(Integer(), "sqlite"), nullable=False),
    Column("acquired_at", FLOAT, nullable=False),
    Column("heartbeat_at", FLOAT, nullable=False),
    Column("expires_at", FLOAT, nullable=False),
)
