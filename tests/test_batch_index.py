"""A batch's thread index (#14): a one-shot ``check`` matches its few new messages against the
threads they can match (Store.batch_index), not every thread in the store. Every decision the
watcher takes about those messages must be the one the whole index gives: a missed match is a
follow-up sent after the interviewer answered."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from mailer.adapters.store import Store
from mailer.model.lifecycle import ThreadState
from mailer.model.matching import (
    Incoming,
    ThreadIndex,
    by_reference,
    choose_for_reply,
    from_sender,
    match,
)
from mailer.services.watcher import ID_LIMIT, Indexes, _may_concern

from .postgres import Postgres

T0 = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)

# Addresses as a user may have typed them: mixed case, capitals past ASCII (SQLite's lower()
# leaves "Ö" as it is; Python's gives "ö"), and a Kelvin sign, which Python lowers to an
# ASCII "k": only the rare-row branch of the batch's SQL finds it for "kate@x.test".
RECIPIENTS = [
    "ana@acme.example",
    "Ana@Acme.Example",
    "JÖRG@Example.com",
    "jörg@example.com",
    "\u212aate@x.test",
    "bo@corvid.example",
    "İnci@x.test",
]
SENDERS = [
    *sorted({r.lower() for r in RECIPIENTS}),
    "kate@x.test",
    "alt@elsewhere.example",
    "anyone@alt.example",
    "nobody@else.example",
    "mailer-daemon@mx.example",
    "",
]
# Mostly none: a thread with alternates is always read, which would hide a missed address.
ALT_ADDRESSES = [*[[]] * 5, ["alt@elsewhere.example"], ["ÖTHER@Elsewhere.example"]]
ALT_DOMAINS = [*[[]] * 3, ["alt.example"]]
STATES = [s for s in ThreadState] + [ThreadState.AWAITING] * 3
ACCOUNTS = ["", "", "", "anna"]
COMPANIES = ["Acme Ltd.", "Borealis", "Corvid"]
# None: never sent (created_at counts); "soon": a damaged date (the epoch counts).
SENT = [None, "soon", *(T0 + timedelta(hours=h) for h in (-48, -1, 0, 3))]


@dataclass(frozen=True)
class Spec:
    recipient: str
    alt_addresses: list[str]
    alt_domains: list[str]
    state: str
    account: str
    sent: datetime | str | None
    company: str
    raw_alts: str | None = None  # alt_addresses as stored, when not as create_thread writes


def _fill(store: Store, specs: list[Spec]) -> list[str]:
    """The threads (ids 1..n), through the store's API, then their state, account and sent
    time set as they would be later; our Message-IDs, in thread order."""
    ours = []
    for n, spec in enumerate(specs):
        facts = {"to": spec.recipient, "interviewer": "I", "company": spec.company}
        facts |= {"role": "Engineer", "situation": "illness", "interview": T0.isoformat()}
        facts |= {"alt_addresses": spec.alt_addresses, "alt_domains": spec.alt_domains}
        mid = f"<t{n + 1}@ours.test>"  # thread n + 1's
        store.create_thread(
            now=T0 - timedelta(days=3),
            facts=facts,
            key=f"k{n}",
            subject=f"s{n}",
            message_id=mid,
            raw=b"x",
            envelope_from="me@ours.test",
            recipients=(spec.recipient,),
            follow_up_wait="1d",
            max_follow_ups=1,
            guard_duplicates=False,
            account=spec.account,
            durable=False,
        )
        ours.append(mid)
    with store.tx(durable=False) as c:
        for n, spec in enumerate(specs, start=1):
            sent = spec.sent.isoformat() if isinstance(spec.sent, datetime) else spec.sent
            c.execute(
                text("UPDATE threads SET state = :s, account = :a, sent_at = :t WHERE id = :id"),
                {"s": str(spec.state), "a": spec.account, "t": sent, "id": n},
            )
            if spec.raw_alts is not None:
                c.execute(
                    text("UPDATE threads SET alt_addresses = :x WHERE id = :id"),
                    {"x": spec.raw_alts, "id": n},
                )
    return ours


def _incoming(sender: str, mid: str | None, refs: tuple[str, ...], hours: int, subject: str):
    return Incoming(
        message_id=mid,
        refs=refs,
        sender=sender,
        sender_name="",
        subject=subject,
        received=T0 + timedelta(hours=hours),
        report=sender.startswith("mailer-daemon"),
    )


def _decisions(incoming: Incoming, index: ThreadIndex) -> tuple[object, ...]:
    return (
        match(incoming, index),
        _may_concern(incoming, index),
        by_reference(incoming, index),
        from_sender(incoming.sender, incoming.received, index),
        choose_for_reply(incoming.sender, incoming.received, incoming.subject, "", index),
        choose_for_reply(incoming.sender, incoming.received, "Re: hello", "Acme", index),
    )


def _assert_same_decisions(store: Store, account: str, batch: list[Incoming]) -> ThreadIndex:
    whole = store.thread_index(account)
    narrow = Indexes(store, account).for_batch(batch)
    # A part of the whole: the same threads as the whole one reads them, in the same order.
    assert set(narrow.threads) <= set(whole.threads)
    assert list(narrow.threads) == [t for t in whole.threads if t in set(narrow.threads)]
    assert narrow.our_ids.items() <= whole.our_ids.items()
    for incoming in batch:
        assert _decisions(incoming, narrow) == _decisions(incoming, whole), incoming
    return narrow


spec_strategy = st.builds(
    Spec,
    recipient=st.sampled_from(RECIPIENTS),
    alt_addresses=st.sampled_from(ALT_ADDRESSES),
    alt_domains=st.sampled_from(ALT_DOMAINS),
    state=st.sampled_from(STATES),
    account=st.sampled_from(ACCOUNTS),
    sent=st.sampled_from(SENT),
    company=st.sampled_from(COMPANIES),
    raw_alts=st.sampled_from([*[None] * 9, '["Alt@Elsewhere.Example"]', "[ ]", "oops"]),
)


@settings(max_examples=300, deadline=None)
@given(
    specs=st.lists(spec_strategy, min_size=1, max_size=12),
    data=st.data(),
    account=st.sampled_from(["", "anna"]),
)
def test_a_batch_index_decides_every_message_of_its_batch_as_the_whole_index(
    specs: list[Spec], data: st.DataObject, account: str
) -> None:
    """Verify, for generated stores (addresses in any case, capitals past ASCII, alternate
    addresses and domains, damaged alternates, several threads to an address, failed threads,
    another account, sent times in any order, never sent or damaged) and generated new mail
    (senders who were written to or not, references to our Message-IDs or others', our own
    Message-ID), that match, _may_concern, by_reference, from_sender and choose_for_reply
    (thread and hold) decide each message of the batch alike with the batch's index and with
    the whole one, on a real SQLite store."""
    # Mostly the senders the store knows (as Incoming has them: Python-lowered), so that
    # most messages match something.
    known = sorted(
        {s.recipient.lower() for s in specs}
        | {a.lower() for s in specs for a in s.alt_addresses}
        | {f"someone@{d}" for s in specs for d in s.alt_domains}
    )
    sender = st.one_of(st.sampled_from(known), st.sampled_from(known), st.sampled_from(SENDERS))
    picks = data.draw(
        st.lists(
            st.tuples(
                sender,
                # Message-ID: one of ours (by thread), else a stranger's, else none. Mostly not ours:
                # a thread reached by an ID is read whatever its address.
                st.integers(0, 40),
                st.lists(st.integers(0, 40), max_size=3),  # refs, the same way
                st.sampled_from([-72, -2, 0, 1, 5]),
                st.sampled_from(["Re: Acme", "Borealis interview", "hello", ""]),
            ),
            min_size=1,
            max_size=6,
        )
    )
    store = Store.in_memory()
    try:
        ours = _fill(store, specs)

        def mid(n: int) -> str:
            return ours[n] if n < len(ours) else f"<stranger{n}@else.example>"

        batch = [
            _incoming(sender, mid(m) if m < 36 else None, tuple(mid(r) for r in refs), h, subj)
            for sender, m, refs, h, subj in picks
        ]
        _assert_same_decisions(store, account, batch)
    finally:
        store.close()


def _fixed_specs() -> list[Spec]:
    a = Spec("ana@acme.example", [], [], ThreadState.AWAITING, "", T0 - timedelta(days=2), "Acme")
    return [
        a,
        Spec("JÖRG@Example.com", [], [], ThreadState.AWAITING, "", T0, "Borealis"),
        Spec("\u212aate@x.test", [], [], ThreadState.HELD, "", T0, "Corvid"),
        Spec("Ana@Acme.Example", [], [], ThreadState.FOLLOWED_UP, "", T0, "Borealis"),
        Spec("bo@corvid.example", [], ["alt.example"], ThreadState.AWAITING, "", T0, "Corvid"),
        Spec("ana@acme.example", [], [], ThreadState.FAILED, "", T0, "Acme"),
        Spec("ana@acme.example", [], [], ThreadState.AWAITING, "anna", T0, "Acme"),
        *(
            Spec(f"other{n}@b.test", [], [], ThreadState.AWAITING, "", T0, "Acme")
            for n in range(20)
        ),
    ]


FIXED_BATCH = [
    _incoming("jörg@example.com", "<new1@else.example>", (), 2, "Re: Sorry"),
    _incoming("kate@x.test", "<new2@else.example>", (), 2, "hello"),
    _incoming("ana@acme.example", "<new3@else.example>", (), 2, "hello"),
    _incoming("someone@alt.example", None, (), 2, ""),
    _incoming("nobody@else.example", "<new4@else.example>", ("<t6@ours.test>",), 2, ""),
    _incoming("nobody@else.example", "<t1@ours.test>", (), 2, ""),
]


# Headers with NUL bytes (a server that passes raw bytes): PostgreSQL refuses a NUL in a
# text parameter, and a pass that fails on one message fails on it every time after.
NUL_BATCH = [
    _incoming("x\x00y@alt.example", "<n\x00ul@else.example>", ("<a\x00b@ours.test>",), 2, ""),
    _incoming("an\x00a@acme.example", None, ("<t6@ours.test>", "<\x00>"), 2, ""),
]


def _assert_fixed_batch(store: Store) -> None:
    narrow = _assert_same_decisions(store, "", FIXED_BATCH)
    jorg, kate, ana, alt, by_ref, own = FIXED_BATCH
    assert match(jorg, narrow) == 2 and match(kate, narrow) == 3
    # Two open threads to ana (one written "Ana@Acme.Example"): both held, none guessed.
    choice = choose_for_reply(ana.sender, ana.received, ana.subject, "", narrow)
    assert choice is not None and choice.hold == (1, 4)
    assert match(alt, narrow) == 5
    assert by_reference(by_ref, narrow) == 6  # a failed thread's ID is still ours
    assert not _may_concern(own, narrow)  # our own message, come back
    # Only what the batch can match: not the 20 threads to others, nor another account's.
    assert {t.id for t in narrow.threads} == {1, 2, 3, 4, 5}


def test_capitals_past_ascii_are_matched_though_sql_lowers_ascii_only(tmp_path: Path) -> None:
    """Verify, on a store file, a reply from jörg@example.com matches the thread sent to
    "JÖRG@Example.com", and one from kate@x.test the thread to "\u212aate@x.test" (Kelvin
    sign), through the batch's index; and that SQLite's lower() does leave both as they are
    (so without the rare-row branch of the batch's SQL, both replies would be missed and
    followed up)."""
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        _fill(store, _fixed_specs())
        _assert_fixed_batch(store)
        _assert_same_decisions(store, "", NUL_BATCH)
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "state.db") as db:
        lowered = db.execute("SELECT lower(recipient) FROM threads WHERE id IN (2, 3) ORDER BY id")
        assert [r[0] for r in lowered] == ["jÖrg@example.com", "\u212aate@x.test"]


def test_a_batch_index_on_postgresql_decides_as_the_whole_one(
    postgres: Postgres, pg_database: str
) -> None:
    """Verify the batch's SQL on a real PostgreSQL (its own dialect branch: lower() and the
    character range in the "C" collation) gives the same decisions as the whole index, for
    capitals past ASCII, a Kelvin sign, alternate domains, a failed thread's Message-ID and
    another account's thread."""
    store = Store(
        postgres.url(pg_database, password=False), connect={"password": postgres.password}
    )
    try:
        _fill(store, _fixed_specs())
        _assert_fixed_batch(store)
        # NULs from untrusted headers: the same decisions, not a refused statement.
        narrow = _assert_same_decisions(store, "", NUL_BATCH)
        assert match(NUL_BATCH[0], narrow) == 5 and match(NUL_BATCH[1], narrow) == 6
    finally:
        store.close()


