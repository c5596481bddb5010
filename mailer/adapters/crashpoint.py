"""Test-only crash points: ``MAILER_CRASH_AT=name`` makes the process kill itself there.

Only the test suite sets that variable; without it :func:`crash_point` returns at once and
does nothing else (it reads no file, counts nothing, loads no module). ``name@N`` waits for
the Nth time the point is reached (a campaign killed half-way). The crash tests use this to
stop a send at an exact step instead of guessing with sleeps. The kill is SIGKILL on Linux
and macOS, an immediate ``os._exit`` on Windows: no clean-up runs, as in a real crash.
With ``MAILER_CRASH_STOP=1`` the process stops itself there instead (SIGSTOP, POSIX only): a
daemon that stalls at an exact step until the test sends SIGCONT (#17, fencing).
"""

from __future__ import annotations

import os
from collections import Counter

ENV = "MAILER_CRASH_AT"
POINTS = (
    "after-queued",
    "after-submitting",
    "after-claim",  # a follow-up claimed, before the last look for a reply
    "before-final-dot",  # the whole message but its final dot sent, mark not yet committed
    "after-final-dot",  # the mark committed, the final dot not yet sent
    "after-250",
    "after-sent",
    "after-copy",
)
_hits: Counter[str] = Counter()


def crash_point(name: str) -> None:
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _hits[name] += 1
    if _hits[name] >= int(nth or 1):
        if os.environ.get("MAILER_CRASH_STOP") == "1":
            import signal

            os.kill(os.getpid(), signal.SIGSTOP)
            return
        from mailer.adapters.process import kill_self

        kill_self()
