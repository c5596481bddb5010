"""How errors reach the terminal: one line each, whatever the message carries."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mailer.cli.main import cli

from .test_lock import workspace


@pytest.mark.parametrize("name", ["no\nsuch", "x\x1b[2Jy", "a\u2028b\rc"])
def test_an_error_quoting_user_input_is_printed_on_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Verify a message that quotes a line break or escape from the user stays one line."""
    monkeypatch.chdir(workspace(tmp_path))
    result = CliRunner().invoke(cli, ["campaign", "check", name])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "\x1b" not in result.stderr and "campaign file not found" in result.stderr
