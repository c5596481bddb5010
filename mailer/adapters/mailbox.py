"""IMAP access: the only module that talks IMAP (imapclient)."""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import socket
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from mailer.adapters.config import ImapSettings
from mailer.adapters.connection import Connection, network_error, tls_context
from mailer.adapters.passwords import describe
from mailer.errors import ConfigError, DeliveryError
from mailer.model.redact import redactor

log = logging.getLogger(__name__)
# imapclient warns when a reply is not ASCII, quoting the server's raw bytes, which can carry
# an echoed password: the error it then raises reaches us and is cleaned like any other.
logging.getLogger("imapclient.util").setLevel(logging.ERROR)
# Only what the matcher reads, and at most 64 KB of it: anyone can mail us a 50 MB header.
_HEADER_ITEM = (
    b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID IN-REPLY-TO REFERENCES FROM SUBJECT CONTENT-TYPE)]"
    b"<0.65536>"
)
# What the classifier gets of a message that matched a thread: its beginning, where the
# headers, the text and a report's delivery-status part are (see mailer.model.excerpt).
BODY_LIMIT = 1024 * 1024


class Mailbox(Connection):
    """One logged-in IMAP connection. Use it as a context manager."""

    SERVICE = "IMAP"

    def __init__(self, settings: ImapSettings) -> None:
        if settings.auth == "password" and not settings.password:
            raise ConfigError(
                "MAILER_IMAP_PASSWORD: not set in the environment or .env "
                "(MAILER_SMTP_PASSWORD is used when it is missing)"
            )
        self.settings = settings
        # Every reply is cleaned of the credentials before it becomes an error.
        self._scrub = redactor(settings.username, settings.password)
        self.client: Any = None
        # (folder, UIDVALIDITY) while a folder stays selected between scans.
        self.selected: tuple[str, int] | None = None
        # The selected folder may hold messages the watcher has not read yet: set by SELECT
        # and by every EXISTS the server sends; cleared by the watcher once it has recorded a
        # position covering everything the folder showed.
        self.unread = False
        # Folder -> (UIDVALIDITY, last UID looked at), as last read from or written to the
        # state store by the watcher. It lives (and dies) with this connection, so a pass
        # on a kept connection need not read it back; the store stays the truth.
        self.positions: dict[str, tuple[int, int]] = {}
        self._sent = ""  # the \Sent folder, once found on this connection

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
            if s.auth == "oauth2":
                self._oauth2_login(client)
            else:
                _login(client, s.username, s.password)
        except _NoUtf8Mechanism:
            _quiet_logout(client)
            raise DeliveryError(
                f"{self.where}: the user name or password has non-ASCII characters, which only "
                "AUTHENTICATE PLAIN can carry, and the server does not offer it",
                kind="auth",
                hint="use a password of ASCII characters only, such as an app password",
            ) from None
        except LoginError as exc:
            _quiet_logout(client)
            if s.auth == "oauth2":
                raise _oauth_refusal(self.where, s, _text(exc, self._scrub)) from None
            raise DeliveryError(
                f"{self.where}: authentication failed for user '{s.username}' "
                f"({_text(exc, self._scrub)})",
                kind="auth",
                hint=f"check {describe(s.secret, 'MAILER_IMAP_PASSWORD')} (Gmail needs an app password)",
            ) from None
        except IMAPClientError as exc:
            _quiet_logout(client)
            raise DeliveryError(
                f"{self.where}: {_text(exc, self._scrub)}", kind="protocol"
            ) from None
        except OSError as exc:
            _quiet_logout(client)
            raise network_error(exc, "IMAP", s.host, s.port, s.timeout, scrub=self._scrub) from None
        except BaseException:
            _quiet_logout(client)  # a sign-in that failed before the login: no socket left open
            raise
        self.client = client
        self.selected = None
        self.unread = False
        self.positions.clear()
        self._sent = ""
        # imaplib writes an APPEND's message and its closing CRLF separately: with Nagle's
        # algorithm the CRLF waits for the server's delayed ACK (about 40 ms a copy).
        with contextlib.suppress(OSError, AttributeError):
            client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _oauth2_login(self, client: Any) -> None:
        """XOAUTH2 or OAUTHBEARER, with a token fetched (and refreshed if near its end) now."""
        from mailer.adapters.oauth import access_token

        s = self.settings
        assert s.oauth2 is not None
        from imapclient.exceptions import LoginError

        token = access_token(s)
        cleaners: list[Any] = []
        for attempt in (1, 2):
            # The token is this login's secret; after a refresh, a reply may quote either.
            cleaners.append(redactor(s.username, token))
            self._scrub = functools.partial(_clean_all, tuple(cleaners))
            try:
                if s.oauth2.mechanism == "oauthbearer":
                    client.oauthbearer_login(s.username, token)
                else:
                    client.oauth2_login(s.username, token)
                return
            except LoginError:
                if attempt == 2:
                    raise
            # Refused before its time (consent withdrawn, revoked early): a refresh tells
            # "sign-in expired" (SignInError) from a token that is refused as such.
            token = access_token(s, force_refresh=True)

    def close(self) -> None:
        _quiet_logout(self.client)
        self.client = None
        self.selected = None
        self.unread = False
        self.positions.clear()

    def sent_folder(self) -> str:
        """The configured Sent folder, else the one marked ``\\Sent`` (RFC 6154)."""
        from imapclient.imapclient import SENT

        if self.settings.sent_folder:
            return self.settings.sent_folder
        if self._sent:
            return self._sent  # one LIST per connection, not one per copy
        folder = self._call("find the Sent folder", self.client.find_special_folder, SENT)
        if not folder:
            raise DeliveryError(
                f"{self.where}: no folder is marked \\Sent",
                kind="protocol",
                hint="set imap.sent_folder in config/mailer.toml",
            )
        self._sent = str(folder)
        return self._sent

    def append_sent(self, raw: bytes, when: datetime) -> str:
        """Store exactly ``raw`` in the Sent folder, marked read. Returns the folder name."""
        folder = self.sent_folder()
        self._call(f"append to {folder}", self.client.append, folder, raw, (b"\\Seen",), when)
        return folder

    def append_sent_many(self, copies: list[tuple[bytes, datetime]]) -> str:
        """Several Sent copies in one command where the server offers MULTIAPPEND (RFC
        3502): one round trip for a batch instead of one (or two) per message."""
        folder = self.sent_folder()
        if len(copies) > 1 and b"MULTIAPPEND" in self._call(
            "read capabilities", self.client.capabilities
        ):
            batch = [{"msg": raw, "flags": (b"\\Seen",), "date": when} for raw, when in copies]
            self._call(f"append to {folder}", self.client.multiappend, folder, batch)
            return folder
        for raw, when in copies:
            self._call(f"append to {folder}", self.client.append, folder, raw, (b"\\Seen",), when)
        return folder

    # --- watching -----------------------------------------------------------------------

    def select(self, folder: str) -> tuple[int, int]:
        """Open ``folder`` read-only; returns (UIDVALIDITY, UIDNEXT)."""
        try:
            info = self._call(f"open {folder}", self.client.select_folder, folder, True)
        except DeliveryError:
            self.selected = None  # a SELECT that fails leaves no folder open (RFC 3501 6.3.1)
            raise
        self.selected = (folder, int(info[b"UIDVALIDITY"]))
        self._take_news()  # the EXISTS of the SELECT itself: UIDNEXT covers it
        self.unread = True
        return int(info[b"UIDVALIDITY"]), int(info.get(b"UIDNEXT", 0) or 0)

    def refresh(self) -> bool:
        """NOOP: lets the server bring the selected folder's view up to date (a SEARCH or
        FETCH alone would answer from the old view). True if the folder may hold messages
        the watcher has not read: new mail shows as an untagged EXISTS, in the NOOP's answer
        or in the answer to any earlier command since."""
        self._call("refresh the folder", self.client.noop)
        if self._take_news():
            self.unread = True
        return self.unread

    def _take_news(self) -> bool:
        news = _take_untagged_exists(self.client)
        return True if news is None else news  # None: cannot tell, so look

    def status(self, folder: str) -> tuple[int, int] | None:
        """(UIDVALIDITY, UIDNEXT) without selecting: cheap, so quiet passes stay cheap. None
        when the server's answer does not say them (a broken STATUS): the caller selects the
        folder instead, which tells the same, so such a server is still watched."""
        try:
            info = self._call(
                f"get the status of {folder}",
                self.client.folder_status,
                folder,
                [b"UIDVALIDITY", b"UIDNEXT"],
            )
            return int(info[b"UIDVALIDITY"]), int(info[b"UIDNEXT"])
        except DeliveryError as exc:
            if exc.kind != "protocol":  # the connection's trouble: the pass stops, as ever
                raise
            log.debug("%s; selecting it instead", exc)
        except (KeyError, ValueError, TypeError):
            log.debug("%s: STATUS of %s lacks UIDVALIDITY or UIDNEXT", self.where, folder)
        return None

    def unselect(self) -> None:
        """Leave the folder. STATUS on a selected folder answers from the session's stale view
        (Dovecot does), so a scan must not stay in the folder it will ask about next time."""
        if b"UNSELECT" in self._call("read capabilities", self.client.capabilities):
            self._call("unselect", self.client.unselect_folder)
        else:
            self._call("close the folder", self.client.close_folder)  # read-only: no expunge
        self.selected = None
        self.unread = False

    def uids_after(self, last_uid: int) -> list[int]:
        # "n:*" always includes the highest UID, even when it is below n: filter it out.
        found = self._call("search", self.client.search, ["UID", f"{last_uid + 1}:*"])
        return sorted(u for u in found if u > last_uid)

    def fetch_headers_after(self, last_uid: int) -> dict[int, bytes]:
        """The matcher's headers of every message above ``last_uid``: one UID FETCH of
        ``last+1:*``, with no SEARCH first. Call :meth:`refresh` before, or the server
        answers from its old view."""
        return self._call("fetch headers", self._fetch_range, last_uid)

    def _fetch_range(self, last_uid: int) -> dict[int, bytes]:
        out: dict[int, bytes] = {}
        for uid, item in _uid_fetch_from(self.client, last_uid + 1, _HEADER_ITEM).items():
            header = _header(item)
            # "n:*" always includes the highest UID, even when it is below n; and an
            # unsolicited FETCH (flags changed by another client) carries no header.
            if uid > last_uid and header is not None:
                out[uid] = header
        return out

    def uids_since(self, day: date) -> list[int]:
        return sorted(self._call("search", self.client.search, ["SINCE", day]))

    def fetch_headers(self, uids: list[int]) -> dict[int, bytes]:
        """Just the headers the matcher needs, for these UIDs only."""
        data: dict[int, Any] = {}
        # In batches: servers refuse over-long command lines (RFC 7162 suggests 8 KB).
        for i in range(0, len(uids), 500):
            batch = uids[i : i + 500]
            data.update(self._call("fetch headers", self.client.fetch, batch, [_HEADER_ITEM]))
        return {uid: _header(item) or b"" for uid, item in data.items()}

    def internal_dates(self, uids: list[int]) -> dict[int, datetime]:
        """When the server received these messages (INTERNALDATE), as aware local times.
        Asked only for messages that may concern a thread: parsing the dates doubled the
        client's share of a header fetch, and most new mail concerns no thread."""
        data: dict[int, Any] = {}
        for i in range(0, len(uids), 500):
            batch = uids[i : i + 500]
            data.update(self._call("fetch dates", self.client.fetch, batch, [b"INTERNALDATE"]))
        out: dict[int, datetime] = {}
        for uid, item in data.items():
            when = item.get(b"INTERNALDATE")
            if isinstance(when, datetime):
                out[uid] = when if when.tzinfo else when.astimezone()
        return out

    def fetch_raw(self, uid: int, limit: int = BODY_LIMIT) -> bytes:
        """At most the first ``limit`` bytes of a message (a partial FETCH): a 50 MB
        message is never read whole."""
        item = b"BODY.PEEK[]<0.%d>" % limit
        data = self._call("fetch a message", self.client.fetch, [uid], [item])
        for key, value in data.get(uid, {}).items():
            if key.startswith(b"BODY[]"):  # answered as BODY[]<0>
                return bytes(value or b"")
        return b""

    def other_folders(self, watched: tuple[str, ...]) -> list[str]:
        """The folders a reply may sit in besides the watched ones (see :func:`other_folders`)."""
        listed = self._call("list folders", self.client.list_folders)
        return other_folders(
            [(flags, str(name)) for flags, _, name in listed], watched, self.settings.sent_folder
        )

    def uids_referring_to(
        self, message_ids: list[str], since: date, senders: tuple[str, ...] = ()
    ) -> list[int]:
        """Messages in the selected folder since ``since`` whose In-Reply-To or References
        names one of ``message_ids`` (each searched without its angle brackets: some clients
        and ticket systems leave them out), or that come from one of ``senders`` (a reply
        written fresh, with no references)."""
        terms: list[Any] = []
        for mid in message_ids:
            bare = mid.strip().strip("<>")
            terms += [["OR", "HEADER", "In-Reply-To", bare, "HEADER", "References", bare]]
        terms += [["FROM", sender] for sender in senders if sender]
        return self._search_any(terms, since)

    def uids_with_subject(self, subject: str, since: date) -> list[int]:
        """Messages in the selected folder since ``since`` whose subject contains
        ``subject`` (any case: IMAP's SUBJECT search is a substring match). Searched as its
        pieces between IMAP's special characters, all of which must be there: imapclient
        sends "Sorry(Acme)" unquoted, and Dovecot refuses it as an atom."""
        pieces = subject_pieces(subject)
        if not pieces:
            return []
        criteria: list[Any] = ["SINCE", since]
        for piece in pieces:
            criteria += ["SUBJECT", piece]
        charset = None if subject.isascii() else "UTF-8"
        return sorted(self._call("search", self.client.search, criteria, charset))

    def uids_with_any_subject(self, subjects: list[str], since: date) -> list[int]:
        """At least the messages in the selected folder since ``since`` that
        :meth:`uids_with_subject` finds for one of ``subjects`` (perhaps more): one search,
        or a few, for many, to learn whether a folder holds any such message at all. Each
        subject is searched by its longest piece alone: imapclient sends a parenthesised
        group with a non-ASCII literal in it wrongly (its ")" inside the literal)."""
        keys = [key for s in subjects if (key := subject_key(s))]
        charset = None if all(k.isascii() for k in keys) else "UTF-8"
        return self._search_any([["SUBJECT", key] for key in keys], since, charset)

    def _search_any(
        self, terms: list[list[Any]], since: date, charset: str | None = None
    ) -> list[int]:
        """Messages since ``since`` that match any of ``terms``, in searches of a bounded
        size: a pass's last look asks for every due thread at once, and servers cap a
        command's length (Dovecot at 64 KB, others lower)."""
        found: set[int] = set()
        for start in range(0, len(terms), SEARCH_TERMS):
            chunk = terms[start : start + SEARCH_TERMS]
            criteria: list[Any] = ["SINCE", since, *["OR"] * (len(chunk) - 1)]
            for term in chunk:
                criteria += term
            found.update(self._call("search", self.client.search, criteria, charset))
        return sorted(found)

    def contains_message_id(self, folder: str, message_id: str) -> bool:
        self.select(folder)
        return bool(self._call("search", self.client.search, ["HEADER", "Message-ID", message_id]))

    # --- IDLE: IdleWatcher's calls, on the client as they are (its errors are imapclient's
    # and OSError, which the watcher handles), so a fake mailbox can stand in for them ------

    def idle_capable(self) -> bool:
        return b"IDLE" in self.client.capabilities()

    def idle_select(self, folder: str) -> None:
        self.client.select_folder(folder, readonly=True)

    def idle(self) -> None:
        self.client.idle()

    def idle_check(self, timeout: float) -> list[Any]:
        """The untagged responses that came within ``timeout``; ``[]`` at once when the
        connection is gone (see IdleWatcher)."""
        return list(self.client.idle_check(timeout=timeout))

    def idle_done(self) -> None:
        self.client.idle_done()

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        from imapclient.exceptions import IMAPClientError

        try:
            return fn(*args)
        except IMAPClientError as exc:
            raise DeliveryError(
                f"{self.where}: cannot {what}: {_text(exc, self._scrub)}", kind="protocol"
            ) from None
        except (IndexError, KeyError, ValueError) as exc:
            # imapclient parsing an answer it did not expect (a STATUS with no untagged STATUS
            # line gave IndexError): the server's fault, said as such, not an internal error.
            # Raised in our own code (``fn`` may be ours), it is our bug: it goes out as is.
            if not _raised_in_the_client(exc):
                raise
            raise DeliveryError(
                f"{self.where}: cannot {what}: the server's answer could not be read "
                f"({type(exc).__name__})",
                kind="protocol",
            ) from None
        except OSError as exc:
            s = self.settings
            raise network_error(exc, "IMAP", s.host, s.port, s.timeout, scrub=self._scrub) from None


