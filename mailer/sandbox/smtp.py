"""The sandbox's SMTP server: aiosmtpd, delivering into Dovecot over LMTP.

Run as ``python -m mailer.sandbox.smtp CONFIG.json`` by :mod:`mailer.sandbox.stack`. It listens on
three loopback ports: submission with STARTTLS, implicit TLS (SMTPS) and plain (loopback only),
all with AUTH. It never relays: a recipient who is not a sandbox user is refused at RCPT.

For tests, a ``faults.json`` file next to the config can script replies: each key
(``mail``, ``rcpt``, ``data``) holds a list of SMTP replies consumed one per command, and
``"drop_after_data": N`` accepts and delivers the next N messages but closes the connection
instead of answering 250, the way a link dies at the worst moment. ``"ehlo_delay"`` holds
a list of delays (seconds), one per EHLO: a slow server; ``"data_delay"`` likewise, one per
finished message, before its answer (a server slow to answer the final dot). ``"rcpt_reply"`` maps an address to
the reply every RCPT TO for it gets until the faults are cleared (refuse this one recipient).

It offers PIPELINING (RFC 2920): aiosmtpd reads one command line at a time, so a batch of
commands in one write is answered in order. Each accepted message's log line says in how
many reads its envelope arrived (``envelope_reads``: MAIL FROM to DATA), so tests can see
the round trips a client saved.

Every connection, AUTH and accepted message is written as a JSON line to ``smtp.log`` so that
tests can count connections and logins. Passwords are never written.
"""

from __future__ import annotations

import json
import signal
import smtplib
import ssl
import sys
import threading
import time
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, syntax


class _Log:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()

    def write(self, event: str, **fields: Any) -> None:
        line = json.dumps({"t": round(time.time(), 3), "event": event, **fields})
        with self.lock, self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")


class _Faults:
    """Scripted replies for tests, re-read from disk on every command."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()

    def take(self, key: str) -> Any:
        with self.lock:
            if not self.path.exists():
                return None
            try:
                faults = json.loads(self.path.read_text(encoding="utf-8") or "{}")
            except ValueError:
                return None
            value = faults.get(key)
            if isinstance(value, list) and value:
                reply = value.pop(0)
            elif isinstance(value, int) and value > 0:
                reply = value
                faults[key] = value - 1
            else:
                return None
            self.path.write_text(json.dumps(faults), encoding="utf-8")
            return reply

    def peek(self, key: str, name: str) -> Any:
        """``faults[key][name]``, left in place."""
        with self.lock:
            if not self.path.exists():
                return None
            try:
                value = json.loads(self.path.read_text(encoding="utf-8") or "{}").get(key)
            except ValueError:
                return None
            return value.get(name) if isinstance(value, dict) else None


class _Users:
    """The sandbox's mailboxes, read from Dovecot's passwd-file whenever it changes, so that
    tests can add mailboxes to a running stack."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stamp: tuple[int, int] = (-1, -1)
        self.users: dict[str, str] = {}
        self.lock = threading.Lock()

    def _load(self) -> dict[str, str]:
        with self.lock:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self.stamp:
                users = {}
                for line in self.path.read_text(encoding="utf-8").splitlines():
                    user, _, rest = line.partition(":")
                    if user and rest.startswith("{PLAIN}"):
                        users[user.lower()] = rest[len("{PLAIN}") :].split(":", 1)[0]
                self.users, self.stamp = users, stamp
            return self.users

    def get(self, user: str) -> str | None:
        return self._load().get(user.lower())

    def __contains__(self, user: object) -> bool:
        return isinstance(user, str) and user.lower() in self._load()


