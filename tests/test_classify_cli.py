"""`mailer classify`: one line (or JSON object) per file, no network, no state."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import run_cli

HUMAN = b"From: Ana <ana@acme.example>\r\nSubject: Re: interview\r\n\r\nFriday works for me.\r\n"
OOO = (
    b"From: Ana <ana@acme.example>\r\nSubject: Out of Office: interview\r\n"
    b"Auto-Submitted: auto-replied\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\n"
    b"I am out of the office until 3 December 2026.\r\n"
)


def test_classify_prints_file_verdict_and_reason(tmp_path: Path) -> None:
    """Verify each file gets its verdict, and --json carries the return date."""
    (tmp_path / "h.eml").write_bytes(HUMAN)
    (tmp_path / "o.eml").write_bytes(OOO)
    r = run_cli(tmp_path, "classify", "h.eml", "o.eml")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("h.eml\thuman\t")
    assert lines[1].startswith("o.eml\tauto-reply/out-of-office\t")
    j = run_cli(tmp_path, "classify", "--json", "o.eml")
    assert json.loads(j.stdout)["results"][0]["return_date"] == "2026-12-03"


def test_classify_json_is_one_document_and_jsonl_one_object_a_line(tmp_path: Path) -> None:
    """Verify --json gives one parseable document for several files, --jsonl one per line."""
    (tmp_path / "h.eml").write_bytes(HUMAN)
    (tmp_path / "o.eml").write_bytes(OOO)
    j = run_cli(tmp_path, "classify", "--json", "h.eml", "o.eml")
    assert j.returncode == 0, j.stderr
    document = json.loads(j.stdout)  # the whole output is one document
    assert document["version"] == 1
    assert [(r["file"], r["kind"]) for r in document["results"]] == [
        ("h.eml", "human"),
        ("o.eml", "auto-reply"),
    ]
    lines = run_cli(tmp_path, "classify", "--jsonl", "h.eml", "o.eml").stdout.splitlines()
    assert [json.loads(line)["file"] for line in lines] == ["h.eml", "o.eml"]
    both = run_cli(tmp_path, "classify", "--json", "--jsonl", "h.eml")
    assert both.returncode == 2 and "do not go together" in both.stderr


def test_classify_unreadable_file_is_one_line_and_non_zero(tmp_path: Path) -> None:
    """Verify a missing file is named, the others still classified, exit code 2."""
    (tmp_path / "h.eml").write_bytes(HUMAN)
    r = run_cli(tmp_path, "classify", "missing.eml", "h.eml")
    assert r.returncode == 2
    assert r.stderr.strip() == "mailer: error: missing.eml: cannot read: No such file or directory"
    assert "h.eml\thuman" in r.stdout
