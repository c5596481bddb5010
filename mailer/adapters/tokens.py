"""Where OAuth2 tokens live: the system keyring when one is available, else a 0600 file.

A refresh token is a password that does not expire on its own, so it is never written to the
state database, a log or any output; ``repr()`` of a :class:`TokenSet` hides it too.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mailer.adapters.lock import wait_lock
from mailer.errors import StateError

KEYRING_SERVICE = "mailer-oauth2"


@dataclass(frozen=True)
class TokenSet:
    """One account's tokens, and what they were issued for."""

    user: str
    client_id: str
    token_url: str
    scopes: tuple[str, ...]
    expires_at: float  # when the access token stops working (seconds since the epoch)
    lifetime: float  # what the server granted, to refresh well before the end
    access_token: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "scopes": list(self.scopes)})

    @classmethod
    def from_json(cls, text: str) -> TokenSet:
        data: dict[str, Any] = json.loads(text)
        return cls(**{**data, "scopes": tuple(data.get("scopes", ()))})


def _keyring() -> Any:
    """The keyring module when a real backend is there, else None (no D-Bus, no keychain)."""
    if os.environ.get("MAILER_TOKEN_STORE", "") == "file":
        return None
    from mailer.adapters.passwords import keyring_module

    try:
        keyring = keyring_module()
        from keyring.errors import KeyringError
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except (KeyringError, RuntimeError):
        return None
    return keyring if getattr(backend, "priority", 0) >= 1 else None


class TokenStore:
    """Tokens per account, under one workspace's ``.mailer/`` directory."""

    def __init__(self, directory: Path, keyring: Any = "auto") -> None:
        self.directory = directory / "oauth2"
        self.keyring = _keyring() if keyring == "auto" else keyring

    @property
    def where(self) -> str:
        return "the system keyring" if self.keyring is not None else f"{self.directory} (mode 0600)"

    def _key(self, account: str) -> str:
        return f"{self.directory.resolve()}:{account or '-'}"

    def path(self, account: str) -> Path:
        return self.directory / f"{account or '-'}.json"

    def load(self, account: str) -> TokenSet | None:
        try:
            if self.keyring is not None:
                text = self.keyring.get_password(KEYRING_SERVICE, self._key(account))
            else:
                path = self.path(account)
                text = path.read_text(encoding="utf-8") if path.exists() else None
            return TokenSet.from_json(text) if text else None
        except (OSError, ValueError, TypeError) as exc:
            raise StateError(
                f"{self.path(account)}: cannot read the stored sign-in ({type(exc).__name__})",
                hint="run 'mailer auth logout', then 'mailer auth login'",
            ) from None

    def save(self, account: str, tokens: TokenSet) -> None:
        if self.keyring is not None:
            self.keyring.set_password(KEYRING_SERVICE, self._key(account), tokens.to_json())
            return
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.path(account)
        tmp = path.with_suffix(".tmp")
        # Created 0600 before anything is written: the token is never readable by others.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            if hasattr(os, "fchmod"):  # not on Windows before Python 3.13; no modes there
                os.fchmod(fd, 0o600)
            os.write(fd, tokens.to_json().encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    def delete(self, account: str) -> bool:
        if self.keyring is not None:
            try:
                self.keyring.delete_password(KEYRING_SERVICE, self._key(account))
                return True
            except Exception:  # keyring's PasswordDeleteError: nothing was stored
                return False
        try:
            self.path(account).unlink()
            return True
        except FileNotFoundError:
            return False

    @contextlib.contextmanager
    def locked(self, account: str) -> Iterator[None]:
        """One refresh at a time per account, across processes: a provider that rotates
        refresh tokens would otherwise see the old one used twice and revoke both."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.directory / f"{account or '-'}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            wait_lock(fd)
            yield
        finally:
            os.close(fd)
