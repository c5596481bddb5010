"""An SMTP server in memory, and sessions to it.

A session is :class:`mailer.adapters.sender.SmtpSession` itself with only its wire replaced: the
connection object it drives is :class:`_Wire`, which answers as an SMTP server would (the
``smtplib.SMTP`` calls the session makes: ``mail``, ``rcpt``, ``docmd("DATA")``, ``send``,
``getreply``, ``rset``, ``quit``, ``close``). So the error kinds, the retries and the points
where ``before_mail`` and ``before_final_dot`` run are the real session's, by construction.
Only logging in is the fake's own (password logins; no OAuth2).

Faults are scripted with the same keys as the sandbox server (:mod:`mailer.sandbox.smtp`),
so one test can script both: ``mail``, ``rcpt``, ``data`` (lists of replies, one taken per
command; ``data`` answers the finished message), ``drop_after_data`` (accept and deliver
the next N messages, then close instead of answering: in doubt) and ``auth`` (replies to the
next logins). Only the fake has ``drop_before_data`` (close the connection when the client
says DATA) and ``down`` (refuse the next N connections): the sandbox has no such switch.
"""

from __future__ import annotations

import re
import smtplib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from typing import TYPE_CHECKING, Any

from mailer.adapters.config import ServerSettings
from mailer.adapters.connection import network_error
from mailer.adapters.passwords import describe
from mailer.adapters.sender import SmtpSession
from mailer.errors import DeliveryError

if TYPE_CHECKING:
    from .imap import FakeImap


@dataclass(frozen=True)
class Accepted:
    """One message the server took: its envelope and the bytes as the server holds them
    (dot-stuffing undone, ending in CRLF, as aiosmtpd keeps ``original_content``)."""

    envelope_from: str
    recipients: tuple[str, ...]
    data: bytes
    login: str

    @property
    def message_id(self) -> str | None:
        return BytesHeaderParser().parsebytes(self.data).get("Message-ID")


@dataclass
class FakeSmtp:
    """The server. Call it (or :meth:`session`) as the ``smtp=`` factory the callers take:
    ``FakeSmtp(users={...})(settings, retries=0)`` is an unconnected ``SmtpSession``.

    ``users``: login -> password. ``recipients``: the addresses it takes mail for (others get
    550 at RCPT, as the sandbox refuses a non-mailbox); ``None`` takes any, unless ``imap``
    is given, whose users are then the mailboxes, and each accepted message is delivered to
    their INBOX.
    """

    users: dict[str, str] = field(default_factory=dict)
    recipients: Iterable[str] | None = None
    imap: FakeImap | None = None
    accepted: list[Accepted] = field(default_factory=list)
    # Everything the server saw, in order: ("connect",), ("auth", user, ok), ("mail", addr),
    # ("rcpt", addr, code), ("data",), ("accepted", message_id), ("dropped", step).
    log: list[tuple[Any, ...]] = field(default_factory=list)
    # What sessions slept between retries (they never really sleep unless given ``sleep``).
    slept: list[float] = field(default_factory=list)
    faults: dict[str, Any] = field(default_factory=dict)
    # Called at two moments of every transaction, with "mail" (a MAIL FROM arrived, nothing
    # answered yet) and "accepted" (the message is taken and delivered, its 250 not yet
    # sent): a test kills its client there by raising (tests/test_lifecycle_machine.py).
    moment: Callable[[str], None] | None = None
    # Offer PIPELINING (RFC 2920) in EHLO, as the sandbox and Postfix do.
    pipelining: bool = True

    def __post_init__(self) -> None:
        self.users = {k.lower(): v for k, v in self.users.items()}

    # --- for tests ---

    def set_faults(self, **faults: Any) -> None:
        self.faults = {k: list(v) if isinstance(v, list) else v for k, v in faults.items()}

    def clear_faults(self) -> None:
        self.faults = {}

    def add_user(self, user: str, password: str) -> None:
        self.users[user.lower()] = password

    @property
    def connections(self) -> int:
        return sum(1 for e in self.log if e[0] == "connect")

    @property
    def logins(self) -> int:
        return sum(1 for e in self.log if e[0] == "auth" and e[2])

    # --- the session factory ---

    def session(
        self,
        settings: ServerSettings,
        *,
        retries: int = 3,
        sleep: Callable[[float], None] | None = None,
        backoff: float = 1.0,
    ) -> SmtpSession:
        return _FakeSession(
            self,
            settings,
            retries=retries,
            sleep=sleep if sleep is not None else self.slept.append,
            backoff=backoff,
        )

    __call__ = session

    # --- the server side ---

    def _take(self, key: str) -> Any:
        value = self.faults.get(key)
        if isinstance(value, list) and value:
            return value.pop(0)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            self.faults[key] = value - 1
            return value
        return None

    def _open(self, user: str, password: str) -> _Wire:
        if self._take("down"):
            raise ConnectionRefusedError(111, "Connection refused")
        self.log.append(("connect",))
        scripted = self._take("auth")
        ok = not scripted and self.users.get(user.lower()) == password
        self.log.append(("auth", user.lower(), ok))
        if not ok:
            code, _, text = str(
                scripted or "535 5.7.8 Authentication credentials invalid"
            ).partition(" ")
            raise smtplib.SMTPAuthenticationError(int(code), text.encode())
        return _Wire(self, user.lower())

    def _takes(self, address: str) -> bool:
        if self.imap is not None:
            return self.imap.has_user(address)
        if self.recipients is None:
            return True
        return address.lower() in {r.lower() for r in self.recipients}

    def _accept(self, wire: _Wire, data: bytes) -> None:
        message = Accepted(wire.mail_from or "", tuple(wire.rcpts), data, wire.login)
        self.accepted.append(message)
        self.log.append(("accepted", message.message_id))
        if self.imap is not None:
            for rcpt in message.recipients:
                self.imap.deliver("INBOX", data, user=rcpt)


