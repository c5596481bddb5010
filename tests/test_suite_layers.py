"""The test layers (unit, contract, wire) are assigned by tests/conftest.py, and the unit
layer's ``run_cli`` runs mailer in this process as faithfully as a process would."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest

from . import conftest
from .conftest import CONTRACT_DIR, LAYERS, PROCESSES_REFUSED, Stack, layer_of, run_cli

HERE = Path(__file__)


def layers_of(node: pytest.Item) -> list[str]:
    return [name for name in LAYERS if node.get_closest_marker(name) is not None]


def test_a_test_using_no_server_is_in_the_unit_layer_alone(request: pytest.FixtureRequest) -> None:
    """Verify a pure test is marked unit, and only unit."""
    assert layers_of(request.node) == ["unit"]


def test_a_test_on_the_stack_is_in_the_wire_layer_alone(
    stack: Stack, request: pytest.FixtureRequest
) -> None:
    """Verify a test that uses ``stack`` (through ``mail_stack``) is marked wire, and only wire."""
    assert layers_of(request.node) == ["wire"]


def test_a_test_on_a_fixture_built_on_the_stack_is_wire(
    workspace: Path, request: pytest.FixtureRequest
) -> None:
    """Verify the servers count however deep in the fixtures they are (workspace -> stack)."""
    assert layers_of(request.node) == ["wire"]


@pytest.mark.parametrize(
    ("path", "fixtures", "marks", "layer"),
    [
        (HERE, ["tmp_path", "monkeypatch"], [], "unit"),
        (HERE, ["workspace", "stack", "mail_stack", "oauth_server"], [], "wire"),
        (HERE, ["ordinary_mailer"], [], "wire"),
        (HERE, ["oauth_server"], [], "wire"),
        (HERE, ["tmp_path"], ["integration"], "wire"),
        (HERE, ["tmp_path"], ["wire"], "wire"),
        # A local fixture named like a server fixture, built on no server, stays unit.
        (HERE, ["workspace", "tmp_path"], [], "unit"),
        (CONTRACT_DIR / "test_smtp.py", ["tmp_path"], [], "contract"),
        (CONTRACT_DIR / "test_smtp.py", ["stack", "mail_stack", "oauth_server"], [], "contract"),
    ],
)
def test_layer_of_decides_by_path_then_servers_then_marks(
    path: Path, fixtures: list[str], marks: list[str], layer: str
) -> None:
    """Verify the rule: tests/contract/ is contract; a server fixture or an integration or
    wire mark is wire; anything else is unit."""
    assert layer_of(path, fixtures, marks) == layer


def test_a_unit_test_cannot_start_a_process(request: pytest.FixtureRequest) -> None:
    """Verify a unit test that starts a process fails, naming the wire mark, even where the
    code under test catches the refusal (the test then fails when it ends)."""
    with pytest.raises(AssertionError, match=r"mark it @pytest\.mark\.wire"):
        subprocess.run(["true"], check=False)
    with contextlib.suppress(AssertionError):
        os.posix_spawn("/bin/true", ["true"], {})
    assert request.node.stash[PROCESSES_REFUSED] == ["Popen._execute_child", "os.posix_spawn"]
    request.node.stash[PROCESSES_REFUSED].clear()  # refused as it should be: pass


@pytest.mark.wire
def test_a_wire_test_may_start_a_process(request: pytest.FixtureRequest) -> None:
    """Verify a test marked wire by hand is in the wire layer and may start a process."""
    assert layers_of(request.node) == ["wire"]
    assert subprocess.run(["true"], check=False).returncode == 0


@pytest.mark.process
def test_run_cli_in_a_process_test_runs_mailer_as_a_process(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Verify a test marked process is a wire test whose run_cli starts
    ``python -m mailer.cli.main`` (the real entry point)."""
    assert "wire" in layers_of(request.node)
    result = run_cli(tmp_path, "--version")
    assert result.args[1:3] == ["-m", "mailer.cli.main"]
    assert result.returncode == 0 and result.stdout.startswith("mailer, version ")


def test_run_cli_in_a_unit_test_runs_mailer_in_this_process(tmp_path: Path) -> None:
    """Verify a unit test's run_cli uses CliRunner: no process, the same output and code."""
    result = run_cli(tmp_path, "--version")
    assert result.args == ["mailer", "--version"]
    # Not "mailer, version": click's version option keeps the first program name it was
    # shown in a process, and other tests invoke the CLI under CliRunner's default name.
    assert result.returncode == 0 and result.stdout.endswith(
        f", version {version('interview-mailer')}\n"
    )


