"""What the ``status`` table reads on SQLite, and the two partial indexes and the table that
let it read only that (store revision 0009, #14: ``status`` costs one query, not a check of
every row).

The table shows every thread, but of the messages only those its words depend on (the
unsettled ones, and a followed-up thread's follow-ups), and it names every damaged row as
the full listing does (but for a thread inserted by hand: see SUSPECT_FACTS). Judging each row for damage on every ``status`` was two thirds of
its SQL at 10k threads. Here SQLite judges most of a row once, when it is written, in the
WHERE clause of a partial index: an index holds the rows that need a closer look, and a
listing reads only those. Any write, ours or a hand edit with the sqlite3 tool, goes
through the index, so what it holds is always up to date.

"Suspect" is a superset of what Python refuses: a suspect row is read in full and decoded
as every other command decodes it, which decides, and names the damage in the same words.
Only the shapes mailer writes are taken without a closer look. SQLite's own date reader is
more lenient than Python's (a NUL ends its reading, a lower-case ``z`` is a zone), so it is
asked only about values already in one of those shapes.

What an index may use: deterministic SQL, as SQLite requires (no ``now`` ever reaches
``julianday``: it only sees a date already in shape; no LIKE, whose meaning a PRAGMA
changes), and only functions SQLite trusts in a schema: with ``PRAGMA trusted_schema=OFF``
(a hardened sqlite3 tool, or a library built that way) a schema that uses one it does not
trust, such as ``json_valid``, cannot be read at all. So the lists of addresses are judged
by their shape, and the facts, free JSON of any shape, through a table of the threads whose
facts were written by someone else (see SUSPECT_FACTS). A later revision that drops or
renames a column these name must drop the index first.
"""

from __future__ import annotations

from typing import Any

from mailer.model.lifecycle import MessageState as M
from mailer.model.lifecycle import ThreadState

_D = "[0-9]"
_DATE_TIME = f"{_D * 4}-{_D * 2}-{_D * 2}T{_D * 2}:[0-5]{_D}:[0-5]{_D}"
_OFFSET = f"[+-]{_D * 2}:[0-5]{_D}"
# The shapes mailer writes (isoformat: seconds or microseconds; an offset, or none in rows
# from before times were aware), by length.
_SHAPES = {
    19: _DATE_TIME,
    25: _DATE_TIME + _OFFSET,
    26: f"{_DATE_TIME}.{_D * 6}",
    32: f"{_DATE_TIME}.{_D * 6}{_OFFSET}",
}


def _date_suspect(c: str) -> str:
    """SQL, 1 or 0: the date in column ``c`` needs Python's judgement. Text in shape (with
    no NUL: SQLite's length and GLOB stop there), a year, month, hour and offset Python
    takes, and a day the month has (SQLite reads 2026-02-30 as 2 March, so a day past the
    28th must come back from julianday as it went in)."""
    # (One length and one GLOB a value: each costs a call, on every write of the row.)
    shape = " ".join(f"WHEN {n} THEN {c} GLOB '{g}'" for n, g in _SHAPES.items())
    return (
        f"CASE WHEN {c} IS NULL THEN 0 WHEN typeof({c}) != 'text' THEN 1"
        f" WHEN NOT (CASE length({c}) {shape} ELSE 0 END) OR instr({c}, char(0)) THEN 1"
        f" WHEN substr({c}, 1, 4) = '0000' OR substr({c}, 6, 2) NOT BETWEEN '01' AND '12'"
        f" OR substr({c}, 12, 2) >= '24'"
        f" OR (length({c}) IN (25, 32) AND substr({c}, length({c}) - 4, 2) >= '24') THEN 1"
        f" WHEN substr({c}, 9, 2) BETWEEN '01' AND '28' THEN 0"
        f" WHEN date(julianday(substr({c}, 1, 10))) IS substr({c}, 1, 10) THEN 0 ELSE 1 END"
    )


def _list_suspect(c: str) -> str:
    """SQL, 1 or 0: the list of strings in column ``c`` (addresses, domains) needs Python's
    judgement. Sound without it: ``[]``, or the shape json.dumps writes, ``["a", "b"]``,
    whose strings hold no quote, backslash or control character (so no escape either): that
    is a JSON list of strings whatever else they hold."""
    inner = f"substr({c}, 3, length({c}) - 4)"
    return (
        f"CASE WHEN {c} = '[]' THEN 0 WHEN typeof({c}) != 'text' THEN 1"
        f" WHEN length({c}) < 4 OR substr({c}, 1, 2) != '[\"' OR substr({c}, -2) != '\"]'"
        f" OR instr({c}, char(0)) OR instr({c}, '\\') THEN 1"
        f" WHEN instr(replace({inner}, '\", \"', ''), '\"') THEN 1"
        f" WHEN {c} GLOB '*[' || char(1) || '-' || char(31) || ']*' THEN 1 ELSE 0 END"
    )


def _json_suspect(c: str, opener: str) -> str:
    """SQL, 1 or 0, for a query (``json_valid`` cannot be in an index, see above): column
    ``c`` needs Python's judgement as JSON of the kind ``opener`` begins (an object or a
    list). A NUL (where SQLite stops reading), 900 or more brackets (deeper than Python
    reads; SQLite takes 2,000), or 4,000 characters or more (a number of more digits than
    Python reads may hide there) makes it a suspect."""
    return (
        f"CASE WHEN typeof({c}) != 'text' THEN 1"
        f" WHEN substr({c}, 1, 1) = '{opener}' AND json_valid({c})"
        f" AND instr({c}, char(0)) = 0 THEN CASE WHEN length({c}) < 900 THEN 0"
        f" WHEN length({c}) >= 4000 THEN 1"
        f" ELSE length({c}) - length(replace(replace({c}, '[', ''), '{{', '')) >= 900"
        " END ELSE 1 END"
    )


