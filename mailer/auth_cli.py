"""``mailer auth``: how each account signs in.

A minimal group: the OAuth2 commands come from :mod:`mailer.oauth_cli` (``add_commands``);
the password commands are added beside them.
"""

from __future__ import annotations

import click


@click.group()
def auth() -> None:
    """Sign in: OAuth2 login, status and logout."""


def _add_oauth() -> None:
    from .oauth_cli import add_commands

    add_commands(auth)


_add_oauth()
