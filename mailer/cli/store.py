"""``mailer store ...``: the state store itself: its schema, and moving it (#17)."""

from __future__ import annotations

import click

from mailer.cli.common import Context, handle_errors


@click.group(short_help="Migrate the state store, or copy it.")
def store() -> None:
    """The state store: bring it to the current schema, or copy it to PostgreSQL."""


@store.command("migrate", short_help="Bring the store to the current schema.")
@click.pass_obj
@handle_errors
def migrate(obj: Context) -> None:
    """Bring the configured store to the current schema (SQLite or PostgreSQL). Safe to run
    again: a store already there is left as it is."""
    from mailer.adapters.store import safe_url
    from mailer.adapters.storecopy import current

    settings = obj.settings()
    opened = obj.store(settings)
    try:
        done = list(opened.migrated)
    finally:
        opened.close()
    where = safe_url(settings.state_url)
    if done:
        click.echo(f"Migrated {where}: {'; '.join(done)}. It is now at {current()}.")
    else:
        click.echo(f"{where} is already at {current()}: nothing to do.")


@store.command("copy", short_help="Copy the store into an empty one.")
@click.option(
    "--to",
    "to",
    required=True,
    metavar="URL",
    help="The empty store to fill: postgresql://USER@HOST:PORT/DATABASE (no password: "
    "MAILER_STATE_PASSWORD, as for [state]).",
)
@click.option(
    "--sslmode", default="", help="TLS for the target (default: verify-full off loopback)."
)
@click.option(
    "--sslrootcert", default="", metavar="FILE", help="The CA that signed its certificate."
)
@click.pass_obj
@handle_errors
def copy(obj: Context, to: str, sslmode: str, sslrootcert: str) -> None:
    """Copy every table of the configured store into an empty one (made there if the
    database is empty), in one transaction, and check each table's row count. The
    configured store is not changed; point [state] url at the copy afterwards."""
    from mailer.adapters.config import state_target
    from mailer.adapters.store import safe_url
    from mailer.adapters.storecopy import copy as copy_store

    settings = obj.settings()
    target = state_target(to, settings.workspace, sslmode=sslmode, sslrootcert=sslrootcert)
    source = obj.store(settings)
    try:
        copied = copy_store(source, target.url, target.connect() or None)
    finally:
        source.close()
    click.echo(
        f"Copied {safe_url(settings.state_url)} to {safe_url(target.url)} in one transaction; "
        "rows per table, the same on both sides:"
    )
    for name, count in copied.counts:
        click.echo(f"  {name:<11} {count}")
    click.echo(f'Next: set [state] url = "{target.url}" in {settings.path} to use it.')
