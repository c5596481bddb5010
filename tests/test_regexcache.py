"""The apology check's regexes kept compiled between runs: a regex built from a kept program
is the very regex re.compile makes, and a cache that cannot be read, trusted or written is
no cache."""

from __future__ import annotations

import marshal
import re
from pathlib import Path

import pytest

from mailer.adapters import regexcache
from mailer.adapters.regexcache import RegexCache, regex_cache
from mailer.model import lint
from mailer.model.lint import lint_apology

# Texts that reach every check: each letter at a word start (the tone gate compiles an
# alternation per letter), and the bad phrases each rule looks for.
TEXTS = [
    " ".join(f"{c}x {c.upper()}y" for c in "abcdefghijklmnopqrstuvwxyz"),
    "I need you to reply ASAP. It was not my fault: your email was wrong. So very sorry. "
    "The traffic was terrible, nothing I could do, to be fair. The interview was missed. "
    "[Your Name] {{ x }} TBD FIRST_NAME. I could not attend.\n\n- item\n> quoted",
]


def check_patterns(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every (pattern, flags) the check compiles, from scratch (its regexes built again)."""
    seen: list[tuple[str, int]] = []

    def record(pattern: str, flags: int = 0) -> re.Pattern[str]:
        seen.append((pattern, int(flags)))
        return re.compile(pattern, flags)

    for name in lint._LAZY:
        monkeypatch.delitem(vars(lint), name, raising=False)
    previous = lint.use_regex_compiler(record)
    try:
        for name in lint._LAZY:
            lint._get(name)
        for text in TEXTS:
            lint_apology("Sorry", text, company="Acme", role="Data Engineer", note="x", past=True)
    finally:
        lint.use_regex_compiler(previous)
    assert len(seen) > 30
    return seen


def test_every_check_regex_built_from_a_kept_program_is_the_one_re_compile_makes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify each regex of the check, compiled once through the cache and saved, is built
    from its kept program by a new cache (a later run) and equals re.compile's: same
    pattern, flags and program (a Pattern compares them all)."""
    patterns = check_patterns(monkeypatch)
    path = tmp_path / "programs.marshal"
    first = RegexCache(path)
    for pattern, flags in patterns:
        assert first.compile(pattern, flags) == re.compile(pattern, flags)
    first.save()
    later = RegexCache(path)
    for pattern, flags in patterns:
        assert (pattern, flags) in later._programs()
        built = later.compile(pattern, flags)
        assert built == re.compile(pattern, flags)
        assert built.groupindex == re.compile(pattern, flags).groupindex


def test_the_check_finds_the_same_with_its_regexes_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify the findings on texts that trip every rule are the same when the check's
    regexes come from kept programs as when re.compile makes them."""
    path = tmp_path / "programs.marshal"
    expected = [lint_apology("Sorry", t, company="Acme", role="Data Engineer") for t in TEXTS]
    warm = RegexCache(path)
    check_patterns(monkeypatch)  # (clears the built regexes; the fixture restores them)
    for name in lint._LAZY:
        monkeypatch.delitem(vars(lint), name, raising=False)
    previous = lint.use_regex_compiler(warm.compile)
    try:
        for text in TEXTS:
            lint_apology("Sorry", text, company="Acme", role="Data Engineer")
    finally:
        lint.use_regex_compiler(previous)
    warm.save()
    for name in lint._LAZY:
        monkeypatch.delitem(vars(lint), name, raising=False)
    cached = RegexCache(path)
    previous = lint.use_regex_compiler(cached.compile)
    try:
        found = [lint_apology("Sorry", t, company="Acme", role="Data Engineer") for t in TEXTS]
    finally:
        lint.use_regex_compiler(previous)
    assert cached._programs() and not cached._new  # every regex came from the file
    assert found == expected


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not ours\n" + marshal.dumps({}),
        b"mailer-regexcache-1\n\x00garbage",
        b"mailer-regexcache-1\n" + marshal.dumps([1, 2, 3]),
        # A program the engine refuses, and one for another pattern's groups.
        b"mailer-regexcache-1\n"
        + marshal.dumps({(r"\bsorry\b", 2): (2, [999999], 0, {}, (None,))}),
        b"mailer-regexcache-1\n" + marshal.dumps({(r"\bsorry\b", 2): ("x", [], 0, {}, ())}),
    ],
    ids=["empty", "foreign", "damaged", "not-a-table", "refused-program", "bad-types"],
)
def test_a_damaged_or_foreign_file_is_no_cache(tmp_path: Path, content: bytes) -> None:
    """Verify a file that is empty, not ours, damaged, or holds a program the engine refuses
    gives the regex re.compile makes, without an error."""
    path = tmp_path / "programs.marshal"
    path.write_bytes(content)
    assert RegexCache(path).compile(r"\bsorry\b", re.I) == re.compile(r"\bsorry\b", re.I)


def test_an_unwritable_cache_is_no_cache(tmp_path: Path) -> None:
    """Verify a cache whose folder cannot be made compiles as usual and saves nothing,
    without an error."""
    blocked = tmp_path / "file"
    blocked.write_text("a file where the folder would be")
    cache = RegexCache(blocked / "regex" / "programs.marshal")
    assert cache.compile("a+b", 0) == re.compile("a+b")
    cache.save()
    assert blocked.is_file()


def test_the_file_keeps_at_most_max_programs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify no more than MAX_PROGRAMS programs are kept, whatever is compiled."""
    monkeypatch.setattr(regexcache, "MAX_PROGRAMS", 3)
    path = tmp_path / "programs.marshal"
    cache = RegexCache(path)
    for i in range(10):
        cache.compile(f"a{i}+b", 0)
    cache.save()
    assert len(RegexCache(path)._programs()) == 3


def test_the_file_is_named_for_the_python_that_compiled_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify the cache lives under XDG_CACHE_HOME, in a file whose name changes with the
    Python version and build, so that another Python never reads its programs."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache = regex_cache()
    assert cache is not None and cache.path.parent == tmp_path / "mailer" / "regex"
    monkeypatch.setattr("sys.version", "3.99.0 (another build)")
    other = regex_cache()
    assert other is not None and other.path != cache.path


def test_loading_a_campaign_keeps_the_programs_and_the_next_load_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify loading a campaign writes the check's programs to the user's cache, and a
    later load (as a later run would) builds every regex it needs from them, with the same
    findings, and puts re.compile back for the rest of the process."""
    from .test_campaign_file import ENTRY
    from .test_campaign_file import load as load_campaign_file

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    body = ENTRY + ENTRY.replace('"Acme"', '"Initech"')
    for name in lint._LAZY:
        monkeypatch.delitem(vars(lint), name, raising=False)
    first, _ = load_campaign_file(tmp_path, body)
    kept = regex_cache()
    assert kept is not None and len(kept._programs()) > 20
    for name in lint._LAZY:
        monkeypatch.delitem(vars(lint), name, raising=False)
    compiled: list[tuple[str, int]] = []
    original = re.compile

    def spy(pattern: str, flags: int = 0) -> re.Pattern[str]:
        compiled.append((pattern, int(flags)))
        return original(pattern, flags)

    monkeypatch.setattr(regexcache.re, "compile", spy)
    second, _ = load_campaign_file(tmp_path, body)
    monkeypatch.setattr(regexcache.re, "compile", original)
    assert first.problems == second.problems == []
    assert [e.findings for e in second.entries] == [e.findings for e in first.entries]
    assert compiled == []  # every regex of the check built from its kept program
    assert lint._COMPILE[0] is re.compile
