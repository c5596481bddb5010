"""Test-only crash points: ``MAILER_CRASH_AT=name`` makes the process SIGKILL itself there.

The crash tests use this to stop a send at an exact step instead of guessing with sleeps.
"""

from __future__ import annotations

import os
import signal

ENV = "MAILER_CRASH_AT"
POINTS = ("after-queued", "after-submitting", "after-250", "after-sent")


def crash_point(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
