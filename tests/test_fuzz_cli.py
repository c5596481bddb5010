"""Fuzzing through the command line (click's CliRunner, in process): hostile config and
campaign files never produce a traceback or an "internal error", and a file the loader
refuses always exits non-zero. No connection leaves the process: every socket connect is
refused before it is made."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.adapters.config import load_settings
from mailer.cli.main import cli
from mailer.errors import ConfigError, ExitCode
from mailer.services.campaign import load_campaign

from . import test_fuzz_campaign as campaign_fuzz
from . import test_fuzz_config as config_fuzz
from .fuzzing import FUZZ, mutated, plausible, toml_document

CLI_CASES = 150


def refuse(*args: Any, **kwargs: Any) -> Any:
    raise ConnectionRefusedError("fuzzing: no network")


@pytest.fixture
def offline_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A workspace to run commands in, with every outgoing connection refused."""
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    ws = tmp_path / "ws"
    (ws / "config" / "campaigns").mkdir(parents=True)
    (ws / ".env").write_text(
        "MAILER_SMTP_PASSWORD=fuzz-secret-pw\nMAILER_ACCOUNT_BEA_SMTP_PASSWORD=fuzz-secret-pw\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(ws)
    for key in [k for k in os.environ if k.startswith("MAILER_")]:
        monkeypatch.delenv(key)
    # The CLI's clock: the same "now" the library loads below are checked against.
    monkeypatch.setenv("MAILER_NOW", campaign_fuzz.NOW.isoformat())
    yield ws


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def assert_handled(result: Result) -> None:
    """Whatever happened was reported as a MailerError line (or succeeded)."""
    output = result.output + result.stderr
    assert "Traceback" not in output and "internal error" not in output, output
    assert result.exception is None or isinstance(result.exception, SystemExit), output
    assert "fuzz-secret-pw" not in output


def test_hostile_configs_through_mailer_check(offline_workspace: Path) -> None:
    """Verify `mailer check` on hostile configs: no traceback, and exit 3 when refused."""
    path = offline_workspace / "config" / "mailer.toml"
    # The state table stays put: a mutated URL could make the check write a database
    # anywhere on the machine.
    texts = st.one_of(
        mutated(config_fuzz.BASE, protected=("state",)).map(toml_document),
        mutated(config_fuzz.BASE, ("state",), plausible, 2, only_values=True).map(toml_document),
    )
    counts = {"cases": 0, "refused": 0}

    @settings(max_examples=CLI_CASES, **FUZZ)
    @given(text=texts)
    def fuzz(text: str) -> None:
        counts["cases"] += 1
        path.write_text(text, encoding="utf-8")
        try:
            load_settings(path, need_secrets=True)
            refused = False
        except ConfigError:
            refused = True
        result = run("check")
        assert_handled(result)
        if refused:
            counts["refused"] += 1
            assert result.exit_code == ExitCode.CONFIG, result.output
        else:
            assert result.exit_code in (ExitCode.OK, ExitCode.NETWORK), result.output

    fuzz()
    assert counts["cases"] >= CLI_CASES and 0 < counts["refused"] < counts["cases"]


def test_hostile_campaigns_through_campaign_check(offline_workspace: Path) -> None:
    """Verify `campaign check` on hostile TOML and CSV: no traceback, exit 0 only when valid."""
    (offline_workspace / "config" / "mailer.toml").write_text(campaign_fuzz.CONFIG)
    settings_ = load_settings(offline_workspace / "config" / "mailer.toml")
    path = offline_workspace / "config" / "campaigns" / "c.toml"
    with_csv = {**campaign_fuzz.BASE, "campaign": {"name": "fz", "entries_csv": "p.csv"}}
    cases = st.tuples(
        st.one_of(
            mutated(campaign_fuzz.BASE).map(toml_document),
            st.just(toml_document(with_csv)),
        ),
        campaign_fuzz.csv_files,
    )
    counts = {"cases": 0, "valid": 0}

    @settings(max_examples=CLI_CASES, **FUZZ)
    @given(case=cases)
    def fuzz(case: tuple[str, bytes]) -> None:
        counts["cases"] += 1
        body, csv = case
        path.write_text(body, encoding="utf-8")
        (path.parent / "p.csv").write_bytes(csv)
        try:
            valid = not load_campaign(path, settings_, campaign_fuzz.NOW).problems
        except ConfigError:
            valid = False
        result = run("campaign", "check", "c")
        assert_handled(result)
        counts["valid"] += valid
        assert (result.exit_code == 0) == valid, result.output

    fuzz()
    assert counts["cases"] >= CLI_CASES and counts["valid"] > 0
