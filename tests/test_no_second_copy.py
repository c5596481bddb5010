"""The ways a second copy of an apology could go out, closed: concurrent resends, the same
interview written in another zone, a store that "forgets" (issue #10, items 1-3)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from mailer import store as store_mod
from mailer.errors import ClaimError
from mailer.store import IN_DOUBT, SENT, SUBMITTING, Store

from .conftest import Pair
from .test_followup import _apology_copies, _crashed_send, status

T0 = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def _live_foreign_owner() -> str:
    """The owner token of a process that is alive and is not this one (our parent)."""
    ppid = os.getppid()
    return f"{socket.gethostname()}:{store_mod._boot_id()}:{ppid}:{store_mod._start_time(ppid)}"


@pytest.mark.integration
def test_parallel_resends_of_one_in_doubt_apology_deliver_one_copy(pair: Pair) -> None:
    """Verify five `resolve --resend` runs at once, on a slow server, deliver exactly one copy
    and the others stop before MAIL FROM without claiming to have failed after DATA."""
    thread = _crashed_send(pair, "after-submitting")
    assert _apology_copies(pair) == 0
    (apology,) = [m for m in status(pair, thread)["messages"] if m["kind"] == "apology"]
    mark = pair.stack.log_mark()
    # A slow login (longer than a process's start-up on a busy machine), so all five pass
    # their first look at the row before any of them claims it.
    pair.stack.set_faults(ehlo_delay=[1.5] * 40)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("MAILER_") or k == "MAILER_CORPUS"
    }
    env["MAILER_NOW"] = (T0 + timedelta(seconds=5)).isoformat()
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "mailer.cli", "resolve", str(thread), "--resend"],
                cwd=pair.ws,
                env=env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
            )
            for _ in range(5)
        ]
        results = [(p.wait(timeout=60), *p.communicate()) for p in procs]
    finally:
        pair.stack.clear_faults()
    accepted = [
        e
        for e in pair.stack.log_since(mark)
        if e["event"] == "accepted" and e["message_id"] == apology["message_id"]
    ]
    assert len(accepted) == 1, accepted
    assert len(pair.stack.messages_with_id(pair.interviewer, apology["message_id"])) == 1
    assert [rc for rc, _, _ in results].count(0) == 1, results
    for rc, _out, err in results:
        assert "refusing to mark" not in err
        assert "Traceback" not in err
        if rc != 0:
            assert "not sent" in err or "no message in doubt" in err, err
    s = status(pair, thread)
    assert s["state"] == "awaiting_reply"


def test_a_row_a_live_process_is_sending_cannot_be_claimed(tmp_path) -> None:
    """Verify a submitting row held by another live process is refused to every path that
    would send it (resend, the queued->submitting step) or settle it (--sent)."""
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    facts = {
        "to": "a@b.test",
        "interviewer": "A",
        "company": "C",
        "role": "R",
        "situation": "illness",
        "interview": T0.isoformat(),
    }
    _tid, mid = store.create_thread(
        now=T0,
        facts=facts,
        key="k",
        subject="s",
        message_id="<m@x>",
        raw=b"x",
        envelope_from="me@x.test",
        recipients=("a@b.test",),
        follow_up_wait="1d",
        max_follow_ups=1,
        guard_duplicates=True,
    )
    with store.tx() as c:
        c.exec_driver_sql(
            "UPDATE messages SET state = ?, owner = ? WHERE id = ?",
            (SUBMITTING, _live_foreign_owner(), mid),
        )
    with pytest.raises(ClaimError, match="another mailer process"):
        store.claim_resend(mid, T0, ("sending",))
    with pytest.raises(ClaimError, match="another mailer process"):
        store.mark_submitting(mid, T0)
    with pytest.raises(ClaimError, match="another mailer process"):
        store.mark_sent(mid, T0, "confirmed by you", None, settling=True)
    assert store.message(mid).state == SUBMITTING
    # Once that process is gone (an in-doubt row), exactly one claim wins.
    with store.tx() as c:
        c.exec_driver_sql("UPDATE messages SET state = ?, owner = '' WHERE id = ?", (IN_DOUBT, mid))
    store.claim_resend(mid, T0, ("sending",))
    assert store.message(mid).state == SUBMITTING
    store.mark_sent(mid, T0, "250 ok", None)
    with pytest.raises(ClaimError, match="no longer in doubt"):
        store.claim_resend(mid, T0, ("sending", "awaiting_reply"))
    assert store.message(mid).state == SENT
