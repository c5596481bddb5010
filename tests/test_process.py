"""The process layer (mailer.adapters.process) fed each platform's answers, and the locks across processes.

CI runs on Linux only, so macOS and Windows are played by monkeypatching ``sys.platform``
and the psutil calls to answer as those systems do.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo

import psutil
import pytest

from mailer.adapters import process
from mailer.adapters import store as store_mod
from mailer.adapters.lock import LockedError, StoreLock, wait_lock
from mailer.errors import SandboxError


class FakeProcess:
    """psutil.Process as another system answers: each attribute a value or an exception."""

    answers: ClassVar[dict[str, object]] = {}

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def _answer(self, name: str) -> object:
        value = self.answers[name]
        if isinstance(value, BaseException):
            raise value
        return value

    def status(self) -> object:
        return self._answer("status")

    def create_time(self) -> object:
        return self._answer("create_time")


def as_platform(monkeypatch: pytest.MonkeyPatch, platform: str, **answers: object) -> None:
    monkeypatch.setattr(sys, "platform", platform)
    FakeProcess.answers = {"status": psutil.STATUS_SLEEPING, "create_time": 1_700_000_000.25}
    FakeProcess.answers.update(answers)
    monkeypatch.setattr(psutil, "Process", FakeProcess)
    monkeypatch.setattr(psutil, "boot_time", lambda: 1_699_990_000.0)


@pytest.fixture
def no_os_kill(monkeypatch: pytest.MonkeyPatch) -> None:
    """On Windows os.kill(pid, 0) terminates pid: the layer must never call it there."""

    def refuse(*args: object) -> None:
        pytest.fail(f"os.kill{args} called: on Windows that kills the process")

    monkeypatch.setattr(os, "kill", refuse)


# --- start marks and liveness, per platform ---


def test_windows_marks_a_process_by_its_wall_clock_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Verify the Windows start mark is the create time with two decimals."""
    as_platform(monkeypatch, "win32")
    assert process.start_mark(4242) == "1700000000.25"
    assert process.boot_mark() == "t1699990000"


def test_windows_process_of_another_user_counts_as_running(
    monkeypatch: pytest.MonkeyPatch, no_os_kill: None
) -> None:
    """Verify AccessDenied (a process we may not inspect) is alive, with no os.kill."""
    as_platform(monkeypatch, "win32", status=psutil.AccessDenied(4242))
    assert process.is_running(4242, "1700000000.25") is True
    assert process.alive(4242) is True


def test_windows_gone_process_is_dead_without_os_kill(
    monkeypatch: pytest.MonkeyPatch, no_os_kill: None
) -> None:
    """Verify NoSuchProcess is dead, and neither probe nor terminate calls os.kill."""
    as_platform(monkeypatch, "win32", status=psutil.NoSuchProcess(4242))
    assert process.is_running(4242, "1700000000.25") is False
    assert process.alive(4242) is False
    process.terminate(4242)  # gone: nothing to do, and above all no os.kill


def test_windows_crash_point_exits_without_os_kill(
    monkeypatch: pytest.MonkeyPatch, no_os_kill: None
) -> None:
    """Verify kill_self on Windows ends the process through os._exit, never os.kill."""
    monkeypatch.setattr(sys, "platform", "win32")
    exits: list[int] = []
    monkeypatch.setattr(os, "_exit", exits.append)
    process.kill_self()
    assert exits == [137]


def test_a_reused_pid_with_another_start_time_is_dead(monkeypatch: pytest.MonkeyPatch) -> None:
    """Verify a PID now held by a process that started later is not the owner."""
    as_platform(monkeypatch, "darwin", create_time=1_700_000_500.0)
    assert process.is_running(4242, "1700000000.25") is False


