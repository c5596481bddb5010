"""Over the wire: a fact, a --var, a config sender or a campaign entry carrying an encoded
word, a control character or a huge value is refused with one line, and nothing reaches the
SMTP server or the interviewer's mailbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import INTERVIEWER, Stack, run_cli, send_args

pytestmark = pytest.mark.integration
ATTACK = "=?utf-8?q?Ivy=0D=0AReply-To:_evil@attacker.test?="
CONFIG = Path("config") / "mailer.toml"


def inbox_size(stack: Stack) -> int:
    with stack.imap(INTERVIEWER) as c:
        return int(c.select_folder("INBOX", readonly=True)[b"EXISTS"])


def with_option(args: list[str], option: str, value: str) -> list[str]:
    args = list(args)
    if option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    return args


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--interviewer", ATTACK, "--interviewer: contains RFC 2047 encoded-word syntax"),
        ("--company", ATTACK, "--company: contains RFC 2047 encoded-word syntax"),
        ("--var", f"team={ATTACK}", "--var team: contains RFC 2047 encoded-word syntax"),
        ("--role", "Analyst\x1b]0;owned\x07", "--role: contains the control character U+001B"),
        ("--interviewer", "A" * 5000, "--interviewer: is 5,000 characters long"),
        # A Latin-1 byte on a UTF-8 command line (Python gives it as a lone surrogate): it
        # was an internal error naming no option.
        ("--interviewer", "Caf\udce9", "--interviewer: is not UTF-8 text"),
        ("--note", "caf\udce9 wifi", "--note: is not UTF-8 text"),
    ],
    ids=[
        *("interviewer", "company-in-subject", "var-in-subject", "escape", "long-name"),
        *("latin1-name", "latin1-note"),
    ],
)
def test_send_and_preview_refuse_a_bad_fact_and_nothing_is_sent(
    stack: Stack, workspace: Path, option: str, value: str, expected: str
) -> None:
    """Verify send and preview exit 2 with one line naming the option, and that no SMTP
    connection is made and nothing arrives, for a fact a template puts in the Subject too."""
    (workspace / "templates").mkdir()
    (workspace / "templates" / "illness.txt.j2").write_text(
        "Subject: Sorry, {{ company }} {{ team | default('') }} – {{ sender_name }}\n\n"
        "Dear {{ interviewer }},\nI was ill. I am sorry. I remain interested in the role. "
        "Could we reschedule? Thank you.\n",
        encoding="utf-8",
    )
    mark, before = stack.log_mark(), inbox_size(stack)
    send = with_option(send_args(company="Header Co"), option, value)
    preview = ["preview", *[a for a in send[1:] if a != "--yes"]]
    for args in (send, preview):
        r = run_cli(workspace, *args)
        assert r.returncode == 2, (args[0], r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], r.stderr
        assert "Traceback" not in r.stderr and "evil@attacker.test" not in r.stdout
    assert [e for e in stack.log_since(mark) if e["event"] != "ready"] == []
    assert inbox_size(stack) == before


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (f'name = "{ATTACK}"', "sender.name: contains RFC 2047 encoded-word syntax"),
        (f'name = "{"S" * 10_000_000}"', "sender.name: is 10,000,000 characters long"),
    ],
    ids=["encoded-word", "ten-megabytes"],
)
def test_a_bad_sender_name_in_the_config_is_refused_before_composing(
    stack: Stack, workspace: Path, line: str, expected: str
) -> None:
    """Verify a config [sender] name with an encoded word, or of 10 MB, makes preview and
    send exit 3 with one line naming file and key, and nothing is sent."""
    path = workspace / CONFIG
    path.write_text(path.read_text().replace('name = "Sam Candidate"', line, 1))
    mark = stack.log_mark()
    for args in (send_args(company="Sender Co"), ["preview", *send_args()[1:-1]]):
        r = run_cli(workspace, *args)
        assert r.returncode == 3, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and f"{path}: {expected}" in lines[0], r.stderr[:300]
        assert len(r.stderr) < 400  # the value is not quoted back
    assert [e for e in stack.log_since(mark) if e["event"] != "ready"] == []


def test_a_campaign_entry_with_an_encoded_word_is_refused_and_nothing_is_sent(
    stack: Stack, workspace: Path
) -> None:
    """Verify a campaign whose entry sets an encoded-word sender_name, or whose CSV cell
    sets one in var.team, is refused whole, each problem named, and nothing is sent."""
    campaigns = workspace / "config" / "campaigns"
    campaigns.mkdir(parents=True)
    (campaigns / "people.csv").write_text(
        f'to,company,interview,var.team\n{INTERVIEWER},Cell Co,2026-11-20 10:00,"{ATTACK}"\n',
        encoding="utf-8",
    )
    (campaigns / "week49.toml").write_text(
        '[campaign]\nentries_csv = "people.csv"\n'
        '[defaults]\nsituation = "illness"\ninterviewer = "Ana Ruiz"\nrole = "Data Engineer"\n'
        f'[[entries]]\nto = "{INTERVIEWER}"\ncompany = "Entry Co"\n'
        f'interview = "2026-11-20 09:00"\nsender_name = "{ATTACK}"\n',
        encoding="utf-8",
    )
    mark, before = stack.log_mark(), inbox_size(stack)
    r = run_cli(workspace, "campaign", "run", "week49", "--yes")
    assert r.returncode == 3, r.stderr
    assert "sender_name: contains RFC 2047 encoded-word syntax" in r.stderr
    assert "people.csv:2: " in r.stderr and "var team: contains RFC 2047" in r.stderr
    assert "Traceback" not in r.stderr
    assert [e for e in stack.log_since(mark) if e["event"] != "ready"] == []
    assert inbox_size(stack) == before
