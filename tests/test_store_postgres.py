"""The store on a real PostgreSQL (#17): exactly-once claims between concurrent writers, the
schema's types, status's read path, and a lost connection said in one line."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, text

from mailer.adapters import process, store
from mailer.adapters.store import Store
from mailer.errors import ClaimError, StateError
from mailer.model.lifecycle import MessageEvent, ThreadEvent, target

from .postgres import Postgres

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
ROUNDS = 15


def _open(pg: Postgres, db: str) -> Store:
    return Store(pg.url(db, password=False), connect={"password": pg.password})


@pytest.fixture
def pg_store(postgres: Postgres, pg_database: str) -> Iterator[Store]:
    s = _open(postgres, pg_database)
    try:
        yield s
    finally:
        s.close()


def _apology(s: Store, n: int, due: datetime | None = None) -> tuple[int, int]:
    facts = {
        "to": f"ana{n}@sandbox.test",
        "interviewer": "Ana",
        "company": "Acme",
        "role": "Dev",
        "situation": "illness",
        "interview": "2026-11-25T10:00:00+00:00",
    }
    tid, mid = s.create_thread(
        now=NOW,
        facts=facts,
        key=f"key-{n}",
        subject=f"Sorry {n}",
        message_id=f"<apology{n}@sandbox.test>",
        raw=b"Subject: Sorry\r\n\r\n\x00\xff",
        envelope_from="you@sandbox.test",
        recipients=(str(facts["to"]),),
        follow_up_wait="3 days",
        max_follow_ups=1,
        guard_duplicates=True,
    )
    if due is not None:
        s.mark_submitting(mid, NOW)
        s.mark_final_dot(mid, NOW)
        s.mark_sent(mid, NOW, "250 OK", due)
    return tid, mid


def _race(
    postgres: Postgres, monkeypatch: pytest.MonkeyPatch, db: str, work: Callable[[Store], Any]
) -> list[Any]:
    """``work`` run at once by two Store objects in two threads, each as its own live
    process: the first as this one, the second as the PostgreSQL server (a process that
    certainly runs), so neither may take over what the other holds."""
    server_pid = int((postgres.data / "postmaster.pid").read_text().split()[0])
    other = store.owner_token().rsplit(":", 2)[0] + f":{server_pid}:"
    other += process.start_mark(server_pid)
    who = threading.local()
    real = store.owner_token
    monkeypatch.setattr(store, "owner_token", lambda: getattr(who, "token", None) or real())
    stores = [_open(postgres, db), _open(postgres, db)]
    barrier = threading.Barrier(2)
    results: list[Any] = [None, None]

    def run(i: int) -> None:
        if i == 1:
            who.token = other
        barrier.wait(10)
        try:
            results[i] = work(stores[i])
        except ClaimError as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for s in stores:
        s.close()
    return results


def test_two_writers_claiming_one_follow_up_get_exactly_one(
    postgres: Postgres, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = _open(postgres, pg_database)
    threads = [_apology(setup, n, due=NOW - timedelta(minutes=1))[0] for n in range(ROUNDS)]
    for n, tid in enumerate(threads):

        def claim(s: Store, tid: int = tid, n: int = n) -> int | None:
            return s.claim_follow_up(
                tid,
                NOW,
                message_id=f"<f{n}-{threading.get_ident()}@sandbox.test>",
                raw=b"follow-up",
                envelope_from="you@sandbox.test",
                recipients=("ana@sandbox.test",),
            )

        won = [r for r in _race(postgres, monkeypatch, pg_database, claim) if r is not None]
        assert len(won) == 1, f"round {n}: {won}"
        assert [m.kind for m in setup.messages(tid)].count("follow_up") == 1
    setup.close()


def test_two_writers_claiming_one_message_before_mail_from_get_exactly_one(
    postgres: Postgres, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = _open(postgres, pg_database)
    for n in range(ROUNDS):
        _, mid = _apology(setup, n)
        # Queued by a process that is gone, so either writer may take it, but only one.
        with setup.tx() as c:
            c.execute(text("UPDATE messages SET owner = NULL WHERE id = :m"), {"m": mid})
        results = _race(
            postgres, monkeypatch, pg_database, lambda s, mid=mid: s.mark_submitting(mid, NOW)
        )
        assert sum(not isinstance(r, ClaimError) for r in results) == 1, results
        assert setup.message(mid).state == "submitting"
    setup.close()


def test_the_schema_on_postgresql_has_its_own_types(pg_store: Store) -> None:
    with pg_store.tx() as c:
        types = dict(
            c.execute(
                text("""SELECT table_name || '.' || column_name, data_type
                        FROM information_schema.columns WHERE table_schema = 'public'""")
            ).all()
        )
        identity = c.execute(
            text("""SELECT is_identity FROM information_schema.columns
                    WHERE table_name = 'messages' AND column_name = 'id'""")
        ).scalar()
        collation = c.execute(
            text("""SELECT collation_name FROM information_schema.columns
                    WHERE table_name = 'messages' AND column_name = 'sent_copy'""")
        ).scalar()
        revision = c.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert types["messages.raw"] == "bytea"
    assert types["threads.id"] == types["messages.id"] == "bigint"
    assert types["folders.last_uid"] == "bigint"  # IMAP UIDs are unsigned 32-bit
    assert identity == "YES"
    assert collation == "C"
    assert revision == store.ALEMBIC_HEAD


def test_status_on_postgresql_reads_through_the_full_store(
    postgres: Postgres, pg_database: str
) -> None:
    s = _open(postgres, pg_database)
    _apology(s, 1)
    s.close()
    opened = store.open_to_read(postgres.url(pg_database))
    try:
        assert isinstance(opened, Store)
        assert [t.recipient for t, _ in opened.thread_list()] == ["ana1@sandbox.test"]
        found = opened.thread_whole(1, events=True)
        assert found is not None and found[1][0].raw.endswith(b"\x00\xff")
    finally:
        opened.close()


def test_a_connection_the_server_dropped_between_transactions_is_replaced(
    postgres: Postgres, pg_store: Store
) -> None:
    tid, _ = _apology(pg_store, 1)
    with postgres.admin() as c:
        c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'mailer'")
    thread = pg_store.thread(tid)  # a new connection, no error (the read is sent again)
    assert thread is not None and thread.recipient == "ana1@sandbox.test"


def test_a_connection_dropped_mid_transaction_is_one_line_naming_host_and_port(
    postgres: Postgres, pg_store: Store
) -> None:
    tid, _ = _apology(pg_store, 1)
    with pytest.raises(StateError) as caught, pg_store.tx() as c:
        mine = c.execute(text("SELECT pg_backend_pid()")).scalar()
        with postgres.admin() as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (mine,))
        c.execute(text("UPDATE threads SET state = 'failed' WHERE id = :t"), {"t": tid})
    message = str(caught.value)
    assert message.startswith(f"127.0.0.1:{postgres.port}: the connection to the state store")
    assert "\n" not in message and postgres.password not in message
    thread = pg_store.thread(tid)  # nothing of the lost transaction was kept
    assert thread is not None and thread.state != "failed"


def test_an_unreachable_server_is_one_line_naming_host_and_port(postgres: Postgres) -> None:
    port = _closed_port()
    with pytest.raises(StateError) as caught:
        Store(
            f"postgresql://mailer@127.0.0.1:{port}/mailer", connect={"password": "secret-not-shown"}
        )
    message = str(caught.value)
    assert message.startswith(f"127.0.0.1:{port}: the connection to the state store failed")
    assert "\n" not in message and "secret-not-shown" not in message


def test_an_unreachable_server_is_said_after_one_connect_attempt(
    postgres: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening a store reads its schema version first; a server out of reach must fail
    that read at once, not again on the locked way (which cost a second connect timeout)."""
    attempts: list[object] = []
    real = psycopg.connect

    def counted(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args or kwargs.get("host"))
        return real(*args, **kwargs)

    monkeypatch.setattr(psycopg, "connect", counted)
    port = _closed_port()
    started = time.monotonic()
    with pytest.raises(StateError) as caught:
        Store(f"postgresql://mailer@127.0.0.1:{port}/mailer", connect={"password": "pw"})
    message = str(caught.value)
    assert message.startswith(f"127.0.0.1:{port}: the connection to the state store failed")
    assert "\n" not in message
    assert len(attempts) == 1
    assert time.monotonic() - started < 5


