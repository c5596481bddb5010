"""How `status` reads the store (issue #14): the list in one query, in a read transaction that
takes no write lock; `status ID` reads only its own thread; a process's liveness is asked once
per owner, not once per row; and the command imports no library it does not use."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.adapters import listing
from mailer.adapters.store import Store, StoreReader, open_to_read
from mailer.model.keys import dedupe_key
from mailer.model.lifecycle import ThreadEvent
from mailer.services import threadview as view

from .conftest import run_cli

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
SENDER = "sam@candidate.test"
# Status never connects: the servers need only be well-formed.
CONFIG = f"""\
[sender]
name = "Sam Candidate"
address = "{SENDER}"
timezone = "Europe/London"

[smtp]
host = "127.0.0.1"
port = 2525
security = "starttls"

[imap]
host = "127.0.0.1"
port = 9993
security = "ssl"

[addresses]
allow_test_domains = true
"""
# A process on this machine that is not running (its start-time mark cannot match).
DEAD_OWNER = f"{socket.gethostname()}:x:999999999:0"


def _thread(store: Store, i: int, *, submitting: bool = True) -> tuple[int, int]:
    to = f"hr{i}@company{i}.test"
    mid = f"<status-{i}@candidate.test>"
    return store.create_thread(
        now=NOW - timedelta(days=2),
        facts={
            "to": to,
            "interviewer": f"Interviewer {i}",
            "company": f"Company {i}",
            "role": "Data Engineer",
            "situation": "illness",
            "interview": (NOW - timedelta(days=3)).isoformat(),
        },
        key=dedupe_key(to, NOW - timedelta(days=3)),
        subject=f"Missed interview {i}",
        message_id=mid,
        raw=f"Message-ID: {mid}\r\n\r\nSorry.\r\n".encode(),
        envelope_from=SENDER,
        recipients=(to,),
        follow_up_wait="3d",
        max_follow_ups=1,
        guard_duplicates=False,
        submitting=submitting,
    )


def _sent(store: Store, i: int) -> int:
    tid, mrow = _thread(store, i)
    store.mark_sent(mrow, NOW - timedelta(days=2), "250 Ok", NOW + timedelta(days=1))
    return tid


def _workspace(tmp_path: Path, threads: int) -> tuple[Path, Path]:
    ws = tmp_path / "ws"
    (ws / "config").mkdir(parents=True)
    (ws / "config" / "mailer.toml").write_text(CONFIG, encoding="utf-8")
    db = ws / ".mailer" / "state.db"
    store = Store(f"sqlite:///{db}")
    for i in range(threads):
        _sent(store, i)
    store.close()
    return ws, db


def _mixed_store(path: Path) -> Store:
    """Threads in every shape the list words differently."""
    store = Store(f"sqlite:///{path}")
    _sent(store, 1)  # awaiting a reply
    _thread(store, 2, submitting=False)  # the apology still queued
    tid, mrow = _thread(store, 3)  # cut off after the final dot by a process now gone
    store.mark_final_dot(mrow, NOW)
    _thread(store, 4)  # submitting, by this (live) process
    tid = _sent(store, 5)
    store.set_thread_state(
        tid, ThreadEvent.MARKED_REPLIED, NOW, "replied", {"replied_by": "hr5@company5.test"}
    )
    _thread(store, 6)  # submitting by a process that is gone, before the final dot
    tid = _sent(store, 7)  # followed up twice: the list shows the last one
    with sqlite3.connect(path) as db:
        db.execute("UPDATE messages SET owner = ? WHERE thread_id IN (3, 6)", (DEAD_OWNER,))
        for n, day in ((1, 23), (2, 24)):
            db.execute(
                """INSERT INTO messages (thread_id, kind, message_id, state, raw, envelope_from,
                   recipients, created_at, sent_at) VALUES (?, 'follow_up', ?, 'sent', x'00', ?,
                   '["hr7@company7.test"]', ?, ?)""",
                (tid, f"<f{n}@candidate.test>", SENDER, *[f"2026-11-{day}T09:00:00+00:00"] * 2),
            )
        db.execute(
            "UPDATE threads SET state = 'followed_up', follow_ups_sent = 2 WHERE id = ?", (tid,)
        )
    return store


def test_the_list_query_shows_what_reading_each_thread_shows(tmp_path: Path) -> None:
    """Verify the one-query list gives every thread the same row, JSON and words as reading
    each thread and all its messages, whether the store is opened in full or only to read."""
    path = tmp_path / "state.db"
    store = _mixed_store(path)
    tz = ZoneInfo("Europe/Berlin")
    reader = open_to_read(f"sqlite:///{path}")
    assert isinstance(reader, StoreReader)
    for opened in (store, reader):
        listed = opened.thread_list()
        assert [t.id for t, _ in listed] == [t.id for t in store.threads()] == [*range(1, 8)]
        for t, briefs in listed:
            assert briefs is not None
            whole = store.messages(t.id)
            assert t == store.thread(t.id)
            assert [b.id for b in briefs] == [m.id for m in whole]
            assert view.describe(t, briefs, tz) == view.describe(t, whole, tz)
            assert view.state_word(t, briefs) == view.state_word(t, whole)
            assert view.thread_dict(t, briefs, tz) == view.thread_dict(t, whole, tz)
    words = {t.id: view.state_word(t, b) for t, b in reader.thread_list()}
    assert words == {
        1: "awaiting_reply",
        2: "queued",
        3: "in_doubt",
        4: "submitting",
        5: "replied",
        6: "queued",
        7: "followed_up",
    }
    assert "followed up 2026-11-24 10:00 CET" in view.describe(*reader.thread_list()[6], tz)


def test_owner_liveness_is_asked_once_per_owner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify a listing asks whether a sending process still runs once per distinct owner,
    however many rows name it, and that the answer is the same as asking for each row."""
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    for i in range(30):
        _thread(store, i)  # all submitting, by this process
    with sqlite3.connect(tmp_path / "state.db") as db:
        db.execute("UPDATE messages SET owner = ? WHERE id > 20", (DEAD_OWNER,))
    asked: list[str | None] = []
    real = view.owner_alive

    def counting(owner: str | None) -> bool:
        asked.append(owner)
        return real(owner)

    monkeypatch.setattr(view, "owner_alive", counting)
    alive, tz = view.owners_alive(), UTC
    listed = store.thread_list()
    words = [
        (
            view.describe(t, b, tz, alive),
            view.state_word(t, b, alive),
            view.thread_dict(t, b, tz, alive),
        )
        for t, b in listed
    ]
    assert sorted(asked, key=str) == sorted({m.owner for _, b in listed for m in b or []}, key=str)
    assert len(asked) == 2
    assert words == [
        (view.describe(t, b, tz), view.state_word(t, b), view.thread_dict(t, b, tz))
        for t, b in listed
    ]
    assert {w[1] for w in words} == {"submitting", "queued"}


