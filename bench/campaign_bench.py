"""Benchmark (issue #5): a campaign of N entries, throttling off, through the library API
(``load_campaign`` + ``run_campaign``, a real Store in a temp workspace, the Sent copy on),
against the real sandbox stack (Dovecot + aiosmtpd, STARTTLS + AUTH on 127.0.0.1).

Compared in the same run with two baselines that send the very same pre-built bytes (each
entry's ``prepared.composed.raw``, envelope sender and recipients):

* floor      raw smtplib over ONE connection: STARTTLS + AUTH once, then sendmail per message
* per-conn   raw smtplib with a NEW connection per message: connect, STARTTLS, AUTH, send, QUIT
* mailer     run_campaign, Sent copy on (filed over IMAP on runner.SentCopies' thread; the
             time includes run_campaign joining that thread at the end)
* mailer-ns  run_campaign with imap.save_sent = false: the same without the Sent copy

Before each timed path the recipients' INBOXes and the sender's Sent folder are emptied
(doveadm expunge + purge, not timed), so every path delivers into mailboxes of the same size.

Loading and rendering the campaign (``load_campaign``) is timed on its own, outside the rows;
so is opening a fresh Store (one per mailer run).

Two links: ``loopback`` (direct), and ``delayed``: every connection (SMTP and the IMAP of the
Sent copy) goes through bench/delay_proxy.py, which delays each chunk by 10 ms in each
direction, a 20 ms round trip. The proxy listens on 127.0.0.1, so mailer's config keeps
host = "127.0.0.1" and the sandbox CA, and certificate verification still happens.

Usage: .venv/bin/python bench/campaign_bench.py [--entries 1000] [--link both]
       [--repeats R] [--delay-ms 10] [--breakdown]
``--repeats`` defaults to 3 on loopback and 1 on the delayed link (which takes minutes: about
4 round trips per message on a kept connection, about 11 on a new one). ``--breakdown`` adds
one instrumented mailer run per link (not in the table) that says where the time goes.
"""

from __future__ import annotations

import argparse
import shutil
import smtplib
import sqlite3
import ssl
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import postfix
from common import bench_workspace, interview_of
from delay_proxy import start_proxy

from mailer.adapters.config import load_settings
from mailer.adapters.mailbox import Mailbox
from mailer.adapters.sender import SmtpSession
from mailer.adapters.store import Store
from mailer.sandbox.stack import MailStack, StackInfo
from mailer.services import sending
from mailer.services.campaign import Campaign, load_campaign
from mailer.services.runner import SENT_NOW, run_campaign

SENDER = "you@sandbox.test"
SENDER_PW = "bench-pw"
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)

FLOOR = "floor: raw smtplib, 1 connection"
PER_CONN = "raw smtplib, new connection per message"
MAILER = "mailer run_campaign (Sent copy on)"
MAILER_NS = "mailer run_campaign (imap.save_sent = false)"
PATHS = (FLOOR, PER_CONN, MAILER, MAILER_NS)


def interviewers(k: int) -> list[str]:
    return [f"interviewer{j}@sandbox.test" for j in range(1, k + 1)]


def campaign_toml(n: int, to: list[str]) -> str:
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
            f'\n[[entries]]\nto = "{to[i % len(to)]}"\ncompany = "Bench Co {i:05d}"\n'
            f'interview = "{interview_of(i)}"\n'
        )
    return "".join(parts)


def empty_mailboxes(info: StackInfo) -> None:
    """Expunge (and purge) what the last path delivered, so that every path delivers into
    mailboxes of the same size (an INBOX that keeps growing makes delivery slower)."""
    conf = str(Path(info.dir) / "dovecot.conf")
    doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
    for user in info.users:
        box = "Sent" if user == SENDER else "INBOX"
        for cmd in (["expunge", "-u", user, "mailbox", box, "all"], ["purge", "-u", user]):
            subprocess.run([doveadm, "-c", conf, *cmd], check=True, capture_output=True)


