"""IMAP access: the only module that talks IMAP (imapclient)."""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime
from types import TracebackType
from typing import Any

from .config import ImapSettings
from .connection import network_error, tls_context
from .errors import ConfigError, DeliveryError

log = logging.getLogger(__name__)


class Mailbox:
    """One logged-in IMAP connection. Use it as a context manager."""

    def __init__(self, settings: ImapSettings) -> None:
        if not settings.password:
            raise ConfigError(
                "MAILER_IMAP_PASSWORD: not set in the environment or .env "
                "(MAILER_SMTP_PASSWORD is used when it is missing)"
            )
        self.settings = settings
        self.client: Any = None

    @property
    def where(self) -> str:
        return f"IMAP {self.settings.host}:{self.settings.port}"

    def __enter__(self) -> Mailbox:
        self.connect()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def connect(self) -> None:
        from imapclient import IMAPClient
        from imapclient.exceptions import IMAPClientError, LoginError

        s = self.settings
        ctx = tls_context(s.ca_file)
        client = None
        try:
            client = IMAPClient(
                s.host, port=s.port, ssl=s.security == "ssl", ssl_context=ctx, timeout=s.timeout
            )
            if s.security == "starttls":
                client.starttls(ctx)
            client.login(s.username, s.password)
        except LoginError as exc:
            _quiet_logout(client)
            raise DeliveryError(
                f"{self.where}: authentication failed for user '{s.username}' ({_text(exc)})",
                kind="auth",
                hint="check MAILER_IMAP_PASSWORD (Gmail needs an app password)",
            ) from None
        except IMAPClientError as exc:
            _quiet_logout(client)
            raise DeliveryError(f"{self.where}: {_text(exc)}", kind="protocol") from None
        except OSError as exc:
            _quiet_logout(client)
            raise network_error(exc, "IMAP", s.host, s.port, s.timeout) from None
        self.client = client

    def close(self) -> None:
        _quiet_logout(self.client)
        self.client = None

    def sent_folder(self) -> str:
        """The configured Sent folder, else the one marked ``\\Sent`` (RFC 6154)."""
        from imapclient.imapclient import SENT

        if self.settings.sent_folder:
            return self.settings.sent_folder
        folder = self._call("find the Sent folder", self.client.find_special_folder, SENT)
        if not folder:
            raise DeliveryError(
                f"{self.where}: no folder is marked \\Sent",
                kind="protocol",
                hint="set imap.sent_folder in config/mailer.toml",
            )
        return str(folder)

    def append_sent(self, raw: bytes, when: datetime) -> str:
        """Store exactly ``raw`` in the Sent folder, marked read. Returns the folder name."""
        folder = self.sent_folder()
        self._call(f"append to {folder}", self.client.append, folder, raw, (b"\\Seen",), when)
        return folder

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        from imapclient.exceptions import IMAPClientError

        try:
            return fn(*args)
        except IMAPClientError as exc:
            raise DeliveryError(
                f"{self.where}: cannot {what}: {_text(exc)}", kind="protocol"
            ) from None
        except OSError as exc:
            s = self.settings
            raise network_error(exc, "IMAP", s.host, s.port, s.timeout) from None


def _text(exc: BaseException) -> str:
    text = str(exc)
    if text.startswith(("b'", 'b"')):
        text = text[2:-1]
    return " ".join(text.split())


def _quiet_logout(client: Any) -> None:
    if client is None:
        return
    try:
        client.logout()
    except Exception:  # a broken connection must not hide the error being reported
        with contextlib.suppress(Exception):
            client.shutdown()