def test_status_reads_while_another_process_holds_the_write_lock(tmp_path: Path) -> None:
    """Verify `status`, `status --json` and `status ID` answer at once while a sending
    process holds the store's write lock: they read in a deferred transaction, which takes
    no lock (BEGIN IMMEDIATE waited up to 30 s, then failed)."""
    ws, db = _workspace(tmp_path, 3)
    assert run_cli(ws, "status").returncode == 0  # the anchor is written, the store adopted
    writer = sqlite3.connect(db, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE threads SET subject = 'changing' WHERE id = 3")
        listed = run_cli(ws, "status", timeout=15)
        as_json = run_cli(ws, "status", "--json", timeout=15)
        one = run_cli(ws, "status", "2", "--explain", timeout=15)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert listed.returncode == 0, listed.stderr
    assert "hr2@company2.test" in listed.stdout and "awaiting reply" in listed.stdout
    assert as_json.returncode == 0, as_json.stderr
    assert '"subject": "Missed interview 2"' in as_json.stdout
    assert "changing" not in as_json.stdout  # the other process's uncommitted write
    assert one.returncode == 0, one.stderr
    assert one.stdout.startswith("Thread 2: ") and "decisions:" in one.stdout


def test_status_id_reads_only_its_own_thread(tmp_path: Path) -> None:
    """Verify `status ID` is untouched by damage to other threads and their messages, which
    the list still names (a damaged message marks its thread, the others are listed)."""
    ws, db = _workspace(tmp_path, 3)
    with sqlite3.connect(db) as con:
        con.execute("UPDATE threads SET facts = '{not json' WHERE id = 1")
        con.execute("UPDATE messages SET recipients = 'oops' WHERE thread_id = 3")
        (bad_message,) = con.execute("SELECT id FROM messages WHERE thread_id = 3").fetchone()

    one = run_cli(ws, "status", "2")
    assert one.returncode == 0 and one.stderr == "", one.stderr
    assert one.stdout.startswith("Thread 2: ")

    listed = run_cli(ws, "status")
    assert listed.returncode == 1
    assert "Traceback" not in listed.stderr
    assert "thread 1: facts" in listed.stderr
    assert f"message {bad_message}: recipients" in listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[2:]}
    assert set(rows) == {"2", "3"}
    assert "awaiting reply" in rows["2"] and "damaged: see the warning below" in rows["3"]

    damaged = run_cli(ws, "status", "3")
    assert damaged.returncode != 0 and f"message {bad_message}: recipients" in damaged.stderr