def _raised_in_the_client(exc: BaseException) -> bool:
    """Whether ``exc`` was raised inside imapclient or imaplib (reading a server's answer)."""
    tb, last = exc.__traceback__, None
    while tb is not None:
        last, tb = tb, tb.tb_next
    origin = last.tb_frame.f_globals.get("__name__", "") if last is not None else ""
    return origin.startswith(("imapclient", "imaplib"))


# --- imapclient internals -------------------------------------------------------------------
# Every use of imapclient's or imaplib's private names is here, and only here (imapclient is
# pinned: see pyproject.toml). Check these two functions when upgrading it.


def _take_untagged_exists(client: Any) -> bool | None:
    """Whether an untagged EXISTS came since the last call, taking it (and RECENT and
    EXPUNGE) out of imaplib's store; None if the store cannot be read.

    imaplib files every untagged response under its name until someone takes it, so an
    EXISTS that came at the end of an earlier FETCH is still there. Taking them also keeps
    that store from growing on a connection kept for days.
    """
    pending = getattr(client, "_imap", None)
    stash = getattr(pending, "untagged_responses", None)
    if not isinstance(stash, dict):
        return None
    stash.pop("RECENT", None)
    stash.pop("EXPUNGE", None)
    return bool(stash.pop("EXISTS", None))


