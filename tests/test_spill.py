"""A checked campaign past its first entries keeps their facts and messages in a temporary
file (mailer.adapters.spill): memory stays flat in the number of entries, and what is read
back to send is exactly what was checked."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import pytest

from mailer.adapters import claims as claims_module
from mailer.adapters import spill
from mailer.errors import MailerError
from mailer.services import campaign as campaign_module

from .test_campaign_file import load


def _entries(n: int) -> str:
    return "".join(
        f'\n[[entries]]\nto = "ana{i % 7}@sandbox.test"\ncompany = "Co {i:05d}"\n'
        f'interview = "2026-11-24 10:00"\nfree = ["2026-12-07 09:00-12:00"]\n'
        for i in range(n)
    )


def test_entries_past_the_first_are_put_aside_and_read_back_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole, _ = load(tmp_path / "a", _entries(6))
    monkeypatch.setattr(campaign_module, "IN_MEMORY", 2)
    spilled, _ = load(tmp_path / "b", _entries(6))
    assert not spilled.problems and len(spilled.entries) == 6
    assert [isinstance(e.held, tuple) for e in spilled.entries] == [True] * 2 + [False] * 4
    for a, b in zip(whole.entries, spilled.entries, strict=True):
        assert b.facts == a.facts
        # The bytes checked are the bytes sent: Message-ID, Date and all.
        assert b.message.raw == a.message.raw or (
            b.message.raw.replace(b.message.message_id.encode(), b"<id>")
            == a.message.raw.replace(a.message.message_id.encode(), b"<id>")
        )
        assert b.sendable().composed == b.message and b.prepared.draft.text
    # Read back twice, the same each time.
    assert spilled.entries[5].message == spilled.entries[5].message


def _held_per_entry(tmp_path: Path, n: int) -> float:
    """Bytes the campaign object holds per entry: freed when it is dropped (the apology
    check's caches, bounded, stay)."""
    load(tmp_path / "warm", _entries(50))  # caches filled, templates compiled
    gc.collect()
    tracemalloc.start()
    try:
        c, _ = load(tmp_path / "c", _entries(n))
        assert len(c.entries) == n and len(c.entries[0].message.raw) > 900
        gc.collect()
        with_it, _ = tracemalloc.get_traced_memory()
        del c
        gc.collect()
        without, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return (with_it - without) / n


def test_memory_held_per_entry_is_small_past_the_first_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a checked entry keeps in memory once its facts and message are put aside: its
    key, place and a pointer into the file; in memory they took several times that."""
    in_memory = _held_per_entry(tmp_path / "a", 300)
    monkeypatch.setattr(campaign_module, "IN_MEMORY", 0)
    put_aside = _held_per_entry(tmp_path / "b", 300)
    print(f"held per entry: {in_memory:.0f} B in memory, {put_aside:.0f} B put aside")
    assert put_aside < 800 and put_aside * 3 < in_memory


def test_a_temporary_file_that_cannot_be_written_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spill.tempfile, "TemporaryFile", full)
    with pytest.raises(MailerError, match="No space left on device") as caught:
        spill.Spill().put({"a": 1})
    assert "temporary file" in str(caught.value) and caught.value.hint


def test_a_temporary_file_that_cannot_be_read_back_is_one_clear_error() -> None:
    """Closed, or cut short: a clear error, never a traceback or a wrong message sent."""
    spilled = spill.Spill()
    first = spilled.put({"raw": b"x" * 100})
    spilled._file.truncate(50)
    with pytest.raises(MailerError, match="cannot read back the checked campaign"):
        first.get()
    spilled.close()
    with pytest.raises(MailerError, match="temporary file was closed"):
        first.get()


def test_an_entry_past_the_first_keeps_a_few_bytes_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the first entries, the entry itself is put aside too (its key, place, findings
    and a pointer to its facts and message): what stays in memory is where it is."""
    monkeypatch.setattr(campaign_module, "IN_MEMORY", 0)
    put_aside = _held_per_entry(tmp_path, 300)
    print(f"held per entry: {put_aside:.0f} B")
    assert put_aside < 120


def _load_peak(tmp_path: Path, n: int) -> int:
    """The traced peak of loading a campaign of ``n`` entries, above what was held before."""
    gc.collect()
    before, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    c, _ = load(tmp_path, _entries(n))
    _, peak = tracemalloc.get_traced_memory()
    assert len(c.entries) == n and not c.problems
    return peak - before


def test_loading_ten_times_the_entries_takes_about_the_same_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What loading a campaign takes at its peak grows little with its entries once they are
    past the first: the file is read an entry at a time, the keys and subjects go to a
    temporary database, the entries to the temporary file. (Measured: some 0.5-1.3 KB an
    entry more here, the bounded caches' churn and the collector's timing among it; the
    whole file parsed and each entry's key, place and subjects held were 2.4-3 KB.)"""
    monkeypatch.setattr(campaign_module, "IN_MEMORY", 20)
    monkeypatch.setattr(claims_module, "IN_MEMORY", 20)
    # Traced from the start: a cache's items made before would be freed untraced.
    tracemalloc.start()
    try:
        load(tmp_path / "warm", _entries(1100))  # the bounded caches filled
        small = _load_peak(tmp_path / "small", 40)
        large = _load_peak(tmp_path / "large", 400)
    finally:
        tracemalloc.stop()
    print(f"load peak: {small / 1e3:.0f} KB for 40 entries, {large / 1e3:.0f} KB for 400")
    assert large - small < 1900 * 360


def test_a_campaign_whose_entries_are_put_aside_runs_each_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify that entries read back from the temporary file are sent, each once, to their
    own recipients, and that what is left to send (pending) is read from the file too."""
    from mailer.adapters.config import load_settings
    from mailer.adapters.store import Store
    from mailer.services.history import pending

    from .test_throttle import START, FakeClock, FakeSession, run, workspace

    monkeypatch.setattr(campaign_module, "IN_MEMORY", 2)
    monkeypatch.setattr(FakeSession, "submitted", [])
    monkeypatch.setattr(FakeSession, "refuse", [])
    ws = workspace(tmp_path, "", entries=5)
    report = run(ws, FakeClock(START))
    assert report.count("sent") == 5
    assert sorted(r for _, (r,) in FakeSession.submitted) == [
        f"ana{n}@sandbox.test" for n in range(5)
    ]
    settings = load_settings(ws / "config" / "mailer.toml")
    c = campaign_module.load_campaign(ws / "config" / "campaigns" / "c.toml", settings, START)
    assert [isinstance(e.held, tuple) for e in c.entries] == [True] * 2 + [False] * 3
    store = Store(settings.state_url)
    try:
        assert len(pending(c, store)) == 0
        assert run(ws, FakeClock(START)).count("sent") == 0
    finally:
        store.close()
    assert len(FakeSession.submitted) == 5
