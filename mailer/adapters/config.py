"""TOML settings + secrets from the environment or ``.env`` -> frozen, validated objects.

Every problem in a file is collected and reported at once, each as ``file: key: problem``.
Clients never read files themselves: they are handed these objects.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from mailer.adapters.passwords import (
    COMMAND_TIMEOUT,
    POINTER,
    SOURCE_KEYS,
    SOURCES,
    PasswordSource,
    keyring_user,
)
from mailer.adapters.userdirs import is_user_config, user_config_path, user_data_dir
from mailer.errors import ConfigError, InputError
from mailer.model.settings import (
    FollowUpSettings,
    SenderSettings,
    WatchSettings,
    Window,
    parse_window,
)

CONFIG_RELPATH = Path("config") / "mailer.toml"
SECURITY_MODES = ("ssl", "starttls", "plain")
# Our files are at most a few tables deep; anything deeper is a mistake, and deep enough
# nesting would exhaust Python's stack in the parser or in any code that walks the values.
MAX_TOML_DEPTH = 16
# UTF-8's byte order mark, which Windows Notepad puts at the start of a file it saves: it is
# no part of the text (tomllib and a .env line would take it for a character of the first key).
BOM = b"\xef\xbb\xbf"
MAX_TIMEOUT = 600.0  # seconds; a finite bound, so every timeout is a real number of seconds
MAX_DAILY_CAP = 1_000_000
MAX_POLL = timedelta(days=1)
STATE_PASSWORD_VAR = "MAILER_STATE_PASSWORD"
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


# Regexes are compiled on first use (functools.cache), not at import: most commands read a
# config but never reach a given check.
@cache
def _host_re() -> re.Pattern[str]:
    """Host names as resolvers take them (ASCII; an international name in its xn-- form)."""
    return re.compile(
        r"(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63})*\.?"
    )


# Providers whose settings are well known. Microsoft refuses basic (password) logins for
# IMAP and is switching them off for SMTP: its presets sign in with OAuth2 (see docs/oauth2.md).
_MICROSOFT_OAUTH2 = {
    "flow": "device",
    "authorization_url": "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
    "device_authorization_url": "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode",
    "token_url": "https://login.microsoftonline.com/common/oauth2/v2.0/token",
    "scopes": [
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
        "offline_access",
    ],
    "mechanism": "xoauth2",
}
_MICROSOFT = {
    "auth": "oauth2",
    "smtp": {"host": "smtp.office365.com", "port": 587, "security": "starttls"},
    "imap": {"host": "outlook.office365.com", "port": 993, "security": "ssl"},
    "oauth2": _MICROSOFT_OAUTH2,
}
PRESETS: dict[str, dict[str, Any]] = {
    "generic": {},
    "gmail": {
        "smtp": {"host": "smtp.gmail.com", "port": 465, "security": "ssl"},
        "imap": {"host": "imap.gmail.com", "port": 993, "security": "ssl", "save_sent": False},
        # Used with auth = "oauth2" (an app password works too). Google allows Gmail's
        # scope only in the installed-app flow, not in its device flow.
        "oauth2": {
            "flow": "pkce",
            "authorization_url": "https://accounts.google.com/o/oauth2/v2/auth",
            "token_url": "https://oauth2.googleapis.com/token",
            "scopes": ["https://mail.google.com/"],
            "mechanism": "xoauth2",
            # Without offline access (and consent asked again) no refresh token comes back.
            "auth_params": {"access_type": "offline", "prompt": "consent"},
        },
    },
    "microsoft365": _MICROSOFT,
    "office365": _MICROSOFT,
    "outlook": {
        **_MICROSOFT,
        "smtp": {"host": "smtp-mail.outlook.com", "port": 587, "security": "starttls"},
    },
    "hotmail": {
        **_MICROSOFT,
        "smtp": {"host": "smtp-mail.outlook.com", "port": 587, "security": "starttls"},
    },
}
PROVIDER_NAMES = {
    "microsoft365": "Microsoft 365",
    "office365": "Microsoft 365",
    "outlook": "Outlook.com",
    "hotmail": "Outlook.com",
    "gmail": "Gmail",
}
AUTH_METHODS = ("password", "oauth2")
# The settings of [sender] (and [accounts.NAME.sender]), and of an [accounts.NAME] table.
SENDER_KEYS = ("name", "address", "phone", "signature", "timezone", "locale")
ACCOUNT_KEYS = ("provider", "sender", "smtp", "imap", "auth", "oauth2")
OAUTH2_FLOWS = ("device", "pkce")
OAUTH2_MECHANISMS = ("xoauth2", "oauthbearer")
_OAUTH2_KEYS = (
    "flow",
    "authorization_url",
    "device_authorization_url",
    "token_url",
    "client_id",
    "scopes",
    "mechanism",
    "auth_params",
)


@dataclass(frozen=True)
class OAuth2Settings:
    """How one account signs in with OAuth2: a provider's preset, or the user's own."""

    provider: str
    flow: str  # "device" (RFC 8628) or "pkce" (RFC 7636, loopback redirect)
    authorization_url: str
    device_authorization_url: str
    token_url: str
    client_id: str
    scopes: tuple[str, ...]
    mechanism: str  # "xoauth2" or "oauthbearer"
    auth_params: tuple[tuple[str, str], ...] = ()
    account: str = ""  # the account these tokens belong to; "" is the main one
    store_dir: Path = Path(".mailer")  # where the token file goes without a keyring
    client_secret: str = field(default="", repr=False)  # from the environment or .env only


@dataclass(frozen=True)
class ServerSettings:
    host: str
    port: int
    security: str
    username: str
    ca_file: Path | None
    timeout: float
    # Where the password comes from; it is fetched on first use (see mailer.adapters.passwords).
    secret: PasswordSource | None = field(default=None, repr=False)
    auth: str = "password"  # or "oauth2": then ``oauth2`` says how
    oauth2: OAuth2Settings | None = None
    pipelining: bool = True  # SMTP only: use RFC 2920 where the server offers it

    @property
    def password(self) -> str:
        """The password: fetched once per process, only by code that logs in. Never printed."""
        if self.secret is None:
            return ""
        from mailer.adapters.passwords import resolve

        return resolve(self.secret)


@dataclass(frozen=True)
class ImapSettings(ServerSettings):
    sent_folder: str = ""  # empty: find the \Sent special-use folder
    save_sent: bool = True


@dataclass(frozen=True)
class AccountSettings:
    """A mailbox to send from and watch, besides the main one (``[accounts.NAME]``)."""

    name: str
    sender: SenderSettings
    smtp: ServerSettings
    imap: ImapSettings
    provider: str = "generic"
    daily_cap: int = 0  # 0: no cap


@dataclass(frozen=True)
class StateSettings:
    """How to reach a PostgreSQL state store beyond its URL (which holds no password)."""

    url: str
    sslmode: str = ""
    sslrootcert: str = ""
    secret: PasswordSource | None = field(default=None, repr=False)

    def connect(self) -> dict[str, str]:
        """What the driver needs beyond the URL: the password (fetched now, once per
        process) and the TLS settings. Nothing for a SQLite store."""
        if self.secret is None:
            return {}
        from mailer.adapters.passwords import resolve

        password = resolve(self.secret)
        if not password:
            raise ConfigError(
                f"{self.secret.key}: no password for the state store",
                hint=f"set {self.secret.env_var} in the environment or .env, or "
                'state.password_source = "command" or "keyring"',
            )
        found = {"password": password, "sslmode": self.sslmode}
        if self.sslrootcert:
            found["sslrootcert"] = self.sslrootcert
        return found


@dataclass(frozen=True)
class Settings:
    path: Path  # the TOML file
    workspace: Path
    sender: SenderSettings
    smtp: ServerSettings
    imap: ImapSettings
    follow_up: FollowUpSettings
    state_url: str
    watch: WatchSettings = field(default_factory=WatchSettings)
    html: bool = False
    allow_test_domains: bool = False
    provider: str = "generic"
    retries: int = 3
    daily_cap: int = 0  # messages per day from the main account; 0: no cap
    account: str = ""  # which account these settings speak for; "" is the main one
    accounts: dict[str, AccountSettings] = field(default_factory=dict)
    state: StateSettings | None = None  # None: only the URL (settings made by hand)
    # How long a daemon's lease on an account lasts without a heartbeat (#17): when a daemon
    # dies, another takes its accounts over after at most this long.
    lease_seconds: float = 60.0
    # Read offline: the server settings' problems left for a command that connects (a
    # campaign check says them, as what 'campaign run' will refuse).
    unfinished: tuple[str, ...] = ()

    @property
    def state_connect(self) -> dict[str, str]:
        """The state store's password and TLS settings, for Store(..., connect=...)."""
        return self.state.connect() if self.state is not None else {}

    @property
    def templates_dir(self) -> Path:
        return self.workspace / "templates"

    @property
    def account_names(self) -> tuple[str, ...]:
        """Every account, the main one ("") first."""
        return ("", *sorted(n for n in self.accounts if n))

    def for_account(self, name: str) -> Settings:
        """These settings as seen from one account: its sender, servers and daily cap."""
        if name == self.account:
            return self
        if name and name not in self.accounts:
            known = ", ".join(sorted(self.accounts)) or "none are configured"
            raise ConfigError(f"{self.path}: accounts.{name}: no such account (known: {known})")
        a = self.accounts.get(name) or self.accounts[""]
        return replace(
            self,
            sender=a.sender,
            smtp=a.smtp,
            imap=a.imap,
            provider=a.provider,
            daily_cap=a.daily_cap,
            account=name,
        )


