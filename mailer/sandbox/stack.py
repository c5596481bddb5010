"""A private, real mail stack on 127.0.0.1: Dovecot (IMAP + LMTP) and an aiosmtpd SMTP server.

One implementation serves both the test suite's fixture and ``mailer sandbox start``. It
needs Debian's ``dovecot-imapd`` and ``dovecot-lmtpd``. Started by root, Dovecot separates
privileges as usual and stores mail as ``nobody``; started by anyone else, every Dovecot
process runs as that user and every mailbox belongs to them (see :class:`Identity`).
Nothing is relayed off the machine.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mailer.adapters import process
from mailer.adapters.anchor import ANCHOR
from mailer.errors import InputError, MailerError, SandboxError

SANDBOX_DOMAIN = "sandbox.test"
DEFAULT_USERS = {
    f"you@{SANDBOX_DOMAIN}": "you-password",
    f"interviewer@{SANDBOX_DOMAIN}": "interviewer-password",
    f"recruiter@{SANDBOX_DOMAIN}": "recruiter-password",
}
HOST = "127.0.0.1"
MAIL_UID = 65534  # 'nobody': Dovecot refuses to store mail as root
AUTH_USER = "dovecot"  # Dovecot's default_internal_user, which runs its auth process
# Mail to these domains is accepted, then bounced with a real DSN, as a relay would.
BOUNCE_DOMAINS = ("unreachable.test",)
# The scopes the sandbox's servers ask of a token, as Microsoft asks one per protocol.
IMAP_SCOPE = "imap"
SMTP_SCOPE = "smtp"


@dataclass
class StackInfo:
    """Where a running stack listens, and the files a client needs to trust it."""

    dir: str
    host: str
    smtp_port: int  # submission, STARTTLS required
    smtps_port: int  # implicit TLS
    smtp_plain_port: int  # no TLS: loopback only
    imap_port: int  # STARTTLS available
    imaps_port: int
    lmtp_port: int
    ca_file: str
    users: dict[str, str]
    dovecot_pid: int = 0
    smtp_pid: int = 0
    # When each started (process.start_mark): after a reboot the PIDs in an old stack.json
    # may be other programs', which must never be stopped for ours. Empty in older files.
    dovecot_mark: str = ""
    smtp_mark: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    # An OAuth2 server's base URL (see mailer.sandbox.oauth): when set, Dovecot and the SMTP
    # server also take XOAUTH2/OAUTHBEARER tokens, checked by its introspection endpoint.
    oauth_url: str = ""

    @property
    def smtp_log(self) -> Path:
        return Path(self.dir) / "smtp.log"

    @property
    def faults_file(self) -> Path:
        return Path(self.dir) / "faults.json"

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        path.chmod(0o600)

    @classmethod
    def load(cls, path: Path) -> StackInfo:
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def free_ports(n: int) -> list[int]:
    """Ask the kernel for n distinct free TCP ports on loopback."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def check_prerequisites() -> None:
    process.find_dovecot()  # Windows, macOS (Homebrew) and Linux differ: see mailer.adapters.process


@dataclass(frozen=True)
class Identity:
    """Who Dovecot's processes run as and who owns the mail.

    As root: the usual privilege separation (auth as 'dovecot', logins as 'dovenull'), mail
    as 'nobody', since Dovecot refuses to store mail as uid 0. As an ordinary user nothing can
    change user or chroot, so every service runs as the invoking user ("rootless" Dovecot),
    and the mail is theirs too.
    """

    rootless: bool
    mail_uid: int
    mail_gid: int
    user: str = ""  # the invoking user's name and group (rootless only)
    group: str = ""

    @classmethod
    def current(cls) -> Identity:
        if os.geteuid() == 0:
            return cls(rootless=False, mail_uid=MAIL_UID, mail_gid=MAIL_UID)
        import grp
        import pwd

        uid, gid = os.geteuid(), os.getegid()
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            raise SandboxError(
                f"the current user (uid {uid}) has no name in the password database, "
                "and Dovecot needs one to run as",
                hint="run 'mailer sandbox start' as a user listed by 'getent passwd'",
            ) from None
        try:
            group = grp.getgrgid(gid).gr_name
        except KeyError:
            group = user
        return cls(rootless=True, mail_uid=uid, mail_gid=gid, user=user, group=group)


