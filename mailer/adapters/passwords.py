"""Where a server's password comes from: the environment or ``.env``, a command, the system
keyring, or a prompt on the terminal.

A password is fetched on first use and kept for the rest of the process, so a command runs
(or a prompt asks) once however many connections follow. Failures are one line naming the
config key; the output of a password command is never shown, since it may be the password.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from mailer.errors import ConfigError

SOURCES = ("env", "command", "keyring", "prompt")
KEYRING_SERVICE = "mailer"
COMMAND_TIMEOUT = 30.0  # seconds: long enough to type a GPG passphrase into pinentry
# Keys that hold a password's *source*, not a password: never refused as literal secrets.
SOURCE_KEYS = ("password_source", "password_command", "password_command_timeout")

POINTER = (
    'set password_source = "env" (MAILER_..._PASSWORD in .env), "command" '
    '(password_command = ["pass", "show", "mail/you"]), "keyring" '
    "('mailer auth set-password') or \"prompt\""
)


@dataclass(frozen=True)
class PasswordSource:
    """How to get one server's password. ``key`` is the config table, for messages
    (``/ws/config/mailer.toml: accounts.anna.smtp``)."""

    kind: str
    key: str
    env_var: str = ""
    env_value: str = field(default="", repr=False)
    command: tuple[str, ...] = ()
    timeout: float = COMMAND_TIMEOUT
    cwd: Path | None = None
    keyring_user: str = ""
    label: str = ""  # what a prompt asks for: "SMTP password for you@example.com"
    # Used when this one has nothing: the IMAP password falls back to the SMTP one.
    fallback: PasswordSource | None = None


_cache: dict[PasswordSource, str] = {}
# Within failures_remembered: the sources that failed, and how.
_failed: dict[PasswordSource, ConfigError] | None = None


@contextmanager
def failures_remembered() -> Iterator[None]:
    """Within it, a source that failed fails again in the same words without being asked
    again: ``doctor`` checks SMTP and IMAP with one password, and ran a failing command (or
    a pinentry prompt) twice. Not for the daemon: a source that fails once may work later."""
    global _failed
    _failed = {}
    try:
        yield
    finally:
        _failed = None


def keyring_user(account: str, server: str, user: str) -> str:
    """The keyring entry's user name: ``main:smtp:you@example.com``."""
    return f"{account or 'main'}:{server}:{user}"


def resolve(source: PasswordSource) -> str:
    """The password, fetched once per process. "" only for an unset environment variable
    (the caller names the variable); every other failure raises ConfigError."""
    if source.kind == "env":
        if source.env_value:
            return source.env_value
        return resolve(source.fallback) if source.fallback else ""
    if source in _cache:
        return _cache[source]
    if _failed is not None and source in _failed:
        raise _failed[source]
    try:
        if source.kind == "command":
            password = _from_command(source)
        elif source.kind == "keyring":
            password = _from_keyring(source)
        else:
            password = _from_prompt(source)
    except ConfigError as exc:
        if _failed is not None:
            _failed[source] = exc
        raise
    _cache[source] = password
    return password


def _from_command(source: PasswordSource) -> str:
    import subprocess

    where = f"{source.key}.password_command"
    program = source.command[0]
    try:
        # No shell, our stdin kept from it, and its output never repeated: it is the secret.
        proc = subprocess.Popen(
            source.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=source.cwd,
        )
    except FileNotFoundError:
        raise ConfigError(f"{where}: program {program!r} not found") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot run {program!r}: {exc.strerror}") from None
    stdout = _output(proc, source.timeout)
    if stdout is None:
        _stop_with_children(proc)
        raise ConfigError(
            f"{where}: {program!r} did not finish within {source.timeout:g} s and was stopped "
            f"(raise {source.key}.password_command_timeout if it waits for you)"
        ) from None
    if proc.returncode != 0:
        status = (
            f"was killed by signal {-proc.returncode}"
            if proc.returncode < 0
            else f"exited with status {proc.returncode}"
        )
        raise ConfigError(f"{where}: {program!r} {status} (its output is not shown)")
    try:
        text = stdout.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: {program!r} printed something that is not UTF-8") from None
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise ConfigError(
            f"{where}: {program!r} exited with status 0 but printed no password on its first line"
        )
    return lines[0]


