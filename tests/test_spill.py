"""A checked campaign past its first entries keeps their facts and messages in a temporary
file (mailer.adapters.spill): memory stays flat in the number of entries, and what is read
back to send is exactly what was checked."""

from __future__ import annotations

import gc
import os
import tracemalloc
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mailer.adapters import spill
from mailer.adapters.config import printable
from mailer.errors import MailerError
from mailer.services import campaign as campaign_module

from .test_campaign_file import load

NOON = datetime(2026, 11, 24, 12, 0)  # the first entry's interview; one minute apart after


def _entries(n: int) -> str:
    return "".join(
        f'\n[[entries]]\nto = "ana{i % 7}@sandbox.test"\ncompany = "Co {i:05d}"\n'
        f'interview = "{NOON + timedelta(minutes=i):%Y-%m-%d %H:%M}"\n'
        'free = ["2026-12-07 09:00-12:00"]\n'
        for i in range(n)  # (each its own time: one person at one time is one interview)
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
    monkeypatch.setattr(campaign_module, "IN_MEMORY", 20)  # (the claims' bound too)
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


class _FillingFile:
    """A temporary file on a disk that fills up after the first write: every later write,
    flush and close fails as a full disk does (what was buffered cannot be written)."""

    def __init__(self, make: Any) -> None:
        self.inner = make()
        self.writes = 0

    def write(self, data: bytes) -> int:
        self.writes += 1
        if self.writes > 1:
            raise OSError(28, "No space left on device")
        return int(self.inner.write(data))

    def flush(self) -> None:
        if self.writes > 1:
            raise OSError(28, "No space left on device")
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()
        if self.writes > 1:
            raise OSError(28, "No space left on device")

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_a_disk_that_fills_up_while_the_campaign_is_put_aside_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify a temporary file whose writes start failing once it exists (a full disk) ends
    the load with the one clear line, not with the close's own failure as an internal
    error."""
    real = spill.tempfile.TemporaryFile
    monkeypatch.setattr(spill.tempfile, "TemporaryFile", lambda *a, **k: _FillingFile(real))
    monkeypatch.setattr(campaign_module, "IN_MEMORY", 2)
    with pytest.raises(MailerError, match="cannot keep the checked campaign") as caught:
        load(tmp_path, _entries(8))
    assert "No space left on device" in str(caught.value) and caught.value.hint


def test_keys_and_subjects_past_the_first_are_told_as_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify that once the keys and subjects moved to the temporary database, a duplicate
    key is reported with the same "also at" as when they are in memory, and a repeated
    subject is still refused; also for a folder whose name is not UTF-8 (lone surrogates)."""
    twice = '\n[[entries]]\nkey = "same"\nto = "bo@sandbox.test"\ncompany = "X"\n'
    body = _entries(6) + twice + 'interview = "2026-11-24 10:00"\n'
    body += twice + 'interview = "2026-11-25 10:00"\n'
    odd = tmp_path / os.fsdecode(b"caf\xe9")  # (a folder name that is not UTF-8)
    whole, _ = load(tmp_path / "a", body)
    monkeypatch.setattr(campaign_module, "IN_MEMORY", 1)
    spilled, _ = load(odd, body)
    assert len(whole.problems) == 1  # the repeated key
    subjects = [e.message.subject for e in whole.entries]
    assert [e.message.subject for e in spilled.entries] == subjects
    shown = [p.replace(str(tmp_path / "a"), "WS") for p in whole.problems]
    assert [p.replace(printable(str(odd)), "WS") for p in spilled.problems] == shown
    assert any("duplicate key 'same' (also at" in p for p in spilled.problems)
