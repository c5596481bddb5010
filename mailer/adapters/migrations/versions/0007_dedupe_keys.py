"""Duplicate keys without the company: the recipient, the interview's instant in UTC and the
account (mailer.model.keys.dedupe_key). A company spelt another way ("Acme", "Acme Ltd.")
made a new key, and a second apology went to the same person for the same interview.

Every thread's key is written again from its own columns. Apologies that already went twice
that way now share a key: both are kept, and the guard refuses a third.

Revision ID: 0007_dedupe_keys
Revises: 0006_leases
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from mailer.model.keys import dedupe_key

revision = "0007_dedupe_keys"
down_revision = "0006_leases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT id, recipient, interview_at, account FROM threads ORDER BY id")
    ).all()
    keys = []
    for tid, recipient, interview_at, account in rows:
        try:
            when = datetime.fromisoformat(interview_at)
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            keys.append({"k": dedupe_key(recipient, when, account or ""), "t": tid})
        except (TypeError, ValueError, OverflowError):
            continue  # not a date we can read: its old key still guards it
    if keys:  # (one executemany: a PostgreSQL store is not 10,000 round trips)
        bind.execute(sa.text("UPDATE threads SET dedupe_key = :k WHERE id = :t"), keys)


def downgrade() -> None:
    # The company is in its own column: the old keys can be written again.
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT id, recipient, company, interview_at, account FROM threads")
    ).all()
    for tid, recipient, company, interview_at, account in rows:
        try:
            when = datetime.fromisoformat(interview_at)
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
        except (TypeError, ValueError):
            continue
        old = (
            recipient.lower(),
            " ".join(company.lower().split()),
            when.astimezone(UTC).isoformat(),
        )
        key = "|".join(old)
        key = f"{key}|{account}" if account else key
        bind.execute(
            sa.text("UPDATE threads SET dedupe_key = :k WHERE id = :t"), {"k": key, "t": tid}
        )
