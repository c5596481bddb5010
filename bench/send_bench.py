"""Benchmark: sending N apologies through mailer vs raw smtplib on one connection.

Runs against the real sandbox stack (Dovecot + aiosmtpd, STARTTLS + AUTH on 127.0.0.1), all in
one run so the numbers share the same machine state:

* baseline  raw smtplib, one connection, the same pre-built message bytes
* sender    mailer.adapters.sender.SmtpSession.submit on one connection (no database)
* send      mailer.services.sending.send with a shared session: state-store commits, no Sent copy
* send+sent the same with the IMAP Sent copy (one IMAP login per message, as `mailer send` does)

Usage: .venv/bin/python bench/send_bench.py [N]
"""

from __future__ import annotations

import itertools
import smtplib
import ssl
import statistics
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from common import bench_workspace, interview_of

from mailer.adapters.config import ImapSettings, Settings, load_settings
from mailer.adapters.sender import SmtpSession
from mailer.adapters.store import Store
from mailer.model import apology
from mailer.model.facts import make_facts
from mailer.sandbox.stack import MailStack
from mailer.services import sending

SENDER = "you@sandbox.test"
TO = "interviewer@sandbox.test"
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


# Each apology's interview time: a time each, or the store refuses it as a duplicate.
_TIMES = itertools.count()


def settings_for(info) -> Settings:
    ws = bench_workspace(info, SENDER)
    return load_settings(ws / "config" / "mailer.toml", need_secrets=True)


def prepared(settings: Settings, i: int, tag: str):
    facts = make_facts(
        situation="illness",
        to=TO,
        interviewer="Ana Ruiz",
        company=f"Bench {tag} {i}",
        role="Engineer",
        interview=interview_of(next(_TIMES)),  # (one interview per time)
        tz=ZoneInfo("Europe/London"),
        allow_test_domains=True,
    )
    return apology.prepare(settings, facts, NOW)


def run(n: int) -> None:
    stack = MailStack.create(users={SENDER: "bench-pw", TO: "bench-pw-2"})
    info = stack.start()
    try:
        settings = settings_for(info)
        ws = settings.workspace
        results: dict[str, list[float]] = {}
        for rep in range(3):
            msgs = [prepared(settings, i, f"raw{rep}").composed for i in range(n)]
            ctx = ssl.create_default_context(cafile=info.ca_file)
            t = time.perf_counter()
            with smtplib.SMTP(info.host, info.smtp_port, timeout=30) as s:
                s.starttls(context=ctx)
                s.login(SENDER, "bench-pw")
                for m in msgs:
                    s.sendmail(SENDER, [TO], m.raw)
            results.setdefault("baseline: raw smtplib, 1 connection", []).append(
                time.perf_counter() - t
            )

            msgs = [prepared(settings, i, f"sess{rep}").composed for i in range(n)]
            t = time.perf_counter()
            with SmtpSession(settings.smtp) as session:
                for m in msgs:
                    session.submit(SENDER, (TO,), m.raw)
            results.setdefault("mailer SmtpSession.submit", []).append(time.perf_counter() - t)

            for label, imap in (
                ("mailer sending.send (state store, no Sent copy)", False),
                ("mailer sending.send (+ IMAP Sent copy)", True),
            ):
                s2 = replace(
                    settings,
                    imap=replace(settings.imap, save_sent=imap),
                    state_url=f"sqlite:///{ws}/state-{rep}-{imap}.db",
                )
                assert isinstance(s2.imap, ImapSettings)
                store = Store(s2.state_url)
                preps = [prepared(s2, i, f"{label[:12]}{rep}") for i in range(n)]
                t = time.perf_counter()
                with SmtpSession(s2.smtp) as session:
                    for p in preps:
                        sending.send(s2, p, store, lambda: NOW, session=session)
                results.setdefault(label, []).append(time.perf_counter() - t)
        base = statistics.median(results["baseline: raw smtplib, 1 connection"])
        print(f"{n} messages each, median of 3 runs, STARTTLS + AUTH on 127.0.0.1\n")
        print(f"{'path':<52} {'seconds':>8} {'msg/s':>8} {'vs baseline':>12}")
        for label, times in results.items():
            med = statistics.median(times)
            print(f"{label:<52} {med:>8.3f} {n / med:>8.1f} {med / base:>11.2f}x")
    finally:
        stack.stop()


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