def _users_file(path: Path, who: Identity) -> None:
    """Create the passwd-file empty, 0600, before any password goes in. Dovecot's auth
    process reads it as its internal user ('dovecot' under root, else the invoking user), so
    that user owns it; root (our SMTP server, doveadm) reads it anyway."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the mode given to open() only applies to a new file
        if not who.rootless:
            import pwd

            try:
                auth = pwd.getpwnam(AUTH_USER)
            except KeyError:
                raise SandboxError(
                    f"Dovecot's internal user {AUTH_USER!r} does not exist",
                    hint="reinstall Dovecot: apt-get install --reinstall dovecot-core",
                ) from None
            os.fchown(fd, auth.pw_uid, auth.pw_gid)
    finally:
        os.close(fd)


def _dovecot_binary() -> str:
    return process.find_dovecot()


def _write_certs(d: Path) -> Path:
    import trustme

    ca = trustme.CA(organization_name="mailer sandbox CA")
    cert = ca.issue_cert(HOST, "localhost")
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    cert.private_key_pem.write_to_path(str(d / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(d / "cert.pem"), append=True)
    (d / "key.pem").chmod(0o600)
    return d / "ca.pem"


def _rootless_conf(who: Identity) -> str:
    """Settings that let an ordinary user run Dovecot: every internal and login process as
    that user, and no chroot (only root may chroot). The listeners are already on high ports
    of 127.0.0.1 and base_dir is private, so nothing else needs privilege."""
    if not who.rootless:
        return ""
    services = "".join(
        f"service {name} {{\n  chroot =\n}}\n"
        for name in ("imap-login", "pop3-login", "submission-login", "imap-urlauth-login")
    )
    return f"""default_internal_user = {who.user}