# How long the output of a command that has exited is read on for, while a program it left
# running holds it open: what the command wrote before it exited is in the pipe already.
_AFTER_EXIT = 0.2


def _output(proc: Any, timeout: float) -> bytes | None:
    """The command's output once it has exited, or None if it is still running at
    ``timeout``. Its end is not waited for (on POSIX): a program the command started to run
    on (an agent) may hold the pipe open for ever, and the command is done when it exits.
    That program is the command's business, and is left running."""
    import subprocess

    if sys.platform == "win32":
        # There communicate reads on threads: a timeout carries none of the output, and
        # closing a pipe a thread still reads waits for whatever holds it open. So the
        # output is read to its end, as it always was.
        try:
            return bytes(proc.communicate(timeout=timeout)[0])
        except subprocess.TimeoutExpired:
            return None
    deadline = time.monotonic() + timeout
    exited_at: float | None = None
    while True:
        now = time.monotonic()
        # Short slices: communicate keeps what it read, and is asked again.
        step = _AFTER_EXIT if exited_at is not None else min(0.1, max(deadline - now, 0.0))
        try:
            stdout: bytes = proc.communicate(timeout=step)[0]
            return stdout
        except subprocess.TimeoutExpired as exc:
            if exited_at is not None:  # exited, and its output read for _AFTER_EXIT since
                for pipe in (proc.stdout, proc.stderr):
                    if pipe is not None:
                        pipe.close()
                return exc.output or b""
            if proc.poll() is not None:
                exited_at = time.monotonic()
            elif time.monotonic() >= deadline:
                return None


def _stop_with_children(proc: Any) -> None:
    """Stop a password command and every program it started (pass -> gpg -> pinentry): killed
    alone, it left them running, orphaned. Its children are found before it is stopped
    (after, they belong to init). Not a process group of its own: that would take it off
    the terminal a program of it may ask on."""
    import psutil

    try:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.Error:
        family = []
    for p in family:
        with suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(family, timeout=2)
    for p in alive:
        with suppress(psutil.Error):
            p.kill()
    proc.kill()  # (gone already, unless psutil could not see it)
    # Reaped, and its pipes closed unread: a program it left to run on (now init's) may
    # hold them open, and reading them to their end would wait for that program.
    proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


# Held while keyring is imported, and while yagmail is imported without it (see
# without_keyring): an import of keyring on another thread in that moment would fail.
_keyring_import = threading.Lock()


def keyring_module() -> ModuleType:
    """The keyring package (an ImportError if it cannot be imported)."""
    with _keyring_import:
        import keyring
    return keyring


@contextmanager
def without_keyring() -> Iterator[None]:
    """Imports inside this find no keyring: for yagmail, which imports it at its top for a
    password it is never asked for here (we always give it one, or sign in ourselves), and
    takes a failed import as "no keyring". keyring loads its backends' entry points, 20 to
    40 ms of every send. Our own users (keyring_module) import the real one after."""
    with _keyring_import:
        blocked = "keyring" not in sys.modules
        if blocked:
            sys.modules["keyring"] = None  # type: ignore[assignment]  # (the import fails)
        try:
            yield
        finally:
            if blocked and sys.modules.get("keyring", 0) is None:
                del sys.modules["keyring"]


