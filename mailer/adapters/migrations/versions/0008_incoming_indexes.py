"""The incoming messages by Message-ID and by thread: the last look before a follow-up asks
both of every due thread, and without an index each question read the whole table, which
holds every reply, auto-reply and bounce of the store's life (#14: a pass costs what is new
and due, not the history).

Revision ID: 0008_incoming_indexes
Revises: 0007_dedupe_keys
"""

from __future__ import annotations

from alembic import op

from mailer.adapters import schema

revision = "0008_incoming_indexes"
down_revision = "0007_dedupe_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # if_not_exists: a store whose alembic_version was lost is stamped at the baseline and
    # brought up from there, over indexes it may already have.
    for name, columns in schema.INCOMING_INDEXES.items():
        op.create_index(name, "incoming", list(columns), if_not_exists=True)


def downgrade() -> None:
    for name in schema.INCOMING_INDEXES:
        op.drop_index(name, table_name="incoming", if_exists=True)
