"""Every message recorded as sent ends up in Sent exactly once, filed by the next command
that touches its account, however the command that sent it was stopped (issue #10, item 19)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from .conftest import Pair, run_cli
from .test_campaign import entry, write_campaign
from .test_followup import T0, _crashed_send, at, check_at, send, status

pytestmark = pytest.mark.integration


def _copies_in_sent(pair: Pair, message_id: str) -> int:
    return len(pair.stack.messages_with_id(pair.candidate, message_id, folder="Sent"))


def _send_killed_at(pair: Pair, point: str) -> tuple[int, str]:
    r = run_cli(
        pair.ws,
        "send",
        "--situation",
        "illness",
        "--to",
        pair.interviewer,
        "--interviewer",
        "Ana Ruiz",
        "--company",
        "Copied Ltd",
        "--role",
        "Engineer",
        "--interview",
        "2026-11-25 09:00",  # (the helper's `send` is for 10:00: another interview)
        "--yes",
        env={"MAILER_NOW": T0.isoformat(), "MAILER_CRASH_AT": point},
    )
    assert r.returncode == -9, r.stderr
    (thread,) = status_all(pair)
    (apology,) = [m for m in status(pair, thread)["messages"] if m["kind"] == "apology"]
    return thread, apology["message_id"]


def status_all(pair: Pair) -> list[int]:
    import json

    return [t["id"] for t in json.loads(run_cli(pair.ws, "status", "--json").stdout)["threads"]]


@pytest.mark.process
def test_a_send_killed_before_filing_its_copy_has_it_filed_by_the_next_check(pair: Pair) -> None:
    """Verify an apology sent by a `send` killed between `sent` and the APPEND is filed in
    Sent by the next `check`, once, and a later check files nothing more."""
    thread, mid = _send_killed_at(pair, "after-sent")
    assert _copies_in_sent(pair, mid) == 0
    check_at(pair, timedelta(seconds=10))
    assert _copies_in_sent(pair, mid) == 1
    check_at(pair, timedelta(seconds=20))
    assert _copies_in_sent(pair, mid) == 1
    (apology,) = [m for m in status(pair, thread)["messages"] if m["kind"] == "apology"]
    assert apology["sent_copy"].startswith("saved in Sent")


@pytest.mark.process
def test_a_copy_filed_but_not_recorded_is_not_filed_twice(pair: Pair) -> None:
    """Verify a copy whose APPEND went through just before the process was killed is found
    in Sent by the next command (searched by Message-ID), and not appended again."""
    thread, mid = _send_killed_at(pair, "after-copy")
    assert _copies_in_sent(pair, mid) == 1
    check_at(pair, timedelta(seconds=10))
    assert _copies_in_sent(pair, mid) == 1
    (apology,) = [m for m in status(pair, thread)["messages"] if m["kind"] == "apology"]
    assert apology["sent_copy"] == "found in Sent"


@pytest.mark.process
def test_the_next_send_files_the_copy_an_earlier_send_left(pair: Pair) -> None:
    """Verify a second, unrelated `send` from the same account files the copy the first
    (killed) one left, as well as its own."""
    _, mid = _send_killed_at(pair, "after-sent")
    _, other = send(pair)
    assert _copies_in_sent(pair, mid) == 1
    assert _copies_in_sent(pair, other) == 1


@pytest.mark.process
def test_resolve_sent_files_the_copy(pair: Pair) -> None:
    """Verify `resolve --sent` on an apology cut off after its DATA files its Sent copy."""
    thread = _crashed_send(pair, "after-250")
    (apology,) = [m for m in status(pair, thread)["messages"] if m["kind"] == "apology"]
    assert _copies_in_sent(pair, apology["message_id"]) == 0
    r = run_cli(pair.ws, "resolve", str(thread), "--sent")
    assert r.returncode == 0, r.stderr
    assert _copies_in_sent(pair, apology["message_id"]) == 1


@pytest.mark.process
def test_a_follow_up_killed_before_filing_its_copy_has_it_filed_next_pass(pair: Pair) -> None:
    """Verify a follow-up sent by a `check` killed before the APPEND is filed by the next
    pass, once."""
    thread, root = send(pair)
    killed = run_cli(
        pair.ws,
        "check",
        env={"MAILER_NOW": at(timedelta(minutes=5)), "MAILER_CRASH_AT": "after-sent"},
    )
    assert killed.returncode == -9, killed.stderr
    assert len(pair.follow_ups_received(root)) == 1
    fid = next(
        m["message_id"] for m in status(pair, thread)["messages"] if m["kind"] == "follow_up"
    )
    assert _copies_in_sent(pair, fid) == 0
    check_at(pair, timedelta(minutes=6))
    assert _copies_in_sent(pair, fid) == 1
    check_at(pair, timedelta(minutes=7))
    assert _copies_in_sent(pair, fid) == 1


@pytest.mark.process
def test_a_campaign_killed_on_its_last_entry_files_the_copy_on_a_rerun(pair: Pair) -> None:
    """Verify a rerun with nothing left to send still files the copies the killed run left."""
    write_campaign(pair.ws, "".join(entry(pair.interviewer, n) for n in range(3)))
    killed = run_cli(
        pair.ws, "campaign", "run", "week49", "--yes", env={"MAILER_CRASH_AT": "after-sent@3"}
    )
    assert killed.returncode == -9, killed.stderr
    with pair.stack.imap(pair.candidate) as c:
        before = c.select_folder("Sent", readonly=True)[b"EXISTS"]
    assert before < 3
    again = run_cli(pair.ws, "campaign", "run", "week49", "--yes")
    assert again.returncode == 0, again.stderr
    assert "nothing to send" in again.stdout
    with pair.stack.imap(pair.candidate) as c:
        assert c.select_folder("Sent", readonly=True)[b"EXISTS"] == 3
    third = run_cli(pair.ws, "campaign", "run", "week49", "--yes")
    assert third.returncode == 0 and "Filed" not in third.stdout
    with pair.stack.imap(pair.candidate) as c:
        assert c.select_folder("Sent", readonly=True)[b"EXISTS"] == 3


def test_two_commands_catching_up_never_both_take_one_copy(tmp_path, monkeypatch) -> None:
    """Verify an unfiled copy is claimed by one process at a time: while another live process
    is filing it, it is not handed out again; once that process is gone, it is."""
    from mailer.adapters import store as store_mod

    from .test_no_second_copy import T0 as NOW
    from .test_no_second_copy import _live_foreign_owner, one_queued_apology

    store, mid = one_queued_apology(tmp_path)
    store.mark_submitting(mid, NOW)
    store.mark_sent(mid, NOW, "250 ok", None)
    with store.tx() as c:  # sent by a process that is gone, its copy never filed
        c.exec_driver_sql("UPDATE messages SET owner = 'gone' WHERE id = ?", (mid,))
    other = _live_foreign_owner()
    monkeypatch.setattr(store_mod, "owner_token", lambda: other)
    assert [m.id for m in store.claim_unfiled_copies("")] == [mid]  # the other process
    monkeypatch.undo()
    assert store.claim_unfiled_copies("") == []  # we, meanwhile: it is being filed
    with store.tx() as c:  # the other process dies mid-way
        c.exec_driver_sql("UPDATE messages SET sent_copy = 'filing: gone' WHERE id = ?", (mid,))
    assert [m.id for m in store.claim_unfiled_copies("")] == [mid]
    store.record_sent_copy(mid, "saved in Sent (caught up)")
    assert store.claim_unfiled_copies("") == []
