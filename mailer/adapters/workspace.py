"""``mailer init``: scaffold a workspace without ever overwriting a file.

Templates are not copied: the workspace ``templates/`` holds only what the user overrides
(``mailer templates copy SITUATION``), so wording fixes in new versions reach everyone else.
"""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path

from mailer.model.composer import default_templates_dir

CONFIG_TEMPLATE = """# mailer settings. Secrets (passwords) never go here: .env, a command or the keyring.
# Every setting is shown; the commented ones have their defaults.

# provider = "generic"        # or "gmail", "microsoft365", "outlook": fills in the servers
                              # below (and the OAuth2 sign-in; see README "Providers").
# auth = "password"           # or "oauth2" (then 'mailer auth login'); Microsoft needs oauth2

[sender]
name = "Your Name"
address = "you@example.com"
phone = ""                    # shown under your signature
signature = ""                # defaults to your name; may span lines with \\n
# timezone = "Europe/London"  # IANA zone for --interview and --free; default: this machine's
# locale = "en_GB"            # how dates are written ("Thursday 3 December")

[smtp]
host = "smtp.example.com"
port = 587
security = "starttls"         # "ssl" (port 465), "starttls" (587) or "plain" (loopback only)
# username = ""               # defaults to sender.address
# ca_file = ""                # a private CA to trust, besides the system's
# timeout = 30                # seconds, for every network operation
# retries = 3                 # for temporary (4xx) refusals before the message is sent
# password_source = "env"     # "env" (.env), "command", "keyring" or "prompt" (not the daemon)
# password_command = ["pass", "show", "mail/you"]  # its first line is the password; no shell
# password_command_timeout = 30
# pipelining = true           # MAIL FROM, RCPT TO and DATA in one round trip (RFC 2920)
# daily_cap = 0               # messages a day from this account (0: no cap)
# auth = "password"           # this server only (see auth above)

[imap]
host = "imap.example.com"
port = 993
security = "ssl"
# username = ""
# ca_file = ""
# timeout = 30
# sent_folder = ""            # default: the folder marked \\Sent
# save_sent = true            # false for providers that file sent mail themselves (Gmail)

[follow_up]
# wait = "3 business days"    # or any duration: "45s", "2 hours", "1 week"
# max_follow_ups = 1
# holidays_country = ""       # e.g. "GB-ENG", "DE-BY", "US": public holidays are not business days
# window = "09:00-17:00"      # when follow-ups may go, in the interviewer's zone ("always")
# window_days = "mon-fri"
# quote_original = true       # quote the apology below the follow-up
# hold_if_late = "7 days"     # later than this (mailer was not running): held for
#                             # 'mailer release ID'; "never" sends it however late

[watch]
# folders = ["INBOX"]         # add "Junk" to see a reply filed as spam at once (other folders
#                             # are searched anyway right before a follow-up)
# idle = true                 # IMAP IDLE: notice a reply within about a second
# poll_interval = "60s"
# notify = false              # email yourself when the interviewer replies

[composer]
# html = false                # also send an HTML alternative with the same text

[addresses]
# allow_test_domains = false  # accept .test addresses (the sandbox uses them)

# [oauth2]                    # your own provider's sign-in (a preset's: leave it out)
# client_id = ""              # the app you registered (docs/oauth2.md)
# flow = "device"             # or "pkce" (a browser on this machine)
# authorization_url = ""
# device_authorization_url = ""
# token_url = ""
# scopes = []
# mechanism = "xoauth2"       # or "oauthbearer"
# auth_params = {}

[daemon]
# lease_seconds = 60          # several daemons on a shared store: an account goes to another
                              # daemon this long after its own stopped renewing it

[state]
# url = "sqlite:///.mailer/state.db"   # relative to this workspace; or postgresql://...
# sslmode = "verify-full"     # PostgreSQL only ("prefer" on loopback)
# sslrootcert = ""            # PostgreSQL only: the CA that signed the server's certificate

# More mailboxes to send from (campaigns: a coach sending from each candidate's own account).
# Each has its own password variables in .env: MAILER_ACCOUNT_ANNA_SMTP_PASSWORD (and
# MAILER_ACCOUNT_ANNA_IMAP_PASSWORD if it differs). Replies are watched in each account.
# [accounts.anna]
# provider = "gmail"
# [accounts.anna.sender]
# name = "Anna Schmidt"
# address = "anna@gmail.com"
# [accounts.anna.smtp]
# daily_cap = 100             # messages a day from this account (also [smtp] daily_cap)
"""


