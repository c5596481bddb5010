"""Campaigns against the real mail stack: each entry once, resumable, refusals recorded,
invalid files refused whole, cancel stops follow-ups, several accounts."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from .conftest import FOLLOW_UP_CONFIG, INTERVIEWER, NOW, Pair, Stack, run_cli, write_config


def entry(to: str, n: int, **extra: object) -> str:
    fields: dict[str, object] = {
        "to": to,
        "interviewer": "Ana Ruiz",
        "company": f"Company {n}",
        "role": "Data Engineer",
        "interview": f"2026-11-{10 + n % 15:02d} {9 + n % 8:02d}:00",
        **extra,
    }
    return "[[entries]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in fields.items())


def write_campaign(ws: Path, body: str, name: str = "week49") -> Path:
    path = ws / "config" / "campaigns" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    head = textwrap.dedent("""\
        [defaults]
        situation = "illness"
        note = "I am sorry to have missed it."

        """)
    path.write_text(head + body, encoding="utf-8")
    return path


def accepted(stack: Stack, mark: int) -> list[dict]:
    return [e for e in stack.log_since(mark) if e.get("event") == "accepted"]


def deliveries_per_entry(ws: Path, stack: Stack, mark: int) -> Counter[str]:
    """How many messages the server accepted for each campaign entry (by our Message-IDs)."""
    db = sqlite3.connect(ws / ".mailer" / "state.db")
    owner = dict(
        db.execute(
            "SELECT m.message_id, t.entry_key FROM messages m JOIN threads t ON t.id = m.thread_id"
        ).fetchall()
    )
    db.close()
    return Counter(owner.get(e["message_id"], "?") for e in accepted(stack, mark))


def campaign_status(ws: Path, file: str = "week49") -> list[dict]:
    r = run_cli(ws, "campaign", "status", file, "--json")
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["version"] == 1
    return shown["entries"]


def in_doubt(row: dict) -> bool:
    """Whether the entry's apology or follow-up may or may not have reached the server."""
    return bool(row["thread"] and (row["thread"]["unsettled"] or {}).get("state") == "in_doubt")


@pytest.mark.integration
def test_fifty_entries_arrive_exactly_once_and_a_second_run_sends_nothing(pair: Pair) -> None:
    write_campaign(pair.ws, "".join(entry(pair.interviewer, n) for n in range(50)))
    mark = pair.stack.log_mark()

    r = run_cli(pair.ws, "campaign", "run", "week49", "--yes", timeout=180)
    assert r.returncode == 0, r.stderr
    assert "50 sent" in r.stdout
    per_entry = deliveries_per_entry(pair.ws, pair.stack, mark)
    assert len(per_entry) == 50 and set(per_entry.values()) == {1}
    with pair.stack.imap(pair.interviewer) as c:
        assert c.select_folder("INBOX", readonly=True)[b"EXISTS"] == 50
    # One connection and one login for the whole run.
    logins = [e for e in pair.stack.log_since(mark) if e.get("event") == "auth"]
    assert len(logins) == 1
    with pair.stack.imap(pair.candidate) as c:
        assert c.select_folder("Sent", readonly=True)[b"EXISTS"] == 50

    again = run_cli(pair.ws, "campaign", "run", "week49", "--yes")
    assert again.returncode == 0, again.stderr
    assert "nothing to send" in again.stdout
    assert len(accepted(pair.stack, mark)) == 50
    states = Counter(row["state"] for row in campaign_status(pair.ws))
    assert states == {"awaiting_reply": 50}


@pytest.mark.integration
@pytest.mark.parametrize(
    "point, delivered_in_doubt",
    [
        ("after-queued", None),
        ("after-submitting", None),  # before the final dot: nothing taken, sent on resume
        ("before-final-dot", None),
        ("after-final-dot", 0),  # the durable mark is on disk: in doubt
        ("after-250", 1),
        ("after-sent", None),
    ],
)
@pytest.mark.process
def test_a_run_killed_half_way_and_run_again_sends_each_entry_once(
    pair: Pair, point: str, delivered_in_doubt: int | None
) -> None:
    write_campaign(pair.ws, "".join(entry(pair.interviewer, n) for n in range(10)))
    mark = pair.stack.log_mark()

    killed = run_cli(
        pair.ws, "campaign", "run", "week49", "--yes", env={"MAILER_CRASH_AT": f"{point}@5"}
    )
    assert killed.returncode == -9, killed.stderr
    resumed = run_cli(pair.ws, "campaign", "run", "week49", "--yes")

    per_entry = deliveries_per_entry(pair.ws, pair.stack, mark)
    doubtful = [row["key"] for row in campaign_status(pair.ws) if in_doubt(row)]
    # Every apology known to be sent has its one copy in Sent, even those whose copy the
    # killed run had not filed yet.
    with pair.stack.imap(pair.candidate) as c:
        assert c.select_folder("Sent", readonly=True)[b"EXISTS"] == 10 - len(doubtful)
    if delivered_in_doubt is None:
        assert resumed.returncode == 0, resumed.stderr
        assert len(per_entry) == 10 and set(per_entry.values()) == {1}
        assert doubtful == []
    else:
        # Killed inside its SMTP transaction: never resent, at most once, and listed.
        assert resumed.returncode != 0
        assert len(doubtful) == 1
        assert per_entry[doubtful[0]] == delivered_in_doubt
        assert all(n == 1 for k, n in per_entry.items() if k != doubtful[0])
        assert len(per_entry) == 9 + delivered_in_doubt
        assert "In doubt: entry" in resumed.stdout and "mailer resolve" in resumed.stdout


