"""Benchmarks for the watcher, against the real sandbox stack (Dovecot + aiosmtpd on 127.0.0.1).

1. Reply latency: SMTP server accepts a reply -> the thread is marked replied, with
   `mailer daemon` in IDLE. Median of N replies. Baseline in the same run: a bare imapclient
   IDLE on the same INBOX (the time from acceptance to Dovecot's EXISTS push).
2. Watch-pass cost: one scan with 10 new messages on an INBOX of 1,000 and of 100,000
   messages. Baseline: a bare imapclient STATUS plus a header fetch of just those 10 UIDs, on
   an open connection like ours.

Usage: .venv/bin/python bench/watch_bench.py [--replies 20] [--sizes 1000,100000]
"""

from __future__ import annotations

import argparse
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
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from zoneinfo import ZoneInfo

from common import bench_workspace
from imapclient import IMAPClient

from mailer import apology
from mailer.config import load_settings
from mailer.facts import make_facts
from mailer.mailbox import Mailbox
from mailer.sandbox import MailStack, StackInfo
from mailer.sender import SmtpSession
from mailer.store import Store
from mailer.watcher import scan

ME = "cand@sandbox.test"
THEM = "intv@sandbox.test"
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


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
                interview="2026-11-25 10:00",
                tz=ZoneInfo("UTC"),
                allow_test_domains=True,
            )
            p = apology.prepare(settings, facts, NOW)
            roots.append(apology.send(settings, p, store, lambda: NOW, session=session))
    env = {**os.environ, "MAILER_NOW": (NOW + timedelta(minutes=1)).isoformat()}
    log = (ws / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailer.cli", "daemon"],
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


def fill_inbox(stack: MailStack, user: str, count: int) -> None:
    """Write a Maildir of ``count`` messages and bulk-import it with doveadm: far faster than
    delivering 100,000 messages one by one."""
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


def pass_cost(stack: MailStack, size: int, reps: int = 15) -> tuple[float, float]:
    info = stack.info
    user = f"big{size}@sandbox.test"
    stack.add_user(user, "pw")
    fill_inbox(stack, user, size)
    ws = workspace(info)
    cfg = ws / "config" / "mailer.toml"
    cfg.write_text(cfg.read_text().replace(ME, user))
    (ws / ".env").write_text("MAILER_SMTP_PASSWORD=pw\n")
    settings = load_settings(cfg, need_secrets=True)
    store = Store(settings.state_url)
    ctx = ssl.create_default_context(cafile=info.ca_file)
    ours, bare = [], []
    with (
        Mailbox(settings.imap) as box,
        IMAPClient(info.host, port=info.imaps_port, ssl=True, ssl_context=ctx, timeout=120) as c,
    ):
        c.login(user, "pw")
        box.select("INBOX")  # Dovecot indexes the folder here, once; not part of a pass
        scan(settings, store, box, lambda: NOW)  # records UIDVALIDITY and the last UID
        for rep in range(reps):
            for i in range(10):
                reply_to(info, user, f"new {rep}.{i}")
            before = store.folder_state("INBOX")
            t = time.perf_counter()
            scan(settings, store, box, lambda: NOW)
            ours.append(time.perf_counter() - t)
            after = store.folder_state("INBOX")
            # The pass must really have read the 10 new messages, not answered from a stale view.
            assert before and after and after[1] - before[1] == 10, (before, after)
            t = time.perf_counter()
            status = c.folder_status("INBOX", [b"UIDNEXT", b"UIDVALIDITY"])
            c.select_folder("INBOX", readonly=True)
            uidnext = status[b"UIDNEXT"]
            c.fetch(
                list(range(uidnext - 10, uidnext)),
                [b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID IN-REPLY-TO REFERENCES FROM SUBJECT)]"],
            )
            bare.append(time.perf_counter() - t)
    return statistics.median(ours), statistics.median(bare)


def reply_to(info: StackInfo, user: str, subject: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = THEM, user, subject
    msg["Message-ID"] = make_msgid(domain="sandbox.test")
    msg.set_content("x")
    with smtplib.LMTP(info.host, info.lmtp_port, timeout=10) as lmtp:
        lmtp.sendmail(THEM, [user], msg.as_bytes())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--replies", type=int, default=20)
    ap.add_argument("--sizes", default="1000,100000")
    args = ap.parse_args()
    stack = MailStack.create(users={ME: "bench-1", THEM: "bench-2"})
    stack.start()
    try:
        bare = bare_idle_latency(stack.info, args.replies)
        ours = daemon_latency(stack.info, args.replies)
        mb, mo = statistics.median(bare), statistics.median(ours)
        print(f"Reply latency, median of {args.replies} (server accepted -> recorded):")
        print(f"  bare imapclient IDLE push   {mb * 1000:8.1f} ms")
        print(f"  mailer daemon (IDLE)        {mo * 1000:8.1f} ms   ({mo / mb:.2f}x the bare push)")
        print(f"  mailer daemon max           {max(ours) * 1000:8.1f} ms")
        print("\nWatch pass with 10 new messages (median of 15):")
        results = {}
        for size in (int(s) for s in args.sizes.split(",")):
            t = time.perf_counter()
            ours_t, bare_t = pass_cost(stack, size)
            results[size] = ours_t
            print(
                f"  INBOX of {size:>7,}: mailer scan {ours_t * 1000:7.1f} ms, bare STATUS+fetch "
                f"{bare_t * 1000:6.1f} ms ({ours_t / bare_t:.2f}x); setup {time.perf_counter() - t:.0f} s"
            )
        sizes = sorted(results)
        if len(sizes) > 1:
            print(
                f"  flatness: {sizes[-1]:,} vs {sizes[0]:,}: {results[sizes[-1]] / results[sizes[0]]:.2f}x"
            )
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