@pytest.mark.wire  # a fresh interpreter: what importing loads
def test_status_imports_no_library_it_does_not_use(tmp_path: Path) -> None:
    """Verify `status` off a terminal imports neither SQLAlchemy (a current SQLite store is
    read with sqlite3) nor rich, Jinja2, APScheduler, IMAPClient or yagmail; nor logging
    (nothing in it logs), nor shutil (only the sandbox's Dovecot finder uses it, and it
    loads the compression modules), nor the facts and decision modules (only a held
    thread's words need the latter)."""
    ws, _ = _workspace(tmp_path, 2)
    heavy = (
        *("sqlalchemy", "rich", "jinja2", "apscheduler", "imapclient", "yagmail", "logging"),
        "shutil",
    )
    ours = ("mailer.model.facts", "mailer.model.decision")
    code = (
        "import sys\n"
        "from mailer.cli.main import cli\n"
        "try:\n"
        "    cli(['status'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})))\n"
        f"print(sorted(set(sys.modules) & set({ours!r})))\n"
    )
    # As a pipe sees it: no terminal, and no COLUMNS asking rich for a width.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_") and k != "COLUMNS"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ws, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "hr1@company1.test" in out.stdout
    assert out.stdout.strip().splitlines()[-2:] == ["[]", "[]"]


def test_a_store_to_migrate_is_opened_in_full(tmp_path: Path) -> None:
    """Verify a store that needs work (an older schema) is not read behind the full store's
    back: open_to_read gives the full Store, which migrates it."""
    path = tmp_path / "state.db"
    _sent(Store(f"sqlite:///{path}"), 1)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
        for statement in listing.DROPS:  # a schema-3 store has none of revision 0009's
            db.execute(statement)
        db.execute("ALTER TABLE messages DROP COLUMN final_dot_at")
    opened = open_to_read(f"sqlite:///{path}")
    assert isinstance(opened, Store)
    assert [t.id for t, _ in opened.thread_list()] == [1]
    again = open_to_read(f"sqlite:///{path}")
    assert isinstance(again, StoreReader)