@pytest.mark.integration
def test_invalid_file_is_refused_whole_with_every_problem_listed(pair: Pair) -> None:
    body = (
        entry(pair.interviewer, 1)
        + entry("not-an-address", 2)
        + entry(pair.interviewer, 3, situation="holiday")
        + entry(pair.interviewer, 4, interview="2026-13-45 10:00")
        + entry(pair.interviewer, 5, interviewer_tz="Mars/Olympus")
        + entry(pair.interviewer, 6, key="dup")
        + entry(pair.interviewer, 7, key="dup")
        + entry(pair.interviewer, 8, note="Signed, [Your Name]")
        + '[[entries]]\nto = "x@sandbox.test"\ninterviewer = "Bo"\n'
    )
    path = write_campaign(pair.ws, body)
    mark = pair.stack.log_mark()

    r = run_cli(pair.ws, "campaign", "run", "week49", "--yes")
    assert r.returncode == 3
    assert len(accepted(pair.stack, mark)) == 0
    errors = r.stderr
    lines = path.read_text().splitlines()

    def line_of(n: int) -> int:  # the [[entries]] header of the nth entry (0-based)
        return [i for i, x in enumerate(lines, 1) if x == "[[entries]]"][n]

    for n, needle in [
        (1, "to: "),
        (2, "unknown situation 'holiday'"),
        (3, "interview: '2026-13-45 10:00' is not a real date"),
        (4, "unknown time zone 'Mars/Olympus'"),
        (6, "duplicate key 'dup'"),
        (7, "'[Your Name]' is a placeholder"),
        (8, "company: missing"),
        (8, "role: missing"),
    ]:
        assert any(f"{path}:{line_of(n)}: " in x and needle in x for x in errors.splitlines()), (
            needle,
            errors,
        )
    assert "7 of 9 entries have problems; nothing was sent" in errors
    assert "Traceback" not in errors

    check = run_cli(pair.ws, "campaign", "check", "week49")
    assert check.returncode == 3 and check.stderr.count(str(path)) >= 8
    assert "7 of 9 entries have problems" in check.stderr
    assert "nothing was sent" not in check.stderr  # (a check sends nothing anyway)

    skipped = run_cli(pair.ws, "campaign", "run", "week49", "--yes", "--skip-invalid")
    assert skipped.returncode == 0, skipped.stderr
    assert len(accepted(pair.stack, mark)) == 2  # entries 1 and 6 (the first "dup")


@pytest.mark.integration
def test_csv_entries_are_read_and_bad_rows_named_by_line(pair: Pair) -> None:
    (pair.ws / "config" / "campaigns").mkdir(parents=True)
    (pair.ws / "config" / "campaigns" / "people.csv").write_text(
        "to,interviewer,company,role,interview,free,var.team\n"
        f"{pair.interviewer},Ana Ruiz,Acme,Engineer,2026-11-20 10:00,,Platform\n"
        f"{pair.interviewer},Bo Li,Globex,,2026-11-21 11:00,,\n"
        f"{pair.interviewer},Cy Ng,Initech,Analyst,2026-11-22 12:00,2026-12-01 09:00-10:00;"
        "2026-12-02 14:00-15:00,\n",
        encoding="utf-8",
    )
    path = write_campaign(pair.ws, '[campaign]\nentries_csv = "people.csv"\n', name="csvrun")
    csv_path = path.parent / "people.csv"

    r = run_cli(pair.ws, "campaign", "check", "csvrun")
    assert r.returncode == 3
    assert f"{csv_path}:3: entry" in r.stderr and "role: missing" in r.stderr
    assert r.stderr.count(str(csv_path)) == 1

    csv_path.write_text(
        csv_path.read_text().replace("Bo Li,Globex,,", "Bo Li,Globex,Designer,"), encoding="utf-8"
    )
    preview = run_cli(pair.ws, "campaign", "preview", "csvrun")
    assert preview.returncode == 0, preview.stderr
    assert preview.stdout.count("# entry ") == 3
    assert "Tuesday 1 December" in preview.stdout  # the free times from the ';' list
    mark = pair.stack.log_mark()
    sent = run_cli(pair.ws, "campaign", "run", "csvrun", "--yes")
    assert sent.returncode == 0, sent.stderr
    assert len(accepted(pair.stack, mark)) == 3


@pytest.mark.integration
def test_editing_a_note_after_sending_does_not_make_a_new_entry(pair: Pair) -> None:
    path = write_campaign(pair.ws, entry(pair.interviewer, 1) + entry(pair.interviewer, 2))
    mark = pair.stack.log_mark()
    assert run_cli(pair.ws, "campaign", "run", "week49", "--yes").returncode == 0
    path.write_text(path.read_text().replace("I am sorry", "I am truly sorry"), encoding="utf-8")
    path.write_text(path.read_text() + entry(pair.interviewer, 3), encoding="utf-8")

    r = run_cli(pair.ws, "campaign", "run", "week49", "--yes")
    assert r.returncode == 0, r.stderr
    assert len(accepted(pair.stack, mark)) == 3  # only the new entry went out


@pytest.mark.integration
def test_a_refused_recipient_is_recorded_and_the_run_goes_on(pair: Pair) -> None:
    nobody = "nobody-here@sandbox.test"  # not a sandbox mailbox: 550 at RCPT
    write_campaign(
        pair.ws,
        entry(pair.interviewer, 1) + entry(nobody, 2) + entry(pair.interviewer, 3),
    )
    mark = pair.stack.log_mark()

    r = run_cli(pair.ws, "campaign", "run", "week49", "--yes")
    assert r.returncode == 5
    assert len(accepted(pair.stack, mark)) == 2
    assert "550" in r.stdout and "failed" in r.stdout
    statuses = {row["to"]: row["state"] for row in campaign_status(pair.ws)}
    assert statuses[nobody] == "failed"

    again = run_cli(pair.ws, "campaign", "run", "week49", "--yes")
    assert again.returncode == 0 and "nothing to send" in again.stdout
    assert "waits for you (1)" in again.stdout
    assert "1 refused by the server earlier: fix them, or run again with --retry-failed" in (
        again.stdout
    )
    retried = run_cli(pair.ws, "campaign", "run", "week49", "--yes", "--retry-failed")
    assert retried.returncode == 5 and "550" in retried.stdout
    assert len(accepted(pair.stack, mark)) == 2