def account_label(name: str) -> str:
    return f"account {name!r}" if name else "the main account"


def account_secret(name: str, server: str) -> str:
    """``MAILER_ACCOUNT_ANNA_SMTP_PASSWORD`` for account ``anna``."""
    slug = re.sub(r"[^A-Z0-9]", "_", name.upper())
    return f"MAILER_ACCOUNT_{slug}_{server.upper()}_PASSWORD"


OAUTH2_SECRET_VAR = "MAILER_OAUTH2_CLIENT_SECRET"


def account_client_secret(name: str) -> str:
    """The variable holding an account's OAuth2 client secret (where a provider needs one)."""
    if not name:
        return OAUTH2_SECRET_VAR
    slug = re.sub(r"[^A-Z0-9]", "_", name.upper())
    return f"MAILER_ACCOUNT_{slug}_OAUTH2_CLIENT_SECRET"


def find_config(start: Path, explicit: str | None = None) -> Path:
    """The config file: ``--config``/``MAILER_CONFIG``, else the nearest ``config/mailer.toml``."""
    chosen = explicit or os.environ.get("MAILER_CONFIG")
    if chosen:
        path = Path(chosen).expanduser()
        _not_a_directory(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        return path.resolve()
    for d in (start, *start.parents):
        candidate = d / CONFIG_RELPATH
        _not_a_directory(candidate)
        if candidate.is_file():
            return candidate.resolve()
    # No workspace here: the user-level config, so `mailer send` works from any folder.
    user = user_config_path()
    _not_a_directory(user)
    if user.is_file():
        return user.resolve()
    raise ConfigError(
        f"no {CONFIG_RELPATH} in {start} or any parent directory, and no {user}",
        hint="run 'mailer init' to create a workspace here, 'mailer init --user' for one "
        "config used from any folder, or pass --config PATH; to try mailer first with no "
        "account, 'mailer sandbox start', then add --sandbox",
    )


# What a PEM file of CA certificates holds (OpenSSL's "trusted" form too).
_PEM_CERTIFICATE = re.compile(rb"-----BEGIN (?:TRUSTED |X509 )?CERTIFICATE-----")


def ca_file_problem(path: Path) -> str | None:
    """What makes ``path`` unusable as a CA file, or None. Found when the config is loaded:
    left to the first connection, it would stop a send already recorded as queued. Only the
    PEM header is looked for here (loading the file would import ssl into every command, the
    preview too); a file with the header that OpenSSL still refuses is said in one line by
    the connection (connection.openssl_problem)."""
    if path.is_dir():
        return f"{path} is a directory, not a file"
    if not path.is_file():
        return f"file not found: {path}"
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    if _PEM_CERTIFICATE.search(data) is None:
        return f"{path} is not a PEM certificate (no '-----BEGIN CERTIFICATE-----' line)"
    return None


def _not_a_directory(path: Path) -> None:
    """A directory where the config file should be is said to be one: "not found" (or
    passing it by for a parent's config) would send the user looking for the wrong thing."""
    if path.is_dir():
        raise ConfigError(f"{path} is a directory, not a file")


def workspace_of(config_path: Path) -> Path:
    """Where a config's .env, templates/ and .mailer/ (state store, tokens, sandbox) are:
    beside its config/ folder, or for the user-level config the fixed per-user data
    directory (never the current folder)."""
    if config_path.name == "mailer.toml" and is_user_config(config_path):
        return user_data_dir()
    parent = config_path.parent
    return parent.parent if parent.name == "config" else parent


def read_secrets(env_file: Path, environment: bool = True) -> dict[str, str]:
    """Environment first, then ``.env``: a value exported in the shell wins. Without
    ``environment``, ``.env`` alone (the sandbox's: a real password exported in the shell
    must not be sent to it, nor make its try-out fail)."""
    values = _read_env_file(env_file)
    for key, value in os.environ.items() if environment else ():
        if value and (
            key
            in (
                "MAILER_SMTP_PASSWORD",
                "MAILER_IMAP_PASSWORD",
                OAUTH2_SECRET_VAR,
                STATE_PASSWORD_VAR,
            )
            or key.startswith("MAILER_ACCOUNT_")
        ):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                # Bytes the locale could not decode (a password typed in Latin-1): said in
                # one line naming the variable, never which byte (it is one of a password's).
                raise ConfigError(
                    f"{key}: the environment variable is not UTF-8 text",
                    hint="export it again as UTF-8 text, or put it in .env saved as UTF-8",
                ) from None
            values[key] = value
    return values


def _read_env_file(env_file: Path) -> dict[str, str]:
    """The variables in ``.env`` (none if there is no such file). What makes it unreadable
    is a ConfigError naming the file and line, never quoting it: it holds passwords."""
    import io

    from dotenv import dotenv_values

    if env_file.is_dir():
        raise ConfigError(f"{env_file} is a directory, not a file")
    if not env_file.is_file():
        return {}  # as before: not there (or a device, a pipe, ...) is no .env
    try:
        data = env_file.read_bytes().removeprefix(BOM)
    except OSError as exc:
        raise ConfigError(f"{env_file}: cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        # (Not the byte itself: it may be one of a password's.)
        raise ConfigError(
            f"{env_file}: line {line}: not UTF-8 text", hint="save the file as UTF-8"
        ) from None
    from dotenv.parser import parse_stream

    # A line dotenv cannot read (an unclosed quote) would only be logged by it, and its
    # variable then reported as not set: said here, naming the line, never quoting it.
    for binding in parse_stream(io.StringIO(text, newline=None)):
        if binding.error:
            raise ConfigError(
                f"{env_file}: line {binding.original.line}: cannot be read as NAME=value",
                hint="look for a quote that is not closed on that line",
            )
    # newline=None: CRLF and CR read as LF, as dotenv's own reading of the file did.
    stream = io.StringIO(text, newline=None)
    return {k: v for k, v in dotenv_values(stream=stream).items() if v is not None}


class _Reader:
    """Typed access to a TOML table that records problems instead of stopping at the first."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data
        self.problems: list[str] = []
        # Which problems are about signing in to a server: commands that never connect
        # (preview, lint, call-script) do not need those settings at all.
        self.server_problems: set[int] = set()

    def problem(self, key: str, message: str, later: bool = False) -> None:
        """``later``: a problem only for a command that sends, as a server key's is."""
        if later or _is_server_key(key):
            self.server_problems.add(len(self.problems))
        self.problems.append(printable(f"{self.path}: {key}: {message}"))

    def unknown(self, key: str, known: Collection[str]) -> None:
        """``key`` is not a setting: the nearest known one suggested, else the known listed.
        Never left for later as a server value is (see offline_problems): a misspelt
        setting is silently a default otherwise, even for a command that reads no server."""
        import difflib

        name = key.rsplit(".", 1)[-1]
        near = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
        hint = f"did you mean {near[0]!r}?" if near else f"known: {', '.join(sorted(known))}"
        self.problems.append(printable(f"{self.path}: {key}: unknown setting ({hint})"))

    def offline_problems(self) -> list[str]:
        return [p for i, p in enumerate(self.problems) if i not in self.server_problems]

    def table(self, name: str, known: tuple[str, ...] = ()) -> dict[str, Any]:
        value = self.data.get(name, {})
        if not isinstance(value, dict):
            self.problem(name, "must be a table ([" + name + "])")
            return {}
        for key in value if known else ():
            if key not in known:
                self.unknown(f"{name}.{key}", known)
        return value

    def get(
        self,
        table: dict[str, Any],
        prefix: str,
        key: str,
        kind: type,
        default: Any = None,
        required: bool = False,
    ) -> Any:
        full = f"{prefix}.{key}"
        if key not in table:
            if required:
                self.problem(full, "is required")
            return default
        value = table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            # What was found is named by its type where a password may have been pasted.
            found = type(value).__name__ if "password" in key else repr(value)
            self.problem(full, f"must be {kind.__name__.replace('str', 'a string')}, not {found}")
            return default
        if prefix.endswith("sender") and key in _SENDER_TEXT:
            pass  # checked by _check_sender_text, with the rules every header value obeys
        elif isinstance(value, str) and ("\r" in value or "\n" in value) and key != "signature":
            self.problem(full, "must not contain a line break")
            return default
        elif isinstance(value, str) and has_control_chars(value, allow="\t\r\n"):
            self.problem(full, "must not contain control characters (such as NUL)")
            return default
        if required and isinstance(value, str) and not value.strip():
            self.problem(full, "must not be empty")
            return default
        return value


_SERVER_TABLES = ("smtp", "imap", "auth", "oauth2")


def _is_server_key(key: str) -> bool:
    parts = key.split(".")
    if parts[0] == "accounts" and len(parts) > 2:
        parts = parts[2:]
    return parts[0] in _SERVER_TABLES


def has_control_chars(text: str, allow: str = "") -> bool:
    """NUL, escape and the other C0/C1 controls (except those in ``allow``): no setting,
    header or file name needs them, and some crash the code that gets them later."""
    return any(unicodedata.category(c) == "Cc" and c not in allow for c in text)


def printable(line: str) -> str:
    """``line`` with control characters and line separators escaped: a problem names keys
    and values from the file, and must stay one line that cannot rewrite the terminal."""
    return "".join(
        repr(c)[1:-1] if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in line
    )


def read_toml(path: Path) -> tuple[str, dict[str, Any]]:
    """A TOML file's text and its tables, or a ConfigError naming the file."""
    try:
        text = path.read_text(encoding="utf-8").removeprefix(BOM.decode())
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: nested too deeply") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, not a file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    deepest = depth(data)
    if deepest > MAX_TOML_DEPTH:
        raise ConfigError(
            f"{path}: invalid TOML: tables or arrays nested {deepest} deep "
            f"(at most {MAX_TOML_DEPTH})"
        )
    return text, data


def depth(value: Any) -> int:
    """How deeply tables and arrays nest, counted without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level + 1)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def load_settings(
    path: Path,
    *,
    env_file: Path | None = None,
    need_secrets: bool = False,
    workspace: Path | None = None,
    offline: bool = False,
    environment: bool = True,
) -> Settings:
    """Read and validate ``path``. With ``need_secrets``, a missing password is a problem too.

    ``workspace`` overrides where templates are found (the sandbox keeps its config apart).
    ``offline`` is for commands that never connect (preview, lint, call-script): they need
    only ``[sender]``, so server settings may be missing or still the examples, and the
    sender's address may still be the example (it is refused again by anything that sends).
    ``environment``: whether exported secrets count (not for the sandbox, see read_secrets).
    """
    _, data = read_toml(path)
    base = workspace_of(path)
    r = _Reader(path, data)
    _refuse_literal_secrets(r, data)
    known = {
        "sender",
        "smtp",
        "imap",
        "follow_up",
        "watch",
        "daemon",
        "state",
        "composer",
        "addresses",
        "provider",
        "accounts",
        "auth",
        "oauth2",
    }
    for key in data:
        if key not in known:
            r.unknown(key, known)

    provider = _provider(r, "provider", data.get("provider", "generic"))
    preset = PRESETS[provider]

    s = r.table("sender", SENDER_KEYS)
    sender = SenderSettings(
        name=r.get(s, "sender", "name", str, "", required=True),
        address=r.get(s, "sender", "address", str, "", required=True),
        phone=r.get(s, "sender", "phone", str, ""),
        signature=r.get(s, "sender", "signature", str, ""),
        timezone=r.get(s, "sender", "timezone", str, ""),
        locale=r.get(s, "sender", "locale", str, "en_GB"),
        locale_set="locale" in s,
    )
    bad = _check_sender_text(r, "sender", sender)
    if "locale" not in bad:
        _check_locale(r, "sender.locale", sender.locale)
    if sender.address:
        _check_address(r, "sender.address", sender.address)
    # What 'mailer init' writes must never reach an interviewer.
    for key, value, placeholder in (
        ("sender.name", sender.name, "Your Name"),
        ("sender.address", sender.address, "you@example.com"),
    ):
        if value.strip().lower() == placeholder.lower():
            r.problem(
                key,
                f"still {placeholder!r}, the example written by 'mailer init'; put in your own",
                # A preview may show it; only what sends refuses it (campaign check names it).
                later=key == "sender.address",
            )
    if sender.timezone and "timezone" not in bad:
        _check_timezone(r, "sender.timezone", sender.timezone)

    # A command that never connects to a mail server needs no password, and .env is not
    # even read, unless its store is a database that asks for one.
    state = data.get("state")
    on_server = isinstance(state, dict) and not str(state.get("url", "sqlite")).startswith("sqlite")
    secrets = (
        {} if offline and not on_server else read_secrets(env_file or base / ".env", environment)
    )
    if offline:  # the store's password at most: no mail password for what never connects
        secrets = {k: v for k, v in secrets.items() if k == STATE_PASSWORD_VAR}
    smtp, imap = _mail_servers(
        r,
        "",
        "",
        {**preset.get("smtp", {}), **r.table("smtp")},
        {**preset.get("imap", {}), **r.table("imap")},
        base,
        sender.address,
        secrets,
        ("MAILER_SMTP_PASSWORD", "MAILER_IMAP_PASSWORD"),
        need_secrets,
    )
    smtp, imap = _with_oauth2(r, "", data, provider, (smtp, imap), base, secrets, need_secrets)
    accounts = _accounts(r, data.get("accounts", {}), sender, base, secrets, need_secrets)

    f = r.table(
        "follow_up",
        (
            "wait",
            "max_follow_ups",
            "holidays_country",
            "window",
            "window_days",
            "quote_original",
            "hold_if_late",
        ),
    )
    window = Window()
    try:
        window = parse_window(
            r.get(f, "follow_up", "window", str, "09:00-17:00"),
            r.get(f, "follow_up", "window_days", str, "mon-fri"),
        )
    except ValueError as exc:
        r.problem("follow_up.window", str(exc))
    follow_up = FollowUpSettings(
        wait=r.get(f, "follow_up", "wait", str, "3 business days"),
        max_follow_ups=r.get(f, "follow_up", "max_follow_ups", int, 1),
        holidays_country=r.get(f, "follow_up", "holidays_country", str, ""),
        window=window,
        quote_original=r.get(f, "follow_up", "quote_original", bool, True),
        hold_if_late=r.get(f, "follow_up", "hold_if_late", str, "7 days"),
    )
    if follow_up.holidays_country:
        import holidays as hol

        from mailer.model.schedule import holiday_place

        # A country ("GB"), or a country and its region ("GB-ENG", "DE-BY", "US-CA"): some
        # public holidays are a region's only (England's Easter Monday).
        country, region = holiday_place(follow_up.holidays_country)
        supported = hol.list_supported_countries()
        if country not in supported:
            r.problem(
                "follow_up.holidays_country",
                f"unknown country {follow_up.holidays_country!r} (use a code such as GB, DE, "
                "US, or a country and its region such as GB-ENG)",
            )
        elif region and region not in supported[country]:
            regions = ", ".join(f"{country}-{x}" for x in supported[country][:12])
            r.problem(
                "follow_up.holidays_country",
                f"unknown region {follow_up.holidays_country!r} (for {country}: {regions}"
                f"{', ...' if len(supported[country]) > 12 else ''})",
            )
    from mailer.model.settings import late_limit, validate_wait

    try:
        validate_wait(follow_up.wait)
    except ValueError as exc:
        r.problem("follow_up.wait", str(exc))
    try:
        late_limit(follow_up.hold_if_late)
    except ValueError as exc:
        r.problem("follow_up.hold_if_late", f'{exc}, or "never"')
    if not 0 <= follow_up.max_follow_ups <= 5:
        r.problem("follow_up.max_follow_ups", "must be between 0 and 5")

    workspace = workspace or base
    w = r.table("watch", ("folders", "idle", "poll_interval", "notify"))
    folders = r.get(w, "watch", "folders", list, ["INBOX"])
    if not folders or not all(
        isinstance(x, str) and x.strip() and not has_control_chars(x) for x in folders
    ):
        r.problem("watch.folders", 'must be a list of folder names, such as ["INBOX", "Junk"]')
        folders = ["INBOX"]
    poll = 60.0
    try:
        poll = validate_wait(
            r.get(w, "watch", "poll_interval", str, "60s"), maximum=MAX_POLL
        ).duration.total_seconds()
        if poll <= 0:
            raise ValueError("the poll interval must be a plain duration such as '60s'")
    except ValueError as exc:
        r.problem("watch.poll_interval", str(exc))
        poll = 60.0
    watch = WatchSettings(
        folders=tuple(folders),
        idle=r.get(w, "watch", "idle", bool, True),
        poll_seconds=poll,
        notify=r.get(w, "watch", "notify", bool, False),
    )
    state = _state(r, base, secrets)
    state_url = state.url
    lease_seconds = _lease_seconds(r, data)

    c = r.table("composer", ("html",))
    a = r.table("addresses", ("allow_test_domains",))
    daily_cap = _daily_cap(r, "smtp", data.get("smtp"))
    settings = Settings(
        path=path,
        workspace=workspace,
        sender=sender,
        smtp=smtp,
        imap=imap,
        follow_up=follow_up,
        state_url=state_url,
        state=state,
        watch=watch,
        html=r.get(c, "composer", "html", bool, False),
        allow_test_domains=r.get(a, "addresses", "allow_test_domains", bool, False),
        provider=provider,
        retries=_retries(r, data),
        daily_cap=daily_cap,
        lease_seconds=lease_seconds,
        # The main account is kept under "" too, so any account's view can get back to it.
        accounts={"": AccountSettings("", sender, smtp, imap, provider, daily_cap), **accounts},
    )
    problems = r.offline_problems() if offline else r.problems
    if problems:
        raise ConfigError(problems)
    if offline and len(r.problems) > len(problems):
        settings = replace(settings, unfinished=tuple(p for p in r.problems if p not in problems))
    return settings


def _provider(r: _Reader, key: str, value: Any) -> str:
    if not isinstance(value, str):
        r.problem(key, "must be a string")
        return "generic"
    provider = value.lower()
    if provider not in PRESETS:
        r.problem(key, f"unknown provider {provider!r} (known: {', '.join(PRESETS)})")
        return "generic"
    return provider


def _daily_cap(r: _Reader, prefix: str, table: Any) -> int:
    table = table if isinstance(table, dict) else {}
    cap = r.get(table, prefix, "daily_cap", int, 0)
    if not 0 <= cap <= MAX_DAILY_CAP:
        r.problem(
            f"{prefix}.daily_cap",
            f"must be 0 (no cap) or a number of messages up to {MAX_DAILY_CAP}, not {cap}",
        )
        return 0
    return cap


def _accounts(
    r: _Reader,
    data: Any,
    main_sender: SenderSettings,
    base: Path,
    secrets: dict[str, str],
    need_secrets: bool,
) -> dict[str, AccountSettings]:
    """``[accounts.NAME]``: each with its own sender, servers and password variables.

    A coach may send from each candidate's own mailbox; replies then arrive there too.
    """
    if not isinstance(data, dict):
        r.problem("accounts", "must be a table of accounts ([accounts.NAME])")
        return {}
    accounts: dict[str, AccountSettings] = {}
    for name, t in data.items():
        prefix = f"accounts.{name}"
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", name):
            r.problem(prefix, "an account name may use only letters, digits, '-' and '_'")
            continue
        if not isinstance(t, dict):
            r.problem(prefix, f"must be a table ([{prefix}])")
            continue
        for key in t:
            if key not in ACCOUNT_KEYS:
                r.unknown(f"{prefix}.{key}", ACCOUNT_KEYS)
        provider = _provider(r, f"{prefix}.provider", t.get("provider", "generic"))
        preset = PRESETS[provider]
        st = t.get("sender", {})
        if not isinstance(st, dict):
            r.problem(f"{prefix}.sender", "must be a table")
            st = {}
        for key in st:
            if key not in SENDER_KEYS:
                r.unknown(f"{prefix}.sender.{key}", SENDER_KEYS)
        sp = f"{prefix}.sender"
        sender = SenderSettings(
            name=r.get(st, sp, "name", str, "", required=True),
            address=r.get(st, sp, "address", str, "", required=True),
            phone=r.get(st, sp, "phone", str, ""),
            signature=r.get(st, sp, "signature", str, ""),
            timezone=r.get(st, sp, "timezone", str, main_sender.timezone),
            locale=r.get(st, sp, "locale", str, main_sender.locale),
            locale_set="locale" in st or main_sender.locale_set,
        )
        bad = _check_sender_text(r, sp, sender)
        if sender.address:
            _check_address(r, f"{sp}.address", sender.address)
        if sender.locale != main_sender.locale and "locale" not in bad:
            _check_locale(r, f"{sp}.locale", sender.locale)
        # An inherited zone was checked (and reported) as sender.timezone already.
        if sender.timezone not in ("", main_sender.timezone) and "timezone" not in bad:
            _check_timezone(r, f"{sp}.timezone", sender.timezone)
        smtp_table = {**preset.get("smtp", {}), **_subtable(r, t, prefix, "smtp")}
        smtp, imap = _mail_servers(
            r,
            name,
            f"{prefix}.",
            smtp_table,
            {**preset.get("imap", {}), **_subtable(r, t, prefix, "imap")},
            base,
            sender.address,
            secrets,
            (account_secret(name, "smtp"), account_secret(name, "imap")),
            need_secrets,
        )
        smtp, imap = _with_oauth2(r, name, t, provider, (smtp, imap), base, secrets, need_secrets)
        accounts[name] = AccountSettings(
            name=name,
            sender=sender,
            smtp=smtp,
            imap=imap,
            provider=provider,
            daily_cap=_daily_cap(r, f"{prefix}.smtp", smtp_table),
        )
    return accounts


def _mail_servers(
    r: _Reader,
    account: str,
    prefix: str,
    smtp_table: dict[str, Any],
    imap_table: dict[str, Any],
    workspace: Path,
    user: str,
    secrets: dict[str, str],
    password_vars: tuple[str, str],
    need_secrets: bool,
) -> tuple[ServerSettings, ImapSettings]:
    """One account's SMTP and IMAP settings (``prefix`` "" or "accounts.NAME."). The IMAP
    password falls back to the SMTP one; an [imap] table that names no source of its own
    takes the SMTP one's."""
    smtp_var, imap_var = password_vars
    smtp = _server(r, f"{prefix}smtp", smtp_table, workspace, user, 587)
    imap_base = _server(r, f"{prefix}imap", imap_table, workspace, user, 993)
    smtp_secret = _password_source(
        r, account, "smtp", smtp_table, smtp, workspace, (smtp_var, secrets.get(smtp_var, ""))
    )
    imap_secret = _password_source(
        r,
        account,
        "imap",
        imap_table,
        imap_base,
        workspace,
        (imap_var, secrets.get(imap_var, "")),
        inherit=smtp_secret,
    )
    pipelining = r.get(smtp_table, f"{prefix}smtp", "pipelining", bool, True)
    smtp = replace(smtp, secret=smtp_secret, pipelining=pipelining)
    imap = ImapSettings(
        **{k: getattr(imap_base, k) for k in ServerSettings.__dataclass_fields__},
        sent_folder=r.get(imap_table, f"{prefix}imap", "sent_folder", str, ""),
        save_sent=r.get(imap_table, f"{prefix}imap", "save_sent", bool, True),
    )
    imap = replace(imap, secret=imap_secret)
    # A missing password is a problem only for a server that signs in with one: see
    # _with_oauth2. Other sources are fetched when first needed (a command runs, a prompt
    # asks): only for the accounts a command uses (see mailer.adapters.passwords.unlock).
    return smtp, imap


def _password_source(
    r: _Reader,
    account: str,
    server: str,
    t: dict[str, Any],
    s: ServerSettings,
    workspace: Path,
    env: tuple[str, str],
    inherit: PasswordSource | None = None,
) -> PasswordSource:
    """``password_source``, ``password_command`` and ``password_command_timeout`` of one
    server table. A command given alone implies ``password_source = "command"``."""
    prefix = f"{'accounts.' + account + '.' if account else ''}{server}"
    key = f"{r.path}: {prefix}"
    own = "password_source" in t or "password_command" in t
    kind = r.get(t, prefix, "password_source", str, "command" if "password_command" in t else "")
    if kind and kind not in SOURCES:
        # (not quoted: a password is what gets pasted here by mistake)
        r.problem(f"{prefix}.password_source", f"must be one of {', '.join(SOURCES)}")
        kind = "env"
    command = _password_command(r, prefix, t)
    if kind == "command" and not command and "password_command" not in t:
        r.problem(
            f"{prefix}.password_command",
            'is required with password_source = "command" (a list, such as ["pass", "show", '
            '"mail/you"])',
        )
    elif command and kind not in ("command", ""):
        r.problem(
            f"{prefix}.password_command",
            f"is given, but password_source is {kind!r}: remove one of them",
        )
    timeout = r.get(t, prefix, "password_command_timeout", float, COMMAND_TIMEOUT)
    if not (math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT):
        r.problem(
            f"{prefix}.password_command_timeout",
            f"must be a number of seconds above 0 and at most {MAX_TIMEOUT:g}, not {timeout}",
        )
        timeout = COMMAND_TIMEOUT
    env_var, env_value = env
    if inherit is not None and not own:
        if inherit.kind == "env":
            return PasswordSource("env", key, env_var, env_value, fallback=inherit)
        if inherit.kind != "keyring":
            return inherit  # the same command or prompt: run or asked once, not twice
        kind = "keyring"
    return PasswordSource(
        kind=kind or "env",
        key=key,
        env_var=env_var,
        env_value=env_value if (kind or "env") == "env" else "",
        command=command,
        timeout=timeout,
        cwd=workspace,
        keyring_user=keyring_user(account, server, s.username),
        label=f"{server.upper()} password for {s.username} at {s.host}",
        fallback=inherit,
    )


def _password_command(r: _Reader, prefix: str, t: dict[str, Any]) -> tuple[str, ...]:
    if "password_command" not in t:
        return ()
    value = t["password_command"]
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(a, str) and not has_control_chars(a) for a in value)
        or not value[0].strip()
    ):
        r.problem(
            f"{prefix}.password_command",
            "must be a list of strings, the program first (run without a shell), such as "
            '["pass", "show", "mail/you"]',
        )
        return ()
    return (str(Path(value[0]).expanduser()) if value[0].startswith("~") else value[0], *value[1:])


