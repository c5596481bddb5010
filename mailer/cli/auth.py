"""``mailer auth ...``: how mailer signs in to your mailboxes."""

from __future__ import annotations

import sys

import click

from mailer.cli.common import Context, handle_errors
from mailer.errors import InputError


@click.group(short_help="Sign in: OAuth2, and passwords in the keyring.")
def auth() -> None:
    """Sign in: OAuth2 login, status and logout; passwords in the system keyring."""


# --- passwords in the keyring -----------------------------------------------------------------


@auth.command("set-password", short_help="Store a password in the system keyring.")
@click.option("--account", default="", metavar="NAME", help="[accounts.NAME] (default: main).")
@click.option(
    "--server",
    type=click.Choice(["smtp", "imap", "both"]),
    default="both",
    show_default=True,
    help="Which server's password to store.",
)
@click.pass_obj
@handle_errors
def set_password(obj: Context, account: str, server: str) -> None:
    """Store a password in the system keyring (asked for without echo; read from stdin
    when it is not a terminal). Use it with password_source = "keyring"."""
    from mailer.adapters.config import account_label
    from mailer.adapters.passwords import keyring_user, store_in_keyring

    settings = obj.settings().for_account(account)
    servers = ("smtp", "imap") if server == "both" else (server,)
    password = _read_password(" and ".join(s.upper() for s in servers))
    backend = ""
    for name in servers:
        s = getattr(settings, name)
        backend = store_in_keyring(keyring_user(account, name, s.username), password)
    click.echo(
        f"Stored the {' and '.join(s.upper() for s in servers)} password of "
        f"{account_label(account)} in the keyring ({backend})."
    )
    for name in servers:
        source = getattr(settings, name).secret
        if source is not None and source.kind != "keyring":
            where = f"accounts.{account}.{name}" if account else name
            click.echo(
                f'note: {where}.password_source is "{source.kind}"; set it to "keyring" '
                "to use the stored password",
                err=True,
            )


def _read_password(what: str) -> str:
    """Twice on a terminal (a typo would lock you out later); else stdin's first line."""
    from mailer.cli.console import stdin_is_terminal

    if stdin_is_terminal():
        import getpass

        first = getpass.getpass(f"{what} password: ")
        if first != getpass.getpass("Again, to be sure: "):
            raise InputError("the two passwords differ; nothing was stored")
        password = first
    else:
        password = sys.stdin.readline().rstrip("\r\n") if sys.stdin is not None else ""
    if not password:
        raise InputError("no password given (on the terminal or stdin); nothing was stored")
    return password


def _add_oauth() -> None:
    from mailer.cli.oauth import add_commands

    add_commands(auth)


_add_oauth()