def test_a_server_that_never_answers_costs_one_connect_timeout_not_two(
    postgres: Postgres,
) -> None:
    """A wrong host that takes the connection and says nothing (a firewall, another
    service): the open fails after one connect timeout, counted at the listening socket."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes each handshake; nothing ever answers
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(StateError) as caught:
            Store(
                f"postgresql://mailer@127.0.0.1:{port}/mailer",
                connect={"password": "pw", "connect_timeout": 2},
            )
        took = time.monotonic() - started
        silent.setblocking(False)
        connections = 0
        while True:
            try:
                silent.accept()[0].close()
            except BlockingIOError:
                break
            connections += 1
    assert str(caught.value).startswith(f"127.0.0.1:{port}: the connection to the state store")
    assert connections == 1
    assert took < 3.9  # two attempts would take two timeouts of 2 s


def test_a_wrong_password_is_refused_without_showing_it(
    postgres: Postgres, pg_database: str
) -> None:
    with pytest.raises(StateError, match="password authentication failed") as caught:
        Store(postgres.url(pg_database, password=False), connect={"password": "wrong-one"})
    assert "wrong-one" not in str(caught.value)


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_psycopg_is_the_driver(pg_store: Store) -> None:
    assert pg_store.engine.dialect.driver == "psycopg"
    with pg_store.tx() as c:
        assert isinstance(c.connection.dbapi_connection, psycopg.Connection)


def test_a_serialization_failure_runs_the_whole_transaction_again(pg_store: Store) -> None:
    """Verify Store.run tries SQL-only work again on SQLSTATE 40001 (raised here by the
    server itself), and that the failed attempt left nothing behind."""
    attempts: list[int] = []

    def work(c: Any) -> int:
        attempts.append(1)
        c.execute(text("INSERT INTO folders (folder, uidvalidity, last_uid) VALUES ('X', 1, 1)"))
        if len(attempts) == 1:
            c.execute(
                text("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$")
            )
        return len(attempts)

    assert pg_store.run(work) == 2
    assert pg_store.folder_state("X") == (1, 1)


def test_other_errors_are_not_tried_again(pg_store: Store) -> None:
    attempts: list[int] = []

    def work(c: Any) -> None:
        attempts.append(1)
        c.execute(text("SELECT * FROM no_such_table"))

    with pytest.raises(StateError, match="no_such_table"):
        pg_store.run(work)
    assert len(attempts) == 1


def test_status_reads_while_a_writer_holds_the_lock(
    postgres: Postgres, pg_database: str, pg_store: Store
) -> None:
    """Verify status's snapshot read takes no writers' lock: it neither waits for a sending
    process nor holds one up (as on SQLite)."""
    _apology(pg_store, 1)
    reader = _open(postgres, pg_database)
    try:
        with pg_store.tx() as c:  # a writer in the middle of its transaction
            c.execute(text("UPDATE threads SET subject = 'changing' WHERE id = 1"))
            done = threading.Event()
            listed: list[Any] = []

            def read() -> None:
                listed.extend(reader.thread_list())
                done.set()

            threading.Thread(target=read, daemon=True).start()
            assert done.wait(30), "the status read waited for the writer"
        assert [t.subject for t, _ in listed] == ["Sorry 1"]  # the committed snapshot
    finally:
        reader.close()


def test_a_restarted_server_is_reconnected_to(postgres: Postgres, pg_store: Store) -> None:
    tid, mid = _apology(pg_store, 1)
    postgres.restart()
    pg_store.mark_submitting(mid, NOW)  # a fresh connection: the BEGIN found the old one dead
    assert pg_store.message(mid).state == "submitting"
    thread = pg_store.thread(tid)
    assert thread is not None and thread.state == "sending"


def test_a_single_read_neither_waits_for_a_writer_nor_sees_its_uncommitted_work(
    postgres: Postgres, pg_database: str, pg_store: Store
) -> None:
    """A read of one statement takes no writers' lock (one round trip, Store._rows)."""
    tid, _ = _apology(pg_store, 1)
    reader = _open(postgres, pg_database)
    try:
        with pg_store.tx() as c:
            c.execute(text("UPDATE threads SET subject = 'changing' WHERE id = :t"), {"t": tid})
            done = threading.Event()
            read: list[Any] = []

            def run() -> None:
                read.append(reader.thread(tid))
                done.set()

            threading.Thread(target=run, daemon=True).start()
            assert done.wait(30), "the read waited for the writer's lock"
        assert [t.subject for t in read if t] == ["Sorry 1"]  # what was committed then
        after = reader.thread(tid)
        assert after is not None and after.subject == "changing"  # and once committed
    finally:
        reader.close()


