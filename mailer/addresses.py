"""Address and header-value checks, shared by config, composer and campaigns."""

from __future__ import annotations

from .errors import InputError
from .values import ADDRESS_MAX, HEADER_MAX, check_header


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
    or a body: refuse them (the one rule, :func:`mailer.values.check_header`)."""
    return check_header(value, what, HEADER_MAX)
