"""Tiny hostile SMTP and IMAP servers on loopback that echo the credentials they were sent.

A careless or malicious server may repeat the AUTH line, the LOGIN command or the decoded
password in its replies. These servers do all three, in every reply they can: the refusal of
the login, or (``accept=True``) every command after a login they accepted. They speak plain
text (``security = "plain"`` is allowed to a loopback host) and record every argument of the
login, so a test can look for each of them in whatever the tool wrote.
"""

from __future__ import annotations

import base64
import binascii
import re
import socketserver
import threading
from types import TracebackType
from typing import BinaryIO

HOST = "127.0.0.1"


def _decoded(lines: list[bytes]) -> list[bytes]:
    """What the base64 arguments say, as UTF-8 and as Latin-1 bytes (NULs made spaces)."""
    out = []
    for line in lines:
        for token in re.findall(rb"[A-Za-z0-9+/]{4,}={0,2}", line):
            try:
                raw = base64.b64decode(token, validate=True)
            except binascii.Error:
                continue
            text = raw.replace(b"\0", b" ")
            out.append(text)
            latin = text.decode("utf-8", "replace").encode("latin-1", "replace")
            if latin != text:
                out.append(latin)
    return out


class _Server:
    """Serves on a free loopback port in a thread. Use it as a context manager."""

    def __init__(self, accept: bool) -> None:
        self.accept = accept
        # Each argument of a login as the client sent it (base64 lines, quoted passwords).
        self.arguments: list[str] = []
        self.commands: list[bytes] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                outer.converse(self.rfile, self.wfile)

        self.server = socketserver.ThreadingTCPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.shutdown()
        self.server.server_close()

    def record(self, *arguments: bytes) -> None:
        with self.lock:
            self.arguments.extend(a.decode("utf-8", "replace") for a in arguments if a)

    def saw(self, verb: bytes) -> int:
        with self.lock:
            return sum(1 for c in self.commands if c.upper().startswith(verb))

    def converse(self, rfile: BinaryIO, wfile: BinaryIO) -> None:
        raise NotImplementedError


class EchoSmtp(_Server):
    """Offers ``mechanisms``; refuses the login (535) or, with ``accept``, every MAIL FROM
    (550), each time repeating the AUTH lines and what they decode to."""

    def __init__(self, mechanisms: str = "PLAIN LOGIN", accept: bool = False) -> None:
        super().__init__(accept)
        self.mechanisms = mechanisms

    def converse(self, rfile: BinaryIO, wfile: BinaryIO) -> None:
        def reply(code: bytes, *lines: bytes) -> None:
            for i, line in enumerate(lines):
                sep = b" " if i == len(lines) - 1 else b"-"
                wfile.write(code + sep + line + b"\r\n")
            wfile.flush()

        reply(b"220", b"hostile ESMTP")
        echo: list[bytes] = []
        while line := rfile.readline():
            cmd = line.rstrip(b"\r\n")
            with self.lock:
                self.commands.append(cmd)
            verb = cmd.split(b" ", 1)[0].upper()
            if verb == b"EHLO":
                reply(b"250", b"hostile", b"AUTH " + self.mechanisms.encode(), b"8BITMIME")
            elif verb == b"AUTH":
                lines = self._auth(cmd, rfile, reply)
                said = [b"you sent: " + b" / ".join(lines)]
                said += [b"which reads: " + d for d in _decoded(lines)]
                if self.accept:
                    echo = said
                    reply(b"235", b"2.7.0 welcome")
                else:
                    reply(b"535", *[b"5.7.8 " + s for s in said])
            elif verb == b"MAIL" and echo:
                reply(b"550", *[b"5.7.1 " + s for s in echo])
            elif verb in (b"RSET", b"NOOP", b"HELO"):
                reply(b"250", b"OK")
            elif verb == b"QUIT":
                reply(b"221", b"bye")
                return
            else:
                reply(b"530", b"5.7.0 authentication required")

    def _auth(self, cmd: bytes, rfile: BinaryIO, reply) -> list[bytes]:  # type: ignore[no-untyped-def]
        parts = cmd.split()
        lines = [cmd]
        mechanism = parts[1].upper() if len(parts) > 1 else b""
        self.record(*parts[2:])
        prompts = {b"PLAIN": [b""], b"LOGIN": [b"VXNlcm5hbWU6", b"UGFzc3dvcmQ6"]}
        for prompt in prompts.get(mechanism, [])[len(parts) - 2 :]:
            reply(b"334", prompt)
            answer = rfile.readline().rstrip(b"\r\n")
            self.record(answer)
            lines.append(answer)
        return lines


