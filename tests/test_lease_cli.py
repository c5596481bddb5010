"""The user's side of leases (#17): ``[daemon] lease_seconds``, ``status --daemons`` and
``check`` refusing an account a live daemon's lease holds on a shared store."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from mailer.adapters.config import load_settings
from mailer.adapters.lock import LockedError
from mailer.adapters.store import Store
from mailer.errors import ConfigError, ExitCode

from .conftest import run_cli
from .postgres import Postgres

DAEMON = "host-a:boot:4242:99:abcdef"


def _on_postgres(ws: Path, postgres: Postgres, db: str) -> Store:
    config = ws / "config" / "mailer.toml"
    url = postgres.url(db, password=False)
    config.write_text(config.read_text() + f'\n[state]\nurl = "{url}"\n')
    with (ws / ".env").open("a") as env:
        env.write(f"MAILER_STATE_PASSWORD={postgres.password}\n")
    return Store(url, connect={"password": postgres.password})


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("1", "daemon.lease_seconds: must be between 2 and 86400 seconds, not 1"),
        ("100000", "daemon.lease_seconds: must be between 2 and 86400 seconds, not 100000"),
        ('"60s"', "daemon.lease_seconds: must be float, not '60s'"),
    ],
)
def test_a_bad_lease_time_is_one_line_naming_the_file_and_key(
    offline_workspace: Path, value: str, problem: str
) -> None:
    config = offline_workspace / "config" / "mailer.toml"
    config.write_text(config.read_text() + f"\n[daemon]\nlease_seconds = {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert problem in str(caught.value)
    assert str(config) in str(caught.value)


def test_the_lease_time_is_sixty_seconds_unless_set(offline_workspace: Path) -> None:
    config = offline_workspace / "config" / "mailer.toml"
    assert load_settings(config).lease_seconds == 60.0
    config.write_text(config.read_text() + "\n[daemon]\nlease_seconds = 3\n")
    assert load_settings(config).lease_seconds == 3.0


def test_status_daemons_shows_who_holds_each_account_since_when_with_its_epoch(
    offline_workspace: Path, postgres: Postgres, pg_database: str
) -> None:
    s = _on_postgres(offline_workspace, postgres, pg_database)
    try:
        s.acquire_lease("", DAEMON, 3600)
        s.acquire_lease("bea", "host-b:boot:7:1:012345", 0)  # expired at once
        rows = s.leases()
    finally:
        s.close()
    r = run_cli(offline_workspace, "status", "--daemons")
    assert r.returncode == 0, r.stderr
    header, main, bea = r.stdout.splitlines()
    assert header.split() == ["ACCOUNT", "DAEMON", "EPOCH", "SINCE", "EXPIRES"]
    assert main.split()[:3] == ["(main)", DAEMON, "1"] and main.endswith("held")
    assert bea.split()[:3] == ["bea", "host-b:boot:7:1:012345", "1"] and bea.endswith("expired")
    shown = json.loads(run_cli(offline_workspace, "status", "--daemons", "--json").stdout)
    assert [(x["account"], x["daemon"], x["epoch"], x["held"]) for x in shown["leases"]] == [
        ("", DAEMON, 1, True),
        ("bea", "host-b:boot:7:1:012345", 1, False),
    ]
    assert shown["leases"][0]["since"] == rows[0].acquired_at.isoformat()


def test_status_daemons_on_a_store_no_daemon_used_says_so(offline_workspace: Path) -> None:
    r = run_cli(offline_workspace, "status", "--daemons")
    assert (r.returncode, r.stdout) == (0, "No daemon has held a lease on this store.\n")


def test_check_refuses_an_account_a_live_daemon_holds_naming_it_the_daemon_and_since_when(
    workspace: Path, postgres: Postgres, pg_database: str
) -> None:
    s = _on_postgres(workspace, postgres, pg_database)
    try:
        lease = s.acquire_lease("", DAEMON, 3600)
        assert lease is not None
        since = s.leases()[0].acquired_at
    finally:
        s.close()
    r = run_cli(workspace, "check")
    assert r.returncode == ExitCode.LOCKED, r.stdout + r.stderr
    first = r.stderr.splitlines()[0]
    assert (
        f"the main account is leased to daemon {DAEMON} since {since:%Y-%m-%d %H:%M:%S} UTC"
        in first
    )
    assert "Traceback" not in r.stderr
    # The lease given back: check runs.
    s = Store(postgres.url(pg_database, password=False), connect={"password": postgres.password})
    try:
        assert s.release_lease(lease)
    finally:
        s.close()
    again = run_cli(workspace, "check")
    assert again.returncode == 0, again.stdout + again.stderr
    s = Store(postgres.url(pg_database, password=False), connect={"password": postgres.password})
    try:
        (row,) = s.leases()  # the check took the lease, then gave it back
        assert row.owner != DAEMON and row.epoch == 2 and not row.held
    finally:
        s.close()


def test_status_daemons_reads_a_sqlite_store_through_the_plain_reader(
    offline_workspace: Path,
) -> None:
    """Verify the read path status takes on an up-to-date SQLite store (no SQLAlchemy)
    lists leases as the full store does."""
    from mailer.adapters.config import find_config

    assert run_cli(offline_workspace, "status").returncode == 0  # makes the store
    url = load_settings(find_config(offline_workspace)).state_url
    s = Store(url)
    try:
        s.acquire_lease("", DAEMON, 3600)
    finally:
        s.close()
    from mailer.adapters.store import StoreReader, open_to_read

    reader = open_to_read(url)
    try:
        assert isinstance(reader, StoreReader)
        (row,) = reader.leases()
        assert (row.account, row.owner, row.epoch, row.held) == ("", DAEMON, 1, True)
    finally:
        reader.close()
    r = run_cli(offline_workspace, "status", "--daemons")
    assert r.stdout.splitlines()[1].split()[:3] == ["(main)", DAEMON, "1"]


BEA = """
[accounts.bea.sender]
name = "Bea Candidate"
address = "bea@sandbox.test"
[accounts.bea.smtp]
host = "127.0.0.1"
port = 1
[accounts.bea.imap]
host = "127.0.0.1"
port = 2
"""


def _check_settings(ws: Path, lease_seconds: float, extra: str = "") -> tuple[object, Store]:
    from mailer.adapters.config import find_config

    config = find_config(ws)
    config.write_text(config.read_text() + f"\n[daemon]\nlease_seconds = {lease_seconds}\n" + extra)
    settings = load_settings(config)
    return settings, Store(settings.state_url)


def test_a_check_works_under_the_daemons_leases_and_gives_them_back(
    offline_workspace: Path,
) -> None:
    """Verify ``check`` on a shared store holds every account's lease while its pass runs
    (its claims fenced by it), so a daemon starting meanwhile takes nothing, and gives the
    leases back at the end, so the daemon takes them at once."""
    from mailer.services.leases import LeaseKeeper, check_under_leases
    from mailer.services.passes import PassReport

    settings, store = _check_settings(offline_workspace, 3600)
    seen: list[tuple[str, object, list[str]]] = []
    daemon = LeaseKeeper(store, settings.account_names, 3600)  # type: ignore[attr-defined]

    def one_pass(account: object) -> PassReport:
        name = account.account  # type: ignore[attr-defined]
        gained, _ = daemon.beat()  # a daemon starting during the check
        seen.append((name, store.lease, gained))
        return PassReport()

    try:
        check_under_leases(settings, store, one_pass)  # type: ignore[arg-type]
        assert [(n, lease.account if lease else None, g) for n, lease, g in seen] == [
            (n, n, [])
            for n in settings.account_names  # type: ignore[attr-defined]
        ]
        assert not [r for r in store.leases() if r.held]  # given back
        assert daemon.beat()[0] == list(settings.account_names)  # type: ignore[attr-defined]
    finally:
        store.close()


def test_a_check_longer_than_the_lease_keeps_it_renewed(offline_workspace: Path) -> None:
    """Verify the leases a check holds are renewed while its pass runs past the lease time:
    a daemon trying meanwhile still takes nothing."""
    from mailer.services.leases import LeaseKeeper, check_under_leases
    from mailer.services.passes import PassReport

    settings, store = _check_settings(offline_workspace, 4)
    daemon = LeaseKeeper(store, settings.account_names, 4)  # type: ignore[attr-defined]
    taken: list[list[str]] = []

    def one_pass(account: object) -> PassReport:
        started = time.monotonic()
        (row,) = [r for r in store.leases() if r.account == account.account]  # type: ignore[attr-defined]
        while time.monotonic() - started < 5:  # past the lease time of 4 s
            (now,) = [r for r in store.leases() if r.account == row.account]
            taken.append(daemon.beat()[0])
            time.sleep(0.1)  # a pass at work; the polls above are what the test checks
        assert now.expires_at > row.expires_at  # renewed meanwhile
        return PassReport()

    try:
        check_under_leases(settings, store, one_pass)  # type: ignore[arg-type]
        assert taken and all(t == [] for t in taken)
    finally:
        store.close()


def test_an_account_lost_during_a_check_is_named_and_not_worked_on(
    offline_workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Verify a lease taken from a running check (another daemon took it over) makes the
    check pass that account by, with a problem naming it, and work on the others."""
    from mailer.services.leases import check_under_leases
    from mailer.services.passes import PassReport

    settings, store = _check_settings(offline_workspace, 3, BEA)
    assert settings.account_names == ("", "bea")  # type: ignore[attr-defined]
    worked: list[str] = []

    def one_pass(account: object) -> PassReport:
        name = account.account  # type: ignore[attr-defined]
        worked.append(name)
        if name == "":
            (bea,) = [r for r in store.leases() if r.account == "bea"]
            assert store.acquire_lease("bea", DAEMON, 3600, dead_owner=bea.owner) is not None
            deadline = time.monotonic() + 30
            while "bea': lost its lease" not in caplog.text:  # the check's renewal saw it
                assert time.monotonic() < deadline, caplog.text
                time.sleep(0.05)
        return PassReport()

    try:
        with caplog.at_level(logging.WARNING, logger="mailer.services.leases"):
            report = check_under_leases(settings, store, one_pass)  # type: ignore[arg-type]
        assert worked == [""]
        assert any(
            "account 'bea': lost its lease during this check" in p for p in report.problems
        ), report.problems
        assert "this check no longer works on it" in caplog.text
        assert {r.account: (r.owner, r.held) for r in store.leases()} == {
            "": (store.leases()[0].owner, False),  # given back
            "bea": (DAEMON, True),  # the other daemon's still
        }
    finally:
        store.close()