@pytest.mark.integration
def test_a_temporary_refusal_is_retried_within_the_run(pair: Pair) -> None:
    write_campaign(pair.ws, entry(pair.interviewer, 1) + entry(pair.interviewer, 2))
    pair.stack.set_faults(data=["451 4.3.0 try again later"])
    mark = pair.stack.log_mark()

    r = run_cli(pair.ws, "campaign", "run", "week49", "--yes")
    assert r.returncode == 0, r.stderr
    assert "2 sent" in r.stdout
    assert len(accepted(pair.stack, mark)) == 2


@pytest.mark.integration
def test_cancel_stops_the_campaigns_follow_ups(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    write_campaign(
        pair.ws,
        '[follow_up]\nwait = "30s"\nwindow = "always"\n\n'
        + entry(pair.interviewer, 1, key="one")
        + entry(pair.interviewer, 2, key="two")
        + entry(pair.interviewer, 3, key="three"),
    )
    assert run_cli(pair.ws, "campaign", "run", "week49", "--yes").returncode == 0

    r = run_cli(pair.ws, "campaign", "cancel", "week49", "--entry", "one")
    assert r.returncode == 0 and "1 thread(s)" in r.stdout
    r = run_cli(pair.ws, "campaign", "cancel", "week49", "--entry", "two")
    assert r.returncode == 0
    mark = pair.stack.log_mark()
    later = {"MAILER_NOW": "2026-11-25T15:05:00+00:00"}
    checked = run_cli(pair.ws, "check", env=later)
    assert checked.returncode == 0, checked.stderr

    # Only the entry that was not cancelled gets its follow-up.
    sent = accepted(pair.stack, mark)
    assert len(sent) == 1
    # The campaign's messages are read in one query, not a thread at a time (#14).
    from mailer.adapters.store import Store

    monkeypatch.setattr(Store, "messages", lambda *_: pytest.fail("a query per thread"))
    rows = {row["key"]: row for row in campaign_status(pair.ws)}
    statuses = {key: row["state"] for key, row in rows.items()}
    assert statuses["one"] == "cancelled" and statuses["two"] == "cancelled"
    assert statuses["three"] == "followed_up"
    assert rows["three"]["thread"]["last_follow_up_at"]  # (read from its follow-up message)

    everything = run_cli(pair.ws, "campaign", "cancel", "week49")
    assert everything.returncode == 0 and "no follow-up was pending" in everything.stdout
    typo = run_cli(pair.ws, "campaign", "cancel", "week49", "--entry", "thre")
    assert typo.returncode == 2 and "'thre'" in typo.stderr


@pytest.mark.integration
def test_status_and_cancel_still_work_when_an_entry_became_invalid(pair: Pair) -> None:
    path = write_campaign(
        pair.ws,
        entry(pair.interviewer, 1, key="one", free=["2026-11-26 09:00-10:00"])
        + entry(pair.interviewer, 2, key="two"),
    )
    assert run_cli(pair.ws, "campaign", "run", "week49", "--yes").returncode == 0
    later = {"MAILER_NOW": "2026-11-27T12:00:00+00:00"}  # entry one's free time has passed
    assert run_cli(pair.ws, "campaign", "check", "week49", env=later).returncode == 3

    rows = {
        r["key"]: r
        for r in json.loads(
            run_cli(pair.ws, "campaign", "status", "week49", "--json", env=later).stdout
        )["entries"]
    }
    assert rows["one"]["state"] == "awaiting_reply" and rows["one"]["thread"]["id"]
    assert rows["one"]["valid"] is False and rows["two"]["valid"] is True
    r = run_cli(pair.ws, "campaign", "cancel", "week49", "--entry", "one", env=later)
    assert r.returncode == 0 and "1 thread(s)" in r.stdout
    assert path.exists()


@pytest.mark.integration
def test_entries_send_from_their_own_accounts_and_replies_are_seen_there(
    stack: Stack, tmp_path: Path
) -> None:
    main, other = Pair(stack, tmp_path / "ws"), Pair(stack, tmp_path / "unused")
    ca = stack.info.ca_file
    accounts = f"""
[accounts.bea]
[accounts.bea.sender]
name = "Bea Candidate"
address = "{other.candidate}"
[accounts.bea.smtp]
host = "{stack.info.host}"
port = {stack.info.smtp_port}
security = "starttls"
ca_file = "{ca}"
[accounts.bea.imap]
host = "{stack.info.host}"
port = {stack.info.imaps_port}
security = "ssl"
ca_file = "{ca}"
"""
    ws = write_config(
        main.ws,
        stack.info,
        sender=main.candidate,
        extra=FOLLOW_UP_CONFIG.format(wait="1 hour") + accounts,
    )
    write_campaign(
        ws,
        entry(main.interviewer, 1, key="mine")
        + entry(other.interviewer, 2, key="beas", account="bea")
        + entry(other.interviewer, 3, key="beas-2", account="bea"),
    )
    missing = run_cli(ws, "campaign", "run", "week49", "--yes")
    assert missing.returncode == 3 and "MAILER_ACCOUNT_BEA_SMTP_PASSWORD" in missing.stderr

    with (ws / ".env").open("a") as f:
        f.write(f"MAILER_ACCOUNT_BEA_SMTP_PASSWORD={stack.info.users[other.candidate]}\n")
    doctor = run_cli(ws, "doctor")
    assert doctor.returncode == 0, doctor.stdout
    assert (
        "OK    SMTP (account bea)" in doctor.stdout and "OK    IMAP (account bea)" in doctor.stdout
    )
    mark = stack.log_mark()
    r = run_cli(ws, "campaign", "run", "week49", "--yes")
    assert r.returncode == 0, r.stderr
    senders = Counter((e["mail_from"], tuple(e["rcpt"])) for e in accepted(stack, mark))
    assert senders == {
        (main.candidate, (main.interviewer,)): 1,
        (other.candidate, (other.interviewer,)): 2,
    }
    with stack.imap(other.candidate) as c:
        assert c.select_folder("Sent", readonly=True)[b"EXISTS"] == 2

    # Bea's interviewer answers one apology in Bea's mailbox: the check of her account sees it.
    beas = next(r for r in campaign_status(ws) if r["key"] == "beas")
    assert beas["thread"]["account"] == "bea"
    root = (
        sqlite3.connect(ws / ".mailer" / "state.db")
        .execute("SELECT root_message_id FROM threads WHERE id = ?", (beas["thread"]["id"],))
        .fetchone()[0]
    )
    other.send_as(
        other.interviewer,
        other.candidate,
        "Re: your message",
        "No problem, Bea.",
        headers={"In-Reply-To": root, "References": root},
    )
    checked = run_cli(ws, "check")
    assert checked.returncode == 0, checked.stderr
    statuses = {row["key"]: row["state"] for row in campaign_status(ws)}
    assert statuses["beas"] == "replied"
    assert statuses["mine"] == "awaiting_reply"
    # Each account's INBOX keeps its own position: they are different mailboxes.
    db = sqlite3.connect(ws / ".mailer" / "state.db")
    folders = {row[0] for row in db.execute("SELECT folder FROM folders")}
    db.close()
    assert folders == {"INBOX", "bea:INBOX"}

    # Bea's account is removed from the config while her other thread still waits: every
    # check says so instead of leaving it in silence.
    config = ws / "config" / "mailer.toml"
    config.write_text(config.read_text().split("[accounts.bea]")[0], encoding="utf-8")
    orphaned = run_cli(ws, "check")
    assert orphaned.returncode == 5
    assert "account 'bea', which is not in" in orphaned.stderr


def test_the_example_campaign_from_init_is_refused_until_its_addresses_are_real(
    offline_workspace: Path,
) -> None:
    from mailer.adapters.workspace import example_campaign

    from .conftest import NOW

    example = example_campaign(datetime.fromisoformat(NOW).date())  # as init writes it today
    path = offline_workspace / "config" / "campaigns" / "example.toml"
    path.parent.mkdir(parents=True)
    path.write_text(example, encoding="utf-8")

    r = run_cli(offline_workspace, "campaign", "check", "example")
    assert r.returncode == 3
    problems = [x for x in r.stderr.splitlines() if x.startswith("mailer: error:")]
    assert len(problems) == 2 and all("example address (RFC 2606)" in x for x in problems)

    real = path.read_text().replace("ana.ruiz@example.com", INTERVIEWER)
    path.write_text(real.replace("b.li@example.com", "recruiter@sandbox.test"), encoding="utf-8")
    ok = run_cli(offline_workspace, "campaign", "check", "example")
    assert ok.returncode == 0, ok.stderr
    assert "2 entries valid; 2 to send" in ok.stdout


def final_dots(ws: Path) -> int:
    """How many messages of the workspace's store have their final-dot mark (0 before the
    store is made)."""
    db = ws / ".mailer" / "state.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as c:
        try:
            return c.execute(
                "SELECT count(*) FROM messages WHERE final_dot_at IS NOT NULL"
            ).fetchone()[0]
        except sqlite3.OperationalError:  # (the schema not written yet)
            return 0


def interrupt_twice(
    pair: Pair, proc: subprocess.Popen[str], err_file: Path, once_marked: int, within: float
) -> None:
    """Ctrl-C twice, once ``once_marked`` messages have their final-dot mark: the second only
    after the run has said it took the first."""
    deadline = time.monotonic() + within
    while final_dots(pair.ws) != once_marked and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the store for the final-dot mark
    assert final_dots(pair.ws) == once_marked, err_file.read_text()
    proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 30
    while "Ctrl-C again" not in err_file.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)  # the first interrupt must be taken before the second is sent
    proc.send_signal(signal.SIGINT)