class _Handler:
    def __init__(
        self,
        users: _Users,
        lmtp: tuple[str, int],
        log: _Log,
        faults: _Faults,
        bounce_domains: tuple[str, ...] = (),
        host: str = "sandbox",
    ) -> None:
        self.users = users
        self.lmtp = lmtp
        self.log = log
        self.faults = faults
        self.bounce_domains = bounce_domains
        self.host = host

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # ``"ehlo_delay": [seconds, ...]`` slows the next EHLOs without blocking the other
        # connections: a slow provider, for tests of races between processes.
        delay = self.faults.take("ehlo_delay")
        if delay:
            import asyncio

            await asyncio.sleep(float(delay))
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        reply = self.faults.take("mail")
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        session.reads_at_mail = getattr(server, "reads", 0)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.faults.take("rcpt") or self.faults.peek("rcpt_reply", address.lower())
        if reply:
            return reply
        if address.lower().rpartition("@")[2] in self.bounce_domains:
            # Accepted now, fails later: the way a relay learns a remote host is gone.
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 OK (will be relayed)"
        if address.lower() not in self.users:
            self.log.write("rcpt-refused", rcpt=address)
            return f"550 5.1.1 <{address}>: Recipient address rejected: not a sandbox mailbox"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        delay = self.faults.take("data_delay")
        if delay:
            import asyncio

            await asyncio.sleep(float(delay))
        reply = self.faults.take("data")
        if reply:
            return reply
        content = envelope.original_content or b""
        local = [
            r for r in envelope.rcpt_tos if r.lower().rpartition("@")[2] not in self.bounce_domains
        ]
        remote = [r for r in envelope.rcpt_tos if r not in local]
        if local:
            with smtplib.LMTP(self.lmtp[0], self.lmtp[1], timeout=30) as lmtp:
                # One recipient per LMTP transaction: LMTP answers DATA once per recipient,
                # and smtplib reads only the first answer (the next command would read the
                # second).
                for rcpt in local:
                    lmtp.sendmail(envelope.mail_from or "", [rcpt], content)
        headers = BytesHeaderParser().parsebytes(content)
        if remote and envelope.mail_from and envelope.mail_from.lower() in self.users:
            self._bounce(envelope.mail_from, remote, content)
        self.log.write(
            "accepted",
            mail_from=envelope.mail_from,
            rcpt=envelope.rcpt_tos,
            message_id=headers.get("Message-ID"),
            size=len(content),
            peer=list(session.peer) if session.peer else None,
            envelope_reads=getattr(server, "envelope_reads", None),
        )
        if self.faults.take("drop_after_data"):
            self.log.write("dropped-after-data", message_id=headers.get("Message-ID"))
            # Close without answering: the client cannot know the message was delivered.
            server.transport.abort()
            return "250 2.0.0 (never seen by the client)"
        return "250 2.0.0 OK: queued"

    def _bounce(self, sender: str, failed: list[str], original: bytes) -> None:
        dsn = _dsn(self.host, sender, failed, original)
        with smtplib.LMTP(self.lmtp[0], self.lmtp[1], timeout=30) as lmtp:
            lmtp.sendmail("", [sender], dsn)
        self.log.write("bounced", rcpt=failed, to=sender)


class _OAuthHandler(_Handler):
    """The same handler, also taking AUTH XOAUTH2 and OAUTHBEARER (RFC 7628), each token
    checked by the sandbox OAuth2 server's introspection endpoint (RFC 7662)."""

    def __init__(self, *args: Any, oauth_url: str, scope: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.oauth_url = oauth_url
        self.scope = scope

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, args, "XOAUTH2")

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, args, "OAUTHBEARER")

    async def _bearer(self, server: SMTP, args: list[str], mechanism: str) -> AuthResult:
        import asyncio
        import base64
        import binascii

        if len(args) > 1:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except binascii.Error:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        else:
            answer = await server.challenge_auth("")
            if not isinstance(answer, bytes):
                return AuthResult(success=False, handled=True)
            blob = answer
        user, token = _parse_bearer(blob.decode("utf-8", "replace"), mechanism)
        scripted = self.faults.take("auth")
        loop = asyncio.get_running_loop()
        why = scripted or await loop.run_in_executor(None, self._refusal, user, token)
        self.log.write("auth", ok=not why, user=user, mechanism=mechanism)
        if not why:
            return AuthResult(
                success=True, handled=False, auth_data=LoginPassword(user.encode(), b"")
            )
        # RFC 7628: the refusal is a challenge first; the client answers it, then gets 535.
        status = "401" if mechanism == "XOAUTH2" else "invalid_token"
        challenge = json.dumps({"status": status, "schemes": "bearer", "scope": self.scope})
        await server.challenge_auth(challenge)
        message = why if scripted else "535 5.7.8 " + why
        return AuthResult(success=False, handled=False, message=message)

    def _refusal(self, user: str, token: str) -> str:
        """Why the token does not sign ``user`` in, or "" when it does."""
        import urllib.parse
        import urllib.request

        if not user or not token:
            return "Authentication credentials invalid"
        data = urllib.parse.urlencode({"token": token}).encode()
        try:
            with urllib.request.urlopen(f"{self.oauth_url}/introspect", data, timeout=10) as r:
                info = json.loads(r.read())
        except (OSError, ValueError):
            return "Authentication temporarily unavailable"
        if info.get("active") is not True:
            return "Authentication credentials invalid"
        if str(info.get("username", "")).lower() != user.lower():
            return "Authentication credentials invalid (the token is for another user)"
        if self.scope not in str(info.get("scope", "")).split():
            return f"Authentication credentials invalid (the token lacks the {self.scope} scope)"
        return ""


def _parse_bearer(text: str, mechanism: str) -> tuple[str, str]:
    """(user, token) from an XOAUTH2 or OAUTHBEARER initial response; ("", "") if malformed."""
    fields = text.split("\x01")
    user, token = "", ""
    if mechanism == "OAUTHBEARER":
        gs2 = fields[0].split(",")
        user = next((f[2:] for f in gs2 if f.startswith("a=")), "")
        fields = fields[1:]
    for f in fields:
        if f.startswith("user="):
            user = f[5:]
        elif f.lower().startswith("auth=bearer "):
            token = f[len("auth=bearer ") :]
    return user, token


