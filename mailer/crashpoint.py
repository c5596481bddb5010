"""Test-only crash points: ``MAILER_CRASH_AT=name`` makes the process SIGKILL itself there.

``name@N`` waits for the Nth time the point is reached (a campaign killed half-way).
The crash tests use this to stop a send at an exact step instead of guessing with sleeps.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "MAILER_CRASH_AT"
POINTS = ("after-queued", "after-submitting", "after-250", "after-sent", "after-copy")
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
        os.kill(os.getpid(), signal.SIGKILL)
