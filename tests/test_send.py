"""Over the wire: the apology really goes out, arrives whole, and is filed in Sent."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailer.adapters.config import find_config, load_settings
from mailer.adapters.sender import InDoubtError, SmtpSession
from mailer.adapters.store import Store
from mailer.errors import DeliveryError
from mailer.model import apology
from mailer.model.facts import make_facts
from mailer.services import sending

from .conftest import INTERVIEWER, SENDER, Stack, run_cli, send_args, write_config

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def message_id_from(output: str) -> str:
    m = re.search(r"Message-ID (<[^>]+>)", output)
    assert m, output
    return m.group(1)


def settings_for(ws: Path):
    return load_settings(find_config(ws), need_secrets=True)


def facts(settings, company: str = "Acme", interviewer: str = "Ana Ruiz", **kw):
    from zoneinfo import ZoneInfo

    return make_facts(
        situation=kw.pop("situation", "illness"),
        to=kw.pop("to", INTERVIEWER),
        interviewer=interviewer,
        company=company,
        role="Data Engineer",
        interview=kw.pop("interview", "2026-11-25 10:00"),
        tz=ZoneInfo("Europe/London"),
        allow_test_domains=True,
        **kw,
    )


def test_sent_apology_arrives_in_inbox_with_headers_and_text(stack: Stack, workspace: Path) -> None:
    """Verify `mailer send` delivers the apology with our Message-ID, names and text."""
    r = run_cli(workspace, *send_args(company="Arrival Ltd", free="2026-12-01 09:00-12:00"))
    assert r.returncode == 0, r.stderr
    mid = message_id_from(r.stdout)
    copies = stack.messages_with_id(INTERVIEWER, mid)
    assert len(copies) == 1
    msg = message_from_bytes(copies[0], policy=default)
    assert msg["From"] == f"Sam Candidate <{SENDER}>"
    assert msg["To"] == f"Ana Ruiz <{INTERVIEWER}>"
    assert msg["Message-ID"] == mid and mid.endswith("@sandbox.test>")
    assert msg["Subject"].startswith(
        "Apologies for missing our interview at Arrival Ltd on Wednesday 25 November"
    )
    assert msg["Date"]
    body = msg.get_body(("plain",)).get_content()
    assert "Dear Ana," in body  # the first name: no --salutation given
    assert "Data Engineer role at Arrival Ltd" in body
    assert "Tuesday 1 December, 09:00–12:00" in body
    assert "<br>" not in body and "<" not in body.replace("<" + SENDER, "")
    assert "Follow-up due:" in r.stdout


def test_sent_copy_is_byte_identical_to_what_was_submitted(stack: Stack, workspace: Path) -> None:
    """Verify the Sent folder holds exactly the bytes that went to SMTP."""
    r = run_cli(workspace, *send_args(company="Bytes Inc"))
    assert r.returncode == 0, r.stderr
    mid = message_id_from(r.stdout)
    store = Store(settings_for(workspace).state_url)
    (thread,) = store.threads()
    (row,) = store.messages(thread.id)
    sent_copies = stack.messages_with_id(SENDER, mid, folder="Sent")
    assert sent_copies == [row.raw]
    delivered = stack.messages_with_id(INTERVIEWER, mid)[0]
    # LMTP adds Return-Path/Delivered-To/Received on top; what follows is ours, unchanged.
    assert delivered.endswith(row.raw)


def test_three_messages_in_one_session_use_one_connection_and_one_auth(
    stack: Stack, workspace: Path
) -> None:
    """Verify a batch reuses one SMTP connection and logs in once (server log)."""
    settings = settings_for(workspace)
    store = Store(settings.state_url)
    mark = stack.log_mark()
    with SmtpSession(settings.smtp) as session:
        results = [
            sending.send(
                settings,
                apology.prepare(
                    settings,
                    facts(settings, company=f"Batch {i}", interview=f"2026-11-25 1{i}:00"),
                    NOW,
                ),
                store,
                lambda: NOW,
                session=session,
            )
            for i in range(3)
        ]
    events = stack.log_since(mark)
    smtp_connects = [e for e in events if e["event"] == "connect"]
    auths = [e for e in events if e["event"] == "auth"]
    accepted = [e for e in events if e["event"] == "accepted"]
    assert len(smtp_connects) == 1
    assert len(auths) == 1 and auths[0]["ok"]
    assert [e["message_id"] for e in accepted] == [r.message_id for r in results]
    assert len({tuple(e["peer"]) for e in accepted}) == 1


def test_non_ascii_names_and_subject_survive(stack: Stack, tmp_path: Path) -> None:
    """Verify UTF-8 names in From, To and the text arrive intact."""
    ws = write_config(tmp_path / "ws", stack.info)
    cfg = ws / "config" / "mailer.toml"
    cfg.write_text(cfg.read_text().replace('"Sam Candidate"', '"Zoë Brontë-Łukasiewicz"'))
    r = run_cli(
        ws,
        "send",
        "--situation",
        "technical",
        "--to",
        INTERVIEWER,
        "--interviewer",
        "José Müller",
        "--salutation",
        "Señor Müller",
        "--company",
        "Café Ñandú",
        "--role",
        "Ingénieur",
        "--interview",
        "2026-11-25 10:00",
        "--yes",
    )
    assert r.returncode == 0, r.stderr
    msg = message_from_bytes(
        stack.messages_with_id(INTERVIEWER, message_id_from(r.stdout))[0], policy=default
    )
    assert msg["From"].addresses[0].display_name == "Zoë Brontë-Łukasiewicz"
    assert msg["To"].addresses[0].display_name == "José Müller"
    assert "Zoë Brontë-Łukasiewicz" in msg["Subject"]
    body = msg.get_body(("plain",)).get_content()
    assert "Dear Señor Müller," in body and "Ingénieur role at Café Ñandú" in body
    assert "Café Ñandú" in msg["Subject"]


@pytest.mark.parametrize("security", ["ssl", "plain"])
def test_smtps_and_plain_loopback_deliver(stack: Stack, tmp_path: Path, security: str) -> None:
    """Verify implicit TLS (465-style) and plaintext to loopback both deliver."""
    ws = write_config(tmp_path / "ws", stack.info, security=security)
    r = run_cli(ws, *send_args(company=f"Mode {security}"))
    assert r.returncode == 0, r.stderr
    assert len(stack.messages_with_id(INTERVIEWER, message_id_from(r.stdout))) == 1


def test_wrong_password_is_one_line_naming_host_and_port(stack: Stack, tmp_path: Path) -> None:
    """Verify a bad password fails cleanly, records a failure and never prints the password."""
    ws = write_config(tmp_path / "ws", stack.info, password="Wr0ng-Pa55word")
    r = run_cli(ws, *send_args(company="Auth Fail"))
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert f"SMTP {stack.info.host}:{stack.info.smtp_port}: authentication failed" in lines[0]
    assert "Wr0ng-Pa55word" not in r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    status = run_cli(ws, "status")
    assert "failed" in status.stdout


def test_refused_recipient_is_reported_and_not_recorded_as_sent(
    stack: Stack, workspace: Path
) -> None:
    """Verify a 550 at RCPT gives one line and the thread is failed, not sent."""
    r = run_cli(workspace, *send_args(to="nobody-here@sandbox.test", company="Refused"))
    assert r.returncode != 0
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "recipient <nobody-here@sandbox.test> refused: 550" in r.stderr
    assert f"{stack.info.host}:{stack.info.smtp_port}" in r.stderr
    assert "failed" in run_cli(workspace, "status").stdout


def test_untrusted_certificate_is_refused(stack: Stack, tmp_path: Path) -> None:
    """Verify TLS is verified by default: the sandbox CA is unknown without ca_file."""
    ws = write_config(tmp_path / "ws", stack.info, ca=False)
    mark = stack.log_mark()
    r = run_cli(ws, *send_args(company="Untrusted"))
    assert r.returncode != 0
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "TLS certificate not trusted" in r.stderr
    assert not [e for e in stack.log_since(mark) if e["event"] in ("auth", "accepted")]


def test_temporary_refusal_before_data_is_retried(stack: Stack, workspace: Path) -> None:
    """Verify a 451 at MAIL FROM is retried and the message then goes out once."""
    settings = settings_for(workspace)
    stack.set_faults(mail=["451 4.3.0 try again later", "451 4.3.0 try again later"])
    store = Store(settings.state_url)
    delays: list[float] = []
    with SmtpSession(settings.smtp, sleep=delays.append) as session:
        result = sending.send(
            settings,
            apology.prepare(settings, facts(settings, company="Retry Co"), NOW),
            store,
            lambda: NOW,
            session=session,
        )
    assert delays == [1.0, 2.0]
    assert len(stack.messages_with_id(INTERVIEWER, result.message_id)) == 1


def test_permanent_refusal_fails_at_once(stack: Stack, workspace: Path) -> None:
    """Verify a 554 at end of DATA fails without retry and is recorded as failed."""
    settings = settings_for(workspace)
    stack.set_faults(data=["554 5.7.1 message rejected as spam"])
    store = Store(settings.state_url)
    delays: list[float] = []
    prepared = apology.prepare(settings, facts(settings, company="Spam Check"), NOW)
    with (
        pytest.raises(DeliveryError, match=r"554 5\.7\.1") as info,
        SmtpSession(settings.smtp, sleep=delays.append) as s,
    ):
        sending.send(settings, prepared, store, lambda: NOW, session=s)
    assert info.value.kind == "permanent"
    assert delays == []
    (thread,) = store.threads()
    assert store.messages(thread.id)[0].state == "failed"
    assert stack.messages_with_id(INTERVIEWER, prepared.composed.message_id) == []


def test_lost_reply_after_data_is_in_doubt_and_not_resent(stack: Stack, workspace: Path) -> None:
    """Verify a connection dropped after the final dot is recorded in doubt, not retried."""
    settings = settings_for(workspace)
    stack.set_faults(drop_after_data=1)
    store = Store(settings.state_url)
    prepared = apology.prepare(settings, facts(settings, company="Doubt Ltd"), NOW)
    with (
        pytest.raises(InDoubtError) as caught,
        SmtpSession(settings.smtp, sleep=lambda _: None) as s,
    ):
        sending.send(settings, prepared, store, lambda: NOW, session=s)
    assert len(stack.messages_with_id(INTERVIEWER, prepared.composed.message_id)) == 1
    # The hint names the thread: the user has nothing else that says which one.
    (thread,) = [t.id for t in store.threads() if t.company == "Doubt Ltd"]
    hint = caught.value.hint
    assert f"'mailer resolve {thread} --sent' if it arrived or if you cannot find out" in hint
    # mailer files Sent only after the 250: pointing the user there would read as "it did not
    # arrive", and their --resend would deliver this message a second time.
    assert "Sent folder cannot tell" in hint and "look in your Sent folder" not in hint
    r = run_cli(workspace, "status")
    assert "in doubt" in r.stdout
    again = run_cli(workspace, *send_args(company="Doubt Ltd"))
    assert again.returncode != 0 and "already holds an apology" in again.stderr
    assert len(stack.messages_with_id(INTERVIEWER, prepared.composed.message_id)) == 1


def test_second_send_of_same_interview_is_refused_unless_again(
    stack: Stack, workspace: Path
) -> None:
    """Verify the duplicate guard: same recipient, company and time -> refused; --again sends."""
    first = run_cli(workspace, *send_args(company="Twice Corp"))
    assert first.returncode == 0, first.stderr
    second = run_cli(workspace, *send_args(company="twice corp"))
    assert second.returncode == 7
    assert "already holds an apology" in second.stderr
    third = run_cli(workspace, *send_args(company="Twice Corp"), "--again")
    assert third.returncode == 0, third.stderr
    assert message_id_from(third.stdout) != message_id_from(first.stdout)


def test_the_same_send_typed_again_after_midnight_is_refused_while_the_first_is_open(
    stack: Stack, workspace: Path
) -> None:
    """Verify a command with "today 09:00" typed again just after midnight, which names
    another interview, is refused while the first apology to that person and company is
    open (it sent a second apology, asking to move an interview that did not exist; a
    newcomer walkthrough), naming the open thread; --again sends it; another company's
    apology to the same recruiter goes."""
    mark = stack.log_mark()
    args = send_args(company="Midnight Ltd", interview="today 09:00")
    first = run_cli(workspace, *args, env={"MAILER_NOW": "2026-11-25T23:59:30+00:00"})
    assert first.returncode == 0, first.stderr
    second = run_cli(workspace, *args, env={"MAILER_NOW": "2026-11-26T00:00:30+00:00"})
    assert second.returncode == 7, second.stdout + second.stderr
    line = second.stderr.splitlines()[0]
    assert "is still open with an apology to" in line and "2026-11-25 09:00" in line, line
    assert "--again" in second.stderr
    spelt = send_args(company="MIDNIGHT", interview="today 11:00")  # (the legal form left off)
    assert run_cli(workspace, *spelt).returncode == 7
    other = run_cli(
        workspace,
        *send_args(company="Elsewhere plc", interview="today 09:00"),
        env={"MAILER_NOW": "2026-11-26T00:00:30+00:00"},
    )
    assert other.returncode == 0, other.stderr
    accepted = [e for e in stack.log_since(mark) if e["event"] == "accepted"]
    assert len(accepted) == 2
    again = run_cli(workspace, *args, "--again", env={"MAILER_NOW": "2026-11-26T00:00:30+00:00"})
    assert again.returncode == 0, again.stderr


def test_a_dry_run_is_refused_as_the_send_would_be_and_makes_no_store(
    stack: Stack, workspace: Path
) -> None:
    """Verify --dry-run of a send that would be refused as a duplicate says so (exit 7): it
    printed "nothing was sent" and exited 0 (a walkthrough); with no store yet it makes
    none."""
    store = workspace / ".mailer" / "state.db"
    fresh = run_cli(workspace, *send_args(company="Dry Co"), "--dry-run")
    assert fresh.returncode == 0 and "dry run" in fresh.stdout, fresh.stderr
    assert not store.exists()
    assert run_cli(workspace, *send_args(company="Dry Co")).returncode == 0
    assert store.exists()  # (where the store is: the check above could not pass by a typo)
    again = run_cli(workspace, *send_args(company="Dry Co"), "--dry-run")
    assert again.returncode == 7, again.stdout + again.stderr
    assert "already holds an apology" in again.stderr


def test_doctor_reports_each_check(stack: Stack, workspace: Path) -> None:
    """Verify `mailer doctor` logs in to both servers, finds Sent, and sends nothing."""
    mark = stack.log_mark()
    r = run_cli(workspace, "doctor")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK    SMTP: logged in" in r.stdout
    assert "Sent folder is 'Sent'" in r.stdout
    assert not [e for e in stack.log_since(mark) if e["event"] == "accepted"]


def test_doctor_fails_with_wrong_password(stack: Stack, tmp_path: Path) -> None:
    """Verify doctor says FAIL for both logins with a bad password, and exits non-zero."""
    ws = write_config(tmp_path / "ws", stack.info, password="nope-nope")
    r = run_cli(ws, "doctor")
    assert r.returncode != 0
    assert "FAIL  SMTP" in r.stdout and "FAIL  IMAP" in r.stdout
    assert "nope-nope" not in r.stdout + r.stderr


def test_a_server_that_does_not_answer_is_said_to_be_silent_not_gone(
    stack: Stack, workspace: Path
) -> None:
    """Verify a server that takes longer than the timeout to answer EHLO is reported as
    giving no answer within the timeout (smtplib calls it a closed connection), naming
    host and port, a temporary error to try again."""
    from dataclasses import replace

    settings = settings_for(workspace)
    stack.set_faults(ehlo_delay=[3])
    session = SmtpSession(replace(settings.smtp, timeout=1.0), retries=0)
    with pytest.raises(DeliveryError) as caught:
        session.connect()
    session.close()
    said = str(caught.value)
    assert said == f"SMTP {stack.info.host}:{settings.smtp.port}: no answer within 1 s during login"
    assert caught.value.kind == "timeout" and caught.value.temporary


def test_a_recipient_answer_that_is_not_smtp_is_no_refusal_of_the_recipient(
    stack: Stack, workspace: Path
) -> None:
    """Verify an answer to RCPT TO with no reply code is said to be not SMTP (kind
    "protocol": the message waits for another try) rather than the recipient refused (which
    would mark the entry refused for good)."""
    settings = settings_for(workspace)
    stack.set_faults(rcpt=["garbage instead of a reply"])
    mark = stack.log_mark()
    with (
        pytest.raises(DeliveryError) as caught,
        SmtpSession(settings.smtp, retries=0, sleep=lambda _: None) as session,
    ):
        session.submit(SENDER, (INTERVIEWER,), b"Subject: x\r\n\r\nx\r\n")
    assert caught.value.kind == "protocol", caught.value
    assert f"the answer to RCPT TO <{INTERVIEWER}> is not SMTP" in str(caught.value)
    assert not [e for e in stack.log_since(mark) if e["event"] == "accepted"]


def test_the_follow_up_due_time_is_shown_in_the_users_zone_and_theirs(
    stack: Stack, workspace: Path
) -> None:
    """Verify send shows when the follow-up is due in the user's own zone, as status does,
    with the interviewer's time beside it when their zone differs (newcomer, session 15)."""
    r = run_cli(workspace, *send_args(company="Zones Co", interviewer_tz="America/New_York"))
    assert r.returncode == 0, r.stderr
    (line,) = [x for x in r.stdout.splitlines() if x.startswith("Follow-up due:")]
    thread = int(re.search(r"thread (\d+)", r.stdout).group(1))
    shown = run_cli(workspace, "status", str(thread), "--json")
    due = datetime.fromisoformat(json.loads(shown.stdout)["thread"]["follow_up_due"])
    london = due.astimezone(ZoneInfo("Europe/London"))
    new_york = due.astimezone(ZoneInfo("America/New_York"))
    assert line == (
        f"Follow-up due: {london:%a %Y-%m-%d %H:%M %Z} ({new_york:%a %H:%M %Z} for them) "
        "if no reply comes"
    )


def test_send_says_when_the_follow_up_would_come_after_the_interview_it_asks_to_move(
    stack: Stack, workspace: Path
) -> None:
    """Verify that when the follow-up falls after the interview the apology asks to move
    (it is tomorrow), send says so and to call them; and says nothing of it when the
    interview is already past (newcomer, session 15)."""
    soon = run_cli(
        workspace,
        *send_args(company="Soon Co", situation="transport", interview="tomorrow 10:00"),
    )
    assert soon.returncode == 0, soon.stderr
    assert "That is after the interview itself (" in soon.stdout, soon.stdout
    assert "if they have not answered by then, call them." in soon.stdout
    past = run_cli(workspace, *send_args(company="Past Co"))
    assert past.returncode == 0, past.stderr
    assert "Follow-up due:" in past.stdout and "after the interview itself" not in past.stdout
