"""A real PostgreSQL for the tests, in a private data directory (#17).

Debian's ``postgresql`` binaries (``scripts/setup.sh`` installs them), run as an ordinary
user because PostgreSQL refuses root: ``mailer-ci`` through ``runuser`` under root (see
tests/users.py), the current user otherwise. It listens on 127.0.0.1 only, on a free port;
its unix socket stays in the private directory. Every login needs a SCRAM password: there is
no ``trust`` line in its pg_hba.conf, so a test that forgot the password fails as a user's
mailer would.
"""

from __future__ import annotations

import glob
import itertools
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .users import OrdinaryUser

ROLE = "mailer"
ADMIN = "pgadmin"
_databases = itertools.count(1)


def bindir() -> Path:
    """The newest installed PostgreSQL's bin/, or an AssertionError saying how to get one
    (never a skip: the store's contract on PostgreSQL is part of every run)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if not found:
        raise AssertionError(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
            "run scripts/setup.sh as root, or apt-get install postgresql"
        )
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Postgres:
    """A running private PostgreSQL: the ``mailer`` role's password, and how to reach it."""

    root: Path
    port: int
    password: str
    admin_password: str
    user: OrdinaryUser
    bin: Path
    host: str = "127.0.0.1"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @classmethod
    def start(cls, user: OrdinaryUser | None = None) -> Postgres:
        user = user or OrdinaryUser()
        bin_ = bindir()
        # Under /tmp with a short name: its parents must be searchable by the ordinary user,
        # and a unix socket path is at most 108 bytes.
        root = Path(tempfile.mkdtemp(prefix="mlr-pg-", dir="/tmp"))
        root.chmod(0o700)
        pg = cls(
            root=root,
            port=0,
            password=secrets.token_urlsafe(16),
            admin_password=secrets.token_urlsafe(16),
            user=user,
            bin=bin_,
        )
        try:
            pg._init()
            for attempt in range(3):  # a free port taken meanwhile by someone else
                pg.port = _free_port()
                pg._configure()
                if pg._pg_ctl_start():
                    break
                if attempt == 2:
                    raise AssertionError(f"PostgreSQL did not start:\n{pg.log()}")
            pg._wait_ready(deadline=time.monotonic() + 60)
            pg._create_role()
        except BaseException:
            pg.stop()
            raise
        return pg

    def _run(self, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "LANG": "C.UTF-8",
            "HOME": str(self.root),
        }
        # Output to a file, not a pipe: the server that pg_ctl starts would inherit a pipe
        # and hold it open, and the run would wait for it forever.
        out = self.root / "cmd.out"
        with out.open("w") as f:
            r = subprocess.run(
                self.user.argv(args),
                env=env,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=f,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
            )
        return subprocess.CompletedProcess(args, r.returncode, out.read_text(), "")

    def _init(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(self.admin_password + "\n")
        (self.root / "s").mkdir()
        self.user.give(self.root)
        r = self._run(
            [
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                ADMIN,
                f"--pwfile={pwfile}",
                "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ]
        )
        pwfile.unlink()
        if r.returncode != 0:
            raise AssertionError(f"initdb failed ({r.returncode}):\n{r.stdout}")

    def _configure(self) -> None:
        conf = self.data / "postgresql.conf"
        base = conf.read_text().split("# --- mailer tests ---")[0]
        conf.write_text(
            base
            + "# --- mailer tests ---\n"
            + f"listen_addresses = '{self.host}'\nport = {self.port}\n"
            + f"unix_socket_directories = '{self.root / 's'}'\n"
            + "password_encryption = 'scram-sha-256'\n"
            # A test server: losing it in a power cut loses nothing anyone needs.
            + "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            + "max_connections = 200\nshared_buffers = 32MB\n"
        )
        # Passwords everywhere, SCRAM only: no trust, no md5.
        (self.data / "pg_hba.conf").write_text(
            f"local all all scram-sha-256\nhost all all {self.host}/32 scram-sha-256\n"
        )
        self.user.give(self.data)

    def _pg_ctl_start(self) -> bool:
        r = self._run(
            [
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.root / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        return r.returncode == 0

    def _wait_ready(self, deadline: float) -> None:
        """Poll until a password login works (pg_ctl -w checks the socket, not the login)."""
        import psycopg

        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                with self.admin():
                    return
            except psycopg.OperationalError as exc:
                last = exc
                time.sleep(0.05)  # a poll interval, not a wait standing in for a condition
        raise AssertionError(f"PostgreSQL on port {self.port} never accepted a login: {last}")

    def admin(self, dbname: str = "postgres") -> Any:
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=ADMIN,
            password=self.admin_password,
            dbname=dbname,
            autocommit=True,
            connect_timeout=10,
        )

    def _create_role(self) -> None:
        from psycopg import sql

        with self.admin() as c:
            c.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(ROLE), sql.Literal(self.password)
                )
            )
            # The clean database every test database is copied from.
            c.execute(
                sql.SQL("CREATE DATABASE mailer_template OWNER {} TEMPLATE template0").format(
                    sql.Identifier(ROLE)
                )
            )

    def new_database(self) -> str:
        """A fresh, empty database owned by the mailer role; its name."""
        from psycopg import sql

        name = f"mailer_{os.getpid()}_{next(_databases)}"
        with self.admin() as c:
            c.execute(
                sql.SQL(
                    "CREATE DATABASE {} OWNER {} TEMPLATE mailer_template STRATEGY FILE_COPY"
                ).format(sql.Identifier(name), sql.Identifier(ROLE))
            )
        return name

    def drop_database(self, name: str) -> None:
        from psycopg import sql

        with self.admin() as c:
            c.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def url(self, dbname: str, *, password: bool = True) -> str:
        """The SQLAlchemy URL of a database, as the mailer role (with its password unless
        told not to: the config never holds one)."""
        secret = f":{self.password}" if password else ""
        return f"postgresql://{ROLE}{secret}@{self.host}:{self.port}/{dbname}"

    def log(self) -> str:
        try:
            return (self.root / "server.log").read_text()[-4000:]
        except OSError:
            return "(no server log)"

    def restart(self) -> None:
        """Stop and start on the same port (a connection-loss test)."""
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])
        if not self._pg_ctl_start():
            raise AssertionError(f"PostgreSQL did not start again:\n{self.log()}")
        self._wait_ready(deadline=time.monotonic() + 60)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])
        shutil.rmtree(self.root, ignore_errors=True)
