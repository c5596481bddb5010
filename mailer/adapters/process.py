"""Processes on Linux, macOS and Windows: who a process is, whether it still runs, stopping it.

Everything that differs between the three systems about processes lives here, on psutil, so
the rest of mailer never calls ``os.kill``: on Windows ``os.kill(pid, 0)`` does not probe a
process, it terminates it.

A process is named by its PID and a *start mark*, so that a PID the system hands to another
program later (after an exit or a reboot) is not taken for the one that wrote it down:

- Linux: clock ticks from boot to the process's start (what /proc/PID/stat says, and what
  owner tokens written before this module held), unaffected by changes of the wall clock;
- macOS and Windows: the start time in seconds since the epoch, with two decimals, which
  the system records once when the process starts.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailer.errors import SandboxError

if TYPE_CHECKING:
    import psutil

# Marks with a decimal point are wall-clock start times; two readings of one process may
# differ by rounding (Windows derives it from 100 ns units, macOS adjusts it to the boot).
_WALL_CLOCK_SLACK = 1.0


def _linux() -> bool:
    return sys.platform.startswith("linux")


def boot_mark() -> str:
    """Which boot of this machine we are in: Linux's boot id (clock-independent), else the
    boot time in whole seconds. "-" when the system will not say."""
    if _linux():
        try:
            return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
        except OSError:
            return "-"
    import psutil  # lazily: every command imports the store, few need this

    try:
        return f"t{int(psutil.boot_time())}"
    except (OSError, psutil.Error):
        return "-"


def same_boot(stored: str, current: str) -> bool:
    """Whether two boot marks name the same boot. Only Linux boot ids can prove a reboot:
    a boot time read again may move by a second (Windows) or with the clock, and the start
    mark tells a reused PID apart anyway."""
    if stored.startswith("t") or current.startswith("t"):  # not hex, so never a boot id
        return True
    return stored == current


def start_mark(pid: int) -> str:
    """When process ``pid`` started (see the module docstring), or "-" if it cannot be read."""
    if _linux() and (ticks := _linux_start_ticks(pid)) is not None:
        return ticks
    import psutil  # lazily: every command imports the store, few need this

    try:
        return _mark(psutil.Process(pid))
    except (psutil.Error, OSError, ValueError):
        return "-"


def _linux_start_ticks(pid: int) -> str | None:
    """Linux: the process's start, in clock ticks since boot, straight from /proc: what
    :func:`_mark` computes through psutil, without importing psutil (most of what
    recording this process as a message's owner cost)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        # Field 22 (starttime); the name in field 2 may hold spaces and parentheses.
        return stat[stat.rindex(b")") + 2 :].split()[19].decode()
    except (OSError, ValueError, IndexError):
        return None


def _mark(proc: psutil.Process) -> str:
    import psutil  # lazily: every command imports the store, few need this

    created = proc.create_time()
    if _linux():
        # psutil adds the boot time to /proc's ticks; taking it off again gives back the
        # exact, clock-independent tick count (btime is whole seconds, so this is exact).
        ticks = (created - psutil.boot_time()) * os.sysconf("SC_CLK_TCK")
        return str(round(ticks))
    return f"{created:.2f}"


def same_start(stored: str, current: str) -> bool:
    if "." in stored or "." in current:
        try:
            return abs(float(stored) - float(current)) < _WALL_CLOCK_SLACK
        except ValueError:
            return False
    return stored == current


def is_running(pid: int, started: str) -> bool:
    """Whether the process that started at ``started`` (a start mark) still runs as ``pid``.

    A process we may not inspect (another user's, on macOS or Windows) exists, so it counts
    as running; a zombie has finished its work, so it does not.
    """
    import psutil  # lazily: every command imports the store, few need this

    if pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if started == "-":
            return True  # nothing to compare: the PID is all we know
        # On Linux read as start_mark writes it, exactly (psutil's figure moves with a
        # stepped clock).
        mark = _linux_start_ticks(pid) if _linux() else None
        return same_start(started, mark if mark is not None else _mark(proc))
    except psutil.NoSuchProcess:  # ZombieProcess is one too
        return False
    except psutil.AccessDenied:
        return True


def alive(pid: int) -> bool:
    """Whether ``pid`` runs. A zombie child of ours is reaped and counts as gone."""
    import psutil  # lazily: every command imports the store, few need this

    if pid <= 0:
        return False
    try:
        if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            return True
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
    if sys.platform != "win32":
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
    return False


def terminate(*pids: int, grace: float = 10.0) -> None:
    """Ask each of ``pids`` to stop (SIGTERM; on Windows TerminateProcess), all at once, then
    kill any that has not gone after ``grace`` seconds. A PID that is gone, or was reused, is
    left alone. One that has exited counts as gone at once, though it may stay a zombie until
    its parent (often init, for a server started by an earlier command) reaps it."""
    import psutil  # lazily: every command imports the store, few need this

    asked = []
    for pid in pids:
        if not alive(pid):
            continue
        try:
            proc = psutil.Process(pid)
            proc.terminate()
        except psutil.NoSuchProcess:
            continue
        except psutil.AccessDenied:  # not ours to stop: the others still are
            continue
        asked.append(proc)
    deadline = time.monotonic() + grace
    for proc in asked:
        if not _exits(proc, deadline):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                proc.kill()
            _exits(proc, time.monotonic() + 5)


def _exits(proc: Any, deadline: float) -> bool:
    """Whether ``proc`` exits (or is already a zombie) before ``deadline``."""
    import psutil

    while True:
        try:
            proc.wait(0.05)  # reaps it if it is our child
            return True
        except psutil.TimeoutExpired:
            pass
        if not alive(proc.pid):  # exited: a zombie of another parent counts as gone
            return True
        if time.monotonic() >= deadline:
            return False


def kill_self() -> None:
    """End this process at once, with no clean-up, as a crash or a power cut would."""
    if sys.platform == "win32":
        os._exit(137)  # TerminateProcess's effect; Windows has no SIGKILL
    else:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


# --- the programs the sandbox starts ---

_DOVECOT = {
    "linux": (["/usr/sbin/dovecot"], "apt-get install -y dovecot-imapd dovecot-lmtpd"),
    "darwin": (["/opt/homebrew/sbin/dovecot", "/usr/local/sbin/dovecot"], "brew install dovecot"),
}
# Where each packaging puts Dovecot's LMTP server, relative to the dovecot binary's prefix.
_LMTP = ("lib/dovecot/lmtp", "libexec/dovecot/lmtp", "opt/dovecot/libexec/dovecot/lmtp")


def find_dovecot() -> str:
    """The dovecot binary the sandbox runs, or a SandboxError saying what to install."""
    if sys.platform == "win32":
        raise SandboxError(
            "the sandbox needs Dovecot, which does not run on Windows",
            hint="send, check, daemon, campaign, preview, lint and status work without it; "
            "point config/mailer.toml at a real server",
        )
    # Here, not at the top: `status` loads this module, and shutil brings its compression
    # modules (bz2, lzma) with it, which only the sandbox needs.
    import shutil

    places, install = _DOVECOT["darwin" if sys.platform == "darwin" else "linux"]
    found = shutil.which("dovecot") or next((p for p in places if Path(p).exists()), None)
    if found is None:
        raise SandboxError(
            "the sandbox needs Dovecot, which is not installed", hint=f"install it with: {install}"
        )
    prefix = Path(found).resolve().parent.parent
    if not any((prefix / lmtp).exists() for lmtp in _LMTP):
        raise SandboxError(
            "the sandbox needs Dovecot's LMTP server, which is not installed",
            hint=f"install it with: {install}",
        )
    return found
