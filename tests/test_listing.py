"""The status table's partial indexes (store revision 0009, issue #14): a row SQLite takes as
sound without a closer look is one Python reads too, whatever was written into it; the table
reads the indexes, not every row; and without them it still lists and names the same."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailer.adapters import listing
from mailer.adapters.store import ALEMBIC_HEAD, Store
from mailer.services import threadview as view

from .test_status_reads import DAMAGE, _mixed_store, _sent
from .test_store_migrations import downgrade

_DB = sqlite3.connect(":memory:")


def _suspect(sql: str, value: object) -> bool:
    (flag,) = _DB.execute(f"SELECT {sql} FROM (SELECT ? AS v)", (value,)).fetchone()
    return bool(flag)


def _python_reads_date(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


# Dates as mailer writes them, then edited a character or three: what a hand edit, or a
# disk that lies, leaves behind.
_WRITTEN = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
).map(lambda d: d.isoformat())
_EDITS = st.lists(
    st.tuples(st.integers(0, 40), st.sampled_from("0123456789-:+.TZz x\x00\n"), st.booleans()),
    max_size=3,
)


def _edited(value: str, edits: list[tuple[int, str, bool]]) -> str:
    for at, char, insert in edits:
        at = min(at, len(value))
        value = value[:at] + char + value[at + (0 if insert else 1) :]
    return value


@settings(max_examples=2000, deadline=None)
@given(value=_WRITTEN, edits=_EDITS)
@example(value="0000-01-01T00:00:00+00:00", edits=[])  # SQLite's year 0; Python has none
@example(value="2026-11-23T10:00:00.123456z", edits=[])
@example(value="2026-11-23T10:00:00\x00123456+00:00", edits=[])  # SQLite stops at the NUL
@example(value="2026-02-29T10:00:00+00:00", edits=[])
@example(value="2026-11-23T10:00:00+24:00", edits=[])
def test_a_date_the_index_takes_as_sound_is_one_python_reads(
    value: str, edits: list[tuple[int, str, bool]]
) -> None:
    """Verify every date SQLite's check passes without Python's judgement is a date Python
    reads: the check may doubt too much (Python then decides), never too little."""
    value = _edited(value, edits)
    if not _suspect(listing._date_suspect("v"), value):
        assert _python_reads_date(value), repr(value)


def test_the_dates_mailer_writes_need_no_closer_look() -> None:
    """Verify the index holds no row for the usual dates, in any zone mailer writes: else
    every listing would read every row in full again."""
    when = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    for zone in ("UTC", "Europe/Berlin", "Asia/Kolkata", "America/St_Johns"):
        local = when.astimezone(ZoneInfo(zone))
        for value in (local.isoformat(), local.replace(microsecond=5).isoformat()):
            assert not _suspect(listing._date_suspect("v"), value), value
    assert not _suspect(listing._date_suspect("v"), None)


@settings(max_examples=1000, deadline=None)
@given(
    value=st.one_of(
        st.lists(st.emails(), max_size=3).map(json.dumps),
        st.lists(st.text(max_size=8), max_size=3).map(lambda v: json.dumps(v, ensure_ascii=False)),
        st.text(alphabet='[]{}",: \\\x00\x01ab1', max_size=30),
    )
)
@example(value='["a@x.test"]\x00')
@example(value='["a", "b"]')
@example(value='["a\x01"]')
@example(value='["a", ", "b"]')
@example(value="[" + "1" * 5000 + "]")
def test_a_list_the_index_takes_as_sound_is_one_python_reads(value: str) -> None:
    """Verify a list of addresses the index passes without Python's judgement is a list of
    strings to Python: judged by its shape, with no JSON function (see listing)."""
    if not _suspect(listing._list_suspect("v"), value):
        loaded = json.loads(value)
        assert isinstance(loaded, list) and all(isinstance(x, str) for x in loaded), repr(value)


def test_the_lists_mailer_writes_need_no_closer_look() -> None:
    for value in ([], ["hr@acme.test"], ["hr@acme.test", "cc@acme.test"]):
        assert not _suspect(listing._list_suspect("v"), json.dumps(value)), value


@settings(max_examples=1000, deadline=None)
@given(
    value=st.one_of(
        st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5)).map(json.dumps),
        st.text(alphabet='[]{}",: \\\x00ab1', max_size=30),
    )
)
@example(value='{"a": 1}\x00')
@example(value='{"a": ' + "[" * 950 + "]" * 950 + "}")
@example(value='{"a": ' + "1" * 5000 + "}")  # more digits than Python reads
def test_facts_the_listing_takes_as_sound_are_an_object_python_reads(value: str) -> None:
    """Verify a thread's facts the listing's query passes are a JSON object to Python."""
    if not _suspect(listing._json_suspect("v", "{"), value):
        assert isinstance(json.loads(value), dict), repr(value)


def test_a_store_reads_and_takes_writes_with_an_untrusted_schema(tmp_path: Path) -> None:
    """Verify the indexes use only functions SQLite trusts in a schema: with
    trusted_schema=OFF (a hardened sqlite3 tool) a schema using json_valid could not be read
    at all, not even its meta table (a review)."""
    path = tmp_path / "state.db"
    store = _mixed_store(path)
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA trusted_schema=OFF")
        assert db.execute("SELECT count(*) FROM meta").fetchone()[0] >= 2
        db.execute("UPDATE messages SET sent_at = '2026-02-30T10:00:00+00:00' WHERE id = 1")
        db.execute("UPDATE threads SET alt_domains = '[1]' WHERE id = 2")
        assert [r[0] for r in db.execute(listing.SUSPECT_THREADS)] == [2]
        assert [r[1] for r in db.execute(listing.SUSPECT_MESSAGES)] == [1]


def _plans(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [
            " ".join(row[-1] for row in db.execute(f"EXPLAIN QUERY PLAN {question}"))
            for question in (listing.SUSPECT_THREADS, listing.SUSPECT_MESSAGES, listing.UNSETTLED)
        ]


def test_revision_0009_makes_the_indexes_and_the_listing_reads_them(tmp_path: Path) -> None:
    """Verify a store at 0008 gets both indexes and the facts table, its threads noted there
    only where SQLite doubts their facts; the listing's questions read the indexes, not every
    row; and a downgrade takes it all away again."""
    path = tmp_path / "state.db"
    store = Store(f"sqlite:///{path}")
    for i in (1, 2):
        _sent(store, i)
    store.close()
    with sqlite3.connect(path) as db:
        for statement in listing.DROPS:
            db.execute(statement)
        db.execute("UPDATE threads SET facts = '{not json' WHERE id = 2")
        db.execute("UPDATE alembic_version SET version_num = '0008_incoming_indexes'")
    s = Store(f"sqlite:///{path}")
    try:
        assert s.migrated == [f"Alembic revision {ALEMBIC_HEAD}"]
    finally:
        s.close()
    with sqlite3.connect(path) as db:
        assert db.execute(listing.UNCHECKED).fetchall() == [(2,)]
    assert _plans(path) == [
        "SCAN threads USING INDEX threads_suspect",
        "SCAN messages USING INDEX messages_suspect",
        "SEARCH messages USING INDEX messages_state (state=?)",
    ]
    downgrade(path, "0009_listing_indexes")
    with sqlite3.connect(path) as db:
        names = {n for (n,) in db.execute("SELECT name FROM sqlite_master")}
    assert names.isdisjoint(listing.OBJECTS)


def _store_of_18(tmp_path: Path) -> Path:
    """The mixed store of test_status_reads and eleven more sent threads (8-18), closed."""
    path = tmp_path / "state.db"
    store = _mixed_store(path)
    for i in range(8, 19):
        _sent(store, i)
    store.close()
    return path


def test_the_indexes_hold_the_damaged_rows_a_hand_edit_makes_and_only_those(
    tmp_path: Path,
) -> None:
    """Verify a damaged row written with the sqlite3 tool, behind mailer's back, is in the
    index the listing reads (or, for its facts, in the table of unchecked facts), and a row
    mailer wrote is not."""
    path = _store_of_18(tmp_path)
    with sqlite3.connect(path) as db:
        before = {i for (i,) in db.execute(listing.SUSPECT_THREADS)}
        db.execute("UPDATE threads SET alt_addresses = '[not json' WHERE id = 9")
        db.execute("UPDATE threads SET facts = '{not json' WHERE id = 11")  # (the table's)
        db.execute("UPDATE threads SET facts = facts WHERE id = 12")  # (any edit is noted)
        db.execute("UPDATE messages SET sent_at = '2026-02-30T10:00:00+00:00' WHERE thread_id = 10")
        after = {i for (i,) in db.execute(listing.SUSPECT_THREADS)}
        suspects = {row[0] for row in db.execute(listing.SUSPECT_MESSAGES)}
        facts = {tid for (tid,) in db.execute(listing.UNCHECKED)}
    assert before == set() and after == {9} and facts == {11, 12}
    assert suspects == {10}


@pytest.mark.parametrize("changed", [False, True])
def test_without_the_indexes_the_table_lists_and_names_the_same(
    tmp_path: Path, changed: bool
) -> None:
    """Verify a store whose indexes are gone (dropped or changed by hand, or never made by a
    SQLite without JSON functions) still lists every thread and names every damaged row, by
    reading them all."""
    path = _store_of_18(tmp_path)
    with sqlite3.connect(path) as db:
        for statement in DAMAGE:
            db.execute(statement)
    tz = ZoneInfo("Europe/Berlin")
    indexed = Store(f"sqlite:///{path}")
    with_indexes = indexed.thread_summaries()
    named = list(indexed.damaged)
    indexed.close()
    with sqlite3.connect(path) as db:
        if changed:  # the name kept, another meaning: the listing's question cannot use it
            db.execute("DROP INDEX messages_suspect")
            db.execute("CREATE INDEX messages_suspect ON messages (id) WHERE kind = 'apology'")
        else:
            for statement in listing.DROPS:
                db.execute(statement)
    bare = Store(f"sqlite:///{path}")
    try:
        without = bare.thread_summaries()
        assert bare.damaged == named and len(named) > 10
        assert [(s.id, view.describe(s, b, tz) if b is not None else None) for s, b in without] == [
            (s.id, view.describe(s, b, tz) if b is not None else None) for s, b in with_indexes
        ]
    finally:
        bare.close()


def test_a_store_copied_into_sqlite_notes_only_the_doubtful_facts(tmp_path: Path) -> None:
    """Verify a copy into a new SQLite store leaves noted as unchecked only the threads
    whose facts SQLite doubts: every copied row was noted by the trigger, and each listing
    would read them all in full."""
    from mailer.adapters import storecopy

    source = _mixed_store(tmp_path / "from.db")
    source.close()
    with sqlite3.connect(tmp_path / "from.db") as db:
        db.execute("UPDATE threads SET facts = '[]' WHERE id = 3")
    source = Store(f"sqlite:///{tmp_path / 'from.db'}")
    try:
        storecopy.copy(source, f"sqlite:///{tmp_path / 'to.db'}")
    finally:
        source.close()
    with sqlite3.connect(tmp_path / "to.db") as db:
        assert db.execute(listing.UNCHECKED).fetchall() == [(3,)]
        assert db.execute("SELECT count(*) FROM threads").fetchone()[0] == 7


def test_a_store_without_the_facts_table_still_sends_and_lists(tmp_path: Path) -> None:
    """Verify mailer's own write of a thread does not need revision 0009's table (dropped by
    hand, or a store from a development version of the revision): sending must never stop
    for a listing's help; the listing then reads every thread (a review)."""
    path = tmp_path / "state.db"
    Store(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as db:
        for statement in listing.DROPS:
            db.execute(statement)
    store = Store(f"sqlite:///{path}")
    try:
        for i in (1, 2):
            _sent(store, i)
        assert [s.id for s, _ in store.thread_summaries()] == [1, 2]
    finally:
        store.close()


def test_a_thread_renumbered_by_hand_is_noted_under_its_new_id(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = _mixed_store(path)
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE threads SET facts = '{bad' WHERE id = 2")
        db.execute("UPDATE messages SET thread_id = 99 WHERE thread_id = 2")
        db.execute("UPDATE threads SET id = 99 WHERE id = 2")
        assert {tid for (tid,) in db.execute(listing.UNCHECKED)} == {2, 99}
