"""Anchor for `campaign run`'s floor: raw smtplib on ONE connection, as smtplib_send.py, plus
the least bookkeeping that keeps a message from going twice, through sqlite3 alone: a row
recorded before MAIL FROM, a mark made durable (an fsync'd commit) when all of the message
but its final dot has gone, and the 250 recorded after it. The issue allows one durable commit
a message, and this is it: without it, a machine that loses power just after the dot forgets
the message went, and sends it again.

What mailer does beyond this is left out: the check of each entry before anything is sent,
PIPELINING, the Sent copy, the store's own checks. The gap between this and smtplib_send.py
is what that one fsync costs on this disk; the gap between mailer and this is mailer's own.

Usage: smtplib_durable.py HOST PORT USER PASSWORD CAFILE N DATABASE
(DATABASE is made anew; put it on the disk mailer's store is on.)
"""

import smtplib
import socket
import sqlite3
import ssl
import sys
from pathlib import Path

from smtplib_send import message  # (this folder is on the path: the script's own)


def main() -> None:
    host, port, user, password, ca, n, path = sys.argv[1:8]
    for suffix in ("", "-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE m (id INTEGER PRIMARY KEY, state TEXT, raw BLOB, reply TEXT)")

    def commit(sql: str, args: tuple, durable: bool) -> None:
        db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        db.execute("BEGIN IMMEDIATE")
        db.execute(sql, args)
        db.execute("COMMIT")

    ctx = ssl.create_default_context(cafile=ca)
    with smtplib.SMTP(host, int(port)) as s:
        s.starttls(context=ctx)
        s.login(user, password)
        # The dot goes in a write of its own, after the mark: without this it would wait
        # for the server's delayed ACK of the text before it (about 40 ms a message).
        s.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(int(n)):
            to, msg = message(i, user)  # the very messages smtplib_send.py sends
            commit("INSERT INTO m (id, state, raw) VALUES (?, 'submitting', ?)", (i, msg), False)
            for code, _ in (s.mail(user), s.rcpt(to)):
                if code != 250:
                    raise SystemExit(f"refused: {code}")
            code, _ = s.docmd("DATA")
            if code != 354:
                raise SystemExit(f"DATA refused: {code}")
            s.send(msg)  # (no line starts with a dot: nothing to stuff)
            commit("UPDATE m SET state = 'final-dot' WHERE id = ?", (i,), True)
            s.send(b".\r\n")
            code, reply = s.getreply()
            if code != 250:
                raise SystemExit(f"message refused: {code}")
            commit(
                "UPDATE m SET state = 'sent', reply = ? WHERE id = ?", (reply.decode(), i), False
            )


if __name__ == "__main__":
    main()
