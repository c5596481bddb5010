"""Leases on the state store (#17): which daemon works on which account, judged by the
database's clock, with an epoch that fences a daemon that lost its lease. Proved on in-memory
SQLite, a SQLite file and the tests' real PostgreSQL (the ``state`` fixture).

A lease of 0 seconds is expired the moment it is taken: expiry is shown with no waiting.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailer.adapters.store import Lease, LeaseLostError, Store

from .test_store_contract import NOW, new_apology

HOUR = 3600.0


def _due_thread(s: Store, n: int = 1, account: str = "") -> int:
    """A thread whose apology went and whose follow-up is due now."""
    tid, mid = new_apology(s, n)
    if account:
        from sqlalchemy import text

        with s.tx() as c:
            c.execute(
                text("UPDATE threads SET account = :a WHERE id = :t"), {"a": account, "t": tid}
            )
    s.mark_submitting(mid, NOW)
    s.mark_sent(mid, NOW, "250 OK", NOW - timedelta(minutes=1))
    return tid


def _claim(s: Store, tid: int, n: int = 1) -> int | None:
    return s.claim_follow_up(
        tid,
        NOW,
        message_id=f"<up{tid}-{n}@sandbox.test>",
        raw=b"Subject: Re: Sorry\r\n\r\nHello again.\r\n",
        envelope_from="you@sandbox.test",
        recipients=("ana@sandbox.test",),
    )


def test_a_free_lease_is_taken_with_epoch_one_and_a_held_one_is_refused(state: Store) -> None:
    first = state.acquire_lease("", "daemon-a", HOUR)
    assert first == Lease("", "daemon-a", 1, HOUR)
    assert state.acquire_lease("", "daemon-b", HOUR) is None
    (row,) = state.leases()
    assert (row.account, row.owner, row.epoch, row.held) == ("", "daemon-a", 1, True)
    assert row.expires_at - row.acquired_at == timedelta(seconds=HOUR)


def test_an_expired_lease_is_taken_over_with_the_next_epoch(state: Store) -> None:
    state.acquire_lease("bea", "daemon-a", 0)  # expired as soon as taken
    taken = state.acquire_lease("bea", "daemon-b", HOUR)
    assert taken is not None and taken.epoch == 2
    assert [(r.owner, r.epoch, r.held) for r in state.leases()] == [("daemon-b", 2, True)]


def test_renewing_works_only_while_the_lease_is_still_ones_own(state: Store) -> None:
    a = state.acquire_lease("", "daemon-a", HOUR)
    assert a is not None and state.renew_lease(a)
    stale = state.acquire_lease("x", "daemon-a", 0)
    assert stale is not None and not state.renew_lease(stale)  # expired: not renewed
    b = state.acquire_lease("x", "daemon-b", HOUR)
    assert b is not None and b.epoch == stale.epoch + 1
    assert not state.renew_lease(stale)  # another's now
    assert state.renew_lease(b)


def test_a_released_lease_is_free_at_once_for_another_daemon(state: Store) -> None:
    a = state.acquire_lease("", "daemon-a", HOUR)
    assert a is not None and state.release_lease(a)
    assert [r.held for r in state.leases()] == [False]
    b = state.acquire_lease("", "daemon-b", HOUR)
    assert b is not None and b.epoch == 2
    assert not state.release_lease(a)  # a stale holder releases nothing


def test_a_claim_under_a_lost_lease_is_refused_and_writes_nothing(state: Store) -> None:
    tid = _due_thread(state)
    lost = state.acquire_lease("", "daemon-a", 0)
    assert lost is not None
    with state.under_lease(lost), pytest.raises(LeaseLostError, match="lost its lease"):
        _claim(state, tid)
    assert [m.kind for m in state.messages(tid)] == ["apology"]


def test_a_claim_for_another_accounts_thread_is_refused(state: Store) -> None:
    tid = _due_thread(state, account="bea")
    mine = state.acquire_lease("", "daemon-a", HOUR)
    assert mine is not None
    with state.under_lease(mine), pytest.raises(LeaseLostError, match="not of the main"):
        _claim(state, tid)


def test_the_final_dot_mark_needs_the_lease_still_held_at_its_epoch(state: Store) -> None:
    tid = _due_thread(state)
    lease = state.acquire_lease("", "daemon-a", HOUR)
    assert lease is not None
    with state.under_lease(lease):
        row = _claim(state, tid)
        assert row is not None
        state.mark_submitting(row, NOW)
    # It stalls; its lease is released (as if expired) and another daemon takes the account.
    assert state.release_lease(lease)
    other = state.acquire_lease("", "daemon-b", HOUR)
    assert other is not None and other.epoch == lease.epoch + 1
    with state.under_lease(lease), pytest.raises(LeaseLostError):
        state.mark_final_dot(row, NOW)
    assert state.message(row).final_dot_at is None


def test_the_final_dot_mark_is_written_while_the_lease_is_held(state: Store) -> None:
    tid = _due_thread(state)
    lease = state.acquire_lease("", "daemon-a", HOUR)
    assert lease is not None
    with state.under_lease(lease):
        row = _claim(state, tid)
        assert row is not None
        state.mark_submitting(row, NOW)
        state.mark_final_dot(row, NOW)
    assert state.message(row).final_dot_at == NOW.isoformat()


def test_a_message_claimed_under_a_lease_that_moved_on_belongs_to_nobody(state: Store) -> None:
    """Verify ownership comes from the lease, not the process: this process is alive, but the
    epoch it claimed under has moved on, so its messages are settled by the new holder."""
    before, after = _due_thread(state, 1), _due_thread(state, 2)
    old = state.acquire_lease("", "daemon-a", HOUR)
    assert old is not None
    with state.under_lease(old):
        cut = _claim(state, before)
        dotted = _claim(state, after)
        assert cut is not None and dotted is not None
        state.mark_submitting(cut, NOW)
        state.mark_submitting(dotted, NOW)
        state.mark_final_dot(dotted, NOW)
    # Still held: its own, alive, nothing to settle.
    assert state.requeue_abandoned(NOW) == []
    assert not state.mark_abandoned_in_doubt(dotted, NOW, "gone")
    assert state.unsettled_messages() == []
    state.release_lease(old)
    new = state.acquire_lease("", "daemon-b", HOUR)
    assert new is not None
    with state.under_lease(new):
        assert [m.id for m in state.requeue_abandoned(NOW)] == [cut]
        assert [m.id for m in state.unsettled_messages()] == [dotted]
        assert state.mark_abandoned_in_doubt(dotted, NOW, "its lease moved on")
        assert state.message(dotted).state == "in_doubt"
        assert _claim(state, before, 2) == cut  # the requeued one, resumed by the new holder
        assert state.message(cut).owner.endswith(f"|{new.epoch}|")
