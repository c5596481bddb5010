"""The keys that make a send happen once: one per apology (recipient, interview time,
account) and one per campaign entry. Pure: the store and the campaign loader share them."""

from __future__ import annotations

import re
from datetime import UTC, datetime


def derive_key(to: str, company: str, interview: datetime, account: str = "") -> str:
    """Only the address, the company and the interview time (and the account, when it is
    not the main one: two candidates may miss the same panel): fixing a typo in a note must
    not turn an entry that was sent into a new one."""
    return _entry_key(to, company, interview.astimezone(UTC), "Z", account)


def legacy_derive_key(to: str, company: str, interview: datetime, account: str = "") -> str:
    """The key mailer up to 0.1 derived, in the interview's own zone (so the same instant in
    two zones made two keys); kept only so the store migration can recognise it."""
    return _entry_key(to, company, interview, "", account)


def company_dedupe_key(recipient: str, company: str, when: datetime, account: str = "") -> str:
    """The duplicate key up to revision 0007, with the company (which let a company spelt
    another way through); kept only for the store's migrations, in both directions."""
    parts = (recipient.lower(), " ".join(company.lower().split()), when.astimezone(UTC).isoformat())
    key = "|".join(parts)
    return f"{key}|{account}" if account else key


def _entry_key(to: str, company: str, when: datetime, suffix: str, account: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", company.lower()).strip("-") or "company"
    key = f"{to.lower()}/{slug}/{when:%Y-%m-%dT%H:%M}{suffix}"
    return f"{key}/{account}" if account else key


def dedupe_key(recipient: str, interview_at: datetime, account: str = "") -> str:
    """One apology per interview: the recipient and the time, and the account when it is not
    the main one (two candidates a coach helps may miss the same panel).

    Not the company: its spelling varies ("Acme", "ACME Inc.", a name corrected in a campaign
    file), and each spelling made a new key, so a second apology went to the same person
    for the same interview. One recipient holds one interview with the candidate at a time.

    The time is the instant in UTC: 09:00 UTC and 10:00 Europe/Berlin are one interview,
    whatever zone the sender or a campaign entry wrote it in.
    """
    key = f"{recipient.lower()}|{interview_at.astimezone(UTC).isoformat()}"
    return f"{key}|{account}" if account else key