def _from_keyring(source: PasswordSource) -> str:
    keyring = keyring_module()

    users = [source.keyring_user]
    fallback = source.fallback
    if fallback is not None and fallback.kind == "keyring":
        users.append(fallback.keyring_user)  # the IMAP password falls back to the SMTP one
    for user in users:
        try:
            password = keyring.get_password(KEYRING_SERVICE, user)
        except Exception as exc:  # backends raise their own errors (D-Bus, locked, absent)
            raise ConfigError(
                f"{source.key}.password_source: the keyring cannot be read "
                f"({type(exc).__name__}: {exc})"
            ) from None
        if password:
            return password
    raise ConfigError(
        f"{source.key}.password_source: the keyring has no password for {users[0]!r} "
        f"(service {KEYRING_SERVICE!r})",
        hint="store it with 'mailer auth set-password'",
    )


def _from_prompt(source: PasswordSource) -> str:
    if sys.stdin is None or not sys.stdin.isatty():  # (None: stdin closed, <&-)
        raise ConfigError(
            f'{source.key}.password_source: "prompt" needs a terminal to ask on, and there is '
            'none; use "keyring" or "command" for unattended runs'
        )
    import getpass

    try:
        password = getpass.getpass(f"{source.label}: ")
    except EOFError:
        password = ""
    if not password:
        raise ConfigError(f"{source.key}.password_source: no password was typed")
    return password


def describe(source: PasswordSource | None, default: str) -> str:
    """Where a refused password came from, for the hint after an authentication failure."""
    while source is not None and source.kind == "env" and not source.env_value:
        source = source.fallback
    if source is None or source.kind == "env":
        return source.env_var if source is not None else default
    key = source.key.rsplit(": ", 1)[-1]
    return {
        "command": f"what {key}.password_command prints",
        "keyring": f"the keyring's {source.keyring_user!r} ('mailer auth set-password')",
    }.get(source.kind, "the password you typed")


def uses_prompt(settings: Any) -> list[str]:
    """The config keys of servers whose password would be asked for on the terminal."""
    found = []
    for name in settings.account_names:
        account = settings.for_account(name)
        for server in (account.smtp, account.imap):
            source = server.secret
            while source is not None and source.kind == "env" and not source.env_value:
                source = source.fallback
            if source is not None and source.kind == "prompt":
                found.append(f"{server.secret.key}.password_source")
    return found


def unlock(settings: Any, names: Iterable[str] | None = None) -> None:
    """Fetch the passwords of these accounts (all by default) now, before anything is
    recorded or sent, and report every one that cannot be had at once."""
    from mailer.adapters.config import account_secret

    problems: list[str] = []
    hint = None
    for name in settings.account_names if names is None else names:
        account = settings.for_account(name)
        smtp_failed = False
        for server in (account.smtp, account.imap):
            if getattr(server, "auth", "password") == "oauth2":
                continue  # signs in with a token (mailer.adapters.oauth), not a password
            inherits = server.secret is not None and account.smtp.secret in (
                server.secret,
                server.secret.fallback,
            )
            if server is account.imap and smtp_failed and inherits:
                continue  # the IMAP password would be the SMTP one: one problem, not two
            try:
                password = server.password
            except ConfigError as exc:
                problems += [p for p in exc.problems if p not in problems]
                hint = exc.hint or hint
                smtp_failed = server is account.smtp
                continue
            if not password and server is account.smtp:
                var = account_secret(name, "smtp") if name else "MAILER_SMTP_PASSWORD"
                problems.append(
                    f"{var}: not set in the environment or {settings.workspace / '.env'}"
                )
    if problems:
        raise ConfigError(problems, hint=hint)


def store_in_keyring(user: str, password: str) -> str:
    """Store one password; returns the backend's name, for the user to see where it went."""
    keyring = keyring_module()

    try:
        keyring.set_password(KEYRING_SERVICE, user, password)
    except Exception as exc:  # backends raise their own errors (D-Bus, locked, absent)
        raise ConfigError(
            f"keyring: cannot store the password for {user!r} ({type(exc).__name__}: {exc})"
        ) from None
    _cache.clear()  # a password read earlier in this process is stale now
    backend = keyring.get_keyring()
    return f"{type(backend).__module__}.{type(backend).__name__}"
