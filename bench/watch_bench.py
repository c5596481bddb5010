"""Benchmarks for the watcher, against the real sandbox stack (Dovecot + aiosmtpd on 127.0.0.1).

1. Reply latency: SMTP server accepts a reply -> the thread is marked replied, with
   `mailer daemon` in IDLE. Median of N replies. Baseline in the same run: a bare imapclient
   IDLE on the same INBOX (the time from acceptance to Dovecot's EXISTS push).
2. Watch-pass cost: one scan with 10 new messages on an INBOX of 1,000 and of 100,000
   messages. Baseline: a bare imapclient STATUS, SELECT and header fetch of just those 10
   UIDs, on an open connection like ours. The two sizes take turns round by round, and so do
   mailer and the baseline within a round.

Usage: .venv/bin/python bench/watch_bench.py [--replies 20] [--sizes 1000,100000] [--reps 15]
       [--recent]
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import smtplib
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from zoneinfo import ZoneInfo

from common import bench_workspace, interview_of
from imapclient import IMAPClient

from mailer.adapters.config import load_settings
from mailer.adapters.mailbox import Mailbox
from mailer.adapters.sender import SmtpSession
from mailer.adapters.store import Store
from mailer.model import apology
from mailer.model.facts import make_facts
from mailer.sandbox.stack import MailStack, StackInfo
from mailer.services import sending
from mailer.services.incoming import scan

ME = "cand@sandbox.test"
THEM = "intv@sandbox.test"
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


# Each apology's interview time: a time each, or the store refuses it as a duplicate.
_TIMES = itertools.count()


def workspace(info: StackInfo) -> Path:
    return bench_workspace(
        info,
        ME,
        """
[follow_up]
wait = "1 week"
window = "always"

