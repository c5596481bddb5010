"""CPU time and memory of reading hostile messages: the classifier and the watcher's read.

    .venv/bin/python bench/classify_bench.py                 # 3 MB and 50 MB, every shape
    .venv/bin/python bench/classify_bench.py --sizes 3 --reps 5 --shapes report

Each measurement runs in a child process of its own, so one shape's memory does not hide
another's: CPU time is ``time.process_time`` (the best of ``--reps``), memory is the growth
of the child's peak RSS (reset once the message is built) over its RSS then, as a multiple
of the message size. Three paths per message:

- ``baseline``: ``email.message_from_bytes`` (default policy) + ``get_body()``, what any
  reader of the message pays at least;
- ``classify``: ``classify(raw)`` + ``original_message_ids(raw)`` on the whole message, as
  ``mailer classify FILE`` (the target: at most 250 ms up to 3 MB, 1 s at 50 MB);
- ``watcher``: what one new message costs a pass once fetched: the header read on the
  64 KB header fetch, then the classifier on the ``BODY_LIMIT`` prefix, read once.

No network and no servers: the IMAP side of a pass is measured by ``watch_bench.py``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

MB = 1_000_000
OUR_ID = b"<apology-1@sandbox.test>"


# --- shapes ---------------------------------------------------------------------------------


def _head(subject: bytes = b"Undelivered Mail Returned to Sender", extra: bytes = b"") -> bytes:
    return (
        b"From: MAILER-DAEMON@mx.example\r\nTo: you@sandbox.test\r\nSubject: " + subject + b"\r\n"
        b"MIME-Version: 1.0\r\n" + extra
    )


def _dsn(report: bytes, text: bytes = b"This is the mail system.\r\n") -> bytes:
    return (
        _head()
        + b'Content-Type: multipart/report; report-type=delivery-status; boundary="BB"\r\n\r\n'
        b"--BB\r\nContent-Type: text/plain\r\n\r\n" + text + b"\r\n"
        b"--BB\r\nContent-Type: message/delivery-status\r\n\r\n" + report + b"\r\n"
        b"--BB\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: " + OUR_ID + b"\r\n"
        b"--BB--\r\n"
    )


def _repeat(token: bytes, size: int) -> bytes:
    return token * (size // len(token))


def _blocks(size: int) -> bytes:
    block = (
        b"Final-Recipient: rfc822; gone@company.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
    )
    return b"Reporting-MTA: dns; mx.example\r\n\r\n" + _repeat(block, size)


def _nested(depth: int) -> bytes:
    """``depth`` multiparts, each the only part of the one around it."""
    opens = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(depth)
    )
    closes = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(depth)))
    return _head() + opens + b"Content-Type: text/plain\r\n\r\nuser unknown\r\n" + closes


def _reply_with_attachment(size: int) -> bytes:
    import base64

    data = base64.encodebytes(b"\x00slides" * (size // 11))
    return (
        b"From: Ana <ana@company.example>\r\nTo: you@sandbox.test\r\nSubject: Re: interview\r\n"
        b"In-Reply-To: " + OUR_ID + b"\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="M"\r\n\r\n'
        b"--M\r\nContent-Type: text/plain\r\n\r\nFriday works, slides attached.\r\n"
        b"--M\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + data
        + b"--M--\r\n"
    )


SHAPES: dict[str, Callable[[int], bytes]] = {
    "delivery-status blocks": lambda n: _dsn(_blocks(n)),
    "subject of encoded words": lambda n: _head(_repeat(b"=?utf-8?q?abc?= ", n)) + b"\r\nhi\r\n",
    "'Status: ' in a report": lambda n: _dsn(_repeat(b"Status: ", n)),
    "'Status: ' lines in a report": lambda n: _dsn(_repeat(b"Status: \r\n", n)),
    "'5.1.1 ' in a bounce text": lambda n: _head() + b"\r\n" + _repeat(b"5.1.1 ", n) + b"\r\n",
    "'5.1.1 ' in a report's text": lambda n: _dsn(_blocks(300), _repeat(b"5.1.1 ", n)),
    "'https://' in a bounce text": lambda n: _head() + b"\r\n" + _repeat(b"https://", n),
    "'https://' in a report": lambda n: _dsn(_repeat(b"https://", n)),
    "'Re: ' in the subject": lambda n: _head(_repeat(b"Re: ", n)) + b"\r\nhi\r\n",
    "'Re: ' in a bounce text": lambda n: _head() + b"\r\n" + _repeat(b"Re: ", n) + b"\r\n",
    "header repetitions": lambda n: _head(extra=_repeat(b"Status: 5.1.1\r\n", n)) + b"\r\n",
    "many parts": lambda n: (
        _head()
        + b'Content-Type: multipart/mixed; boundary="BB"\r\n\r\n'
        + _repeat(b"--BB\r\nContent-Type: text/plain\r\n\r\nStatus: 5.1.1\r\n", n)
        + b"--BB--\r\n"
    ),
    "deep nesting (5,000 levels)": lambda n: _nested(5000) + b"\r\n" + b"x" * (n - 300_000),
    "nested parentheses in From": lambda n: (
        b"From: "
        + b"(" * 1000
        + b")" * 1000
        + b" <x@evil.test>\r\nSubject: hi\r\n\r\n"
        + _repeat(b"hello ", n)
    ),
    "reply with an attachment": _reply_with_attachment,
    "out-of-office return-date phrases": lambda n: (
        b"From: rita@company.example\r\nSubject: Out of Office\r\nAuto-Submitted: auto-replied"
        b"\r\n\r\nI am out of the office. " + _repeat(b"back on 5 November 1999, ", n)
    ),
    # Issue 16: the rules added for unseen auto-replies and bounces.
    "folded JSON notification": lambda n: (
        b"From: no-reply@sns.example\r\nSubject: AWS Notification Message\r\n\r\n"
        b'{"notificationType": "Bounce", "bounce": {"x": "' + _repeat(b"x" * 990 + b"!\r\n", n)
    ),
    "away phrases in a fresh message": lambda n: (
        b"From: rita@company.example\r\nSubject: Hello\r\n\r\n"
        + _repeat(b"I am out of the office until 5 June. ", n)
    ),
    "phrases broken across lines": lambda n: (
        _head(b"Notice") + b"\r\n" + _repeat(b"add\r\nyourself\r\nto my\r\n", n)
    ),
}


# --- the measured paths -----------------------------------------------------------------------


def _baseline(raw: bytes) -> None:
    import email
    from email.policy import default

    email.message_from_bytes(raw, policy=default).get_body()


def _classify(raw: bytes) -> None:
    from mailer.model.classify import classify, original_message_ids

    classify(raw)
    original_message_ids(raw)


def _watcher(raw: bytes) -> None:
    from email.parser import BytesHeaderParser
    from email.policy import compat32

    from mailer.adapters.mailbox import BODY_LIMIT
    from mailer.model.classify import (
        classify_message,
        original_message_ids,
        read_message,
        reported_recipients,
    )
    from mailer.model.matching import Incoming

    # The header fetch: six fields, at most 64 KB of them (here: the header's first 64 KB).
    end = raw.find(b"\r\n\r\n")
    Incoming.from_headers(
        BytesHeaderParser(policy=compat32).parsebytes(raw[: min(end, 65_536)]),
        datetime.now(UTC),
    )
    msg = read_message(raw[:BODY_LIMIT])
    classify_message(msg)
    original_message_ids(msg)
    reported_recipients(msg)


PATHS = {"baseline": _baseline, "classify": _classify, "watcher": _watcher}


def _child(shape: str, size: int, path: str, reps: int) -> None:
    raw = SHAPES[shape](size)
    fn = PATHS[path]
    # Import what the path imports before measuring: startup is not what is measured here.
    try:
        fn(b"From: a@b\r\n\r\nx\r\n")
        fn(b"From: a@b\r\nAuto-Submitted: auto-replied\r\n\r\nout of office, back on 3 May\r\n")
    except ImportError:
        print(json.dumps({"skipped": True}))
        return
    base = _reset_peak()
    best = float("inf")
    spent = 0.0
    for _ in range(reps):
        start = time.process_time()
        try:
            fn(raw)
        except Exception as exc:  # the stdlib parser on 5,000 nested parts: RecursionError
            print(json.dumps({"error": type(exc).__name__}))
            return
        took = time.process_time() - start
        best, spent = min(best, took), spent + took
        if spent > 20:  # a slow baseline: one or two runs say enough
            break
    print(json.dumps({"cpu": best, "rss": _status_kb("VmHWM") * 1024 - base, "bytes": len(raw)}))


def _reset_peak() -> int:
    """Reset the peak RSS (Linux: clear_refs 5), so building the message does not hide what
    reading it costs; returns the RSS now, in bytes."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_kb("VmRSS") * 1024


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _measure(shape: str, size: int, path: str, reps: int, timeout: float) -> dict[str, Any]:
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", shape, str(size), path, str(reps)],
            capture_output=True,
            text=True,
            check=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:  # the stdlib parser on a million parts
        return {"error": f"> {timeout:g} s"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="3,50", help="message sizes in MB (default 3,50)")
    ap.add_argument("--reps", type=int, default=3, help="timed runs per path (best is kept)")
    ap.add_argument("--shapes", default="", help="only shapes whose name contains this")
    ap.add_argument("--paths", default="baseline,classify,watcher")
    ap.add_argument("--timeout", type=float, default=120, help="seconds per measurement")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        shape, size, path, reps = args.child
        _child(shape, int(size), path, int(reps))
        return
    paths = args.paths.split(",")
    print("| shape | size | " + " | ".join(f"{p}: CPU ms, memory/size" for p in paths) + " |")
    print("|---|---:|" + "---:|" * len(paths))
    worst: dict[tuple[str, int], float] = {}
    for size_mb in (float(s) for s in args.sizes.split(",")):
        size = int(size_mb * MB)
        for shape in SHAPES:
            if args.shapes and args.shapes not in shape:
                continue
            cells = []
            for path in paths:
                got = _measure(shape, size, path, args.reps, args.timeout)
                if got.get("skipped") or got.get("error"):
                    cells.append(got.get("error", "n/a"))
                    continue
                ms = got["cpu"] * 1000
                worst[(path, size)] = max(worst.get((path, size), 0.0), ms)
                cells.append(f"{ms:,.1f}, {got['rss'] / got['bytes']:.2f}x")
            print(f"| {shape} | {size_mb:g} MB | " + " | ".join(cells) + " |", flush=True)
    print()
    for (path, size), ms in sorted(worst.items()):
        print(f"worst {path} at {size / MB:g} MB: {ms:,.1f} ms CPU")


if __name__ == "__main__":
    main()
