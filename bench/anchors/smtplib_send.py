"""Anchor for `campaign run`: raw smtplib on ONE connection (STARTTLS with the CA verified,
AUTH once), then one sendmail per message of similar size, built with an f-string.

Usage: smtplib_send.py HOST PORT USER PASSWORD CAFILE N
"""

import smtplib
import ssl
import sys

BODY = "I am sorry I missed our interview. " * 20


def message(i: int, user: str) -> tuple[str, bytes]:
    """The ``i``th message, built with an f-string: its recipient and bytes."""
    to = f"interviewer{i % 4 + 1}@sandbox.test"
    return to, (
        f"From: Sam Sandbox <{user}>\r\nTo: {to}\r\n"
        f"Subject: Missed interview at Bench Co {i:05d}\r\n"
        f"Message-ID: <anchor-{i}@sandbox.test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{BODY}\r\n"
    ).encode()


def main() -> None:
    host, port, user, password, ca, n = sys.argv[1:7]
    ctx = ssl.create_default_context(cafile=ca)
    with smtplib.SMTP(host, int(port)) as s:
        s.starttls(context=ctx)
        s.login(user, password)
        for i in range(int(n)):
            to, msg = message(i, user)
            s.sendmail(user, [to], msg)


if __name__ == "__main__":
    main()