[watch]
poll_interval = "1h"
""",
    )


def reply(info: StackInfo, in_reply_to: str | None, subject: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = THEM, ME, subject
    msg["Message-ID"] = make_msgid(domain="sandbox.test")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    msg.set_content("Thanks, Thursday works.")
    with smtplib.SMTP(info.host, info.smtp_port, timeout=10) as s:
        s.starttls(context=ssl.create_default_context(cafile=info.ca_file))
        s.login(THEM, info.users[THEM])
        s.send_message(msg)  # returns once the server has accepted (and delivered) it


def bare_idle_latency(info: StackInfo, n: int) -> list[float]:
    ctx = ssl.create_default_context(cafile=info.ca_file)
    out = []
    with IMAPClient(info.host, port=info.imaps_port, ssl=True, ssl_context=ctx, timeout=30) as c:
        c.login(ME, info.users[ME])
        c.select_folder("INBOX", readonly=True)
        for i in range(n):
            c.idle()
            reply(info, None, f"bare {i}")
            t0 = time.perf_counter()
            while True:
                responses = c.idle_check(timeout=5)
                if any(len(r) > 1 and r[1] == b"EXISTS" for r in responses):
                    break
            out.append(time.perf_counter() - t0)
            c.idle_done()
    return out


def daemon_latency(info: StackInfo, n: int) -> list[float]:
    ws = workspace(info)
    settings = load_settings(ws / "config" / "mailer.toml", need_secrets=True)
    store = Store(settings.state_url)
    roots = []
    with SmtpSession(settings.smtp) as session:
        for i in range(n):
            facts = make_facts(
                situation="illness",
                to=THEM,
                interviewer="Ana",
                company=f"L{i}",
                role="R",
                interview=interview_of(next(_TIMES)),  # (one interview per time)
                tz=ZoneInfo("UTC"),
                allow_test_domains=True,
            )
            p = apology.prepare(settings, facts, NOW)
            roots.append(sending.send(settings, p, store, lambda: NOW, session=session))
    env = {**os.environ, "MAILER_NOW": (NOW + timedelta(minutes=1)).isoformat()}
    log = (ws / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailer.cli.main", "daemon"],
        cwd=ws,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    db = settings.state_url[len("sqlite:///") :]
    try:
        deadline = time.monotonic() + 30
        while b"watching INBOX with IDLE" not in (ws / "daemon.log").read_bytes():
            if time.monotonic() > deadline:
                raise SystemExit("daemon did not start IDLE:\n" + (ws / "daemon.log").read_text())
            time.sleep(0.05)
        time.sleep(1.0)  # let the start-up pass finish so it does not overlap the first reply
        out = []
        for r in roots:
            reply(info, r.message_id, f"Re: {r.thread_id}")
            t0 = time.perf_counter()
            while True:
                with sqlite3.connect(db) as con:
                    state = con.execute(
                        "SELECT state FROM threads WHERE id = ?", (r.thread_id,)
                    ).fetchone()[0]
                if state == "replied":
                    break
                if time.perf_counter() - t0 > 20:
                    raise SystemExit(f"thread {r.thread_id} never marked replied")
                time.sleep(0.005)
            out.append(time.perf_counter() - t0)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return out


def fill_inbox(stack: MailStack, user: str, count: int, recent: bool = False) -> None:
    """Write a Maildir of ``count`` messages and bulk-import it with doveadm: far faster than
    delivering 100,000 messages one by one.

    Imported messages are all \\Recent until some session opens the folder read-write, as
    any mail client does; a real INBOX holds only what came since. Dovecot walks every
    \\Recent message each time a session's view takes in new mail (NOOP, SELECT, STATUS),
    so a never-opened INBOX of 100,000 makes every pass pay for 100,000: one read-write
    SELECT takes them, unless ``recent`` (the --recent option, to measure that case)."""
    src = Path(tempfile.mkdtemp(prefix="fill-", dir="/tmp"))
    for sub in ("new", "cur", "tmp"):
        (src / sub).mkdir()
    stamp = int(time.time())
    for i in range(count):
        (src / "cur" / f"{stamp}.bench{i}.sandbox:2,S").write_bytes(
            f"From: someone{i % 97}@example.com\r\nTo: {user}\r\nSubject: newsletter {i}\r\n"
            f"Message-ID: <fill{i}@example.com>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n"
            f"Body {i}\r\n".encode()
        )
    subprocess.run(["chown", "-R", "65534:65534", str(src)], check=True)
    stack.import_maildir(user, src)
    subprocess.run(["rm", "-rf", str(src)], check=True)
    if not recent:
        info = stack.info
        ctx = ssl.create_default_context(cafile=info.ca_file)
        with IMAPClient(
            info.host, port=info.imaps_port, ssl=True, ssl_context=ctx, timeout=120
        ) as c:
            c.login(user, info.users[user])
            c.select_folder("INBOX")  # read-write, like a mail client: takes the \Recent flags


class PassCost:
    """One INBOX of ``size`` messages, our kept connection and a bare one, ready for rounds."""

    def __init__(self, stack: MailStack, size: int, recent: bool, exits: ExitStack) -> None:
        info = self.info = stack.info
        self.user = f"big{size}@sandbox.test"
        stack.add_user(self.user, "pw")
        fill_inbox(stack, self.user, size, recent)
        ws = workspace(info)
        cfg = ws / "config" / "mailer.toml"
        cfg.write_text(cfg.read_text().replace(ME, self.user))
        (ws / ".env").write_text("MAILER_SMTP_PASSWORD=pw\n")
        self.settings = load_settings(cfg, need_secrets=True)
        self.store = Store(self.settings.state_url)
        ctx = ssl.create_default_context(cafile=info.ca_file)
        self.box = exits.enter_context(Mailbox(self.settings.imap))
        self.c = exits.enter_context(
            IMAPClient(info.host, port=info.imaps_port, ssl=True, ssl_context=ctx, timeout=120)
        )
        self.c.login(self.user, "pw")
        self.box.select("INBOX")  # Dovecot indexes the folder here, once; not part of a pass
        scan(self.settings, self.store, self.box, lambda: NOW)  # records the last UID
        self.ours: list[float] = []
        self.bare: list[float] = []

    def round(self, rep: int) -> None:
        for i in range(10):
            reply_to(self.info, self.user, f"new {rep}.{i}")
        # Whichever side reads the 10 new messages second finds them in Dovecot's cache, and
        # the first runs right after the deliveries: take turns.
        if rep % 2:
            self.bare.append(bare_pass(self.c, f"new {rep}."))
        before = self.store.folder_state("INBOX")
        t = time.perf_counter()
        scan(self.settings, self.store, self.box, lambda: NOW)
        self.ours.append(time.perf_counter() - t)
        after = self.store.folder_state("INBOX")
        # The pass must really have read the 10 new messages, not answered from a stale view.
        assert before and after and after[1] - before[1] == 10, (before, after)
        if not rep % 2:
            self.bare.append(bare_pass(self.c, f"new {rep}."))


def bare_pass(c: IMAPClient, subject: str) -> float:
    """The baseline: STATUS, SELECT and a header fetch of the 10 newest UIDs, timed. Checks
    that it read this round's messages (their subjects start with ``subject``)."""
    t = time.perf_counter()
    c.folder_status("INBOX", [b"UIDNEXT", b"UIDVALIDITY"])
    # On the folder it has selected, Dovecot answers STATUS from the session's old view (the
    # previous round's UIDNEXT): take UIDNEXT from the SELECT, which is current.
    uidnext = c.select_folder("INBOX", readonly=True)[b"UIDNEXT"]
    got = c.fetch(
        list(range(uidnext - 10, uidnext)),
        [b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID IN-REPLY-TO REFERENCES FROM SUBJECT)]"],
    )
    elapsed = time.perf_counter() - t
    headers = [v for item in got.values() for k, v in item.items() if k.startswith(b"BODY")]
    mark = f"Subject: {subject}".encode()
    assert len(headers) == 10 and all(mark in h for h in headers), got
    return elapsed


