"""Reading untrusted mail within fixed bounds: an excerpt of a raw message, a header value,
an address.

Pure. Anyone can put anything in our INBOX, and the watcher reads every new message there;
so what it reads must cost work proportional to a fixed budget, never to what the sender
chose. The email library's parser is not bounded (a 30 MB ``message/delivery-status`` part
becomes millions of objects, a 50 MB message took 550 MB) and ``parseaddr`` recurses once per
nested comment. :func:`excerpt` finds the MIME structure with ``bytes.find`` alone and keeps
the headers plus a prefix of each part, a well-formed message the classifier can then parse
in bounded time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message
from email.utils import getaddresses, parseaddr

__all__ = [
    "LIMITS",
    "Excerpt",
    "Limits",
    "excerpt",
    "header_text",
    "parse_address",
    "parse_addresses",
]


@dataclass(frozen=True)
class Limits:
    """What one excerpt may keep and look at. Every loop below is bounded by one of these."""

    part_bytes: int = 64 * 1024  # body prefix kept per MIME part
    header_bytes: int = 64 * 1024  # header kept per entity (a message or a part)
    header_scan: int = 1024 * 1024  # header looked at per entity: fields after it are lost
    field_bytes: int = 8 * 1024  # one header field
    # Content-* fields are parsed for parameters, quadratically in the number of quotes.
    content_field_bytes: int = 1024
    fields: int = 500  # header fields looked at per entity
    repeats: int = 50  # fields of one name kept per entity
    parts: int = 100  # MIME entities visited
    depth: int = 8  # nesting of multiparts and attached messages
    total: int = 512 * 1024  # everything kept
    delimiters: int = 2_000  # boundary candidates looked at per multipart


LIMITS = Limits()
# A comment nested deeper than this is hostile: parseaddr recurses once per level.
_MAX_COMMENT_DEPTH = 4
_MAX_ADDRESS_VALUE = 16_000  # looked at, comments included
_MAX_PARSED = 2_000  # given to parseaddr, whose work grows faster than the length
_ANGLE_ADDRESS = re.compile(r"<\s*([^<>\s@]+@[^<>\s@]+?)\s*>")
_BARE_ADDRESS = re.compile(r"(?<![^\s<>,;:\"()])([^\s<>,;:\"()@]+@[^\s<>,;:\"()@]+)")
_CONTENT_FIELDS = (b"content-type", b"content-disposition", b"content-transfer-encoding")
_CONTAINERS = ("message/rfc822", "message/global")
# Where a header field ends: a line break not followed by folding white space.
_FIELD_BREAK = re.compile(rb"\n(?![ \t])")
# How far from an entity's start its empty line is looked for before the rest is searched.
_NEAR = 64 * 1024


@dataclass
class Excerpt:
    """A well-formed message made of the original's headers and part prefixes, and what
    making it cost (the bounds the tests check)."""

    data: bytes = b""
    parts: int = 0  # MIME entities visited
    fields: int = 0  # header fields looked at
    kept: int = 0  # bytes kept from the original
    truncated: bool = False  # something was left out
    limits: Limits = field(default=LIMITS, repr=False)

    def room(self) -> int:
        return max(self.limits.total - self.kept, 0)


def excerpt(raw: bytes, limits: Limits = LIMITS) -> Excerpt:
    """The headers and a bounded prefix of each part of ``raw``, as a message of at most
    about ``limits.total`` bytes. Costs at most a few ``find`` passes over ``raw`` plus work
    bounded by ``limits``, whatever the input."""
    out = Excerpt(limits=limits)
    data = raw if isinstance(raw, bytes) else bytes(raw)
    out.data = _entity(data, 0, len(data), 0, out)
    return out


def _entity(raw: bytes, start: int, end: int, depth: int, out: Excerpt) -> bytes:
    """One message or part, kept within the limits; b"" once they are used up."""
    limits = out.limits
    if out.parts >= limits.parts or depth > limits.depth or out.room() == 0:
        out.truncated = True
        return b""
    out.parts += 1
    hend, bstart = _header_end(raw, start, end)
    head, ctype, boundary = _header(raw, start, hend, out)
    if ctype.startswith("multipart/") and boundary:
        spans = _split(raw, bstart, end, boundary, out)
        if spans:  # else a broken multipart: the parser reads its body as text
            children = (_entity(raw, s, e, depth + 1, out) for s, e in spans)
            body = b"".join(b"--" + boundary + b"\r\n" + c + b"\r\n" for c in children if c)
            return head + b"\r\n" + body + b"--" + boundary + b"--\r\n"
    if ctype in _CONTAINERS:
        return head + b"\r\n" + _entity(raw, bstart, end, depth + 1, out)
    return head + b"\r\n" + _prefix(raw, bstart, end, out)


def _header_end(raw: bytes, start: int, end: int) -> tuple[int, int]:
    """(end of the header block, start of the body): the first empty line. Looked for near
    the start first, so a small header before a huge body costs no pass over the body."""
    if raw.startswith(b"\n", start, end):
        return start, start + 1
    if raw.startswith(b"\r\n", start, end):
        return start, start + 2
    near = min(end, start + _NEAR)
    found = _blank_line(raw, start, near)
    if found is None and near < end:
        found = _blank_line(raw, max(near - 2, start), end)
    return found or (end, end)


def _blank_line(raw: bytes, start: int, end: int) -> tuple[int, int] | None:
    lf = raw.find(b"\n\n", start, end)
    crlf = raw.find(b"\n\r\n", start, lf + 1 if lf >= 0 else end)
    if crlf >= 0:
        return crlf + 1, crlf + 3
    if lf >= 0:
        return lf + 1, lf + 2
    return None


def _header(raw: bytes, start: int, end: int, out: Excerpt) -> tuple[bytes, str, bytes]:
    """The kept header fields, the content type and the multipart boundary."""
    limits = out.limits
    kept: list[bytes] = []
    size = 0
    seen: dict[bytes, int] = {}
    content_type = b""
    pos = start
    looked = 0
    scan_end = min(end, start + limits.header_scan)
    while pos < scan_end and looked < limits.fields:
        looked += 1
        found = _FIELD_BREAK.search(raw, pos, scan_end)
        stop = found.end() if found else scan_end
        colon = raw.find(b":", pos, min(stop, pos + 100))
        name = raw[pos:colon].strip().lower() if colon >= 0 else b""
        cap = limits.content_field_bytes if name in _CONTENT_FIELDS else limits.field_bytes
        text = raw[pos : min(stop, pos + cap)].rstrip(b"\r\n")
        count = seen[name] = seen.get(name, 0) + 1
        room = min(limits.header_bytes, out.room()) - size
        if stop - pos > cap or count > limits.repeats or len(text) + 2 > room:
            out.truncated = True
        if count <= limits.repeats and len(text) + 2 <= room:
            kept.append(text + b"\r\n")
            size += len(text) + 2
            if name == b"content-type" and not content_type:
                content_type = text
        pos = stop
    if pos < end:
        out.truncated = True
    out.fields += looked
    out.kept += size
    ctype, boundary = _content_type(content_type)
    return b"".join(kept), ctype, boundary


def _content_type(field: bytes) -> tuple[str, bytes]:
    """(type, boundary) from a raw Content-Type field, as the email library reads them."""
    if not field:
        return "text/plain", b""
    msg = Message()
    msg["Content-Type"] = " ".join(field.partition(b":")[2].decode("latin-1").split())
    boundary = msg.get_boundary() or ""
    ok = 0 < len(boundary) <= 200 and boundary.isascii()
    return msg.get_content_type(), boundary.encode("ascii") if ok else b""


def _split(
    raw: bytes, start: int, end: int, boundary: bytes, out: Excerpt
) -> list[tuple[int, int]]:
    """The (start, end) of each part between delimiter lines, up to the close delimiter.
    The body starts right after a line break, so every delimiter is found as "\\n--b"."""
    limits = out.limits
    marker = b"\n--" + boundary
    spans: list[tuple[int, int]] = []
    opened = -1  # where the current part's content starts
    pos = max(start - 1, 0)
    looked = 0
    while (hit := raw.find(marker, pos, end)) >= 0:
        looked += 1
        if looked > limits.delimiters or len(spans) >= limits.parts:
            out.truncated = True
            break
        after = hit + len(marker)
        line_end = raw.find(b"\n", after, min(end, after + 200))
        tail = raw[after : line_end if line_end >= 0 else min(end, after + 200)]
        closing = tail.startswith(b"--")
        if (tail[2:] if closing else tail).strip(b" \t\r") or (line_end < 0 and after + 200 < end):
            pos = after  # "--boundaryX...": not a delimiter
            continue
        if opened >= 0:
            stop = hit - 1 if hit > opened and raw[hit - 1] == 13 else hit  # 13: CR
            spans.append((opened, max(stop, opened)))
        if closing or line_end < 0:
            return spans
        opened = line_end + 1
        pos = line_end  # the next delimiter may start on the very next line
    if opened >= 0:
        spans.append((opened, end))  # no close delimiter: the last part runs to the end
    return spans


def _prefix(raw: bytes, start: int, end: int, out: Excerpt) -> bytes:
    """At most ``part_bytes`` of a body, cut at a line end; a cut line that could read as a
    boundary delimiter is dropped."""
    take = min(end - start, out.limits.part_bytes, out.room())
    body = raw[start : start + take]
    if take < end - start:
        out.truncated = True
        cut = body.rfind(b"\n")
        if cut >= 0:
            body = body[: cut + 1]
        elif body.startswith(b"--"):
            body = b""
    out.kept += len(body)
    return body


def header_text(value: object, limit: int) -> str:
    """At most ``limit`` characters of a raw header value, before any decoding: decoding
    RFC 2047 words costs time in the length of what is decoded. Without NULs (see
    :func:`without_nul`)."""
    return without_nul(str(value)[:limit])


def without_nul(text: str) -> str:
    """``text`` with each NUL (from a server that passes raw bytes) made U+FFFD: no address
    or Message-ID of ours has one, so what held one stays unlike ours, and PostgreSQL
    refuses a NUL in text, which would fail every pass that records the message."""
    return text.replace("\x00", "\ufffd")


def parse_address(value: str) -> tuple[str, str]:
    """``parseaddr`` that never raises and costs bounded work. ``parseaddr`` recurses once
    per nested comment and per group colon (a From: of 1,000 ``(`` or ``:`` exhausts the
    stack) and slows with length: deep comments are removed first (they never hold the
    address), and what is still too long or too deep is read by a linear pattern."""
    text = _uncommented(value[:_MAX_ADDRESS_VALUE])
    if len(text) <= _MAX_PARSED:
        try:
            return parseaddr(text)
        except Exception:  # RecursionError on nested groups; any other surprise alike
            pass
    found = _bare_addresses(text)
    return "", found[-1] if found else ""


def parse_addresses(values: list[str]) -> list[tuple[str, str]]:
    """``getaddresses`` on each value, bounded and never raising, as :func:`parse_address`."""
    out: list[tuple[str, str]] = []
    for value in values[:50]:
        text = _uncommented(value[:_MAX_ADDRESS_VALUE])
        try:
            if len(text) > _MAX_PARSED:
                raise ValueError("too long to parse")
            out.extend(getaddresses([text]))
        except Exception:
            out.extend(("", addr) for addr in _bare_addresses(text))
    return out


def _uncommented(text: str) -> str:
    # count() first: most values have no comment, and the scan below is a Python loop.
    if text.count("(") > _MAX_COMMENT_DEPTH and _comment_depth(text) > _MAX_COMMENT_DEPTH:
        return _without_comments(text)
    return text


def _bare_addresses(text: str) -> list[str]:
    """Addresses in angle brackets, else bare ones: each pattern starts only where a token
    starts, so a search stays linear."""
    return _ANGLE_ADDRESS.findall(text) or _BARE_ADDRESS.findall(text)


def _comment_depth(text: str) -> int:
    if "(" not in text:
        return 0
    depth = deepest = 0
    for ch in text:
        if ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")" and depth:
            depth -= 1
    return deepest


def _without_comments(text: str) -> str:
    """``text`` with its (nested) parenthesised comments removed, quoted strings kept."""
    kept: list[str] = []
    depth = 0
    quoted = escaped = False
    for ch in text:
        if escaped:
            escaped = False
            if depth == 0:
                kept.append(ch)
        elif ch == "\\":
            escaped = True
            if depth == 0:
                kept.append(ch)
        elif quoted:
            kept.append(ch)
            quoted = ch != '"'
        elif ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
            if depth == 0:
                kept.append(" ")
        elif depth == 0:
            kept.append(ch)
            quoted = ch == '"'
    return "".join(kept)