def run_in_background(pair: Pair, stderr: Any) -> subprocess.Popen[str]:
    """`mailer campaign run week49 --yes` as its own process (to be signalled), as a user
    would start it: none of the test run's MAILER_ settings, the clock pinned at NOW."""
    from .conftest import NOW

    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    return subprocess.Popen(
        [sys.executable, "-m", "mailer.cli.main", "campaign", "run", "week49", "--yes"],
        cwd=pair.ws,
        env={**env, "MAILER_NOW": NOW},
        text=True,
        stdout=subprocess.PIPE,
        stderr=stderr,
    )


@pytest.mark.integration
def test_ctrl_c_stops_after_the_message_in_progress_and_a_rerun_finishes(pair: Pair) -> None:

    # Five seconds between messages, counted from the start of the first: the SIGINT must
    # land in that gap, after its 250 and the poll below (at 2 s apart, a loaded machine's
    # SMTP transaction plus a stalled test process could let the second one start first).
    write_campaign(
        pair.ws,
        "[throttle]\nrate = 12\n\n" + "".join(entry(pair.interviewer, n) for n in range(6)),
    )
    mark = pair.stack.log_mark()
    proc = run_in_background(pair, subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not accepted(pair.stack, mark) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the server's log for the first delivery
    assert accepted(pair.stack, mark), "the first message never arrived"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)

    assert proc.returncode == 130, err  # (not over: a script around it must not think so)
    assert "Stopped early: interrupted" in out
    # The next message was seconds away: the pause ends at once and nothing more goes.
    first = len(accepted(pair.stack, mark))
    assert first == 1
    assert not any(in_doubt(row) for row in campaign_status(pair.ws))

    dry = run_cli(pair.ws, "campaign", "run", "week49", "--dry-run")
    assert dry.returncode == 0 and f"{6 - first} would send" in dry.stdout
    assert len(accepted(pair.stack, mark)) == first

    rest = run_cli(pair.ws, "campaign", "run", "week49", "--yes", timeout=120)
    assert rest.returncode == 0, rest.stderr
    per_entry = deliveries_per_entry(pair.ws, pair.stack, mark)
    assert len(per_entry) == 6 and set(per_entry.values()) == {1}


