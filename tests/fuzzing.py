"""Hypothesis strategies for the input fuzzers: hostile values, TOML text written from
Python values (so structured mutations of a valid file stay parseable), and raw text.

Shared by test_fuzz_config.py and test_fuzz_campaign.py.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from hypothesis import strategies as st

# Fixed seed, no example database, no per-example deadline (the first load imports Babel
# and holidays): every run tries the same cases, in a bounded time.
FUZZ = {"derandomize": True, "database": None, "deadline": None}
MIN_CASES = 1000


@dataclass(frozen=True)
class Raw:
    """TOML text put in as it is (nesting far deeper than a Python value could be printed)."""

    text: str


UNITS = ["s", "seconds", "min", "minutes", "h", "hours", "d", "days", "w", "weeks"]
WAIT_UNITS = [*UNITS, "business days", "business day", "fortnights", "²", "days\x00", ""]

# Values that broke (or would break) the code after validation: NUL and other controls,
# Unicode digits, header injection, encoded words, numbers beyond every range, odd paths.
ODD_STRINGS = [
    "",
    " ",
    "\t",
    "\x00",
    "a\x00b",
    "\x1b[31m",
    "\x7f",
    "\u0085",
    "\u202e",
    "²",
    "٣",
    "１２",
    "nan",
    "inf",
    "-inf",
    "-1",
    "0",
    "1" + "0" * 400,
    "1e400",
    "Hello\r\nBcc: x@example.org",
    "Hello\n\nInjected",
    "=?utf-8?q?Ivy=0D=0AReply-To:_x@y?=",
    "~no-such-user/ca.pem",
    "../../../../etc/passwd",
    "/dev/null",
    "x" * 5000,
    "xx_YY",
    "en_GB",
    "Mars/Olympus",
    "Europe/London",
    "GB",
    "ZZ",
    "always",
    "24:00-09:00",
    "09:00-17:00",
    "fri-mon",
    "mon-fri",
    "",
    "you@sandbox.test",
    "you@@sandbox.test",
    "[Your Name]",
    "localhost",
    "127.0.0.1",
    "::1",
    "mail.example.org",
    "smtp.example.com",
    "sqlite:///state.db",
    "postgresql://x/y",
    "2026-11-24 10:00",
    "2026-02-30 10:00",
    "9999-12-31 23:59",
    "0001-01-01 00:00",
    "300/hour",
    "1e9/min",
]

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=24)
numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, -1, 5, 6, 10, 65535, 65536, 2**63 - 1, -(2**63), 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
)
durations = st.builds(
    lambda n, u: f"{n} {u}",
    st.one_of(
        st.integers(-5, 10**30),
        st.floats(allow_nan=True, allow_infinity=True).map(lambda x: f"{x}"),
        st.sampled_from(["²", "٣", "1" + "0" * 400, "0.0001", "3000000", "1000000"]),
    ),
    st.sampled_from(WAIT_UNITS),
)
scalars = st.one_of(
    st.sampled_from(ODD_STRINGS),
    text,
    durations,
    numbers,
    st.booleans(),
    st.datetimes(timezones=st.none() | st.timezones()),
    st.dates(),
    st.times(),
)


def deep(depth: int, kind: str) -> Raw:
    if kind == "array":
        return Raw("[" * depth + "]" * depth)
    return Raw("{a=" * depth + "1" + "}" * depth)


nested = st.builds(
    deep,
    st.one_of(st.integers(2, 40), st.sampled_from([17, 300, 1000, 5000])),
    st.sampled_from(["array", "table"]),
)
# Values near the edges that validation should accept: these must then work all the way.
plausible = st.one_of(
    st.builds(
        lambda n, u: f"{n} {u}",
        st.integers(1, 400),
        st.sampled_from(["s", "minutes", "hours", "days", "weeks", "business days"]),
    ),
    st.sampled_from(["365 days", "52 weeks", "260 business days", "1s", "86400s", "1 day"]),
    st.integers(0, 700),
    st.floats(0.001, 700),
    st.text("abcdefghijklmnopqrstuvwxyz ÄéЖ中-_.", min_size=1, max_size=12),
    st.sampled_from(
        [
            "en_US",
            "de_DE",
            "ar",
            "zh_Hans_CN",
            "sr_Latn",
            "Pacific/Apia",
            "America/St_Johns",
            "Asia/Kathmandu",
            "US",
            "DE",
            "always",
            "00:00-24:00",
            "23:59-24:00",
            "sat,sun",
            "sun",
            "sqlite:///other.db",
            "gmail",
            "plain",
            "ssl",
        ]
    ),
)
keys = st.one_of(st.sampled_from(["name", "x", "", "\x00", "wait", "vars"]), text)
values = st.one_of(
    plausible,
    plausible,
    scalars,
    scalars,
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(keys, scalars, max_size=3),
    nested,
)


# --- TOML writing ----------------------------------------------------------------------------


def toml_string(s: str) -> str:
    # JSON escapes are TOML escapes, except that TOML also wants DEL and C1 controls escaped.
    out = json.dumps(s, ensure_ascii=False)
    return "".join(f"\\u{ord(c):04x}" if 0x7F <= ord(c) <= 0x9F else c for c in out)


def toml_value(v: Any) -> str:
    if isinstance(v, Raw):
        return v.text
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, datetime):
        if v.tzinfo is not None and v.utcoffset() is None:
            v = v.replace(tzinfo=None)
        offset = v.utcoffset()
        if offset is not None and offset.seconds % 60:  # TOML offsets are whole minutes
            v = v.replace(tzinfo=None)
        return v.isoformat()
    if isinstance(v, date | time):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_string(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def toml_document(doc: dict[str, Any]) -> str:
    """Top-level values first, then ``[table]`` and ``[[array of tables]]`` sections, with
    nested tables written as sections too, as people write them."""
    lines: list[str] = []
    sections: list[tuple[list[str], Any]] = []
    for k, v in doc.items():
        if isinstance(v, dict) or (
            isinstance(v, list) and v and all(isinstance(x, dict) for x in v)
        ):
            sections.append(([k], v))
        else:
            lines.append(f"{toml_string(k)} = {toml_value(v)}")
    while sections:
        path, v = sections.pop(0)
        name = ".".join(toml_string(p) for p in path)
        tables = v if isinstance(v, list) else [v]
        for table in tables:
            lines.append(f"[[{name}]]" if isinstance(v, list) else f"[{name}]")
            for k, x in table.items():
                if isinstance(x, dict) and isinstance(v, dict) and x:
                    sections.append(([*path, k], x))
                else:
                    lines.append(f"{toml_string(k)} = {toml_value(x)}")
    return "\n".join(lines) + "\n"


# --- mutations of a valid document ---------------------------------------------------------


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    items = (
        doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    )
    for k, v in items:
        out.append((*prefix, k))
        out += _paths(v, (*prefix, k))
    return out


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


@st.composite
def mutated(
    draw: st.DrawFn,
    base: dict[str, Any],
    protected: tuple[str, ...] = (),
    pool: st.SearchStrategy[Any] = values,
    changes: int = 4,
    only_values: bool = False,
) -> dict[str, Any]:
    """``base`` with one to ``changes`` changes: a value replaced by one from ``pool``, a key
    deleted, or an unknown key added (``only_values``: a setting's value replaced, nothing
    else). Tables named in ``protected`` are left alone."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, changes))):
        paths = [p for p in _paths(doc) if p[0] not in protected]
        if only_values:
            paths = [p for p in paths if not isinstance(_at(doc, p), dict | list)]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _at(doc, path[:-1])
        action = "set" if only_values else draw(st.sampled_from(["set"] * 3 + ["delete", "add"]))
        if action == "set":
            parent[path[-1]] = draw(pool)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(keys)] = draw(pool)
    return doc


@st.composite
def raw_edits(draw: st.DrawFn, valid: str) -> str:
    """``valid`` TOML text with a few characters inserted, deleted or replaced."""
    out = valid
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(out)))
        j = draw(st.integers(i, min(len(out), i + 8)))
        out = (
            out[:i]
            + draw(st.sampled_from(["", "[", "]", '"', "=", "\n", "\x00", "²", "{", "#"]) | text)
            + out[j:]
        )
    return out
