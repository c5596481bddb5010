"""IMAP folders in memory, behind :class:`mailer.adapters.mailbox.Mailbox`'s interface.

:class:`FakeImap` is the server: users, and for each its folders with a UIDVALIDITY, a UIDNEXT
(UIDs only grow; a message's UID is never reused), internal dates and a ``\\Sent``
special-use folder. :class:`FakeMailbox` is one logged-in session with the methods and
attributes the watcher, the checker and the sender use on a ``Mailbox`` (``selected``,
``unread``, ``positions`` included) and the IDLE calls ``IdleWatcher`` makes.

As on a real server, a selected folder is seen through the session's *view*: mail delivered
after SELECT is not visible to a search or fetch until :meth:`FakeMailbox.refresh` (NOOP)
brings the view up to date, and ``refresh`` then says the folder may hold unread mail.

Where it differs from Dovecot (see tests/contract/test_imap_contract.py): STATUS always
answers from the truth (Dovecot answers a selected folder's STATUS from the stale view, which
is why the watcher unselects), and no server-added trace headers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.parser import BytesHeaderParser
from typing import Any

from mailer.adapters.config import ImapSettings
from mailer.adapters.connection import Connection, network_error
from mailer.adapters.passwords import describe
from mailer.errors import ConfigError, DeliveryError

# What Mailbox's header fetch asks for (mailbox._HEADER_ITEM), and its 64 KB cap.
HEADER_FIELDS = ("message-id", "in-reply-to", "references", "from", "subject", "content-type")
HEADER_LIMIT = 65536
BODY_LIMIT = 1024 * 1024  # mailbox.BODY_LIMIT


@dataclass
class _Message:
    uid: int
    raw: bytes
    internal_date: datetime
    flags: tuple[bytes, ...] = ()


@dataclass
class _Folder:
    name: str
    uidvalidity: int
    special_use: str = ""
    uidnext: int = 1
    messages: dict[int, _Message] = field(default_factory=dict)

    def add(self, raw: bytes, when: datetime, flags: tuple[bytes, ...] = ()) -> int:
        uid = self.uidnext
        self.uidnext += 1
        self.messages[uid] = _Message(uid, bytes(raw), when, flags)
        return uid


class FakeImap:
    """The server. ``users``: login -> password. Each user starts with INBOX and a Sent
    folder marked ``\\Sent`` (as the sandbox's Dovecot does)."""

    def __init__(self, users: dict[str, str] | None = None, *, sent: str = "Sent") -> None:
        self.passwords: dict[str, str] = {}
        self.folders: dict[str, dict[str, _Folder]] = {}
        self.sent = sent
        self.down = 0  # refuse the next N connections
        self.sessions: list[FakeMailbox] = []
        self._uidvalidity = 1000
        # Wakes IDLE waiters: notified on every delivery.
        self.changed = threading.Condition()
        for user, password in (users or {}).items():
            self.add_user(user, password)

    def add_user(self, user: str, password: str) -> None:
        user = user.lower()
        self.passwords[user] = password
        self.folders.setdefault(user, {})
        self.create_folder("INBOX", user=user)
        if self.sent:
            self.create_folder(self.sent, user=user, special_use="\\Sent")

    def has_user(self, user: str) -> bool:
        return user.lower() in self.passwords

    def create_folder(self, name: str, *, user: str | None = None, special_use: str = "") -> None:
        folders = self.folders[self._user(user)]
        if name not in folders:
            self._uidvalidity += 1
            folders[name] = _Folder(name, self._uidvalidity, special_use)

    def recreate_folder(self, name: str, *, user: str | None = None) -> None:
        """Delete and create ``name`` again: a new UIDVALIDITY, and its old UIDs mean nothing."""
        folders = self.folders[self._user(user)]
        old = folders.pop(name)
        self._uidvalidity += 1
        folders[name] = _Folder(name, self._uidvalidity, old.special_use)

    def deliver(
        self,
        folder: str,
        raw: bytes,
        when: datetime | None = None,
        *,
        user: str | None = None,
        flags: tuple[bytes, ...] = (),
    ) -> int:
        """Put a message in a folder, as mail arriving (or another client's APPEND) would.
        Returns its UID. ``user`` may be left out when the server has one user."""
        box = self.folders[self._user(user)][folder]
        with self.changed:
            uid = box.add(raw, when or datetime.now(UTC), flags)
            self.changed.notify_all()
        return uid

    def messages(self, folder: str, *, user: str | None = None) -> dict[int, bytes]:
        """UID -> bytes of every message in a folder (for assertions)."""
        box = self.folders[self._user(user)][folder]
        return {uid: m.raw for uid, m in sorted(box.messages.items())}

    def drop_connections(self) -> None:
        """Close every open session, as a server restart would; an IDLE returns at once."""
        with self.changed:
            for session in self.sessions:
                session._dropped = True
            self.changed.notify_all()

    def session(self, settings: ImapSettings) -> FakeMailbox:
        return FakeMailbox(settings, self)

    __call__ = session  # the ``mailbox=`` factory the callers take

    def _user(self, user: str | None) -> str:
        if user is None:
            if len(self.passwords) != 1:
                raise ValueError("name the user: this server has several")
            return next(iter(self.passwords))
        return user.lower()


class FakeMailbox(Connection):
    """One logged-in session on a :class:`FakeImap`. Use it as a context manager."""

    SERVICE = "IMAP"

    def __init__(self, settings: ImapSettings, server: FakeImap) -> None:
        if settings.auth == "password" and not settings.password:
            raise ConfigError(
                "MAILER_IMAP_PASSWORD: not set in the environment or .env "
                "(MAILER_SMTP_PASSWORD is used when it is missing)"
            )
        self.settings = settings
        self.server = server
        self.client: Any = None  # a truthy marker while connected, as Mailbox's client
        self.selected: tuple[str, int] | None = None
        self.unread = False
        self.positions: dict[str, tuple[int, int]] = {}
        self._user = ""
        self._view = 0  # UIDNEXT of the selected folder as this session last saw it
        self._dropped = False
        self._idling = False

    def connect(self) -> None:
        s = self.settings
        if self.server.down > 0:
            self.server.down -= 1
            raise network_error(
                ConnectionRefusedError(111, "Connection refused"), "IMAP", s.host, s.port, s.timeout
            )
        user = s.username.lower()
        if self.server.passwords.get(user) != s.password:
            raise DeliveryError(
                f"{self.where}: authentication failed for user '{s.username}' "
                "([AUTHENTICATIONFAILED] Authentication failed.)",
                kind="auth",
                hint=f"check {describe(s.secret, 'MAILER_IMAP_PASSWORD')} (Gmail needs an app password)",
            )
        self._user = user
        self.client = self
        self.selected = None
        self.unread = False
        self.positions.clear()
        self._dropped = False
        self.server.sessions.append(self)

    def close(self) -> None:
        if self in self.server.sessions:
            self.server.sessions.remove(self)
        self.client = None
        self.selected = None
        self.unread = False
        self.positions.clear()

    # --- helpers ---

    def _live(self, what: str) -> None:
        if self.client is None or self._dropped:
            raise DeliveryError(f"{self.where}: cannot {what}: socket error: EOF", kind="protocol")

    def _folder(self, name: str, what: str) -> _Folder:
        self._live(what)
        folder = self.server.folders[self._user].get(name)
        if folder is None:
            raise DeliveryError(
                f"{self.where}: cannot {what}: select failed: Mailbox doesn't exist: {name}",
                kind="protocol",
            )
        return folder

    def _current(self, what: str) -> _Folder:
        self._live(what)
        if self.selected is None:
            raise DeliveryError(
                f"{self.where}: cannot {what}: command illegal in state AUTH", kind="protocol"
            )
        folder = self.server.folders[self._user].get(self.selected[0])
        if folder is None or folder.uidvalidity != self.selected[1]:
            raise DeliveryError(
                f"{self.where}: cannot {what}: the folder was deleted", kind="protocol"
            )
        return folder

    def _visible(self, folder: _Folder) -> list[_Message]:
        return [m for uid, m in sorted(folder.messages.items()) if uid < self._view]

    # --- Sent copies ---

    def sent_folder(self) -> str:
        if self.settings.sent_folder:
            return self.settings.sent_folder
        self._live("find the Sent folder")
        for folder in self.server.folders[self._user].values():
            if folder.special_use == "\\Sent":
                return folder.name
        raise DeliveryError(
            f"{self.where}: no folder is marked \\Sent",
            kind="protocol",
            hint="set imap.sent_folder in config/mailer.toml",
        )

    def append_sent(self, raw: bytes, when: datetime) -> str:
        name = self.sent_folder()
        folder = self._folder(name, f"append to {name}")
        with self.server.changed:
            folder.add(raw, when, (b"\\Seen",))
            self.server.changed.notify_all()
        return name

    def append_sent_many(self, copies: list[tuple[bytes, datetime]]) -> str:
        name = self.sent_folder()
        folder = self._folder(name, f"append to {name}")
        with self.server.changed:
            for raw, when in copies:
                folder.add(raw, when, (b"\\Seen",))
            self.server.changed.notify_all()
        return name

    # --- watching ---

    def select(self, folder: str) -> tuple[int, int]:
        try:
            box = self._folder(folder, f"open {folder}")
        except DeliveryError:
            self.selected = None  # as a failed SELECT leaves no folder open
            raise
        self.selected = (folder, box.uidvalidity)
        self._view = box.uidnext
        self.unread = True
        return box.uidvalidity, box.uidnext

    def refresh(self) -> bool:
        box = self._current("refresh the folder")
        if box.uidnext > self._view:
            self._view = box.uidnext
            self.unread = True
        return self.unread

    def status(self, folder: str) -> tuple[int, int]:
        box = self._folder(folder, f"get the status of {folder}")
        return box.uidvalidity, box.uidnext

    def unselect(self) -> None:
        self._current("unselect")
        self.selected = None
        self.unread = False

    def uids_after(self, last_uid: int) -> list[int]:
        box = self._current("search")
        return [m.uid for m in self._visible(box) if m.uid > last_uid]

    def fetch_headers_after(self, last_uid: int) -> dict[int, bytes]:
        box = self._current("fetch headers")
        return {m.uid: _header_fields(m.raw) for m in self._visible(box) if m.uid > last_uid}

    def uids_since(self, day: date) -> list[int]:
        box = self._current("search")
        # SINCE compares dates only, in the server's zone (UTC here).
        return [m.uid for m in self._visible(box) if m.internal_date.astimezone(UTC).date() >= day]

    def fetch_headers(self, uids: list[int]) -> dict[int, bytes]:
        box = self._current("fetch headers")
        seen = {m.uid: m for m in self._visible(box)}
        return {uid: _header_fields(seen[uid].raw) for uid in uids if uid in seen}

    def internal_dates(self, uids: list[int]) -> dict[int, datetime]:
        box = self._current("fetch dates")
        seen = {m.uid: m for m in self._visible(box)}
        return {uid: seen[uid].internal_date for uid in uids if uid in seen}

    def fetch_raw(self, uid: int, limit: int = BODY_LIMIT) -> bytes:
        box = self._current("fetch a message")
        seen = {m.uid: m for m in self._visible(box)}
        return seen[uid].raw[:limit] if uid in seen else b""

    def other_folders(self, watched: tuple[str, ...]) -> list[str]:
        from mailer.adapters.mailbox import other_folders

        self._live("list folders")
        listed = [
            (f.special_use.split(), name) for name, f in self.server.folders[self._user].items()
        ]
        return other_folders(listed, watched, self.settings.sent_folder)

    def uids_referring_to(
        self, message_ids: list[str], since: date, senders: tuple[str, ...] = ()
    ) -> list[int]:
        box = self._current("search")
        bare = [m.strip().strip("<>").lower() for m in message_ids]
        wanted = [s.lower() for s in senders if s]
        found = []
        for m in self._since(box, since):
            headers = BytesHeaderParser().parsebytes(m.raw)
            refs = f"{headers.get('In-Reply-To', '')} {headers.get('References', '')}".lower()
            sender = str(headers.get("From", "")).lower()
            # HEADER and FROM searches are case-insensitive substring matches.
            if any(b in refs for b in bare) or any(w in sender for w in wanted):
                found.append(m.uid)
        return found

    def uids_with_subject(self, subject: str, since: date) -> list[int]:
        from email.header import decode_header, make_header

        from mailer.adapters.mailbox import subject_pieces

        box = self._current("search")
        wanted = [p.lower() for p in subject_pieces(subject)]
        found = []
        for m in self._since(box, since):
            value = BytesHeaderParser().parsebytes(m.raw).get("Subject", "")
            # SUBJECT is searched decoded (RFC 2047), white space folded, as Dovecot does.
            text = " ".join(str(make_header(decode_header(str(value)))).split()).lower()
            if wanted and all(p in text for p in wanted):
                found.append(m.uid)
        return found

    def uids_with_any_subject(self, subjects: list[str], since: date) -> list[int]:
        from mailer.adapters.mailbox import subject_key

        # Each subject by its longest piece alone, as Mailbox searches it.
        keys = [key for s in subjects if (key := subject_key(s))]
        found = {uid for key in keys for uid in self.uids_with_subject(key, since)}
        return sorted(found)

    def _since(self, box: _Folder, day: date) -> list[_Message]:
        # SINCE compares dates only, in the server's zone (UTC here).
        return [m for m in self._visible(box) if m.internal_date.astimezone(UTC).date() >= day]

    def contains_message_id(self, folder: str, message_id: str) -> bool:
        box = self._folder(folder, f"open {folder}")
        self.select(folder)
        # IMAP's HEADER search is a case-insensitive substring match.
        want = message_id.lower()
        for m in box.messages.values():
            value = BytesHeaderParser().parsebytes(m.raw).get("Message-ID")
            if value is not None and want in str(value).lower():
                return True
        return False

    # --- IDLE (what IdleWatcher asks of a Mailbox) ---

    def idle_capable(self) -> bool:
        self._live("read capabilities")
        return True

    def idle_select(self, folder: str) -> None:
        self.select(folder)

    def idle(self) -> None:
        self._live("idle")
        self._idling = True

    def idle_check(self, timeout: float) -> list[tuple[Any, ...]]:
        """Wait up to ``timeout`` for new mail in the selected folder: its untagged EXISTS,
        or ``[]``. A dropped connection returns ``[]`` at once, as imapclient's does."""
        box = self._current("idle")
        with self.server.changed:
            self.server.changed.wait_for(lambda: self._dropped or box.uidnext > self._view, timeout)
        if self._dropped:
            return []
        if box.uidnext > self._view:
            self._view = box.uidnext
            return [(len(box.messages), b"EXISTS")]
        return []

    def idle_done(self) -> None:
        self._idling = False


def _header_fields(raw: bytes) -> bytes:
    """The matcher's header fields, in the message's order, ending in an empty line, at most
    64 KB: what ``BODY.PEEK[HEADER.FIELDS (...)]<0.65536>`` answers."""
    head = raw.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in raw else raw.split(b"\n\n", 1)[0]
    out: list[bytes] = []
    keep = False
    for line in head.splitlines(keepends=True):
        if line[:1] not in (b" ", b"\t"):  # a new field; else a folded line of the last
            name = line.split(b":", 1)[0].strip().lower().decode("ascii", "replace")
            keep = b":" in line and name in HEADER_FIELDS
        if keep:
            out.append(line.rstrip(b"\r\n") + b"\r\n")
    return (b"".join(out) + b"\r\n")[:HEADER_LIMIT]
