"""Server settings for tests, with the password given directly (no .env, no keyring)."""

from __future__ import annotations

from pathlib import Path

from mailer.adapters.config import ImapSettings, ServerSettings
from mailer.adapters.passwords import PasswordSource


def _secret(password: str, key: str) -> PasswordSource:
    return PasswordSource("env", key, "MAILER_TEST_PASSWORD", password)


def smtp_settings(
    username: str,
    password: str,
    *,
    host: str = "fake.smtp.invalid",
    port: int = 587,
    security: str = "starttls",
    ca_file: Path | None = None,
    timeout: float = 10.0,
) -> ServerSettings:
    return ServerSettings(
        host, port, security, username, ca_file, timeout, secret=_secret(password, "smtp")
    )


def imap_settings(
    username: str,
    password: str,
    *,
    host: str = "fake.imap.invalid",
    port: int = 993,
    security: str = "ssl",
    ca_file: Path | None = None,
    timeout: float = 10.0,
    sent_folder: str = "",
) -> ImapSettings:
    return ImapSettings(
        host,
        port,
        security,
        username,
        ca_file,
        timeout,
        secret=_secret(password, "imap"),
        sent_folder=sent_folder,
    )
