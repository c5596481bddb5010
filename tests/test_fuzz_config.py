"""Fuzzing config/mailer.toml: whatever the file says, loading it gives settings or a
ConfigError of ``file: key: problem`` lines, never another exception; and settings that
load are usable (a follow-up time can be computed for every account)."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.adapters.config import Settings, load_settings
from mailer.errors import ConfigError
from mailer.services.sending import due_after

from .fuzzing import FUZZ, MIN_CASES, mutated, plausible, raw_edits, toml_document

SENDER = {
    "name": "Sam Candidate",
    "address": "sam@sandbox.test",
    "phone": "+44 7700 900123",
    "signature": "Sam",
    "timezone": "Europe/London",
    "locale": "en_GB",
}
BASE = {
    "provider": "generic",
    "sender": SENDER,
    "smtp": {
        "host": "127.0.0.1",
        "port": 587,
        "security": "starttls",
        "timeout": 10,
        "retries": 3,
        "daily_cap": 0,
        "username": "sam@sandbox.test",
    },
    "imap": {
        "host": "127.0.0.1",
        "port": 993,
        "security": "ssl",
        "timeout": 10.5,
        "sent_folder": "Sent",
        "save_sent": True,
    },
    "follow_up": {
        "wait": "3 business days",
        "max_follow_ups": 1,
        "holidays_country": "GB",
        "window": "09:00-17:00",
        "window_days": "mon-fri",
        "quote_original": True,
    },
    "watch": {"folders": ["INBOX"], "idle": True, "poll_interval": "60s", "notify": False},
    "state": {"url": "sqlite:///.mailer/state.db"},
    "composer": {"html": False},
    "addresses": {"allow_test_domains": True},
    "accounts": {
        "bea": {
            "provider": "generic",
            "sender": {**SENDER, "name": "Bea", "address": "bea@sandbox.test"},
            "smtp": {"host": "localhost", "timeout": 30, "daily_cap": 20},
            "imap": {"host": "::1"},
        }
    },
}
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
VALID = toml_document(BASE)

config_texts = st.one_of(
    mutated(BASE).map(toml_document),
    mutated(BASE).map(toml_document),
    mutated(BASE, pool=plausible, changes=2, only_values=True).map(toml_document),
    raw_edits(VALID),
    st.text(max_size=200),
)


def check_loads_or_refuses(path: Path, text: str) -> Settings | None:
    """Load ``text`` from ``path``: settings (usable ones), or a ConfigError of one-line
    ``file: key: problem`` entries. Any other exception fails the test."""
    path.write_text(text, encoding="utf-8")
    try:
        loaded = load_settings(path)
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.startswith((f"{path}: ", "MAILER_")), problem
            assert "\n" not in problem and "\r" not in problem, problem
        return None
    for name in loaded.account_names:
        account = loaded.for_account(name)
        assert 0 < account.smtp.timeout <= 600 and 0 < account.imap.timeout <= 600
        due = due_after(account, NOW)
        assert due is None or due >= NOW
    return loaded


def test_the_fuzzers_start_from_a_valid_config() -> None:
    """Verify the base document loads, so mutations start from something accepted."""
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "config").mkdir()
        assert check_loads_or_refuses(Path(d) / "config" / "mailer.toml", VALID) is not None


def test_no_config_file_crashes_the_loader() -> None:
    """Verify 1,000+ hostile config files each load or give file: key: problem lines."""
    seen = {"cases": 0, "valid": 0}
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "config").mkdir()
        path = Path(d) / "config" / "mailer.toml"

        @settings(max_examples=MIN_CASES, **FUZZ)
        @given(text=config_texts)
        def fuzz(text: str) -> None:
            seen["cases"] += 1
            seen["valid"] += check_loads_or_refuses(path, text) is not None

        fuzz()
    assert seen["cases"] >= MIN_CASES
    # Some mutations (an unknown key's value, a deleted optional key) must still load:
    # the fuzzer explores both sides.
    assert 0 < seen["valid"] < seen["cases"]