def _uid_fetch_from(client: Any, first_uid: int, item: bytes) -> dict[int, Any]:
    """``UID FETCH first:* (item)``, parsed as IMAPClient.fetch() parses its answer.

    IMAPClient.fetch() keeps only the UIDs it was given, so it cannot ask for "n:*": this
    is its own body with the range in place of the list.
    """
    from imapclient.response_parser import parse_fetch_response

    tag = client._imap._command("UID", "FETCH", b"%d:*" % first_uid, item)
    typ, data = client._imap._command_complete("FETCH", tag)
    client._checkok("fetch", typ, data)
    typ, data = client._imap._untagged_response(typ, data, "FETCH")
    return dict(parse_fetch_response(data, False, True))


# --- replies ---------------------------------------------------------------------------------


def _header(item: dict[bytes, Any]) -> bytes | None:
    # The reply's key differs from the request (fields may be reordered): match by prefix.
    for key, value in item.items():
        if key.startswith(b"BODY[HEADER"):
            return bytes(value or b"")
    return None


class _NoUtf8Mechanism(Exception):
    """The credentials are not ASCII and the server offers no AUTHENTICATE PLAIN."""


def _login(client: Any, user: str, password: str) -> None:
    """LOGIN for ASCII credentials; AUTHENTICATE PLAIN (RFC 4616, UTF-8) otherwise: imaplib
    sends LOGIN's arguments as ASCII and fails on anything else."""
    if user.isascii() and password.isascii():
        client.login(user, password)
    elif b"AUTH=PLAIN" in client.capabilities():
        client.plain_login(user, password)
    else:
        raise _NoUtf8Mechanism