default_internal_group = {who.group}
default_login_user = {who.user}
{services}"""


def _dovecot_conf(info: StackInfo, who: Identity) -> str:
    d = info.dir
    return f"""# Written by mailer.sandbox.stack: a private Dovecot, never touching /etc/dovecot.
{_rootless_conf(who)}base_dir = {d}/run
state_dir = {d}/state
instance_name = mailer-{Path(d).name}
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
protocols = imap lmtp
listen = {info.host}
ssl = yes
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login{" xoauth2 oauthbearer" if info.oauth_url else ""}
auth_failure_delay = 0
mail_location = mdbox:~/mdbox
first_valid_uid = 1
mail_fsync = never
lmtp_add_received_header = yes
{_oauth_passdb(info)}passdb {{
  driver = passwd-file
{"  mechanisms = plain login none" + chr(10) if info.oauth_url else ""}  args = scheme=PLAIN username_format=%Lu {d}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%Lu {d}/users
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Junk {{
    special_use = \\Junk
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = {info.host}
    port = {info.imap_port}
  }}
  inet_listener imaps {{
    address = {info.host}
    port = {info.imaps_port}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = {info.host}
    port = {info.lmtp_port}
  }}
}}
service anvil {{
{"  chroot =" + chr(10) if who.rootless else ""}  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


def _oauth_passdb(info: StackInfo) -> str:
    """The ``oauth2`` passdb, first: a token is checked only by introspection. The password
    passdb is limited to its mechanisms, or a refused token would be compared with the
    password. No auth cache: a revoked token must stop working at once."""
    if not info.oauth_url:
        return ""
    return f"""passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {info.dir}/dovecot-oauth2.conf.ext
}}
"""


def oauth2_conf(info: StackInfo) -> str:
    return (
        "introspection_mode = post\n"
        f"introspection_url = {info.oauth_url}/introspect\n"
        "username_attribute = username\n"
        "active_attribute = active\n"
        "active_value = true\n"
        f"scope = {IMAP_SCOPE}\n"
    )


def _wait_for_ports(ports: list[int], procs: list[subprocess.Popen], logs: list[Path]) -> None:
    deadline = time.monotonic() + 20
    pending = list(ports)
    while pending:
        for p in procs:
            if p.poll() is not None:
                tail = "".join(
                    log.read_text(errors="replace")[-600:] for log in logs if log.exists()
                )
                raise SandboxError(f"a sandbox mail server exited at start-up: {tail.strip()}")
        port = pending[0]
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                pending.pop(0)
                continue
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SandboxError(f"the sandbox mail server did not listen on {HOST}:{port} in 20 s")
        time.sleep(0.05)


class MailStack:
    """Start and stop a private Dovecot + SMTP pair. Use :func:`MailStack.start`."""

    def __init__(self, info: StackInfo) -> None:
        self.info = info

    @functools.cached_property
    def who(self) -> Identity:
        return Identity.current()

    @classmethod
    def create(
        cls, users: dict[str, str] | None = None, parent: str | None = None, oauth_url: str = ""
    ) -> MailStack:
        check_prerequisites()
        # As root, Dovecot reads mail as 'nobody', so every parent must be searchable: not
        # pytest's tmp_path. Unix socket paths are limited to 108 bytes, so the path stays short.
        d = Path(tempfile.mkdtemp(prefix="mlr-", dir=parent or "/tmp"))
        d.chmod(0o755)
        ports = free_ports(6)
        info = StackInfo(
            dir=str(d),
            host=HOST,
            smtp_port=ports[0],
            smtps_port=ports[1],
            smtp_plain_port=ports[2],
            imap_port=ports[3],
            imaps_port=ports[4],
            lmtp_port=ports[5],
            ca_file="",
            users=dict(users or DEFAULT_USERS),
            oauth_url=oauth_url,
        )
        return cls(info)

    def start(self) -> StackInfo:
        info = self.info
        d = Path(info.dir)
        for sub in ("run", "state", "mail"):
            (d / sub).mkdir(exist_ok=True)
        info.ca_file = str(_write_certs(d))
        _users_file(d / "users", self.who)
        # Only the mail user may enter the mail folders: they hold everyone's messages.
        os.chown(d / "mail", self.who.mail_uid, self.who.mail_gid)
        (d / "mail").chmod(0o700)
        for user, password in list(info.users.items()):
            self.add_user(user, password)
        conf = d / "dovecot.conf"
        conf.write_text(_dovecot_conf(info, self.who), encoding="utf-8")
        if info.oauth_url:
            (d / "dovecot-oauth2.conf.ext").write_text(oauth2_conf(info), encoding="utf-8")
        smtp_conf = d / "smtp.json"
        smtp_conf.write_text(
            json.dumps(
                {
                    "dir": str(d),
                    "host": info.host,
                    "users": info.users,
                    "lmtp_port": info.lmtp_port,
                    "smtp_port": info.smtp_port,
                    "smtps_port": info.smtps_port,
                    "smtp_plain_port": info.smtp_plain_port,
                    "cert": str(d / "cert.pem"),
                    "key": str(d / "key.pem"),
                    "bounce_domains": list(BOUNCE_DOMAINS),
                    "oauth_url": info.oauth_url,
                    "oauth_scope": SMTP_SCOPE,
                }
            ),
            encoding="utf-8",
        )
        smtp_conf.chmod(0o600)
        dlog, slog = d / "dovecot.out", d / "smtp.out"
        with dlog.open("wb") as dout, slog.open("wb") as sout:
            # Own sessions and redirected output: the servers must outlive a CLI start, and
            # a child holding our stdout would hang callers that capture it.
            dovecot = subprocess.Popen(
                [_dovecot_binary(), "-F", "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=dout,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            smtp = subprocess.Popen(
                [sys.executable, "-m", "mailer.sandbox.smtp", str(smtp_conf)],
                stdin=subprocess.DEVNULL,
                stdout=sout,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=str(Path(__file__).resolve().parents[2]),
            )
        info.dovecot_pid, info.smtp_pid = dovecot.pid, smtp.pid
        info.dovecot_mark, info.smtp_mark = _mark(dovecot.pid), _mark(smtp.pid)
        try:
            _wait_for_ports(
                [
                    info.imap_port,
                    info.imaps_port,
                    info.lmtp_port,
                    info.smtp_port,
                    info.smtps_port,
                    info.smtp_plain_port,
                ],
                [dovecot, smtp],
                [dlog, d / "dovecot.log", slog],
            )
        except SandboxError:
            self.stop()
            raise
        return info

    def add_user(self, user: str, password: str) -> None:
        """Add a mailbox; both servers read the users file afresh, so this works while running."""
        d = Path(self.info.dir)
        home = d / "mail" / user.lower()
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        uid, gid = self.who.mail_uid, self.who.mail_gid
        os.chown(home, uid, gid)
        home.chmod(0o700)
        with (d / "users").open("a", encoding="utf-8") as f:
            f.write(f"{user.lower()}:{{PLAIN}}{password}:{uid}:{gid}::{home}::\n")
        self.info.users[user.lower()] = password
        if _ours(self.info.dovecot_pid, self.info.dovecot_mark):
            self._wait_until_known(user)

    def _wait_until_known(self, user: str) -> None:
        # Dovecot re-reads a changed passwd-file at most about once a second: ask it until
        # it knows the new user.
        deadline = time.monotonic() + 10
        conf = str(Path(self.info.dir) / "dovecot.conf")
        doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
        while time.monotonic() < deadline:
            found = subprocess.run(
                [doveadm, "-c", conf, "user", user.lower()],
                capture_output=True,
                stdin=subprocess.DEVNULL,
            )
            if found.returncode == 0:
                return
            time.sleep(0.1)
        raise SandboxError(f"Dovecot did not pick up the new mailbox {user} within 10 s")

    def stop(self, remove: bool = True) -> None:
        # Both asked at once: Dovecot takes a second to stop its children. Only while they
        # are still the servers we started (a reused PID is someone else's program).
        i = self.info
        servers = ((i.smtp_pid, i.smtp_mark), (i.dovecot_pid, i.dovecot_mark))
        process.terminate(*(pid for pid, mark in servers if _ours(pid, mark)))
        if remove:
            shutil.rmtree(self.info.dir, ignore_errors=True)

    def restart_dovecot(self) -> None:
        """Stop and start Dovecot alone, keeping its mail (for reconnect tests)."""
        if _ours(self.info.dovecot_pid, self.info.dovecot_mark):
            process.terminate(self.info.dovecot_pid)
        d = Path(self.info.dir)
        with (d / "dovecot.out").open("ab") as out:
            p = subprocess.Popen(
                [_dovecot_binary(), "-F", "-c", str(d / "dovecot.conf")],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.info.dovecot_pid, self.info.dovecot_mark = p.pid, _mark(p.pid)
        _wait_for_ports([self.info.imap_port, self.info.lmtp_port], [p], [d / "dovecot.log"])

    def import_maildir(self, user: str, maildir: Path) -> None:
        """Bulk-load a Maildir into a user's INBOX with doveadm (for benchmarks)."""
        doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
        subprocess.run(
            [
                doveadm,
                "-c",
                str(Path(self.info.dir) / "dovecot.conf"),
                "import",
                "-u",
                user,
                f"maildir:{maildir}",
                "",
                "all",
            ],
            check=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
        )


def _mark(pid: int) -> str:
    """The start mark of a server just started; empty if it cannot be read."""
    mark = process.start_mark(pid)
    return "" if mark == "-" else mark


def _ours(pid: int, mark: str) -> bool:
    """Whether ``pid`` still runs the server we started as it (its start mark matches); with
    no mark (a stack.json an older mailer wrote) the PID is all there is to go by."""
    return process.is_running(pid, mark) if mark else process.alive(pid)


# --- the user-facing sandbox: one stack per workspace, described under .mailer/sandbox/ ---


def sandbox_dir(workspace: Path) -> Path:
    return workspace / ".mailer" / "sandbox"


def running_sandbox(workspace: Path) -> StackInfo | None:
    path = sandbox_dir(workspace) / "stack.json"
    if not path.exists():
        return None
    info = StackInfo.load(path)
    if (
        _ours(info.dovecot_pid, info.dovecot_mark)
        and _ours(info.smtp_pid, info.smtp_mark)
        and Path(info.dir).exists()
    ):
        return info
    return None


def not_running(workspace: Path) -> MailerError:
    """The error for a sandbox command when ``workspace``'s sandbox is not running. Each
    workspace has its own; the per-user one (outside any workspace) is another, and a user
    who started that one and then moved into a workspace is told so."""
    from mailer.adapters.userdirs import user_data_dir

    hint = "start it with 'mailer sandbox start', run in this folder"
    other = user_data_dir()
    if workspace.resolve() != other.resolve() and running_sandbox(other) is not None:
        hint += (
            "; the sandbox running now is the one started outside any workspace: run the "
            "command from outside this workspace to use it"
        )
    return MailerError(f"the sandbox of {workspace} is not running", hint=hint)


def start_sandbox(workspace: Path) -> StackInfo:
    """Start the workspace's sandbox and write its config, .env and CA under .mailer/sandbox/."""
    if running_sandbox(workspace) is not None:
        raise SandboxError(
            f"the sandbox is already running (see {sandbox_dir(workspace) / 'stack.json'})",
            hint="'mailer sandbox status' shows it; 'mailer sandbox stop' stops it",
        )
    stale = sandbox_dir(workspace) / "stack.json"
    if stale.exists():
        old = StackInfo.load(stale)
        MailStack(old).stop()
    # Its folder first: a folder that cannot be made must not leave servers running.
    sdir = sandbox_dir(workspace)
    sdir.mkdir(parents=True, exist_ok=True)
    stack = MailStack.create()
    info = stack.start()
    try:
        # Each start is a fresh sandbox: its mail is gone, so its threads go too.
        for name in ("state.db", "state.db-wal", "state.db-shm", "state.db.lock", ANCHOR):
            (sdir / name).unlink(missing_ok=True)
        os.chmod(sdir, 0o700)
        shutil.copy(info.ca_file, sdir / "ca.pem")
        sender = f"you@{SANDBOX_DOMAIN}"
        (sdir / "config").mkdir(exist_ok=True)
        config = sdir / "config" / "mailer.toml"
        written = sandbox_config_toml(info, sdir / "ca.pem", sender)
        try:
            before = config.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            before = ""
        config.write_text(with_users_settings(written, before), encoding="utf-8")
        env = sdir / ".env"
        env.write_text(
            f"MAILER_SMTP_PASSWORD={info.users[sender]}\nMAILER_IMAP_PASSWORD={info.users[sender]}\n",
            encoding="utf-8",
        )
        env.chmod(0o600)
        info.save(sdir / "stack.json")
    except BaseException:
        stack.stop()  # nothing records it, so nothing else could stop it
        raise
    return info


def sandbox_config_toml(info: StackInfo, ca_file: Path, sender: str) -> str:
    return f"""# Written by 'mailer sandbox start'. Points mailer at the local sandbox only.
[sender]
name = "Sam Sandbox"
address = "{sender}"
phone = "+1 555 0100"
signature = "Sam Sandbox"

[smtp]
host = "{info.host}"
port = {info.smtp_port}
security = "starttls"
username = "{sender}"
ca_file = "{ca_file}"

[imap]
host = "{info.host}"
port = {info.imaps_port}
security = "ssl"
username = "{sender}"
ca_file = "{ca_file}"

[addresses]
allow_test_domains = true

[state]
url = "sqlite:///{ca_file.parent / "state.db"}"
"""


# The tables a start writes anew (the ports and the certificate change every start); in
# [sender], only the address (the sandbox's own mailbox).
_OWN_TABLES = frozenset({"smtp", "imap", "addresses", "state"})


def with_users_settings(written: str, before: str) -> str:
    """The config a start writes (``written``), with what the user added to the one it
    replaces (``before``): the README has them add [follow_up] to see a follow-up in
    seconds, and a restart dropped it. Kept verbatim: every table the start does not write,
    and the [sender] lines other than the address (theirs win over the defaults). Should
    the result not read as TOML, ``written`` alone."""
    import tomllib

    sender: dict[str, str] = {}  # key -> its line (or lines: a multi-line string)
    kept: list[str] = []
    table, open_key = "", ""  # open_key: a [sender] value whose ''' or """ is still open
    for line in before.splitlines():
        bare = line.strip()
        if open_key:
            sender[open_key] += "\n" + line
            if _opens_multiline(line):  # (its closing quotes)
                open_key = ""
            continue
        if bare.startswith("["):
            table = bare.strip("[] ").split(".")[0].strip().strip('"')
        if not table:
            continue  # (the comment the start writes above the first table)
        if table == "sender":
            key = bare.partition("=")[0].strip()
            if "=" in bare and key != "address" and not bare.startswith("#"):
                sender[key] = line
                if _opens_multiline(bare.partition("=")[2]):
                    open_key = key
        elif table not in _OWN_TABLES:
            kept.append(line)
    if not sender and not kept:
        return written
    lines = written.splitlines()
    start = lines.index("[sender]") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("[")), len(lines))
    body = [x for x in lines[start:end] if x.partition("=")[0].strip() not in sender]
    merged = [*lines[:start], *[x for x in body if x.strip()], *sender.values(), ""]
    merged += lines[end:]
    text = "\n".join(merged).rstrip("\n") + "\n"
    if kept:
        text += "\n# Kept from before the sandbox last started:\n" + "\n".join(kept) + "\n"
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return written
    return text


def _opens_multiline(text: str) -> bool:
    """Whether ``text`` opens (or closes) a multi-line string and leaves it so: an odd
    number of triple quotes of one kind."""
    return text.count('"""') % 2 == 1 or text.count("'''") % 2 == 1


def stop_sandbox(workspace: Path) -> str:
    """Stop the workspace's sandbox and delete its mail. Returns what there was to stop:
    ``"stopped"``, ``"not running"`` (nothing to do: what the user wanted, not an error) or
    ``"left behind"`` (servers already gone; their files are removed now)."""
    path = sandbox_dir(workspace) / "stack.json"
    if not path.exists():
        return "not running"
    info = StackInfo.load(path)
    was_running = running_sandbox(workspace) is not None
    MailStack(info).stop()
    path.unlink()
    return "stopped" if was_running else "left behind"


def check_recipients(info: StackInfo, addresses: Iterable[str]) -> None:
    """Refuse, before anything is sent, an address the sandbox cannot deliver to: a typo, or
    a real person's address pasted into a trial run. Addresses at a bounce domain are let
    through: the sandbox bounces them on purpose."""
    known = {u.lower() for u in info.users}
    unknown = [
        a
        for a in dict.fromkeys(addresses)
        if a.lower() not in known and a.rpartition("@")[2].lower() not in BOUNCE_DOMAINS
    ]
    if unknown:
        which = "mailbox" if len(unknown) == 1 else "mailboxes"
        raise InputError(
            f"the sandbox has no {which} {', '.join(unknown)}; nothing was sent",
            hint=f"its mailboxes: {', '.join(sorted(known))}; "
            f"any address at {', '.join(BOUNCE_DOMAINS)} bounces",
        )


def read_inbox(info: StackInfo, user: str) -> list[bytes]:
    """Every message in a sandbox user's INBOX, oldest first, read over IMAPS."""
    import ssl

    from imapclient import IMAPClient

    if user.lower() not in {u.lower() for u in info.users}:
        raise InputError(f"no sandbox mailbox {user!r} (there are: {', '.join(info.users)})")
    ctx = ssl.create_default_context(cafile=info.ca_file)
    with IMAPClient(info.host, port=info.imaps_port, ssl=True, ssl_context=ctx, timeout=10) as c:
        c.login(user, info.users[user.lower()])
        c.select_folder("INBOX", readonly=True)
        uids = c.search("ALL")
        fetched = c.fetch(uids, [b"BODY.PEEK[]"]) if uids else {}
        return [fetched[u][b"BODY[]"] for u in sorted(fetched)]


def send_as(
    info: StackInfo,
    user: str,
    to: str,
    subject: str,
    text: str,
    headers: dict[str, str] | None = None,
) -> str:
    """Submit a message as a sandbox user (say, the interviewer answering). Returns its ID."""
    import smtplib
    import ssl
    from email.message import EmailMessage
    from email.policy import SMTP
    from email.utils import formatdate, make_msgid

    password = info.users.get(user.lower())
    if password is None:
        raise InputError(f"no sandbox mailbox {user!r} (there are: {', '.join(info.users)})")
    msg = EmailMessage(policy=SMTP.clone(max_line_length=998))  # no folded subject
    msg["From"] = user
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=SANDBOX_DOMAIN)
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(text)
    with smtplib.SMTP(info.host, info.smtp_port, timeout=10) as smtp:
        smtp.starttls(context=ssl.create_default_context(cafile=info.ca_file))
        smtp.login(user, password)
        smtp.send_message(msg)
    return str(msg["Message-ID"])