def test_a_piped_table_lines_up_its_columns_one_row_a_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify the table off a terminal: a header, a rule as wide as the columns, one line a
    row, the ID column right-aligned and the others left, no trailing spaces."""
    from mailer.cli.console import print_rows

    monkeypatch.delenv("COLUMNS", raising=False)
    columns = [("ID", {"justify": "right"}), ("RECIPIENT", {}), ("STATE", {})]
    rows = [
        (["7", "ana@x.test", "awaiting reply"], "cyan"),
        (["10", "b@longer-domain.test", "replied {at} 10:00"], None),
        (["11", "c@x.test", "failed: 451 try\r\nlater"], None),
    ]
    print_rows(columns, rows)
    assert capsys.readouterr().out.splitlines() == [
        "ID  RECIPIENT             STATE",
        "─" * 47,
        " 7  ana@x.test            awaiting reply",
        "10  b@longer-domain.test  replied {at} 10:00",
        "11  c@x.test              failed: 451 try later",
    ]


def test_a_piped_table_lines_up_wide_and_combining_characters_by_the_columns_they_take(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify a company in Japanese (two terminal columns a character) or with a combining
    accent (none for the accent) leaves the next column where it is in every row."""
    from mailer.cli.console import print_rows

    monkeypatch.delenv("COLUMNS", raising=False)
    columns = [("ID", {"justify": "right"}), ("COMPANY", {}), ("STATE", {})]
    rows: list[tuple[list[str], str | None]] = [
        (["1", "株式会社テスト", "awaiting reply"], None),
        (["2", "Cafe\u0301 Co", "replied"], None),
        (["3", "Acme", "sent"], None),
    ]
    print_rows(columns, rows)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "ID  COMPANY         STATE"
    assert out[2] == " 1  株式会社テスト  awaiting reply"
    assert out[3] == " 2  Cafe\u0301 Co         replied"
    assert out[4] == " 3  Acme            sent"
    assert out[1] == "─" * len(out[4].replace("sent", "awaiting reply"))


@settings(max_examples=300, deadline=None)
@given(
    when=st.datetimes(
        min_value=datetime(1000, 1, 2), max_value=datetime(9998, 12, 30), timezones=st.just(UTC)
    ),
    zone=st.sampled_from(
        ["UTC", "Europe/London", "America/New_York", "Asia/Kolkata", "Etc/GMT+12"]
    ),
)
def test_a_listed_time_reads_as_strftime_writes_it(when: datetime, zone: str) -> None:
    """Verify the listing's quick time format gives strftime's text for any time and zone."""
    tz = ZoneInfo(zone)
    expected = when.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")
    assert view.shown(when.isoformat(), tz) == expected


DAMAGE = [
    "UPDATE threads SET facts = '{not json' WHERE id = 1",
    "UPDATE threads SET facts = '[]' WHERE id = 2",
    "UPDATE threads SET detail = 'oops' WHERE id = 3",
    "UPDATE threads SET alt_domains = '{}' WHERE id = 4",
    "UPDATE threads SET follow_up_due = 'soon' WHERE id = 5",
    "UPDATE threads SET interview_at = '2026-13-45T10:00:00' WHERE id = 6",
    "UPDATE threads SET detail = '{\"a\": NaN}' WHERE id = 7",  # Python reads it; SQLite not
    "UPDATE messages SET recipients = 'oops' WHERE thread_id = 8",
    "UPDATE messages SET sent_at = '2026-99-01T00:00:00' WHERE thread_id = 9",
    "UPDATE messages SET created_at = 'yesterday' WHERE thread_id = 10",
    "UPDATE messages SET sent_at = '2026-02-30T10:00:00+00:00' WHERE thread_id = 11",
    "UPDATE messages SET final_dot_at = '2026-11-23T24:00:00+00:00' WHERE thread_id = 12",
    # What SQLite's checks take and Python refuses: whitespace or a lower-case z after a
    # date, a NUL after JSON (SQLite stops reading there), JSON nested deeper than Python goes.
    "UPDATE messages SET created_at = created_at || char(10) WHERE thread_id = 13",
    "UPDATE messages SET sent_at = replace(sent_at, '+00:00', 'z') WHERE thread_id = 14",
    "UPDATE threads SET facts = facts || char(0) WHERE id = 15",
    "UPDATE messages SET recipients = recipients || char(0) WHERE thread_id = 16",
    "UPDATE threads SET facts = '{\"a\": ' || replace(hex(zeroblob(750)), '0', '[')"
    " || replace(hex(zeroblob(750)), '0', ']') || '}' WHERE id = 17",
    # A thread whose own row and message are both damaged is named once, for its row.
    "UPDATE threads SET detail = 'x' WHERE id = 18",
    "UPDATE messages SET recipients = 'x' WHERE thread_id = 18",
    # In the shape the SQL takes without reading the date, but not a day or time there is.
    "UPDATE messages SET created_at = '2026-02-29T10:00:00+00:00' WHERE thread_id = 8",
    "UPDATE messages SET submitting_at = '2026-00-10T10:00:00+00:00' WHERE thread_id = 9",
    "UPDATE messages SET sent_at = '2026-11-23T10:60:00+00:00' WHERE thread_id = 10",
]