# A key whose name says it holds a password or token: its value must never sit in the file.
@cache
def _literal_secret() -> re.Pattern[str]:
    return re.compile(r"(?:.*[_-])?(?:password|passwd|pass|pwd|passphrase|token)|secret")


def _refuse_literal_secrets(r: _Reader, data: dict[str, Any]) -> None:
    """Refuse (and drop) every ``password``/``pass``/``secret``-like key, at any depth, with
    a pointer to the sources; its value is never quoted."""
    stack: list[tuple[str, dict[str, Any]]] = [("", data)]
    while stack:
        prefix, table = stack.pop()
        for key in list(table):
            full = f"{prefix}{key}"
            value = table[key]
            if isinstance(value, dict):
                stack.append((f"{full}.", value))
            elif key not in SOURCE_KEYS and _literal_secret().fullmatch(key.lower()):
                del table[key]
                r.problem(full, f"a password does not belong in the config file; {POINTER}")


def _with_oauth2(
    r: _Reader,
    name: str,
    t: dict[str, Any],
    provider: str,
    servers: tuple[ServerSettings, ImapSettings],
    base: Path,
    secrets: dict[str, str],
    need_secrets: bool,
) -> tuple[ServerSettings, ImapSettings]:
    """Each server's sign-in method (``auth``: the server's, else the account's, else the
    preset's) and, where it is OAuth2, the account's ``oauth2`` settings. A missing password is
    a problem only for a server that signs in with one."""
    prefix = f"accounts.{name}." if name else ""
    preset = PRESETS[provider]
    account_auth = _auth(r, f"{prefix}auth", t.get("auth", preset.get("auth", "password")))
    smtp, imap = servers
    methods = {}
    for server in ("smtp", "imap"):
        table = t.get(server) if isinstance(t.get(server), dict) else {}
        methods[server] = _auth(r, f"{prefix}{server}.auth", table.get("auth", account_auth))
    oauth = None
    if "oauth2" in methods.values():
        oauth = _oauth2(r, name, t, provider, base, secrets)
    elif "oauth2" in t:
        r.problem(f"{prefix}oauth2", f'is used only with {prefix}auth = "oauth2"')
    secret = smtp.secret
    if (
        need_secrets
        and methods["smtp"] == "password"
        and secret is not None
        and secret.kind == "env"
        and not secret.env_value
    ):
        r.problems.append(f"{secret.env_var}: not set in the environment or {base / '.env'}")
    return (
        replace(smtp, auth=methods["smtp"], oauth2=oauth if methods["smtp"] == "oauth2" else None),
        replace(imap, auth=methods["imap"], oauth2=oauth if methods["imap"] == "oauth2" else None),
    )


