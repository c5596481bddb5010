"""The daemon's side of leases (#17): what a LeaseKeeper takes, keeps, loses and gives back,
on a SQLite file store (the same SQL as on PostgreSQL: see tests/contract/test_lease_contract)."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailer.adapters import process
from mailer.adapters.store import Store, owner_token
from mailer.services.leases import LeaseKeeper, daemon_id, dead_here

ACCOUNTS = ("", "bea", "cal")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        yield s
    finally:
        s.close()


def test_the_first_daemon_takes_every_free_account_and_a_second_takes_none(store: Store) -> None:
    first = LeaseKeeper(store, ACCOUNTS, 3600)
    second = LeaseKeeper(store, ACCOUNTS, 3600)
    assert first.beat() == (list(ACCOUNTS), [])
    assert second.beat() == ([], [])
    assert {r.account: r.owner for r in store.leases()} == dict.fromkeys(ACCOUNTS, first.owner)
    assert first.beat() == ([], [])  # renewed, nothing new


def test_a_lease_taken_over_is_lost_and_said_so(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    first = LeaseKeeper(store, ("",), 0)  # expires as soon as taken
    first.beat()
    second = LeaseKeeper(store, ("",), 3600)
    assert second.beat() == ([""], [])
    with caplog.at_level(logging.WARNING, logger="mailer.services.leases"):
        assert first.beat() == ([], [""])
    assert "the main account: lost its lease (epoch 1)" in caplog.text
    assert first.lease("") is None and second.lease("").epoch == 2


def test_a_clean_stop_gives_every_lease_back_for_the_next_daemon(store: Store) -> None:
    first = LeaseKeeper(store, ACCOUNTS, 3600)
    first.beat()
    first.release_all()
    assert first.held == {} and not any(r.held for r in store.leases())
    assert LeaseKeeper(store, ACCOUNTS, 3600).beat()[0] == list(ACCOUNTS)


def test_a_dead_daemon_of_this_machine_is_taken_over_before_its_lease_expires(
    store: Store,
) -> None:
    me = owner_token()
    host, boot, pid, started = me.split(":")
    ghost = f"{host}:{boot}:{pid}:{started}x:abcdef"  # this PID, another start: gone
    assert dead_here(ghost)
    assert store.acquire_lease("", ghost, 3600) is not None
    taken, _ = LeaseKeeper(store, ("",), 3600).beat()
    assert taken == [""]


def test_a_live_daemon_or_another_machines_is_never_judged_dead() -> None:
    assert not dead_here(daemon_id())  # this very process
    boot, pid, started = process.boot_mark(), os.getpid(), "1"
    assert not dead_here(f"elsewhere-{socket.gethostname()}:{boot}:{pid}:{started}:abcdef")
    assert not dead_here("not a daemon id")


def test_an_exclusive_daemon_takes_over_any_lease_left_behind(store: Store) -> None:
    """On SQLite the daemon holds the store's file lock: a lease still unexpired is a killed
    daemon's (even one from before a reboot), and is taken at once with the next epoch."""
    assert store.acquire_lease("", "otherhost:boot:1:1:abcdef", 3600) is not None
    assert LeaseKeeper(store, ("",), 3600).beat() == ([], [])
    exclusive = LeaseKeeper(store, ("",), 3600, exclusive=True)
    assert exclusive.beat() == ([""], [])
    assert exclusive.lease("").epoch == 2
