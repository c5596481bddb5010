"""The files a config names or sits beside, when they are not what they should be: a CA file
that holds no certificate, a .env that is not UTF-8, a byte order mark (Windows Notepad), a
directory where a file belongs. Each is one line naming the file (and the key or line), exit 3
(a config problem), found before anything is sent or recorded; never an internal error."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailer.adapters import connection
from mailer.adapters.config import find_config, load_settings, read_secrets, read_toml
from mailer.adapters.connection import tls_context, warm_tls_contexts
from mailer.errors import ConfigError

from .conftest import run_cli, send_args
from .test_config import BASE, problems, write

NOT_PEM = {
    "text": b"not a certificate\n",
    "empty": b"",
    "der": b"\x30\x82\x01\x0a\x02\x82\x01\x01\x00",  # the start of a DER (binary) file
}


@pytest.mark.parametrize("content", NOT_PEM.values(), ids=NOT_PEM.keys())
@pytest.mark.parametrize("table", ["smtp", "imap", "accounts.bea.smtp"])
def test_a_ca_file_that_is_not_a_pem_certificate_is_refused_at_load(
    tmp_path: Path, table: str, content: bytes
) -> None:
    """Verify a ca_file that exists but holds no PEM certificate is a problem naming the
    key and the file when the config is loaded, not an SSLError at the first connection."""
    ca = tmp_path / "bad.pem"
    ca.write_bytes(content)
    found = problems(tmp_path, BASE.replace(f"[{table}]\n", f'[{table}]\nca_file = "{ca}"\n', 1))
    path = tmp_path / "config" / "mailer.toml"
    assert found == [
        f"{path}: {table}.ca_file: {ca} is not a PEM certificate (no '-----BEGIN CERTIFICATE-----' line)"
    ]


def test_a_directory_given_as_ca_file_is_said_to_be_one(tmp_path: Path) -> None:
    ca = tmp_path / "certs"
    ca.mkdir()
    found = problems(tmp_path, BASE.replace("[smtp]\n", f'[smtp]\nca_file = "{ca}"\n', 1))
    path = tmp_path / "config" / "mailer.toml"
    assert found == [f"{path}: smtp.ca_file: {ca} is a directory, not a file"]


def test_a_ca_file_spoilt_after_load_is_one_line_naming_it(tmp_path: Path) -> None:
    """Verify a CA file that went bad after the config was checked (saved over by hand)
    still stops the connection with a config error naming the file, not an SSLError."""
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigError) as caught:
        tls_context(ca)
    assert str(caught.value).startswith(f"{ca} is not a PEM certificate (")


def test_a_context_warmed_on_a_thread_is_built_once_and_is_the_one_connections_get(
    tmp_path: Path, offline_info, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify warm_tls_contexts builds each CA file's context once, on its own thread, and
    that tls_context (from this thread or another) waits for it and gets that very context."""
    import ssl
    import threading

    ca = tmp_path / "ca.pem"
    ca.write_bytes(Path(offline_info.ca_file).read_bytes())
    built: list[str] = []  # by the threads of this test and of the warm-up only
    mine_and_warm = {threading.current_thread().name, "tls-context", "other"}
    real = ssl.create_default_context

    def counted(*args: object, **kwargs: object) -> ssl.SSLContext:
        if threading.current_thread().name in mine_and_warm:
            built.append(threading.current_thread().name)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl, "create_default_context", counted)
    warm_tls_contexts(ca, ca)
    warm_tls_contexts(ca)
    from_thread = []
    other = threading.Thread(target=lambda: from_thread.append(tls_context(ca)), name="other")
    other.start()
    mine = tls_context(ca)
    other.join()
    assert built == ["tls-context"]
    assert from_thread == [mine]
    assert not connection._warming[connection._key(ca)].is_alive()


@pytest.mark.process
def test_a_send_refused_at_once_exits_with_its_own_code_while_a_context_warms(
    offline_workspace: Path,
) -> None:
    """Verify the interpreter waits for the TLS warm-up thread before it exits: a daemon
    thread still inside OpenSSL while the process tore OpenSSL down crashed a send refused
    for a bad --interview (SIGSEGV in 7 of 30 runs), instead of its one line and exit 2."""
    args = send_args(interview="not-a-date")
    codes = [run_cli(offline_workspace, *args, process=True).returncode for _ in range(20)]
    assert codes == [2] * 20


def test_a_bad_ca_file_warmed_early_is_still_said_by_the_connection(tmp_path: Path) -> None:
    """Verify the warm-up keeps no error to itself: the connection that needs the context
    still stops with the config error naming the file."""
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    warm_tls_contexts(ca)
    with pytest.raises(ConfigError) as caught:
        tls_context(ca)
    assert str(caught.value).startswith(f"{ca} is not a PEM certificate (")


