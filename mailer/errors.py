"""The one exception hierarchy. Every message says *where* the problem is."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Named process exit codes, so scripts can tell failures apart."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    CONFIG = 3
    TEMPLATE = 4
    NETWORK = 5
    REFUSED = 6
    DUPLICATE = 7
    LOCKED = 8
    WAITING = 9  # nothing failed, but something waits for the user (a message in doubt)


class MailerError(Exception):
    """Base class: a problem the user can act on, reported in one line."""

    exit_code: ExitCode = ExitCode.FAILURE
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class ConfigError(MailerError):
    """One or more problems in configuration; all are reported together."""

    exit_code = ExitCode.CONFIG

    def __init__(self, problems: list[str] | str, *, hint: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems), hint=hint)


class InputError(MailerError):
    """A bad fact from the command line or a campaign entry (address, header, date)."""

    exit_code = ExitCode.USAGE


class TemplateError(MailerError):
    """A template could not be rendered: missing variable, leftover placeholder, syntax."""

    exit_code = ExitCode.TEMPLATE


class DeliveryError(MailerError):
    """SMTP or IMAP trouble. ``kind`` is one of the classes the sender reports."""

    exit_code = ExitCode.NETWORK

    def __init__(
        self,
        message: str,
        *,
        kind: str = "connection",
        temporary: bool = False,
        hint: str | None = None,
        code: int | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.kind = kind
        self.temporary = temporary
        self.code = code  # the server's reply code, when it gave one


class DuplicateError(MailerError):
    """Sending this would repeat an apology that already went out (or may have)."""

    exit_code = ExitCode.DUPLICATE

    def __init__(self, message: str, *, state: str = "", hint: str | None = None) -> None:
        super().__init__(f"{message} ({state})" if state else message, hint=hint)
        self.headline = message  # without the state, for a campaign's one-line summary
        self.state = state


class StateError(MailerError):
    """The state store is unreadable, locked or from a newer version."""

    exit_code = ExitCode.FAILURE


class ClaimError(StateError):
    """Another process holds the message, or it no longer wants sending: nothing was sent."""


class SandboxError(MailerError):
    """The local sandbox mail server could not be started, stopped or found."""

    exit_code = ExitCode.FAILURE


class RefusedError(MailerError):
    """The apology check found errors: sending is refused unless forced."""

    exit_code = ExitCode.REFUSED


class SignInError(DeliveryError):
    """An OAuth2 sign-in is missing, expired or revoked, or the provider refused it. The
    account's work waits (queued, not failed) until the user signs in again."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, kind="signin", hint=hint)
