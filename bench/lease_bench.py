"""Daemons on a shared PostgreSQL store (#17), measured against the real sandbox stack (Dovecot +
aiosmtpd on 127.0.0.1) and a private PostgreSQL (tests/postgres.py: initdb + pg_ctl, password
logins).

1. One pass on PostgreSQL vs on SQLite, the same work: ``mailer check -q`` (the daemon's pass)
   over a store of 1,000 threads (100 open; bench/stores.py) with 10 new messages in INBOX
   before each run; and ``mailer check -q`` sending 10 due follow-ups. Whole processes,
   the two stores taking turns; median of the reps. Goal: PostgreSQL <= 1.5x SQLite.
2. Failover: two daemons on one PostgreSQL store (one account, ``lease_seconds`` as given);
   the lease holder dies right after claiming a due follow-up (a crash point: SIGKILL; or
   SIGSTOP, which is how a machine that vanished looks: alive, silent); the time from its
   death to the follow-up accepted by the SMTP server from the other daemon. Median of N.
   Goal: <= the lease time plus one pass.
3. Throughput: 1, 2, 3 daemons started together on 30 accounts with one due follow-up each
   (a fresh copy of one store each run); the time until all 30 are recorded sent.

Usage: .venv/bin/python bench/lease_bench.py [--reps 5] [--failovers 10] [--lease 3]
Writes bench/results/<date>-<HHMM>-lease-<commit>.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import smtplib
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import bench_workspace, interview_of  # noqa: E402
from stores import cached  # noqa: E402

from mailer.adapters.store import Store  # noqa: E402
from mailer.sandbox.stack import MailStack, StackInfo  # noqa: E402
from tests.postgres import Postgres  # noqa: E402

ME, THEM = "me@sandbox.test", "them@sandbox.test"
T0 = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
LATER = (T0 + timedelta(hours=2)).isoformat()


def _env(now: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    return {**env, "MAILER_NOW": now, **extra}


def mailer(ws: Path, *args: str, now: str = LATER, check: bool = True) -> float:
    started = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "mailer.cli.main", *args],
        cwd=ws,
        env=_env(now),
        capture_output=True,
        text=True,
        timeout=300,
    )
    took = time.perf_counter() - started
    if check and r.returncode not in (0, 9):
        raise SystemExit(f"mailer {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
    return took


def send_apology(ws: Path, to: str, n: int, account: str = "") -> None:
    args = ["send", "--situation", "illness", "--to", to, "--interviewer", "Ana Ruiz"]
    # (a time each: one person at one time is one interview, whatever the company)
    args += ["--company", f"Co {n}", "--role", "Engineer", "--interview", interview_of(n)]
    args += ["--yes", *(["--account", account] if account else [])]
    mailer(ws, *args, now=T0.isoformat())


def new_mail(info: StackInfo, count: int) -> None:
    """``count`` messages to ME that concern no thread, over SMTP."""
    ctx = ssl.create_default_context(cafile=info.ca_file)
    with smtplib.SMTP(info.host, info.smtp_port, timeout=30) as s:
        s.starttls(context=ctx)
        s.login(THEM, info.users[THEM])
        for _ in range(count):
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = THEM, ME, "Newsletter"
            msg["Message-ID"] = make_msgid(domain="sandbox.test")
            msg.set_content("Nothing to do with any interview.")
            s.send_message(msg)


def pg_state(ws: Path, pg: Postgres, db: str, lease: float | None = None) -> str:
    config = ws / "config" / "mailer.toml"
    url = pg.url(db, password=False)
    text = re.sub(r"\[state\]\nurl = \"[^\"]*\"\n", "", config.read_text())
    text += f'\n[state]\nurl = "{url}"\n'
    if lease is not None:
        text += f"\n[daemon]\nlease_seconds = {lease:g}\n"
    config.write_text(text)
    with (ws / ".env").open("a") as env:
        env.write(f"MAILER_STATE_PASSWORD={pg.password}\n")
    return url


FOLLOW = '\n[follow_up]\nwait = "60s"\nwindow = "always"\n\n[watch]\npoll_interval = "1s"\nidle = false\n'


# --- 1. PostgreSQL vs SQLite -----------------------------------------------------------------


def store_vs_store(info: StackInfo, pg: Postgres, reps: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {
        k: [] for k in ("pass sqlite", "pass pg", "send sqlite", "send pg")
    }
    source = cached(1000, 100, ME)
    # The pass: one workspace per engine, the same store (copied to PostgreSQL once).
    ws_sql = bench_workspace(info, ME, FOLLOW)
    state = ws_sql / "state.db"
    state.write_bytes(source.read_bytes())
    ws_pg = bench_workspace(info, ME, FOLLOW)
    db = pg.new_database()
    url = pg_state(ws_pg, pg, db)
    r = subprocess.run(
        [sys.executable, "-m", "mailer.cli.main", "store", "copy", "--to", url],
        cwd=ws_sql,
        env=_env(T0.isoformat(), MAILER_STATE_PASSWORD=pg.password),
        capture_output=True,
        text=True,
    )
    if r.returncode:
        raise SystemExit(f"store copy failed:\n{r.stderr}")
    for ws in (ws_sql, ws_pg):  # a first pass of each reads the INBOX as it is
        mailer(ws, "check", "-q", now=T0.isoformat())
    for rep in range(reps):
        for name, ws in (("sqlite", ws_sql), ("pg", ws_pg))[:: 1 if rep % 2 else -1]:
            new_mail(info, 10)
            times[f"pass {name}"].append(mailer(ws, "check", "-q", now=T0.isoformat()))
    # Sending 10 due follow-ups: a fresh workspace and store each rep.
    for rep in range(reps):
        for name in ("sqlite", "pg")[:: 1 if rep % 2 else -1]:
            ws = bench_workspace(info, ME, FOLLOW)
            if name == "pg":
                pg_state(ws, pg, pg.new_database())
            for n in range(10):
                send_apology(ws, THEM, n)
            times[f"send {name}"].append(mailer(ws, "check", "-q"))
    return times


def daemon_vs_daemon(info: StackInfo, pg: Postgres, reps: int) -> dict[str, list[float]]:
    """Sending 10 due follow-ups in one process that keeps its store open, as a daemon does
    (bench/daemon_pass.py): what a pass costs once start-up (the driver's import, the first
    connection) is paid, which a daemon pays once and `mailer check` every time. The reps
    are run in three rounds, the engines taking turns (SQLite first, then PostgreSQL first):
    on a shared machine the load drifts, and one engine's reps all in a row would carry it."""
    times: dict[str, list[float]] = {"sqlite": [], "pg": []}
    rounds = min(3, reps)
    for r in range(rounds):
        share = reps // rounds + (1 if r < reps % rounds else 0)
        for name in ("sqlite", "pg") if r % 2 == 0 else ("pg", "sqlite"):
            times[name] += _daemon_pass(info, pg, name, share)
    return times


