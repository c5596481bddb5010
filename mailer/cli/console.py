"""Where tables, colours and progress bars go: rich, imported only when something is shown
(``mailer --help`` stays fast), plain text for pipes and files, no colour under NO_COLOR."""

from __future__ import annotations

import os
import sys
from typing import IO, Any

from mailer.model.lifecycle import MessageState as M
from mailer.model.lifecycle import ThreadState as T

# Thread and message states (threadview enums) to the colour they are shown in.
STATE_STYLES = {
    # Keyed by the lifecycle's enums (a StrEnum hashes as its stored string, so a state read
    # from the store finds its style), plus the words the thread view derives from them.
    T.SENDING: "yellow",
    T.AWAITING: "cyan",
    T.FOLLOWED_UP: "cyan",
    T.REPLIED: "green",
    T.HELD: "magenta",
    T.BOUNCED: "red",
    T.FAILED: "red",
    M.IN_DOUBT: "bold red",
    "follow_up_in_doubt": "bold red",
    T.NO_ANSWER: "dim",
    T.CANCELLED: "dim",
    "not_sent": "dim",
}
# Campaign run outcomes (runner) likewise.
OUTCOME_STYLES = {
    "sent": "green",
    "would send": "green",
    "skipped": "dim",
    "failed": "red",
    "in doubt": "bold red",
    "held back": "yellow",
}
# Wide enough that a piped table never wraps: one row, one line, for grep and cut.
PIPE_WIDTH = 1000


def colour_wanted(stream: IO[str]) -> bool:
    """Colour only on a terminal, and never under NO_COLOR (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def paint(text: str, style: str, stream: IO[str] | None = None) -> str:
    """``text`` in a click style name (``red``, ``yellow``) where colour is wanted."""
    import click

    if not colour_wanted(stream or sys.stderr):
        return text
    return click.style(text, fg=style, bold=style == "red")


def console(err: bool = False) -> Any:
    """A rich Console for stdout (or stderr). Off a terminal: no escape codes and no wrapping
    unless COLUMNS asks for a width; under NO_COLOR: no escape codes at all (rich alone would
    still send bold)."""
    from rich.console import Console

    stream = sys.stderr if err else sys.stdout
    tty = _isatty(stream)
    width = None
    if not tty:
        columns = os.environ.get("COLUMNS", "")
        width = int(columns) if columns.isdigit() and int(columns) > 0 else PIPE_WIDTH
    return Console(
        file=stream,
        width=width,
        color_system=None if os.environ.get("NO_COLOR") else "auto",
        highlight=False,
        emoji=False,
        markup=False,
        soft_wrap=False,
    )


def stdin_is_terminal() -> bool:
    """False also for a closed stdin (``<&-``), where Python's ``sys.stdin`` is None."""
    return _isatty(sys.stdin)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def table(*columns: tuple[str, dict[str, Any]]) -> Any:
    """A plain table: a header line, no borders (easy to read, easy to cut)."""
    from rich import box
    from rich.table import Table

    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for name, options in columns:
        t.add_column(name, **{"overflow": "fold", **options})
    return t


def print_rows(
    columns: list[tuple[str, dict[str, Any]]],
    rows: list[tuple[list[str], str | None]],
    styled_column: int = -1,
) -> None:
    """A table of plain cells (and one style for one cell of each row, the last unless
    ``styled_column`` says). Off a terminal it is written directly: rich lays a table out
    cell by cell, which made ``status`` of 10k threads take seconds, and a pipe needs no
    wrapping or colour. On a terminal: rich."""
    if _isatty(sys.stdout) or os.environ.get("COLUMNS", "").isdigit():
        t = table(*columns)
        at = styled_column % len(columns)
        for cells, style in rows:
            t.add_row(*cells[:at], styled(cells[at], style), *cells[at + 1 :])
        console().print(t)
        return
    header = [name for name, _ in columns]
    # One row a line, whatever a server's words in a cell hold (looked for in the row's cells
    # at once: 10k rows are 60k cells). A row with other than ASCII ("株式会社テスト", "José")
    # is measured in the columns it takes on a terminal, not in characters, and padded by
    # hand; the others by one format.
    grid = [header]
    wide: set[int] = set()  # the rows (in grid) with other than ASCII
    for cells, _ in rows:
        joined = "".join(cells)
        if "\n" in joined or "\r" in joined:
            cells = [_one_line(c) for c in cells]
        if not joined.isascii():
            wide.add(len(grid))
        grid.append(cells)
    plain = [cells for i, cells in enumerate(grid) if i not in wide] if wide else grid
    widths = [max(map(len, column)) for column in zip(*plain, strict=True)]
    for i in wide:
        widths = [max(w, _columns(c)) for w, c in zip(widths, grid[i], strict=True)]
    # One format for every line: 10k rows are a format call each, not a padding call a cell.
    right = [opts.get("justify") == "right" for _, opts in columns]
    fmt = "  ".join(f"{{:{'>' if r else '<'}{w}}}" for w, r in zip(widths, right, strict=True))

    def line(i: int, cells: list[str]) -> str:
        if i not in wide:
            return fmt.format(*cells).rstrip()
        padded = (
            " " * (w - _columns(c)) + c if r else c + " " * (w - _columns(c))
            for c, w, r in zip(cells, widths, right, strict=True)
        )
        return "  ".join(padded).rstrip()

    rule = "─" * (sum(widths) + 2 * (len(widths) - 1))
    body = (
        (line(i, c) for i, c in enumerate(grid) if i)
        if wide
        else (fmt.format(*c).rstrip() for c in grid[1:])
    )
    lines = [fmt.format(*header).rstrip(), rule, *body]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _columns(cell: str) -> int:
    """How many terminal columns ``cell`` takes: two for a wide (East Asian) character, none
    for a combining mark or a zero-width one."""
    if cell.isascii():
        return len(cell)
    import unicodedata

    return sum(
        0
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf")
        else 2
        if unicodedata.east_asian_width(ch) in "WF"
        else 1
        for ch in cell
    )


def _one_line(cell: str) -> str:
    return cell if "\n" not in cell and "\r" not in cell else " ".join(cell.splitlines())


def styled(text: str, style: str | None) -> Any:
    from rich.text import Text

    return Text(text, style=style or "")


def natural_duration(seconds: float) -> str:
    """A duration as people say it: ``under a minute``, ``3 minutes``, ``1 hour 20 minutes``."""
    minutes = round(seconds / 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"{minutes} minute{'s' * (minutes != 1)}"
    hours, minutes = divmod(minutes, 60)
    if hours >= 24:
        days, hours = divmod(hours, 24)
        return f"{days} day{'s' * (days != 1)}" + (
            f" {hours} hour{'s' * (hours != 1)}" if hours else ""
        )
    return f"{hours} hour{'s' * (hours != 1)}" + (
        f" {minutes} minute{'s' * (minutes != 1)}" if minutes else ""
    )
