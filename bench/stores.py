"""State stores of many threads, built through the store API (``Store.create_thread``,
``Store.mark_sent``, ``Store.set_thread_state``): the rows a real `mailer send` would leave,
without composing or sending each apology (the raw message is a small fixed-shape message).

Built once and cached under the bench cache dir (``~/.cache/mailer-bench`` or
``$MAILER_BENCH_CACHE``); each benchmark copies the cached file into its workspace.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mailer.adapters.store import Store
from mailer.model.keys import dedupe_key
from mailer.model.lifecycle import ThreadEvent

# The clock the stores were built at; commands run against them with MAILER_NOW = NOW.
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
SCHEMA_TAG = "v5-0009g"  # schema 5 at revision 0009_listing_indexes (opened as is), with follow-ups


def cache_dir() -> Path:
    d = Path(os.environ.get("MAILER_BENCH_CACHE", Path.home() / ".cache" / "mailer-bench"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _raw(i: int, to: str, sender: str, mid: str) -> bytes:
    return (
        f"From: Sam Sandbox <{sender}>\r\nTo: {to}\r\nSubject: Missed interview {i:05d}\r\n"
        f"Message-ID: {mid}\r\nDate: Tue, 24 Nov 2026 15:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + "I am sorry I missed our interview. " * 20
        + "\r\n"
    ).encode()


def build(path: Path, n: int, open_count: int, sender: str) -> None:
    """``n`` threads, the first ``n - open_count`` closed (replied, or followed up and closed
    without an answer, alternately), the rest awaiting a reply with a follow-up due in 30
    days."""
    tmp = path.with_name(path.name + ".building")
    for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        p.unlink(missing_ok=True)
    store = Store(f"sqlite:///{tmp}")
    sent = NOW - timedelta(days=2)
    for i in range(n):
        to = f"hr{i}@company{i % 997}.test"
        company = f"Company {i:05d}"
        interview = (NOW - timedelta(days=3)).isoformat()
        mid = f"<bench-{i}@sandbox.test>"
        facts = {
            "to": to,
            "interviewer": f"Interviewer {i}",
            "company": company,
            "role": "Data Engineer",
            "situation": "illness",
            "interview": interview,
        }
        tid, mrow = store.create_thread(
            now=sent,
            facts=facts,
            key=dedupe_key(to, NOW - timedelta(days=3)),
            subject=f"Missed interview {i:05d}",
            message_id=mid,
            raw=_raw(i, to, sender, mid),
            envelope_from=sender,
            recipients=(to,),
            follow_up_wait="3d",
            max_follow_ups=1,
            guard_duplicates=False,
            durable=True,
            submitting=True,
        )
        closed = i < n - open_count
        answered = closed and i % 2 == 1
        followed = closed and not answered
        follow_up_at = sent + timedelta(days=3)
        store.mark_sent(
            mrow,
            sent,
            "250 2.0.0 Ok",
            follow_up_at if followed else NOW + timedelta(days=30),
            durable=False,
            sent_copy="saved in Sent",
        )
        if answered:
            replied = {
                "replied_by": to,
                "replied_at": (sent + timedelta(hours=5)).isoformat(),
                "reply_subject": f"Re: Missed interview {i:05d}",
            }
            store.set_thread_state(tid, ThreadEvent.MARKED_REPLIED, sent, "replied", replied)
        elif followed:
            # Followed up without an answer, and closed: the follow-up is a message of its
            # own, as a real store has (the status table shows when it went).
            fmid = f"<bench-f{i}@sandbox.test>"
            frow = store.claim_follow_up(
                tid,
                follow_up_at,
                message_id=fmid,
                raw=_raw(i, to, sender, fmid),
                envelope_from=sender,
                recipients=(to,),
            )
            assert frow is not None
            store.mark_submitting(frow, follow_up_at)
            store.mark_sent(frow, follow_up_at, "250 2.0.0 Ok", follow_up_at, durable=False)
            store.set_thread_state(
                tid,
                ThreadEvent.CLOSED_NO_ANSWER,
                follow_up_at,
                "closed_no_answer",
                {"why": "bench"},
            )
    store.close()
    shutil.move(tmp, path)
    for p in (Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        p.unlink(missing_ok=True)


def cached(n: int, open_count: int, sender: str) -> Path:
    path = cache_dir() / f"store-{SCHEMA_TAG}-{n}-open{open_count}.db"
    if not path.exists():
        build(path, n, open_count, sender)
    return path
