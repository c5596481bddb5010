"""``mailer store migrate`` and ``mailer store copy --to`` (#17), against the tests' real
PostgreSQL and SQLite files."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from mailer.adapters.store import ALEMBIC_HEAD, SCHEMA_VERSION, Store

from .conftest import Pair, run_cli
from .postgres import Postgres

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
CURRENT = f"schema {SCHEMA_VERSION}, Alembic revision {ALEMBIC_HEAD}"


def _with_state(ws: Path, table: str) -> None:
    config = ws / "config" / "mailer.toml"
    config.write_text(config.read_text() + "\n[state]\n" + table)


def _fill(url: str, n: int) -> list[bytes]:
    """``n`` threads, each with an apology sent and an event or two; their raw messages."""
    s = Store(url)
    raws = []
    for i in range(n):
        raw = f"Subject: Sorry {i}\r\n\r\nSorry.\r\n".encode() + bytes(range(256))
        _, mid = s.create_thread(
            now=NOW,
            facts={
                "to": f"ana{i}@sandbox.test",
                "interviewer": "Ana",
                "company": "Acme",
                "role": "Dev",
                "situation": "illness",
                "interview": "2026-11-25T10:00:00+00:00",
            },
            key=f"key-{i}",
            subject=f"Sorry {i}",
            message_id=f"<a{i}@sandbox.test>",
            raw=raw,
            envelope_from="you@sandbox.test",
            recipients=(f"ana{i}@sandbox.test",),
            follow_up_wait="3 days",
            max_follow_ups=1,
            guard_duplicates=True,
        )
        s.mark_submitting(mid, NOW)
        s.mark_final_dot(mid, NOW)
        s.mark_sent(mid, NOW, "250 OK", NOW)
        raws.append(raw)
    s.set_folder_state("INBOX", 4_000_000_000, 12)
    s.close()
    return raws


def test_store_migrate_brings_an_old_sqlite_store_up_once(offline_workspace: Path) -> None:
    state = offline_workspace / ".mailer" / "state.db"
    _fill(f"sqlite:///{state}", 1)
    with sqlite3.connect(state) as db:
        db.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
        db.execute("DROP TABLE alembic_version")
    first = run_cli(offline_workspace, "store", "migrate")
    assert first.returncode == 0, first.stderr
    assert first.stdout == (
        f"Migrated sqlite:///{state}: schema 4 -> 5 (hand-rolled steps); stamped Alembic "
        f"revision 0005_baseline; Alembic revision 0006_leases; Alembic revision 0007_dedupe_keys; "
        f"Alembic revision 0008_incoming_indexes; Alembic revision {ALEMBIC_HEAD}. It is now at {CURRENT}.\n"
    )
    again = run_cli(offline_workspace, "store", "migrate")
    assert again.stdout == f"sqlite:///{state} is already at {CURRENT}: nothing to do.\n"


def test_store_migrate_makes_a_new_postgresql_store_then_has_nothing_to_do(
    offline_workspace: Path, postgres: Postgres, pg_database: str
) -> None:
    _with_state(offline_workspace, f'url = "{postgres.url(pg_database, password=False)}"\n')
    env = {"MAILER_STATE_PASSWORD": postgres.password}
    shown = postgres.url(pg_database, password=False)
    first = run_cli(offline_workspace, "store", "migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout == (
        f"Migrated {shown}: a new store, made by Alembic revision 0005_baseline, 0006_leases, "
        f"0007_dedupe_keys, 0008_incoming_indexes, {ALEMBIC_HEAD}. "
        f"It is now at {CURRENT}.\n"
    )
    again = run_cli(offline_workspace, "store", "migrate", env=env)
    assert again.stdout == f"{shown} is already at {CURRENT}: nothing to do.\n"


def test_store_without_its_password_is_one_line_naming_the_variable(
    offline_workspace: Path, postgres: Postgres, pg_database: str
) -> None:
    _with_state(offline_workspace, f'url = "{postgres.url(pg_database, password=False)}"\n')
    r = run_cli(offline_workspace, "store", "migrate")
    assert r.returncode != 0
    assert "state: no password for the state store" in r.stderr
    assert "MAILER_STATE_PASSWORD" in r.stderr and "Traceback" not in r.stderr


def test_store_copy_moves_every_row_to_postgresql_and_status_reads_it_there(
    offline_workspace: Path, postgres: Postgres, pg_database: str
) -> None:
    state = offline_workspace / ".mailer" / "state.db"
    raws = _fill(f"sqlite:///{state}", 3)
    target = postgres.url(pg_database, password=False)
    env = {"MAILER_STATE_PASSWORD": postgres.password}
    before = run_cli(offline_workspace, "status").stdout  # also anchors the workspace

    r = run_cli(offline_workspace, "store", "copy", "--to", target, env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == (
        f"Copied sqlite:///{state} to {target} in one transaction; rows per table, the same "
        "on both sides:"
    )
    counts = dict(line.split() for line in lines[1:-1])
    db = sqlite3.connect(state)
    for table, count in counts.items():
        assert int(count) == db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0], table
    store_id = db.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0]
    db.close()
    assert counts["threads"] == "3" and counts["messages"] == "3" and counts["folders"] == "1"
    with psycopg.connect(postgres.url(pg_database)) as pg:
        assert [r[0] for r in pg.execute("SELECT raw FROM messages ORDER BY id")] == raws
        assert pg.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0] == (
            store_id
        )  # the same store, moved: the workspace's anchor still knows it
        assert pg.execute("SELECT last_uid, uidvalidity FROM folders").fetchone() == (
            12,
            4_000_000_000,
        )

    # Pointed at the copy, mailer sees the same history, and new rows get new ids.
    _with_state(offline_workspace, f'url = "{target}"\n')
    after = run_cli(offline_workspace, "status", env=env)
    assert after.returncode == 0, after.stderr
    assert after.stdout == before
    copy = Store(target, connect={"password": postgres.password})
    _, mid = copy.create_thread(
        now=NOW,
        facts={
            "to": "bo@sandbox.test",
            "interviewer": "Bo",
            "company": "Beta",
            "role": "Dev",
            "situation": "illness",
            "interview": "2026-11-26T10:00:00+00:00",
        },
        key="key-new",
        subject="Sorry new",
        message_id="<new@sandbox.test>",
        raw=b"new",
        envelope_from="you@sandbox.test",
        recipients=("bo@sandbox.test",),
        follow_up_wait="3 days",
        max_follow_ups=1,
        guard_duplicates=True,
    )
    assert mid == 4
    copy.close()


def test_store_copy_refuses_a_target_that_is_not_empty(
    offline_workspace: Path, postgres: Postgres, pg_database: str
) -> None:
    _fill(f"sqlite:///{offline_workspace / '.mailer' / 'state.db'}", 1)
    target = postgres.url(pg_database, password=False)
    env = {"MAILER_STATE_PASSWORD": postgres.password}
    assert run_cli(offline_workspace, "store", "copy", "--to", target, env=env).returncode == 0
    again = run_cli(offline_workspace, "store", "copy", "--to", target, env=env)
    assert again.returncode != 0 and again.stdout == ""
    (line,) = again.stderr.splitlines()
    assert line.startswith(
        f"mailer: error: {target}: the target store is not empty (table threads has rows); "
        "copy only into a new, empty database"
    )
    with psycopg.connect(postgres.url(pg_database)) as pg:
        assert pg.execute("SELECT COUNT(*) FROM threads").fetchone()[0] == 1


@pytest.mark.parametrize(
    ("to", "problem"),
    [
        ("postgresql://mailer:hunter2@127.0.0.1/m", "--to: state.url: holds a password"),
        ("postgresql://127.0.0.1/m", "--to: state.url: must name a user, a host and a database"),
    ],
)
def test_store_copy_refuses_a_bad_target_url_in_one_line(
    offline_workspace: Path, to: str, problem: str
) -> None:
    r = run_cli(offline_workspace, "store", "copy", "--to", to)
    assert r.returncode != 0
    assert problem in r.stderr and "hunter2" not in r.stderr + r.stdout
    assert "Traceback" not in r.stderr


@pytest.mark.integration
def test_send_and_check_on_a_postgresql_store_against_the_real_servers(
    pair: Pair, postgres: Postgres, pg_database: str
) -> None:
    """Verify the whole loop on PostgreSQL: an apology is sent and recorded, the same one is
    refused as a duplicate, and a watch pass runs on that store."""
    import json

    _with_state(pair.ws, f'url = "{postgres.url(pg_database, password=False)}"\n')
    env = {"MAILER_STATE_PASSWORD": postgres.password}
    args = ["--situation", "illness", "--to", pair.interviewer, "--interviewer", "Ana Ruiz"]
    args += ["--company", "Pg Ltd", "--role", "Engineer", "--interview", "2026-11-25 09:00"]
    first = run_cli(pair.ws, "send", *args, "--yes", env=env)
    assert first.returncode == 0, first.stderr
    second = run_cli(pair.ws, "send", *args, "--yes", env=env)
    assert second.returncode == 7 and "already holds an apology" in second.stderr
    check = run_cli(pair.ws, "check", env=env)
    assert check.returncode == 0, check.stderr
    status = json.loads(run_cli(pair.ws, "status", "--json", env=env).stdout)
    (thread,) = status["threads"]
    assert thread["state"] == "awaiting_reply"
    with psycopg.connect(postgres.url(pg_database)) as pg:
        assert pg.execute("SELECT state FROM messages").fetchall() == [("sent",)]


def test_revision_0007_rewrites_the_keys_of_a_postgresql_store(
    postgres: Postgres, pg_database: str
) -> None:
    """Verify revision 0007 on PostgreSQL: a store at 0006 with keys that name the company
    gets keys of recipient and instant only, and refuses the same interview spelt otherwise."""
    from mailer.errors import DuplicateError
    from mailer.model.keys import dedupe_key

    url = postgres.url(pg_database)
    when = datetime(2026, 11, 19, 9, 0, tzinfo=UTC)
    store = Store(url)
    store.create_thread(
        now=when,
        facts={
            "to": "ana@x.test",
            "interviewer": "Ana",
            "company": "Acme",
            "role": "Dev",
            "situation": "illness",
            "interview": when.isoformat(),
        },
        key="ana@x.test|acme|" + when.isoformat(),
        subject="Sorry",
        message_id="<pg-0007@x.test>",
        raw=b"Message-ID: <pg-0007@x.test>\r\n\r\nSorry.\r\n",
        envelope_from="me@x.test",
        recipients=("ana@x.test",),
        follow_up_wait="3d",
        max_follow_ups=1,
        guard_duplicates=True,
    )
    store.close()
    with psycopg.connect(
        postgres.url(pg_database).replace("postgresql+psycopg", "postgresql")
    ) as c:
        c.execute("UPDATE alembic_version SET version_num = '0006_leases'")
    again = Store(url)
    try:
        assert again.migrated == [
            "Alembic revision 0007_dedupe_keys",
            "Alembic revision 0008_incoming_indexes",
            f"Alembic revision {ALEMBIC_HEAD}",
        ]
        (thread,) = again.threads()
        assert thread.dedupe_key == dedupe_key("ana@x.test", when)
        with pytest.raises(DuplicateError, match=r"\(at Acme\)"):
            again.guard_duplicate(dedupe_key("ANA@x.test", when), "ana@x.test", when)
    finally:
        again.close()