def test_a_batch_naming_more_ids_than_the_limit_is_matched_against_the_whole_index(
    tmp_path: Path,
) -> None:
    """Verify a folder's new messages naming more Message-IDs than ID_LIMIT (hostile
    headers can name tens of thousands, each a lookup) are matched against the whole index,
    read once, and one naming fewer against the batch's."""
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        ours = _fill(store, _fixed_specs())
        asked: list[str] = []
        for name in ("thread_index", "batch_index"):
            real = getattr(store, name)
            setattr(store, name, lambda *a, _r=real, _n=name: asked.append(_n) or _r(*a))
        many = tuple(f"<s{n}@else.example>" for n in range(ID_LIMIT))
        indexes = Indexes(store, "")
        index = indexes.for_batch(
            [_incoming("nobody@else.example", "<x@y>", (*many, ours[0]), 2, "")]
        )
        assert asked == ["thread_index"] and index.our_ids[ours[0]] == 1
        indexes = Indexes(store, "")
        indexes.for_batch([_incoming("nobody@else.example", None, many, 2, "")])
        assert asked == ["thread_index", "batch_index"]
    finally:
        store.close()


def test_a_batch_index_reads_our_ids_in_chunks_and_finds_each(tmp_path: Path) -> None:
    """Verify a batch naming more Message-IDs than one IN list holds (references of many
    messages) still finds every one of ours among them, and the threads they lead to."""
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        specs = [
            Spec(f"p{n}@b.test", [], [], ThreadState.AWAITING, "", T0, "Acme") for n in range(40)
        ]
        ours = _fill(store, specs)
        strangers = tuple(f"<s{n}@else.example>" for n in range(700))
        batch = [
            _incoming("nobody@else.example", None, (*strangers, ours[n]), 1, "") for n in (0, 39)
        ]
        narrow = _assert_same_decisions(store, "", batch)
        assert narrow.our_ids == {ours[0]: 1, ours[39]: 40}
        assert [t.id for t in narrow.threads] == [1, 40]
    finally:
        store.close()


