"""Loading config/mailer.toml: every value that passes validation is usable later, and every
bad one is a ``file: key: problem`` line (ConfigError), never another exception. Pure: the
servers in these files are never contacted."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mailer.adapters.config import Settings, load_settings
from mailer.errors import ConfigError

BASE = textwrap.dedent("""\
    [sender]
    name = "Sam Candidate"
    address = "sam@sandbox.test"
    timezone = "Europe/London"

    [smtp]
    host = "127.0.0.1"
    timeout = 10

    [imap]
    host = "127.0.0.1"

    [accounts.bea.sender]
    name = "Bea Candidate"
    address = "bea@sandbox.test"
    [accounts.bea.smtp]
    host = "127.0.0.1"
    [accounts.bea.imap]
    host = "127.0.0.1"

    [follow_up]
    wait = "3 business days"

    [watch]
    poll_interval = "60s"

    [addresses]
    allow_test_domains = true
    """)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config" / "mailer.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def edited(old: str, new: str) -> str:
    assert BASE.count(old) >= 1, old
    return BASE.replace(old, new, 1)


def problems(tmp_path: Path, text: str) -> list[str]:
    """The problems load_settings reports for ``text`` (a ConfigError, nothing else)."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert all(p.startswith(f"{path}: ") or p.startswith("MAILER_") for p in caught.value.problems)
    return caught.value.problems


def test_the_base_config_loads(tmp_path: Path) -> None:
    """Verify the file the other tests edit is valid as it stands."""
    assert isinstance(load_settings(write(tmp_path, BASE)), Settings)


@pytest.mark.parametrize(
    "wait",
    [
        "1000000 weeks",
        "3000000 business days",
        "1" + "0" * 400 + " weeks",
        "1" + "0" * 400 + " business days",
        "366 days",
        "261 business days",
        "0.5s",
        "²s",
    ],
)
def test_a_follow_up_wait_out_of_range_is_refused_at_load(tmp_path: Path, wait: str) -> None:
    """Verify waits beyond a year (or under a second) are a follow_up.wait problem at load."""
    found = problems(tmp_path, edited('wait = "3 business days"', f'wait = "{wait}"'))
    assert len(found) == 1 and ": follow_up.wait: " in found[0], found


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-1", "601", "1e300"])
@pytest.mark.parametrize("table", ["smtp", "imap", "accounts.bea.smtp"])
def test_a_timeout_that_is_not_a_sane_number_of_seconds_is_refused(
    tmp_path: Path, table: str, value: str
) -> None:
    """Verify NaN, infinite, zero, negative and over-600 s timeouts are refused per server."""
    text = BASE.replace(f"[{table}]\n", f"[{table}]\ntimeout = {value}\n", 1)
    if table == "smtp":
        text = text.replace("timeout = 10\n", "", 1)
    found = problems(tmp_path, text)
    assert len(found) == 1 and f": {table}.timeout: " in found[0], found


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("smtp.daily_cap", "10000000000000000000000"),
        ("smtp.daily_cap", "-1"),
        ("accounts.bea.smtp.daily_cap", "9223372036854775807"),
    ],
)
def test_caps_out_of_range_are_refused(tmp_path: Path, key: str, value: str) -> None:
    """Verify a daily cap must be a whole number from 0 to a million."""
    table, _, name = key.rpartition(".")
    found = problems(tmp_path, BASE.replace(f"[{table}]\n", f"[{table}]\n{name} = {value}\n", 1))
    assert len(found) == 1 and f": {key}: " in found[0], found


@pytest.mark.parametrize("poll", ["1000000000000 weeks", "2 days", "1" + "0" * 400 + "s"])
def test_a_poll_interval_out_of_range_is_refused(tmp_path: Path, poll: str) -> None:
    """Verify watch.poll_interval above a day (even one too big for a timedelta) is refused."""
    found = problems(tmp_path, edited('poll_interval = "60s"', f'poll_interval = "{poll}"'))
    assert len(found) == 1 and ": watch.poll_interval: " in found[0], found


def test_an_unknown_locale_is_a_problem_that_hides_no_other(tmp_path: Path) -> None:
    """Verify sender.locale = "xx_YY" is one problem line, reported with the file's others."""
    text = edited('timezone = "Europe/London"', 'timezone = "Europe/London"\nlocale = "xx_YY"')
    text = text.replace("timeout = 10", "timeout = 10\nport = 99999", 1)
    found = problems(tmp_path, text)
    assert len(found) == 2, found
    assert ": sender.locale: unknown locale 'xx_YY'" in found[0]
    assert ": smtp.port: " in found[1]


