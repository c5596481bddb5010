"""``[state]`` on PostgreSQL (#17): the URL holds no password, the password comes from the
account sources, TLS is verified by default off this machine. Pure: nothing is contacted."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailer.adapters.config import STATE_PASSWORD_VAR, load_settings
from mailer.errors import ConfigError

from .test_config import BASE, problems, write


def state(table: str) -> str:
    return BASE + "\n[state]\n" + table


@pytest.fixture(autouse=True)
def _no_state_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STATE_PASSWORD_VAR, raising=False)


def test_a_postgresql_url_with_its_password_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STATE_PASSWORD_VAR, "pg-secret")
    settings = load_settings(
        write(tmp_path, state('url = "postgresql://mailer@db.example.com/m"\n'))
    )
    assert settings.state_url == "postgresql://mailer@db.example.com/m"
    assert settings.state_connect == {"password": "pg-secret", "sslmode": "verify-full"}


def test_the_password_can_come_from_dot_env(tmp_path: Path) -> None:
    path = write(tmp_path, state('url = "postgresql://mailer@127.0.0.1:5433/m"\n'))
    (tmp_path / ".env").write_text(f"{STATE_PASSWORD_VAR}=from-dotenv\n")
    settings = load_settings(path)
    assert settings.state_connect["password"] == "from-dotenv"
    assert settings.state_connect["sslmode"] == "prefer"  # loopback: TLS adds nothing


def test_a_command_that_never_connects_still_reads_the_store_password_from_dot_env(
    tmp_path: Path,
) -> None:
    """Verify offline commands (preview --follow-up, status), which read no mail password,
    still find a PostgreSQL store's password in .env, and leave .env unread for SQLite."""
    path = write(tmp_path, state('url = "postgresql://mailer@127.0.0.1:5433/m"\n'))
    (tmp_path / ".env").write_text(
        f"{STATE_PASSWORD_VAR}=from-dotenv\nMAILER_SMTP_PASSWORD=smtp-secret\n"
    )
    offline = load_settings(path, offline=True)
    assert offline.state_connect["password"] == "from-dotenv"
    assert offline.smtp.password == ""  # what never connects gets no mail password
    sqlite = write(tmp_path, BASE)
    assert load_settings(sqlite).smtp.password == "smtp-secret"
    assert load_settings(sqlite, offline=True).smtp.password == ""


def test_the_password_can_come_from_a_command(tmp_path: Path) -> None:
    text = state(
        'url = "postgresql://mailer@db.example.com/m"\n'
        'password_command = ["python3", "-c", "print(\'from-command\')"]\n'
    )
    settings = load_settings(write(tmp_path, text))
    assert settings.state is not None and settings.state.secret is not None
    assert settings.state.secret.kind == "command"
    assert settings.state.secret.command[-1] == "print('from-command')"


def test_a_password_in_the_url_is_refused_without_being_shown(tmp_path: Path) -> None:
    found = problems(tmp_path, state('url = "postgresql://mailer:hunter2@db.example.com/m"\n'))
    assert len(found) == 1
    assert found[0].endswith(
        f"state.url: holds a password: it does not belong in the config file; set "
        f'{STATE_PASSWORD_VAR} in the environment or .env, or state.password_source = "command" '
        'or "keyring"'
    )
    assert "hunter2" not in found[0]


def test_a_password_key_in_the_state_table_is_refused(tmp_path: Path) -> None:
    text = state('url = "postgresql://mailer@db.example.com/m"\npassword = "hunter2"\n')
    found = problems(tmp_path, text)
    assert any("state.password: a password does not belong in the config file" in p for p in found)
    assert not any("hunter2" in p for p in found)


def test_a_bad_sslmode_is_named(tmp_path: Path) -> None:
    text = state('url = "postgresql://mailer@db.example.com/m"\nsslmode = "maybe"\n')
    (found,) = problems(tmp_path, text)
    assert found.endswith(
        "state.sslmode: must be one of disable, allow, prefer, require, verify-ca, verify-full, "
        "not 'maybe'"
    )


def test_tls_is_verified_by_default_off_this_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STATE_PASSWORD_VAR, "x")
    for host, mode in [("10.0.0.5", "verify-full"), ("db.example.com", "verify-full")]:
        s = load_settings(write(tmp_path, state(f'url = "postgresql://mailer@{host}/m"\n')))
        assert s.state_connect["sslmode"] == mode, host
    for host in ("127.0.0.1", "localhost", "[::1]"):
        s = load_settings(write(tmp_path, state(f'url = "postgresql://mailer@{host}/m"\n')))
        assert s.state_connect["sslmode"] == "prefer", host


def test_sslrootcert_must_be_a_file_and_is_passed_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STATE_PASSWORD_VAR, "x")
    text = state('url = "postgresql://mailer@db.example.com/m"\nsslrootcert = "ca.pem"\n')
    (found,) = problems(tmp_path, text)
    assert found.endswith(f"state.sslrootcert: {tmp_path / 'ca.pem'} is not a file")
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    settings = load_settings(write(tmp_path, text))
    assert settings.state_connect["sslrootcert"] == str(tmp_path / "ca.pem")


def test_a_missing_password_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    settings = load_settings(
        write(tmp_path, state('url = "postgresql://mailer@db.example.com/m"\n'))
    )
    with pytest.raises(ConfigError) as caught:
        settings.state_connect  # noqa: B018 -- the password is fetched here
    assert (
        str(caught.value)
        == f"{tmp_path / 'config' / 'mailer.toml'}: state: no password for the state store"
    )
    assert STATE_PASSWORD_VAR in str(caught.value.hint)


def test_an_incomplete_or_foreign_url_is_named(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, state('url = "postgresql://db.example.com"\n'))
    assert found.endswith(
        "state.url: must name a user, a host and a database: postgresql://USER@HOST:PORT/DATABASE"
    )
    (found,) = problems(tmp_path, state('url = "mysql://u@h/d"\n'))
    assert "must be sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE" in found
    (found,) = problems(tmp_path, state('url = "postgresql://u@h:99999/d"\n'))
    assert "state.url: is not a valid URL" in found


def test_postgresql_keys_on_a_sqlite_store_are_named(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, state('url = "sqlite:///s.db"\nsslmode = "require"\n'))
    assert found.endswith("state.sslmode: is for a PostgreSQL store; state.url is a SQLite file")
