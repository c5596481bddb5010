"""Address and header-value checks, shared by config, composer and campaigns."""

from __future__ import annotations

import re
from functools import cache

from mailer.errors import InputError
from mailer.model.values import ADDRESS_MAX, HEADER_MAX, check_header

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
# email_validator's special-use names (a domain ending in one is refused; "test" only
# outside a test environment). Anything here goes to email_validator for its own message.
_SPECIAL_TLDS = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})


@cache
def _plain_address() -> re.Pattern[str]:
    """The shape of the common case: a dot-atom local part and ASCII labels of at most 63
    characters, the last letters only. Compiled on first use, like every regex here."""
    return re.compile(
        rf"({_ATEXT}+(?:\.{_ATEXT}+)*)@"
        r"((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,63}))"
    )


def _plain(address: str, allow_test_domains: bool) -> str | None:
    """The address as email_validator would return it, when it certainly accepts it as it is
    (the shape above, a local part of at most 64 characters, no '--' so no Punycode, no
    special-use name); None when only email_validator can tell."""
    m = _plain_address().fullmatch(address)
    if m is None or len(m.group(1)) > 64 or len(address) > ADDRESS_MAX or "--" in m.group(2):
        return None
    tld = m.group(3).lower()
    if tld in _SPECIAL_TLDS and not (tld == "test" and allow_test_domains):
        return None
    return f"{m.group(1)}@{m.group(2).lower()}"


def validate_address(
    address: str, *, allow_test_domains: bool = False, what: str = "address"
) -> str:
    """Return the normalised address, or raise InputError saying what is wrong with it.

    No DNS lookups: a check must not depend on the network, and mail to a domain with
    flaky DNS is the SMTP server's call, not ours.
    """
    check_header(address, what, ADDRESS_MAX)
    # Spaces around it are a paste's, not the address's (a line break was refused above).
    address = address.strip(" \t")
    if (plain := _plain(address, allow_test_domains)) is not None:
        # email_validator costs ~50 ms of import and its regexes: only the rare address
        # that is not plain needs it (tests/test_addresses.py holds the two to one answer).
        return plain
    from email_validator import EmailNotValidError, validate_email

    try:
        # No SMTPUTF8: most servers still refuse it, and a non-ASCII address would otherwise
        # fail half-way through the SMTP transaction.
        result = validate_email(
            address,
            check_deliverability=False,
            test_environment=allow_test_domains,
            allow_smtputf8=False,
        )
    except EmailNotValidError as exc:
        raise InputError(
            f"{what}: invalid email address {address!r}: {exc}{_pasted_hint(address)}"
        ) from None
    # An internationalised domain travels as punycode (xn--...), which every server accepts.
    return result.ascii_email or result.normalized


def _pasted_hint(address: str) -> str:
    """What to do about the usual paste: a name with the address, or several addresses."""
    if "<" in address and ">" in address:
        inside = address[address.index("<") + 1 : address.rindex(">")].strip()
        return f" (give the address alone: {inside!r}; the name has its own field)"
    if address.count("@") > 1 and any(sep in address for sep in ",; "):
        return " (one address here; copies go in --cc, or cc = [...] in a campaign)"
    return ""


def check_header_value(value: str, what: str) -> str:
    """Control characters or an encoded word in a header value would let text inject headers
    or a body: refuse them (the one rule, :func:`mailer.model.values.check_header`)."""
    return check_header(value, what, HEADER_MAX)


# The big providers' domains, for typo warnings. A fixed list: the check is offline, and a
# small company's domain close to one of these ("gmx.com") is not flagged unless it is a
# near miss of one that is far more common.
PROVIDER_DOMAINS = (
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "hotmail.com",
    "hotmail.co.uk",
    "hotmail.fr",
    "live.com",
    "live.co.uk",
    "msn.com",
    "yahoo.com",
    "yahoo.co.uk",
    "yahoo.fr",
    "yahoo.de",
    "ymail.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "aol.com",
    "proton.me",
    "protonmail.com",
    "protonmail.ch",
    "pm.me",
    "gmx.de",
    "gmx.net",
    "gmx.com",
    "web.de",
    "t-online.de",
    "mail.com",
    "email.com",
    "zoho.com",
    "fastmail.com",
    "yandex.com",
    "orange.fr",
    "free.fr",
    "btinternet.com",
    "comcast.net",
)


def typo_warning(address: str, what: str = "address") -> str:
    """ "did you mean gmail.com?" when the domain is a near miss of a big provider's; else "".

    A warning, never a refusal: a near miss may be a real domain (a small company's).
    """
    best = _near_provider(address.rpartition("@")[2].lower())
    return f"{what}: {address}: did you mean {best}?" if best else ""


@cache
def _near_provider(domain: str) -> str:
    """The provider domain ``domain`` is a near miss of, or "". Cached: a campaign writes to
    a handful of domains, many times each."""
    if not domain or domain in PROVIDER_DOMAINS:
        return ""
    # Only names within two letters of the length can be within two edits, the most any
    # limit allows; the nearest of the rest is too far whatever it is.
    near = [d for d in PROVIDER_DOMAINS if abs(len(d) - len(domain)) <= _MAX_EDITS]
    if not near:
        return ""
    best = min(near, key=lambda d: _distance(domain, d))
    # Two edits catch a swap ("gmial") and a slip ("gmai.lcom"); shorter names get fewer,
    # or "me.com" would flag every two-letter domain on .com ("mc.com" is a real one).
    limit = 0 if len(best) <= 6 else 1 if len(best) <= 8 else _MAX_EDITS
    return best if _distance(domain, best) <= limit else ""


_MAX_EDITS = 2


def _distance(a: str, b: str) -> int:
    """Edit distance where swapping two neighbouring letters counts as one edit."""
    rows = [list(range(len(b) + 1))]
    for i, ca in enumerate(a, 1):
        row = [i]
        for j, cb in enumerate(b, 1):
            cost = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cost = min(cost, rows[-2][j - 2] + 1)
            row.append(cost)
        rows.append(row)
    return rows[-1][-1]