def test_a_wall_clock_start_read_again_with_rounding_is_the_same_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Verify two readings of one start time that differ below a second match."""
    as_platform(monkeypatch, "darwin", create_time=1_700_000_000.7)
    assert process.is_running(4242, "1700000000.25") is True


def test_macos_zombie_is_dead(monkeypatch: pytest.MonkeyPatch) -> None:
    """Verify ZombieProcess from psutil, or a zombie status, counts as dead."""
    as_platform(monkeypatch, "darwin", status=psutil.ZombieProcess(4242))
    assert process.is_running(4242, "1700000000.25") is False
    assert process.alive(4242) is False
    as_platform(monkeypatch, "darwin", status=psutil.STATUS_ZOMBIE)
    assert process.is_running(4242, "1700000000.25") is False


def test_macos_access_denied_on_start_time_counts_as_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Verify a process whose start time we may not read is alive, not abandoned."""
    as_platform(monkeypatch, "darwin", create_time=psutil.AccessDenied(4242))
    assert process.is_running(4242, "1700000000.25") is True


def test_boot_time_read_again_never_proves_a_reboot() -> None:
    """Verify a different boot time (Windows moves it by a second) is not taken as a reboot,
    while two different Linux boot ids are."""
    assert process.same_boot("t1699990000", "t1699990001") is True
    assert process.same_boot("3f2a91bc", "b1c2d3e4") is False
    assert process.same_boot("3f2a91bc", "3f2a91bc") is True


def test_linux_start_mark_is_the_tick_count_old_tokens_hold() -> None:
    """Verify on Linux the mark equals /proc/PID/stat's start ticks, as tokens written by
    earlier versions hold, so a live owner of an old token stays alive."""
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc, which only Linux has")
    stat = Path(f"/proc/{os.getpid()}/stat").read_text()
    ticks = stat.rpartition(")")[2].split()[19]
    assert process.start_mark(os.getpid()) == ticks
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    old_token = f"{socket.gethostname()}:{boot}:{os.getpid()}:{ticks}"
    assert store_mod.owner_alive(old_token) is True
    assert store_mod.owner_alive(old_token[: -len(ticks)] + str(int(ticks) + 1)) is False


def test_linux_start_mark_is_read_without_psutil_and_agrees_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Verify the Linux mark read straight from /proc (no psutil import: most of what
    recording this process as an owner cost) is the one psutil's create time gives."""
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc, which only Linux has")
    through_psutil = process._mark(psutil.Process(os.getpid()))
    monkeypatch.setitem(sys.modules, "psutil", None)  # importing it would now fail
    assert process.start_mark(os.getpid()) == through_psutil
    assert process.boot_mark() == Path("/proc/sys/kernel/random/boot_id").read_text()[:8]


def test_linux_liveness_compares_the_exact_tick_count_not_psutils_figure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Verify an owner is judged alive by the same exact /proc tick count start_mark wrote:
    psutil's figure moves when the clock is stepped, which would make a live owner gone."""
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc, which only Linux has")
    mark = process.start_mark(os.getpid())
    monkeypatch.setattr(process, "_mark", lambda proc: str(int(mark) + 100))  # a stepped clock
    assert process.is_running(os.getpid(), mark) is True
    assert process.is_running(os.getpid(), str(int(mark) + 1)) is False


@pytest.mark.wire  # real child processes
def test_a_real_child_is_alive_then_terminated_and_reaped() -> None:
    """Verify alive/is_running/terminate on a real process, and that a stopped child is gone."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        mark = process.start_mark(child.pid)
        assert process.alive(child.pid) and process.is_running(child.pid, mark)
        process.terminate(child.pid, grace=5)
        assert not process.alive(child.pid)
        assert not process.is_running(child.pid, mark)
    finally:
        child.kill()
        child.wait()


# A parent that starts a child which stops on SIGTERM, says its PID, and never reaps it: the
# way init leaves a sandbox server started by an earlier command.
NEGLECTFUL_PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(child.pid, flush=True)
sys.stdin.read()
"""


