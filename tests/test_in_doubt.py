"""Issue #13, items 5 and 6: a message is in doubt only past the durable final-dot mark, and a
message in doubt is never silent (``check`` names it with the command to run, exits 9; the
daemon names it once a day)."""

from __future__ import annotations

import logging
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from mailer.adapters import listing
from mailer.adapters.config import find_config, load_settings
from mailer.adapters.sender import SmtpSession
from mailer.adapters.store import IN_DOUBT, QUEUED, Store, owner_token
from mailer.errors import ClaimError, ExitCode, StateError
from mailer.model.lifecycle import ThreadEvent, describe
from mailer.services.daemon import log_report
from mailer.services.passes import PassReport, run_pass, run_pass_all

from .conftest import INTERVIEWER, Pair, Stack, run_cli
from .test_followup import at, check_at, send, status
from .test_no_second_copy import T0, one_queued_apology

_2H = timedelta(hours=2)


def _die(store: Store, mid: int) -> None:
    """The process holding the row is gone (an empty owner is nobody's)."""
    with store.tx() as c:
        c.exec_driver_sql("UPDATE messages SET owner = '' WHERE id = ?", (mid,))


def test_a_send_that_died_before_the_final_dot_is_requeued_not_in_doubt(tmp_path: Path) -> None:
    """Verify a submitting row of a gone process without the mark shows as queued, is not
    listed in doubt, and is put back in the queue by the recovery step, owned by nobody."""
    store, mid = one_queued_apology(tmp_path)
    store.mark_submitting(mid, T0)
    _die(store, mid)
    assert describe(store.message(mid).state_now) == "queued"
    assert store.unsettled_messages() == []
    assert store.mark_abandoned_in_doubt(mid, T0, "gone") is False
    (requeued,) = store.requeue_abandoned(T0)
    assert requeued.id == mid
    row = store.message(mid)
    assert (row.state, row.owner, row.final_dot_at) == (QUEUED, None, None)
    assert any(e["kind"] == "requeued" for e in store.events(row.thread_id))
    assert store.requeue_abandoned(T0) == []  # done once


def test_a_send_that_died_after_the_final_dot_mark_stays_in_doubt(tmp_path: Path) -> None:
    """Verify a row whose process died past the mark is in doubt, and is never requeued."""
    store, mid = one_queued_apology(tmp_path)
    store.mark_submitting(mid, T0)
    store.mark_final_dot(mid, T0 + timedelta(seconds=1))
    _die(store, mid)
    assert describe(store.message(mid).state_now) == "in doubt"
    assert store.requeue_abandoned(T0) == []
    assert [m.id for m in store.unsettled_messages()] == [mid]
    assert store.mark_abandoned_in_doubt(mid, T0, "gone") is True
    assert store.message(mid).state == IN_DOUBT


def test_a_resend_keeps_the_mark_of_the_first_attempt(tmp_path: Path) -> None:
    """Verify a resend killed before its own final dot is still in doubt: the first attempt
    may have been delivered."""
    store, mid = one_queued_apology(tmp_path)
    store.mark_submitting(mid, T0)
    store.mark_final_dot(mid, T0)
    store.mark_in_doubt(mid, T0, "lost the answer")
    store.claim_resend(mid, T0, ("sending",))
    _die(store, mid)
    assert describe(store.message(mid).state_now) == "in doubt"
    assert store.requeue_abandoned(T0) == []


def test_the_mark_is_refused_on_a_row_this_process_does_not_hold(tmp_path: Path) -> None:
    """Verify the mark (and so the final dot) needs this process's own submitting row."""
    store, mid = one_queued_apology(tmp_path)
    with pytest.raises(ClaimError, match="before the final dot"):
        store.mark_final_dot(mid, T0)  # still queued
    store.mark_submitting(mid, T0)
    _die(store, mid)
    with pytest.raises(ClaimError, match="before the final dot"):
        store.mark_final_dot(mid, T0)
    assert store.message(mid).final_dot_at is None


def test_a_refusal_at_the_final_dot_clears_the_mark(tmp_path: Path) -> None:
    """Verify a 4xx answer to the final dot (requeue) leaves the row unmarked: the server
    said it took nothing, so a later death before the next dot is not in doubt."""
    store, mid = one_queued_apology(tmp_path)
    store.mark_submitting(mid, T0)
    store.mark_final_dot(mid, T0)
    store.requeue(mid, T0, "451 try later")
    assert store.message(mid).final_dot_at is None


