"""The store lock: one clear line when it cannot be taken or written, and never left held."""

from __future__ import annotations

import errno
import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailer.adapters.lock import StoreLock
from mailer.cli.main import cli
from mailer.errors import StateError

Write = Callable[[int, bytes], int]


def failing_write_to(suffix: str, code: int) -> Write:
    """os.write, except that writes to a file whose name ends in ``suffix`` fail with ``code``,
    as the kernel answers when the disk is full (ENOSPC) or over quota (EDQUOT)."""
    real = os.write

    def write(fd: int, data: bytes) -> int:
        target = os.readlink(f"/proc/self/fd/{fd}")
        if target.endswith(suffix):
            raise OSError(code, os.strerror(code))
        return real(fd, data)

    return write


def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "config").mkdir(parents=True)
    (ws / "config" / "mailer.toml").write_text(
        textwrap.dedent("""\
            [sender]
            name = "Sam Candidate"
            address = "sam@sandbox.test"
            [smtp]
            host = "127.0.0.1"
            [imap]
            host = "127.0.0.1"
            [addresses]
            allow_test_domains = true
            """),
        encoding="utf-8",
    )
    (ws / ".env").write_text("MAILER_SMTP_PASSWORD=lock-test-pw\n", encoding="utf-8")
    return ws


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_check_on_a_full_disk_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    """Verify `mailer check` whose lock cannot be written exits non-zero with one clear line."""
    ws = workspace(tmp_path)
    monkeypatch.chdir(ws)
    monkeypatch.setattr(os, "write", failing_write_to(".lock", code))
    result = CliRunner().invoke(cli, ["check"], env={"MAILER_SMTP_PASSWORD": None})
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    lock = ws / ".mailer" / "state.db.lock"
    assert lines[0].startswith(f"mailer: error: {lock}: cannot write the lock file: ")
    assert os.strerror(code) in lines[0]
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert "lock-test-pw" not in result.output


def test_a_lock_that_could_not_be_written_is_not_left_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify a failed write gives the lock back, so the next run (disk freed) can take it."""
    path = tmp_path / "state.db.lock"
    with monkeypatch.context() as m:
        m.setattr(os, "write", failing_write_to(".lock", errno.ENOSPC))
        with pytest.raises(StateError):
            StoreLock(path, "first").acquire()
    with StoreLock(path, "second") as lock:
        assert lock.fd is not None
        assert path.read_text() == f"second (pid {os.getpid()})"


def test_a_lock_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    """Verify a lock whose folder is a file is a StateError naming the lock, not an OSError."""
    (tmp_path / "blocker").write_text("")
    path = tmp_path / "blocker" / "state.db.lock"
    with pytest.raises(StateError) as caught:
        StoreLock(path, "check").acquire()
    assert str(caught.value).startswith(f"{path}: cannot create the lock file: ")
