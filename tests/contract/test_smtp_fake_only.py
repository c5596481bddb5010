"""FakeSmtp faults the sandbox server has no switch for. The sandbox cannot drop a
connection before DATA or refuse connections on demand, so these are proved on the fake
only; the session logic they drive is SmtpSession's own (see mailer.testing.smtp)."""

from __future__ import annotations

import pytest

from mailer.errors import DeliveryError
from mailer.testing import FakeSmtp, smtp_settings

from .conftest import message, message_id_of

USER, PASSWORD, TO = "you@sandbox.test", "pw", "them@sandbox.test"


def test_a_drop_before_data_is_retried_on_a_new_connection_and_sent_once() -> None:
    server = FakeSmtp(users={USER: PASSWORD})
    server.set_faults(drop_before_data=1)
    raw = message()
    calls: list[str] = []
    with server(smtp_settings(USER, PASSWORD), retries=1) as session:
        reply = session.submit(USER, (TO,), raw, before_mail=lambda: calls.append("mail"))
    assert reply.startswith("250 ")
    assert [m.message_id for m in server.accepted] == [message_id_of(raw)]
    assert server.connections == 2
    assert calls == ["mail"]  # the claim is made once, not once per attempt
    assert server.slept == [1.0]


def test_a_drop_before_data_with_no_retries_left_is_temporary_not_in_doubt() -> None:
    server = FakeSmtp(users={USER: PASSWORD})
    server.set_faults(drop_before_data=1)
    with (
        server(smtp_settings(USER, PASSWORD), retries=0) as session,
        pytest.raises(DeliveryError) as caught,
    ):
        session.submit(USER, (TO,), message())
    assert caught.value.kind == "connection"
    assert caught.value.temporary
    assert server.accepted == []


def test_a_server_that_refuses_connections_is_a_temporary_connection_error() -> None:
    server = FakeSmtp(users={USER: PASSWORD})
    server.set_faults(down=1)
    with pytest.raises(DeliveryError) as caught:
        server(smtp_settings(USER, PASSWORD)).connect()
    assert caught.value.kind == "connection"
    assert caught.value.temporary