@pytest.mark.integration
def test_a_second_ctrl_c_while_the_server_holds_its_answer_says_where_that_leaves_the_run(
    pair: Pair,
) -> None:
    """Verify a second Ctrl-C, while the server has the whole first message and has not
    answered it, stops at once with exit 130 and one line that names the status command; the
    message is in doubt, and a rerun sends only the other entry."""

    write_campaign(pair.ws, entry(pair.interviewer, 1) + entry(pair.interviewer, 2))
    pair.stack.set_faults(data_delay=[30])  # the answer to the first final dot comes late
    mark = pair.stack.log_mark()
    err_file = pair.ws / "run.err"
    with err_file.open("w") as err:
        proc = run_in_background(pair, err)
        interrupt_twice(pair, proc, err_file, once_marked=1, within=30)
        proc.communicate(timeout=30)
    said = err_file.read_text()

    assert proc.returncode == 130, said
    assert "Traceback" not in said
    assert "once the server has answered it" in said
    (line,) = [x for x in said.splitlines() if x.startswith("mailer: stopped now")]
    assert "'mailer campaign status week49' shows each entry" in line
    assert [in_doubt(row) for row in campaign_status(pair.ws)] == [True, False]

    pair.stack.clear_faults()
    rest = run_cli(pair.ws, "campaign", "run", "week49", "--yes")
    assert "1 sent, 1 skipped" in rest.stdout, rest.stdout + rest.stderr
    assert rest.returncode == 1  # (an entry still in doubt waits for the user)
    # The first went to the server whole: whether it was delivered is the server's affair,
    # but it is never sent a second time.
    owners = deliveries_per_entry(pair.ws, pair.stack, mark)
    assert all(n == 1 for n in owners.values()) and len(owners) >= 1


@pytest.mark.integration
@pytest.mark.process
def test_a_rerun_with_nothing_to_send_still_names_the_entries_in_doubt(pair: Pair) -> None:
    """Verify a campaign whose only unsent entry is in doubt is not called done on the next
    run: the entry is named with the command to settle it, and the run exits 1."""
    write_campaign(pair.ws, entry(pair.interviewer, 1, key="one") + entry(pair.interviewer, 2))
    killed = run_cli(
        pair.ws, "campaign", "run", "week49", "--yes", env={"MAILER_CRASH_AT": "after-final-dot"}
    )
    assert killed.returncode == -9, killed.stderr
    first = run_cli(pair.ws, "campaign", "run", "week49", "--yes")  # sends the other one
    assert "1 sent" in first.stdout and first.returncode == 1, first.stdout + first.stderr
    again = run_cli(pair.ws, "campaign", "run", "week49", "--yes")
    assert again.returncode == 1, again.stdout + again.stderr
    assert "nothing to send; every valid entry is done or waits for you (1)" in again.stdout
    (line,) = [x for x in again.stdout.splitlines() if x.startswith("In doubt:")]
    assert line.startswith("In doubt: entry one (thread ")
    assert "may have been delivered; your Sent folder cannot tell" in line
    assert "'mailer resolve 1 --sent' if it arrived or if you cannot find out" in line


@pytest.mark.integration
def test_the_daily_cap_holds_the_rest_back_and_says_so(pair: Pair) -> None:
    write_campaign(
        pair.ws,
        "[throttle]\ndaily_cap = 2\n\n"
        + "".join(entry(pair.interviewer, n, key=f"e{n}") for n in range(3)),
    )
    one = run_cli(pair.ws, "campaign", "preview", "week49", "--entry", "e2")
    assert one.returncode == 0 and one.stdout.count("# entry ") == 1 and "Company 2" in one.stdout
    mark = pair.stack.log_mark()

    r = run_cli(pair.ws, "campaign", "run", "week49", "--yes")
    assert r.returncode == 0, r.stderr
    assert len(accepted(pair.stack, mark)) == 2
    assert "1 held back by the daily cap" in r.stdout and "again tomorrow" in r.stdout

    tomorrow = {"MAILER_NOW": "2026-11-26T09:00:00+00:00"}
    r = run_cli(pair.ws, "campaign", "run", "week49", "--yes", env=tomorrow)
    assert r.returncode == 0 and "1 sent" in r.stdout
    assert len(accepted(pair.stack, mark)) == 3


