"""The CLI's side of leases (#17): ``status --daemons`` (``check``'s leases are taken in
mailer.services.leases)."""

from __future__ import annotations

import json
from datetime import datetime, tzinfo
from typing import Any

import click


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