@pytest.mark.wire  # real processes
@pytest.mark.skipif(sys.platform == "win32", reason="zombies are POSIX's")
def test_terminate_counts_a_process_that_exited_as_gone_before_it_is_reaped() -> None:
    """Verify terminate returns once each process has exited, though another parent has not
    reaped it yet (a zombie), and asks several at once: not after the grace, nor a kill."""
    parents = [
        subprocess.Popen(
            [sys.executable, "-c", NEGLECTFUL_PARENT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        pids = [int(p.stdout.readline()) for p in parents if p.stdout is not None]
        started = time.monotonic()
        process.terminate(*pids, grace=60)
        took = time.monotonic() - started
        assert took < 30, f"waited {took:.0f} s: the grace ran out instead"
        for pid in pids:
            assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # exited, not reaped
            assert not process.alive(pid)
    finally:
        for p in parents:
            p.kill()
            p.wait()


# --- where Dovecot is ---


def test_windows_sandbox_says_no_dovecot_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Verify on Windows the sandbox refuses with one line naming Dovecot and Windows."""
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(
        SandboxError, match=r"^the sandbox needs Dovecot, which does not run on Windows$"
    ):
        process.find_dovecot()


def test_macos_finds_homebrews_dovecot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Verify on macOS Homebrew's dovecot is found off PATH, and its absence names brew."""
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(shutil, "which", lambda _: None)  # (process imports it on use)
    brew = tmp_path / "opt" / "homebrew"
    (brew / "sbin").mkdir(parents=True)
    (brew / "sbin" / "dovecot").write_text("")
    (brew / "libexec" / "dovecot").mkdir(parents=True)
    (brew / "libexec" / "dovecot" / "lmtp").write_text("")
    monkeypatch.setitem(
        process._DOVECOT, "darwin", ([str(brew / "sbin" / "dovecot")], "brew install dovecot")
    )
    assert process.find_dovecot() == str(brew / "sbin" / "dovecot")
    monkeypatch.setitem(
        process._DOVECOT, "darwin", ([str(tmp_path / "none")], "brew install dovecot")
    )
    with pytest.raises(SandboxError, match="not installed") as info:
        process.find_dovecot()
    assert info.value.hint == "install it with: brew install dovecot"


# --- the locks, across real processes ---

HOLDER = """
import sys
from pathlib import Path
from typing import ClassVar
from mailer.adapters.lock import StoreLock
from mailer.adapters.tokens import TokenStore
kind, path = sys.argv[1], Path(sys.argv[2])
if kind == "store":
    lock = StoreLock(path, "holder").acquire()
    print("held", flush=True)
    sys.stdin.read()
    lock.release()
else:
    with TokenStore(path, keyring=None).locked("acct"):
        print("held", flush=True)
        sys.stdin.read()
"""


@pytest.fixture
def holder() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        p.kill()
        p.wait()


def hold(procs: list[subprocess.Popen[str]], kind: str, path: Path) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER, kind, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    procs.append(p)
    assert p.stdout is not None and p.stdout.readline() == "held\n"
    return p


@pytest.mark.wire  # a second process
def test_store_lock_shuts_out_a_second_process_and_names_the_holder(
    tmp_path: Path, holder: list[subprocess.Popen[str]]
) -> None:
    """Verify a store lock held by another process is refused at once, naming its PID, and
    is free again once that process lets go."""
    path = tmp_path / "state.db.lock"
    p = hold(holder, "store", path)
    with pytest.raises(LockedError, match=rf"held by holder \(pid {p.pid}\)"):
        StoreLock(path, "second").acquire()
    p.communicate("")
    with StoreLock(path, "second") as lock:
        assert lock.fd is not None


@pytest.mark.wire  # another process
def test_token_lock_waits_for_another_process(
    tmp_path: Path, holder: list[subprocess.Popen[str]]
) -> None:
    """Verify the token refresh lock blocks while another process holds it, then is taken."""
    p = hold(holder, "tokens", tmp_path)
    fd = os.open(tmp_path / "oauth2" / "acct.lock", os.O_RDWR)
    taken = threading.Event()

    def take() -> None:
        wait_lock(fd)
        taken.set()

    waiter = threading.Thread(target=take, daemon=True)
    waiter.start()
    try:
        assert not taken.wait(0.5), "took a lock another process holds"
        p.communicate("")
        assert taken.wait(10)
    finally:
        os.close(fd)


def test_token_lock_keeps_waiting_when_windows_gives_up_after_ten_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Verify a blocking lock that portalocker reports as AlreadyLocked (msvcrt.locking on
    Windows tries for 10 s, then fails) is tried again rather than raised."""
    import portalocker

    tries: list[int] = []

    def lock(fd: int, flags: int) -> None:
        tries.append(fd)
        if len(tries) < 3:
            raise portalocker.AlreadyLocked("locked by another process")

    monkeypatch.setattr(portalocker, "lock", lock)
    wait_lock(7)
    assert tries == [7, 7, 7]


def test_windows_sender_zone_comes_from_the_system_as_an_iana_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Verify on Windows (no /etc/localtime) the machine's zone is a real IANA zone, read
    through tzlocal, so summer time is right for future dates."""
    import tzlocal

    from mailer.adapters.clock import system_zone

    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.delenv("TZ", raising=False)
    monkeypatch.setattr(tzlocal, "get_localzone_name", lambda: "Europe/Berlin")
    assert str(system_zone()) == "Europe/Berlin"


def test_the_machine_zone_follows_a_change_while_mailer_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Verify the remembered machine zone is read again when TZ changes, when the zone link
    is re-pointed, or when a link it points through is, so a daemon on a laptop that
    changed zone does not keep the old one."""
    from mailer.adapters import clock

    monkeypatch.setattr(clock, "_remembered_zone", [None, None])
    monkeypatch.setenv("TZ", "Europe/Berlin")
    assert str(clock.system_zone()) == "Europe/Berlin"
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    assert str(clock.system_zone()) == "Asia/Tokyo"
    monkeypatch.delenv("TZ")
    zones = tmp_path / "zoneinfo"
    for name in ("Europe/Berlin", "Asia/Tokyo", "America/Lima"):
        (zones / name).parent.mkdir(parents=True, exist_ok=True)
        (zones / name).write_text("")
    link, middle = tmp_path / "localtime", tmp_path / "current"
    monkeypatch.setattr(clock, "ZONE_LINK", str(link))
    monkeypatch.setattr(clock, "ZONE_NAME_FILE", str(tmp_path / "no-timezone-file"))
    middle.symlink_to(zones / "Europe/Berlin")
    link.symlink_to(middle)
    assert str(clock.system_zone()) == "Europe/Berlin"
    assert str(clock.system_zone()) == "Europe/Berlin"  # remembered: nothing changed
    middle.unlink()
    middle.symlink_to(zones / "Asia/Tokyo")  # the link it points through, re-pointed
    assert str(clock.system_zone()) == "Asia/Tokyo"
    link.unlink()
    link.symlink_to(zones / "America/Lima")  # the link itself, replaced
    assert str(clock.system_zone()) == "America/Lima"


def test_a_machine_zone_known_only_by_its_offset_is_never_remembered(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Verify the last resort, today's fixed UTC offset, is read afresh on every call, so a
    daemon running across a summer-time change does not keep the winter offset."""
    from mailer.adapters import clock

    monkeypatch.setattr(clock, "_remembered_zone", [None, None])
    monkeypatch.delenv("TZ", raising=False)
    copied = tmp_path / "localtime"  # a copied zone file, not a link into zoneinfo
    copied.write_text("")
    monkeypatch.setattr(clock, "ZONE_LINK", str(copied))
    monkeypatch.setattr(clock, "ZONE_NAME_FILE", str(tmp_path / "no-timezone-file"))
    zone = clock.system_zone()
    assert not isinstance(zone, ZoneInfo)
    assert clock._remembered_zone == [None, None]


def test_a_file_system_without_locks_is_one_line_naming_the_lock(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Verify portalocker's failure on a file system without locks (ENOLCK) becomes a
    StateError naming the lock file and the system's reason, and leaves no lock held."""
    import errno

    import portalocker

    from mailer.errors import StateError

    def lock(fd: int, flags: int) -> None:
        cause = OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
        raise portalocker.LockException(cause) from cause

    path = tmp_path / "state.db.lock"
    with monkeypatch.context() as m:
        m.setattr(portalocker, "lock", lock)
        with pytest.raises(StateError) as caught:
            StoreLock(path, "check").acquire()
    assert str(caught.value) == (f"{path}: cannot lock the lock file: {os.strerror(errno.ENOLCK)}")
    with StoreLock(path, "again") as held:
        assert held.fd is not None