def test_only_the_final_dot_mark_is_synced(tmp_path: Path, monkeypatch) -> None:
    """Verify the claim before MAIL FROM skips the fsync and the final-dot mark does not."""
    store, mid = one_queued_apology(tmp_path)
    seen: list[bool] = []
    real = store._write  # every claim and mark is made through it (tx on PostgreSQL)

    def write(durable: bool = True):
        seen.append(durable)
        return real(durable)

    monkeypatch.setattr(store, "_write", write)
    store.mark_submitting(mid, T0)
    assert seen == [False]
    store.mark_final_dot(mid, T0)
    assert seen == [False, True]


def test_a_row_caught_mid_send_by_an_older_mailer_stays_in_doubt(tmp_path: Path) -> None:
    """Verify the migration marks every submitting row of a schema-3 store: an older mailer
    may have sent its final dot, so it is never requeued."""
    store, mid = one_queued_apology(tmp_path)
    store.mark_submitting(mid, T0)
    store.close()
    db = sqlite3.connect(tmp_path / "state.db")
    for statement in listing.DROPS:  # a schema-3 store has none of revision 0009's
        db.execute(statement)
    db.execute("ALTER TABLE messages DROP COLUMN final_dot_at")
    db.execute("UPDATE messages SET owner = ''")
    db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    reopened = Store(f"sqlite:///{tmp_path / 'state.db'}")
    assert reopened.message(mid).final_dot_at is not None
    assert describe(reopened.message(mid).state_now) == "in doubt"
    assert reopened.requeue_abandoned(T0) == []


def test_the_daemon_names_a_message_in_doubt_once_a_day(caplog) -> None:
    """Verify the daemon logs each message in doubt on its first pass of the day only, and
    again once it was settled and came back, or on the next day."""
    report = PassReport(in_doubt=[("<a@x>", "thread 1: run 'mailer resolve 1 --sent'")])
    told: dict[str, str] = {}
    caplog.set_level(logging.INFO, logger="mailer.services.daemon")
    log_report(report, told)
    log_report(report, told)
    assert [r.getMessage() for r in caplog.records].count(report.in_doubt[0][1]) == 1
    told["<a@x>"] = "2000-01-01"  # a pass on the next day
    log_report(report, told)
    log_report(PassReport(), told)  # settled: forgotten
    assert told == {}
    log_report(report, told)
    lines = [r.getMessage() for r in caplog.records]
    assert lines.count(report.in_doubt[0][1]) == 3
    assert all(r.levelno == logging.WARNING for r in caplog.records)


@pytest.mark.integration
def test_check_names_every_follow_up_in_doubt_and_exits_waiting(pair: Pair) -> None:
    """Verify `check` with six follow-ups in doubt no longer says only "0 problem(s)": it
    names each with its resolve commands, counts them, and exits 9 (nothing failed)."""
    threads = [send(pair, "--again")[0] for _ in range(6)]
    settings = load_settings(find_config(pair.ws))
    with Store(settings.state_url).tx() as c:
        for n, thread in enumerate(threads):
            c.exec_driver_sql(
                """INSERT INTO messages (thread_id, kind, message_id, state, raw, envelope_from,
                   recipients, created_at, submitting_at, final_dot_at, failed_at, error, owner)
                   VALUES (?, 'follow_up', ?, 'in_doubt', x'00', ?, ?, ?, ?, ?, ?, 'lost', '')""",
                (
                    thread,
                    f"<f{n}@x>",
                    pair.candidate,
                    f'["{pair.interviewer}"]',
                    *[at(timedelta(minutes=1))] * 4,
                ),
            )
    r = run_cli(pair.ws, "check", env={"MAILER_NOW": at(timedelta(minutes=5))})
    out = r.stdout + r.stderr
    assert r.returncode == ExitCode.WAITING == 9, out
    assert "0 problem(s), 6 in doubt" in out
    for n, thread in enumerate(threads):
        assert f"<f{n}@x>" in out
        assert f"mailer resolve {thread} --sent" in out
        assert f"mailer resolve {thread} --resend" in out
    quiet = run_cli(pair.ws, "check", "-q", env={"MAILER_NOW": at(timedelta(minutes=6))})
    assert quiet.returncode == 9 and quiet.stderr.count("is in doubt") == 6