def test_a_write_transaction_holds_the_writers_lock_from_its_begin_to_its_commit(
    postgres: Postgres, pg_database: str, pg_store: Store
) -> None:
    """Every write transaction takes the writers' lock after BEGIN and holds it, in one
    transaction, until its commit (single reads, now outside any transaction, must not
    have changed that)."""
    tid, _ = _apology(pg_store, 1)
    with pg_store.tx() as c:
        mine = c.execute(text("SELECT pg_backend_pid()")).scalar()
        c.execute(text("UPDATE threads SET subject = 'changing' WHERE id = :t"), {"t": tid})
        with postgres.admin(pg_database) as admin:
            locks = admin.execute(
                "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND pid = %s AND granted",
                (mine,),
            ).fetchall()
            state = admin.execute(
                "SELECT state FROM pg_stat_activity WHERE pid = %s", (mine,)
            ).fetchone()
            seen = admin.execute("SELECT subject FROM threads WHERE id = %s", (tid,)).fetchone()
    assert locks == [(store.PG_WRITE_LOCK & 0xFFFFFFFF,)]
    assert state == ("idle in transaction",)
    assert seen == ("Sorry 1",)  # not committed before the end of the block
    with postgres.admin() as admin:
        after = admin.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = %s", (mine,)
        ).fetchone()
    assert after == (0,)
    thread = pg_store.thread(tid)
    assert thread is not None and thread.subject == "changing"


