"""Copying one state store into another: a SQLite store to PostgreSQL (#17).

The copy moves a SQLite store to PostgreSQL: every table, ids and all, in one transaction on
the target, with the source held by its own write transaction meanwhile (nothing can be sent
or recorded half-way). The row counts of every table are compared inside that transaction, so
a copy that does not add up is rolled back, not left half there. ``meta`` goes too: the copy
keeps the store's id, and a workspace pointed at it knows it for the same history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailer.adapters.store import ALEMBIC_HEAD, SCHEMA_VERSION, Store, safe_url
from mailer.errors import StateError

BATCH = 500  # rows per INSERT: raw messages are a few kB each


def current() -> str:
    return f"schema {SCHEMA_VERSION}, Alembic revision {ALEMBIC_HEAD}"


@dataclass(frozen=True)
class Copied:
    """What a copy moved: each table and its row count, the same on both sides."""

    counts: tuple[tuple[str, int], ...]


def copy(source: Store, target_url: str, connect: dict[str, Any] | None = None) -> Copied:
    """Copy every table of ``source`` into the empty store at ``target_url`` (made there if
    the database is empty), then check each table's row count against the source's."""
    from sqlalchemy import func, select, text

    from mailer.adapters import schema

    if safe_url(target_url) == safe_url(source.url):
        raise StateError(f"{safe_url(target_url)}: the target is the configured store itself")
    target = Store(target_url, connect=connect)
    try:
        with source.tx() as src:  # the source's write lock: nobody changes it meanwhile
            _no_idle_limit(src)

            def work(dst: Any) -> list[tuple[str, int]]:
                _no_idle_limit(dst)
                _refuse_non_empty(target, dst)
                dst.execute(schema.meta.delete())  # the new store's own id: the copy keeps ours
                counts = []
                for name in schema.TABLES:
                    table = schema.metadata.tables[name]
                    columns = [c.name for c in table.columns]
                    rows = src.execute(text(f"SELECT {', '.join(columns)} FROM {name} ORDER BY 1"))
                    copied = 0
                    while batch := rows.fetchmany(BATCH):
                        dst.execute(
                            table.insert(), [dict(zip(columns, r, strict=True)) for r in batch]
                        )
                        copied += len(batch)
                    have = dst.execute(select(func.count()).select_from(table)).scalar_one()
                    want = src.execute(text(f"SELECT COUNT(*) FROM {name}")).scalar_one()
                    if not have == want == copied:
                        raise StateError(
                            f"{safe_url(target_url)}: table {name}: {have} rows copied of "
                            f"{want}; nothing was kept"
                        )
                    counts.append((name, int(have)))
                _reset_ids(target, dst)
                if dst.dialect.name == "sqlite":  # each copied thread was noted as unchecked
                    from mailer.adapters import listing

                    listing.judge_facts(dst)
                return counts

            counts = target.run(work)
    finally:
        target.close()
    return Copied(tuple(counts))


def _no_idle_limit(c: Any) -> None:
    """A copy's two transactions wait on each other (one reads while the other writes a
    batch): on PostgreSQL neither may be ended as idle, as a stalled write would be."""
    if c.dialect.name == "postgresql":
        c.exec_driver_sql("SET LOCAL idle_in_transaction_session_timeout = 0")


def _refuse_non_empty(target: Store, c: Any) -> None:
    from sqlalchemy import text

    from mailer.adapters import schema

    for name in schema.TABLES:
        if name != "meta" and c.execute(text(f"SELECT 1 FROM {name} LIMIT 1")).first():
            raise StateError(
                f"{safe_url(target.url)}: the target store is not empty (table {name} has "
                "rows); copy only into a new, empty database",
                hint="create an empty database for it (createdb), or drop this one's tables",
            )


def _reset_ids(target: Store, c: Any) -> None:
    """On PostgreSQL an identity column does not follow ids inserted by hand: move each one
    past the highest id copied, so the next row gets a new one."""
    from sqlalchemy import text

    if target.engine.dialect.name != "postgresql":
        return  # SQLite's AUTOINCREMENT follows the ids inserted
    for name in ("threads", "messages", "events", "incoming"):
        c.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {name}), 0) + 1, false)"
            )
        )
