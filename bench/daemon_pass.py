"""One process, as a daemon is (issue #17): the store is opened once, then each rep records 10
apologies due now (through `mailer send`, in this process, not timed) and times one pass that
sends their follow-ups. Run by ``lease_bench.py --only daemon``; prints the times as JSON.

Usage: daemon_pass.py WORKSPACE REPS

With MAILER_BENCH_STATEMENTS=FILE, every statement the database ran in the last rep's timed
pass is written to FILE, one JSON line each (``lease_bench.py --only count``). SQLite: what
its trace callback sees. PostgreSQL: what the server logged (log_statement = all, the log at
MAILER_BENCH_PGLOG) between two marker statements, so the BEGIN and COMMIT that psycopg sends
on its own and SQLAlchemy's pool ping are counted as the round trips they are.
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
    from common import interview_of

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
            # (a time each: one person at one time is one interview, whatever the company)
            when = interview_of(rep * 10 + n)
            args += ["--role", "Engineer", "--interview", when, "--yes"]
            try:
                cli(args, prog_name="mailer", standalone_mode=False)
            except SystemExit as exc:
                if exc.code:
                    raise
        at = later + timedelta(minutes=rep)
        tracing = rep == reps - 1 and bool(os.environ.get("MAILER_BENCH_STATEMENTS"))
        trace = _Trace(store) if tracing else None
        started = time.perf_counter()
        report = run_pass_all(settings, store, lambda at=at: at)
        times.append(time.perf_counter() - started)
        if trace is not None:
            trace.write(Path(os.environ["MAILER_BENCH_STATEMENTS"]))
        if len(report.sent) != 10:
            raise SystemExit(f"rep {rep}: {len(report.sent)} follow-ups sent, not 10")
    print(json.dumps(times))


class _Trace:
    MARK = "mailer-bench-mark"

    def __init__(self, store) -> None:
        self.store, self.seen = store, []
        self.pg = store.engine.dialect.name == "postgresql"
        if self.pg:
            import psycopg

            args = store.engine.url.translate_connect_args(username="user", database="dbname")
            self.marker = psycopg.connect(**args, **store._connect, autocommit=True)
            self.marker.execute(f"SELECT '{self.MARK} start'")
            return
        for engine in {store.engine, store.fast_engine}:
            # A SQLite store's own pool (mailer.adapters.directsql): trace each connection it
            # hands out (the pooled ones were opened before tracing began).
            def traced(take=engine.raw_connection):  # type: ignore[no-untyped-def]
                pooled = take()
                pooled.dbapi_connection.set_trace_callback(self.seen.append)
                return pooled

            engine.raw_connection = traced

    def write(self, out: Path) -> None:
        if self.pg:
            self.marker.execute(f"SELECT '{self.MARK} end'")
            self.marker.close()
            lines = Path(os.environ["MAILER_BENCH_PGLOG"]).read_text().splitlines()
            start = max(i for i, x in enumerate(lines) if f"{self.MARK} start" in x)
            end = max(i for i, x in enumerate(lines) if f"{self.MARK} end" in x)
            self.seen = [
                x.split("LOG:  ", 1)[1]
                for x in lines[start + 1 : end]
                if "LOG:  statement: " in x or "LOG:  execute " in x
            ]
        out.write_text("".join(json.dumps(" ".join(s.split())[:160]) + "\n" for s in self.seen))


if __name__ == "__main__":
    main()