def shifted_clock() -> Callable[[], datetime]:
    shift = NOW - datetime.now(UTC)
    return lambda: datetime.now(UTC) + shift


def without_sent_copy(c: Campaign) -> Campaign:
    entries = [
        replace(e, settings=replace(e.settings, imap=replace(e.settings.imap, save_sent=False)))
        for e in c.entries
    ]
    return replace(c, entries=entries)


# --- the timed paths ----------------------------------------------------------------------


def floor_run(host: str, port: int, ctx: ssl.SSLContext, msgs: list) -> float:
    t = time.perf_counter()
    with smtplib.SMTP(host, port, timeout=30) as s:
        s.starttls(context=ctx)
        s.login(SENDER, SENDER_PW)
        for sender, rcpts, raw in msgs:
            s.sendmail(sender, rcpts, raw)
    return time.perf_counter() - t


def per_conn_run(host: str, port: int, ctx: ssl.SSLContext, msgs: list) -> float:
    t = time.perf_counter()
    for sender, rcpts, raw in msgs:
        with smtplib.SMTP(host, port, timeout=30) as s:  # QUIT on leaving
            s.starttls(context=ctx)
            s.login(SENDER, SENDER_PW)
            s.sendmail(sender, rcpts, raw)
    return time.perf_counter() - t


def mailer_run(c: Campaign, db: Path, expect_copies: bool) -> tuple[float, float]:
    """(total, send loop): the loop ends when the last entry's outcome is recorded; the rest
    is closing the SMTP session and waiting for the Sent copies to be filed."""
    store = Store(f"sqlite:///{db}")  # opening (and creating) the store: not timed
    last = [0.0]

    def progress(_outcome, _report) -> None:
        last[0] = time.perf_counter()

    t = time.perf_counter()
    report = run_campaign(c, store, shifted_clock(), progress=progress)
    total = time.perf_counter() - t
    sent = report.count(SENT_NOW)
    if sent != len(c.entries) or report.sent_copy_problems:
        raise SystemExit(
            f"mailer run: {sent} of {len(c.entries)} sent; outcomes "
            f"{ {o.result for o in report.outcomes} }; copy problems "
            f"{report.sent_copy_problems[:3]}"
        )
    with sqlite3.connect(db) as con:
        copies = dict(con.execute("SELECT sent_copy, count(*) FROM messages GROUP BY sent_copy"))
    want = "saved in Sent" if expect_copies else "skipped: the provider files sent mail itself"
    if copies != {want: len(c.entries)}:
        raise SystemExit(f"mailer run: unexpected Sent-copy outcomes {copies}")
    store.engine.dispose()
    return total, last[0] - t


# --- measuring the link and where mailer's time goes ---------------------------------------


def measure_rtt(host: str, port: int, ctx: ssl.SSLContext, n: int = 30) -> float:
    with smtplib.SMTP(host, port, timeout=30) as s:
        s.starttls(context=ctx)
        s.login(SENDER, SENDER_PW)
        times = []
        for _ in range(n):
            t = time.perf_counter()
            s.noop()
            times.append(time.perf_counter() - t)
    return statistics.median(times)


class Instrument:
    """Wraps mailer functions with timers (for extra runs only, never the timed ones)."""

    def __init__(self) -> None:
        self.times: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.undo: list[tuple[object, str, object]] = []

    def wrap(self, owner: object, name: str, label: str) -> None:
        original = getattr(owner, name)
        times = self.times

        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                key = (threading.current_thread().name, label)
                times[key].append(time.perf_counter() - t)

        setattr(owner, name, timed)
        self.undo.append((owner, name, original))

    def restore(self) -> None:
        for owner, name, original in reversed(self.undo):
            setattr(owner, name, original)