@pytest.mark.parametrize("locale", ["", "en-GB", "de__DE", "xx", "en_GB\\u0000"])
def test_every_unusable_locale_is_refused_for_each_account(tmp_path: Path, locale: str) -> None:
    """Verify locales Babel cannot write a date in are refused, for [accounts.NAME] too."""
    text = BASE.replace(
        'address = "bea@sandbox.test"\n', f'address = "bea@sandbox.test"\nlocale = "{locale}"\n'
    )
    found = problems(tmp_path, text)
    assert len(found) == 1 and ": accounts.bea.sender.locale: " in found[0], found


@pytest.mark.parametrize("key", ["address", "name"])
@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_sender_is_refused(tmp_path: Path, key: str, value: str) -> None:
    """Verify sender.address = "" (and an empty name) is a problem, not a crash when composing."""
    old = {"address": 'address = "sam@sandbox.test"', "name": 'name = "Sam Candidate"'}[key]
    found = problems(tmp_path, edited(old, f'{key} = "{value}"'))
    assert len(found) == 1 and f": sender.{key}: must not be empty" in found[0], found


def test_a_sender_address_with_spaces_around_it_is_refused(tmp_path: Path) -> None:
    """Verify sender.address with a space around it is refused by its key: the config's
    value is used as written (From, the login's user), so it must be clean as it stands
    (review of session 15: validate_address drops spaces a command line's paste has)."""
    found = problems(
        tmp_path, edited('address = "sam@sandbox.test"', 'address = "sam@sandbox.test "')
    )
    assert (
        len(found) == 1 and "sender.address: 'sam@sandbox.test ' has spaces around it" in (found[0])
    ), found


@pytest.mark.parametrize(
    "host", ["", " ", "mail host", "mail\\u0000.example", "-", "a..b", "mäil.example", "x" * 254]
)
@pytest.mark.parametrize("table", ["smtp", "imap", "accounts.bea.imap"])
def test_a_host_that_names_no_server_is_refused(tmp_path: Path, table: str, host: str) -> None:
    """Verify an empty or malformed host is refused, so nothing connects to the local machine."""
    text = BASE.replace(f'[{table}]\nhost = "127.0.0.1"', f'[{table}]\nhost = "{host}"', 1)
    assert text != BASE
    found = problems(tmp_path, text)
    assert len(found) == 1 and f": {table}.host: " in found[0], found


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("password_source", "Hunter2-MyRealPw"),
        ("host", "you@sandbox.test:Hunter2-MyRealPw@127.0.0.1"),
        ("password_source", 12345678),  # a number: "must be a string, not int"
    ],
)
def test_a_password_pasted_into_a_setting_is_not_quoted_back(
    tmp_path: Path, key: str, value: str | int
) -> None:
    """Verify the problem names the key and what it must be, without the value: a password
    pasted into password_source, or a URL with one in it as the host, was printed in the
    error (a sign-in walkthrough)."""
    text = BASE.replace(
        '[smtp]\nhost = "127.0.0.1"',
        f'[smtp]\nhost = "127.0.0.1"\n{key} = {value if isinstance(value, int) else repr(value)}',
        1,
    )
    if key == "host":
        text = BASE.replace('[smtp]\nhost = "127.0.0.1"', f'[smtp]\nhost = "{value}"', 1)
    assert text != BASE
    found = problems(tmp_path, text)
    assert len(found) == 1 and f": smtp.{key}: must be" in found[0], found
    assert "Hunter2" not in found[0] and "12345678" not in found[0], found


@pytest.mark.parametrize("host", ["localhost", "::1", "mail.example.org", "smtp-relay_1.corp."])
def test_host_names_and_addresses_are_accepted(tmp_path: Path, host: str) -> None:
    """Verify ordinary host names and IP addresses still load."""
    settings = load_settings(write(tmp_path, edited('host = "127.0.0.1"', f'host = "{host}"')))
    assert settings.smtp.host == host