def _dsn(host: str, sender: str, failed: list[str], original: bytes) -> bytes:
    """An RFC 3464 delivery status notification, laid out as Postfix writes one."""
    from email.utils import formatdate, make_msgid

    boundary = f"dsn-{make_msgid()[1:-1]}"
    text = (
        f"This is the mail system at host {host}.\r\n\r\n"
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients.\r\n\r\n"
        + "".join(f"<{r}>: Host or domain name not found (550 5.1.2)\r\n" for r in failed)
    )
    status = f"Reporting-MTA: dns; {host}\r\n\r\n" + "\r\n".join(
        f"Final-Recipient: rfc822; {r}\r\nAction: failed\r\nStatus: 5.1.2\r\n"
        "Diagnostic-Code: X-Postfix; Host or domain name not found\r\n"
        for r in failed
    )
    headers_only = original.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    return (
        (
            f"From: Mail Delivery System <MAILER-DAEMON@{host}>\r\n"
            f"To: {sender}\r\n"
            "Subject: Undelivered Mail Returned to Sender\r\n"
            f"Date: {formatdate(localtime=True)}\r\n"
            f"Message-ID: {make_msgid(domain=host)}\r\n"
            "Auto-Submitted: auto-replied\r\n"
            "MIME-Version: 1.0\r\n"
            f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
            "\r\n"
            f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{text}\r\n"
            f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n{status}\r\n"
            f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        ).encode()
        + headers_only
        + f"\r\n--{boundary}--\r\n".encode()
    )


class _LoggingSMTP(SMTP):
    def __init__(self, handler: _Handler, log: _Log, listener: str, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._log = log
        self._listener = listener
        self.reads = 0  # data_received calls: one per chunk of (decrypted) input
        self.envelope_reads: int | None = None

    def data_received(self, data: bytes) -> None:
        self.reads += 1
        super().data_received(data)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        # Counted when the DATA command is read, before the message text arrives.
        mail = getattr(self.session, "reads_at_mail", None)
        self.envelope_reads = None if mail is None else self.reads - mail + 1
        await super().smtp_DATA(arg)

    def connection_made(self, transport: Any) -> None:
        upgraded = getattr(self, "_seen", False)  # called again after STARTTLS
        self._seen = True
        super().connection_made(transport)
        if upgraded:
            return
        peer = transport.get_extra_info("peername")
        self._log.write("connect", listener=self._listener, peer=list(peer) if peer else None)


class _Controller(Controller):
    def __init__(self, handler: _Handler, log: _Log, listener: str, **kwargs: Any) -> None:
        self._log = log
        self._listener = listener
        super().__init__(handler, **kwargs)

    def factory(self) -> SMTP:
        return _LoggingSMTP(self.handler, self._log, self._listener, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        # The base class opens a probe connection to check readiness; with TLS and AUTH in
        # front that probe is noise in the log, so readiness is checked by the parent instead.
        pass


def _authenticator(users: _Users, log: _Log):
    def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            log.write("auth", ok=False, mechanism=mechanism)
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace").lower()
        ok = users.get(login) == auth_data.password.decode("utf-8", "replace")
        log.write("auth", ok=ok, user=login, mechanism=mechanism)
        return AuthResult(success=ok, handled=False)

    return authenticate


def serve(config: dict[str, Any]) -> None:
    """Start the three listeners and block until SIGTERM/SIGINT."""
    root = Path(config["dir"])
    log = _Log(root / "smtp.log")
    users = _Users(root / "users")
    oauth = (
        {"oauth_url": config["oauth_url"], "scope": config.get("oauth_scope", "smtp")}
        if config.get("oauth_url")
        else {}
    )
    handler = (_OAuthHandler if oauth else _Handler)(
        users,
        (config["host"], config["lmtp_port"]),
        log,
        _Faults(root / "faults.json"),
        tuple(config.get("bounce_domains", ())),
        "sandbox.test",
        **oauth,
    )
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(config["cert"], config["key"])
    common: dict[str, Any] = {
        "hostname": config["host"],
        "authenticator": _authenticator(users, log),
        "auth_required": True,
        "ident": "mailer-sandbox ESMTP",
        "data_size_limit": 10 * 1024 * 1024,
    }
    controllers = [
        _Controller(
            handler,
            log,
            "starttls",
            port=config["smtp_port"],
            tls_context=tls,
            require_starttls=True,
            auth_require_tls=True,
            **common,
        ),
        # The connection is TLS from the first byte, which aiosmtpd's auth_require_tls
        # does not recognise (it only knows STARTTLS).
        _Controller(
            handler,
            log,
            "smtps",
            port=config["smtps_port"],
            ssl_context=tls,
            auth_require_tls=False,
            **common,
        ),
        _Controller(
            handler, log, "plain", port=config["smtp_plain_port"], auth_require_tls=False, **common
        ),
    ]
    for c in controllers:
        c.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.write("ready")
    stop.wait()
    for c in controllers:
        c.stop()


def main(argv: list[str]) -> int:
    serve(json.loads(Path(argv[1]).read_text(encoding="utf-8")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
