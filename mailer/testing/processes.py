"""Processes that exist only in a test, for the owner tokens the store writes.

The store names who works on a message with an owner token (host, boot, PID, start mark:
:func:`mailer.adapters.store.owner_token`) and asks :func:`mailer.adapters.store.owner_alive` whether that
process still runs, which asks :func:`mailer.adapters.process.is_running`. While installed,
:class:`FakeProcesses` makes ``owner_token()`` return the token of the fake process the test
is "being", and answers ``is_running`` for fake PIDs from its own table, so a test can say
"this owner is dead" without killing anything. Real PIDs are still asked of the system.

The daemon's file lock (:mod:`mailer.adapters.lock`) needs no fake: the kernel frees it when its
holder dies, and a test takes it with a real file in ``tmp_path``.
"""

from __future__ import annotations

import socket
from contextlib import ExitStack
from dataclasses import dataclass
from types import TracebackType
from unittest import mock

# Far above any PID a system hands out (Linux's pid_max is at most 2**22).
_FIRST_PID = 3_000_000_000


@dataclass
class FakeProcess:
    name: str
    pid: int
    started: str
    token: str
    alive: bool = True


class FakeProcesses:
    """Use as a context manager (or :meth:`install` / :meth:`uninstall`). On entry the test
    is a fresh fake process named "main" (:attr:`current`)."""

    def __init__(self) -> None:
        self.table: dict[int, FakeProcess] = {}
        self.current: FakeProcess | None = None
        self._stack: ExitStack | None = None

    def spawn(self, name: str = "") -> FakeProcess:
        from mailer.adapters import store

        pid = _FIRST_PID + len(self.table)
        started = f"{len(self.table) + 1}"
        token = f"{socket.gethostname()}:{store._boot_id()}:{pid}:{started}"
        proc = FakeProcess(name or f"process {len(self.table) + 1}", pid, started, token)
        self.table[pid] = proc
        return proc

    def become(self, proc: FakeProcess) -> FakeProcess:
        """From now on this test writes ``proc``'s token (as that process would)."""
        self.current = proc
        return proc

    def kill(self, proc: FakeProcess | None = None) -> None:
        """``proc`` (by default the current one) is gone: its tokens are a dead owner's."""
        proc = proc or self.current
        assert proc is not None
        proc.alive = False

    def restart(self, name: str = "restarted") -> FakeProcess:
        """The current process dies and a new one takes its place (a crash, then a restart)."""
        self.kill()
        return self.become(self.spawn(name))

    # --- installing ---

    def install(self) -> FakeProcesses:
        from mailer.adapters import process, store

        real_is_running, real_alive = process.is_running, process.alive

        def is_running(pid: int, started: str) -> bool:
            proc = self.table.get(pid)
            if proc is None:
                return real_is_running(pid, started)
            return proc.alive and started in ("-", proc.started)

        def alive(pid: int) -> bool:
            proc = self.table.get(pid)
            return real_alive(pid) if proc is None else proc.alive

        def owner_token() -> str:
            assert self.current is not None
            return self.current.token

        self._stack = ExitStack()
        self._stack.enter_context(mock.patch.object(process, "is_running", is_running))
        self._stack.enter_context(mock.patch.object(process, "alive", alive))
        self._stack.enter_context(mock.patch.object(store, "owner_token", owner_token))
        self.become(self.spawn("main"))
        return self

    def uninstall(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def __enter__(self) -> FakeProcesses:
        return self.install()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.uninstall()
