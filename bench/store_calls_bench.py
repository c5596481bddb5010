"""Benchmark (issue #14): the state store's share of sending one campaign message.

A campaign message makes three store calls: the claim recorded before MAIL FROM
(``create_thread(submitting=True)``, not synced), the synced mark before the final dot
(``mark_final_dot``) and the 250's record (``mark_sent``, not synced). This times them
through the real :class:`~mailer.adapters.store.Store` on a SQLite file, against a baseline in
the same run: the same statements (the same SQL, the same transactions, the same synced
and unsynced connections) through the standard library's ``sqlite3`` alone, which is the
floor for doing this work in Python.

Usage: .venv/bin/python bench/store_calls_bench.py [--messages 300] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mailer.adapters.store import Store

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
RAW = b"x" * 1100  # a campaign message's size
FACTS = {
    "to": "ana@sandbox.test",
    "interviewer": "Ana Ruiz",
    "company": "Acme",
    "role": "Data Engineer",
    "situation": "illness",
    "interview": "2026-11-24T10:00Z",
}


def through_store(db: Path, n: int) -> float:
    store = Store(f"sqlite:///{db}")
    try:
        t0 = time.perf_counter()
        for i in range(n):
            _, mid = store.create_thread(
                now=NOW,
                facts={**FACTS, "company": f"Acme {i}"},
                key=f"k{i}",
                subject="Sorry I missed our interview",
                message_id=f"<m{i}@sandbox.test>",
                raw=RAW,
                envelope_from="you@sandbox.test",
                recipients=("ana@sandbox.test",),
                follow_up_wait="3 business days",
                max_follow_ups=1,
                guard_duplicates=True,
                campaign="bench",
                entry_key=f"e{i}",
                durable=False,
                submitting=True,
            )
            store.mark_final_dot(mid, NOW)
            store.mark_sent(mid, NOW, "250 2.0.0 Ok", NOW + timedelta(days=3), durable=False)
        return time.perf_counter() - t0
    finally:
        store.close()


def _connection(db: Path, synchronous: str) -> sqlite3.Connection:
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute(f"PRAGMA synchronous={synchronous}")
    c.execute("PRAGMA foreign_keys=ON")
    return c


def through_sqlite3(db: Path, n: int) -> float:
    """The same rows written by the same kind of statements, with no mailer code between."""
    Store(f"sqlite:///{db}").close()  # the schema
    synced, fast = _connection(db, "FULL"), _connection(db, "NORMAL")
    now = NOW.isoformat()
    try:
        t0 = time.perf_counter()
        for i in range(n):
            fast.execute("BEGIN IMMEDIATE")
            fast.execute(
                "SELECT t.id FROM threads t JOIN messages m ON m.thread_id = t.id "
                "WHERE t.dedupe_key = ? OR (t.campaign = ? AND t.entry_key = ?)",
                (f"k{i}", "bench", f"e{i}"),
            ).fetchall()
            tid = fast.execute(
                "INSERT INTO threads (created_at, recipient, recipient_name, company, role, "
                "situation, interview_at, dedupe_key, facts, subject, root_message_id, state, "
                "follow_up_wait, max_follow_ups, campaign, entry_key) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'sending', ?, 1, 'bench', ?) RETURNING id",
                (
                    now,
                    FACTS["to"],
                    "Ana Ruiz",
                    f"Acme {i}",
                    "Data Engineer",
                    "illness",
                    FACTS["interview"],
                    f"k{i}",
                    json.dumps(FACTS),
                    "Sorry",
                    f"<m{i}@s>",
                    "3 business days",
                    f"e{i}",
                ),
            ).fetchone()[0]
            mid = fast.execute(
                "INSERT INTO messages (thread_id, kind, message_id, state, raw, envelope_from, "
                "recipients, created_at, owner, submitting_at) VALUES "
                "(?, 'apology', ?, 'submitting', ?, ?, ?, ?, 'me', ?) RETURNING id",
                (tid, f"<m{i}@s>", RAW, "you@sandbox.test", '["ana@sandbox.test"]', now, now),
            ).fetchone()[0]
            fast.execute(
                "INSERT INTO events (thread_id, at, kind, detail) VALUES (?, ?, ?, ?)",
                (tid, now, "submitting", "apology submitting"),
            )
            fast.execute("COMMIT")
            synced.execute("BEGIN IMMEDIATE")
            synced.execute(
                "UPDATE messages SET final_dot_at = ? WHERE id = ? AND state = 'submitting'",
                (now, mid),
            )
            synced.execute("COMMIT")
            fast.execute("BEGIN IMMEDIATE")
            fast.execute(
                "UPDATE messages SET state = 'sent', sent_at = ?, owner = 'me' WHERE id = ? "
                "RETURNING thread_id, kind, message_id",
                (now, mid),
            ).fetchone()
            fast.execute(
                "UPDATE threads SET state = 'awaiting_reply', follow_up_due = ?, sent_at = ? "
                "WHERE id = ? AND state IN ('sending', 'failed')",
                (now, now, tid),
            )
            fast.execute(
                "UPDATE threads SET sent_at = ? WHERE id = ? AND sent_at IS NULL", (now, tid)
            )
            fast.execute(
                "INSERT INTO events (thread_id, at, kind, detail) VALUES (?, ?, ?, ?)",
                (tid, now, "sent", "apology accepted"),
            )
            fast.execute("COMMIT")
        return time.perf_counter() - t0
    finally:
        synced.close()
        fast.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    times: dict[str, list[float]] = {"mailer Store": [], "sqlite3 alone": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            # Taking turns, each on a new file.
            times["mailer Store"].append(through_store(Path(tmp) / f"s{r}.db", args.messages))
            times["sqlite3 alone"].append(through_sqlite3(Path(tmp) / f"r{r}.db", args.messages))
    floor = statistics.median(times["sqlite3 alone"]) / args.messages
    print(
        f"| three store calls per message, {args.messages} messages, median of "
        f"{args.repeats} | ms/message | ratio |\n|---|---:|---:|"
    )
    for name, runs in times.items():
        per = statistics.median(runs) / args.messages
        print(f"| {name} | {per * 1000:.3f} | {per / floor:.2f}x |")


if __name__ == "__main__":
    main()
