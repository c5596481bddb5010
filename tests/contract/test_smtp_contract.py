"""What mailer relies on from an SMTP server, proved on FakeSmtp and on the sandbox's
aiosmtpd (real STARTTLS, real AUTH, delivering into Dovecot)."""

from __future__ import annotations

import pytest

from mailer.errors import DeliveryError

from .conftest import SmtpWorld, message, message_id_of


def test_submit_returns_the_servers_250_reply_and_the_message_is_accepted_once(
    smtp_world: SmtpWorld,
) -> None:
    raw = message()
    with smtp_world.session() as session:
        reply = session.submit(smtp_world.sender, (smtp_world.recipient,), raw)
    assert reply.startswith("250 ")
    assert smtp_world.accepted_ids() == [message_id_of(raw)]


def test_the_bytes_arrive_identical_with_leading_dots_and_crlf_kept(
    smtp_world: SmtpWorld,
) -> None:
    body = b".a line that starts with a dot\r\n..two dots\r\n.\r\nlast line\r\n"
    raw = message(body=body)
    with smtp_world.session() as session:
        session.submit(smtp_world.sender, (smtp_world.recipient,), raw)
    (copy,) = smtp_world.delivered(message_id_of(raw))
    # A server may put trace headers (Return-Path, Delivered-To) in front; nothing else.
    assert copy.endswith(raw)
    assert b"\n" not in copy[-len(raw) :].replace(b"\r\n", b"")


def test_a_refused_recipient_is_kind_recipient_and_the_final_dot_mark_is_never_made(
    smtp_world: SmtpWorld,
) -> None:
    marks: list[str] = []
    raw = message()
    with smtp_world.session() as session, pytest.raises(DeliveryError) as caught:
        session.submit(
            smtp_world.sender,
            ("nobody-here@sandbox.test",),
            raw,
            before_final_dot=lambda: marks.append("dot"),
        )
    assert caught.value.kind == "recipient"
    assert caught.value.code == 550
    assert not caught.value.temporary
    assert marks == []
    assert smtp_world.accepted_ids() == []


def test_a_4xx_at_rcpt_is_temporary_and_nothing_is_accepted(smtp_world: SmtpWorld) -> None:
    smtp_world.set_faults(rcpt=["450 4.2.1 Mailbox busy, try later"])
    with smtp_world.session() as session, pytest.raises(DeliveryError) as caught:
        session.submit(smtp_world.sender, (smtp_world.recipient,), message())
    assert caught.value.temporary
    assert caught.value.code == 450
    assert smtp_world.accepted_ids() == []


def test_a_4xx_at_rcpt_is_retried_on_the_same_connection_and_then_accepted(
    smtp_world: SmtpWorld,
) -> None:
    smtp_world.set_faults(rcpt=["451 4.3.0 Try again"])
    raw = message()
    with smtp_world.session(retries=1) as session:
        reply = session.submit(smtp_world.sender, (smtp_world.recipient,), raw)
        assert session.logins == 1
    assert reply.startswith("250 ")
    assert smtp_world.accepted_ids() == [message_id_of(raw)]


def test_a_refused_mail_from_is_permanent_and_before_mail_ran_once(
    smtp_world: SmtpWorld,
) -> None:
    calls: list[str] = []
    smtp_world.set_faults(mail=["553 5.7.1 Sender address rejected"])
    with smtp_world.session(retries=2) as session, pytest.raises(DeliveryError) as caught:
        session.submit(
            smtp_world.sender,
            (smtp_world.recipient,),
            message(),
            before_mail=lambda: calls.append("mail"),
        )
    assert caught.value.kind == "permanent"
    assert caught.value.code == 553
    assert calls == ["mail"]


def test_before_mail_runs_before_mail_from(smtp_world: SmtpWorld) -> None:
    # The callback scripts a refusal of the next MAIL FROM: it can only take effect if
    # MAIL FROM comes after the callback.
    def before_mail() -> None:
        smtp_world.set_faults(mail=["451 4.3.0 refused after before_mail"])

    with smtp_world.session() as session, pytest.raises(DeliveryError) as caught:
        session.submit(smtp_world.sender, (smtp_world.recipient,), message(), before_mail)
    assert "refused after before_mail" in str(caught.value)


def test_before_final_dot_runs_after_the_data_and_before_the_server_accepts(
    smtp_world: SmtpWorld,
) -> None:
    seen_at_mark: list[list[str]] = []
    raw = message()
    with smtp_world.session() as session:
        session.submit(
            smtp_world.sender,
            (smtp_world.recipient,),
            raw,
            before_final_dot=lambda: seen_at_mark.append(smtp_world.accepted_ids()),
        )
    assert seen_at_mark == [[]]
    assert smtp_world.accepted_ids() == [message_id_of(raw)]


