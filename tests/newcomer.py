"""The README's install and try-out lines, read from README.md, and how a test runs them.

README.md marks them with ``<!-- newcomer:install -->``, ``<!-- newcomer:try -->``,
``<!-- newcomer:checkout -->`` (putting a checkout's ``.venv`` on PATH) and
``<!-- newcomer:own -->`` (setting up one's own account), each closed by
``<!-- /newcomer -->``: one command per indented line, a trailing ``# ...`` being a comment.
Used by tests/test_newcomer.py and bench/newcomer_bench.py.
"""

from __future__ import annotations

import re
import shlex
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIST_NAME = "interview-mailer"  # decided; checked free on PyPI (see CHANGELOG)
_BLOCK = re.compile(r"<!-- newcomer:(\w+) -->\n(.*?)<!-- /newcomer -->", re.S)
_INSTALL = re.compile(r"pipx install (\S+)\s*(?:#\s*or:\s*uv tool install (\S+))?")


@dataclass
class Readme:
    install: list[str]  # the raw lines, comments included
    try_out: list[str]  # the commands, comments removed
    # The raw lines of these two, run as one shell session: `source`, `cd`, `~` and
    # ${EDITOR...} must reach the shell as printed.
    checkout: list[str]
    own: list[str]


def readme_lines(path: Path = ROOT / "README.md") -> Readme:
    blocks: dict[str, list[str]] = {}
    for name, body in _BLOCK.findall(path.read_text(encoding="utf-8")):
        assert name not in blocks, f"README.md: two newcomer:{name} blocks"
        blocks[name] = [line.strip() for line in body.splitlines() if line.strip()]
    found = set(blocks)
    expected = {"install", "try", "checkout", "own"}
    assert found == expected, f"README.md: newcomer blocks found: {found}"
    try_out = [_without_comment(line) for line in blocks["try"]]
    return Readme(
        install=blocks["install"],
        try_out=[c for c in try_out if c],
        checkout=blocks["checkout"],
        own=blocks["own"],
    )


def _without_comment(line: str) -> str:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=False)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return shlex.join(list(lexer))


def installed_name(install: list[str]) -> str:
    """The package the README installs. Its one line is ``pipx install NAME``, with ``uv tool
    install NAME`` as the alternative in its comment; both must name the same package.

    The test cannot install from the index (it would test what was published, not this
    tree), so it translates the line: pipx makes a venv and pip-installs NAME into it, which
    is ``python -m venv VENV`` and ``VENV/bin/pip install --no-index --find-links WHEELS
    WHEEL``, WHEEL being this tree's wheel built just before. So NAME must be that wheel's
    distribution name: the caller checks it against the wheel's metadata."""
    assert len(install) == 1, f"README.md: the install block has {len(install)} lines"
    m = _INSTALL.fullmatch(install[0])
    assert m, f"README.md: not 'pipx install NAME  # or: uv tool install NAME': {install[0]!r}"
    name, uv_name = m.groups()
    assert uv_name == name, f"README.md: pipx installs {name} but uv installs {uv_name}"
    return name


def pinned_now(try_out: list[str]) -> str:
    """The clock the try-out runs at (MAILER_NOW), so that the README never rots as the
    calendar moves: a day before an ISO ``--interview`` date it names (the interview is then
    tomorrow), else a fixed time for relative dates ("tomorrow 10:00")."""
    for line in try_out:
        args = shlex.split(line)
        if "--interview" in args:
            value = args[args.index("--interview") + 1]
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}( \d{2}:\d{2})?", value):
                day = datetime.fromisoformat(value[:10]) - timedelta(days=1)
                return f"{day:%Y-%m-%d}T09:00:00+00:00"
    return "2026-11-25T09:00:00+00:00"


def stack_file(home: Path) -> Path:
    """The sandbox's stack.json, wherever this version keeps the sandbox under HOME."""
    found = sorted(home.rglob("sandbox/stack.json"))
    assert len(found) == 1, f"expected one sandbox under {home}, found {found}"
    return found[0]


def wait_for_apology(home: Path, user: str, timeout: float = 60) -> list[bytes]:
    """Poll the sandbox INBOX of USER over IMAPS until a message is there; every message."""
    import json

    from imapclient import IMAPClient

    info = json.loads(stack_file(home).read_text(encoding="utf-8"))
    ctx = ssl.create_default_context(cafile=info["ca_file"])
    deadline = time.monotonic() + timeout
    while True:
        with IMAPClient(
            info["host"], port=info["imaps_port"], ssl=True, ssl_context=ctx, timeout=10
        ) as c:
            c.login(user, info["users"][user])
            c.select_folder("INBOX", readonly=True)
            uids = c.search("ALL")
            if uids:
                fetched = c.fetch(uids, [b"BODY.PEEK[]"])
                return [fetched[u][b"BODY[]"] for u in sorted(fetched)]
        if time.monotonic() > deadline:
            return []
        time.sleep(0.1)
