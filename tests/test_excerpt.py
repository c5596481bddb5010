"""Hostile messages cost bounded work: the excerpt the classifier reads, header values,
addresses (issue #10, items 8 and 9). Bounds are asserted as bytes, parts and fields, never
as times; ``bench/classify_bench.py`` measures the times."""

from __future__ import annotations

import email
import email.header
import os
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailer.model import classify as classify_module
from mailer.model.classify import classify, classify_message, original_message_ids
from mailer.model.excerpt import LIMITS, Limits, excerpt, parse_address, parse_addresses
from mailer.model.matching import Incoming

OURS = "you@example.com"
OUR_ID = "<apology-1@example.com>"
MB = 1_000_000
# What the excerpt adds to the bytes it keeps: a delimiter line and a CRLF or two per part.
FRAMING = LIMITS.parts * (2 * 200 + 16)
TOKENS = (b"Status: ", b"5.1.1 ", b"https://", b"Re: ", b"=?utf-8?q?abc?= ", b"(", b"<a@b> ")


# --------------------------------------------------------------------------------------------
# Builders: the shapes from the issue, and the same attacks with other inputs


def _head(subject: bytes = b"Undelivered Mail Returned to Sender", extra: bytes = b"") -> bytes:
    return (
        b"From: MAILER-DAEMON@mx.example\r\nTo: " + OURS.encode() + b"\r\n"
        b"Subject: " + subject + b"\r\nMIME-Version: 1.0\r\n" + extra
    )


def _dsn(
    status_part: bytes, text: bytes = b"This is the mail system.\r\n", tail: bytes = b""
) -> bytes:
    return (
        _head()
        + b'Content-Type: multipart/report; report-type=delivery-status; boundary="BB"\r\n\r\n'
        b"--BB\r\nContent-Type: text/plain\r\n\r\n" + text + b"\r\n"
        b"--BB\r\nContent-Type: message/delivery-status\r\n\r\n" + status_part + b"\r\n"
        b"--BB\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        b"From: " + OURS.encode() + b"\r\nMessage-ID: " + OUR_ID.encode() + b"\r\n" + tail + b"\r\n"
        b"--BB--\r\n"
    )


def _repeat(token: bytes, size: int) -> bytes:
    return token * (size // len(token))


def _blocks(size: int) -> bytes:
    block = (
        b"Final-Recipient: rfc822; gone@company.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
    )
    return b"Reporting-MTA: dns; mx.example\r\n\r\n" + _repeat(block, size)


def _parts(count: int) -> bytes:
    one = b"--BB\r\nContent-Type: text/plain\r\n\r\nStatus: 5.1.1\r\n"
    return (
        _head()
        + b'Content-Type: multipart/mixed; boundary="BB"\r\n\r\n'
        + one * count
        + b"--BB--\r\n"
    )


def _nested(depth: int) -> bytes:
    """``depth`` multiparts, each the only part of the one around it."""
    opens = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(depth)
    )
    closes = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(depth)))
    return _head() + opens + b"Content-Type: text/plain\r\n\r\nuser unknown\r\n" + closes


