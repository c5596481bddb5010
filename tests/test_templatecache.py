"""Compiled templates kept between runs (issue #14): a second run loads what the first
compiled, and whatever changed in between (the template, our code generator, the options)
or whatever happened to the cache, the text is what a fresh compile gives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from jinja2 import StrictUndefined

from mailer.adapters.templatecache import TemplateCache, cache_dir, template_cache
from mailer.model.composer import Composer

OPTIONS = {"undefined": StrictUndefined, "trim_blocks": True}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "mailer" / "templates"


def _render(templates: Path, name: str = "mine.txt.j2", **variables: str) -> str:
    draft = Composer(templates, compiled_cache=template_cache).render(name, variables)
    return f"{draft.subject}|{draft.text}"


def _compiled_anew(templates: Path, name: str = "mine.txt.j2", **variables: str) -> str:
    draft = Composer(templates).render(name, variables)
    return f"{draft.subject}|{draft.text}"


def test_a_second_run_loads_the_compiled_template_and_renders_the_same(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify the first run writes the compiled template, and a second one renders from it
    without compiling (the same text as a fresh compile)."""
    (tmp_path / "mine.txt.j2").write_text("Subject: Hello {{ who }}\n\nHi {{ who }}.\n")
    first = _render(tmp_path, who="Ana")
    assert len(list(cache.glob("*.jinja"))) == 1
    compiled: list[str] = []
    monkeypatch.setattr(
        "mailer.model.templating.TemplateEnvironment.compile",
        lambda self, *a, **k: compiled.append("x"),
    )
    assert _render(tmp_path, who="Ana") == first == "Hello Ana|Hi Ana.\n"
    assert compiled == []


def test_an_edited_template_is_compiled_again(cache: Path, tmp_path: Path) -> None:
    """Verify a template changed since it was cached renders its new text."""
    path = tmp_path / "mine.txt.j2"
    path.write_text("Subject: One\n\nfirst {{ who }}\n")
    assert _render(tmp_path, who="Ana") == "One|first Ana\n"
    path.write_text("Subject: Two\n\nsecond {{ who }}\n")
    assert _render(tmp_path, who="Ana") == _compiled_anew(tmp_path, who="Ana")
    assert _render(tmp_path, who="Ana") == "Two|second Ana\n"


def test_a_damaged_or_unwritable_cache_still_renders(cache: Path, tmp_path: Path) -> None:
    """Verify a cache file that is not a compiled template, or a cache directory that cannot
    be made, leaves the text as a fresh compile gives it."""
    (tmp_path / "mine.txt.j2").write_text("Subject: Hi\n\n{{ who }} {{ 2 + 3 }}\n")
    expected = _compiled_anew(tmp_path, who="Ana")
    _render(tmp_path, who="Ana")
    for kept in cache.glob("*.jinja"):
        kept.write_bytes(b"not a compiled template at all")
    assert _render(tmp_path, who="Ana") == expected
    for kept in cache.glob("*.jinja"):
        kept.write_bytes(kept.read_bytes()[:40])  # cut short after the header
    assert _render(tmp_path, who="Ana") == expected
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache directory would go")
    os.environ["XDG_CACHE_HOME"] = str(blocked)  # (the fixture's monkeypatch restores it)
    assert _render(tmp_path, who="Ana") == expected


def test_another_compiler_or_other_options_never_share_a_compiled_template(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify the cache key names the code generator and the environment's options, not
    only the template (Jinja2's own key): a change to either compiles anew."""
    key = template_cache(OPTIONS).get_cache_key("mine.txt.j2", "/t/mine.txt.j2")  # type: ignore[union-attr]
    other_options = template_cache({**OPTIONS, "trim_blocks": False})
    assert other_options is not None
    assert other_options.get_cache_key("mine.txt.j2", "/t/mine.txt.j2") != key
    real_read = Path.read_bytes
    monkeypatch.setattr(
        Path,
        "read_bytes",
        lambda self: (
            real_read(self) + b"# changed" if self.name == "templating.py" else real_read(self)
        ),
    )
    changed = template_cache(OPTIONS)
    assert changed is not None and changed.get_cache_key("mine.txt.j2", "/t/mine.txt.j2") != key


def test_the_cache_lives_in_the_users_cache_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify XDG_CACHE_HOME places it, and a relative one is ignored as the spec says."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "mailer" / "templates"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "mailer" / "templates"
    assert isinstance(template_cache(OPTIONS), TemplateCache)


def test_entries_left_unwritten_for_a_month_are_removed_when_another_is_written(
    cache: Path, tmp_path: Path
) -> None:
    """Verify the cache does not grow for ever: writing an entry removes those last written
    more than 30 days ago (another version's, a removed template's), and keeps the recent."""
    cache.mkdir(parents=True)
    old, recent = cache / "old.jinja", cache / "recent.jinja"
    for entry in (old, recent):
        entry.write_bytes(b"stale")
    month_ago = os.stat(old).st_mtime - 31 * 24 * 3600
    os.utime(old, (month_ago, month_ago))
    (tmp_path / "mine.txt.j2").write_text("Subject: Hello {{ who }}\n\nHi {{ who }}.\n")
    assert _render(tmp_path, who="Ana") == "Hello Ana|Hi Ana.\n"
    kept = {p.name for p in cache.glob("*.jinja")}
    assert "old.jinja" not in kept and "recent.jinja" in kept and len(kept) == 2


def test_pruning_removes_only_cache_entries_and_a_missing_directory_is_no_error(
    tmp_path: Path,
) -> None:
    from mailer.adapters.templatecache import prune

    assert prune(tmp_path / "no such directory", older_than=1e12) == 0
    (tmp_path / "a.jinja").write_bytes(b"x")
    (tmp_path / "keep.txt").write_bytes(b"not ours")
    assert prune(tmp_path, older_than=1e12) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