@pytest.mark.parametrize("damage", [*DAMAGE, "; ".join(DAMAGE)])
def test_the_status_table_lists_and_names_damage_as_the_full_listing_does(
    tmp_path: Path, damage: str
) -> None:
    """Verify the table's summaries (checked in SQL) list the same threads with the same
    words, and name the same damaged rows in the same words, as the full listing."""
    path = tmp_path / "state.db"
    store = _mixed_store(path)
    for i in range(8, 19):
        _sent(store, i)
    with sqlite3.connect(path) as db:
        for statement in damage.split("; "):
            db.execute(statement)
    tz = ZoneInfo("Europe/Berlin")
    for opened in (Store(f"sqlite:///{path}"), open_to_read(f"sqlite:///{path}")):
        full = opened.thread_list()
        named = list(opened.damaged)
        opened.damaged.clear()
        table = opened.thread_summaries()
        assert opened.damaged == named
        assert named or damage == DAMAGE[6]  # the damage was seen (NaN is no damage)
        assert [t.id for t, _ in table] == [t.id for t, _ in full]
        for (s, briefs), (t, whole) in zip(table, full, strict=True):
            assert (briefs is None) == (whole is None), t.id
            if whole is not None:
                assert view.describe(s, briefs, tz) == view.describe(t, whole, tz)
                assert view.state_word(s, briefs) == view.state_word(t, whole)
                assert view.described(s, briefs, tz) == (
                    view.describe(t, whole, tz),
                    view.state_word(t, whole),
                )


def test_status_lists_threads_whatever_the_mail_server_settings_say(tmp_path: Path) -> None:
    """Verify status, which never connects to a mail server, lists the store even when the
    [smtp] and [imap] settings are unfinished or broken."""
    ws, _ = _workspace(tmp_path, 2)
    config = ws / "config" / "mailer.toml"
    config.write_text(
        CONFIG.replace('host = "127.0.0.1"\nport = 2525', 'port = "not a port"'), encoding="utf-8"
    )
    listed = run_cli(ws, "status")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()[2:]] == ["1", "2"]
    sent = run_cli(ws, "check")
    assert sent.returncode != 0 and "smtp.port" in sent.stderr  # what connects still refuses