def _shapes() -> dict[str, Callable[[int], bytes]]:
    """Every shape, by name, built at a given size: the issue's, and each token in each
    place. Built one at a time: together they would hold 150 MB for the whole test run."""
    shapes: dict[str, Callable[[int], bytes]] = {
        "delivery-status blocks": lambda n: _dsn(_blocks(n)),
        "subject of encoded words": lambda n: _head(_repeat(b"=?utf-8?q?abc?= ", n)) + b"\r\n",
        "folded subject": lambda n: _head(_repeat(b"=?utf-8?q?abc?=\r\n ", n)) + b"\r\n",
        "header repetitions": lambda n: _head(extra=_repeat(b"Status: 5.1.1\r\n", n)) + b"\r\n",
        "many parts": lambda n: _parts(n // 50),
        "deep nesting": lambda n: _nested(min(n // 200, 5_000)),
        "one huge line": lambda n: _head() + b"\r\n" + b"x" * n + b"\r\n",
        "returned original": lambda n: _dsn(_blocks(1000), tail=b"\r\n" + _repeat(b"Re: ", n)),
    }
    for token in TOKENS:
        name = token.decode().strip()
        shapes |= {
            f"{name} in the subject": lambda n, t=token: _head(_repeat(t, n)) + b"\r\nhi\r\n",
            f"{name} in the body": lambda n, t=token: _head() + b"\r\n" + _repeat(t, n),
            f"{name} in a report": lambda n, t=token: _dsn(_repeat(t, n)),
            f"{name} in the text": lambda n, t=token: _dsn(_blocks(200), text=_repeat(t, n)),
            f"{name} lines in a report": lambda n, t=token: _dsn(_repeat(t + b"\r\n", n)),
            f"{name} in From": lambda n, t=token: (
                b"From: " + _repeat(t, n // 10) + b"\r\nSubject: hi\r\n\r\nhi\r\n"
            ),
        }
    return shapes


SHAPES = _shapes()


class Spy:
    """Records the length of what a function is given, then calls it."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.sizes: list[int] = []

    def __call__(self, value: Any, *args: Any, **kwargs: Any) -> Any:
        self.sizes.append(len(value) if isinstance(value, bytes | str) else len(str(value)))
        return self.fn(value, *args, **kwargs)


# --------------------------------------------------------------------------------------------
# Bounds


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_parser_and_the_header_decoder_get_bounded_input(
    shape: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify a 3 MB hostile message reaches the email parser as at most the excerpt
    budget, and no header value reaches the RFC 2047 decoder longer than 16,000 chars."""
    parse = Spy(email.message_from_bytes)
    decode = Spy(email.header.decode_header)
    monkeypatch.setattr(email, "message_from_bytes", parse)
    monkeypatch.setattr(classify_module, "decode_header", decode)
    raw = SHAPES[shape](3 * MB)
    verdict = classify(raw)
    original_message_ids(raw)
    assert not verdict.reason.startswith("unparseable"), verdict
    assert parse.sizes and max(parse.sizes) <= LIMITS.total + FRAMING
    assert max(decode.sizes, default=0) <= 16_000


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_excerpt_stays_within_its_limits(shape: str) -> None:
    """Verify parts visited, header fields looked at and bytes kept stay within the limits."""
    got = excerpt(SHAPES[shape](3 * MB))
    assert got.parts <= LIMITS.parts
    assert got.fields <= LIMITS.parts * LIMITS.fields
    assert got.kept <= LIMITS.total
    assert len(got.data) <= got.kept + FRAMING


def test_a_30_mb_delivery_status_part_is_read_as_its_first_64_kb() -> None:
    """Verify the issue's 30 MB message/delivery-status: 3 parts visited, at most 64 KB of the
    report kept, and still a hard bounce for the recipient it names."""
    raw = _dsn(_blocks(30 * MB))
    got = excerpt(raw)
    assert got.parts == 4 and got.truncated
    assert got.kept <= 3 * LIMITS.part_bytes + LIMITS.header_bytes
    verdict = classify(raw)
    assert (verdict.kind, verdict.subtype) == ("bounce", "hard")
    assert verdict.failed_recipients == ("gone@company.example",)
    assert original_message_ids(raw) == {OUR_ID}


def test_parts_and_nesting_beyond_the_limits_are_not_visited() -> None:
    """Verify 20,000 parts or 5,000 levels of nesting cost at most the part and depth caps."""
    assert excerpt(_parts(20_000)).parts == LIMITS.parts
    deep = excerpt(_nested(5_000))
    assert deep.parts == LIMITS.depth + 1


def test_header_repetitions_are_capped_per_name() -> None:
    """Verify 200,000 copies of one header field keep at most ``repeats`` of them."""
    raw = _head(extra=_repeat(b"Auto-Submitted: auto-replied\r\n", 6 * MB)) + b"\r\nhi\r\n"
    got = excerpt(raw)
    msg = email.message_from_bytes(got.data, policy=compat32)
    assert len(msg.get_all("Auto-Submitted")) == LIMITS.repeats
    assert got.fields == LIMITS.fields


def test_memory_stays_a_small_fraction_of_the_message() -> None:
    """Verify classifying a 20 MB report allocates under a quarter of its size at peak (the
    whole-message parse took eleven times the size)."""
    raw = _dsn(_blocks(20 * MB))
    tracemalloc.start()
    try:
        classify(raw)
        original_message_ids(raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < len(raw) / 4


def test_limits_are_honoured_when_set_lower() -> None:
    """Verify the limits are parameters, not constants: a smaller budget keeps less."""
    small = Limits(part_bytes=1024, total=4096, parts=3)
    got = excerpt(_dsn(_blocks(MB)), small)
    assert got.parts == 3 and got.kept <= 4096


# --------------------------------------------------------------------------------------------
# What the rules need is kept


def test_later_parts_are_read_after_a_huge_first_part() -> None:
    """Verify a 5 MB notification text does not hide the report and the original behind it."""
    raw = _dsn(_blocks(2000), text=b"The mail system could not deliver.\r\n" * 150_000)
    verdict = classify(raw)
    assert verdict.kind == "bounce" and verdict.failed_recipients == ("gone@company.example",)
    assert original_message_ids(raw) == {OUR_ID}


def _corpus() -> list[Path]:
    configured = os.environ.get("MAILER_CORPUS")
    root = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
    return sorted((Path(configured) if configured else root).rglob("*.eml"))


def test_the_excerpt_changes_no_verdict_on_the_corpus() -> None:
    """Verify every labelled corpus message gets the same verdict and original IDs from the
    excerpt as from the whole message."""
    paths = _corpus()
    if not paths:
        pytest.skip("labelled corpus not found (set MAILER_CORPUS)")
    for path in paths:
        raw = path.read_bytes()
        whole = email.message_from_bytes(raw, policy=compat32)
        assert classify(raw) == classify_message(whole), path
        assert original_message_ids(raw) == original_message_ids(whole), path


_FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300)


@_FAST
@given(
    body=_TEXT,
    subject=_TEXT,
    status=st.sampled_from(["5.1.1", "4.2.2", "2.0.0", ""]),
    action=st.sampled_from(["failed", "delayed", "delivered", ""]),
    shape=st.sampled_from(["plain", "alternative", "report", "attached"]),
)
def test_the_excerpt_of_a_small_message_reads_like_the_whole(
    body: str, subject: str, status: str, action: str, shape: str
) -> None:
    """Verify for small messages of every structure: the excerpt gives the same verdict and
    original IDs as the whole message."""
    msg = EmailMessage()
    msg["From"] = "MAILER-DAEMON@mx.example" if shape == "report" else "rita@company.example"
    msg["To"] = OURS
    msg["Subject"] = " ".join(subject.split()) or "hello"
    msg["In-Reply-To"] = OUR_ID
    msg.set_content(body or "x")
    if shape == "alternative":
        msg.add_alternative(f"<p>{body}</p>", subtype="html")
    elif shape in ("report", "attached"):
        report = EmailMessage()
        report.set_content(
            f"Final-Recipient: rfc822; gone@company.example\nAction: {action}\nStatus: {status}\n"
        )
        msg.add_attachment(report.get_payload(), subtype="delivery-status", disposition="inline")
        original = EmailMessage()
        original["Message-ID"] = OUR_ID
        original.set_content(body or "x")
        msg.add_attachment(original)
    raw = bytes(msg)
    whole = email.message_from_bytes(raw, policy=compat32)
    assert classify(raw) == classify_message(whole)
    assert original_message_ids(raw) == original_message_ids(whole)


# --------------------------------------------------------------------------------------------
# Addresses and the watcher's header read


RITA = "rita@company.example"


@pytest.mark.parametrize(
    ("value", "sender"),
    [
        ("(" * 1000 + ")" * 1000 + f" <{RITA}>", RITA),
        ("Rita " + "(\\(" * 3000 + ")" * 3000 + f" <{RITA}>", RITA),
        ('"a(b" ' + "((" * 2000 + "))" * 2000 + f" <{RITA}>", RITA),
        (":" * 3000 + f" <{RITA}>", RITA),  # groups nest in parseaddr too
        ("(" * 50_000 + f" <{RITA}>", ""),  # never closed: all of it is a comment
    ],
)
def test_nested_comments_in_from_do_not_exhaust_the_stack(value: str, sender: str) -> None:
    """Verify a From: of thousands of nested parentheses (or group colons) is read by the
    watcher's header parse and by the classifier, not a RecursionError on every pass."""
    header = f"From: {value}\r\nSubject: x\r\nIn-Reply-To: {OUR_ID}\r\n\r\n".encode()
    msg = BytesHeaderParser(policy=compat32).parsebytes(header)
    incoming = Incoming.from_headers(msg, datetime(2026, 11, 25, tzinfo=UTC))
    assert incoming.sender == sender
    assert incoming.refs == (OUR_ID,)
    assert parse_address(value)[1] == sender
    verdict = classify(header + b"Thanks, see you Friday.\r\n")
    assert verdict.kind == "human" and not verdict.reason.startswith("unparseable"), verdict


@_FAST
@given(st.text(alphabet='()<>"\\@a ,;:\r\n\t', max_size=3000), st.integers(0, 3000))
def test_address_parsing_never_raises(value: str, depth: int) -> None:
    """Verify any mix of comments, quotes and brackets, nested to any depth, parses."""
    value = "(" * depth + value
    parse_address(value)
    parse_addresses([value, value])


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Subject", "=?utf-8?q?abc?= " * 100_000),
        ("Subject", "Re: " * 750_000),
        ("References", "<a@b> " * 500_000 + OUR_ID),
        ("Message-ID", "<" * 1_000_000),
        ("Content-Type", 'multipart/report; a="' * 100_000),
    ],
)
def test_the_watchers_header_read_is_bounded(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify a 3 MB header value reaches the decoder cut to 2,000 chars, and the nearest
    reference (the last one) is still found."""
    decode = Spy(email.header.decode_header)
    monkeypatch.setattr(email.header, "decode_header", decode)
    header = f"From: rita@company.example\r\n{name}: {value}\r\n\r\n".encode()
    msg = BytesHeaderParser(policy=compat32).parsebytes(header)
    incoming = Incoming.from_headers(msg, datetime(2026, 11, 25, tzinfo=UTC))
    assert max(decode.sizes, default=0) <= 2_000
    assert len(incoming.subject) <= 2_000
    if name == "References":
        assert incoming.refs[-1] == OUR_ID
