"""Benchmarks of what a user lives with (issue #14): whole `mailer` processes, each timed
against an anchor run in the same loop, the commands interleaved (their order rotated each
rep), and reported as the ratio of the medians.

    .venv/bin/python bench/run_all.py            # everything, about 10 minutes
    .venv/bin/python bench/run_all.py --quick    # tiny sizes, a smoke run (< 60 s)

Options: ``--smtp postfix|aiosmtpd`` (the SMTP server campaigns go to; default postfix if
installed), ``--reps N``, ``--only NAME[,NAME]`` (help, preview, campaign-check, status,
campaign-scale, check, daemon, latency, campaign-run, campaign-rtt), ``--idle-seconds S``,
``--no-readme``.

Every process is timed from spawn to exit (wall, and user+system CPU from ``wait4``). The
servers: the sandbox stack (Dovecot IMAP/LMTP + aiosmtpd, STARTTLS + AUTH) from
``mailer.sandbox.stack``, and a private Postfix (``bench/postfix.py``: STARTTLS, AUTH through
Dovecot's SASL, PIPELINING offered, mail discarded). The 20 ms link is
``bench/delay_proxy.py`` in front of both Postfix and IMAP. Stores of many threads are built
through the store API (``bench/stores.py``) and cached.

Writes ``bench/results/<date>-<commit>.md`` and regenerates the README's performance table
(between ``<!-- bench:begin -->`` and ``<!-- bench:end -->``).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import re
import shutil
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import postfix
import stores
from common import bench_workspace, interview_of
from delay_proxy import start_proxy

from mailer.sandbox.stack import MailStack, StackInfo

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = str(ROOT / ".venv" / "bin" / "python")
MAILER = str(ROOT / ".venv" / "bin" / "mailer")
MAILMERGE = str(ROOT / ".venv" / "bin" / "mailmerge")
SENDER = "you@sandbox.test"
SENDER_PW = "bench-pw"
NOW_ENV = {"MAILER_NOW": stores.NOW.isoformat()}


@dataclass
class Sample:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def wall_med(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_med(self) -> float:
        return statistics.median(self.cpu)


@dataclass
class Row:
    what: str
    mailer: str
    anchor: str
    ratio: str
    goal: str
    note: str = ""


ROWS: list[Row] = []


def measured_tree() -> str:
    """The package the timed ``mailer`` processes import (they inherit this environment).
    ``.venv/bin/mailer`` is an editable install of one checkout: run with ``PYTHONPATH=$PWD``
    to measure another, such as a worktree sharing the venv."""
    probe = subprocess.run(
        [PY, "-c", "import mailer; print(mailer.__file__)"],
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        check=True,
    )
    return str(Path(probe.stdout.strip()).parent)


def compile_bytecode(tree: str) -> None:
    """Compile the measured package's modules to bytecode first, as ``pip``/``pipx install``
    does: a checkout's editable install has none until Python writes it, and with
    ``PYTHONDONTWRITEBYTECODE`` set (this project's CI machines set it) it never does, so every
    timed process compiled each module it imported from source: importing what `campaign
    check` needs took 347 ms against 210 ms compiled (medians of 9, alternating), while the
    anchors, installed by pip, were compiled. A gap no user has."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([PY, "-m", "compileall", "-q", tree], env=env, check=True, capture_output=True)


LAST_MAXRSS = [0]  # the peak memory of the last process run_timed_cpu ran


def run_timed_cpu(
    cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None, check: bool = True
) -> tuple[float, float]:
    full_env = {**os.environ, **NOW_ENV, **(env or {})}
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(
            cmd, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        LAST_MAXRSS[0] = ru.ru_maxrss  # KiB on Linux
        p.returncode = os.waitstatus_to_exitcode(status)
        if check and p.returncode != 0:
            err.seek(0)
            raise RuntimeError(
                f"{' '.join(cmd)} exited {p.returncode}:\n{err.read().decode()[-2000:]}"
            )
    return wall, ru.ru_utime + ru.ru_stime


def interleave(
    paths: dict[str, Callable[[], tuple[float, float]]],
    reps: int,
    before: Callable[[str], None] | None = None,
) -> dict[str, Sample]:
    """Run each path ``reps`` times, taking turns, the order rotated every rep. ``before``
    (untimed) runs before each timed path."""
    out = {name: Sample() for name in paths}
    names = list(paths)
    for rep in range(reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            if before:
                before(name)
            wall, cpu = paths[name]()
            out[name].wall.append(wall)
            out[name].cpu.append(cpu)
    return out


def ms(s: float) -> str:
    return f"{s * 1000:,.0f} ms" if s < 10 else f"{s:,.2f} s"


def add(what: str, s: dict[str, Sample], mine: str, anchor: str, goal: str, note: str = "") -> None:
    a, b = s[mine], s[anchor]
    ROWS.append(
        Row(
            what,
            f"{ms(a.wall_med)} (CPU {ms(a.cpu_med)})",
            f"{anchor}: {ms(b.wall_med)} (CPU {ms(b.cpu_med)})",
            f"{a.wall_med / b.wall_med:.2f}x (CPU {a.cpu_med / b.cpu_med:.2f}x)",
            goal,
            note,
        )
    )
    print(f"  {what}: {ROWS[-1].mailer} vs {ROWS[-1].anchor} = {ROWS[-1].ratio}", flush=True)


# --- the workspaces ---------------------------------------------------------------------


def workspace(
    info: StackInfo,
    smtp_port: int | None = None,
    imap_port: int | None = None,
    store: Path | None = None,
    extra: str = "",
) -> Path:
    ws = bench_workspace(info, SENDER, extra)
    cfg = ws / "config" / "mailer.toml"
    text = cfg.read_text()
    if smtp_port is not None:
        text = re.sub(r"(\[smtp\][^\[]*?port = )\d+", rf"\g<1>{smtp_port}", text)
    if imap_port is not None:
        text = re.sub(r"(\[imap\][^\[]*?port = )\d+", rf"\g<1>{imap_port}", text)
    cfg.write_text(text)
    if store is not None:
        shutil.copy(store, ws / "state.db")
    return ws


def campaign_toml(n: int) -> str:
    parts = [
        '[campaign]\nname = "bench"\n\n'
        "[defaults]\n"
        'situation = "illness"\n'
        'note = "I came down with a fever that week and could not attend."\n'
        'free = ["2026-12-07 09:00-12:00", "2026-12-08 14:00-17:00"]\n'
        'interviewer = "Ana Ruiz"\n'
        'role = "Data Engineer"\n'
        'interview = "2026-11-24 10:00"\n'
        'timezone = "Europe/London"\n'
    ]
    for i in range(n):
        parts.append(
            f'\n[[entries]]\nto = "interviewer{i % 4 + 1}@sandbox.test"\n'
            f'company = "Bench Co {i:05d}"\ninterview = "{interview_of(i)}"\n'
        )
    return "".join(parts)


MM_TEMPLATE = """TO: {{email}}
SUBJECT: Missed interview for the {{role}} role at {{company}}
FROM: Sam Sandbox <you@sandbox.test>

Dear {{interviewer}},

I am sorry I missed our interview for the {{role}} role at {{company}} on {{interview}}.
{{note}}

I would be glad to find another time. I am free {{free}}.

Best regards,
Sam Sandbox
"""

MM_CONF = """[smtp_server]
host = 127.0.0.1
port = 25
security = STARTTLS
username = you@sandbox.test
"""


def mailmerge_dir(n: int) -> Path:
    d = Path(tempfile.mkdtemp(prefix="mailer-bench-mm-"))
    atexit.register(shutil.rmtree, d, ignore_errors=True)  # (as bench/common.py's workspaces)
    (d / "t.txt").write_text(MM_TEMPLATE)
    (d / "s.conf").write_text(MM_CONF)
    lines = ["email,interviewer,company,role,interview,note,free"]
    for i in range(n):
        lines.append(
            f"interviewer{i % 4 + 1}@sandbox.test,Ana Ruiz,Bench Co {i:05d},Data Engineer,"
            f'{interview_of(i)},"I came down with a fever that week and could not attend.",'
            '"2026-12-07 09:00-12:00"'
        )
    (d / "d.csv").write_text("\n".join(lines) + "\n")
    return d


def mailmerge_cmd(d: Path, limit: int | None) -> list[str]:
    return [
        MAILMERGE,
        "--dry-run",
        *(["--limit", str(limit)] if limit else ["--no-limit"]),
        "--template",
        str(d / "t.txt"),
        "--database",
        str(d / "d.csv"),
        "--config",
        str(d / "s.conf"),
        "--output-format",
        "text",
    ]


# --- the benchmarks ---------------------------------------------------------------------


def bench_help(ctx: Ctx) -> None:
    s = interleave(
        {
            "mailer --help": lambda: run_timed_cpu([MAILER, "--help"]),
            "bare click --help": lambda: run_timed_cpu(
                [PY, str(HERE / "anchors" / "bare_click.py"), "--help"]
            ),
        },
        ctx.reps,
    )
    add("`--help` vs a bare click app", s, "mailer --help", "bare click --help", "≤ 1.5x")


def bench_preview(ctx: Ctx) -> None:
    ws = workspace(ctx.info)
    mm = mailmerge_dir(1)
    facts = [
        "--situation",
        "illness",
        "--to",
        "interviewer1@sandbox.test",
        "--interviewer",
        "Ana Ruiz",
        "--company",
        "Bench Co",
        "--role",
        "Data Engineer",
        "--note",
        "I came down with a fever that week and could not attend.",
        "--free",
        "2026-12-07 09:00-12:00",
    ]
    s = interleave(
        {
            "preview (ISO date)": lambda: run_timed_cpu(
                [MAILER, "preview", *facts, "--interview", "2026-11-24 10:00"], cwd=ws
            ),
            "preview (tomorrow 10:00)": lambda: run_timed_cpu(
                [MAILER, "preview", *facts, "--interview", "tomorrow 10:00"], cwd=ws
            ),
            "mailmerge --dry-run --limit 1": lambda: run_timed_cpu(mailmerge_cmd(mm, 1)),
        },
        ctx.reps,
    )
    add(
        "`preview` of one apology (ISO date) vs `mailmerge --dry-run --limit 1`",
        s,
        "preview (ISO date)",
        "mailmerge --dry-run --limit 1",
        "≤ 1.0x",
    )
    add(
        '`preview` ("tomorrow 10:00") vs `mailmerge --dry-run --limit 1`',
        s,
        "preview (tomorrow 10:00)",
        "mailmerge --dry-run --limit 1",
        "≤ 1.2x",
    )


def bench_campaign_check(ctx: Ctx) -> None:
    n = ctx.check_entries
    ws = workspace(ctx.info)
    (ws / "camp.toml").write_text(campaign_toml(n))
    mm = mailmerge_dir(n)
    s = interleave(
        {
            "campaign check": lambda: run_timed_cpu(
                [MAILER, "campaign", "check", "camp.toml"], cwd=ws
            ),
            "mailmerge --dry-run": lambda: run_timed_cpu(mailmerge_cmd(mm, None)),
        },
        ctx.reps,
    )
    add(
        f"`campaign check` vs `mailmerge --dry-run`, the same {n} rows",
        s,
        "campaign check",
        "mailmerge --dry-run",
        "≤ 2x",
    )


def bench_campaign_scale(ctx: Ctx) -> None:
    """`campaign check` of n and 10n entries against a store of many threads: the 10n one
    run once (it takes a quarter of a minute or more), the n one three times, twice before
    it and once after, its median taken (this machine's speed drifts by a third over
    minutes, and one run of each was a ratio of noise); linear in entries means 10."""
    big = ctx.status_sizes[-1]
    small_n, big_n = ctx.scale_entries
    ws = workspace(ctx.info, store=stores.cached(big, max(1, big // 10), SENDER))
    runs: dict[int, list[tuple[float, float]]] = {small_n: [], big_n: []}
    rss: dict[int, float] = {}
    for n in (small_n, big_n):
        (ws / f"camp{n}.toml").write_text(campaign_toml(n))
    for n in (small_n, small_n, big_n, small_n):
        wall, cpu = run_timed_cpu([MAILER, "campaign", "check", f"camp{n}.toml"], cwd=ws)
        runs[n].append((wall, cpu))
        rss[n] = max(rss.get(n, 0.0), LAST_MAXRSS[0] / 1024)
        print(
            f"  campaign check of {n:,} entries, store of {big:,}: {ms(wall)} (CPU {ms(cpu)}), "
            f"peak memory {LAST_MAXRSS[0] / 1024:.1f} MiB"
        )
    w1, c1 = (
        statistics.median(w for w, _ in runs[small_n]),
        statistics.median(c for _, c in runs[small_n]),
    )
    ((w2, c2),) = runs[big_n]
    ROWS.append(
        Row(
            f"peak memory (max RSS) of `campaign check`, {big_n:,} entries against "
            f"{small_n:,} (the same runs)",
            f"{rss[big_n]:.1f} MiB",
            f"{small_n:,} entries: {rss[small_n]:.1f} MiB",
            f"{rss[big_n] / rss[small_n]:.2f}x",
            "flat in entries",
        )
    )
    ROWS.append(
        Row(
            f"`campaign check` of {big_n:,} entries against a store of {big:,} threads "
            f"(one run; against the median of three runs of {small_n:,} entries: linear is "
            f"{big_n // small_n}x)",
            f"{ms(w2)} (CPU {ms(c2)})",
            f"{small_n:,} entries: {ms(w1)} (CPU {ms(c1)})",
            f"{w2 / w1:.2f}x (CPU {c2 / c1:.2f}x)",
            "linear in entries, whatever the store holds",
        )
    )


def bench_status(ctx: Ctx) -> None:
    for n in ctx.status_sizes:
        db = stores.cached(n, max(1, n // 10), SENDER)
        ws = workspace(ctx.info, store=db)
        s = interleave(
            {
                "status": lambda ws=ws: run_timed_cpu([MAILER, "status"], cwd=ws),
                "sqlite3 one query": lambda ws=ws: run_timed_cpu(
                    [PY, str(HERE / "anchors" / "sqlite_status.py"), str(ws / "state.db")]
                ),
            },
            ctx.reps,
        )
        add(
            f"`status` vs a one-query sqlite3 script, {n:,} threads ({n // 10:,} open)",
            s,
            "status",
            "sqlite3 one query",
            "≤ 3x at 10k",
        )


def deliver(info: StackInfo, k: int, tag: str) -> None:
    """``k`` new messages into the sender's INBOX over LMTP, none of them about a thread."""
    with smtplib.LMTP(info.host, info.lmtp_port) as lm:
        for i in range(k):
            msg = (
                f"From: Someone {i} <someone{i}@elsewhere.test>\r\nTo: {SENDER}\r\n"
                f"Subject: Newsletter {tag} {i}\r\nMessage-ID: <n-{tag}-{i}@elsewhere.test>\r\n"
                "Date: Wed, 25 Nov 2026 14:00:00 +0000\r\n\r\nNothing to do with a thread.\r\n"
            )
            lm.sendmail(f"someone{i}@elsewhere.test", [SENDER], msg.encode())


def open_workspaces(ctx: Ctx) -> dict[str, Path]:
    big = ctx.open_sizes[-1]
    return {
        f"{n:,} open": workspace(ctx.info, store=stores.cached(n, n, SENDER)) for n in (10, big)
    }


def bench_check(ctx: Ctx) -> None:
    wss = open_workspaces(ctx)
    for ws in wss.values():  # the first pass sets the folder position: not timed
        run_timed_cpu([MAILER, "check", "-q"], cwd=ws)
    counter = iter(range(10**6))
    s = interleave(
        {
            name: (lambda ws=ws: run_timed_cpu([MAILER, "check", "-q"], cwd=ws))
            for name, ws in wss.items()
        },
        ctx.reps,
        before=lambda name: deliver(ctx.info, 10, f"{next(counter)}"),
    )
    names = list(wss)
    add(
        f"one `check` pass with 10 new messages, {names[1]} threads vs {names[0]}",
        s,
        names[1],
        names[0],
        "≤ 1.2x",
    )


def _cpu_seconds(proc: Any) -> float:
    """CPU time of a process so far. On Linux the sum of its threads' schedstat, in
    nanoseconds: an idle daemon uses 20-60 ms a minute, a few ticks of the 10 ms clock
    psutil's figures count in, which made the ratio of two of them mostly rounding. (A
    thread that ended between two readings would be missed: the daemon's are long-lived.)"""
    tasks = Path(f"/proc/{proc.pid}/task")
    if tasks.is_dir():
        total = 0
        for task in tasks.iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int((task / "schedstat").read_text().split()[0])
        if total:
            return total / 1e9
    return float(sum(proc.cpu_times()[:2]))


def bench_daemon(ctx: Ctx) -> None:
    import psutil

    wss = open_workspaces(ctx)
    procs = {}
    with contextlib.ExitStack() as files:
        for name, ws in wss.items():
            procs[name] = subprocess.Popen(
                [MAILER, "daemon", "-q"],
                cwd=ws,
                env={**os.environ, **NOW_ENV},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=files.enter_context((ws / "daemon.err").open("wb")),
            )
        try:
            time.sleep(ctx.idle_warmup)
            for n, p in procs.items():
                if p.poll() is not None:
                    err = (wss[n] / "daemon.err").read_text()
                    raise RuntimeError(f"daemon ({n}) exited: {err}")
            ps = {n: psutil.Process(p.pid) for n, p in procs.items()}
            t0 = {n: _cpu_seconds(p) for n, p in ps.items()}
            time.sleep(ctx.idle_seconds)
            t1 = {n: _cpu_seconds(p) for n, p in ps.items()}
        finally:
            for p in procs.values():
                p.send_signal(signal.SIGTERM)
            for p in procs.values():
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
    per_min = {n: (t1[n] - t0[n]) * 60 / ctx.idle_seconds for n in ps}
    names = list(wss)
    ratio = per_min[names[1]] / per_min[names[0]] if per_min[names[0]] else float("inf")
    ROWS.append(
        Row(
            f"idle daemon CPU, {names[1]} threads vs {names[0]} (ms CPU per minute from the "
            f"threads' schedstat, both running over the same {ctx.idle_seconds:.0f} s after a "
            f"{ctx.idle_warmup:.0f} s warm-up)",
            f"{per_min[names[1]] * 1000:,.0f} ms/min",
            f"{names[0]}: {per_min[names[0]] * 1000:,.0f} ms/min",
            f"{ratio:.2f}x",
            "≤ 1.5x",
        )
    )
    print(f"  idle daemon: {per_min}", flush=True)


def _reply(info: StackInfo, i: int, tag: str) -> None:
    """A reply to thread ``i`` of a bench store (or, with ``i < 0``, an unrelated message),
    delivered over LMTP: it returns once Dovecot has stored it."""
    frm = f"hr{i}@company{i % 997}.test" if i >= 0 else "someone@elsewhere.test"
    refs = f"In-Reply-To: <bench-{i}@sandbox.test>\r\n" if i >= 0 else ""
    msg = (
        f"From: {frm}\r\nTo: {SENDER}\r\nSubject: Re: Missed interview {tag}\r\n{refs}"
        f"Message-ID: <r-{tag}@elsewhere.test>\r\nDate: Wed, 25 Nov 2026 15:00:00 +0000\r\n"
        "\r\nThanks, Thursday at 10:00 works for me.\r\n"
    )
    with smtplib.LMTP(info.host, info.lmtp_port) as lm:
        lm.sendmail(frm, [SENDER], msg.encode())


def _bare_idle(info: StackInfo, n: int, counter: Iterator[int]) -> list[float]:
    import ssl

    from imapclient import IMAPClient

    out = []
    ctx = ssl.create_default_context(cafile=info.ca_file)
    with IMAPClient(info.host, port=info.imaps_port, ssl=True, ssl_context=ctx) as c:
        c.login(SENDER, SENDER_PW)
        c.select_folder("INBOX", readonly=True)
        for _ in range(n):
            c.idle()
            _reply(info, -1, f"bare-{next(counter)}")
            t0 = time.perf_counter()
            while not any(len(r) > 1 and r[1] == b"EXISTS" for r in c.idle_check(timeout=5)):
                if time.perf_counter() - t0 > 20:
                    raise RuntimeError("no EXISTS push within 20 s")
            out.append(time.perf_counter() - t0)
            c.idle_done()
    return out


def _daemon_latency(ctx: Ctx, ws: Path, threads: list[int], counter: Iterator[int]) -> list[float]:
    import sqlite3

    out = []
    log = ws / "daemon.log"
    with log.open("wb") as f:
        proc = subprocess.Popen(
            [MAILER, "daemon"],
            cwd=ws,
            env={**os.environ, **NOW_ENV},
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while b"with IDLE" not in log.read_bytes():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"daemon did not start IDLE: {log.read_text()[-500:]}")
            time.sleep(0.05)
        time.sleep(2)  # let the start-up pass finish so that it does not overlap a reply
        db = sqlite3.connect(ws / "state.db")
        for i in threads:
            _reply(ctx.info, i, f"d-{next(counter)}")
            t0 = time.perf_counter()
            while (
                db.execute("SELECT state FROM threads WHERE id = ?", (i + 1,)).fetchone()[0]
                != "replied"
            ):
                if time.perf_counter() - t0 > 30:
                    raise RuntimeError(f"thread {i + 1} not marked replied in 30 s")
                time.sleep(0.005)
            out.append(time.perf_counter() - t0)
        db.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return out


def bench_latency(ctx: Ctx) -> None:
    """Reply latency: LMTP delivery done -> the thread marked replied by `mailer daemon` in
    IDLE, against the bare IMAP IDLE push (LMTP delivery done -> EXISTS). Not interleaved:
    bare, daemon at 10 open, daemon at 10k open, bare again (the bare median is of both)."""
    n = min(ctx.reps, 10)
    big = ctx.open_sizes[-1]
    counter = iter(range(10**6))
    bare = _bare_idle(ctx.info, n, counter)
    small = _daemon_latency(
        ctx, workspace(ctx.info, store=stores.cached(10, 10, SENDER)), list(range(n)), counter
    )
    # Other threads than the small store's: its replies are in the INBOX already, and the
    # big store's daemon reads them on its start-up pass.
    step = max(1, (big - 10) // n)
    large = _daemon_latency(
        ctx,
        workspace(ctx.info, store=stores.cached(big, big, SENDER)),
        [10 + k * step for k in range(n)],
        counter,
    )
    bare += _bare_idle(ctx.info, n, counter)
    b = statistics.median(bare)
    for label, lat in (("10 open", small), (f"{big:,} open", large)):
        m = statistics.median(lat)
        ROWS.append(
            Row(
                f"reply latency, `mailer daemon` in IDLE, {label} threads (median of {n}; "
                "delivery done -> thread marked replied)",
                f"{m * 1000:,.0f} ms (max {max(lat) * 1000:,.0f} ms)",
                f"bare IMAP IDLE push: {b * 1000:,.0f} ms",
                f"{m / b:.2f}x",
                "≤ 1.2x at 10k",
            )
        )
        print(f"  reply latency, {label}: {m * 1000:.0f} ms vs bare {b * 1000:.0f} ms")


def bench_campaign_run(
    ctx: Ctx, n: int, smtp_port: int, imap_port: int, label: str, reps: int
) -> None:
    ws = workspace(ctx.info, smtp_port=smtp_port, imap_port=imap_port)
    (ws / "camp.toml").write_text(campaign_toml(n))
    # On loopback, the same at a third of the messages too: the difference between the two
    # sizes is what each further message costs, the fixed costs (start-up, loading the
    # entries, signing in) taken out, for mailer and smtplib alike.
    small = n // 3 if "RTT" not in label and n >= 30 else 0
    if small:
        (ws / "small.toml").write_text(campaign_toml(small))

    def fresh(name: str) -> None:
        # A new, empty history for every run (the store and the workspace's record of it).
        for suffix in ("", "-wal", "-shm"):
            Path(f"{ws / 'state.db'}{suffix}").unlink(missing_ok=True)
        shutil.rmtree(ws / ".mailer", ignore_errors=True)

    def anchor(count: int, script: str = "smtplib_send.py", *extra: str) -> tuple[float, float]:
        return run_timed_cpu(
            [
                *(PY, str(HERE / "anchors" / script), ctx.info.host, str(smtp_port)),
                *(SENDER, SENDER_PW, ctx.info.ca_file, str(count), *extra),
            ]
        )

    def durable(count: int) -> tuple[float, float]:
        # (its database on the disk mailer's store is on)
        return anchor(count, "smtplib_durable.py", str(ws / "durable.db"))

    paths = {
        "campaign run": lambda: run_timed_cpu(
            [MAILER, "campaign", "run", "camp.toml", "--yes"], cwd=ws
        ),
        "raw smtplib, 1 connection": lambda: anchor(n),
    }
    if small:
        paths["campaign run, small"] = lambda: run_timed_cpu(
            [MAILER, "campaign", "run", "small.toml", "--yes"], cwd=ws
        )
        paths["raw smtplib, 1 connection, small"] = lambda: anchor(small)
        # The floor the issue's own rules leave (one durable commit a message), and the
        # check every entry has before anything is sent: what of mailer's time per message
        # is neither.
        paths["durable floor"] = lambda: durable(n)
        paths["durable floor, small"] = lambda: durable(small)
        paths["campaign check"] = lambda: run_timed_cpu(
            [MAILER, "campaign", "check", "camp.toml"], cwd=ws
        )
        paths["campaign check, small"] = lambda: run_timed_cpu(
            [MAILER, "campaign", "check", "small.toml"], cwd=ws
        )
    s = interleave(paths, reps, before=fresh)
    add(
        f"`campaign run` vs raw smtplib on one connection, {label}, {n} messages "
        f"({ctx.smtp}, Sent copy on)",
        s,
        "campaign run",
        "raw smtplib, 1 connection",
        "≤ 1.1x (≤ 0.8x with PIPELINING)" if "RTT" in label else "whole process ≤ 2x",
    )
    if small:
        each = {
            who: (s[big].wall_med - s[f"{big}, small"].wall_med) / (n - small)
            for who, big in (
                ("mailer", "campaign run"),
                ("smtplib", "raw smtplib, 1 connection"),
                ("floor", "durable floor"),
                ("check", "campaign check"),
            )
        }

        def ratio(a: float, b: float) -> str:
            return f"{a / b:.2f}x" if b > 0 else "n/a"

        ROWS.append(
            Row(
                f"`campaign run` vs raw smtplib, loopback: the send loop, per message (the "
                f"medians' difference between {n} and {small} messages, over {n - small})",
                f"{each['mailer'] * 1000:.2f} ms",
                f"raw smtplib: {each['smtplib'] * 1000:.2f} ms",
                ratio(each["mailer"], each["smtplib"]),
                "≤ 1.3x",
            )
        )
        ROWS.append(
            Row(
                "the floor of that row: raw smtplib with one durable SQLite commit a message "
                "(`bench/anchors/smtplib_durable.py`), per message, vs raw smtplib",
                f"{each['floor'] * 1000:.2f} ms",
                f"raw smtplib: {each['smtplib'] * 1000:.2f} ms",
                ratio(each["floor"], each["smtplib"]),
                "(not a goal: what the one fsync costs here)",
            )
        )
        loop = each["mailer"] - each["check"]
        ROWS.append(
            Row(
                "`campaign run`'s send loop with each entry's check taken out (per message: "
                "the run's, less `campaign check`'s of the same files), vs that floor",
                f"{loop * 1000:.2f} ms (check {each['check'] * 1000:.2f} ms)",
                f"floor: {each['floor'] * 1000:.2f} ms",
                ratio(loop, each["floor"]),
                "(not a goal: mailer's own cost a message)",
            )
        )
        print(f"  send loop per message: {each}", flush=True)


# --- the run ----------------------------------------------------------------------------


@dataclass
class Ctx:
    info: StackInfo
    smtp: str
    smtp_port: int
    reps: int
    status_sizes: tuple[int, ...]
    open_sizes: tuple[int, ...]
    check_entries: int
    scale_entries: tuple[int, int]
    campaign_loopback: int
    campaign_rtt: int
    rtt_reps: int
    idle_seconds: float
    idle_warmup: float


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def table(rows: list[Row]) -> str:
    out = [
        "| what | mailer: wall (CPU) | anchor: wall (CPU) | ratio of walls (of CPU) | goal |",
        "|---|---:|---:|---:|---|",
    ]
    for r in rows:
        out.append(f"| {r.what} | {r.mailer} | {r.anchor} | **{r.ratio}** | {r.goal} |")
    return "\n".join(out)


def write_results(ctx: Ctx, args: argparse.Namespace, started: float) -> Path:
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    rev = commit()
    load = os.getloadavg()
    head = (
        f"# Benchmark results, {day}, commit {rev}\n\n"
        f"`{' '.join(['bench/run_all.py', *sys.argv[1:]])}`: SMTP {ctx.smtp}, {ctx.reps} reps "
        f"(median), {os.cpu_count()} CPUs, load average at the end {load[0]:.1f} / "
        f"{load[1]:.1f} / {load[2]:.1f}, took {time.monotonic() - started:.0f} s. Ratios are "
        "within this run, the commands interleaved; wall time of whole processes.\n\n"
    )
    body = table(ROWS) + "\n"
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    path = results / f"{day}-{rev}{'-quick' if args.quick else ''}.md"
    if path.exists():
        # A second run of the same commit (a row run again with --only) keeps the first: it
        # overwrote the full run that README's table names.
        path = path.with_name(f"{path.stem}-{datetime.now(UTC):%H%M%S}.md")
    path.write_text(head + body)
    print(f"\nwrote {path}")
    if not args.quick and not args.no_readme:
        readme = ROOT / "README.md"
        text = readme.read_text()
        block = (
            "<!-- bench:begin (generated by bench/run_all.py; do not edit by hand) -->\n"
            f"From `{path.relative_to(ROOT)}`:\n\n{body}<!-- bench:end -->"
        )
        new, k = re.subn(r"<!-- bench:begin.*?<!-- bench:end -->", block, text, flags=re.S)
        if k:
            readme.write_text(new)
            print("README.md: performance table regenerated")
        else:
            print("README.md has no bench:begin/bench:end block: left alone")
    return path


ALL = (
    "help",
    "preview",
    "campaign-check",
    "status",
    "campaign-scale",
    "check",
    "daemon",
    "latency",
    "campaign-run",
    "campaign-rtt",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    ap.add_argument(
        "--smtp",
        choices=("postfix", "aiosmtpd"),
        default="postfix" if postfix.available() else "aiosmtpd",
    )
    ap.add_argument("--reps", type=int)
    ap.add_argument("--only", default=",".join(ALL))
    ap.add_argument("--idle-seconds", type=float)
    ap.add_argument("--no-readme", action="store_true")
    args = ap.parse_args()
    only = [o for o in args.only.split(",") if o]
    for o in only:
        if o not in ALL:
            ap.error(f"--only: no benchmark {o!r} (choose from {', '.join(ALL)})")
    started = time.monotonic()
    # SIGTERM (and SIGINT, which a background shell job ignores) end the run through the
    # ``finally`` below, so the servers it started are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    users = {SENDER: SENDER_PW, **{f"interviewer{j}@sandbox.test": "pw" for j in range(1, 5)}}
    stack = MailStack.create(users)
    info = stack.start()
    pf = proxy = None
    try:
        smtp_port = info.smtp_port
        if args.smtp == "postfix":
            pf = postfix.Postfix(info, postfix.add_sasl_listener(stack))
            smtp_port = pf.start()
        q = args.quick
        ctx = Ctx(
            info=info,
            smtp=args.smtp,
            smtp_port=smtp_port,
            reps=args.reps or (1 if q else 5),
            status_sizes=(100,) if q else (1000, 10000),
            open_sizes=(100,) if q else (10000,),
            check_entries=20 if q else 300,
            scale_entries=(10, 100) if q else (1000, 10000),
            campaign_loopback=20 if q else 300,
            campaign_rtt=5 if q else 100,
            rtt_reps=1 if q else 3,
            idle_seconds=args.idle_seconds or (2 if q else 60),
            idle_warmup=2 if q else 10,
        )
        print(f"stack in {info.dir}; SMTP {args.smtp} on {smtp_port}", flush=True)
        tree = measured_tree()
        print(f"mailer measured: {tree}", flush=True)
        compile_bytecode(tree)
        steps: dict[str, Callable[[], None]] = {
            "help": lambda: bench_help(ctx),
            "preview": lambda: bench_preview(ctx),
            "campaign-check": lambda: bench_campaign_check(ctx),
            "status": lambda: bench_status(ctx),
            "campaign-scale": lambda: bench_campaign_scale(ctx),
            "check": lambda: bench_check(ctx),
            "daemon": lambda: bench_daemon(ctx),
            "latency": lambda: bench_latency(ctx),
            "campaign-run": lambda: bench_campaign_run(
                ctx, ctx.campaign_loopback, smtp_port, info.imaps_port, "loopback", ctx.reps
            ),
        }

        def rtt() -> None:
            nonlocal proxy
            proxy, ports = start_proxy([(info.host, smtp_port), (info.host, info.imaps_port)], 10)
            bench_campaign_run(ctx, ctx.campaign_rtt, ports[0], ports[1], "20 ms RTT", ctx.rtt_reps)

        steps["campaign-rtt"] = rtt
        for name in ALL:
            if name in only:
                print(f"{name}:", flush=True)
                t = time.monotonic()
                try:
                    steps[name]()
                except Exception as exc:  # one broken benchmark must not lose the others
                    print(f"  {name} FAILED: {exc}", flush=True)
                    ROWS.append(Row(name, "failed", str(exc).splitlines()[0][:120], "", ""))
                print(f"  ({time.monotonic() - t:.0f} s)", flush=True)
        write_results(ctx, args, started)
    finally:
        if proxy is not None:
            proxy.terminate()
        if pf is not None:
            pf.stop()
        stack.stop()


if __name__ == "__main__":
    main()