def test_alternates_stored_by_hand_are_read_as_the_whole_index_reads_them() -> None:
    """Verify a thread whose alternates were stored other than create_thread writes them
    (capitals, odd spacing, damaged JSON) is read into the batch's index as the whole index
    reads it, so both decide alike (such a row is always read: its alternates are not [])."""
    store = Store.in_memory()
    try:
        raw = json.dumps(["Alt@Elsewhere.Example", "alt@elsewhere.example"])
        spec = Spec("x@y.test", [], [], ThreadState.AWAITING, "", T0, "Acme", raw_alts=raw)
        _fill(store, [spec])
        batch = [_incoming("alt@elsewhere.example", None, (), 1, "")]
        narrow = _assert_same_decisions(store, "", batch)
        assert match(batch[0], narrow) == 1
    finally:
        store.close()


NUL_REPLY = (
    b"From: Ana Ruiz <ana@acme.example>\r\n"
    b"Subject: Re: sorry\x00 about Tuesday\r\n"
    b"Message-ID: <r1\x00@acme.example>\r\n"
    b"In-Reply-To: <t1@ours.test>\r\n"
    b"References: <a\x00b@ours.test> <t1@ours.test>\r\n"
    b"\r\n"
)


def test_header_values_with_a_nul_are_read_without_it() -> None:
    """Verify a NUL in a new message's headers (a server passing raw bytes) reaches none of
    the values the watcher keeps, matches and records: it reads as U+FFFD, so an ID or an
    address with one stays unlike any of ours, and the reference to our ID still counts."""
    from email.parser import BytesHeaderParser
    from email.policy import compat32

    msg = BytesHeaderParser(policy=compat32).parsebytes(NUL_REPLY)
    incoming = Incoming.from_headers(msg, T0)
    kept = (incoming.message_id, *incoming.refs, incoming.sender, incoming.subject)
    assert not any("\x00" in str(v) for v in kept)
    assert incoming.message_id == "<r1\ufffd@acme.example>"
    assert incoming.refs[-1] == "<t1@ours.test>" and "<a\ufffdb@ours.test>" in incoming.refs
    assert incoming.subject == "Re: sorry\ufffd about Tuesday"