@pytest.mark.integration
def test_campaign_threads_keep_their_own_follow_up_policy_and_sender(pair: Pair) -> None:
    # The config says 60 s; the campaign says two hours and signs as the candidate's alias.
    write_campaign(
        pair.ws,
        '[follow_up]\nwait = "2 hours"\nwindow = "always"\n\n'
        + entry(pair.interviewer, 1, key="one", sender_name="Sam C. Candidate"),
    )
    assert run_cli(pair.ws, "campaign", "run", "week49", "--yes").returncode == 0
    mark = pair.stack.log_mark()

    soon = run_cli(pair.ws, "check", env={"MAILER_NOW": "2026-11-25T15:05:00+00:00"})
    assert soon.returncode == 0, soon.stderr
    assert accepted(pair.stack, mark) == []
    later = run_cli(pair.ws, "check", env={"MAILER_NOW": "2026-11-25T17:05:00+00:00"})
    assert later.returncode == 0, later.stderr
    sent = accepted(pair.stack, mark)
    assert len(sent) == 1
    follow_up = pair.stack.messages_with_id(pair.interviewer, sent[0]["message_id"])[0]
    assert b'From: "Sam C. Candidate" <' in follow_up


def test_campaign_preview_and_status_need_no_finished_mail_server_settings(
    offline_workspace: Path,
) -> None:
    """Verify the campaign commands that never connect (preview, status) work while [smtp]
    is still unfinished, and the ones that check or send still name the broken key."""
    write_campaign(offline_workspace, entry(INTERVIEWER, 1, key="e1"))
    config = offline_workspace / "config" / "mailer.toml"
    text = config.read_text()
    head, smtp = text.split("[smtp]\n", 1)
    config.write_text(head + "[smtp]\n" + re.sub(r"port = \d+", 'port = "soon"', smtp, count=1))
    preview = run_cli(offline_workspace, "campaign", "preview", "week49")
    assert preview.returncode == 0, preview.stderr
    assert "# entry e1" in preview.stdout and "Company 1" in preview.stdout
    status = run_cli(offline_workspace, "campaign", "status", "week49")
    assert status.returncode == 0, status.stderr
    check = run_cli(offline_workspace, "campaign", "check", "week49")
    assert check.returncode != 0 and "smtp.port" in check.stderr


def test_campaign_preview_shows_the_valid_entries_of_a_file_with_invalid_ones(
    offline_workspace: Path,
) -> None:
    """Verify preview shows each valid entry and names the invalid ones (exit 3), and that
    --entry shows a valid entry with a one-line note on the others (exit 0): 'run
    --skip-invalid' sends the valid ones, so they must be seen first (it refused them all;
    newcomer walkthrough, session 16)."""
    write_campaign(
        offline_workspace,
        entry(INTERVIEWER, 1, key="good")
        + entry(INTERVIEWER, 2, key="bad", interview="2026-13-01 10:00"),
    )
    preview = run_cli(offline_workspace, "campaign", "preview", "week49")
    assert preview.returncode == 3, preview.stderr
    assert "# entry good" in preview.stdout and "# entry bad" not in preview.stdout
    (problem,) = [x for x in preview.stderr.splitlines() if x.startswith("mailer: error:")]
    assert "entry bad" in problem and "week49.toml" in problem
    said = "1 of the 2 entries in the file has problems"
    assert f"{said} (above); the valid ones are shown" in preview.stderr
    one = run_cli(offline_workspace, "campaign", "preview", "week49", "--entry", "good")
    assert one.returncode == 0 and "# entry good" in one.stdout, one.stderr
    assert f"{said}; 'mailer campaign check week49' lists them" in one.stderr
    bad = run_cli(offline_workspace, "campaign", "preview", "week49", "--entry", "bad")
    assert bad.returncode != 0 and "entry 'bad' is not valid: " in bad.stderr, bad.stderr
    assert "interview" in bad.stderr and "week49.toml" in bad.stderr
    none = run_cli(offline_workspace, "campaign", "preview", "week49", "--entry", "nope")
    assert none.returncode != 0 and "no valid entry with key 'nope'" in none.stderr


