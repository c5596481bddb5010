"""The tests' own PostgreSQL (tests/postgres.py): what it must be for the store's tests on it
to mean anything (#17)."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg
import pytest

from .postgres import ROLE, Postgres, bindir


def test_a_login_without_the_password_is_refused(postgres: Postgres, pg_database: str) -> None:
    """Verify there is no trust line: the mailer role must give its password over TCP."""
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(postgres.url(pg_database, password=False), connect_timeout=5)


def test_a_wrong_password_is_refused(postgres: Postgres, pg_database: str) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            host=postgres.host,
            port=postgres.port,
            user=ROLE,
            password="not-" + postgres.password,
            dbname=pg_database,
            connect_timeout=5,
        )


def test_passwords_are_stored_as_scram(postgres: Postgres) -> None:
    with postgres.admin() as c:
        stored = c.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (ROLE,))
        assert str(stored.fetchone()[0]).startswith("SCRAM-SHA-256$")
        assert c.execute("SHOW password_encryption").fetchone()[0] == "scram-sha-256"


def test_the_server_runs_as_an_ordinary_user_on_loopback_only(postgres: Postgres) -> None:
    with postgres.admin() as c:
        assert c.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"
        assert c.execute("SELECT current_setting('unix_socket_directories')").fetchone()[0] == (
            str(postgres.root / "s")
        )
    pid = int((postgres.data / "postmaster.pid").read_text().split()[0])
    assert Path(f"/proc/{pid}").stat().st_uid != 0
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", postgres.port)) == 0


def test_the_mailer_role_can_use_a_fresh_database(postgres: Postgres, pg_database: str) -> None:
    with psycopg.connect(postgres.url(pg_database), connect_timeout=5) as c:
        c.execute("CREATE TABLE t (x int)")
        c.execute("INSERT INTO t VALUES (1)")
        assert c.execute("SELECT count(*) FROM t").fetchone()[0] == 1


def test_missing_binaries_fail_with_the_setup_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Verify a machine without PostgreSQL fails (never skips) and names scripts/setup.sh."""
    monkeypatch.setattr("glob.glob", lambda pattern: [])
    with pytest.raises(AssertionError, match=r"scripts/setup\.sh"):
        bindir()