def _with_bad_ca(ws: Path) -> Path:
    bad = ws / "bad.pem"
    bad.write_text("not a certificate\n")
    cfg = ws / "config" / "mailer.toml"
    text = cfg.read_text()
    assert text.count("ca_file = ") == 2
    cfg.write_text(text.replace("ca_file = ", f'ca_file = "{bad}"\n# was: ca_file = ', 1))
    return bad


def test_a_send_with_a_ca_file_that_is_no_certificate_records_nothing(
    offline_workspace: Path,
) -> None:
    """Verify send refuses a ca_file that is no certificate with one config line, exit 3,
    before the thread is recorded (it was left 'queued' by the SSLError at connect)."""
    bad = _with_bad_ca(offline_workspace)
    r = run_cli(offline_workspace, *send_args())
    assert r.returncode == 3, r.stdout + r.stderr
    cfg = offline_workspace / "config" / "mailer.toml"
    assert r.stderr.strip().splitlines() == [
        f"mailer: error: {cfg}: smtp.ca_file: {bad} is not a PEM certificate "
        "(no '-----BEGIN CERTIFICATE-----' line)"
    ]
    status = run_cli(offline_workspace, "status")
    assert status.returncode == 0 and "No threads yet" in status.stdout, status.stdout


def test_doctor_names_a_ca_file_that_is_no_certificate(offline_workspace: Path) -> None:
    bad = _with_bad_ca(offline_workspace)
    r = run_cli(offline_workspace, "doctor")
    assert r.returncode == 3, r.stdout + r.stderr
    assert f"smtp.ca_file: {bad} is not a PEM certificate" in r.stderr
    assert "internal error" not in r.stdout + r.stderr


def test_a_dotenv_that_is_not_utf8_names_the_file_and_the_line(offline_workspace: Path) -> None:
    """Verify one Latin-1 byte in a .env comment is a config error naming .env and its line
    (never quoting the file, which holds the password), not a UnicodeDecodeError."""
    env = offline_workspace / ".env"
    password = env.read_text().strip().partition("=")[2]
    env.write_bytes(f"MAILER_SMTP_PASSWORD={password}\n# caf\xe9 wifi\n".encode("latin-1"))
    r = run_cli(offline_workspace, *send_args())
    assert r.returncode == 3, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"mailer: error: {env}: line 2: not UTF-8 text (save the file as UTF-8)"
    ), lines
    assert password not in r.stdout + r.stderr


