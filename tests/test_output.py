"""Output that fits the ecosystem: one JSON thread shape, times with their zone, tables that
never cut a key, colour only where wanted, examples and exit codes in --help, completion,
-q/-v."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import click
import pytest

from mailer.cli.console import natural_duration
from mailer.cli.main import cli
from mailer.errors import ExitCode
from mailer.services.threadview import THREAD_STATES

from .conftest import NOW, Pair, run_cli
from .test_campaign import entry, write_campaign

ROOT = Path(__file__).resolve().parent.parent
THREAD_KEYS = {
    "id",
    "state",
    "unsettled",
    "recipient",
    "recipient_name",
    "company",
    "role",
    "situation",
    "account",
    "campaign",
    "entry_key",
    "subject",
    "interview_at",
    "created_at",
    "sent_at",
    "follow_up_due",
    "last_follow_up_at",
    "follow_ups_sent",
    "max_follow_ups",
    "reply",
    "auto_reply",
    "bounce",
    "held",
    "delivery_delay",
    "error",
}
TIME_KEYS = ("interview_at", "created_at", "sent_at", "follow_up_due", "last_follow_up_at")
ISO_WITH_OFFSET = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")
LONG_KEY = "acme-data-engineering-panel-with-ana-ruiz-and-two-colleagues-rescheduled"
ESCAPE = "\x1b["


def in_berlin(pair: Pair) -> None:
    """The sender's zone an hour off UTC in November, so a time shown in UTC is caught."""
    cfg = pair.ws / "config" / "mailer.toml"
    cfg.write_text(cfg.read_text().replace('"Europe/London"', '"Europe/Berlin"', 1))