@pytest.mark.integration
def test_no_final_dot_goes_out_when_the_mark_cannot_be_made(stack: Stack, workspace: Path) -> None:
    """Verify that if the mark fails, the dot is never sent: the server takes nothing, and
    the error is the mark's own."""
    settings = load_settings(find_config(workspace))
    mark = stack.log_mark()
    raw = b"From: a@sandbox.test\r\nMessage-ID: <nodot@x>\r\nSubject: s\r\n\r\nbody\r\n"

    def refuse() -> None:
        raise ClaimError("no mark")

    with pytest.raises(ClaimError, match="no mark"), SmtpSession(settings.smtp) as session:
        session.submit(settings.sender.address, (INTERVIEWER,), raw, before_final_dot=refuse)
    with SmtpSession(settings.smtp) as session:  # the server is fine: the next one goes
        session.submit(settings.sender.address, (INTERVIEWER,), raw.replace(b"nodot", b"dot"))
    accepted = [e["message_id"] for e in stack.log_since(mark) if e["event"] == "accepted"]
    assert accepted == ["<dot@x>"]


@pytest.mark.integration
def test_a_reply_to_an_apology_in_doubt_settles_it_as_sent(pair: Pair) -> None:
    """Verify a person's reply that quotes an apology left in doubt (its process died past
    the final-dot mark) records the apology as sent: the thread is replied, nothing is in
    doubt any more, and check no longer asks the user to resolve it."""
    thread, root = send(pair)
    settings = load_settings(find_config(pair.ws))
    store = Store(settings.state_url)
    (apology,) = store.messages(thread)
    with store.tx() as c:  # as a process killed between the final dot and the 250 leaves it
        c.exec_driver_sql(
            "UPDATE messages SET state = 'submitting', sent_at = NULL, smtp_reply = NULL, "
            "final_dot_at = ?, owner = '' WHERE id = ?",
            (at(timedelta(seconds=1)), apology.id),
        )
        c.exec_driver_sql("UPDATE threads SET state = 'sending' WHERE id = ?", (thread,))
    assert store.message(apology.id).state_now == IN_DOUBT
    before = run_cli(pair.ws, "check", env={"MAILER_NOW": at(timedelta(minutes=1))})
    assert before.returncode == ExitCode.WAITING, before.stdout + before.stderr

    pair.send_as(
        pair.interviewer, pair.candidate, "Re: sorry", "Thanks, Tuesday works.",
        {"In-Reply-To": root, "References": root},
    )  # fmt: skip
    after = run_cli(pair.ws, "check", env={"MAILER_NOW": at(timedelta(minutes=2))})
    assert after.returncode == 0, after.stdout + after.stderr
    row = store.message(apology.id)
    assert row.state_now == "sent" and "replied to it" in (row.smtp_reply or "")
    assert store.thread(thread).state == "replied"
    assert store.unsettled_messages() == []


def test_settling_by_a_reply_records_the_time_of_the_dot_and_spares_a_live_send(
    tmp_path: Path,
) -> None:
    """Verify a quoted message in doubt (apology or follow-up) of an answered thread is
    recorded as sent at its final-dot mark, the thread's sent time too; one this live process
    is still submitting, one the reply does not quote, and any of a thread not answered, are
    left as they are."""
    from mailer.services.incoming import settle_answered

    later = lambda: T0 + timedelta(hours=1)  # noqa: E731
    store, mid = one_queued_apology(tmp_path)
    dot = T0 + timedelta(seconds=1)
    store.mark_submitting(mid, T0)
    store.mark_final_dot(mid, dot)
    thread = store.message(mid).thread_id
    _die(store, mid)
    settle_answered(store, later, thread, ["<m@x>"], "a@b.test")
    assert store.message(mid).state == "submitting"  # not answered: nothing is scheduled

    store.set_thread_state(thread, ThreadEvent.REPLY, T0, "replied", {})
    with store.tx() as c:  # this process holds it again: alive
        c.exec_driver_sql("UPDATE messages SET owner = ? WHERE id = ?", (owner_token(), mid))
    settle_answered(store, later, thread, ["<m@x>"], "a@b.test")
    assert store.message(mid).state == "submitting"  # left to the live process

    _die(store, mid)
    with store.tx() as c:  # two follow-ups of the same thread, in doubt too
        for n in (1, 2):
            c.exec_driver_sql(
                """INSERT INTO messages (thread_id, kind, message_id, state, raw, envelope_from,
                   recipients, created_at, submitting_at, final_dot_at, owner)
                   VALUES (?, 'follow_up', ?, 'in_doubt', x'00', 'me@x.test', '["a@b.test"]',
                   ?, ?, ?, '')""",
                (thread, f"<f{n}@x>", *[dot.isoformat()] * 3),
            )
    settle_answered(store, later, thread, ["<f1@x>", "<m@x>"], "a@b.test")
    rows = {m.message_id: m for m in store.messages(thread)}
    assert [rows[k].state_now for k in ("<m@x>", "<f1@x>", "<f2@x>")] == [
        "sent",
        "sent",
        "in_doubt",
    ]
    assert rows["<m@x>"].sent_at == dot.isoformat() and "replied to it" in rows["<m@x>"].smtp_reply
    assert store.thread(thread).sent_at == dot.isoformat()
    assert store.thread(thread).state == "replied"


