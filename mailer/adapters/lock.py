"""One daemon per state store: an OS file lock next to the store.

portalocker takes it with flock on Linux and macOS and msvcrt.locking on Windows, on a file we
open ourselves (filelock would truncate it on every try, erasing the holder's name). The
system drops the lock when its process dies, so a lock left by a killed daemon never blocks
a restart; the PID written inside is only there to name the holder in messages (Windows
keeps a locked file from being read, so there the holder is "another process").
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from mailer.errors import ExitCode, MailerError, StateError

if TYPE_CHECKING:
    import portalocker


class LockedError(MailerError):
    exit_code = ExitCode.LOCKED


def lock_path(state_url: str, workspace: Path) -> Path:
    if state_url.startswith("sqlite:///"):
        return Path(state_url[len("sqlite:///") :] + ".lock")
    return workspace / ".mailer" / "daemon.lock"


def store_lock(state_url: str, workspace: Path, purpose: str) -> StoreLock:
    """The lock that lets one process at a time do the follow-up work on a store."""
    return StoreLock(lock_path(state_url, workspace), purpose)


class StoreLock:
    def __init__(self, path: Path, purpose: str) -> None:
        self.path = path
        self.purpose = purpose
        self.fd: int | None = None

    def acquire(self) -> StoreLock:
        import portalocker  # lazily: it costs 60 ms, and most commands take no lock

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise self._cannot("create", exc) from None
        try:
            try_lock(fd)
        except portalocker.AlreadyLocked:
            holder = _holder(fd)
            os.close(fd)
            raise LockedError(
                f"{self.path}: held by {holder}; only one daemon may work on a state store",
                hint="that process already does this work; wait for it, or stop it first",
            ) from None
        except portalocker.LockException as exc:  # a file system without locks (ENOLCK)
            os.close(fd)
            raise self._cannot("lock", _os_error(exc)) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{self.purpose} (pid {os.getpid()})".encode())
            os.lseek(fd, 0, os.SEEK_SET)  # Windows unlocks the range from the file position
        except OSError as exc:
            # A full disk: the state store could not record this run's work either, so stop
            # before doing any. Closing the file gives the lock back.
            os.close(fd)
            raise self._cannot("write", exc) from None
        self.fd = fd
        return self

    def _cannot(self, what: str, exc: OSError) -> StateError:
        return StateError(
            f"{self.path}: cannot {what} the lock file: {exc.strerror or exc}",
            hint="free some disk space or fix the folder's permissions, then run it again",
        )

    def release(self) -> None:
        import portalocker

        if self.fd is not None:
            # Emptying the file only tidies the holder's name away; close() frees the lock
            # whatever happens, so a failure here must not hide the real outcome.
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            with contextlib.suppress(portalocker.LockException):
                portalocker.unlock(self.fd)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def try_lock(fd: int) -> None:
    """Take the file's exclusive lock now, or raise portalocker.AlreadyLocked."""
    import portalocker

    portalocker.lock(fd, portalocker.LOCK_EX | portalocker.LOCK_NB)


def wait_lock(fd: int) -> None:
    """Take the file's exclusive lock, waiting for its holder to give it back."""
    import portalocker

    while True:
        try:
            portalocker.lock(fd, portalocker.LOCK_EX)
            return
        except portalocker.AlreadyLocked:
            continue  # Windows stops waiting after 10 s of tries (msvcrt.locking): wait on


def _holder(fd: int) -> str:
    try:
        return os.read(fd, 200).decode(errors="replace").strip() or "another process"
    except OSError:  # Windows: the holder's lock covers the bytes too
        return "another process"


def _os_error(exc: portalocker.LockException) -> OSError:
    cause = exc.__cause__
    return cause if isinstance(cause, OSError) else OSError(str(exc))