def on_a_terminal(ws: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run mailer with a pseudo-terminal as stdin, stdout and stderr; all it wrote."""
    leader, follower = pty.openpty()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    full_env.pop("NO_COLOR", None)
    full_env.update({"MAILER_NOW": NOW, "TERM": "xterm-256color", "COLUMNS": "200"})
    full_env.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailer.cli.main", *args],
        cwd=ws,
        env=full_env,
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    proc.wait(timeout=60)
    return out.decode("utf-8", "replace")


@pytest.mark.integration
def test_status_and_campaign_status_give_one_thread_shape_with_offsets_and_enums(
    pair: Pair,
) -> None:
    """Verify the same thread reads the same in status --json and campaign status --json:
    the documented keys, an enum state, every time ISO 8601 in the sender's zone."""
    in_berlin(pair)
    write_campaign(pair.ws, entry(pair.interviewer, 1, key=LONG_KEY))
    assert run_cli(pair.ws, "campaign", "run", "week49", "--yes").returncode == 0

    listing = json.loads(run_cli(pair.ws, "status", "--json").stdout)
    assert listing["version"] == 1
    (thread,) = listing["threads"]
    shown = json.loads(run_cli(pair.ws, "campaign", "status", "week49", "--json").stdout)
    assert shown["version"] == 1 and shown["campaign"] == "week49"
    (row,) = shown["entries"]
    assert row["thread"] == thread
    one = json.loads(run_cli(pair.ws, "status", str(thread["id"]), "--json").stdout)["thread"]
    assert {k: v for k, v in one.items() if k != "messages"} == thread

    assert set(thread) == THREAD_KEYS
    assert thread["state"] == "awaiting_reply" and thread["state"] in THREAD_STATES
    assert row["state"] == "awaiting_reply" and shown["counts"] == {"awaiting_reply": 1}
    assert thread["entry_key"] == LONG_KEY and thread["campaign"] == "week49"
    assert thread["account"] is None and thread["unsettled"] is None
    assert thread["recipient"] == pair.interviewer and thread["situation"] == "illness"
    for key in TIME_KEYS:
        if thread[key] is not None:
            assert ISO_WITH_OFFSET.fullmatch(thread[key]), (key, thread[key])
            assert thread[key].endswith("+01:00"), (key, thread[key])  # Berlin in November
    assert thread["follow_up_due"] is not None  # the follow-up is pending: it has a time
    sent = datetime.fromisoformat(thread["sent_at"])
    assert abs(sent - datetime.fromisoformat(NOW)) < timedelta(minutes=1)
    assert thread["interview_at"] == "2026-11-11T10:00:00+01:00"  # entry 1, as written
    assert all(m["state"] == "sent" for m in one["messages"])


@pytest.mark.integration
def test_status_shows_every_time_in_the_senders_zone_with_its_name(pair: Pair) -> None:
    """Verify the SENT column and the follow-up due time are both Berlin time, labelled CET
    (before: SENT in UTC and the due time in the recipient's zone, neither labelled)."""
    in_berlin(pair)
    write_campaign(pair.ws, entry(pair.interviewer, 1, key="one"))
    assert run_cli(pair.ws, "campaign", "run", "week49", "--yes").returncode == 0
    thread = json.loads(run_cli(pair.ws, "status", "--json").stdout)["threads"][0]
    due = datetime.fromisoformat(thread["follow_up_due"])

    table = run_cli(pair.ws, "status").stdout
    assert "2026-11-25 16:00 CET" in table  # sent at 15:00 UTC
    assert f"follow-up due {due:%Y-%m-%d %H:%M} CET" in table
    assert "UTC" not in table
    detail = run_cli(pair.ws, "status", str(thread["id"])).stdout
    assert "interview: Wed 2026-11-11 10:00 CET" in detail
    assert "at 2026-11-25 16:00 CET" in detail


@pytest.mark.integration
def test_campaign_status_counts_states_and_shows_a_long_key_whole(pair: Pair) -> None:
    """Verify the summary line counts states (not the first words of each line), and a key
    longer than the terminal is wrapped in its column, never cut."""
    write_campaign(
        pair.ws,
        entry(pair.interviewer, 1, key="first")
        + entry(pair.interviewer, 2, key=LONG_KEY)
        + entry(pair.interviewer, 3, key="third"),
    )
    assert run_cli(pair.ws, "campaign", "run", "week49", "--yes", "--limit", "2").returncode == 0
    assert run_cli(pair.ws, "campaign", "cancel", "week49", "--entry", "first").returncode == 0

    narrow = run_cli(pair.ws, "campaign", "status", "week49", env={"COLUMNS": "40"})
    assert narrow.returncode == 0, narrow.stderr
    lines = narrow.stdout.splitlines()
    summary = lines[-1]
    assert sorted(summary.split(", ")) == ["1 awaiting reply", "1 cancelled", "1 not sent"]
    assert "…" not in narrow.stdout and all(len(line) <= 40 for line in lines[:-1])
    # The key's column, read down: its pieces join up to the whole key.
    body = lines[lines.index(next(x for x in lines if x.startswith("ENTRY"))) + 2 : -1]
    first_cells = "".join(line.split(" ")[0] for line in body)
    assert LONG_KEY in first_cells
    assert LONG_KEY not in narrow.stdout  # it really was folded: the test above did work

    wide = run_cli(pair.ws, "campaign", "status", "week49").stdout  # piped: never wrapped
    assert any(line.startswith(LONG_KEY) for line in wide.splitlines())
    assert all(line == line.rstrip() for line in wide.splitlines())  # no padding after a row


@pytest.mark.integration
def test_colour_only_on_a_terminal_and_never_under_no_color(pair: Pair) -> None:
    """Verify a terminal gets coloured states and error labels; NO_COLOR and pipes get none."""
    write_campaign(pair.ws, entry(pair.interviewer, 1, key="one"))
    assert run_cli(pair.ws, "campaign", "run", "week49", "--yes").returncode == 0

    coloured = on_a_terminal(pair.ws, "status")
    assert ESCAPE in coloured and "awaiting reply" in coloured
    assert ESCAPE not in on_a_terminal(pair.ws, "status", env={"NO_COLOR": "1"})
    assert ESCAPE not in run_cli(pair.ws, "status").stdout

    error = on_a_terminal(pair.ws, "status", "999")
    assert ESCAPE in error and "no thread 999" in error
    plain = on_a_terminal(pair.ws, "status", "999", env={"NO_COLOR": "1"})
    assert ESCAPE not in plain and "mailer: error: no thread 999" in plain
    piped = run_cli(pair.ws, "status", "999")
    assert piped.returncode == 2 and ESCAPE not in piped.stderr


@pytest.mark.integration
def test_check_quiet_prints_nothing_when_all_is_well_and_verbose_says_what_waits(
    pair: Pair,
) -> None:
    """Verify -q drops the summary and info lines, -v adds each waiting thread's due time."""
    write_campaign(pair.ws, entry(pair.interviewer, 1, key="one"))
    assert run_cli(pair.ws, "campaign", "run", "week49", "--yes").returncode == 0
    thread = json.loads(run_cli(pair.ws, "status", "--json").stdout)["threads"][0]

    normal = run_cli(pair.ws, "check")
    assert normal.returncode == 0, normal.stderr
    assert "checked: 0 new related message(s)" in normal.stdout
    assert f"thread {thread['id']}: awaiting reply" not in normal.stdout

    verbose = run_cli(pair.ws, "check", "-v")
    assert verbose.returncode == 0, verbose.stderr
    assert f"thread {thread['id']}: awaiting reply from {pair.interviewer}" in verbose.stdout
    assert "follow-up due 2026-11-25" in verbose.stdout
    assert "checked:" in verbose.stdout

    # A reply: by default an INFO line says what it did; -q keeps it (and the summary) quiet.
    pair.send_as(pair.interviewer, pair.candidate, "Re: sorry", "No worries.")
    quiet = run_cli(pair.ws, "check", "-q")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == "" and "INFO" not in quiet.stderr
    after = json.loads(run_cli(pair.ws, "status", "--json").stdout)["threads"][0]
    assert after["state"] == "replied"  # quiet, but the work was done

    both = run_cli(pair.ws, "check", "-q", "-v")
    assert both.returncode == 2 and "do not go together" in both.stderr


def _commands(group: click.Group, path: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        sub = f"{path} {name}".strip()
        found.append((sub, command))
        if isinstance(command, click.Group):
            found += _commands(command, sub)
    return found


@pytest.mark.parametrize("path", [p for p, _ in _commands(cli)])
def test_every_command_help_ends_with_an_example(path: str, tmp_path: Path) -> None:
    """Verify `mailer ... --help` shows an example that runs that very command."""
    r = run_cli(tmp_path, *path.split(), "--help")
    assert r.returncode == 0, r.stderr
    _, found, examples = r.stdout.partition("Example")
    assert found, f"mailer {path} --help has no example"
    assert f"mailer {path}" in examples


@pytest.mark.parametrize(
    "path", ["", *(p for p, c in _commands(cli) if isinstance(c, click.Group))]
)
def test_a_group_lists_its_commands_without_cutting_their_descriptions(
    path: str, tmp_path: Path
) -> None:
    """Verify `mailer [GROUP] --help` describes each command in words that fit an 80-column
    terminal: click cut long first sentences short with "..." ("Many apologies from one
    file: config/campaigns/NAME.toml...")."""
    r = run_cli(tmp_path, *path.split(), "--help", env={"COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    listed = r.stdout.partition("Commands:")[2].partition("\n\n")[0].splitlines()
    assert listed, r.stdout
    assert [line for line in listed if line.rstrip().endswith("...")] == []


def test_mailer_help_lists_every_exit_code(tmp_path: Path) -> None:
    """Verify each named exit code (and 130 for Ctrl-C, 143 for SIGTERM) is explained in
    `mailer --help`."""
    out = run_cli(tmp_path, "--help").stdout
    codes = out.partition("Exit codes:")[2]
    for code in [*ExitCode, 130, 143]:
        assert re.search(rf"^\s+{int(code)}\s+\w", codes, re.M), code


def test_completion_offers_the_situations(tmp_path: Path) -> None:
    """Verify the completion protocol completes --situation, with a workspace's own
    template as a situation too."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "mailer.toml").write_text("")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "illness_child.txt.j2").write_text("x")

    def complete(words: str) -> list[str]:
        env = {
            "_MAILER_COMPLETE": "bash_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - 1),
        }
        r = run_cli(tmp_path, env=env)
        assert r.returncode == 0, r.stderr
        return [line.split(",", 1)[1] for line in r.stdout.splitlines()]

    assert complete("mailer send --situation il") == ["illness", "illness_child"]
    assert "transport" in complete("mailer preview -s t")
    assert "completion" in complete("mailer comp")


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        # click runs bash to read its version
        pytest.param("bash", "complete -o", marks=pytest.mark.wire),
        ("zsh", "#compdef mailer"),
        ("fish", "complete --no-files --command mailer"),
    ],
)
def test_completion_prints_each_shells_script(shell: str, marker: str, tmp_path: Path) -> None:
    """Verify `mailer completion SHELL` prints that shell's script, wired to mailer."""
    r = run_cli(tmp_path, "completion", shell)
    assert r.returncode == 0, r.stderr
    assert marker in r.stdout and "_MAILER_COMPLETE" in r.stdout


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (20, "under a minute"),
        (60, "1 minute"),
        (190, "3 minutes"),
        (3600, "1 hour"),
        (4800, "1 hour 20 minutes"),
        (90000, "1 day 1 hour"),
    ],
)
def test_time_left_is_said_in_natural_units(seconds: float, words: str) -> None:
    """Verify the progress bar's time left reads as people say it."""
    assert natural_duration(seconds) == words


@pytest.mark.wire  # a fresh interpreter
def test_help_stays_free_of_rich() -> None:
    """Verify `mailer --help` does not import rich (it costs start-up time)."""
    code = "import sys; from mailer.cli.main import cli; print('rich' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr
