"""``mailer completion bash|zsh|fish``: click's completion script, and the values that
complete (the situations)."""

from __future__ import annotations

from pathlib import Path

import click
from click.shell_completion import CompletionItem, get_completion_class

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_MAILER_COMPLETE"  # what click derives from the program name "mailer"
# Templates that are parts or follow-ups, not situations of their own.
NOT_SITUATIONS = frozenset({"follow_up"})


def situations() -> dict[str, str]:
    """The built-in situations, then any the nearest workspace adds as templates/NAME.txt.j2
    (a glob, so completing stays instant)."""
    from mailer.adapters.config import CONFIG_RELPATH
    from mailer.model.facts import SITUATIONS

    found = dict(SITUATIONS)
    for d in (Path.cwd(), *Path.cwd().parents):
        if (d / CONFIG_RELPATH).is_file():
            for template in sorted((d / "templates").glob("*.txt.j2")):
                name = template.name.removesuffix(".txt.j2")
                if not name.startswith("_") and name not in NOT_SITUATIONS:
                    found.setdefault(name, "your own template")
            break
    return found


def complete_situation(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    prefix = incomplete.lower()
    return [
        CompletionItem(name, help=meaning)
        for name, meaning in situations().items()
        if name.startswith(prefix)
    ]


@click.command(short_help="Print the shell completion script.")
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (commands, options, situations)."""
    root = click.get_current_context().find_root()
    complete = get_completion_class(shell)
    assert complete is not None  # every name in SHELLS is one click knows
    click.echo(complete(root.command, {}, "mailer", COMPLETE_VAR).source())