class _UnrecordingStore(Store):
    """A state store that cannot record a follow-up's 250 (a full disk, a database gone)."""

    def mark_sent(self, message_row_id: int, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        if self.message(message_row_id).kind == "follow_up":
            raise StateError("state store: database or disk is full")
        super().mark_sent(message_row_id, *args, **kwargs)


def _accepted_follow_ups(pair: Pair, mark: int) -> list[str]:
    return [
        e["message_id"]
        for e in pair.stack.log_since(mark)
        if e["event"] == "accepted" and e["mail_from"] == pair.candidate
    ]


@pytest.mark.integration
def test_a_follow_up_accepted_but_not_recorded_is_said_to_be_accepted_and_never_resent(
    pair: Pair, caplog
) -> None:
    """Verify a follow-up whose mark_sent fails after the server's 250 is reported as accepted
    by the server with recording failed (not as "not sent this time"), in the pass's problems
    and the daemon's log; it is left in doubt with resolve --sent as the way out, and later
    passes never send it again."""
    thread, _ = send(pair)
    settings = load_settings(find_config(pair.ws), need_secrets=True)
    mark = pair.stack.log_mark()
    report = run_pass(settings, _UnrecordingStore(settings.state_url), lambda: T0 + _2H)
    store = Store(settings.state_url)
    (follow_up,) = [m for m in store.messages(thread) if m.kind == "follow_up"]
    assert _accepted_follow_ups(pair, mark) == [follow_up.message_id]
    assert report.sent == []
    (problem,) = report.problems
    assert problem.startswith(
        f"thread {thread}: the follow-up {follow_up.message_id} WAS accepted by the server (250"
    ), problem
    assert "recording it failed: state store: database or disk is full" in problem
    assert "it stays in doubt and mailer never sends it again" in problem
    assert f"do not send it again; run 'mailer resolve {thread} --sent'" in problem
    assert "not sent this time" not in problem
    caplog.set_level(logging.INFO, logger="mailer.services.daemon")
    log_report(report, {})
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [problem]
    assert (follow_up.state, follow_up.error.split(" (")[0]) == (IN_DOUBT, "accepted by the server")

    for hours in (3, 4):  # the store works again: nothing more goes, it is named in doubt
        later = run_pass_all(settings, store, lambda h=hours: T0 + timedelta(hours=h))
        assert later.sent == [] and later.problems == []
        ((mid, line),) = later.in_doubt
        assert mid == follow_up.message_id
        assert "do not send it again" in line and f"mailer resolve {thread} --sent" in line
        assert "--resend" not in line
    assert _accepted_follow_ups(pair, mark) == [follow_up.message_id]
    # The way out it names works.
    settled = run_cli(pair.ws, "resolve", str(thread), "--sent", env={"MAILER_NOW": at(_2H * 2)})
    assert settled.returncode == 0, settled.stderr
    assert store.message(follow_up.id).state == "sent"
    assert _accepted_follow_ups(pair, mark) == [follow_up.message_id]


@pytest.mark.integration
def test_check_says_a_follow_up_accepted_but_not_recorded_was_accepted(
    pair: Pair, monkeypatch
) -> None:
    """Verify `mailer check` prints the accepted-but-not-recorded line for a follow-up whose
    mark_sent fails after the 250, counts it as a problem and in doubt, and exits non-zero."""
    thread, _ = send(pair)
    monkeypatch.setattr(Store, "mark_sent", _UnrecordingStore.mark_sent)
    mark = pair.stack.log_mark()
    r = run_cli(pair.ws, "check", env={"MAILER_NOW": at(_2H)})
    out = r.stdout + r.stderr
    assert r.returncode == ExitCode.NETWORK, out
    (accepted,) = _accepted_follow_ups(pair, mark)
    assert (
        f"mailer: WARNING: thread {thread}: the follow-up {accepted} WAS accepted by the server "
        "(250" in r.stderr
    ), r.stderr
    assert f"run 'mailer resolve {thread} --sent' when the state store is writable" in r.stderr
    assert "not sent this time" not in out
    assert "0 follow-up(s) sent, 0 closed, 1 problem(s), 1 in doubt" in r.stdout


class _CommittedButErrorStore(Store):
    """A state store whose follow-up record commits but reports an error anyway (a COMMIT
    whose answer was lost: PostgreSQL's "outcome unknown")."""

    def mark_sent(self, message_row_id: int, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().mark_sent(message_row_id, *args, **kwargs)
        if self.message(message_row_id).kind == "follow_up":
            raise StateError("state store: connection lost during COMMIT; its outcome is unknown")


@pytest.mark.integration
def test_a_follow_up_whose_record_did_commit_after_an_error_is_reported_sent(
    pair: Pair, caplog
) -> None:
    """Verify a follow-up whose mark_sent reports an error after its COMMIT went through is
    re-read and found sent: reported sent (not "stays in doubt"), no problem, its Sent copy
    filed, the thread followed up, and the next pass sends nothing more."""
    thread, _ = send(pair)
    settings = load_settings(find_config(pair.ws), need_secrets=True)
    mark = pair.stack.log_mark()
    caplog.set_level(logging.WARNING, logger="mailer")
    report = run_pass(settings, _CommittedButErrorStore(settings.state_url), lambda: T0 + _2H)
    store = Store(settings.state_url)
    (follow_up,) = [m for m in store.messages(thread) if m.kind == "follow_up"]
    assert _accepted_follow_ups(pair, mark) == [follow_up.message_id]
    assert report.problems == [] and report.sent == [(thread, follow_up.message_id)]
    assert follow_up.state == "sent" and follow_up.sent_copy == "saved in Sent"
    assert store.thread(thread).state == "followed_up"  # type: ignore[union-attr]
    (warned,) = [r.getMessage() for r in caplog.records if "recorded after all" in r.getMessage()]
    assert f"thread {thread}: the follow-up {follow_up.message_id}" in warned
    later = run_pass_all(settings, store, lambda: T0 + _2H * 2)
    assert later.sent == [] and later.in_doubt == []
    assert _accepted_follow_ups(pair, mark) == [follow_up.message_id]


@pytest.mark.integration
def test_resend_refuses_a_follow_up_the_server_accepted_but_was_not_recorded(pair: Pair) -> None:
    """Verify 'resolve --resend' of a follow-up marked as accepted by the server (its 250
    not recorded) is refused in one line with the --sent hint, sends nothing, and leaves
    it in doubt; --sent then settles it."""
    thread, _ = send(pair)
    settings = load_settings(find_config(pair.ws), need_secrets=True)
    mark = pair.stack.log_mark()
    run_pass(settings, _UnrecordingStore(settings.state_url), lambda: T0 + _2H)
    store = Store(settings.state_url)
    (follow_up,) = [m for m in store.messages(thread) if m.kind == "follow_up"]
    assert follow_up.state == IN_DOUBT
    r = run_cli(pair.ws, "resolve", str(thread), "--resend", env={"MAILER_NOW": at(_2H * 2)})
    assert r.returncode == ExitCode.USAGE, r.stdout + r.stderr
    (line,) = r.stderr.splitlines()
    assert line.startswith(
        f"mailer: error: thread {thread}: the follow-up {follow_up.message_id} WAS accepted by "
        "the server (250"
    ), r.stderr
    assert "it is not sent again" in r.stderr
    assert f"run 'mailer resolve {thread} --sent' to record it as sent" in r.stderr
    assert "Traceback" not in r.stderr
    assert _accepted_follow_ups(pair, mark) == [follow_up.message_id]
    assert store.message(follow_up.id).state == IN_DOUBT
    settled = run_cli(pair.ws, "resolve", str(thread), "--sent", env={"MAILER_NOW": at(_2H * 2)})
    assert settled.returncode == 0, settled.stderr
    assert store.message(follow_up.id).state == "sent"


@pytest.mark.integration
def test_an_apology_accepted_but_not_recorded_is_left_in_doubt_as_accepted(
    pair: Pair, monkeypatch
) -> None:
    """Verify `mailer send` whose apology's 250 cannot be recorded says it WAS accepted (exit
    1, one line and the --sent hint), marks it in doubt as accepted by the server, and a
    later 'resolve --resend' refuses to send a second copy."""
    from .conftest import send_args

    real = Store.mark_sent

    def full_disk(self: Store, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        raise StateError("state store: database or disk is full")

    monkeypatch.setattr(Store, "mark_sent", full_disk)
    mark = pair.stack.log_mark()
    r = run_cli(pair.ws, *send_args(to=pair.interviewer))
    assert r.returncode == ExitCode.FAILURE, r.stdout + r.stderr
    (line,) = [x for x in r.stderr.splitlines() if "WAS accepted" in x]
    assert line.startswith("mailer: error: the apology WAS accepted by the server (250"), line
    assert "(do not send it again; run 'mailer resolve 1 --sent'" in line
    monkeypatch.setattr(Store, "mark_sent", real)
    store = Store(load_settings(find_config(pair.ws)).state_url)
    (apology,) = store.messages(1)
    assert (apology.state, apology.error.split(" (")[0]) == (IN_DOUBT, "accepted by the server")
    resend = run_cli(pair.ws, "resolve", "1", "--resend")
    assert resend.returncode == ExitCode.USAGE and "it is not sent again" in resend.stderr
    accepted = [e for e in pair.stack.log_since(mark) if e["event"] == "accepted"]
    assert [e["message_id"] for e in accepted] == [apology.message_id]


def test_a_message_settled_in_doubt_keeps_the_owner_that_sent_it(tmp_path: Path) -> None:
    """Verify the process that settles a dead sender's message as in doubt leaves the dead
    sender as its owner: the record says which process may have sent it (the settler's own
    name there made a daemon that was never killed look like the one that sent it)."""
    import socket

    store, mid = one_queued_apology(tmp_path)
    store.mark_submitting(mid, T0)
    store.mark_final_dot(mid, T0)
    dead = f"{socket.gethostname()}:x:999999999:0"
    with store.tx() as c:
        c.exec_driver_sql("UPDATE messages SET owner = ? WHERE id = ?", (dead, mid))
    assert store.mark_abandoned_in_doubt(mid, T0, "gone") is True
    row = store.message(mid)
    assert (row.state, row.owner) == (IN_DOUBT, dead)
    store.claim_resend(mid, T0, ("sending",))  # the user may still resend it
    assert store.message(mid).state == "submitting"


def _follow_up_in_doubt(pair: Pair) -> tuple[int, str, str]:
    """A thread whose follow-up was cut off past its final-dot mark (the process killed
    there): the thread, its apology's Message-ID, and the follow-up's."""
    thread, root = send(pair)
    crashed = run_cli(
        pair.ws,
        "check",
        env={"MAILER_NOW": at(timedelta(minutes=5)), "MAILER_CRASH_AT": "after-final-dot"},
        process=True,
    )
    assert crashed.returncode == -9, crashed.stdout + crashed.stderr
    settings = load_settings(find_config(pair.ws))
    (follow_up,) = [m for m in Store(settings.state_url).messages(thread) if m.kind == "follow_up"]
    assert follow_up.state_now == IN_DOUBT
    return thread, root, follow_up.message_id


@pytest.mark.process
def test_an_in_doubt_follow_up_of_a_replied_thread_is_settled_as_not_sent(pair: Pair) -> None:
    """Verify a follow-up in doubt whose thread was then answered (a walkthrough): check no
    longer advises a resend it would refuse but --not-sent, which records it as not sent,
    sends nothing, and ends check's exit 9; asked again, it says nothing is in doubt, exit 0."""
    thread, _, follow_up = _follow_up_in_doubt(pair)
    assert run_cli(pair.ws, "mark-replied", str(thread)).returncode == 0
    mark = pair.stack.log_mark()

    out = check_at(pair, timedelta(minutes=6), expect=ExitCode.WAITING)
    assert f"'mailer resolve {thread} --not-sent'" in out, out
    assert f"'mailer resolve {thread} --resend'" not in out, out
    refused = run_cli(pair.ws, "resolve", str(thread), "--resend")
    assert refused.returncode == 2 and "--not-sent" in refused.stderr, refused.stderr

    r = run_cli(pair.ws, "resolve", str(thread), "--not-sent")
    assert r.returncode == 0 and "recorded as not sent" in r.stdout, r.stdout + r.stderr
    assert check_at(pair, timedelta(minutes=7)).count("in doubt") == 1  # "0 in doubt"
    settings = load_settings(find_config(pair.ws))
    (row,) = [m for m in Store(settings.state_url).messages(thread) if m.kind == "follow_up"]
    assert (row.message_id, row.state, row.sent_at) == (follow_up, "failed", None)
    shown = run_cli(pair.ws, "status", str(thread)).stdout
    assert "may or may not" not in shown, shown
    assert f"follow_up {follow_up}: not sent" in shown, shown
    assert [e for e in pair.stack.log_since(mark) if e["event"] == "accepted"] == []
    again = run_cli(pair.ws, "resolve", str(thread), "--not-sent")
    assert again.returncode == 0 and "no message in doubt" in again.stdout, again.stderr


@pytest.mark.process
def test_not_sent_is_refused_while_the_message_may_still_be_sent_again(pair: Pair) -> None:
    """Verify --not-sent on a follow-up in doubt of a thread still awaiting a reply is
    refused (a follow-up recorded as not sent there would be followed by another: a resend
    in disguise), naming --resend, and leaves it in doubt."""
    thread, _, _ = _follow_up_in_doubt(pair)
    r = run_cli(pair.ws, "resolve", str(thread), "--not-sent")
    assert r.returncode == 2 and f"mailer resolve {thread} --resend" in r.stderr, r.stderr
    assert f"mailer cancel {thread}" in r.stderr
    settings = load_settings(find_config(pair.ws))
    (row,) = [m for m in Store(settings.state_url).messages(thread) if m.kind == "follow_up"]
    assert row.state_now == IN_DOUBT


@pytest.mark.process
def test_a_follow_up_proven_delivered_by_a_reply_no_longer_reads_as_in_doubt(pair: Pair) -> None:
    """Verify a follow-up in doubt that a reply then quotes is shown as sent, without the
    words of the doubt, in status and in its JSON (it read "sent ... it may or may not have
    been delivered", with a failed_at and an error; a walkthrough)."""
    thread, _, follow_up = _follow_up_in_doubt(pair)
    pair.send_as(
        pair.interviewer, pair.candidate, "Re: following up", "Thanks, Tuesday works.",
        {"In-Reply-To": follow_up, "References": follow_up},
    )  # fmt: skip
    check_at(pair, timedelta(minutes=6))
    (message,) = [m for m in status(pair, thread)["messages"] if m["kind"] == "follow_up"]
    assert message["state"] == "sent" and not message["failed_at"] and not message["error"]
    shown = run_cli(pair.ws, "status", str(thread)).stdout
    assert "may or may not" not in shown, shown


@pytest.mark.process
def test_check_v_lists_a_thread_whose_follow_up_is_in_doubt_as_such(pair: Pair) -> None:
    """Verify `check -v` no longer lists a thread whose follow-up is in doubt as "follow-up
    due <a past time>" (nothing goes until it is settled; a walkthrough)."""
    thread, _, _ = _follow_up_in_doubt(pair)
    r = run_cli(pair.ws, "check", "-v", env={"MAILER_NOW": at(timedelta(minutes=6))})
    assert r.returncode == ExitCode.WAITING, r.stdout + r.stderr
    (line,) = [ln for ln in r.stdout.splitlines() if ln.startswith(f"thread {thread}:")]
    assert "follow-up is in doubt" in line and "due" not in line, line


def _in_doubt_follow_up(store: Store, thread: int) -> int:
    """A follow-up of ``thread`` left in doubt (its process died past the final-dot mark)."""
    with store.tx() as c:
        c.exec_driver_sql(
            """INSERT INTO messages (thread_id, kind, message_id, state, raw, envelope_from,
               recipients, created_at, submitting_at, final_dot_at, owner)
               VALUES (?, 'follow_up', '<f@x>', 'in_doubt', x'00', 'me@x.test',
               '["a@b.test"]', ?, ?, ?, '')""",
            (thread, *[T0.isoformat()] * 3),
        )
    (row,) = [m for m in store.messages(thread) if m.kind == "follow_up"]
    return row.id


def test_only_a_follow_up_of_a_closed_thread_is_recorded_as_not_sent(tmp_path: Path) -> None:
    """Verify the store itself (in the transaction) refuses --not-sent for an apology in
    doubt, even of a cancelled thread (every duplicate guard reads a failed apology as never
    having reached them: a later run would send it again; a review), and for a follow-up of
    a held thread (a release takes it back to awaiting a reply: another would go); it takes
    a follow-up of a replied thread, which stays replied."""
    store, mid = one_queued_apology(tmp_path)
    thread = store.message(mid).thread_id
    store.mark_submitting(mid, T0)
    store.mark_final_dot(mid, T0)
    _die(store, mid)
    assert store.mark_abandoned_in_doubt(mid, T0, "gone")
    store.set_thread_state(thread, ThreadEvent.CAMPAIGN_CANCELLED, T0, "cancelled", {})
    with pytest.raises(ClaimError, match="not recorded as not sent"):
        store.mark_not_arrived(mid, T0, "no")
    assert store.message(mid).state == IN_DOUBT

    follow_up = _in_doubt_follow_up(store, thread)
    with store.tx() as c:
        c.exec_driver_sql("UPDATE threads SET state = 'held' WHERE id = ?", (thread,))
    with pytest.raises(ClaimError, match="is held"):
        store.mark_not_arrived(follow_up, T0, "no")
    assert store.message(follow_up).state == IN_DOUBT
    store.set_thread_state(thread, ThreadEvent.MARKED_REPLIED, T0, "replied", {})
    store.mark_not_arrived(follow_up, T0, "settled by you as not delivered")
    row = store.message(follow_up)
    assert (row.state, row.error) == ("failed", "settled by you as not delivered")
    assert store.thread(thread).state == "replied"
    store.close()


def test_the_advice_for_a_message_in_doubt_offers_only_what_would_be_accepted() -> None:
    """Verify the settle advice never offers a --resend its thread would refuse, offers
    --not-sent only for a follow-up of a closed thread, an apology that may not be resent
    only --sent, and a follow-up of a held thread the release or mark-replied first."""
    from mailer.model.lifecycle import settle_advice

    def offers(kind: str, state: str) -> set[str]:
        text = settle_advice(7, False, kind, state)
        return {flag for flag in ("--sent", "--resend", "--not-sent", "release") if flag in text}

    assert offers("apology", "sending") == {"--sent", "--resend"}
    assert offers("follow_up", "awaiting_reply") == {"--sent", "--resend"}
    for state in ("cancelled", "replied", "held", "bounced"):
        assert offers("apology", state) == {"--sent"}, state
    for state in ("replied", "cancelled", "bounced", "no_answer"):
        assert offers("follow_up", state) == {"--sent", "--not-sent"}, state
    assert offers("follow_up", "held") == {"--sent", "--resend", "release"}
    # (Not reached today: a follow-up in doubt leaves its thread awaiting a reply.)
    assert offers("follow_up", "followed_up") == {"--sent", "--not-sent"}
    assert "mailer cancel 7" in settle_advice(7, False, "follow_up", "followed_up")
    looked = settle_advice(7, True, "follow_up", "replied")
    assert "look in your Sent folder" in looked and "--not-sent" in looked


@pytest.mark.process
def test_a_resent_follow_up_the_server_refuses_ends_its_thread(pair: Pair) -> None:
    """Verify a follow-up in doubt whose resend the server refuses for good (5xx) fails the
    thread, as a follow-up refused in a pass does: it stayed awaiting a reply, and the next
    pass queued a brand-new follow-up (a review)."""
    thread, root, _ = _follow_up_in_doubt(pair)
    pair.stack.set_faults(data=["554 5.7.1 message refused"])
    r = run_cli(pair.ws, "resolve", str(thread), "--resend")
    assert r.returncode != 0 and "554" in r.stderr, r.stdout + r.stderr
    pair.stack.clear_faults()
    assert status(pair, thread)["state"] == "failed"
    check_at(pair, timedelta(days=9))
    assert pair.follow_ups_received(root) == []
    kinds = [m["kind"] for m in status(pair, thread)["messages"]]
    assert kinds == ["apology", "follow_up"], kinds