def test_a_failing_final_dot_mark_means_the_server_takes_nothing(smtp_world: SmtpWorld) -> None:
    def refuse() -> None:
        raise RuntimeError("the durable mark could not be written")

    raw = message()
    with smtp_world.session() as session, pytest.raises(RuntimeError):
        session.submit(smtp_world.sender, (smtp_world.recipient,), raw, before_final_dot=refuse)
    assert smtp_world.accepted_ids() == []
    # The session reconnects for the next message.
    raw2 = message()
    with smtp_world.session() as session:
        session.submit(smtp_world.sender, (smtp_world.recipient,), raw2)
    assert smtp_world.accepted_ids() == [message_id_of(raw2)]


def test_a_connection_dropped_after_the_final_dot_is_in_doubt_and_the_message_arrived(
    smtp_world: SmtpWorld,
) -> None:
    smtp_world.set_faults(drop_after_data=1)
    raw = message()
    with smtp_world.session(retries=3) as session, pytest.raises(DeliveryError) as caught:
        session.submit(smtp_world.sender, (smtp_world.recipient,), raw)
    assert caught.value.kind == "in-doubt"
    # Never retried: exactly one copy went.
    assert smtp_world.accepted_ids() == [message_id_of(raw)]


def test_a_refusal_of_the_finished_message_is_an_answer_not_a_doubt(
    smtp_world: SmtpWorld,
) -> None:
    smtp_world.set_faults(data=["554 5.6.0 Message content rejected"])
    with smtp_world.session() as session, pytest.raises(DeliveryError) as caught:
        session.submit(smtp_world.sender, (smtp_world.recipient,), message())
    assert caught.value.kind == "permanent"
    assert caught.value.code == 554
    assert smtp_world.accepted_ids() == []


def test_a_wrong_password_is_kind_auth_and_names_the_user_not_the_password(
    smtp_world: SmtpWorld,
) -> None:
    session = smtp_world.session(password="not-the-password-42")
    with pytest.raises(DeliveryError) as caught:
        session.connect()
    assert caught.value.kind == "auth"
    assert not caught.value.temporary
    assert smtp_world.sender in str(caught.value)
    assert "not-the-password-42" not in str(caught.value)


def test_one_session_sends_several_messages_on_one_login(smtp_world: SmtpWorld) -> None:
    raws = [message(subject=f"batch {i}") for i in range(3)]
    with smtp_world.session() as session:
        for raw in raws:
            session.submit(smtp_world.sender, (smtp_world.recipient,), raw)
        assert session.logins == 1
    assert smtp_world.accepted_ids() == [message_id_of(r) for r in raws]


def test_one_refused_recipient_of_several_sends_to_none_of_them(smtp_world: SmtpWorld) -> None:
    raw = message()
    with smtp_world.session() as session:
        with pytest.raises(DeliveryError) as caught:
            session.submit(
                smtp_world.sender, (smtp_world.recipient, "nobody-here@sandbox.test"), raw
            )
        assert caught.value.kind == "recipient"
        # Both offer PIPELINING: DATA got its 354 in the same batch, so the connection was
        # dropped before the final dot (RSET would be read as text, a lone dot would deliver
        # an empty message), and the next message goes on a new one.
        session.submit(smtp_world.sender, (smtp_world.recipient,), message())
        assert session.logins == 2
    assert message_id_of(raw) not in smtp_world.accepted_ids()
    assert smtp_world.delivered(message_id_of(raw)) == []


def test_an_envelope_written_behind_the_final_dot_serves_the_next_message_on_one_login(
    smtp_world: SmtpWorld,
) -> None:
    first, second = message(subject="ahead 1"), message(subject="ahead 2")
    envelope = (smtp_world.sender, (smtp_world.recipient,))
    with smtp_world.session() as session:
        session.submit(*envelope, first, next_envelope=envelope)
        assert session._envelope_ahead() == envelope  # (written, its replies unread)
        session.submit(*envelope, second)
        assert session.logins == 1
    assert smtp_world.accepted_ids() == [message_id_of(first), message_id_of(second)]


def test_an_envelope_written_ahead_and_refused_is_the_next_messages_refusal_only(
    smtp_world: SmtpWorld,
) -> None:
    first, refused, third = (message(subject=f"ahead refused {i}") for i in range(3))
    ahead = (smtp_world.sender, (smtp_world.recipient, "nobody-here@sandbox.test"))
    with smtp_world.session() as session:
        session.submit(smtp_world.sender, (smtp_world.recipient,), first, next_envelope=ahead)
        assert session._envelope_ahead() == ahead
        with pytest.raises(DeliveryError) as caught:
            session.submit(*ahead, refused)
        assert caught.value.kind == "recipient" and caught.value.code == 550
        session.submit(smtp_world.sender, (smtp_world.recipient,), third)
        assert session.logins == 2  # (354 came anyway: dropped before any text)
    assert smtp_world.accepted_ids() == [message_id_of(first), message_id_of(third)]
    assert smtp_world.delivered(message_id_of(refused)) == []
