"""Baseline: the state store at schema version 5, the last hand-rolled one.

A new store (SQLite or PostgreSQL) is made by this revision. An existing SQLite store is
first brought to version 5 by the hand-rolled steps in mailer.adapters.store and then stamped
with this revision, so it is never run on a store that has tables already.

Revision ID: 0005_baseline
Revises:
"""

from __future__ import annotations

import uuid

from alembic import op

from mailer.adapters import schema

revision = "0005_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    schema.metadata.create_all(bind)
    bind.execute(
        schema.meta.insert(),
        [
            # Kept for the readers that check it without Alembic (open_to_read) and for a
            # mailer of before the baseline, which then refuses nothing it understands.
            {"key": "schema_version", "value": "5"},
            # A name for this store, so a workspace can tell it from a new, empty one.
            {"key": "store_id", "value": uuid.uuid4().hex},
        ],
    )


def downgrade() -> None:
    raise NotImplementedError("the baseline is where a store starts: there is nothing below it")
