"""SMTP delivery: the only module that talks SMTP.

yagmail opens and authenticates the connection (with verified TLS and a timeout, which it does
not do by default). The transaction itself is driven step by step on its ``smtplib``
connection, so that we always know whether a failure came before the message could have been
accepted (safe to retry) or after the final dot (in doubt: never resent automatically).
Where the server offers PIPELINING (RFC 2920) the envelope (MAIL FROM, RCPT TO, DATA) goes in
one write; the body and the final dot are still sent as two steps, the durable mark between.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import re
import smtplib
import socket
import time
from collections.abc import Callable, Iterator
from types import ModuleType

from mailer.adapters.config import ServerSettings
from mailer.adapters.connection import Connection, network_error, tls_context
from mailer.adapters.crashpoint import crash_point
from mailer.adapters.passwords import describe, without_keyring
from mailer.errors import ConfigError, DeliveryError, MailerError
from mailer.model.lifecycle import settle_advice
from mailer.model.redact import redactor

log = logging.getLogger(__name__)

Envelope = tuple[str, tuple[str, ...]]  # (sender, recipients)
# How long the answer to a final dot with the next envelope behind it may take: the server
# may hold it until it has checked that envelope's recipients too (a policy service, DNS).
# RFC 5321 (4.5.3.2.6) gives the end of DATA 10 minutes, so that a slow answer is not read as
# a lost one: that would leave a delivered message in doubt.
AHEAD_REPLY_TIMEOUT = 600.0


class InDoubtError(DeliveryError):
    """The whole message reached the server but its answer did not reach us."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message,
            kind="in-doubt",
            hint=settle_advice("ID"),
        )


class _Retry(Exception):
    def __init__(self, error: DeliveryError, reconnect: bool) -> None:
        self.error = error
        self.reconnect = reconnect


