"""[sender] locale and timezone as they bear on reading typed dates (issue #12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailer.adapters.config import load_settings

from .test_config import BASE, edited, problems, write


def test_the_default_locale_is_not_a_set_locale(tmp_path: Path) -> None:
    """Verify an unset locale still formats as en_GB but does not order typed dates."""
    s = load_settings(write(tmp_path, BASE))
    assert (s.sender.locale, s.sender.locale_set) == ("en_GB", False)
    assert s.for_account("bea").sender.locale_set is False


def test_a_written_locale_is_set_and_accounts_inherit_it(tmp_path: Path) -> None:
    """Verify locale = "en_US" in [sender] marks it set, for [accounts.NAME] too."""
    text = edited('timezone = "Europe/London"', 'timezone = "Europe/London"\nlocale = "en_US"')
    s = load_settings(write(tmp_path, text))
    assert (s.sender.locale, s.sender.locale_set) == ("en_US", True)
    assert s.for_account("bea").sender.locale_set is True


def test_an_account_can_set_its_own_locale(tmp_path: Path) -> None:
    """Verify only the account that writes a locale has one set."""
    text = BASE.replace(
        'address = "bea@sandbox.test"\n', 'address = "bea@sandbox.test"\nlocale = "en_US"\n'
    )
    s = load_settings(write(tmp_path, text))
    assert s.sender.locale_set is False
    assert s.for_account("bea").sender.locale_set is True


@pytest.mark.parametrize(
    ("zone", "message"),
    [
        ("Berlin", "sender.timezone: unknown time zone 'Berlin'; did you mean Europe/Berlin?"),
        ("Europe/berlin", "did you mean Europe/Berlin?"),
        (
            "IST",
            "sender.timezone: 'IST' is ambiguous (Asia/Kolkata, Europe/Dublin, Asia/Jerusalem)",
        ),
    ],
)
def test_a_misspelt_or_ambiguous_sender_zone_is_one_problem(
    tmp_path: Path, zone: str, message: str
) -> None:
    """Verify the config's zone gets the same suggestions as the options, as one line."""
    found = problems(tmp_path, edited('timezone = "Europe/London"', f'timezone = "{zone}"'))
    assert len(found) == 1 and message in found[0], found


def test_an_unambiguous_abbreviation_is_accepted_as_the_senders_zone(tmp_path: Path) -> None:
    """Verify timezone = "CET" loads (read as Europe/Paris, not tzdata's rule-less CET)."""
    from mailer.adapters.clock import local_zone

    s = load_settings(write(tmp_path, edited('"Europe/London"', '"CET"')))
    assert str(local_zone(s.sender.timezone)) == "Europe/Paris"