def reply_to(info: StackInfo, user: str, subject: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = THEM, user, subject
    msg["Message-ID"] = make_msgid(domain="sandbox.test")
    msg.set_content("x")
    with smtplib.LMTP(info.host, info.lmtp_port, timeout=10) as lmtp:
        lmtp.sendmail(THEM, [user], msg.as_bytes())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--replies", type=int, default=20, help="0 skips the latency measure")
    ap.add_argument("--sizes", default="1000,100000")
    ap.add_argument("--reps", type=int, default=15, help="timed passes per INBOX size")
    ap.add_argument(
        "--recent",
        action="store_true",
        help="leave the filled INBOX all \\Recent (never opened read-write by a client)",
    )
    args = ap.parse_args()
    stack = MailStack.create(users={ME: "bench-1", THEM: "bench-2"})
    stack.start()
    try:
        if args.replies > 0:
            idle = bare_idle_latency(stack.info, args.replies)
            daemon = daemon_latency(stack.info, args.replies)
            mb, mo = statistics.median(idle), statistics.median(daemon)
            print(f"Reply latency, median of {args.replies} (server accepted -> recorded):")
            print(f"  bare imapclient IDLE push   {mb * 1000:8.1f} ms")
            print(
                f"  mailer daemon (IDLE)        {mo * 1000:8.1f} ms   ({mo / mb:.2f}x the bare push)"
            )
            print(f"  mailer daemon max           {max(daemon) * 1000:8.1f} ms\n")
        print(f"Watch pass with 10 new messages (median of {args.reps}):")
        sizes = [int(s) for s in args.sizes.split(",")]
        with ExitStack() as exits:
            benches = {}
            for size in sizes:
                t = time.perf_counter()
                benches[size] = PassCost(stack, size, args.recent, exits)
                print(f"  INBOX of {size:>7,} ready in {time.perf_counter() - t:.0f} s")
            # The sizes take turns, round by round, so that a slow spell of the machine
            # weighs on both alike instead of on whichever size ran during it.
            for rep in range(args.reps):
                for bench in benches.values():
                    bench.round(rep)
        ours = {size: statistics.median(b.ours) for size, b in benches.items()}
        bare = {size: statistics.median(b.bare) for size, b in benches.items()}
        for size in sizes:
            print(
                f"  INBOX of {size:>7,}: mailer scan {ours[size] * 1000:6.2f} ms, bare "
                f"STATUS+SELECT+fetch {bare[size] * 1000:5.2f} ms ({ours[size] / bare[size]:.2f}x)"
            )
        if len(sizes) > 1:
            lo, hi = min(sizes), max(sizes)
            print(
                f"  flatness, {hi:,} vs {lo:,}: mailer {ours[hi] / ours[lo]:.2f}x, "
                f"bare {bare[hi] / bare[lo]:.2f}x"
            )
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