def _daemon_pass(
    info: StackInfo, pg: Postgres, name: str, reps: int, extra: dict[str, str] | None = None
) -> list[float]:
    ws = bench_workspace(info, ME, FOLLOW)
    if name == "pg":
        pg_state(ws, pg, pg.new_database())
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "daemon_pass.py"), str(ws), str(reps)],
        cwd=ws,
        env=_env(T0.isoformat(), **(extra or {})),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if r.returncode:
        raise SystemExit(f"daemon_pass ({name}) failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def statements(info: StackInfo, pg: Postgres) -> dict[str, list[str]]:
    """Every statement each engine runs in one pass that sends 10 due follow-ups (the second
    rep of bench/daemon_pass.py, so nothing is a first time). PostgreSQL's come from its own
    log: each one is a round trip, psycopg's BEGIN and SQLAlchemy's pool ping included."""
    with pg.admin() as c:
        c.execute("ALTER SYSTEM SET log_statement = 'all'")
        c.execute("SELECT pg_reload_conf()")
    try:
        seen: dict[str, list[str]] = {}
        for name in ("sqlite", "pg"):
            out = Path(tempfile.mkstemp(prefix="statements-", suffix=".jsonl")[1])
            extra = {"MAILER_BENCH_STATEMENTS": str(out)}
            extra["MAILER_BENCH_PGLOG"] = str(pg.root / "server.log")
            _daemon_pass(info, pg, name, 2, extra)
            seen[name] = [json.loads(line) for line in out.read_text().splitlines()]
            out.unlink()
    finally:
        with pg.admin() as c:
            c.execute("ALTER SYSTEM RESET log_statement")
            c.execute("SELECT pg_reload_conf()")
    return seen


# What a PostgreSQL transaction sends in one pipeline with its COMMIT (store._commit_with).
PIPELINED = ("INSERT INTO events", "error = $3 WHERE thread_id = $4 AND kind = 'follow_up'")


def round_trips(logged: list[str]) -> int:
    """PostgreSQL's logged statements as round trips: a transaction's events and cancelled
    follow-ups go in one pipeline with its COMMIT (store._commit_with; that COMMIT is logged
    as an extended-protocol ``execute``), so such a run counts once, with the COMMIT."""
    trips, run = 0, 0
    for line in logged:
        if any(p in line for p in PIPELINED):
            run += 1
            continue
        if not (line.startswith("execute") and line.endswith(": COMMIT")):
            trips += run  # not sent with a COMMIT: a round trip each
        run = 0
        trips += 1
    return trips + run


# --- 2. failover -----------------------------------------------------------------------------


class Daemon:
    def __init__(self, ws: Path, **env: str) -> None:
        self.log = Path(tempfile.mkstemp(prefix="lease-daemon-", suffix=".log")[1])
        self.out = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailer.cli.main", "daemon"],
            cwd=ws,
            env=_env(LATER, **env),
            stdin=subprocess.DEVNULL,
            stdout=self.out,
            stderr=subprocess.STDOUT,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait()
        self.out.close()
        self.log.unlink(missing_ok=True)


def poll(condition, what: str, timeout: float = 60.0, step: float = 0.005):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise SystemExit(f"timed out waiting for {what}")


def log_mark(info: StackInfo) -> int:
    return info.smtp_log.stat().st_size if info.smtp_log.exists() else 0


def accepted_since(info: StackInfo, mark: int) -> int:
    with info.smtp_log.open("rb") as f:
        f.seek(mark)
        lines = f.read().decode().splitlines()
    return sum(json.loads(line)["event"] == "accepted" for line in lines if line.strip())


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("T", "t")


def failover(stack: MailStack, pg: Postgres, lease: float, runs: int, how: str) -> list[float]:
    return [_one_failover(stack, pg, lease, i, how) for i in range(runs)]


def _one_failover(stack: MailStack, pg: Postgres, lease: float, i: int, how: str) -> float:
    ws = bench_workspace(stack.info, ME, FOLLOW)
    pg_state(ws, pg, pg.new_database(), lease)
    crash = {"MAILER_CRASH_AT": "after-claim"}
    if how == "SIGSTOP":
        crash["MAILER_CRASH_STOP"] = "1"
    first = Daemon(ws, **crash)
    second = None
    try:
        poll(lambda: "lease taken" in first.text(), "the first daemon's lease")
        second = Daemon(ws)
        poll(lambda: "daemon started" in second.text(), "the second daemon")
        mark = log_mark(stack.info)
        send_apology(ws, THEM, i)
        if how == "SIGSTOP":
            poll(lambda: _stopped(first.proc.pid), "the first daemon to stop")
        else:
            poll(lambda: first.proc.poll() is not None, "the first daemon to die")
        dead = time.monotonic()
        poll(
            lambda: accepted_since(stack.info, mark) >= 2,
            "the follow-up from the second daemon",
            timeout=lease * 4 + 60,
        )
        return time.monotonic() - dead
    finally:
        first.end()
        if second is not None:
            second.end()


# --- 3. throughput ---------------------------------------------------------------------------


def throughput(stack: MailStack, pg: Postgres, lease: float, accounts: int) -> dict[int, float]:
    info = stack.info
    users = []
    for i in range(accounts):
        cand, intv = f"tcand{i}@sandbox.test", f"tintv{i}@sandbox.test"
        for u in (cand, intv):
            stack.add_user(u, f"pw-{u}")
        users.append((f"t{i:02d}", cand, intv))
    extra = FOLLOW
    env_lines = []
    for name, cand, _ in users[1:]:
        extra += (
            f'\n[accounts.{name}.sender]\nname = "Sam"\naddress = "{cand}"\n'
            f'[accounts.{name}.smtp]\nhost = "{info.host}"\nport = {info.smtp_port}\n'
            f'security = "starttls"\nca_file = "{info.ca_file}"\n'
            f'[accounts.{name}.imap]\nhost = "{info.host}"\nport = {info.imaps_port}\n'
            f'security = "ssl"\nca_file = "{info.ca_file}"\n'
        )
        env_lines.append(f"MAILER_ACCOUNT_{name.upper()}_SMTP_PASSWORD=pw-{cand}")
    ws = bench_workspace(info, users[0][1], extra)
    (ws / ".env").write_text(
        f"MAILER_SMTP_PASSWORD=pw-{users[0][1]}\n" + "\n".join(env_lines) + "\n"
    )
    template = pg.new_database()
    pg_state(ws, pg, template, lease)
    for n, (name, _, intv) in enumerate(users):
        send_apology(ws, intv, n, "" if n == 0 else name)
    config = (ws / "config" / "mailer.toml").read_text()
    results = {}
    for count in (1, 2, 3):
        db = f"tp{count}_{os.getpid()}"
        with pg.admin() as admin:
            admin.execute(f'CREATE DATABASE "{db}" TEMPLATE "{template}" OWNER mailer')
        (ws / "config" / "mailer.toml").write_text(config.replace(f"/{template}", f"/{db}"))
        store = Store(pg.url(db, password=False), connect={"password": pg.password})
        daemons = []
        try:
            started = time.monotonic()
            daemons = [Daemon(ws) for _ in range(count)]

            def sent(store: Store = store) -> bool:
                with store.tx() as c:
                    from sqlalchemy import text

                    done = c.execute(
                        text(
                            "SELECT count(*) FROM messages WHERE kind='follow_up' AND state='sent'"
                        )
                    ).scalar_one()
                return done >= accounts

            poll(sent, f"{accounts} follow-ups from {count} daemon(s)", timeout=600, step=0.05)
            results[count] = time.monotonic() - started
            holders = {r.owner for r in store.leases() if r.held}
            print(f"  {count} daemon(s): {results[count]:.1f} s; leases held by {len(holders)}")
        finally:
            for d in daemons:
                d.end()
            store.close()
    return results


def engine_table(title: str, rows: list[tuple[str, float, float]]) -> list[str]:
    """A markdown section: each work's SQLite and PostgreSQL seconds, and their ratio."""
    lines = ["", f"## {title}", "", "| work | SQLite | PostgreSQL | ratio |", "|---|---|---|---|"]
    for work, sqlite, pg in rows:
        lines.append(
            f"| {work} | {sqlite * 1000:.0f} ms | {pg * 1000:.0f} ms | {pg / sqlite:.2f}x |"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--failovers", type=int, default=10)
    ap.add_argument("--lease", type=float, default=3.0)
    ap.add_argument("--accounts", type=int, default=30)
    # "count": the statements per follow-up on each engine (not in the default run).
    ap.add_argument("--only", default="store,daemon,failover,throughput")
    args = ap.parse_args()
    only = set(args.only.split(","))
    stack = MailStack.create(users={ME: "bench-1", THEM: "bench-2"})
    stack.start()
    pg = Postgres.start()
    lines = [f"# Leases bench (#17), {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", ""]
    lines.append(f"load average at start: {os.getloadavg()[0]:.1f}; 2 vCPU")
    figures: dict[str, object] = {}
    try:
        if "store" in only:
            times = store_vs_store(stack.info, pg, args.reps)
            med = {k: statistics.median(v) for k, v in times.items()}
            figures["store"] = times
            lines += engine_table(
                f"One pass, PostgreSQL vs SQLite (whole `mailer check -q`, median of {args.reps})",
                [
                    ("pass, 10 new messages, 1,000 threads", med["pass sqlite"], med["pass pg"]),
                    ("sending 10 due follow-ups", med["send sqlite"], med["send pg"]),
                ],
            )
            print("\n".join(lines[-5:]))
        if "daemon" in only:
            times = daemon_vs_daemon(stack.info, pg, args.reps)
            med = {k: statistics.median(v) for k, v in times.items()}
            figures["daemon"] = times
            lines += engine_table(
                f"Sending 10 due follow-ups in one daemon-like process (median of {args.reps})",
                [("one pass sending 10 follow-ups, store kept open", med["sqlite"], med["pg"])],
            )
            print("\n".join(lines[-5:]))
        if "count" in only:
            seen = statements(stack.info, pg)
            figures["statements"] = seen
            lines += [
                "",
                "## Statements per follow-up (one pass sending 10, divided by 10)",
                "",
                "| SQLite statements | PostgreSQL statements | PostgreSQL round trips |",
                "|---|---|---|",
                f"| {len(seen['sqlite']) / 10:g} | {len(seen['pg']) / 10:g} | "
                f"{round_trips(seen['pg']) / 10:g} |",
            ]
            for name, sql in seen.items():
                print(f"--- {name}: {len(sql)} statements")
                print("\n".join(sql))
            print("\n".join(lines[-5:]))
        if "failover" in only:
            lines += [
                "",
                f"## Failover, lease {args.lease:g} s, poll 1 s (median of {args.failovers})",
                "",
                "| the holder | median | max |",
                "|---|---|---|",
            ]
            for how in ("SIGKILL", "SIGSTOP"):
                took = failover(stack, pg, args.lease, args.failovers, how)
                figures[f"failover {how}"] = took
                lines.append(f"| {how} | {statistics.median(took):.2f} s | {max(took):.2f} s |")
                print(lines[-1])
        if "throughput" in only:
            res = throughput(stack, pg, args.lease, args.accounts)
            figures["throughput"] = res
            lines += [
                "",
                f"## Throughput, {args.accounts} accounts with a due follow-up each",
                "",
                "| daemons | all sent after |",
                "|---|---|",
                *(f"| {k} | {v:.1f} s |" for k, v in res.items()),
            ]
    finally:
        pg.stop()
        stack.stop()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    out = ROOT / "bench" / "results" / f"{datetime.now(UTC):%Y-%m-%d-%H%M}-lease-{commit}.md"
    lines += ["", "```json", json.dumps(figures, default=str), "```", ""]
    out.write_text("\n".join(lines))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