def test_a_pooled_connection_idle_past_the_ping_time_is_checked_before_use(
    postgres: Postgres, pg_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection that sat idle is pinged at checkout and replaced if the server dropped
    it: here the BEGIN gets no second try, so only the ping can save the claim."""
    _, mid = _apology(pg_store, 1)
    monkeypatch.setattr(store, "TX_BEGIN_TRIES", 1)
    monkeypatch.setattr(store, "PG_PING_IDLE", 0.0)
    with postgres.admin() as c:
        c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'mailer'")
    pg_store.mark_submitting(mid, NOW)
    assert pg_store.message(mid).state == "submitting"


def test_without_the_ping_a_dropped_connection_is_replaced_at_begin(
    postgres: Postgres, pg_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection used a moment ago is not pinged; the BEGIN, which comes before any of
    the transaction's work, is what finds it dropped and is sent again on a new one."""
    _, mid = _apology(pg_store, 1)
    monkeypatch.setattr(store, "PG_PING_IDLE", 3600.0)
    with postgres.admin() as c:
        c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'mailer'")
    pg_store.mark_submitting(mid, NOW)
    assert pg_store.message(mid).state == "submitting"


def test_a_transactions_events_are_written_with_its_commit_or_not_at_all(
    pg_store: Store,
) -> None:
    """On PostgreSQL the events a transaction logs go in one round trip with its COMMIT:
    they are there once it commits, in order; if one is refused there (no such thread),
    nothing of the transaction is kept and the error is one line."""
    tid, _ = _apology(pg_store, 1)
    before = pg_store.events(tid)
    with pg_store.tx() as c:
        c.execute(text("UPDATE threads SET subject = 'one' WHERE id = :t"), {"t": tid})
        pg_store._event(c, tid, NOW, "first", "a")
        pg_store._event(c, tid, NOW, "second", "b")
        logged = c.execute(text("SELECT count(*) FROM events WHERE thread_id = :t"), {"t": tid})
        assert logged.scalar() == len(before)  # not sent before the COMMIT
    assert [e["kind"] for e in pg_store.events(tid)] == [
        *(e["kind"] for e in before),
        "first",
        "second",
    ]
    with pytest.raises(StateError) as caught, pg_store.tx() as c:
        c.execute(text("UPDATE threads SET subject = 'two' WHERE id = :t"), {"t": tid})
        pg_store._event(c, tid, NOW, "third", "c")
        pg_store._cancel_queued(c, tid, NOW, "cancelled, then rolled back")
        pg_store._event(c, tid + 1000, NOW, "refused", "no such thread")
    assert "events" in str(caught.value) and "\n" not in str(caught.value)
    thread = pg_store.thread(tid)
    assert thread is not None and thread.subject == "one"
    assert [e["kind"] for e in pg_store.events(tid)][-2:] == ["first", "second"]
    with pg_store.tx() as c:  # the connection is fine afterwards
        pg_store._event(c, tid, NOW, "fourth", "d")
    assert pg_store.events(tid)[-1]["kind"] == "fourth"


def test_a_reply_cancels_a_queued_follow_up_with_the_commit(
    pg_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancel of a queued follow-up goes in the COMMIT's round trip (with the event):
    both are handed to the COMMIT's pipeline, in order, and once the move commits the
    follow-up is cancelled and the reply logged."""
    tid, row = _queued_follow_up(pg_store)
    with_commit = _handed_to_the_commit(monkeypatch)
    pg_store.set_thread_state(tid, ThreadEvent.REPLY, NOW, "reply", {"from": "ana"})
    assert with_commit == ["UPDATE messages SET", "INSERT INTO events"]
    follow_up = pg_store.message(row)
    assert follow_up.state == target(MessageEvent.DROP_QUEUED) != "queued"
    assert follow_up.error == "reply: follow-up cancelled"
    thread = pg_store.thread(tid)
    assert thread is not None and thread.state == "replied"
    assert pg_store.events(tid)[-1]["kind"] == "reply"


def _handed_to_the_commit(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The first three words of each statement handed to the COMMIT's pipeline from now on."""
    seen: list[str] = []
    real = store._commit_with

    def watched(conn: Any, later: list[tuple[str, tuple[Any, ...]]]) -> None:
        seen.extend(" ".join(sql.split()[:3]) for sql, _ in later)
        real(conn, later)

    monkeypatch.setattr(store, "_commit_with", watched)
    return seen


def _queued_follow_up(s: Store) -> tuple[int, int]:
    """A sent apology whose follow-up is claimed and queued: a reply would cancel it."""
    tid, _ = _apology(s, 1, due=NOW - timedelta(minutes=1))
    row = s.claim_follow_up(
        tid,
        NOW,
        message_id="<f1@sandbox.test>",
        raw=b"follow-up",
        envelope_from="you@sandbox.test",
        recipients=("ana1@sandbox.test",),
    )
    assert row is not None and s.message(row).state == "queued"
    return tid, row


def test_a_cancel_and_event_left_for_the_commit_are_sent_only_with_it(pg_store: Store) -> None:
    """The cancel of a queued follow-up and the event are not sent when made: the
    transaction's own connection still sees the follow-up queued and no event just before
    the commit, and both are there once it commits. A refusal among them (an event for no
    such thread) comes at the commit too, after the rest of the body ran."""
    tid, row = _queued_follow_up(pg_store)
    kinds = [e["kind"] for e in pg_store.events(tid)]

    def seen(c: Any) -> tuple[Any, Any]:
        state = c.execute(text("SELECT state FROM messages WHERE id = :m"), {"m": row}).scalar()
        count = c.execute(
            text("SELECT count(*) FROM events WHERE thread_id = :t"), {"t": tid}
        ).scalar()
        return state, count

    with pg_store.tx() as c:
        pg_store._cancel_queued(c, tid, NOW, "reply: follow-up cancelled")
        pg_store._event(c, tid, NOW, "reply", "from ana")
        assert seen(c) == ("queued", len(kinds))  # not sent yet
    follow_up = pg_store.message(row)
    assert follow_up.state == target(MessageEvent.DROP_QUEUED)
    assert follow_up.error == "reply: follow-up cancelled"
    assert [e["kind"] for e in pg_store.events(tid)] == [*kinds, "reply"]

    body_ran_on = False
    with pytest.raises(StateError) as caught, pg_store.tx() as c:
        pg_store._event(c, tid + 1000, NOW, "refused", "no such thread")
        body_ran_on = True  # the refusal waits for the commit
    assert body_ran_on
    assert "events" in str(caught.value) and "\n" not in str(caught.value)


def test_a_reply_whose_commit_fails_keeps_the_follow_up_queued_and_logs_nothing(
    postgres: Postgres, pg_database: str, pg_store: Store
) -> None:
    """The reply's cancel and event go with the COMMIT; a COMMIT that fails (here a
    deferred constraint, checked only at COMMIT, refusing the reply's event) keeps none
    of the transaction: the thread is not replied, the follow-up is still queued, no event
    row was written, and the error is one line."""
    tid, row = _queued_follow_up(pg_store)
    kinds = [e["kind"] for e in pg_store.events(tid)]
    with postgres.admin(pg_database) as admin:
        admin.execute(
            """CREATE FUNCTION refuse_reply() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN RAISE EXCEPTION 'reply refused at commit'; END $$"""
        )
        admin.execute(
            """CREATE CONSTRAINT TRIGGER refuse_reply AFTER INSERT ON events
               DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
               WHEN (NEW.kind = 'reply') EXECUTE FUNCTION refuse_reply()"""
        )
    with pytest.raises(StateError) as caught:
        pg_store.set_thread_state(tid, ThreadEvent.REPLY, NOW, "reply", {"from": "ana"})
    assert "reply refused at commit" in str(caught.value) and "\n" not in str(caught.value)
    thread = pg_store.thread(tid)
    assert thread is not None and thread.state != "replied"
    assert pg_store.message(row).state == "queued"
    assert [e["kind"] for e in pg_store.events(tid)] == kinds
    with postgres.admin(pg_database) as admin:  # allowed again: the same move goes through
        admin.execute("DROP TRIGGER refuse_reply ON events")
    pg_store.set_thread_state(tid, ThreadEvent.REPLY, NOW, "reply", {"from": "ana"})
    assert pg_store.message(row).state == target(MessageEvent.DROP_QUEUED)


def _end_backend(postgres: Postgres, pid: int) -> None:
    """End one server session, and wait until it is gone."""
    with postgres.admin() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        gone = "SELECT count(*) FROM pg_stat_activity WHERE pid = %s"
        deadline = time.monotonic() + 10
        while admin.execute(gone, (pid,)).fetchone() != (0,):
            assert time.monotonic() < deadline, "the backend was never ended"
            time.sleep(0.02)


def _outcome_unknown(postgres: Postgres) -> str:
    return (
        f"127.0.0.1:{postgres.port}: the connection to the state store was lost during "
        "COMMIT; whether it committed is unknown"
    )


def test_a_connection_lost_during_the_commit_says_its_outcome_is_unknown(
    postgres: Postgres, pg_store: Store
) -> None:
    """The server goes away with a transaction's COMMIT (and the statements sent with it)
    in flight: the error says so, naming host and port, not psycopg's "the connection is
    lost" from the rollback after it. The store reconnects for the next transaction."""
    tid, row = _queued_follow_up(pg_store)
    with pytest.raises(StateError) as caught, pg_store.tx() as c:
        mine = c.execute(text("SELECT pg_backend_pid()")).scalar()
        pg_store._cancel_queued(c, tid, NOW, "reply: follow-up cancelled")
        pg_store._event(c, tid, NOW, "reply", "from ana")
        _end_backend(postgres, mine)
    assert str(caught.value) == _outcome_unknown(postgres)
    assert pg_store.message(row).state == "queued"  # here it did not (the server was gone)
    pg_store.set_thread_state(tid, ThreadEvent.REPLY, NOW, "reply", {"from": "ana"})
    assert pg_store.message(row).state == target(MessageEvent.DROP_QUEUED)


def test_a_connection_lost_during_a_plain_commit_says_its_outcome_is_unknown(
    postgres: Postgres, pg_store: Store
) -> None:
    """The same for a transaction with nothing sent with its COMMIT (SQLAlchemy's own)."""
    tid, _ = _apology(pg_store, 1)
    with pytest.raises(StateError) as caught, pg_store.tx() as c:
        mine = c.execute(text("SELECT pg_backend_pid()")).scalar()
        c.execute(text("UPDATE threads SET subject = 'lost' WHERE id = :t"), {"t": tid})
        _end_backend(postgres, mine)
    assert str(caught.value) == _outcome_unknown(postgres)
    thread = pg_store.thread(tid)
    assert thread is not None and thread.subject == "Sorry 1"
    with pytest.raises(StateError) as earlier, pg_store.tx() as c:
        mine = c.execute(text("SELECT pg_backend_pid()")).scalar()
        _end_backend(postgres, mine)
        c.execute(text("UPDATE threads SET subject = 'lost' WHERE id = :t"), {"t": tid})
    assert str(earlier.value).startswith(  # lost before the COMMIT: said as before
        f"127.0.0.1:{postgres.port}: the connection to the state store failed: "
    )


def test_a_writer_stopped_inside_its_transaction_is_cut_off_so_others_can_write(
    postgres: Postgres, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify a process that stops inside a write transaction (SIGSTOP, a frozen VM), and so
    holds the writers' lock, is cut off by the server after the idle-in-transaction time:
    another writer then goes on, and the stopped one's transaction fails as one line."""
    monkeypatch.setattr(store, "PG_IDLE_IN_TRANSACTION", 1.0)
    stalled, other = _open(postgres, pg_database), _open(postgres, pg_database)
    wrote = threading.Event()
    writer = threading.Thread(
        target=lambda: (other.set_folder_state("INBOX", 7, 42), wrote.set()), daemon=True
    )
    try:
        with pytest.raises(StateError) as caught, stalled.tx() as c:
            c.execute(text("SELECT 1"))  # the writers' lock is held from here on
            writer.start()
            assert wrote.wait(30), "the other writer waited on a stalled transaction"
            c.execute(text("SELECT 1"))  # the server has ended this session meanwhile
        assert "\n" not in str(caught.value)
        assert other.folder_state("INBOX") == (7, 42)
    finally:
        writer.join(10)
        stalled.close()
        other.close()


def test_the_users_own_connection_options_are_kept(postgres: Postgres, pg_database: str) -> None:
    """Verify libpq ``options`` in the store's URL (a search_path, say) reach the server: the
    store's own session settings are made per transaction and never replace them."""
    url = postgres.url(pg_database, password=False) + "?options=-csearch_path%3Dmailer_x%2Cpublic"
    s = Store(url, connect={"password": postgres.password})
    try:
        with s.tx() as c:
            assert c.execute(text("SHOW search_path")).scalar() == "mailer_x,public"
            assert c.execute(text("SHOW idle_in_transaction_session_timeout")).scalar() == "30s"
    finally:
        s.close()


def test_a_sent_copys_outcome_goes_with_the_commit(
    pg_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where a Sent copy went is recorded in the COMMIT's round trip: nothing waits for the
    UPDATE's answer. Once committed, each message has its own outcome."""
    first = _queued_follow_up(pg_store)[1]
    _, second = _apology(pg_store, 2)
    with_commit = _handed_to_the_commit(monkeypatch)
    pg_store.record_sent_copies([(first, "Sent"), (second, "failed: quota")])
    assert with_commit == ["UPDATE messages SET"] * 2
    assert pg_store.message(first).sent_copy == "Sent"
    assert pg_store.message(second).sent_copy == "failed: quota"


def test_a_claim_of_a_row_this_process_queued_is_one_statement(
    pg_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The usual claim before MAIL FROM, of a follow-up this process has just queued, is one
    UPDATE; the row is then this process's and submitting."""
    row = _queued_follow_up(pg_store)[1]
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(pg_store.engine, "before_cursor_execute", seen)
    try:
        pg_store.mark_submitting(row, NOW)
    finally:
        event.remove(pg_store.engine, "before_cursor_execute", seen)
    # Beside the BEGIN's own (the writers' lock), the claim's only statement.
    on_messages = [s for s in statements if "messages" in s]
    assert len(on_messages) == 1 and on_messages[0].startswith("UPDATE messages"), statements
    assert len(statements) == 2, statements
    claimed = pg_store.message(row)
    assert claimed.state == "submitting" and claimed.submitting_at is not None


@pytest.mark.parametrize(
    "orig",
    [
        psycopg.errors.SerializationFailure("could not serialize access"),
        psycopg.errors.DeadlockDetected("deadlock detected"),
        psycopg.errors.DiskFull("could not extend file"),
    ],
    ids=["serialization", "deadlock", "disk-full"],
)
def test_a_database_error_that_is_not_the_connections_is_not_called_a_failed_connection(
    orig: Exception,
) -> None:
    from sqlalchemy.exc import DBAPIError

    url = "postgresql://mailer@db.example:5432/mailer"
    said = store._db_error(url, DBAPIError.instance("UPDATE x", None, orig, psycopg.Error))
    assert "connection to the state store failed" not in said
    assert said.startswith("postgresql://mailer@db.example:5432/mailer") and str(orig) in said


@pytest.mark.parametrize(
    "orig",
    [
        psycopg.OperationalError("connection refused"),
        psycopg.errors.ConnectionTimeout("connection timeout expired"),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
    ],
    ids=["refused", "timeout", "admin-shutdown"],
)
def test_a_lost_or_refused_connection_names_host_and_port(orig: Exception) -> None:
    from sqlalchemy.exc import DBAPIError

    url = "postgresql://mailer@db.example:5432/mailer"
    said = store._db_error(url, DBAPIError.instance("SELECT 1", None, orig, psycopg.Error))
    assert said.startswith("db.example:5432: the connection to the state store failed: ")


def test_an_apology_found_sent_while_held_is_dated_on_postgresql(pg_store: Store) -> None:
    """An apology in doubt whose thread a challenge-response holds: settled as sent, the
    held thread gets its follow-up due time (PostgreSQL types the CASE the same way), and
    a thread that moved to awaiting_reply gets it once, from the move."""
    from mailer.services.decisions import release

    tid, mid = _apology(pg_store, 1)
    pg_store.mark_submitting(mid, NOW)
    pg_store.mark_final_dot(mid, NOW)
    pg_store.mark_in_doubt(mid, NOW, "connection lost after the final dot")
    pg_store.set_thread_state(tid, ThreadEvent.CHALLENGE, NOW, "held", {"held": "verify"})
    due = NOW + timedelta(days=3)
    pg_store.mark_sent(mid, NOW, "confirmed by you", due, settling=True)
    held = pg_store.thread(tid)
    assert held is not None and (held.state, held.follow_up_due) == ("held", due.isoformat())
    release(pg_store, tid, NOW + timedelta(hours=1))
    assert [t.id for t in pg_store.due_threads(due)] == [tid]

    other, _ = _apology(pg_store, 2, due=due)  # the plain path: dated by APOLOGY_SENT
    assert pg_store.thread(other).follow_up_due == due.isoformat()  # type: ignore[union-attr]
