"""The CLI's side of leases (#17): ``status --daemons`` and ``check``'s refusal."""

from __future__ import annotations

import json
from datetime import datetime, tzinfo
from typing import Any

import click

from mailer.adapters.config import account_label
from mailer.adapters.lock import LockedError


def _when(at: datetime, tz: tzinfo) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def show_leases(rows: list[Any], tz: tzinfo, as_json: bool) -> None:
    """Who holds which account since when, its epoch and when it expires (the database's
    clock; shown in the user's zone)."""
    if as_json:
        click.echo(
            json.dumps(
                {
                    "leases": [
                        {
                            "account": r.account,
                            "daemon": r.owner,
                            "epoch": r.epoch,
                            "held": r.held,
                            "since": r.acquired_at.isoformat(),
                            "heartbeat": r.heartbeat_at.isoformat(),
                            "expires": r.expires_at.isoformat(),
                        }
                        for r in rows
                    ]
                },
                indent=2,
            )
        )
        return
    if not rows:
        click.echo("No daemon has held a lease on this store.")
        return
    table = [("ACCOUNT", "DAEMON", "EPOCH", "SINCE", "EXPIRES", "")]
    for r in rows:
        table.append(
            (
                r.account or "(main)",
                r.owner,
                str(r.epoch),
                _when(r.acquired_at, tz),
                _when(r.expires_at, tz),
                "held" if r.held else "expired",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def refuse_leased(settings: Any, store: Any) -> None:
    """``check`` does a daemon's work: refuse it for accounts a live daemon's lease holds,
    naming the account, the daemon and since when."""
    held = [r for r in store.leases() if r.held and r.account in settings.account_names]
    if not held:
        return
    first = held[0]
    more = f" (and {len(held) - 1} more account(s))" if len(held) > 1 else ""
    raise LockedError(
        f"{account_label(first.account)} is leased to daemon {first.owner} since "
        f"{first.acquired_at:%Y-%m-%d %H:%M:%S} UTC{more}; only its daemon works on it",
        hint="that daemon already does this work; stop it first if you must",
    )
