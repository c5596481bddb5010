"""A send killed at each crash point never yields a second copy, and status tells the truth."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from .conftest import INTERVIEWER, Stack, run_cli, send_args

pytestmark = [pytest.mark.integration, pytest.mark.process]


def inbox_copies(stack: Stack, company: str) -> int:
    with stack.imap(INTERVIEWER) as c:
        c.select_folder("INBOX", readonly=True)
        return len(c.search(["BODY", f"role at {company}"]))  # as the template words it


@pytest.mark.parametrize(
    ("point", "delivered", "shown"),
    [
        ("after-queued", 0, None),  # nothing left the machine: a rerun may send
        # MAIL FROM (or the whole message but its final dot) went, but the server cannot
        # have accepted anything before the dot: requeued, so a rerun sends it
        ("after-submitting", 0, None),
        ("before-final-dot", 0, None),
        # The durable final-dot mark is on disk: from there on we cannot know
        ("after-final-dot", 0, "in doubt"),
        ("after-250", 1, "in doubt"),  # accepted, yet never recorded as sent
        ("after-sent", 1, "awaiting reply"),
    ],
)
def test_killed_send_never_delivers_twice(
    stack: Stack, workspace: Path, point: str, delivered: int, shown: str | None
) -> None:
    """Verify a SIGKILL at each point leaves at most one copy and an honest status: in doubt
    only past the final-dot mark, and sent again by a rerun before it."""
    company = f"Crash {point}"
    killed = run_cli(workspace, *send_args(company=company), env={"MAILER_CRASH_AT": point})
    assert killed.returncode == -signal.SIGKILL
    assert inbox_copies(stack, company) == delivered
    status = run_cli(workspace, "status")
    if shown is not None:
        assert shown in status.stdout, status.stdout
    else:
        assert "in doubt" not in status.stdout, status.stdout
    rerun = run_cli(workspace, *send_args(company=company))
    if shown is None:
        assert rerun.returncode == 0, rerun.stderr
        assert inbox_copies(stack, company) == 1
        # The attempt that never reached the server is not an open thread whose subject the
        # rerun must step aside from: no "(Data Engineer)" (a walkthrough found it there).
        (subject,) = [x for x in rerun.stdout.splitlines() if x.startswith("Subject:")]
        assert "(Data Engineer)" not in subject, subject
    else:
        assert rerun.returncode == 7, rerun.stderr
        assert "already holds an apology" in rerun.stderr
        assert inbox_copies(stack, company) == delivered


def test_an_attempt_killed_before_the_final_dot_does_not_block_another_interview(
    stack: Stack, workspace: Path
) -> None:
    """Verify a send killed before its final dot (nothing reached the server) is not an open
    apology that refuses one for another interview at the same company (a review)."""
    company = "Killed Early"
    killed = run_cli(
        workspace,
        *send_args(company=company, interview="2026-11-25 10:00"),
        env={"MAILER_CRASH_AT": "before-final-dot"},
    )
    assert killed.returncode == -signal.SIGKILL
    other = run_cli(workspace, *send_args(company=company, interview="2026-11-25 14:00"))
    assert other.returncode == 0, other.stderr
    assert inbox_copies(stack, company) == 1
