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
from typing import Any

import sqlalchemy as sa
from alembic import op

from mailer.model.keys import company_dedupe_key, dedupe_key

revision = "0007_dedupe_keys"
down_revision = "0006_leases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _rewrite(lambda r, when: dedupe_key(r.recipient, when, r.account or ""))


def downgrade() -> None:
    # The company is in its own column: the old keys can be written again.
    _rewrite(lambda r, when: company_dedupe_key(r.recipient, r.company, when, r.account or ""))


def _rewrite(key_of: Any) -> None:
    """Every thread's key written again by ``key_of(row, interview instant)``, in one
    executemany (a PostgreSQL store is not a round trip per thread). A row whose interview
    time cannot be read keeps the key it has: it still guards it."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT id, recipient, company, interview_at, account FROM threads ORDER BY id")
    ).all()
    keys = []
    for r in rows:
        try:
            when = datetime.fromisoformat(r.interview_at)
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            keys.append({"k": key_of(r, when), "t": r.id})
        except (TypeError, ValueError, OverflowError):
            continue
    if keys:
        bind.execute(sa.text("UPDATE threads SET dedupe_key = :k WHERE id = :t"), keys)
