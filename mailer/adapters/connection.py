"""What SMTP and IMAP connections share: verified TLS and one wording for network failures."""

from __future__ import annotations

import contextlib
import functools
import re
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

from mailer.errors import ConfigError, DeliveryError


class Connection:
    """What an SMTP or IMAP connection (real or fake) shows its users alike: the server it
    goes to, named the same way in every error, and a context manager that connects and
    closes."""

    SERVICE: ClassVar[str]  # "SMTP" or "IMAP"
    settings: Any  # with .host and .port

    @property
    def where(self) -> str:
        return f"{self.SERVICE} {self.settings.host}:{self.settings.port}"

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def connect(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """Certificates and host names are always verified; ``ca_file`` adds a private CA.

    Built once per CA file (and its modification time): loading the system's certificates
    takes 15 to 60 ms, and one context can serve any number of connections."""
    key = _key(ca_file)
    warming = _warming.get(key)
    if warming is not None:
        warming.join()  # then the cache has it, or its error is raised again just below
    return _context(*key)


def warm_tls_contexts(*ca_files: Path | None) -> None:
    """Start building the contexts that connections will soon need, each on a thread of its
    own. OpenSSL reads the certificates without holding the interpreter's lock, so this
    overlaps what the command does before it connects (a campaign checks every entry
    first) instead of coming after it. A CA file that cannot be loaded is reported by the
    connection that needs it, as ever (tls_context builds it again)."""
    import threading

    for ca_file in dict.fromkeys(ca_files):
        key = _key(ca_file)
        if key in _warming:
            continue
        # Not a daemon thread: the interpreter waits for it (at most the build) before it
        # exits. A daemon one still inside OpenSSL while the process tears OpenSSL down
        # crashed a command that failed quickly (a bad --interview: SIGSEGV in 7 of 30).
        thread = threading.Thread(target=_warm, args=key, name="tls-context")
        try:
            thread.start()
        except RuntimeError:  # no thread to be had (a pids limit): built when needed
            return
        _warming[key] = thread


# The thread that built (or is building) a context, by _key: any thread that needs that
# context waits for it (a finished thread is joined at once).
_warming: dict[tuple[Path | None, int], Any] = {}


def _key(ca_file: Path | None) -> tuple[Path | None, int]:
    stamp = ca_file.stat().st_mtime_ns if ca_file is not None and ca_file.exists() else 0
    return ca_file, stamp


def _warm(ca_file: Path | None, stamp: int) -> None:
    with contextlib.suppress(Exception):  # said by tls_context, which tries again (above)
        _context(ca_file, stamp)


@functools.lru_cache(maxsize=8)
def _context(ca_file: Path | None, _stamp: int) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if ca_file is not None:
        try:
            ctx.load_verify_locations(cafile=str(ca_file))
        except OSError:
            # Checked at config load (its header only); refused or changed since: one line.
            problem = openssl_problem(ca_file)  # each names the file
            raise ConfigError(problem or f"{ca_file}: cannot be loaded") from None
    return ctx


def openssl_problem(path: Path) -> str | None:
    """What is wrong with ``path`` as a CA file, or None: the config's check (which looks
    only for a PEM header), then OpenSSL's, for a connection whose CA file fails to load."""
    from mailer.adapters.config import ca_file_problem

    if (problem := ca_file_problem(path)) is not None:
        return problem
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(path))
    except ssl.SSLError as exc:
        # "[X509: NO_CERTIFICATE_OR_CRL_FOUND] no certificate or crl found (_ssl.c:4154)"
        why = re.sub(r"^\[[^\]]*\]\s*|\s*\(_ssl\.c:\d+\)$", "", str(exc)) or str(exc)
        return f"{path} is not a PEM certificate ({why})"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    return None


def network_error(
    exc: BaseException,
    service: str,
    host: str,
    port: int,
    timeout: float,
    *,
    scrub: Callable[[str], str] = str,
) -> DeliveryError:
    """Map a low-level failure to one line that names the server. ``scrub`` cleans the text
    of an unforeseen exception, which may quote the server (see :mod:`mailer.model.redact`)."""
    where = f"{service} {host}:{port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return DeliveryError(
            f"{where}: TLS certificate not trusted ({exc.verify_message})",
            kind="certificate",
            hint=f"if the server uses a private CA, set {service.lower()}.ca_file in config/mailer.toml",
        )
    if isinstance(exc, ssl.SSLError):
        return DeliveryError(
            f"{where}: TLS handshake failed ({exc.reason or exc})",
            kind="tls",
            hint=f"check {service.lower()}.port and {service.lower()}.security",
        )
    if isinstance(exc, ConnectionRefusedError):
        return DeliveryError(
            f"{where}: connection refused",
            kind="connection",
            temporary=True,
            hint="check the host and port, and that the server is running",
        )
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return DeliveryError(
            f"{where}: timed out after {timeout:g} s", kind="timeout", temporary=True
        )
    if isinstance(exc, socket.gaierror):
        return DeliveryError(
            f"{where}: cannot resolve the host name ({exc.strerror})", kind="connection"
        )
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, EOFError)):
        return DeliveryError(
            f"{where}: the server dropped the connection", kind="connection", temporary=True
        )
    return DeliveryError(
        f"{where}: {type(exc).__name__}: {scrub(str(exc))}", kind="connection", temporary=True
    )
