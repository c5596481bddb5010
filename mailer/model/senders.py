"""Who sent a message: a delivery system (MAILER-DAEMON, postmaster, ...) or not.

One definition, used by the watcher's header matching (whether to read a message's body as a
report) and by the classifier (whether failure wording in it is a delivery system speaking).
Pure: strings in, a bool out.
"""

from __future__ import annotations

import re

__all__ = ["is_delivery_system", "is_delivery_system_local"]

# Local parts that delivery systems send from ("bounces+tag@" is a VERP bounce address).
_DAEMON_LOCAL = re.compile(
    r"^(?:mailer[-_.]?daemon|mail[-_.]?daemon|mdaemon|p(?:o|oo)stmaster|post[-_.]master|"
    r"mail[-_.]?delivery[-_.]?(?:system|subsystem|service)?|mailadm|bounces?(?:\+.*)?|ndr|"
    r"microsoftexchange[0-9a-f]{32})$",
    re.IGNORECASE,
)
_DAEMON_ANYWHERE = re.compile(r"\b(?:mailer-daemon|mail-daemon|postmaster|mdaemon)@", re.I)
_DAEMON_NAME = re.compile(
    r"mail(?:er)?[-_ ]?daemon|mail delivery (?:sub)?system|mail delivery service|"
    r"\bpostmaster\b|ndr administrator|mail administrator|delivery status notification|"
    r"\bsystem administrator\b|mail system|automated response from .{0,100}postmaster",
    re.IGNORECASE,
)
# A display name longer than this is no mail system's: it is not searched (bounded work).
_MAX_NAME = 200
_MAX_RAW = 4_000
_DAEMON_RETURN_PATH = re.compile(r"^mailer[-_.]?daemon(?:@|$)", re.IGNORECASE)


def is_delivery_system_local(local: str) -> bool:
    """Whether an address's local part is one delivery systems send from."""
    return bool(local and _DAEMON_LOCAL.match(local.strip()))


def is_delivery_system(
    addr: str, name: str = "", raw_from: str = "", return_path: str | None = None
) -> bool:
    """Whether the sender is a mail system: by its address, its display name, anywhere in
    the raw From (a broken header still names ``MAILER-DAEMON@``), or its return path.

    A null return path is not enough: RFC 3834 vacation replies have one too.
    """
    return (
        is_delivery_system_local(addr.rpartition("@")[0] if "@" in addr else addr)
        or bool(name and _DAEMON_NAME.search(name[:_MAX_NAME]))
        or bool(raw_from and _DAEMON_ANYWHERE.search(raw_from[:_MAX_RAW]))
        or bool(return_path and _DAEMON_RETURN_PATH.match(return_path))
    )