def _oauth_refusal(where: str, s: ImapSettings, reply: str) -> DeliveryError:
    from mailer.adapters.oauth import login_command, who
    from mailer.errors import SignInError

    account = s.oauth2.account if s.oauth2 else ""
    return SignInError(
        f"{where}: the OAuth2 token for '{s.username}' was refused ({reply})",
        hint=f"check that the token is for this user and has the scopes the server needs "
        f"(oauth2.scopes), then run `{login_command(account)}` for {who(account)}",
    )


def _text(exc: BaseException, scrub: Callable[[str], str]) -> str:
    text = str(exc)
    if text.startswith(("b'", 'b"')):
        text = text[2:-1]
    return " ".join(scrub(text).split())


def _quiet_logout(client: Any) -> None:
    if client is None:
        return
    try:
        client.logout()
    except Exception:  # a broken connection must not hide the error being reported
        with contextlib.suppress(Exception):
            client.shutdown()


def _clean_all(cleaners: tuple[Any, ...], text: str) -> str:
    for clean in cleaners:
        text = clean(text)
    return text


_ATOM_SPECIALS = re.compile(r'[(){}%*"\\\]]+')


# Search keys in one SEARCH command at most (the rest go in the next): about 100 bytes each.
SEARCH_TERMS = 40


def subject_pieces(subject: str) -> list[str]:
    """``subject`` split on IMAP's atom-special characters, its white space folded (servers
    fold it when they search): each piece is an atom, or a quoted string."""
    pieces = (" ".join(p.split()) for p in _ATOM_SPECIALS.split(subject))
    return [p for p in pieces if p]