def _any(*terms: str) -> str:
    return "(" + " OR ".join(f"({t})" for t in terms) + ")"


# A thread whose own row needs a closer look, as far as an index can judge it. (Its detail
# is decoded for every listing anyway, by Python; its facts: see SUSPECT_FACTS.)
SUSPECT_THREAD = _any(
    _list_suspect("alt_addresses"),
    _list_suspect("alt_domains"),
    *(_date_suspect(c) for c in ("created_at", "interview_at", "follow_up_due", "sent_at")),
)
# A thread's facts are free JSON: no index can judge them without json_valid (see above),
# and json_valid on every row was half a listing's SQL. So a trigger notes every thread
# whose facts are changed, which mailer never does (it writes them once, json.dumps of a
# dict, in create_thread): each listing reads those in full. A thread inserted by hand is
# not noted (a trigger on every insert cost every campaign message a page write): other
# commands name its damage.
SUSPECT_FACTS = _json_suspect("facts", "{")
SUSPECT_MESSAGE = _any(
    _list_suspect("recipients"),
    *(
        _date_suspect(c)
        for c in ("created_at", "submitting_at", "sent_at", "failed_at", "final_dot_at")
    ),
)

# What revision 0009 adds, as a new store's SQL makes it too, in order. The indexes are on
# the id, so that a listing reads them in its own order. A sound row is in none of them, so
# writing it changes no page of theirs: only their WHERE clause is evaluated (a few µs).
_NOTE = "INSERT OR IGNORE INTO unchecked_facts (thread_id) VALUES (new.id)"
OBJECTS: dict[str, str] = {
    "unchecked_facts": "CREATE TABLE unchecked_facts (thread_id INTEGER NOT NULL PRIMARY KEY)",
    "threads_facts_updated": (
        # (Of the id too: a thread renumbered by hand keeps no note under its new id.)
        "CREATE TRIGGER threads_facts_updated AFTER UPDATE OF facts, id ON threads "
        f"BEGIN {_NOTE}; END"
    ),
    "threads_suspect": f"CREATE INDEX threads_suspect ON threads (id) WHERE {SUSPECT_THREAD}",
    "messages_suspect": (f"CREATE INDEX messages_suspect ON messages (id) WHERE {SUSPECT_MESSAGE}"),
}
# Taking them away again (a downgrade), in the reverse order.
DROPS = tuple(
    f"DROP {statement.split()[1]} IF EXISTS {name}" for name, statement in reversed(OBJECTS.items())
)

# The listing's reads. INDEXED BY: a store without the index (one dropped or changed by
# hand) fails the query, and the caller reads everything instead; it never scans every row
# here unnoticed.
THREADS = (
    "SELECT id, recipient, company, situation, sent_at, state, follow_up_due, detail"
    " FROM threads ORDER BY id"
)
UNCHECKED = "SELECT thread_id FROM unchecked_facts"
SUSPECT_THREADS = f"SELECT id FROM threads INDEXED BY threads_suspect WHERE {SUSPECT_THREAD}"
# The messages whose fate is open (a thread's words name the last one: threadview.unsettled),
# through the index every state change keeps anyway (messages_state); and the suspects.
_BRIEF = "thread_id, id, kind, state, sent_at, owner, final_dot_at"
UNSETTLED = (
    f"SELECT {_BRIEF} FROM messages WHERE state IN "
    f"({', '.join(repr(str(s)) for s in (M.QUEUED, M.SUBMITTING, M.IN_DOUBT))})"
)
SUSPECT_MESSAGES = (
    f"SELECT thread_id, id FROM messages INDEXED BY messages_suspect WHERE {SUSPECT_MESSAGE}"
    " ORDER BY id"
)
# The other messages a thread's words depend on: a followed-up thread names when its last
# follow-up went. Through the thread's state, so the closed threads' follow-ups (most of a
# long history's) are never read.
FOLLOW_UPS = (
    f"SELECT {', '.join(f'm.{c}' for c in _BRIEF.split(', '))}"
    " FROM threads t JOIN messages m ON m.thread_id = t.id"
    f" WHERE t.state = '{ThreadState.FOLLOWED_UP}' AND m.kind = 'follow_up'"
)


def create_objects(connection: Any) -> None:
    """Make what revision 0009 adds on a SQLite ``connection`` (SQLAlchemy's, or ours in
    directsql), in its transaction, unless it is there. The threads already in the store are
    noted as unchecked where SQLite doubts their facts (all of them, if it has no JSON
    functions): from now on the trigger notes those changed."""
    have = {name for (name,) in connection.exec_driver_sql("SELECT name FROM sqlite_master")}
    for name, statement in OBJECTS.items():
        if name not in have:
            connection.exec_driver_sql(statement)
    if "unchecked_facts" not in have:
        judge_facts(connection)


def judge_facts(connection: Any) -> None:
    """Note as unchecked the threads whose facts SQLite doubts, and only those (all of them,
    if it has no JSON functions): for threads written by something other than mailer's own
    create_thread, all at once (the upgrade to 0009, a store copied in, whose facts came
    from elsewhere)."""
    connection.exec_driver_sql("DELETE FROM unchecked_facts")
    try:
        connection.exec_driver_sql(
            f"INSERT INTO unchecked_facts (thread_id) SELECT id FROM threads WHERE {SUSPECT_FACTS}"
        )
    except Exception:  # no JSON functions, in whichever connection's words
        connection.exec_driver_sql("INSERT INTO unchecked_facts (thread_id) SELECT id FROM threads")