def test_in_process_run_gives_stdout_stderr_and_exit_code_apart(tmp_path: Path) -> None:
    """Verify an error goes to stderr alone, as one line, with mailer's exit code, and a
    usage error (click's own) is one line too, naming the program ``mailer``, as from the
    real entry point."""
    result = run_cli(tmp_path, "preview", "--no-such-option")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "mailer: error: No such option '--no-such-option' (see 'mailer preview --help')"
    ]
    missing = run_cli(tmp_path, "status")
    assert missing.returncode != 0 and missing.stdout == ""
    assert missing.stderr.startswith("mailer: error: ") and "Traceback" not in missing.stderr


def test_in_process_run_has_the_workspace_as_its_directory_and_no_mailer_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify the workspace is the current directory during the run (and not after), and
    MAILER_* of the test run's environment are dropped, as for a process."""
    monkeypatch.setenv("MAILER_CONFIG", str(tmp_path / "nowhere.toml"))
    before = Path.cwd()
    ws = tmp_path / "ws"
    ws.mkdir()
    assert run_cli(ws, "init", ".").returncode == 0
    assert (ws / "config" / "mailer.toml").is_file()
    assert Path.cwd() == before
    status = run_cli(ws, "status")  # the unedited example config is refused, by its path
    assert f"{ws / 'config' / 'mailer.toml'}: sender.name: still 'Your Name'" in status.stderr
    assert "nowhere" not in status.stderr


def test_in_process_runs_leak_no_logging_or_signal_handlers(tmp_path: Path) -> None:
    """Verify --debug in one run changes no logger for the next run or the test run, and
    the SIGINT handler is the one the test run had."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    mailer_level = logging.getLogger("mailer").level
    sigint = signal.getsignal(signal.SIGINT)
    run_cli(tmp_path, "--debug", "--version")
    run_cli(tmp_path, "--version")
    assert root.handlers == handlers and root.level == level
    assert logging.getLogger("mailer").level == mailer_level
    assert signal.getsignal(signal.SIGINT) is sigint


def test_in_process_run_refuses_a_crash_point(tmp_path: Path) -> None:
    """Verify a crash point, which kills its process, is never run inside the test run."""
    with pytest.raises(RuntimeError, match="process=True"):
        run_cli(tmp_path, "--version", env={"MAILER_CRASH_AT": "after-250"})


def test_mailer_test_cli_process_runs_every_call_as_a_process(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """Verify MAILER_TEST_CLI=process switches run_cli's default, to compare the two ways
    (here through the guard: a unit test may start no process)."""
    monkeypatch.setenv("MAILER_TEST_CLI", "process")
    assert conftest._in_process_default
    with pytest.raises(AssertionError, match="started a process"):
        run_cli(Path("."), "--version")
    assert request.node.stash[PROCESSES_REFUSED] == ["Popen._execute_child"]
    request.node.stash[PROCESSES_REFUSED].clear()


@pytest.mark.wire
def test_mailer_test_cli_in_process_runs_a_wire_tests_calls_in_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify MAILER_TEST_CLI=in-process runs a wire test's run_cli in this process, and
    process=True still gives a process."""
    monkeypatch.setenv("MAILER_TEST_CLI", "in-process")
    assert run_cli(tmp_path, "--version").args == ["mailer", "--version"]
    assert run_cli(tmp_path, "--version", process=True).args[1:3] == ["-m", "mailer.cli.main"]


def test_an_in_process_run_starts_with_no_logger_level_an_earlier_test_left() -> None:
    """Verify a level left on mailer's logger (by caplog, or a library call that set INFO)
    is not what the next in-process CLI run sees, and is put back after it: as in a new
    process, mailer logs only warnings unless asked."""
    import mailer.adapters.mailbox  # noqa: F401  (sets imapclient.util's level on import)

    mailer_log = logging.getLogger("mailer")
    before = mailer_log.level
    mailer_log.setLevel(logging.INFO)
    try:
        with conftest._fresh_logging():
            assert mailer_log.getEffectiveLevel() == logging.WARNING
            # What mailer's import set stays, as in a process that imported it: imapclient's
            # decoding warnings quote the server's reply, which may echo the password.
            assert logging.getLogger("imapclient.util").level == logging.ERROR
        assert mailer_log.level == logging.INFO
    finally:
        mailer_log.setLevel(before)