def subject_key(subject: str) -> str:
    """The longest of ``subject``'s pieces: a message with the whole subject has it, so one
    search by it finds at least those (empty for a subject with no piece)."""
    return max(subject_pieces(subject), key=len, default="")


def other_folders(
    listed: list[tuple[Any, str]], watched: tuple[str, ...], sent_folder: str = ""
) -> list[str]:
    """Of the folders ``listed`` (each its flags and name), those a reply may sit in besides
    the ``watched`` ones: filed as junk by the provider or a rule, archived or deleted by the
    user before a pass saw it. Not Sent or Drafts (our own messages), nor one that cannot be
    selected. Where there is an "all mail" folder (RFC 6154 ``\\All``: Gmail), only it,
    Junk and Trash: every label would only repeat it. (The fake IMAP server shares it.)"""

    def plain(name: str) -> str:
        return "INBOX" if name.upper() == "INBOX" else name  # (INBOX in any case)

    skip = {plain(w) for w in watched} | {sent_folder or ""}
    kept: list[tuple[set[str], str]] = []
    for flags, name in listed:
        marks = {(f.decode() if isinstance(f, bytes) else str(f)).lower() for f in flags}
        if marks & {"\\noselect", "\\nonexistent", "\\sent", "\\drafts"}:
            continue
        if plain(name) not in skip:
            kept.append((marks, name))
    if any("\\all" in marks for marks, _ in kept):
        wanted = {"\\all", "\\junk", "\\trash"}
        return [name for marks, name in kept if marks & wanted]
    return [name for _, name in kept]