def breakdown(c: Campaign, db: Path, copies: bool) -> list[str]:
    ins = Instrument()
    for name, label in (
        ("create_thread", "store.create_thread (no fsync)"),
        ("message", "store.message (read the row back)"),
        ("mark_submitting", "store.mark_submitting (no fsync)"),
        ("mark_final_dot", "store.mark_final_dot (fsync)"),
        ("mark_sent", "store.mark_sent (no fsync)"),
        ("record_sent_copy", "store.record_sent_copy (no fsync)"),
        ("campaign_threads", "store.campaign_threads (entry_state)"),
    ):
        ins.wrap(Store, name, label)
    ins.wrap(SmtpSession, "_transaction", "SMTP MAIL, RCPT, DATA, dot")
    ins.wrap(SmtpSession, "connect", "SMTP connect + STARTTLS + AUTH")
    ins.wrap(SmtpSession, "close", "SMTP QUIT")
    ins.wrap(Mailbox, "connect", "IMAP connect + login")
    ins.wrap(Mailbox, "sent_folder", "IMAP find the Sent folder")
    ins.wrap(Mailbox, "append_sent", "IMAP append_sent (incl. finding Sent)")
    ins.wrap(sending, "due_after", "sending.due_after")
    try:
        total, loop = mailer_run(c, db, expect_copies=copies)
    finally:
        ins.restore()
    n = len(c.entries)
    lines = [
        f"instrumented run, Sent copy {'on' if copies else 'off'} (not in the table): total "
        f"{total:.3f} s = send loop {loop:.3f} s + after the loop {total - loop:.3f} s; "
        f"per message of {n}:",
        "| thread | step | ms/msg | calls | median ms/call | p95 ms/call |",
        "|---|---|---:|---:|---:|---:|",
    ]
    main_sum = 0.0
    nested = ("IMAP find the Sent folder",)  # inside append_sent
    for (thread, label), ts in sorted(ins.times.items(), key=lambda kv: (kv[0][0], -sum(kv[1]))):
        s = sum(ts)
        if thread == "MainThread" and label not in nested:
            main_sum += s
        q = sorted(ts)
        lines.append(
            f"| {thread} | {label} | {1000 * s / n:.3f} | {len(ts)} | "
            f"{1000 * statistics.median(q):.3f} | {1000 * q[int(0.95 * (len(q) - 1))]:.3f} |"
        )
    lines.append(
        f"| MainThread | rest of the send loop (runner, pacing, progress) | "
        f"{1000 * (loop - main_sum) / n:.3f} | | | |"
    )
    return lines


# --- one link -------------------------------------------------------------------------------