def _reply(text: str) -> tuple[int, bytes]:
    code, _, rest = text.partition(" ")
    return int(code), rest.encode()


class _Wire:
    """One connection, as ``smtplib.SMTP`` shows it to SmtpSession."""

    def __init__(self, server: FakeSmtp, login: str) -> None:
        self.server = server
        self.login = login
        self.open = True
        self.mail_from: str | None = None
        self.rcpts: list[str] = []
        self.in_data = False
        self.buffer = bytearray()
        # Answers not read yet, in order: a pipelined batch's, the finished message's (and a
        # batch written behind its final dot, after it).
        self.replies: list[tuple[int, bytes]] = []

    def has_extn(self, name: str) -> bool:
        return name.lower() == "pipelining" and self.server.pipelining

    def _live(self) -> None:
        if not self.open:
            raise smtplib.SMTPServerDisconnected("please run connect() first")

    def _drop(self, step: str) -> None:
        self.server.log.append(("dropped", step))
        self.open = False

    def mail(self, sender: str, options: Any = ()) -> tuple[int, bytes]:
        self._live()
        if self.server.moment is not None:
            self.server.moment("mail")
        self.server.log.append(("mail", sender))
        scripted = self.server._take("mail")
        if scripted:
            return _reply(scripted)
        self.mail_from, self.rcpts = sender, []
        return 250, b"2.1.0 OK"

    def rcpt(self, recip: str, options: Any = ()) -> tuple[int, bytes]:
        self._live()
        scripted = self.server._take("rcpt")
        if scripted:
            code, text = _reply(scripted)
        elif self.mail_from is None:
            code, text = 503, b"5.5.1 Error: need MAIL command"
        elif not self.server._takes(recip):
            code = 550
            text = f"5.1.1 <{recip}>: Recipient address rejected: not a sandbox mailbox".encode()
        else:
            self.rcpts.append(recip)
            code, text = 250, b"2.1.5 OK"
        self.server.log.append(("rcpt", recip, code))
        return code, text

    def docmd(self, cmd: str, args: str = "") -> tuple[int, bytes]:
        self._live()
        if cmd.upper() != "DATA":
            return 502, b"5.5.2 Error: command not recognized"
        self.server.log.append(("data",))
        if self.server._take("drop_before_data"):
            self._drop("before DATA")
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        if not self.rcpts:
            return 503, b"5.5.1 Error: need RCPT command"
        self.in_data, self.buffer = True, bytearray()
        return 354, b"End data with <CR><LF>.<CR><LF>"

    def send(self, data: bytes | str) -> None:
        self._live()
        if not self.in_data:
            self._batch(data.decode() if isinstance(data, bytes) else data)
            return
        self.buffer += data if isinstance(data, bytes) else data.encode()
        # The final dot may have the next commands behind it in the same write (PIPELINING).
        found = self.buffer.find(b"\r\n.\r\n")
        end = 0 if self.buffer.startswith(b".\r\n") else found + 2 if found >= 0 else -1
        if end >= 0:  # (where the final dot's line begins)
            text, rest = bytes(self.buffer[:end]), bytes(self.buffer[end + 3 :])
            self._end_of_data(text)
            if rest and self.open:
                self._batch(rest.decode())

    def _end_of_data(self, stuffed: bytes) -> None:
        self.in_data = False
        content = re.sub(rb"(?m)^\.", b"", stuffed)
        scripted = self.server._take("data")
        if scripted:
            self.replies.append(_reply(scripted))
        else:
            self.server._accept(self, content)
            if self.server.moment is not None:
                self.server.moment("accepted")
            if self.server._take("drop_after_data"):
                self._drop("after the final dot")
            else:
                self.replies.append((250, b"2.0.0 OK: queued"))
        self.mail_from, self.rcpts = None, []

    def _batch(self, text: str) -> None:
        """Commands written in one go (PIPELINING): each answered in order, as a server
        reading them line by line would; DATA may get its 354 although a RCPT was refused."""
        for line in filter(None, text.split("\r\n")):
            if not self.open:
                return  # dropped mid-batch: the rest is never read
            verb = line.split(":", 1)[0].upper()
            address = line.partition("<")[2].partition(">")[0]
            try:
                if verb == "MAIL FROM":
                    self.replies.append(self.mail(address))
                elif verb == "RCPT TO":
                    self.replies.append(self.rcpt(address))
                elif verb == "DATA":
                    self.replies.append(self.docmd("DATA"))
                else:
                    self.replies.append((502, b"5.5.2 Error: command not recognized"))
            except smtplib.SMTPServerDisconnected:
                return

    def getreply(self) -> tuple[int, bytes]:
        if not self.replies:
            self.open = False
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return self.replies.pop(0)

    def rset(self) -> tuple[int, bytes]:
        self._live()
        self.mail_from, self.rcpts, self.in_data = None, [], False
        return 250, b"2.0.0 OK"

    def quit(self) -> tuple[int, bytes]:
        self._live()
        self.open = False
        return 221, b"Bye"

    def close(self) -> None:
        self.open = False


class _FakeSession(SmtpSession):
    """SmtpSession whose connection is a :class:`_Wire` to a :class:`FakeSmtp`."""

    def __init__(self, server: FakeSmtp, settings: ServerSettings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self._server = server

    def connect(self) -> None:
        s = self.settings
        if s.auth != "password":
            raise NotImplementedError("FakeSmtp logs in with passwords only")
        try:
            wire = self._server._open(s.username, s.password)
        except smtplib.SMTPAuthenticationError as exc:
            # SmtpSession.connect's message and hint for a refused login.
            raise DeliveryError(
                f"{self.where}: authentication failed for user '{s.username}' "
                f"({exc.smtp_code} {self._scrub(exc.smtp_error.decode())})",
                kind="auth",
                hint=f"check {describe(s.secret, 'MAILER_SMTP_PASSWORD')} (Gmail needs an app password)",
            ) from None
        except OSError as exc:
            raise network_error(exc, "SMTP", s.host, s.port, s.timeout, scrub=self._scrub) from None
        self._smtp = wire  # type: ignore[assignment]
        self.logins += 1
