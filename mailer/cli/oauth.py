"""``mailer auth login / status / logout``: OAuth2 sign-in from the command line.

Wired into the ``auth`` group by :func:`add_commands`. Nothing here prints a token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from mailer.cli.common import Context, handle_errors
from mailer.errors import InputError


def _oauth_server(account: Any) -> Any:
    """The server settings that carry the account's OAuth2 settings, or None."""
    for server in (account.imap, account.smtp):
        if server.auth == "oauth2" and server.oauth2 is not None:
            return server
    return None


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def _browser(url: str) -> bool:
    import webbrowser

    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False


@click.command("login")
@click.option("--account", "name", default="", metavar="NAME", help="The account to sign in.")
@click.option(
    "--no-browser", is_flag=True, help="Print the sign-in address instead of opening a browser."
)
@click.pass_obj
@handle_errors
def login(obj: Context, name: str, no_browser: bool) -> None:
    """Sign in with OAuth2 and store the refresh token."""
    from mailer.adapters.oauth import device_login, pkce_login, who
    from mailer.adapters.tokens import TokenStore

    account = obj.settings().for_account(name)
    server = _oauth_server(account)
    if server is None:
        raise InputError(
            f'{account.path}: {who(name)} signs in with a password (auth = "password"); '
            'set auth = "oauth2" to use OAuth2'
        )
    cfg = server.oauth2
    say = click.echo
    if cfg.flow == "device":
        tokens = device_login(cfg, server.username, say)
    else:
        tokens = pkce_login(
            cfg,
            server.username,
            say,
            open_browser=(lambda _url: False) if no_browser else _browser,
            read_line=_read_redirect,
        )
    store = TokenStore(cfg.store_dir)
    store.save(cfg.account, tokens)
    click.echo(
        f"Signed in {server.username} ({who(name)}); scopes: {' '.join(tokens.scopes)}; "
        f"stored in {store.where}"
    )


@click.command("status", short_help="Each account's sign-in method and expiry.")
@click.pass_obj
@handle_errors
def status(obj: Context) -> None:
    """Each account's sign-in method, scopes and when its access token expires."""
    from mailer.adapters.oauth import matches, who
    from mailer.adapters.tokens import TokenStore

    settings = obj.settings()
    for name in settings.account_names:
        account = settings.for_account(name)
        server = _oauth_server(account)
        if server is None:
            click.echo(f"{who(name)}: password")
            continue
        cfg = server.oauth2
        store = TokenStore(cfg.store_dir)
        tokens = store.load(cfg.account)
        head = f"{who(name)}: OAuth2 ({cfg.provider}, {cfg.flow} flow, {cfg.mechanism.upper()})"
        if tokens is None or not matches(tokens, cfg, server.username):
            click.echo(f"{head}; not signed in")
            continue
        click.echo(
            f"{head}; signed in as {tokens.user}; scopes: {' '.join(tokens.scopes)}; "
            f"access token expires {_when(tokens.expires_at)}; stored in {store.where}"
        )


@click.command("logout")
@click.option("--account", "name", default="", metavar="NAME", help="The account to sign out.")
@click.pass_obj
@handle_errors
def logout(obj: Context, name: str) -> None:
    """Forget the account's stored OAuth2 tokens."""
    from mailer.adapters.oauth import who
    from mailer.adapters.tokens import TokenStore

    account = obj.settings().for_account(name)
    server = _oauth_server(account)
    if server is None:
        click.echo(f"{who(name)}: signs in with a password; no OAuth2 tokens to forget")
        return
    gone = TokenStore(server.oauth2.store_dir).delete(server.oauth2.account)
    click.echo(f"{who(name)}: " + ("signed out" if gone else "was not signed in"))


def sign_in(account: Any) -> str:
    """``doctor``'s sign-in check: the method, and for OAuth2 a real token refresh."""
    from mailer.adapters.oauth import access_token
    from mailer.adapters.tokens import TokenStore

    server = _oauth_server(account)
    if server is None:
        return "password"
    cfg = server.oauth2
    access_token(server, force_refresh=True)
    tokens = TokenStore(cfg.store_dir).load(cfg.account)
    expiry = f"; access token expires {_when(tokens.expires_at)}" if tokens else ""
    return f"OAuth2 ({cfg.provider}, {cfg.mechanism.upper()}); token refreshed{expiry}"


def add_commands(group: click.Group) -> None:
    """Add ``login``, ``status`` and ``logout`` to the ``auth`` group."""
    for command in (login, status, logout):
        group.add_command(command)


def _read_redirect() -> str:
    """The redirect address the user pastes; a closed or finished stdin is said as such, not
    as a redirect "of another sign-in"."""
    import sys

    line = sys.stdin.readline() if sys.stdin is not None else ""
    if not line.strip():
        raise InputError(
            "no redirect address was pasted (standard input is closed or empty); run "
            "'mailer auth login' in a terminal, or without --no-browser"
        )
    return line