def test_on_a_terminal_the_style_goes_to_the_column_asked_for(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify print_rows styles the cell of ``styled_column`` (campaign run's RESULT) and
    leaves the other cells of the row as they are, in their order."""
    from mailer.cli import console

    monkeypatch.setenv("COLUMNS", "100")
    seen: list[tuple[str, str | None]] = []

    def styled(text: str, style: str | None) -> str:
        seen.append((text, style))
        return text

    monkeypatch.setattr(console, "styled", styled)
    columns = [("ENTRY", {}), ("RESULT", {}), ("THREAD", {}), ("DETAIL", {})]
    console.print_rows(columns, [(["e1", "sent", "3", "ok"], "green")], styled_column=1)
    assert seen == [("sent", "green")]
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "e1" in ln)
    assert line.split() == ["e1", "sent", "3", "ok"]


def test_status_reads_a_store_whose_permissions_it_may_not_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify a store file mailer may read and write but not chmod (another user's, shared
    through a group) is still read: tightening its mode to 0600 refused with EPERM stopped
    every command with "cannot read the state store: Operation not permitted"."""
    ws, db = _workspace(tmp_path, 2)
    real = Path.chmod

    def not_the_owner(self: Path, mode: int, **kwargs: object) -> None:
        if self == db:
            raise PermissionError(1, "Operation not permitted", str(self))
        real(self, mode, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "chmod", not_the_owner)
    listed = run_cli(ws, "status")
    assert listed.returncode == 0, listed.stderr
    assert "hr1@company1.test" in listed.stdout


def test_a_store_sqlite_cannot_open_says_what_it_needs_to_write() -> None:
    """Verify SQLite's bare "unable to open database file" (a read-only folder: no room for
    the -wal and -shm files) names the store and says what mailer must be able to write."""
    from mailer.adapters.store import _db_error

    said = _db_error(
        "sqlite:////shared/ws/state.db", sqlite3.OperationalError("unable to open database file")
    )
    assert said == (
        "sqlite:////shared/ws/state.db: unable to open database file (if the file or its "
        "folder is read-only: mailer must be able to write both, since SQLite keeps its -wal "
        "and -shm files beside the file)"
    )
    other = _db_error("sqlite:////shared/ws/state.db", sqlite3.OperationalError("disk I/O error"))
    assert other == "sqlite:////shared/ws/state.db: disk I/O error"


@pytest.mark.parametrize(("before", "after"), [(0o644, 0o600), (0o660, 0o660), (0o600, 0o600)])
def test_a_store_anyone_may_read_is_made_private_and_a_group_share_is_left(
    tmp_path: Path, before: int, after: int
) -> None:
    """Verify opening a store takes the world's access away (an older mailer's file, made
    under a 022 umask), but leaves a store shared through its group alone: tightened to
    0600 by its owner's every command, it locked the group's member out."""
    ws, db = _workspace(tmp_path, 1)
    db.chmod(before)
    assert run_cli(ws, "status").returncode == 0
    assert db.stat().st_mode & 0o777 == after


def test_campaign_messages_reads_only_the_threads_asked_for(tmp_path: Path) -> None:
    """Verify the campaign's messages come in one query, by thread, without their raw bytes,
    and only for the threads asked for: a damaged message of an entry's older thread stops
    nothing (campaign status shows each entry's latest thread; a review)."""
    from mailer.adapters.store import CorruptRowError

    path = tmp_path / "state.db"
    store = Store(f"sqlite:///{path}")
    try:
        for i in (1, 2):
            _sent(store, i)
        with sqlite3.connect(path) as db:
            db.execute("UPDATE threads SET campaign = 'wk', entry_key = 'one'")
            db.execute("UPDATE messages SET recipients = 'oops' WHERE thread_id = 1")
        found = store.campaign_messages("wk", {2})
        assert list(found) == [2]
        ((message,),) = found.values()
        assert message.raw == b"" and message.recipients == ("hr2@company2.test",)
        assert store.campaign_messages("other", {2}) == {}
        with pytest.raises(CorruptRowError, match="message 1"):
            store.campaign_messages("wk", {1, 2})
    finally:
        store.close()


def test_a_follow_up_dropped_before_it_went_reads_not_sent_not_failed(tmp_path: Path) -> None:
    """Verify status ID words a follow-up dropped while it waited (the interviewer replied)
    as "not sent": it never reached a server, and "failed" misread it (a walkthrough); one
    the server refused still reads "failed"."""
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        tid = _sent(store, 1)
        row = store.claim_follow_up(
            tid,
            NOW + timedelta(days=2),
            message_id="<f1@candidate.test>",
            raw=b"Message-ID: <f1@candidate.test>\r\n\r\nHello again.\r\n",
            envelope_from=SENDER,
            recipients=("hr1@company1.test",),
        )
        assert row is not None
        store.set_thread_state(
            tid, ThreadEvent.MARKED_REPLIED, NOW, "replied", {"replied_by": "marked by you"}
        )
        follow_up = store.message(row)
        assert follow_up.state == "failed" and follow_up.error
        assert view.message_words(follow_up) == "not sent"
        refused = replace(follow_up, submitting_at=NOW.isoformat())  # (tried, then refused)
        assert view.message_words(refused) == "failed"
    finally:
        store.close()
