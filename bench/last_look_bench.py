"""The last look before follow-ups (session 15): one ``mailer check`` pass that sends K due
follow-ups, with the mailbox's other folders searched for replies right before they go.

Two mailboxes on the sandbox stack's Dovecot, in the same run and taking turns: one with only
the usual folders (INBOX, Sent, Drafts, Junk, Trash) -- the anchor -- and one with F folders
more (a company mailbox with a folder per project, or a job seeker's per-company labels).
Per rep, each gets a fresh workspace and store, K apologies sent by ``mailer campaign run``
(not timed), then the pass that sends their follow-ups is timed as a whole process.

IMAP goes through ``bench/delay_proxy.py`` (default 20 ms RTT, as for a provider's server;
``--delay-ms 0``: straight to Dovecot on loopback); SMTP goes straight to the stack.

Usage: .venv/bin/python bench/last_look_bench.py [--follow-ups 10] [--folders 40] [--reps 3]
       [--delay-ms 10]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import bench_workspace, interview_of
from delay_proxy import start_proxy

from mailer.sandbox.stack import MailStack

ROOT = Path(__file__).resolve().parent.parent
PLAIN, MANY, THEM = "plain@sandbox.test", "many@sandbox.test", "them@sandbox.test"
T0 = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
FOLLOW = '\n[follow_up]\nwait = "60s"\nwindow = "always"\n'


def campaign(k: int) -> str:
    parts = [
        '[campaign]\nname = "look"\n\n[defaults]\nsituation = "illness"\n'
        'note = "I came down with a fever that week and could not attend."\n'
        'free = ["2026-12-07 09:00-12:00"]\ninterviewer = "Ana Ruiz"\nrole = "Engineer"\n'
        'timezone = "Europe/London"\n'
    ]
    for i in range(k):
        parts.append(
            f'\n[[entries]]\nto = "{THEM}"\ncompany = "Look Co {i}"\n'
            f'interview = "{interview_of(i)}"\n'
        )
    return "".join(parts)


def mailer(ws: Path, *args: str, now: datetime) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    started = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "mailer.cli.main", *args],
        cwd=ws,
        env={**env, "MAILER_NOW": now.isoformat()},
        capture_output=True,
        text=True,
        timeout=900,
    )
    took = time.perf_counter() - started
    if r.returncode != 0:
        raise SystemExit(f"mailer {' '.join(args)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return took, r.stdout + r.stderr


def one_pass(info, user: str, k: int, imap_port: int) -> float:
    ws = bench_workspace(info, user, FOLLOW)
    toml = ws / "config" / "mailer.toml"
    toml.write_text(re.sub(r"(\[imap\][^\[]*?port = )\d+", rf"\g<1>{imap_port}", toml.read_text()))
    (ws / "look.toml").write_text(campaign(k))
    mailer(ws, "campaign", "run", "look.toml", "--yes", now=T0)
    took, out = mailer(ws, "check", now=T0 + timedelta(hours=2))
    if f"{k} follow-up(s) sent" not in out:
        raise SystemExit(f"the pass did not send {k} follow-ups:\n{out[-2000:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--follow-ups", type=int, default=10)
    ap.add_argument("--folders", type=int, default=40)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--delay-ms", type=float, default=10.0)
    args = ap.parse_args()
    stack = MailStack.create({PLAIN: "pw-plain", MANY: "pw-many", THEM: "pw-them"})
    info = stack.start()
    proxy = None
    try:
        import ssl

        from imapclient import IMAPClient

        ctx = ssl.create_default_context(cafile=info.ca_file)
        with IMAPClient(info.host, port=info.imaps_port, ssl_context=ctx) as c:
            c.login(MANY, "pw-many")
            for n in range(args.folders):
                c.create_folder(f"Projects/P{n:03d}")
        imap_port = info.imaps_port
        if args.delay_ms:
            proxy, (imap_port,) = start_proxy([(info.host, info.imaps_port)], args.delay_ms)
        times: dict[str, list[float]] = {PLAIN: [], MANY: []}
        for rep in range(args.reps):
            for user in (PLAIN, MANY)[:: 1 if rep % 2 else -1]:
                times[user].append(one_pass(info, user, args.follow_ups, imap_port))
        plain, many = statistics.median(times[PLAIN]), statistics.median(times[MANY])
        link = f"{2 * args.delay_ms:g} ms RTT" if args.delay_ms else "loopback"
        print(
            f"one pass sending {args.follow_ups} follow-ups, IMAP over {link}, "
            f"median of {args.reps}:"
        )
        print(f"  usual folders only:        {plain:7.2f} s")
        print(f"  {args.folders} folders more:          {many:7.2f} s")
        print(
            f"  ratio {many / plain:.2f}x; each extra folder costs "
            f"{1000 * (many - plain) / args.folders:.0f} ms a pass"
        )
    finally:
        if proxy is not None:
            proxy.terminate()
        stack.stop()


if __name__ == "__main__":
    main()
