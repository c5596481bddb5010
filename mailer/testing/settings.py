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


def write_fake_workspace(
    root: Path,
    address: str,
    password: str,
    *,
    wait: str,
    window: str = "always",
    max_follow_ups: int = 1,
) -> Path:
    """A workspace whose config names no real server (the fakes stand in for them), sending
    from ``address`` in Europe/London; returns the config's path. The password goes in .env,
    as a user's would."""
    (root / "config").mkdir(parents=True, exist_ok=True)
    path = root / "config" / "mailer.toml"
    path.write_text(
        f"""[sender]
name = "Sam Candidate"
address = "{address}"
timezone = "Europe/London"

[smtp]
host = "fake.smtp.invalid"
port = 587
security = "starttls"

[imap]
host = "fake.imap.invalid"
port = 993
security = "ssl"

[addresses]
allow_test_domains = true

[follow_up]
wait = "{wait}"
window = "{window}"
max_follow_ups = {max_follow_ups}
""",
        encoding="utf-8",
    )
    (root / ".env").write_text(f"MAILER_SMTP_PASSWORD={password}\n", encoding="utf-8")
    (root / ".env").chmod(0o600)
    return path