class EchoImap(_Server):
    """Offers ``capabilities``; refuses LOGIN/AUTHENTICATE with NO or, with ``accept``,
    answers every later command but CAPABILITY, NOOP and LOGOUT with NO, each time repeating
    the login and what it decodes to."""

    def __init__(
        self, capabilities: str = "IMAP4rev1 AUTH=PLAIN IDLE", accept: bool = False
    ) -> None:
        super().__init__(accept)
        self.capabilities = capabilities

    def converse(self, rfile: BinaryIO, wfile: BinaryIO) -> None:
        def send(line: bytes) -> None:
            wfile.write(line + b"\r\n")
            wfile.flush()

        send(b"* OK hostile IMAP4rev1 ready")
        echo = b""
        while line := rfile.readline():
            cmd = line.rstrip(b"\r\n")
            with self.lock:
                self.commands.append(cmd.split(b" ", 1)[-1])
            tag, _, rest = cmd.partition(b" ")
            verb = rest.split(b" ", 1)[0].upper()
            if verb == b"CAPABILITY":
                send(b"* CAPABILITY " + self.capabilities.encode())
                send(tag + b" OK done")
            elif verb in (b"LOGIN", b"AUTHENTICATE"):
                lines = self._login(rest, rfile, send)
                said = b"you sent: " + b" / ".join(lines)
                said += b"".join(b" which reads: " + d for d in _decoded(lines))
                if self.accept:
                    echo = said
                    send(tag + b" OK logged in")
                else:
                    send(tag + b" NO [AUTHENTICATIONFAILED] " + said)
            elif verb == b"LOGOUT":
                send(b"* BYE")
                send(tag + b" OK bye")
                return
            elif verb == b"NOOP":
                send(tag + b" OK")
            elif echo:
                send(tag + b" NO " + echo)
            else:
                send(tag + b" BAD log in first")

    def _login(self, rest: bytes, rfile: BinaryIO, send) -> list[bytes]:  # type: ignore[no-untyped-def]
        lines = [rest]
        if rest.upper().startswith(b"LOGIN"):
            m = re.match(rb"LOGIN\s+(\S+)\s+(.*)$", rest, re.I)
            if m:
                self.record(m[2], m[2].strip(b'"'))
            return lines
        send(b"+ ")
        answer = rfile.readline().rstrip(b"\r\n")
        self.record(answer)
        lines.append(answer)
        return lines


class TerseImap(_Server):
    """Logs anyone in and answers like a server, but its STATUS gives only the tagged OK,
    without the untagged ``* STATUS`` line the client parses (a broken or hostile server)."""

    def __init__(self) -> None:
        super().__init__(accept=True)

    def converse(self, rfile: BinaryIO, wfile: BinaryIO) -> None:
        def send(*lines: bytes) -> None:
            wfile.write(b"".join(line + b"\r\n" for line in lines))
            wfile.flush()

        send(b"* OK [CAPABILITY IMAP4rev1 UIDPLUS] terse IMAP4rev1 ready")
        while line := rfile.readline():
            tag, _, rest = line.rstrip(b"\r\n").partition(b" ")
            verb = rest.split(b" ", 1)[0].upper()
            with self.lock:
                self.commands.append(rest)
            if verb == b"CAPABILITY":
                send(b"* CAPABILITY IMAP4rev1 UIDPLUS", tag + b" OK done")
            elif verb == b"LIST":
                send(
                    b'* LIST (\\HasNoChildren) "/" INBOX',
                    b'* LIST (\\HasNoChildren \\Sent) "/" Sent',
                    tag + b" OK done",
                )
            elif verb in (b"SELECT", b"EXAMINE"):
                send(b"* 0 EXISTS", b"* OK [UIDVALIDITY 1]", b"* OK [UIDNEXT 1]", tag + b" OK done")
            elif verb == b"LOGOUT":
                send(b"* BYE", tag + b" OK bye")
                return
            else:  # LOGIN, STATUS (with nothing before its OK), and the rest
                send(tag + b" OK done")
