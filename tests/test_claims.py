"""The claims a campaign's entries make while it loads (mailer.adapters.claims): the same
answers before and after they move into the temporary database, whatever its filter says."""

from __future__ import annotations

import pytest

from mailer.adapters import claims as claims_module
from mailer.adapters.claims import Claims


def _claim_many(c: Claims, n: int) -> None:
    for i in range(n):
        assert c.claim_key(f"key-{i}", f"c.toml:{i}") is None
        assert not c.subject_taken(f"Ana{i}@Example.org", f"Subject {i}")
        c.claim_subject(f"Ana{i}@Example.org", f"Subject {i}")


@pytest.mark.parametrize("n", [3, 40, 1500], ids=["in memory", "moved", "many batches"])
def test_an_earlier_claim_is_found_wherever_it_is_kept(n: int) -> None:
    """Verify every key claimed earlier is refused with the place of the entry that claimed
    it, and every subject claimed earlier is taken (its address without case), whether the
    claims are still in memory, moved to the database, or written there in batches."""
    c = Claims(in_memory=10)
    try:
        _claim_many(c, n)
        assert (c._db is not None) == (n > 3)
        for i in range(n):
            assert c.claim_key(f"key-{i}", "c.toml:999999") == f"c.toml:{i}"
            assert c.subject_taken(f"ana{i}@example.ORG", f"Subject {i}")
        assert c.claim_key(f"key-{n}", "c.toml:new") is None
        assert not c.subject_taken("ana0@example.org", "Subject 1")
        assert not c.subject_taken("ana1@example.org", "subject 1")  # (a subject keeps its case)
    finally:
        c.close()


def test_a_claim_the_filter_cannot_tell_from_another_is_asked_of_the_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Verify that when the filter says "perhaps" for everything (every claim colliding, as
    a few do by chance), the database's answer decides: new claims are new, old ones old."""
    monkeypatch.setattr(claims_module, "_FILTER_BITS", 8)  # one byte: soon all set
    c = Claims(in_memory=10)
    try:
        _claim_many(c, 600)
        assert c._filter == bytearray(b"\xff")
        assert c.claim_key("key-5", "c.toml:x") == "c.toml:5"
        assert c.claim_key("key-new", "c.toml:x") is None
        assert c.subject_taken("ana7@example.org", "Subject 7")
        assert not c.subject_taken("ana7@example.org", "Subject 8")
    finally:
        c.close()
