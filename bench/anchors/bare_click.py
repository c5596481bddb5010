"""Anchor for `mailer --help`: a bare click app with one command and one option."""

import click


@click.group()
def cli() -> None:
    """A bare click app."""


@cli.command()
@click.option("--to", help="An address.")
def send(to: str) -> None:
    """Send something."""


if __name__ == "__main__":
    cli()
