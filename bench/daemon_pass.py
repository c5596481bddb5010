"""One process, as a daemon is (issue #17): the store is opened once, then each rep records 10
apologies due now (through `mailer send`, in this process, not timed) and times one pass that
sends their follow-ups. Run by ``lease_bench.py --only daemon``; prints the times as JSON.

Usage: daemon_pass.py WORKSPACE REPS
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

T0 = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def main() -> None:
    ws, reps = Path(sys.argv[1]), int(sys.argv[2])
    os.chdir(ws)
    from mailer.cli.common import Context
    from mailer.cli.main import cli
    from mailer.services.passes import run_pass_all

    obj = Context(config=None, debug=False, sandbox=False)
    settings = obj.settings(need_secrets=True)
    store = obj.store(settings)
    later = T0 + timedelta(hours=2)
    run_pass_all(settings, store, lambda: later)  # warm: the INBOX as it is, the engine up
    times = []
    for rep in range(reps):
        os.environ["MAILER_NOW"] = T0.isoformat()
        for n in range(10):
            args = ["send", "--situation", "illness", "--to", "them@sandbox.test"]
            args += ["--interviewer", "Ana Ruiz", "--company", f"Co {rep}-{n}"]
            args += ["--role", "Engineer", "--interview", "2026-11-25 10:00", "--yes"]
            try:
                cli(args, prog_name="mailer", standalone_mode=False)
            except SystemExit as exc:
                if exc.code:
                    raise
        at = later + timedelta(minutes=rep)
        started = time.perf_counter()
        report = run_pass_all(settings, store, lambda at=at: at)
        times.append(time.perf_counter() - started)
        if len(report.sent) != 10:
            raise SystemExit(f"rep {rep}: {len(report.sent)} follow-ups sent, not 10")
    print(json.dumps(times))


if __name__ == "__main__":
    main()