def env_example_path() -> Path:
    """``.env.example`` ships beside the default templates (and lives at the repo root)."""
    for candidate in (
        default_templates_dir() / "env.example.txt",
        Path(__file__).resolve().parents[2] / ".env.example",
    ):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(".env.example")


def init_workspace(target: Path) -> list[tuple[str, Path]]:
    """Create the files that are missing. Returns (``created`` or ``kept``, path) pairs."""
    return _scaffold(target / "config" / "mailer.toml", target)


def init_user() -> list[tuple[str, Path]]:
    """The user-level config, used from any folder that is not in a workspace: the config in
    the per-user config directory, the rest in the per-user data directory."""
    from mailer.adapters.userdirs import user_config_path, user_data_dir

    return _scaffold(user_config_path(), user_data_dir())


def _scaffold(config: Path, home: Path) -> list[tuple[str, Path]]:
    """``config``: the TOML file; ``home``: where its .env, templates/ and campaigns go."""
    results: list[tuple[str, Path]] = []
    config.parent.mkdir(parents=True, exist_ok=True)
    results.append(_write_new(config, CONFIG_TEMPLATE))
    (home / "templates").mkdir(parents=True, exist_ok=True)
    campaigns = home / "config" / "campaigns"
    campaigns.mkdir(parents=True, exist_ok=True)
    results.append(_write_new(campaigns / "example.toml", example_campaign(date.today())))
    env = home / ".env"
    results.append(_write_new(env, env_example_path().read_text(encoding="utf-8"), mode=0o600))
    return results


def example_campaign(today: date) -> str:
    """The example campaign, dated around ``today``: its interviews on the two weekdays before
    it and its free times on weekdays from three days after it. Its notes are in the past
    tense, and so is every text it renders, whenever ``init`` runs."""
    text = (default_templates_dir() / "campaign.example.toml").read_text(encoding="utf-8")
    before = _weekdays(today, -1, 2)
    after = _weekdays(today + timedelta(days=2), 1, 2)
    for token, day in (
        ("@INTERVIEW_1@", before[1]),
        ("@INTERVIEW_2@", before[0]),
        ("@FREE_1@", after[0]),
        ("@FREE_2@", after[1]),
    ):
        text = text.replace(token, f"{day:%Y-%m-%d}")
    return text


def _weekdays(start: date, step: int, count: int) -> list[date]:
    """The first ``count`` weekdays from ``start`` (excluded), going ``step`` days at a time."""
    out: list[date] = []
    day = start
    while len(out) < count:
        day += timedelta(days=step)
        if day.weekday() < 5:
            out.append(day)
    return out


def _write_new(path: Path, content: str, mode: int = 0o644) -> tuple[str, Path]:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return ("kept", path)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(content)
    os.chmod(path, mode)
    return ("created", path)


def copy_template(templates_dir: Path, situation: str) -> Path:
    """Start an override: copy the packaged template into the workspace's templates/.
    Never overwrites (an edited override is the user's work)."""
    from mailer.errors import InputError
    from mailer.model.composer import template_name

    src = default_templates_dir() / template_name(situation)
    if not src.is_file() or situation.startswith("_"):
        from mailer.model.composer import builtin_situations

        raise InputError(
            f"{situation!r}: no built-in template of that name "
            f"(built-in: {', '.join(builtin_situations())})"
        )
    dest = templates_dir / src.name
    templates_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise InputError(
            f"{dest}: already exists; edit it, or delete it to start again from the built-in one"
        ) from None
    with os.fdopen(fd, "wb") as f:
        f.write(src.read_bytes())
    return dest
