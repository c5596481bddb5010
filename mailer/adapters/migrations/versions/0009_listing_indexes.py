"""Two partial indexes for the ``status`` table (#14: ``status`` is one query): the threads
and the messages it must read in full, judged by SQLite once as each row is written instead
of on every listing; and a table, kept by two triggers, of the threads whose facts were
written by someone other than mailer. See :mod:`mailer.adapters.listing`. SQLite only:
PostgreSQL's listing reads every row, as before.

Revision ID: 0009_listing_indexes
Revises: 0008_incoming_indexes
"""

from __future__ import annotations

from alembic import op

from mailer.adapters import listing

revision = "0009_listing_indexes"
down_revision = "0008_incoming_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        # Over indexes it may already have, as 0008: a store whose alembic_version was lost
        # is brought up from the baseline.
        listing.create_objects(bind)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in listing.DROPS:
            op.execute(statement)
