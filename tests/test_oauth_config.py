"""OAuth2 settings: presets, a user's own provider, and what the config file may not hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailer.adapters.config import load_settings
from mailer.errors import ConfigError

BASE = """
[sender]
name = "Anna Example"
address = "anna@example.org"
"""

OWN = """
auth = "oauth2"
[smtp]
host = "127.0.0.1"
port = 2525
[imap]
host = "127.0.0.1"
[oauth2]
flow = "device"
device_authorization_url = "http://127.0.0.1:8080/device"
token_url = "http://127.0.0.1:8080/token"
client_id = "mailer-test"
scopes = ["imap", "smtp"]
mechanism = "oauthbearer"
"""


def _load(tmp_path: Path, text: str, env: str = "") -> object:
    (tmp_path / "config").mkdir(exist_ok=True)
    path = tmp_path / "config" / "mailer.toml"
    # Top-level keys (provider, auth) must come before the first table.
    cut = text.find("\n[") + 1 if "\n[" in text else len(text)
    path.write_text(text[:cut] + BASE + text[cut:], encoding="utf-8")
    (tmp_path / ".env").write_text(env, encoding="utf-8")
    return load_settings(path, need_secrets=True)


def _problems(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    return str(info.value)


def test_microsoft_preset_signs_in_with_the_device_flow(tmp_path: Path) -> None:
    """provider = "microsoft365" needs only a client ID: the rest is the preset, no password."""
    s = _load(tmp_path, 'provider = "microsoft365"\n[oauth2]\nclient_id = "abc"\n')
    o = s.smtp.oauth2
    assert s.smtp.auth == s.imap.auth == "oauth2" and o is not None
    assert o.flow == "device" and o.mechanism == "xoauth2"
    assert o.scopes == (
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
        "offline_access",
    )
    assert o.token_url == "https://login.microsoftonline.com/common/oauth2/v2.0/token"
    assert (s.smtp.host, s.imap.host) == ("smtp.office365.com", "outlook.office365.com")


@pytest.mark.parametrize("provider", ["microsoft365", "outlook", "hotmail", "office365"])
def test_microsoft_without_client_id_says_how_to_get_one(tmp_path: Path, provider: str) -> None:
    """The old 'not supported' refusal is now a pointer to registering an app."""
    text = _problems(tmp_path, f'provider = "{provider}"\n')
    assert "oauth2.client_id: is required" in text and "needs OAuth2" in text
    assert "docs/oauth2.md" in text


def test_gmail_oauth2_uses_pkce_with_offline_access(tmp_path: Path) -> None:
    """Gmail with auth = "oauth2": loopback PKCE, the mail scope, access_type=offline."""
    s = _load(tmp_path, 'provider = "gmail"\nauth = "oauth2"\n[oauth2]\nclient_id = "g"\n')
    o = s.imap.oauth2
    assert o is not None and o.flow == "pkce" and o.scopes == ("https://mail.google.com/",)
    assert ("access_type", "offline") in o.auth_params


def test_user_defined_provider_per_account(tmp_path: Path) -> None:
    """An account's own [accounts.NAME.oauth2] table, its secret from the environment."""
    account = OWN.replace("[smtp]", "[accounts.anna.smtp]").replace(
        "[imap]", "[accounts.anna.imap]"
    )
    account = account.replace("[oauth2]", "[accounts.anna.oauth2]")
    account = account.replace('auth = "oauth2"\n', "")
    text = (
        '\n[smtp]\nhost = "127.0.0.1"\n[imap]\nhost = "127.0.0.1"\n'
        '[accounts.anna]\nauth = "oauth2"\n[accounts.anna.sender]\n'
        'name = "Anna"\naddress = "anna@example.org"\n' + account
    )
    s = _load(
        tmp_path,
        text,
        "MAILER_SMTP_PASSWORD=pw\nMAILER_ACCOUNT_ANNA_OAUTH2_CLIENT_SECRET=shh\n",
    )
    anna = s.for_account("anna")
    assert anna.smtp.auth == "oauth2" and s.smtp.auth == "password"
    assert anna.smtp.oauth2 is not None and anna.smtp.oauth2.account == "anna"
    assert anna.smtp.oauth2.client_secret == "shh" and "shh" not in repr(anna.smtp)


def test_client_secret_in_toml_is_refused(tmp_path: Path) -> None:
    """A client secret belongs in the environment or .env, never in the config file."""
    text = _problems(tmp_path, OWN + 'client_secret = "s3"\n')
    assert "oauth2.client_secret: must not be in the config file" in text
    assert "MAILER_OAUTH2_CLIENT_SECRET" in text and "s3" not in text


@pytest.mark.parametrize(
    "url", ["http://login.example.com/token", "ftp://127.0.0.1/token", "token", "https://"]
)
def test_token_endpoint_must_be_https_unless_loopback(tmp_path: Path, url: str) -> None:
    """The refresh token never travels over plain HTTP to another machine."""
    text = _problems(tmp_path, OWN.replace("http://127.0.0.1:8080/token", url))
    assert "oauth2.token_url: must" in text


def test_bad_oauth2_values_are_all_reported(tmp_path: Path) -> None:
    """Flow, mechanism, scopes and auth are each checked, all problems at once."""
    bad = OWN.replace('"device"', '"implicit"').replace('"oauthbearer"', '"plain"')
    bad = bad.replace('["imap", "smtp"]', '["imap smtp"]').replace('auth = "oauth2"', 'auth = "x"')
    bad = bad.replace("[smtp]", '[smtp]\nauth = "oauth2"')
    text = _problems(tmp_path, bad)
    for key in ("oauth2.flow", "oauth2.mechanism", "oauth2.scopes", "auth: must be one of"):
        assert key in text