def _auth(r: _Reader, key: str, value: Any) -> str:
    if value not in AUTH_METHODS:
        r.problem(key, f"must be one of {', '.join(AUTH_METHODS)}, not {value!r}")
        return "password"
    return str(value)


def _oauth2(
    r: _Reader, name: str, t: dict[str, Any], provider: str, base: Path, secrets: dict[str, str]
) -> OAuth2Settings | None:
    prefix = f"accounts.{name}.oauth2" if name else "oauth2"
    own = t.get("oauth2", {})
    if not isinstance(own, dict):
        r.problem(prefix, f"must be a table ([{prefix}])")
        own = {}
    secret_var = account_client_secret(name)
    for key in own:
        if key == "client_secret":
            r.problem(
                f"{prefix}.{key}",
                f"must not be in the config file: put it in {secret_var} in the environment or .env",
            )
        elif key not in _OAUTH2_KEYS:
            r.unknown(f"{prefix}.{key}", _OAUTH2_KEYS)
    m = {**PRESETS[provider].get("oauth2", {}), **own}
    before = len(r.problems)
    flow = r.get(m, prefix, "flow", str, "device")
    if flow not in OAUTH2_FLOWS:
        r.problem(f"{prefix}.flow", f"must be one of {', '.join(OAUTH2_FLOWS)}, not {flow!r}")
    mechanism = r.get(m, prefix, "mechanism", str, "xoauth2").lower()
    if mechanism not in OAUTH2_MECHANISMS:
        r.problem(f"{prefix}.mechanism", f"must be one of {', '.join(OAUTH2_MECHANISMS)}")
    urls = {}
    for key, needed in (
        ("token_url", True),
        ("device_authorization_url", flow == "device"),
        ("authorization_url", flow == "pkce"),
    ):
        urls[key] = r.get(m, prefix, key, str, "", required=needed)
        if urls[key]:
            _check_oauth_url(r, f"{prefix}.{key}", urls[key])
    client_id = r.get(m, prefix, "client_id", str, "")
    if not client_id.strip():
        who = PROVIDER_NAMES.get(provider, "this account")
        r.problem(
            f"{prefix}.client_id",
            f"is required: {who} needs OAuth2; register an app and put its client ID here "
            "(see docs/oauth2.md)",
        )
    scopes = r.get(m, prefix, "scopes", list, [])
    if not scopes or not all(isinstance(x, str) and x and x.split() == [x] for x in scopes):
        r.problem(f"{prefix}.scopes", 'must be a list of scopes, such as ["imap", "smtp"]')
        scopes = []
    params = r.get(m, prefix, "auth_params", dict, {})
    if not all(isinstance(v, str) for v in params.values()):
        r.problem(f"{prefix}.auth_params", "must be a table of strings")
        params = {}
    if len(r.problems) > before:
        return None
    return OAuth2Settings(
        provider=provider,
        flow=flow,
        authorization_url=urls["authorization_url"],
        device_authorization_url=urls["device_authorization_url"],
        token_url=urls["token_url"],
        client_id=client_id,
        scopes=tuple(scopes),
        mechanism=mechanism,
        auth_params=tuple(sorted(params.items())),
        account=name,
        store_dir=base / ".mailer",
        client_secret=secrets.get(secret_var, ""),
    )


