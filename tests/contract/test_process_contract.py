"""What the store relies on from processes: an owner token names a process that runs until
it dies, proved on FakeProcesses and on real child processes."""

from __future__ import annotations

from mailer.adapters.store import owner_alive

from .conftest import ProcessWorld


def test_an_owner_is_alive_while_its_process_runs_and_dead_after(processes: ProcessWorld) -> None:
    token = processes.spawn()
    assert owner_alive(token)
    processes.kill(token)
    assert not owner_alive(token)


def test_another_process_on_the_same_pid_is_not_the_owner(processes: ProcessWorld) -> None:
    token = processes.spawn()
    host, boot, pid, started = token.split(":")
    assert not owner_alive(f"{host}:{boot}:{pid}:{int(started) + 1}")
    processes.kill(token)


def test_one_death_leaves_other_owners_alive(processes: ProcessWorld) -> None:
    first, second = processes.spawn(), processes.spawn()
    processes.kill(first)
    assert not owner_alive(first)
    assert owner_alive(second)
    processes.kill(second)


def test_a_token_from_another_boot_is_dead(processes: ProcessWorld) -> None:
    token = processes.spawn()
    host, _, pid, started = token.split(":")
    assert not owner_alive(f"{host}:00000000:{pid}:{started}")
    processes.kill(token)
