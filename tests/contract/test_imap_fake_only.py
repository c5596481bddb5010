"""FakeImap behaviour with no switch on the sandbox's Dovecot from a contract test. The real
side of a dropped IDLE connection is tests/test_daemon.py (Dovecot restarted, sessions
killed)."""

from __future__ import annotations

import threading
import time

import pytest

from mailer.errors import DeliveryError
from mailer.services.daemon import IdleWatcher
from mailer.testing import FakeImap, imap_settings

from .conftest import message

USER, PASSWORD = "you@sandbox.test", "pw"


def test_idle_watcher_reconnects_after_a_drop_and_still_wakes_on_new_mail() -> None:
    server = FakeImap({USER: PASSWORD})
    settings = imap_settings(USER, PASSWORD)
    wakes: list[float] = []
    stop = threading.Event()
    watcher = IdleWatcher(settings, lambda: wakes.append(time.monotonic()), stop, mailbox=server)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:

        def idling() -> bool:
            return any(s._idling for s in server.sessions)

        deadline = time.monotonic() + 5
        while not idling() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert idling()
        first = server.sessions[0]
        server.drop_connections()
        # A new session (after the watcher's 1 s backoff) catches up with a wake, then idles.
        deadline = time.monotonic() + 10
        while not any(s is not first and s._idling for s in server.sessions):
            assert time.monotonic() < deadline, "the watcher did not reconnect"
            time.sleep(0.01)
        woken = len(wakes)
        server.deliver("INBOX", message())
        deadline = time.monotonic() + 5
        while len(wakes) == woken and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(wakes) > woken
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_a_server_that_refuses_connections_is_a_temporary_connection_error() -> None:
    server = FakeImap({USER: PASSWORD})
    server.down = 1
    box = server(imap_settings(USER, PASSWORD))
    with pytest.raises(DeliveryError) as caught:
        box.connect()
    assert caught.value.kind == "connection"
    assert caught.value.temporary
    box.connect()  # the next try gets through
    box.close()
