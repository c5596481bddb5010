"""What both benchmarks need: a workspace pointed at a running sandbox stack."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from mailer.sandbox.stack import StackInfo, sandbox_config_toml


def bench_workspace(info: StackInfo, sender: str, extra: str = "") -> Path:
    """A throwaway workspace whose config is the sandbox's own, plus ``extra`` TOML tables."""
    ws = Path(tempfile.mkdtemp(prefix="mailer-bench-"))
    # Removed when the benchmark ends: every run left its workspaces (a state store with
    # hundreds of messages each) in the temporary folder for good.
    atexit.register(shutil.rmtree, ws, ignore_errors=True)
    (ws / "config").mkdir()
    ca = ws / "ca.pem"
    shutil.copy(info.ca_file, ca)
    (ws / "config" / "mailer.toml").write_text(sandbox_config_toml(info, ca, sender) + extra)
    (ws / ".env").write_text(f"MAILER_SMTP_PASSWORD={info.users[sender]}\n")
    return ws


def interview_of(i: int) -> str:
    """Entry ``i``'s interview time: each its own, a minute before the one before (one
    person at one time is one interview, whatever the company: entries sharing a time
    would be refused as duplicates of each other)."""
    from datetime import datetime, timedelta

    return f"{datetime(2026, 11, 24, 10, 0) - timedelta(minutes=i):%Y-%m-%d %H:%M}"
