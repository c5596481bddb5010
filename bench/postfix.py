"""A real Postfix in a private directory, for the benchmarks (recipe: ../shared/NOTES.md,
"Running Dovecot and Postfix privately").

It listens on 127.0.0.1 on a free port, offers STARTTLS (the sandbox's certificate) and
AUTH through the sandbox Dovecot's SASL socket (the same users and passwords), and offers
PIPELINING (Postfix's default). Accepted mail is discarded (``default_transport =
discard``): the benchmarks time the submission, not the delivery, and a delivery agent
running beside the timed process would only add noise to two shared cores.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from mailer.sandbox.stack import MailStack, StackInfo, free_ports

POSTFIX = "/usr/sbin/postfix"


def available() -> bool:
    return Path(POSTFIX).exists()


def add_sasl_listener(stack: MailStack) -> str:
    """Give the sandbox Dovecot an auth-client socket Postfix can use, and restart it."""
    d = Path(stack.info.dir)
    sock = d / "run" / "pf-auth"
    conf = d / "dovecot.conf"
    text = conf.read_text()
    if "pf-auth" not in text:
        conf.write_text(
            text + f"service auth {{\n  unix_listener {sock} {{\n    mode = 0666\n  }}\n}}\n"
        )
        stack.restart_dovecot()
    for _ in range(100):
        if sock.exists():
            break
        time.sleep(0.05)
    return str(sock)


class Postfix:
    def __init__(self, info: StackInfo, sasl_path: str) -> None:
        self.dir = Path(info.dir) / "pf"
        self.port = free_ports(1)[0]
        self.info = info
        self.sasl_path = sasl_path

    def start(self) -> int:
        d = self.dir
        conf, queue, data = d / "conf", d / "queue", d / "data"
        for sub in (conf, queue, data):
            sub.mkdir(parents=True, exist_ok=True)
        shutil.chown(data, "postfix", "postfix")
        sd = Path(self.info.dir)
        (conf / "main.cf").write_text(
            f"""compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
maillog_file = {d}/postfix.log
maillog_file_prefixes = {d}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench-postfix.sandbox.test
mydestination =
mynetworks = 127.0.0.2/32
local_header_rewrite_clients =
smtpd_tls_security_level = may
smtpd_tls_cert_file = {sd}/cert.pem
smtpd_tls_key_file = {sd}/key.pem
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = {self.sasl_path}
smtpd_tls_auth_only = yes
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
default_transport = discard
relay_transport = discard
local_transport = discard
message_size_limit = 20000000
"""
        )
        master = Path("/usr/share/postfix/master.cf.dist").read_text().splitlines()
        out = []
        for line in master:
            f = line.split()
            if f and not line.startswith((" ", "#")) and len(f) >= 8:
                if f[0] == "smtp" and f[1] == "inet":
                    f[0] = f"127.0.0.1:{self.port}"
                if f[1] == "inet" and f[0] != f"127.0.0.1:{self.port}":
                    continue
                f[4] = "n"  # no chroot: the SASL socket and certs live outside the queue
                line = "  ".join(f)
            out.append(line)
        (conf / "master.cf").write_text("\n".join(out) + "\n")
        # Postfix re-reads a config younger than a second (a ~2 s start delay): age it.
        old = time.time() - 10
        for f in conf.iterdir():
            os.utime(f, (old, old))
        env = {**os.environ, "MAIL_CONFIG": str(conf)}
        subprocess.run(
            [POSTFIX, "-c", str(conf), "start"],
            check=True,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self.port
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"postfix did not listen on {self.port}; see {d}/postfix.log")

    def stop(self) -> None:
        subprocess.run(
            [POSTFIX, "-c", str(self.dir / "conf"), "stop"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
