"""Address and header-value checks, shared by config, composer and campaigns."""

from __future__ import annotations

from mailer.errors import InputError
from mailer.model.values import ADDRESS_MAX, HEADER_MAX, check_header


def validate_address(
    address: str, *, allow_test_domains: bool = False, what: str = "address"
) -> str:
    """Return the normalised address, or raise InputError saying what is wrong with it.

    No DNS lookups: a check must not depend on the network, and mail to a domain with
    flaky DNS is the SMTP server's call, not ours.
    """
    from email_validator import EmailNotValidError, validate_email

    check_header(address, what, ADDRESS_MAX)
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
        raise InputError(f"{what}: invalid email address {address!r}: {exc}") from None
    # An internationalised domain travels as punycode (xn--...), which every server accepts.
    return result.ascii_email or result.normalized


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
    domain = address.rpartition("@")[2].lower()
    if not domain or domain in PROVIDER_DOMAINS:
        return ""
    # No name more than two letters longer or shorter can be within two edits: skipping them
    # keeps a long hostile domain from costing an edit-distance table per provider.
    scored = [
        (_distance(domain, d), i)
        for i, d in enumerate(PROVIDER_DOMAINS)
        if abs(len(d) - len(domain)) <= 2
    ]
    if not scored:
        return ""
    distance, index = min(scored)  # the nearest; on a tie, the first in the list
    best = PROVIDER_DOMAINS[index]
    # Two edits catch a swap ("gmial") and a slip ("gmai.lcom"); shorter names get fewer,
    # or "me.com" would flag every two-letter domain on .com ("mc.com" is a real one).
    limit = 0 if len(best) <= 6 else 1 if len(best) <= 8 else 2
    if distance > limit:
        return ""
    return f"{what}: {address}: did you mean {best}?"


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