class SmtpSession(Connection):
    """One authenticated connection for any number of messages. Use it as a context manager."""

    SERVICE = "SMTP"

    def __init__(
        self,
        settings: ServerSettings,
        *,
        retries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
        backoff: float = 1.0,
    ) -> None:
        if settings.auth == "password" and not settings.password:
            raise ConfigError(
                "MAILER_SMTP_PASSWORD: not set in the environment or .env",
                hint="put it in the workspace's .env (see .env.example)",
            )
        self.settings = settings
        self.retries = retries
        self.sleep = sleep
        self.backoff = backoff
        self.logins = 0
        # Every reply is cleaned of the credentials before it becomes an error or a result.
        self._scrub = redactor(settings.username, settings.password)
        self._yag = None
        self._smtp: smtplib.SMTP | None = None
        # An envelope written behind the last final dot (submit's ``next_envelope``), whose
        # replies are still to be read; only for the connection it was written on.
        self._ahead: tuple[smtplib.SMTP, Envelope] | None = None
        # The connection on which a transaction is under way (from its envelope's first
        # write, or one written ahead, to the answer to its final dot, or the RSET that ends
        # it early): the server may be reading message text, where a QUIT would be read as
        # text.
        self._unfinished: smtplib.SMTP | None = None

    def connect(self) -> None:
        yagmail = _yagmail()
        s = self.settings
        ctx = tls_context(s.ca_file)
        kwargs: dict = {"timeout": s.timeout}
        if s.security == "ssl":
            kwargs["context"] = ctx
        yag = yagmail.SMTP(
            user=s.username,
            password=s.password,
            host=s.host,
            port=s.port,
            smtp_ssl=s.security == "ssl",
            smtp_starttls={"context": ctx} if s.security == "starttls" else False,
            smtp_skip_login=True,  # we log in ourselves: see _authenticate
            soft_email_validation=False,
            **kwargs,
        )
        yag.set_logging(logging.CRITICAL)  # its ERROR lines would duplicate ours on stderr
        try:
            yag.login()
            if s.auth == "oauth2":
                self._oauth2_login(yag.smtp)
            else:
                _authenticate(yag.smtp, s.username, s.password)
        except _OAuthRefused as exc:
            _quiet_close(yag.smtp)
            raise _oauth_refusal(self.where, s, exc, self._scrub) from None
        except MailerError:  # no token to sign in with: the connection is of no use
            _quiet_close(yag.smtp)
            raise
        except _NoUtf8Mechanism as exc:
            _quiet_close(yag.smtp)
            raise DeliveryError(
                f"{self.where}: the user name or password has non-ASCII characters, which only "
                f"AUTH PLAIN can carry, and the server does not offer it (it offers {exc})",
                kind="auth",
                hint="use a password of ASCII characters only, such as an app password",
            ) from None
        except smtplib.SMTPAuthenticationError as exc:
            _quiet_close(yag.smtp)
            raise DeliveryError(
                f"{self.where}: authentication failed for user '{s.username}' "
                f"({_reply(exc, self._scrub)})",
                kind="auth",
                hint=f"check {describe(s.secret, 'MAILER_SMTP_PASSWORD')} (Gmail needs an app password)",
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            _quiet_close(yag.smtp)
            raise DeliveryError(
                f"{self.where}: {self._scrub(str(exc))}",
                kind="protocol",
                hint="check smtp.security and smtp.port",
            ) from None
        except smtplib.SMTPResponseException as exc:
            _quiet_close(yag.smtp)
            raise _reply_error(
                self.where, "login", exc.smtp_code, exc.smtp_error, self._scrub
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            _quiet_close(getattr(yag, "smtp", None))
            if isinstance(exc, smtplib.SMTPServerDisconnected) and _timed_out(exc):
                # (Connected, then no greeting or answer: a TCP connect that times out is
                # network_error's, below.)
                raise DeliveryError(
                    f"{self.where}: no answer within {s.timeout:g} s during login",
                    kind="timeout",
                    temporary=True,
                ) from None
            if isinstance(exc, smtplib.SMTPServerDisconnected):
                raise DeliveryError(
                    f"{self.where}: the server closed the connection during login",
                    kind="connection",
                    temporary=True,
                ) from None
            raise network_error(exc, "SMTP", s.host, s.port, s.timeout, scrub=self._scrub) from None
        self._yag, self._smtp = yag, yag.smtp
        # The final dot goes in a small write of its own, after the final-dot mark is
        # committed: with Nagle's algorithm on, the kernel holds it until the body's ACK,
        # which the server's delayed ACK keeps back ~40 ms a message.
        with contextlib.suppress(OSError, AttributeError):
            yag.smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.logins += 1
        log.info("connected to %s as %s", self.where, s.username)

    def _oauth2_login(self, smtp: smtplib.SMTP) -> None:
        """AUTH XOAUTH2 or OAUTHBEARER on the connection yagmail opened: the same verified
        TLS session. The token is fetched (and refreshed when near its end) only now."""
        from mailer.adapters.oauth import access_token

        s = self.settings
        assert s.oauth2 is not None
        token = access_token(s)
        self._scrub = redactor(s.username, token)  # the token is this login's secret
        try:
            _authenticate_bearer(smtp, s.username, token, s.oauth2.mechanism, self._scrub)
        except _OAuthRefused:
            # Refused before its time (consent withdrawn, revoked early): a refresh tells
            # "sign-in expired" (SignInError) from a token that is refused as such.
            first = self._scrub
            token = access_token(s, force_refresh=True)
            second = redactor(s.username, token)
            self._scrub = lambda text: second(first(text))  # a reply may quote either token
            _authenticate_bearer(smtp, s.username, token, s.oauth2.mechanism, self._scrub)

    def close(self) -> None:
        if self._smtp is not None and self._unfinished is self._smtp:
            # The server may be reading message text (after a 354, an envelope written ahead,
            # or an interrupt while the text went): a QUIT would be read as text, and its
            # answer never come. Dropped instead, with no final dot: the server discards it.
            _quiet_close(self._smtp)
            self._smtp = None
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (OSError, smtplib.SMTPException):
                _quiet_close(self._smtp)
        self._smtp = None
        if self._yag is not None:
            self._yag.is_closed = True  # we closed it; stop its __del__ from trying again
        self._yag = None

    def submit(
        self,
        envelope_from: str,
        recipients: tuple[str, ...],
        data: bytes,
        before_mail: Callable[[], None] | None = None,
        before_final_dot: Callable[[], None] | None = None,
        in_envelope: Callable[[], None] | None = None,
        next_envelope: Envelope | None = None,
    ) -> str:
        """Send ``data`` as is and return the server's 250 reply.

        ``before_mail`` runs once, immediately before the first MAIL FROM (the caller commits
        ``submitting`` there). ``in_envelope`` runs once too, in the time the server takes to
        answer the envelope: with PIPELINING once MAIL FROM, RCPT TO and DATA are written and
        before their replies are read; without, right before MAIL FROM. If it raises, its
        error goes out as it is, never retried; with PIPELINING the connection is dropped
        first (a DATA the server may have begun is never finished, so nothing is delivered).
        ``before_final_dot`` runs when the whole message but its final dot has gone (the
        caller commits its durable mark there): if it raises, the dot is never sent and the
        connection is dropped, so the server discards the message. A 4xx before the end of
        DATA, or a dropped connection before the final dot, is retried with backoff; a 5xx
        fails at once.

        ``next_envelope`` (sender, recipients), with PIPELINING: the next message's envelope,
        written right behind this one's final dot (RFC 2920 lets commands follow the message
        text in one group), so the server reads it while this one's answer comes back and
        the caller records it. Nothing of that message can be delivered until a ``submit``
        with the same envelope sends its text; any other call drops the connection first.
        """
        called = False
        hook = [in_envelope] if in_envelope is not None else []  # emptied once it has run
        ahead = self._envelope_ahead()
        if ahead is not None and (ahead != (envelope_from, recipients) or before_mail):
            # Not the message it was written for (or one whose caller must act before its
            # MAIL FROM, which has gone): the server may be in that envelope's DATA, where no
            # command can be given. Only a new connection clears it.
            self.close()
        for attempt in range(self.retries + 1):
            try:
                if self._smtp is None:
                    self.connect()
                if not called and before_mail is not None:
                    before_mail()
                called = True
                return self._transaction(
                    envelope_from, recipients, data, before_final_dot, hook, next_envelope
                )
            except _HookRaised as raised:
                error = raised.__cause__
                assert error is not None
                raise error from error.__cause__  # its own cause kept, not this wrapper
            except _Retry as retry:
                if attempt == self.retries:
                    raise retry.error from None
                if retry.reconnect:
                    _quiet_close(self._smtp)
                    self._smtp = None
                delay = self.backoff * (2**attempt)
                log.info("%s; retrying in %.1f s", retry.error, delay)
                self.sleep(delay)
            except DeliveryError as exc:
                if exc.temporary and attempt < self.retries and not called:
                    self.sleep(self.backoff * (2**attempt))
                    continue
                raise
        raise AssertionError("unreachable")

    def _transaction(
        self,
        envelope_from: str,
        recipients: tuple[str, ...],
        data: bytes,
        before_final_dot: Callable[[], None] | None = None,
        hook: list[Callable[[], None]] | None = None,
        next_envelope: Envelope | None = None,
    ) -> str:
        smtp = self._smtp
        assert smtp is not None
        s = self.settings
        hook = hook if hook is not None else []
        pipelining = s.pipelining and smtp.has_extn("pipelining")
        written = self._envelope_ahead() == (envelope_from, recipients)
        self._ahead = None
        try:
            if pipelining:
                self._unfinished = smtp
                self._pipelined_envelope(smtp, envelope_from, recipients, hook, written)
            else:
                self._run_hook(smtp, hook, drop=False)  # nothing written yet: no need
                self._unfinished = smtp
                self._envelope(smtp, envelope_from, recipients)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            # Nothing can have been accepted before the final dot: safe to retry.
            raise _Retry(_dropped(self.where, exc, s.timeout), True) from None
        try:
            smtp.send(_dot_stuff(data))
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise _Retry(_dropped(self.where, exc, s.timeout), True) from None
        if before_final_dot is not None:
            try:
                crash_point("before-final-dot")
                before_final_dot()
                crash_point("after-final-dot")
            except BaseException:
                # No final dot: a server drops an unfinished DATA with the connection.
                _quiet_close(smtp)
                self._smtp = None
                raise
        tail, ahead = FINAL_DOT, None
        # Only over TLS: there the one write is one record, which the server reads whole or
        # not at all, so a write that fails cannot have delivered the dot alone (see below).
        if next_envelope is not None and pipelining and s.security != "plain":
            # In the dot's own write: a server that finds the next commands already read when
            # it has answered the dot holds that answer back and sends the four together, as
            # for any pipelined group. Written apart, the dot's answer goes alone and the
            # envelope's replies wait for our delayed ACK (about 40 ms a message).
            with contextlib.suppress(UnicodeError):  # (that message will say so itself)
                tail += _envelope_lines(*next_envelope).encode("ascii")  # (as smtplib sends)
                ahead = next_envelope
        try:
            smtp.send(tail)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            # The socket refused the dot itself, so the server never saw it (as before the
            # dot was split off; over TLS the write is one record, which a server reads
            # whole or not at all): safe to retry. A dot written and then unanswered is in
            # doubt.
            raise _Retry(_dropped(self.where, exc, s.timeout), True) from None
        if ahead is not None:
            self._ahead = (smtp, ahead)
        waited = max(s.timeout, AHEAD_REPLY_TIMEOUT) if ahead is not None else s.timeout
        try:
            with _patience(smtp, waited):
                code, msg = smtp.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            _quiet_close(smtp)
            self._smtp = None
            if "timed out" in str(exc):  # (smtplib reports its read's timeout as a drop)
                raise InDoubtError(
                    f"{self.where}: no answer within {waited:g} s after the whole message "
                    "was sent; it may have been delivered"
                ) from None
            raise InDoubtError(
                f"{self.where}: the connection was lost after the whole message was sent "
                f"and before the server answered ({type(exc).__name__}); it may have been delivered"
            ) from None
        if 200 <= code < 600:
            self._unfinished = smtp if ahead is not None else None
        if code == 250:
            return f"{code} {_text(msg, self._scrub)}"
        if not 400 <= code < 600:
            # Not a reply we can read (smtplib gives -1): the server may have taken it.
            _quiet_close(smtp)
            self._smtp = None
            raise InDoubtError(
                f"{self.where}: unreadable answer after the whole message was sent "
                f"({code} {_text(msg, self._scrub)}); it may have been delivered"
            )
        # A refusal of the finished message: the server says it did not take it.
        raise _reply_error(self.where, "end of DATA", code, msg, self._scrub)

    def _envelope(
        self, smtp: smtplib.SMTP, envelope_from: str, recipients: tuple[str, ...]
    ) -> None:
        """MAIL FROM, each RCPT TO and DATA, one round trip each, up to the 354."""
        code, msg = smtp.mail(envelope_from)
        self._check(code, msg, "MAIL FROM")
        for rcpt in recipients:
            code, msg = smtp.rcpt(rcpt)
            refusal = self._rcpt_refusal(rcpt, code, msg)
            if refusal is not None:
                self._rset()
                raise refusal
        code, msg = smtp.docmd("DATA")
        if code != 354:
            self._check(code, msg, "DATA")

    def _run_hook(
        self, smtp: smtplib.SMTP, hook: list[Callable[[], None]], drop: bool = True
    ) -> None:
        """Run ``submit``'s ``in_envelope`` if it has not run yet; if it raises, the
        connection goes with it (see ``submit``), unless ``drop`` is False (nothing of this
        message was written yet)."""
        if not hook:
            return
        run = hook.pop()
        try:
            run()
        except BaseException as exc:
            if drop:
                _quiet_close(smtp)
                self._smtp = None
            if isinstance(exc, Exception):
                # Carried past the handlers that read an OSError as a dropped connection:
                # this is the caller's error, and it must not be retried as one.
                raise _HookRaised() from exc
            raise

    def _pipelined_envelope(
        self,
        smtp: smtplib.SMTP,
        envelope_from: str,
        recipients: tuple[str, ...],
        hook: list[Callable[[], None]],
        written: bool = False,
    ) -> None:
        """The same commands in one write (RFC 2920), then their replies in order.
        ``written``: the write went already, behind the last message's final dot.

        The server answers DATA on its own: it may say 354 although MAIL or a RCPT was
        refused. The data phase has then begun, so RSET would be read as message text and a
        lone dot would deliver an empty message to the accepted recipients: the connection is
        dropped instead (no final dot: the server discards it), and the next submit reconnects.
        """
        if not written:  # (else it went behind the last message's final dot)
            smtp.send(_envelope_lines(envelope_from, recipients))
        # The caller's work (a campaign records the message here) overlaps the server's.
        self._run_hook(smtp, hook)
        # Every reply is read before acting on any, so none is left for the next command.
        mail, *rcpts, data = [smtp.getreply() for _ in range(len(recipients) + 2)]
        refusal: _Retry | DeliveryError | None = self._mail_refusal(*mail)
        for rcpt, (code, msg) in zip(recipients, rcpts, strict=True):
            if refusal is not None:
                break
            refusal = self._rcpt_refusal(rcpt, code, msg)
        if data[0] == 354:
            if refusal is None:
                return
            log.info(
                "%s: refused inside a pipelined envelope after 354; dropping the connection",
                self.where,
            )
            _quiet_close(smtp)
            self._smtp = None
            if isinstance(refusal, _Retry):
                raise _Retry(refusal.error, True)
            raise refusal
        if refusal is not None:
            self._rset()
            raise refusal
        self._check(*data, "DATA")

    def _envelope_ahead(self) -> Envelope | None:
        """The envelope written behind the last final dot on the current connection."""
        if self._ahead is not None and self._ahead[0] is self._smtp is not None:
            return self._ahead[1]
        return None

    def _mail_refusal(self, code: int, msg: bytes) -> _Retry | DeliveryError | None:
        if 200 <= code < 300:
            return None
        error = _reply_error(self.where, "MAIL FROM", code, msg, self._scrub)
        return _Retry(error, code in (421,)) if error.temporary else error

    def _rcpt_refusal(self, rcpt: str, code: int, msg: bytes) -> _Retry | DeliveryError | None:
        if code in (250, 251):
            return None
        if not 400 <= code < 600:  # not a refusal: no reply code (not SMTP), or a 2xx/3xx
            return _reply_error(self.where, f"RCPT TO <{rcpt}>", code, msg, self._scrub)
        if 400 <= code < 500:
            return _Retry(
                _reply_error(self.where, f"RCPT TO <{rcpt}>", code, msg, self._scrub), False
            )
        return DeliveryError(
            f"{self.where}: recipient <{rcpt}> refused: {code} {_text(msg, self._scrub)}",
            kind="recipient",
            code=code,
        )

    def _check(self, code: int, msg: bytes, step: str) -> None:
        if 200 <= code < 300:
            return
        self._rset()
        error = _reply_error(self.where, step, code, msg, self._scrub)
        if error.temporary:
            raise _Retry(error, code in (421,))
        raise error

    def _rset(self) -> None:
        try:
            assert self._smtp is not None
            self._smtp.rset()
            self._unfinished = None
        except (OSError, smtplib.SMTPException):
            _quiet_close(self._smtp)
            self._smtp = None


class _HookRaised(Exception):
    """``in_envelope`` raised (the error is its ``__cause__``)."""


FINAL_DOT = b".\r\n"
# A plain addr-spec (dot-atom local part, a host name): quoted as it is.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")


def _quoted(address: str) -> str:
    """``<address>`` as smtplib.quoteaddr makes it; a plain address without its parser (a
    tenth of a millisecond a message), anything else through it."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return f"<{address}>"
    return smtplib.quoteaddr(address)


def _envelope_lines(envelope_from: str, recipients: tuple[str, ...]) -> str:
    """MAIL FROM, RCPT TO and DATA, as pipelined in one write."""
    lines = [
        f"MAIL FROM:{_quoted(envelope_from)}",
        *(f"RCPT TO:{_quoted(rcpt)}" for rcpt in recipients),
        "DATA",
    ]
    return "".join(line + "\r\n" for line in lines)


@contextlib.contextmanager
def _patience(smtp: smtplib.SMTP, seconds: float) -> Iterator[None]:
    """The connection's timeout raised to ``seconds`` for a moment (never lowered)."""
    sock = getattr(smtp, "sock", None)  # (the in-memory server's connection has none)
    before = sock.gettimeout() if sock is not None else None
    if before is None or before >= seconds:
        yield
        return
    sock.settimeout(seconds)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(before)


def _dot_stuff(data: bytes) -> bytes:
    """The DATA payload, dot-stuffed and ending in CRLF, without the final ``.`` line."""
    data = re.sub(rb"(?m)^\.", b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


class _NoUtf8Mechanism(Exception):
    """The credentials are not ASCII and the server offers no AUTH PLAIN; says what it offers."""


def _authenticate(smtp: smtplib.SMTP, user: str, password: str) -> None:
    """smtplib's login() for ASCII credentials (its choice of mechanism, unchanged); AUTH
    PLAIN in UTF-8 (RFC 4616) otherwise, which smtplib cannot send: it encodes as ASCII."""
    if user.isascii() and password.isascii():
        smtp.login(user, password)
        return
    smtp.ehlo_or_helo_if_needed()
    if not smtp.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
    offered = smtp.esmtp_features["auth"].upper().split()
    if "PLAIN" not in offered:
        raise _NoUtf8Mechanism(" ".join(offered) or "no mechanism")
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode("ascii")
    code, resp = smtp.docmd("AUTH", f"PLAIN {token}")
    if code == 334:  # the server wants the credentials on a line of their own
        code, resp = smtp.docmd(token)
    if code not in (235, 503):  # 503: already authenticated, as smtplib accepts too
        raise smtplib.SMTPAuthenticationError(code, resp)


class _OAuthRefused(Exception):
    """The server refused the token: its reply, and the RFC 7628 challenge that came first."""

    def __init__(self, code: int, reply: str, challenge: str) -> None:
        super().__init__(reply)
        self.code, self.reply, self.challenge = code, reply, challenge


def _authenticate_bearer(
    smtp: smtplib.SMTP, user: str, token: str, mechanism: str, scrub: Callable[[str], str]
) -> None:
    from mailer.adapters.oauth import oauthbearer, xoauth2

    smtp.ehlo_or_helo_if_needed()
    mech = mechanism.upper()
    offered = smtp.esmtp_features.get("auth", "").upper().split()
    if mech not in offered:
        raise smtplib.SMTPNotSupportedError(
            f"the server does not offer AUTH {mech} (it offers {' '.join(offered) or 'none'})"
        )
    initial = xoauth2(user, token) if mech == "XOAUTH2" else oauthbearer(user, token)
    seen: list[str] = []

    def answer(challenge: bytes | None = None) -> str:
        if challenge is None:
            return initial
        # A refusal comes as a challenge first (RFC 7628 3.2.2): answer it, then read the 535.
        seen.append(challenge.decode("utf-8", "replace"))
        return "" if mech == "XOAUTH2" else "\x01"

    try:
        smtp.auth(mech, answer, initial_response_ok=True)
    except smtplib.SMTPAuthenticationError as exc:
        raise _OAuthRefused(
            exc.smtp_code, _text(exc.smtp_error, scrub), scrub(" ".join(seen))
        ) from None


def _oauth_refusal(
    where: str, s: ServerSettings, exc: _OAuthRefused, scrub: Callable[[str], str]
) -> DeliveryError:
    from mailer.adapters.oauth import login_command, who
    from mailer.errors import SignInError

    account = s.oauth2.account if s.oauth2 else ""
    if "5.7.139" in exc.reply:
        # Microsoft 365: SMTP AUTH is switched off for the tenant or the mailbox.
        return SignInError(
            f"{where}: {exc.code} {exc.reply}: SMTP AUTH is switched off for this Microsoft 365 "
            "tenant or mailbox; an administrator must enable it (Authenticated SMTP) before "
            "mailer can send",
            hint="see docs/oauth2.md",
        )
    detail = f"{exc.code} {exc.reply}"
    scope = _challenge_scope(exc.challenge)
    if scope:
        detail += f"; the server wants the scope {scope!r}"
    return SignInError(
        f"{where}: the OAuth2 token for '{s.username}' was refused ({detail})",
        hint=f"check that the token is for this user and has the scopes the server needs "
        f"(oauth2.scopes), then run `{login_command(account)}` for {who(account)}",
    )


def _challenge_scope(challenge: str) -> str:
    import json

    try:
        data = json.loads(challenge or "{}")
    except ValueError:
        return ""
    scope = data.get("scope", "") if isinstance(data, dict) else ""
    return " ".join(str(scope).split())[:200]


def _text(msg: bytes | str, scrub: Callable[[str], str]) -> str:
    text = msg.decode("utf-8", "replace") if isinstance(msg, bytes) else msg
    return " ".join(scrub(text).split())


def _reply(exc: smtplib.SMTPResponseException, scrub: Callable[[str], str]) -> str:
    return f"{exc.smtp_code} {_text(exc.smtp_error, scrub)}"


def _reply_error(
    where: str, step: str, code: int, msg: bytes | str, scrub: Callable[[str], str]
) -> DeliveryError:
    if not 100 <= code < 600:
        # smtplib's -1: the line did not start with a reply code (and it dropped the line's
        # first four characters as if it had). Not SMTP: another service on that port?
        return DeliveryError(
            f"{where}: the answer to {step} is not SMTP (no reply code)",
            kind="protocol",
            hint="check smtp.port and smtp.security",
            code=code,
        )
    temporary = 400 <= code < 500
    kind = "temporary" if temporary else "permanent"
    return DeliveryError(
        f"{where}: {step} refused with {code} {_text(msg, scrub)}",
        kind=kind,
        temporary=temporary,
        code=code,
    )


def _timed_out(exc: BaseException) -> bool:
    """A read that waited out the timeout: smtplib reports it as the server disconnecting
    ("Connection unexpectedly closed: timed out"), which would tell the user the opposite."""
    return isinstance(exc, TimeoutError) or (
        isinstance(exc, smtplib.SMTPServerDisconnected) and "timed out" in str(exc)
    )


def _dropped(where: str, exc: BaseException, timeout: float) -> DeliveryError:
    if _timed_out(exc):
        return DeliveryError(
            f"{where}: timed out after {timeout:g} s", kind="timeout", temporary=True
        )
    return DeliveryError(
        f"{where}: the server dropped the connection", kind="connection", temporary=True
    )


def _yagmail() -> ModuleType:
    """yagmail, imported without keyring (see passwords.without_keyring)."""
    import importlib

    with without_keyring():  # (once loaded, this returns it at once)
        return importlib.import_module("yagmail")


def _quiet_close(smtp: smtplib.SMTP | None) -> None:
    if smtp is None:
        return
    # Closing a broken socket must never mask the real error.
    with contextlib.suppress(Exception):
        smtp.close()