def _check_oauth_url(r: _Reader, key: str, url: str) -> None:
    """HTTPS, or plain HTTP to this machine only: the token endpoint gets the refresh token."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        parts, host = None, ""
    if parts is None or parts.scheme not in ("https", "http") or not _valid_host(host):
        r.problem(key, f"must be an https:// URL, not {url!r}")
    elif parts.scheme == "http" and not _is_loopback(host):
        r.problem(key, f"must use https:// (plain http is allowed only to a loopback host): {url}")


def _subtable(r: _Reader, t: dict[str, Any], prefix: str, name: str) -> dict[str, Any]:
    value = t.get(name, {})
    if not isinstance(value, dict):
        r.problem(f"{prefix}.{name}", "must be a table")
        return {}
    return value


def _server(
    r: _Reader,
    name: str,
    t: dict[str, Any],
    workspace: Path,
    default_user: str,
    default_port: int,
) -> ServerSettings:
    known = {
        *SOURCE_KEYS,
        "host",
        "port",
        "security",
        "username",
        "ca_file",
        "timeout",
        "retries",
        "sent_folder",
        "save_sent",
        "daily_cap",
        "auth",
        *(("pipelining",) if name.endswith("smtp") else ()),
    }
    for key in t:
        if key not in known:
            r.unknown(f"{name}.{key}", known)
    host = r.get(t, name, "host", str, "", required=True)
    if host and not _valid_host(host):
        # A URL with "user:password@" in it is not quoted back: it holds a password.
        shown = "a URL with a user name in it" if "@" in host else repr(host)
        r.problem(f"{name}.host", f"must be a host name or IP address, not {shown}")
        host = ""
    if host in ("smtp.example.com", "imap.example.com"):
        r.problem(
            f"{name}.host",
            f"still {host!r}, the example written by 'mailer init'; "
            "put in your provider's server (for Gmail, delete the host, port and security "
            'lines and set provider = "gmail")',
        )
    security = r.get(t, name, "security", str, "ssl" if name.endswith("imap") else "starttls")
    if security not in SECURITY_MODES:
        r.problem(
            f"{name}.security", f"must be one of {', '.join(SECURITY_MODES)}, not {security!r}"
        )
    port = r.get(t, name, "port", int, default_port)
    if not 1 <= port <= 65535:
        r.problem(f"{name}.port", f"must be between 1 and 65535, not {port}")
    if security == "plain" and host and not _is_loopback(host):
        r.problem(
            f"{name}.security",
            f"'plain' sends the password unencrypted and is allowed only to a loopback host, not {host}",
        )
    timeout = r.get(t, name, "timeout", float, 30.0)
    if not (math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT):
        r.problem(
            f"{name}.timeout",
            f"must be a number of seconds above 0 and at most {MAX_TIMEOUT:g}, not {timeout}",
        )
        timeout = 30.0
    ca = r.get(t, name, "ca_file", str, "")
    ca_path = None
    if ca:
        try:
            ca_path = (workspace / Path(ca).expanduser()).resolve()
            if (ca_problem := ca_file_problem(ca_path)) is not None:
                r.problem(f"{name}.ca_file", ca_problem)
        except (OSError, RuntimeError, ValueError) as exc:  # unknown ~user, loop, too long
            r.problem(f"{name}.ca_file", f"cannot use {ca!r}: {exc}")
            ca_path = None
    return ServerSettings(
        host=host,
        port=port,
        security=security,
        username=r.get(t, name, "username", str, default_user) or default_user,
        ca_file=ca_path,
        timeout=timeout,
    )


# A lease shorter than a couple of seconds would expire between two heartbeats of a busy
# daemon (they come every third of it); a day is longer than any failover anyone waits for.
LEASE_RANGE = (2.0, 86400.0)


def _lease_seconds(r: _Reader, data: dict[str, Any]) -> float:
    table = r.table("daemon", ("lease_seconds",))
    seconds = r.get(table, "daemon", "lease_seconds", float, 60.0)
    low, high = LEASE_RANGE
    if not low <= seconds <= high:
        r.problem(
            "daemon.lease_seconds",
            f"must be between {low:g} and {high:g} seconds, not {seconds:g}",
        )
        return 60.0
    return seconds


def _retries(r: _Reader, data: dict[str, Any]) -> int:
    table = data.get("smtp") if isinstance(data.get("smtp"), dict) else {}
    retries = r.get(table, "smtp", "retries", int, 3)
    if not 0 <= retries <= 10:
        r.problem("smtp.retries", f"must be between 0 and 10, not {retries}")
        return 3
    return retries


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_host_re().fullmatch(host))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_SENDER_TEXT = ("name", "phone", "signature", "timezone", "locale")


def _check_sender_text(r: _Reader, prefix: str, sender: SenderSettings) -> set[str]:
    """The name and phone go into headers (From, and the Subject of the default templates);
    the signature only into the body: the same rules as every other fact. Returns the keys
    with a problem, which later checks skip (they would quote a value that may be huge)."""
    from mailer.model.values import (
        NAME_MAX,
        PHONE_MAX,
        SHORT_MAX,
        SIGNATURE_MAX,
        body_problem,
        header_problem,
    )

    bad: set[str] = set()
    for key, problem in (
        ("name", header_problem(sender.name, NAME_MAX)),
        ("phone", header_problem(sender.phone, PHONE_MAX)),
        ("signature", body_problem(sender.signature, SIGNATURE_MAX)),
        ("timezone", header_problem(sender.timezone, SHORT_MAX)),
        ("locale", header_problem(sender.locale, SHORT_MAX)),
    ):
        if problem:
            r.problem(f"{prefix}.{key}", problem)
            bad.add(key)
    return bad


def _check_address(r: _Reader, key: str, value: str) -> None:
    from mailer.model.addresses import validate_address

    if value != value.strip(" \t"):
        # (validate_address drops them from an address typed on the command line; the
        # config's value is used as written, in From and as the login's default user)
        r.problems.append(printable(f"{r.path}: {key}: {value!r} has spaces around it"))
        return
    try:
        validate_address(value, allow_test_domains=True, what=key)
    except InputError as exc:
        r.problems.append(printable(f"{r.path}: {exc}"))


def _check_locale(r: _Reader, key: str, value: str) -> None:
    """The locale must be one the composer can write a date in: try the calls it makes."""
    from mailer.model.settings import DAY_PATTERNS

    if value in DAY_PATTERNS:
        return  # written without Babel: loading it only to check costs ~70 ms of start-up
    from babel import Locale
    from babel.core import UnknownLocaleError
    from babel.dates import format_date

    try:
        pattern = Locale.parse(value).date_formats["full"].pattern
        format_date(datetime(2026, 12, 1), format=pattern, locale=value)
    except (ValueError, TypeError, LookupError, UnknownLocaleError):
        r.problem(key, f"unknown locale {value!r} (use one such as en_GB, en_US or de_DE)")


def _check_timezone(r: _Reader, key: str, value: str) -> None:
    """An IANA name or an unambiguous abbreviation; else a suggestion ("did you mean ...?")."""
    from mailer.model.zones import resolve

    try:
        resolve(value, key)
    except InputError as exc:
        r.problem(key, str(exc).removeprefix(f"{key}: "))


def _resolve_sqlite_url(url: str, workspace: Path) -> str:
    m = re.match(r"^sqlite:///(?!/)(.+)$", url)
    if m:
        try:
            return f"sqlite:///{(workspace / m.group(1)).resolve()}"
        except (OSError, RuntimeError):  # a symlink loop: the store reports it when opened
            return f"sqlite:///{workspace / m.group(1)}"
    return url


def _state(r: _Reader, base: Path, secrets: dict[str, str]) -> StateSettings:
    """``[state]``: a SQLite file (the default), or a PostgreSQL database whose password comes
    from the same sources as a mail account's and whose TLS is verified by default off the
    machine. The URL is never quoted in a problem: it may hold a password by mistake."""
    from urllib.parse import parse_qs, urlsplit

    st = r.table("state", ("url", "sslmode", "sslrootcert", *SOURCE_KEYS))
    url = _resolve_sqlite_url(r.get(st, "state", "url", str, "sqlite:///.mailer/state.db"), base)
    scheme = url.partition("://")[0].lower()
    pg_keys = [k for k in ("sslmode", "sslrootcert", *SOURCE_KEYS) if k in st]
    if url.startswith("sqlite:///"):
        for key in pg_keys:
            r.problem(f"state.{key}", "is for a PostgreSQL store; state.url is a SQLite file")
        return StateSettings(url)
    if scheme not in POSTGRES_SCHEMES:
        r.problem(
            "state.url",
            "must be sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE "
            f"(not a {scheme or 'bare'} URL)",
        )
        return StateSettings("sqlite:///" + str(base / ".mailer" / "state.db"))
    try:
        parts = urlsplit(url)
        host, port, user = parts.hostname or "", parts.port or 5432, parts.username or ""
        password = parts.password
    except ValueError:
        r.problem("state.url", "is not a valid URL (its port must be a number up to 65535)")
        return StateSettings(url)
    if password is not None or "password" in parse_qs(parts.query):
        r.problem(
            "state.url",
            "holds a password: it does not belong in the config file; set "
            f"{STATE_PASSWORD_VAR} in the environment or .env, or state.password_source "
            '= "command" or "keyring"',
        )
    if not host or not user or not parts.path.strip("/"):
        r.problem(
            "state.url",
            "must name a user, a host and a database: postgresql://USER@HOST:PORT/DATABASE",
        )
    loopback = host in ("localhost", "") or host.startswith("/") or _is_loopback(host)
    # Off this machine the server must prove who it is; on loopback TLS adds nothing.
    sslmode = r.get(st, "state", "sslmode", str, "prefer" if loopback else "verify-full")
    if sslmode not in SSLMODES:
        r.problem("state.sslmode", f"must be one of {', '.join(SSLMODES)}, not {sslmode!r}")
        sslmode = "verify-full"
    rootcert = r.get(st, "state", "sslrootcert", str, "")
    if rootcert and rootcert != "system":
        cert = Path(rootcert).expanduser()
        cert = cert if cert.is_absolute() else base / cert
        if not cert.is_file():
            r.problem("state.sslrootcert", f"{cert} is not a file")
        rootcert = str(cert)
    # The same sources as an account's password, under the key "state".
    server = ServerSettings(
        host=host, port=port, security="", username=user, ca_file=None, timeout=10
    )
    secret = _password_source(
        r, "", "state", st, server, base, (STATE_PASSWORD_VAR, secrets.get(STATE_PASSWORD_VAR, ""))
    )
    clean = url.replace(f":{password}@", "@", 1) if password is not None else url
    return StateSettings(clean, sslmode=sslmode, sslrootcert=rootcert, secret=secret)


def state_target(
    url: str, workspace: Path, *, sslmode: str = "", sslrootcert: str = "", label: str = "--to"
) -> StateSettings:
    """Another store than the configured one (``mailer store copy --to``), checked as
    ``[state]`` is, its password from the same sources (MAILER_STATE_PASSWORD first)."""
    table: dict[str, Any] = {"url": url}
    if sslmode:
        table["sslmode"] = sslmode
    if sslrootcert:
        table["sslrootcert"] = sslrootcert
    r = _Reader(Path(label), {"state": table})
    state = _state(r, workspace, read_secrets(workspace / ".env"))
    if r.problems:
        raise ConfigError(r.problems)
    return state
