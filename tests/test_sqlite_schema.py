"""A new SQLite store is made from SQL text (mailer.adapters.sqlite_schema), so that making
one imports no SQLAlchemy. The text must stay what the schema's MetaData compiles to:
tests/test_store_migrations.py compares the store made with one Alembic makes, and this
compares the text with the MetaData, statement by statement."""

from __future__ import annotations

from sqlalchemy import Index, MetaData
from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from mailer.adapters import schema, sqlite_schema


def test_the_new_store_sql_is_what_the_metadata_compiles_to_on_sqlite() -> None:
    dialect = sqlite.dialect()
    compiled = []
    for metadata in (schema.metadata, schema.lease_metadata):
        for table in metadata.sorted_tables:
            compiled.append(str(CreateTable(table).compile(dialect=dialect)).strip())
            for index in sorted(table.indexes, key=lambda i: str(i.name)):
                compiled.append(str(CreateIndex(index).compile(dialect=dialect)).strip())
    # Revision 0008's indexes, made on a copy of the table (an Index made on the table itself
    # would join it, and the baseline's create_all would make it too).
    incoming = schema.incoming.to_metadata(MetaData())
    for name, columns in schema.INCOMING_INDEXES.items():
        index = Index(name, *(incoming.c[c] for c in columns))
        compiled.append(str(CreateIndex(index).compile(dialect=dialect)).strip())
    ours = [s for s in sqlite_schema.STATEMENTS if "alembic_version" not in s]
    assert ours == compiled
    assert len(compiled) > 10


def test_a_new_store_has_meta_rows_the_baseline_revision_writes() -> None:
    rows = sqlite_schema.first_meta_rows()
    assert [r["key"] for r in rows] == ["schema_version", "store_id"]
    assert rows[0]["value"] == "5" and len(rows[1]["value"]) == 32
    assert rows[1]["value"] != sqlite_schema.first_meta_rows()[1]["value"]
