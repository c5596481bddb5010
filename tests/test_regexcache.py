"""Compiled regexes kept between runs (issue #14): the pattern from the cache is the one
``re.compile`` makes, whatever happened to the cache."""

from __future__ import annotations

import marshal
import os
import re
from pathlib import Path

import pytest

from mailer.adapters import regexcache
from mailer.adapters.regexcache import compiled
from mailer.model import lint

SAMPLES = [
    (r"\b(?:sorry|apolog\w*|regret\w*)\b", re.IGNORECASE),
    (r"(?P<kind>[\w-]+) bounce(?: (?P<status>\d\.\d{1,3}\.\d{1,3}))?(?:: (?P<text>.*))?", re.S),
    (r"(?<![\s,])[\s,]++(?:ltd|inc)\.", 0),
    (r"^\s*(?:[-*•–]|\d+[.)])\s+", re.M),
]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "mailer" / "regex"


def _same(a: re.Pattern[str], b: re.Pattern[str]) -> bool:
    # Pattern equality compares the source, the flags and the compiled program.
    return a == b and a.groupindex == b.groupindex and a.groups == b.groups


@pytest.mark.parametrize(("pattern", "flags"), SAMPLES)
def test_a_kept_regex_is_the_one_re_compile_makes(
    cache: Path, pattern: str, flags: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify the first use keeps the program and a second one builds the same pattern
    from it, without compiling."""
    first = compiled(pattern, flags)
    assert _same(first, re.compile(pattern, flags)) and len(list(cache.iterdir())) == 1
    monkeypatch.setattr(re, "compile", lambda *a: pytest.fail("compiled again"))
    assert _same(compiled(pattern, flags), first)


def test_every_regex_of_the_apology_check_comes_back_the_same(cache: Path) -> None:
    """Verify each of the check's regexes, the big gates included, made from the cache is
    equal to the one re.compile makes (and finds the same things)."""
    text = "I am so sorry, I was ill. Please reschedule ASAP, your directions were wrong."
    for name in lint._LAZY:
        lint._get(name)  # (built before: the test only needs the sources)
    sources = [(p.pattern, p.flags) for p in _patterns(vars(lint).values())]
    assert len(sources) > 40
    for pattern, flags in sources:
        compiled(pattern, flags)  # kept
    for pattern, flags in sources:
        again = compiled(pattern, flags)
        assert _same(again, re.compile(pattern, flags))
        assert again.findall(text) == re.compile(pattern, flags).findall(text)


def _patterns(values: object) -> list[re.Pattern[str]]:
    found: list[re.Pattern[str]] = []
    for v in values:  # type: ignore[attr-defined]
        if isinstance(v, re.Pattern):
            found.append(v)
        elif isinstance(v, tuple):
            found += _patterns(v)
        elif hasattr(v, "regex") and isinstance(v.regex, re.Pattern):
            found.append(v.regex)
    return found


def test_a_damaged_swapped_or_unwritable_cache_still_gives_the_right_regex(
    cache: Path, tmp_path: Path
) -> None:
    """Verify a cut or garbled file, another regex's file under this one's name, and a
    cache directory that cannot be made all give re.compile's pattern."""
    (p1, f1), (p2, f2) = SAMPLES[0], SAMPLES[1]
    compiled(p1, f1), compiled(p2, f2)
    by_source = {marshal.loads(p.read_bytes())[0]: p for p in cache.iterdir()}
    one, two = by_source[p1], by_source[p2]
    one.write_bytes(two.read_bytes())  # another regex's program under this one's key
    assert _same(compiled(p1, f1), re.compile(p1, f1))
    one.write_bytes(b"\x00garbage")
    assert _same(compiled(p1, f1), re.compile(p1, f1))
    two.write_bytes(two.read_bytes()[:20])
    assert _same(compiled(p2, f2), re.compile(p2, f2))
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache directory would go")
    os.environ["XDG_CACHE_HOME"] = str(blocked)  # (the fixture's monkeypatch restores it)
    assert _same(compiled(SAMPLES[2][0], SAMPLES[2][1]), re.compile(*SAMPLES[2]))
    assert regexcache.cache_dir() == blocked / "mailer" / "regex"