def test_campaign_run_gives_the_timing_advice_send_gives(offline_workspace: Path) -> None:
    """Verify a run (a dry run here) says, before anything goes, which interviews are within
    a day (call them as well) and which were more than a day ago (a late apology), as send
    does for one (it said nothing; newcomer walkthrough, session 16)."""
    write_campaign(
        offline_workspace,
        entry(INTERVIEWER, 1, key="late", interview="2026-11-21 10:00")
        + entry(
            INTERVIEWER, 2, key="soon", interview="2026-11-25 20:00", situation="conflict", note=""
        )
        + entry(INTERVIEWER, 3, key="fine", interview="2026-11-25 09:00"),
    )
    dry = run_cli(offline_workspace, "campaign", "run", "week49", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    (soon,) = [x for x in dry.stdout.splitlines() if "within a day" in x]
    assert soon.startswith("Timing: 1 interview(s) within a day (soon)") and "call" in soon
    (late,) = [x for x in dry.stdout.splitlines() if "more than a day ago" in x]
    assert late.startswith("Timing: 1 interview(s) more than a day ago (late)"), late


@pytest.mark.integration
def test_an_apology_accepted_but_not_recorded_stops_the_run_saying_it_went(
    pair: Pair, monkeypatch
) -> None:
    """Verify a campaign apology whose 250 cannot be recorded stops the run with one line
    saying it WAS accepted and must not be sent again (not a bare state-store error), leaves
    it in doubt as accepted, and a rerun with the store working sends it no second time."""
    from mailer.adapters.store import Store
    from mailer.errors import StateError

    write_campaign(pair.ws, entry(pair.interviewer, 1) + entry(pair.interviewer, 2))
    real = Store.mark_sent

    def full_disk(self: Store, row_id: int, *args: object, **kwargs: object) -> None:
        raise StateError("state store: database or disk is full")

    monkeypatch.setattr(Store, "mark_sent", full_disk)
    mark = pair.stack.log_mark()
    r = run_cli(pair.ws, "campaign", "run", "week49", "--yes")
    assert r.returncode == 1, r.stdout + r.stderr
    (line,) = [x for x in r.stderr.splitlines() if "WAS accepted" in x]
    said = re.search(
        r"^mailer: error: \S*week49\.toml:\d+: the apology WAS accepted by the server \(250 .*\), "
        r"but recording it failed: state store: database or disk is full \(do not send it "
        r"again; run 'mailer resolve (\d+) --sent' when the state store is writable\)$",
        line,
    )
    assert said, line
    thread = said.group(1)
    assert "Traceback" not in r.stderr
    assert len(accepted(pair.stack, mark)) == 1
    assert [in_doubt(row) for row in campaign_status(pair.ws)] == [True, False]

    monkeypatch.setattr(Store, "mark_sent", real)
    again = run_cli(pair.ws, "campaign", "run", "week49", "--yes")
    assert "1 sent, 1 skipped" in again.stdout, again.stdout + again.stderr
    (doubt,) = [x for x in again.stdout.splitlines() if x.startswith("In doubt:")]
    assert f"(thread {thread})" in doubt and f"'mailer resolve {thread} --sent'" in doubt, doubt
    # It went: the line says so, and offers no resend.
    assert "WAS accepted by the server" in doubt and "--resend" not in doubt, doubt
    assert sorted(deliveries_per_entry(pair.ws, pair.stack, mark).values()) == [1, 1]


# mailer's own process (main()), with a look at how it ends once the command is done.
EXIT_PROBE = """
import atexit, gc, sys
from pathlib import Path
atexit.register(lambda: print(
    "AT EXIT", gc.get_freeze_count() > 0, gc.isenabled(),
    Path(".mailer/state.db-wal").exists(), file=sys.stderr,
))
from mailer.cli.main import main
main()
"""


@pytest.mark.integration
@pytest.mark.process
def test_a_run_in_its_own_process_closes_its_store_and_leaves_the_rest_to_the_exit(
    pair: Pair,
) -> None:
    """Verify `campaign run` as mailer's own process closes its store when the command is
    done (SQLite folds its write-ahead log back into the file: no -wal file is left) and
    freezes everything else for the exit (the interpreter's last collection walked every
    object: 40-90 ms after 300 entries), with the collector on throughout, and each entry
    delivered once."""
    write_campaign(pair.ws, "".join(entry(pair.interviewer, n) for n in range(3)))
    mark = pair.stack.log_mark()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    r = subprocess.run(
        [sys.executable, "-c", EXIT_PROBE, "campaign", "run", "week49", "--yes"],
        cwd=pair.ws,
        env={**env, "MAILER_NOW": NOW},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "3 sent" in r.stdout
    assert r.stderr.strip().splitlines()[-1] == "AT EXIT True True False"
    per_entry = deliveries_per_entry(pair.ws, pair.stack, mark)
    assert len(per_entry) == 3 and set(per_entry.values()) == {1}


@pytest.mark.integration
def test_a_second_ctrl_c_does_not_wait_for_a_sent_copy_the_imap_server_never_answers(
    pair: Pair,
) -> None:
    """Verify "Ctrl-C again to stop now" stops now even while the Sent copy of a message
    already sent hangs on an IMAP server that accepted the connection and says nothing: exit
    130 at once, not after the IMAP timeout. The copy is not lost: a later run with IMAP back
    files it."""
    import socket

    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers (no TLS hello)
    config = pair.ws / "config" / "mailer.toml"
    working = config.read_text()
    imap = re.sub(r"(\[imap\][^\[]*?port = )\d+", rf"\g<1>{silent.getsockname()[1]}", working)
    config.write_text(re.sub(r"(\[imap\][^\[]*?timeout = )\d+", r"\g<1>120", imap))
    write_campaign(pair.ws, entry(pair.interviewer, 1) + entry(pair.interviewer, 2))
    # The first message goes at once (its copy then waits on the silent server); the answer
    # to the second one's final dot comes late, so both interrupts land inside it.
    pair.stack.set_faults(data_delay=[0, 30])
    mark = pair.stack.log_mark()
    err_file = pair.ws / "run.err"
    try:
        with err_file.open("w") as err:
            proc = run_in_background(pair, err)
            interrupt_twice(pair, proc, err_file, once_marked=2, within=60)
            stopped = time.monotonic()
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
            took = time.monotonic() - stopped
    finally:
        silent.close()
    said = err_file.read_text()

    assert proc.returncode == 130, said
    assert took < 10, f"{took:.1f} s after the second Ctrl-C"
    assert "Traceback" not in said
    assert [in_doubt(row) for row in campaign_status(pair.ws)] == [False, True]

    pair.stack.clear_faults()
    config.write_text(working)
    rest = run_cli(pair.ws, "campaign", "run", "week49", "--yes")
    assert rest.returncode == 1, rest.stdout + rest.stderr  # (the second waits for the user)
    (first,) = [e["message_id"] for e in accepted(pair.stack, mark)][:1]
    assert len(pair.stack.messages_with_id(pair.candidate, first, "Sent")) == 1


def _sent_then_edited(pair: Pair, text: str, old: str, new: str) -> tuple[Path, int]:
    """A campaign of one entry sent by a run, then its file edited (``old`` made ``new``):
    the file, and the SMTP log's mark from before the run."""
    path = write_campaign(pair.ws, text)
    mark = pair.stack.log_mark()
    first = run_cli(pair.ws, "campaign", "run", "week49", "--yes")
    assert first.returncode == 0 and "1 sent" in first.stdout, first.stdout + first.stderr
    path.write_text(path.read_text().replace(old, new))
    return path, mark


@pytest.mark.integration
def test_an_entry_whose_company_was_corrected_after_it_was_sent_is_not_sent_again(
    pair: Pair,
) -> None:
    """Verify correcting an entry's company spelling after a run (a new entry key) does not
    send the same interview a second time: the run skips it, naming the thread."""
    _, mark = _sent_then_edited(
        pair, entry(pair.interviewer, 1, company="Acme Corp."), "Acme Corp.", "Acme Corporation"
    )
    # A check and a dry run say so before anything is tried, as the run does.
    check = run_cli(pair.ws, "campaign", "check", "week49")
    assert "0 to send, 1 already done" in check.stdout, check.stdout + check.stderr
    dry = run_cli(pair.ws, "campaign", "run", "week49", "--dry-run")
    assert "0 would send" in dry.stdout or "would send" not in dry.stdout, dry.stdout
    again = run_cli(pair.ws, "campaign", "run", "week49", "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to send; every valid entry is done" in again.stdout
    assert len(accepted(pair.stack, mark)) == 1
    # status says why the entry waits for nothing, as check does (it said "not sent yet").
    rows = {r["key"]: r for r in campaign_status(pair.ws)}
    (new,) = [r for r in rows.values() if r["valid"]]
    assert new["state"] == "not_sent" and new["thread"] is None
    assert new["not_sent_because"].startswith("already sent (thread 1"), new


@pytest.mark.integration
def test_an_entry_whose_interview_time_was_changed_after_it_was_sent_is_not_sent_again(
    pair: Pair,
) -> None:
    """Verify correcting an entry's interview time after a run (a new derived key, and no
    apology at the new time) does not send the interviewer a second apology: check warns,
    the run skips it naming the thread and the old time, and a key of its own (another
    interview) lets it go (from a newcomer walkthrough: it was sent again)."""
    path, mark = _sent_then_edited(
        pair, entry(pair.interviewer, 1, interview="2026-11-24 11:30"), "11:30", "16:30"
    )
    check = run_cli(pair.ws, "campaign", "check", "week49")
    # Not "done": it waits for the user (it was counted as done; a walkthrough).
    assert "0 to send, 0 already done, 1 wait(s) for you (above)" in check.stdout, (
        check.stdout + check.stderr
    )
    (line,) = [x for x in check.stderr.splitlines() if EARLIER_VERSION in x]
    assert "Tue 24 Nov 2026 11:30" in line and "key of its own" in line, line
    again = run_cli(pair.ws, "campaign", "run", "week49", "--yes")
    assert again.returncode == 9, again.stdout + again.stderr  # (waits for the user)
    assert EARLIER_VERSION in again.stdout, again.stdout + again.stderr
    assert len(accepted(pair.stack, mark)) == 1
    (new,) = [r for r in campaign_status(pair.ws) if r["valid"]]
    assert EARLIER_VERSION in new["not_sent_because"], new
    _give_it_a_key_and_it_goes(pair, path, mark)


EARLIER_VERSION = "belongs to an entry no longer in the file"


def _give_it_a_key_and_it_goes(pair: Pair, path: Path, mark: int) -> None:
    """The file's one entry given a key of its own (another interview): it is sent."""
    path.write_text(path.read_text().replace("[[entries]]\n", '[[entries]]\nkey = "round-2"\n'))
    another = run_cli(pair.ws, "campaign", "run", "week49", "--yes")
    assert another.returncode == 0 and "1 sent" in another.stdout, another.stdout + another.stderr
    assert len(accepted(pair.stack, mark)) == 2


@pytest.mark.integration
def test_a_second_interview_left_after_the_first_was_sent_and_removed_waits_for_the_user(
    pair: Pair,
) -> None:
    """Verify the case the rule cannot tell from an edit (two interviews at one company, the
    first sent, then its entry removed) is not sent on a guess, but not called done either:
    the run exits 9 (waiting for the user), and says what to do if it is another
    interview; a key of its own sends it (review of session 16)."""
    first = entry(pair.interviewer, 1, company="Acme", interview="2026-11-24 11:30")
    second = entry(pair.interviewer, 1, company="Acme", interview="2026-11-24 15:00")
    path = write_campaign(pair.ws, first + second)
    mark = pair.stack.log_mark()
    one = run_cli(pair.ws, "campaign", "run", "week49", "--yes", "--limit", "1")
    assert "1 sent" in one.stdout, one.stdout + one.stderr
    path.write_text(path.read_text().replace(first, ""))
    again = run_cli(pair.ws, "campaign", "run", "week49", "--yes")
    assert again.returncode == 9, again.stdout + again.stderr
    assert EARLIER_VERSION in again.stdout and "if this is another interview" in again.stdout
    assert len(accepted(pair.stack, mark)) == 1
    _give_it_a_key_and_it_goes(pair, path, mark)


@pytest.mark.integration
def test_two_entries_for_one_interview_under_two_spellings_make_the_file_invalid(
    pair: Pair,
) -> None:
    """Verify two entries to one address at one time, with the company spelt two ways, are
    refused when the file is checked (one apology per interview), naming the first."""
    write_campaign(
        pair.ws,
        entry(pair.interviewer, 1, company="Acme")
        + entry(pair.interviewer, 1, company="Acme Group"),
    )
    mark = pair.stack.log_mark()
    check = run_cli(pair.ws, "campaign", "check", "week49")
    assert check.returncode == 3, check.stdout + check.stderr
    (line,) = [x for x in check.stderr.splitlines() if "the same interview" in x]
    assert "week49.toml" in line and "one apology per interview" in line
    run = run_cli(pair.ws, "campaign", "run", "week49", "--yes")
    assert run.returncode == 3 and accepted(pair.stack, mark) == []