def test_a_dotenv_not_utf8_on_its_first_line_says_line_1(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_bytes(b"\xef\xbb\xbfMAILER_SMTP_PASSWORD=p\xe4ss\n")
    with pytest.raises(ConfigError) as caught:
        read_secrets(env)
    assert str(caught.value) == f"{env}: line 1: not UTF-8 text"  # no byte of the password


def test_a_password_in_the_environment_that_is_not_utf8_names_the_variable_and_no_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify a password exported in Latin-1 (its bytes come to Python as surrogates) is a
    config error naming the variable, never showing a byte or the length of the password
    (it crashed as an internal error quoting the byte and its position)."""
    monkeypatch.setenv("MAILER_SMTP_PASSWORD", "Pw-SECRET-7391\udce9xyz")
    with pytest.raises(ConfigError) as caught:
        read_secrets(tmp_path / ".env")
    assert str(caught.value) == "MAILER_SMTP_PASSWORD: the environment variable is not UTF-8 text"
    assert "SECRET" not in str(caught.value) + (caught.value.hint or "")


def test_a_dotenv_line_dotenv_cannot_read_is_named_not_reported_as_unset(
    offline_workspace: Path,
) -> None:
    """Verify a .env line with an unclosed quote is one error naming .env and the line
    (it was a python-dotenv warning naming no file, then "not set")."""
    env = offline_workspace / ".env"
    password = env.read_text().strip().partition("=")[2]
    env.write_text(f'# mine\nMAILER_SMTP_PASSWORD="{password}\n', encoding="utf-8")
    r = run_cli(offline_workspace, *send_args())
    assert r.returncode == 3, r.stdout + r.stderr
    assert r.stderr.strip().splitlines() == [
        f"mailer: error: {env}: line 2: cannot be read as NAME=value (look for a quote that "
        "is not closed on that line)"
    ]
    assert password not in r.stdout + r.stderr


def test_a_dotenv_saved_with_a_bom_gives_its_first_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAILER_SMTP_PASSWORD", raising=False)
    env = tmp_path / ".env"
    env.write_bytes(b"\xef\xbb\xbfMAILER_SMTP_PASSWORD=pw\nMAILER_IMAP_PASSWORD=caf\xc3\xa9\n")
    found = read_secrets(env)
    assert found["MAILER_SMTP_PASSWORD"] == "pw" and found["MAILER_IMAP_PASSWORD"] == "café"


def test_a_config_saved_with_a_bom_loads(tmp_path: Path) -> None:
    """Verify a mailer.toml that starts with a byte order mark (Windows Notepad) loads as
    the same file without one."""
    path = tmp_path / "config" / "mailer.toml"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\xef\xbb\xbf" + BASE.encode())
    with_bom = load_settings(path)
    path.write_bytes(BASE.encode())
    assert with_bom == load_settings(path)


def test_a_config_error_after_a_bom_keeps_its_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "mailer.toml"
    path.write_bytes(b"\xef\xbb\xbfx = 1\ny = \n")
    with pytest.raises(ConfigError) as caught:
        read_toml(path)
    assert str(caught.value) == f"{path}: invalid TOML: Invalid value (at line 2, column 5)"


def test_a_preview_with_a_config_saved_with_a_bom_works(offline_workspace: Path) -> None:
    cfg = offline_workspace / "config" / "mailer.toml"
    cfg.write_bytes(b"\xef\xbb\xbf" + cfg.read_bytes())
    args = send_args()[1:-1]  # the same facts, without 'send' and '--yes'
    r = run_cli(offline_workspace, "preview", *args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Ana Ruiz" in r.stdout


def test_a_directory_where_dotenv_should_be_is_said_to_be_one(offline_workspace: Path) -> None:
    """Verify a .env that is a directory is named as one, not passed over silently (which
    then reads as "password not set in .env")."""
    env = offline_workspace / ".env"
    env.unlink()
    env.mkdir()
    r = run_cli(offline_workspace, *send_args())
    assert r.returncode == 3, r.stdout + r.stderr
    assert r.stderr.strip().splitlines() == [f"mailer: error: {env} is a directory, not a file"]


def test_a_config_option_naming_a_directory_is_said_to_be_one(offline_workspace: Path) -> None:
    r = run_cli(offline_workspace, "--config", str(offline_workspace), "status")
    assert r.returncode == 3, r.stdout + r.stderr
    assert r.stderr.strip().splitlines() == [
        f"mailer: error: {offline_workspace} is a directory, not a file"
    ]


def test_a_directory_at_config_mailer_toml_is_said_to_be_one(tmp_path: Path) -> None:
    """Verify a directory where the workspace's config/mailer.toml belongs is named, not
    reported as "no config/mailer.toml here" (nor passed by for a parent's config)."""
    (tmp_path / "config" / "mailer.toml").mkdir(parents=True)
    (tmp_path / "sub").mkdir()
    for start in (tmp_path, tmp_path / "sub"):
        with pytest.raises(ConfigError) as caught:
            find_config(start)
        assert (
            str(caught.value) == f"{tmp_path / 'config' / 'mailer.toml'} is a directory, not a file"
        )
    r = run_cli(tmp_path, "status")
    assert r.returncode == 3, r.stdout + r.stderr
    assert "config/mailer.toml is a directory, not a file" in r.stderr


def test_a_campaign_file_that_is_a_directory_is_said_to_be_one(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.mkdir()
    with pytest.raises(ConfigError) as caught:
        read_toml(path)
    assert str(caught.value) == f"{path} is a directory, not a file"


def test_a_dotenv_with_crlf_lines_reads_a_quoted_value_over_two_lines_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify a .env saved with CRLF (or CR) line ends gives a quoted value spanning lines
    with LF inside, as python-dotenv reading the file itself did."""
    monkeypatch.delenv("MAILER_IMAP_PASSWORD", raising=False)
    for end in (b"\r\n", b"\r"):
        env = tmp_path / ".env"
        env.write_bytes(b'MAILER_IMAP_PASSWORD="line one' + end + b'line two"' + end)
        assert read_secrets(env)["MAILER_IMAP_PASSWORD"] == "line one\nline two"


def test_a_ca_file_with_the_old_x509_certificate_label_is_accepted(tmp_path: Path) -> None:
    """Verify a PEM file labelled 'BEGIN X509 CERTIFICATE' (OpenSSL loads it) is not refused."""
    ca = tmp_path / "old.pem"
    ca.write_text("-----BEGIN X509 CERTIFICATE-----\nMIIB\n-----END X509 CERTIFICATE-----\n")
    path = write(tmp_path, BASE.replace("[smtp]\n", f'[smtp]\nca_file = "{ca}"\n', 1))
    assert load_settings(path).smtp.ca_file == ca