def bench_link(info: StackInfo, args, link: str) -> None:
    proxy = None
    ws = None
    try:
        if link == "delayed":
            proxy, (smtp_port, imaps_port) = start_proxy(
                [(info.host, info.smtp_port), (info.host, info.imaps_port)], args.delay_ms
            )
            link_info = replace(info, smtp_port=smtp_port, imaps_port=imaps_port)
        else:
            link_info = info
        repeats = args.repeats or (3 if link == "loopback" else 1)
        ws = bench_workspace(link_info, SENDER)
        settings = load_settings(ws / "config" / "mailer.toml", need_secrets=True)
        path = ws / "config" / "campaigns" / "bench.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(campaign_toml(args.entries, interviewers(args.interviewers)))

        t = time.perf_counter()
        campaign = load_campaign(path, settings, NOW)
        load_s = time.perf_counter() - t
        if campaign.problems or len(campaign.entries) != args.entries:
            raise SystemExit(f"campaign problems: {campaign.problems[:5]}")
        no_copy = without_sent_copy(campaign)
        msgs = [
            (e.settings.sender.address, e.prepared.composed.recipients, e.prepared.composed.raw)
            for e in campaign.entries
        ]
        size = statistics.median(len(m[2]) for m in msgs)
        host, port = link_info.host, link_info.smtp_port
        ctx = ssl.create_default_context(cafile=info.ca_file)
        rtt = measure_rtt(host, port, ctx)

        # Warm up: Dovecot's LMTP and IMAP processes, mailer's lazy imports.
        warm = campaign.entries[:20]
        floor_run(host, port, ctx, msgs[:20])
        mailer_run(replace(campaign, entries=warm), ws / "warm.db", True)

        n = args.entries
        print(
            f"\n== link: {link} (SMTP {host}:{port}, IMAPS {host}:{link_info.imaps_port}); "
            f"{n} entries to {args.interviewers} mailbox(es); median message {size:.0f} bytes; "
            f"SMTP NOOP round trip {1000 * rtt:.2f} ms; {repeats} repeat(s)",
            flush=True,
        )
        print(f"load_campaign (read, check, render {n} entries): {load_s:.3f} s", flush=True)
        times: dict[str, list[float]] = defaultdict(list)
        loops: dict[str, list[float]] = defaultdict(list)
        for rep in range(repeats):
            order = PATHS[rep % len(PATHS) :] + PATHS[: rep % len(PATHS)]
            for label in order:
                empty_mailboxes(info)
                if label == FLOOR:
                    s = floor_run(host, port, ctx, msgs)
                elif label == PER_CONN:
                    s = per_conn_run(host, port, ctx, msgs)
                else:
                    copies = label == MAILER
                    db = ws / f"state-{rep}-{'copy' if copies else 'nocopy'}.db"
                    s, loop = mailer_run(campaign if copies else no_copy, db, copies)
                    loops[label].append(loop)
                times[label].append(s)
                print(f"  repeat {rep + 1}: {label}: {s:.3f} s", flush=True)

        base = statistics.median(times[FLOOR])
        print(f"\n| path ({link}, {n} messages, median of {repeats}) | s | ms/msg | ratio |")
        print("|---|---:|---:|---:|")
        for label in PATHS:
            med = statistics.median(times[label])
            print(f"| {label} | {med:.3f} | {1000 * med / n:.2f} | {med / base:.2f}x |")
        for label in (MAILER, MAILER_NS):
            tot, loop = statistics.median(times[label]), statistics.median(loops[label])
            print(
                f"{label}: send loop {loop:.3f} s ({loop / base:.2f}x the floor), "
                f"after the loop (QUIT + joining the Sent copies) {tot - loop:.3f} s"
            )
        print(f"all runs: { {k: [round(v, 3) for v in vs] for k, vs in times.items()} }")
        if args.breakdown:
            for copies in (True, False):
                empty_mailboxes(info)
                db = ws / f"state-breakdown-{copies}.db"
                print()
                for line in breakdown(campaign if copies else no_copy, db, copies):
                    print(line)
        sys.stdout.flush()
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait()
        if ws is not None:
            shutil.rmtree(ws, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entries", type=int, default=1000)
    p.add_argument("--link", choices=("loopback", "delayed", "both"), default="both")
    p.add_argument("--repeats", type=int, default=0, help="default: 3 loopback, 1 delayed")
    p.add_argument("--delay-ms", type=float, default=10.0, help="one-way delay (10 = 20 ms RTT)")
    p.add_argument("--interviewers", type=int, default=4, help="recipient mailboxes")
    p.add_argument("--breakdown", action="store_true", help="one instrumented run per link")
    p.add_argument(
        "--smtp",
        choices=("postfix", "aiosmtpd"),
        default="aiosmtpd",
        help="postfix: a real Postfix in front of the sandbox (bench/postfix.py)",
    )
    args = p.parse_args()
    if args.smtp == "postfix" and not postfix.available():
        p.error(f"--smtp postfix: no Postfix at {postfix.POSTFIX} (Debian's postfix package)")
    users = {SENDER: SENDER_PW}
    users.update({u: "interviewer-pw" for u in interviewers(args.interviewers)})
    stack = MailStack.create(users=users)
    info = stack.start()
    pf = None
    try:
        if args.smtp == "postfix":
            pf = postfix.Postfix(info, postfix.add_sasl_listener(stack))
            info = replace(info, smtp_port=pf.start())
        links = ("loopback", "delayed") if args.link == "both" else (args.link,)
        for link in links:
            bench_link(info, args, link)
    finally:
        if pf is not None:
            pf.stop()
        stack.stop()


if __name__ == "__main__":
    main()
