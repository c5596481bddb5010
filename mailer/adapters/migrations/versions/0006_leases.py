"""Leases: which daemon works on which account, with an epoch that fences a stalled one (#17).

Revision ID: 0006_leases
Revises: 0005_baseline
"""

from __future__ import annotations

from alembic import op

from mailer.adapters import schema

revision = "0006_leases"
down_revision = "0005_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # checkfirst: a store whose alembic_version was lost is stamped at the baseline and
    # brought up from there, over tables it may already have.
    schema.leases.create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    schema.leases.drop(op.get_bind())
