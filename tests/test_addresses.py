"""The cheap address check gives email_validator's answer wherever it answers at all."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
from email_validator import EmailNotValidError, validate_email

from mailer.errors import InputError
from mailer.model.addresses import _plain, validate_address

# Pieces that sit on the edges of both checks: dots, dashes, Punycode, special-use names,
# digits in the last label, long labels and long local parts.
_LOCALS = ["a", "Bob.Smith", "o'neil", "x+tag", "a..b", ".a", "a.", "é", "a b", "#!$%&*=?^_`{|}~"]
_LOCALS += ["l" * 64, "l" * 65, "a." + "b" * 62, "a." + "b" * 63, "", '"q"']
_DOMAINS = ["example.com", "Example.COM", "x.co.uk", "sandbox.test", "foo.local", "foo.arpa"]
_DOMAINS += [
    "x",
    "-x.com",
    "x-.com",
    "x.c0m",
    "x.123",
    "ab--cd.com",
    "a--b.com",
    "xn--bcher-kva.de",
]
_DOMAINS += [
    "foo.invalid",
    "foo.onion",
    "localhost",
    "x.com.",
    "d" * 63 + ".com",
    "d" * 64 + ".com",
]
_DOMAINS += ["x.example", "1.2.3.4", "[127.0.0.1]", "bücher.de", "x_y.com", "x.c", "TEST"]


def _reference(address: str, test_env: bool) -> str | None:
    """email_validator's answer for the address without the spaces around it (a paste's)."""
    try:
        r = validate_email(
            address.strip(" \t"),
            check_deliverability=False,
            test_environment=test_env,
            allow_smtputf8=False,
        )
    except EmailNotValidError:
        return None
    return r.ascii_email or r.normalized


def _addresses() -> list[str]:
    rng = random.Random(14)
    made = [f"{lp}@{d}" for lp in _LOCALS for d in _DOMAINS]
    alphabet = "abcXYZ019.-_+'@!é "
    for _ in range(3000):
        local = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        domain = "".join(rng.choice("abXY09.-") for _ in range(rng.randint(0, 10)))
        made.append(f"{local}@{domain}{rng.choice(['.com', '.test', '.c', '', '.co.uk'])}")
    return made


@pytest.mark.parametrize("test_env", [False, True])
def test_the_cheap_check_answers_only_where_email_validator_agrees(test_env: bool) -> None:
    """Verify every address the cheap check accepts, email_validator accepts too, and writes
    the same way (a lower-case domain), with and without test domains."""
    answered = 0
    for address in _addresses():
        plain = _plain(address, test_env)
        if plain is not None:
            answered += 1
            assert plain == _reference(address, test_env), address
    assert answered > 100  # the common case really is answered cheaply


def test_validate_address_refuses_and_accepts_as_email_validator_does() -> None:
    """Verify the refusals are email_validator's for every address, cheap or not."""
    for address in _addresses():
        if "\n" in address or "\r" in address:
            continue
        try:
            got: str | None = validate_address(address, allow_test_domains=True)
        except InputError:
            got = None
        assert got == _reference(address, True), address


@pytest.mark.wire  # a fresh interpreter: what importing loads
def test_a_plain_address_is_checked_without_importing_email_validator() -> None:
    """Verify the common case does not pay email_validator's import."""
    code = (
        "import sys; from mailer.model.addresses import validate_address as v; "
        "v('ana.ruiz@example.com'); v('bob@sandbox.test', allow_test_domains=True); "
        "print('email_validator' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"


def _typo_reference(address: str) -> str:
    """typo_warning as it was: the nearest of every provider domain, no shortcut."""
    from mailer.model.addresses import PROVIDER_DOMAINS, _distance

    domain = address.rpartition("@")[2].lower()
    if not domain or domain in PROVIDER_DOMAINS:
        return ""
    best = min(PROVIDER_DOMAINS, key=lambda d: _distance(domain, d))
    limit = 0 if len(best) <= 6 else 1 if len(best) <= 8 else 2
    return "" if _distance(domain, best) > limit else f"a: {address}: did you mean {best}?"


def test_the_typo_warning_is_the_same_as_comparing_with_every_provider() -> None:
    """Verify skipping the providers whose length is too far off changes no warning: near
    misses (one or two edits of each provider) and random domains alike."""
    from mailer.model.addresses import PROVIDER_DOMAINS, typo_warning

    rng = random.Random(7)
    domains = ["", "gmial.com", "gmai.lcom", "mc.com", "hotmial.co.uk", "yaho.fr", "x.com"]
    for d in PROVIDER_DOMAINS:
        for _ in range(20):
            chars = list(d)
            for _ in range(rng.randint(1, 3)):
                i = rng.randrange(len(chars) + 1)
                op = rng.choice("ids")
                if op == "i":
                    chars.insert(i, rng.choice("abcmo.-"))
                elif chars and i < len(chars):
                    if op == "d":
                        del chars[i]
                    else:
                        chars[i] = rng.choice("abcmo.")
            domains.append("".join(chars))
    domains += [
        "".join(rng.choice("abcdefgmo.") for _ in range(rng.randint(1, 16))) for _ in range(600)
    ]
    warned = 0
    for domain in domains:
        expected = _typo_reference(f"u@{domain}")
        assert typo_warning(f"u@{domain}", "a") == expected, domain
        warned += bool(expected)
    assert warned > 100


def test_spaces_around_a_pasted_address_are_dropped_and_a_line_break_is_not() -> None:
    """Verify an address pasted with spaces or a tab around it is read without them, while
    a line break anywhere is still refused (a header must not carry one)."""
    assert validate_address(" ana@acme.com\t", what="--to") == "ana@acme.com"
    with pytest.raises(InputError, match="line break"):
        validate_address("ana@acme.com\r\n", what="--to")


@pytest.mark.parametrize(
    ("pasted", "hint"),
    [
        ("Ana Ruiz <ana@acme.com>", "give the address alone: 'ana@acme.com'"),
        ("ana@acme.com, bo@acme.com", "one address here; copies go in --cc"),
    ],
)
def test_a_pasted_name_or_list_is_refused_with_what_to_write(pasted: str, hint: str) -> None:
    """Verify the usual pastes (a name with the address, two addresses) say how to write
    them (newcomer, session 15)."""
    with pytest.raises(InputError, match="invalid email address") as caught:
        validate_address(pasted, what="--to")
    assert hint in str(caught.value)