def test_a_check_that_fails_midway_still_gives_its_leases_back(offline_workspace: Path) -> None:
    """Verify an error inside the pass ends the renewals and releases every lease."""
    import threading

    from mailer.services.leases import check_under_leases

    settings, store = _check_settings(offline_workspace, 3, BEA)

    def one_pass(account: object) -> object:
        raise RuntimeError("the pass broke")

    try:
        with pytest.raises(RuntimeError, match="the pass broke"):
            check_under_leases(settings, store, one_pass)  # type: ignore[arg-type]
        assert not [r for r in store.leases() if r.held]
        assert not [t for t in threading.enumerate() if t.name == "leases"]
    finally:
        store.close()


def test_a_check_asked_to_stop_begins_no_further_account_and_gives_its_leases_back(
    offline_workspace: Path,
) -> None:
    """Verify a stop (SIGTERM) during a check's first account ends the check after that
    account's pass: the next account is not begun, the report says it stopped, and every
    lease is given back."""
    import threading

    from mailer.services.leases import check_under_leases
    from mailer.services.passes import PassReport

    settings, store = _check_settings(offline_workspace, 3600, BEA)
    stop = threading.Event()
    worked: list[str] = []

    def one_pass(account: object) -> PassReport:
        worked.append(account.account)  # type: ignore[attr-defined]
        stop.set()
        return PassReport()

    try:
        report = check_under_leases(settings, store, one_pass, stop)  # type: ignore[arg-type]
        assert worked == [""] and report.stopped
        assert not [r for r in store.leases() if r.held]
    finally:
        store.close()


def test_a_check_refused_by_another_running_check_says_so(offline_workspace: Path) -> None:
    """Verify a check refused because another check holds an account names it as a
    'mailer check' run (not a daemon) and says to wait for it."""
    from mailer.services.leases import CHECK, check_under_leases, daemon_id, is_check

    settings, store = _check_settings(offline_workspace, 3600)
    other = "elsewhere:" + daemon_id(CHECK).split(":", 1)[1]  # another machine's check
    assert is_check(other) and not is_check(DAEMON)
    try:
        assert store.acquire_lease("", other, 3600) is not None
        with pytest.raises(LockedError) as caught:
            check_under_leases(settings, store, lambda account: None)  # type: ignore[arg-type]
        assert f"the main account is leased to 'mailer check' run {other} since" in str(
            caught.value
        )
        assert "it is doing this work now" in str(caught.value)
        assert caught.value.hint.startswith("wait for it to finish")
    finally:
        store.close()