def test_a_reply_with_a_nul_in_its_headers_is_recorded_on_postgresql(
    postgres: Postgres, pg_database: str
) -> None:
    """Verify, on PostgreSQL (which refuses a NUL in text), that a reply whose raw headers
    hold NULs is matched through the batch's index and recorded, its thread replied: a
    refused statement would fail every pass after, and no reply of that account would be
    recorded again."""
    from email.parser import BytesHeaderParser
    from email.policy import compat32

    from mailer.model.decision import Decision

    store = Store(
        postgres.url(pg_database, password=False), connect={"password": postgres.password}
    )
    try:
        _fill(store, _fixed_specs())
        msg = BytesHeaderParser(policy=compat32).parsebytes(NUL_REPLY)
        incoming = Incoming.from_headers(msg, T0 + timedelta(hours=2))
        index = Indexes(store, "").for_batch([incoming])
        assert match(incoming, index) == 1
        store.apply_incoming(
            thread_id=1,
            folder="INBOX",
            uidvalidity=7,
            uid=1,
            message_id=incoming.message_id,
            sender=incoming.sender,
            subject=incoming.subject,
            verdict="human: a reply \x00 quoted",
            now=T0 + timedelta(hours=2),
            decision=Decision(state=ThreadState.REPLIED, event="replied", detail={}),
            expected_state=ThreadState.AWAITING,
        )
        assert store.thread(1).state == ThreadState.REPLIED
        assert store.seen_incoming("INBOX", 7, 1)
    finally:
        store.close()
