"""Anchor for `campaign run`: raw smtplib on ONE connection (STARTTLS with the CA verified,
AUTH once), then one sendmail per message of similar size, built with an f-string.

Usage: smtplib_send.py HOST PORT USER PASSWORD CAFILE N
"""

import smtplib
import ssl
import sys


def main() -> None:
    host, port, user, password, ca, n = sys.argv[1:7]
    ctx = ssl.create_default_context(cafile=ca)
    body = "I am sorry I missed our interview. " * 20
    with smtplib.SMTP(host, int(port)) as s:
        s.starttls(context=ctx)
        s.login(user, password)
        for i in range(int(n)):
            to = f"interviewer{i % 4 + 1}@sandbox.test"
            msg = (
                f"From: Sam Sandbox <{user}>\r\nTo: {to}\r\n"
                f"Subject: Missed interview at Bench Co {i:05d}\r\n"
                f"Message-ID: <anchor-{i}@sandbox.test>\r\n"
                "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                f"{body}\r\n"
            )
            s.sendmail(user, [to], msg.encode())


if __name__ == "__main__":
    main()