@pytest.mark.parametrize("depth", [20, 1000, 100_000])
@pytest.mark.parametrize("shape", ["array", "table"])
def test_toml_nested_too_deep_is_one_problem_line(tmp_path: Path, depth: int, shape: str) -> None:
    """Verify TOML nested 1,000 deep is a ConfigError naming the file, not a RecursionError."""
    nested = "[" * depth + "]" * depth if shape == "array" else "{a=" * depth + "1" + "}" * depth
    found = problems(tmp_path, "[composer]\nhtml = " + nested + "\n" + BASE)
    assert len(found) == 1 and "invalid TOML" in found[0] and "nested" in found[0], found


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("sender.phone", '"+44\\u0000 7700"'),
        ("smtp.ca_file", '"ca\\u0000.pem"'),
        ("smtp.ca_file", '"~no-such-user-here/ca.pem"'),
        ("smtp.ca_file", '"' + "x" * 5000 + '"'),
        ("imap.sent_folder", '"Sent\\u001b"'),
        ("watch.folders", '["INBOX", "Junk\\u0000"]'),
        ("state.url", '"sqlite:///st\\u0000ate.db"'),
    ],
)
def test_odd_strings_are_problems_not_crashes(tmp_path: Path, key: str, value: str) -> None:
    """Verify NUL, escape, unknown ~user and over-long paths are problems naming the key."""
    table, _, name = key.rpartition(".")
    text = BASE if f"[{table}]\n" in BASE else BASE + f"[{table}]\n"
    found = problems(tmp_path, text.replace(f"[{table}]\n", f"[{table}]\n{name} = {value}\n", 1))
    assert len(found) == 1 and f": {key}: " in found[0], found


@pytest.mark.parametrize("key", ["a\\nb", "\\r", "x\\u001b[2J", "\\u2028", "bea\\u0085"])
def test_a_problem_naming_an_odd_key_stays_one_line(tmp_path: Path, key: str) -> None:
    """Verify keys with line breaks or escapes are shown escaped, one problem per line."""
    found = problems(
        tmp_path, f'"{key}" = 1\n' + BASE.replace("[smtp]\n", f'[smtp]\n"{key}" = 1\n')
    )
    assert len(found) == 2, found
    for line in found:
        assert len(line.splitlines()) == 1 and "\x1b" not in line, line
        assert ": unknown setting" in line


@pytest.mark.parametrize(
    ("table", "typo", "meant"),
    [
        ("smtp", "securty", "security"),
        ("imap", "sent_foldr", "sent_folder"),
        ("sender", "nmae", "name"),
    ],
)
def test_a_misspelt_setting_names_the_one_meant(
    tmp_path: Path, table: str, typo: str, meant: str
) -> None:
    """Verify a misspelt key is refused with the nearest known one: left as it is, the
    setting it was meant to be would silently keep its default."""
    found = problems(tmp_path, BASE.replace(f"[{table}]\n", f'[{table}]\n{typo} = "x"\n', 1))
    path = tmp_path / "config" / "mailer.toml"
    assert found == [f"{path}: {table}.{typo}: unknown setting (did you mean {meant!r}?)"]


def test_an_unknown_setting_with_no_near_one_lists_the_known(tmp_path: Path) -> None:
    found = problems(tmp_path, BASE.replace("[smtp]\n", "[smtp]\nzzz = 1\n", 1))
    assert len(found) == 1 and "smtp.zzz: unknown setting (known: " in found[0], found
    assert "security" in found[0] and "host" in found[0]


def test_a_misspelt_server_setting_stops_even_a_command_that_needs_no_server(
    offline_workspace: Path,
) -> None:
    """Verify preview, which reads no server setting, still refuses a misspelt one (it
    would otherwise be found only by the first send)."""
    from .conftest import run_cli

    cfg = offline_workspace / "config" / "mailer.toml"
    cfg.write_text(cfg.read_text().replace("[smtp]\n", '[smtp]\nsecurty = "ssl"\n', 1))
    r = run_cli(
        offline_workspace,
        "preview",
        "--to",
        "ana@sandbox.test",
        "--interviewer",
        "Ana Ruiz",
        "--company",
        "Acme",
        "--role",
        "Engineer",
        "--interview",
        "2026-11-24 10:00",
        "--situation",
        "illness",
        "--note",
        "I had a fever.",
    )
    assert r.returncode == 3, r.stdout + r.stderr
    assert "smtp.securty: unknown setting (did you mean 'security'?)" in r.stderr


def test_holidays_country_takes_a_region_and_names_an_unknown_one(tmp_path: Path) -> None:
    """Verify "GB-ENG" is accepted, and an unknown region is one problem listing the
    country's regions."""
    region = BASE.replace("[follow_up]\n", '[follow_up]\nholidays_country = "GB-ENG"\n')
    assert region != BASE
    assert load_settings(write(tmp_path, region)).follow_up.holidays_country == "GB-ENG"
    found = problems(tmp_path, region.replace("GB-ENG", "GB-XYZ"))
    assert len(found) == 1 and "follow_up.holidays_country: unknown region 'GB-XYZ'" in found[0]
    assert "GB-ENG, GB-NIR, GB-SCT, GB-WLS" in found[0]
    # A region the library names in mixed case ("Andria") is accepted in any case.
    for written in ("IT-Andria", "it-andria"):
        city = region.replace("GB-ENG", written)
        assert load_settings(write(tmp_path, city)).follow_up.holidays_country == written
