"""The ways a second copy of an apology could go out, closed: concurrent resends, the same
interview written in another zone, a store that "forgets" (issue #10, items 1-3)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailer.adapters import store as store_mod
from mailer.adapters.store import IN_DOUBT, SENT, SUBMITTING, Store
from mailer.errors import ClaimError

from .conftest import Pair, run_cli
from .test_followup import _apology_copies, _crashed_send, status

T0 = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def _live_foreign_owner() -> str:
    """The owner token of a process that is alive and is not this one (our parent)."""
    ppid = os.getppid()
    return f"{socket.gethostname()}:{store_mod._boot_id()}:{ppid}:{store_mod._start_time(ppid)}"


def one_queued_apology(tmp_path: Path) -> tuple[Store, int]:
    """A fresh store holding one thread whose apology is queued: (store, message row)."""
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    facts = {"to": "a@b.test", "interviewer": "A", "company": "C", "role": "R"}
    facts |= {"situation": "illness", "interview": T0.isoformat()}
    _, mid = store.create_thread(
        now=T0,
        facts=facts,
        key="k",
        subject="s",
        message_id="<m@x>",
        raw=b"x",
        envelope_from="me@x.test",
        recipients=("a@b.test",),
        follow_up_wait="1d",
        max_follow_ups=1,
        guard_duplicates=True,
    )
    return store, mid


@pytest.mark.process
@pytest.mark.integration
def test_parallel_resends_of_one_in_doubt_apology_deliver_one_copy(pair: Pair) -> None:
    """Verify five `resolve --resend` runs at once, on a slow server, deliver exactly one copy
    and the others stop before MAIL FROM without claiming to have failed after DATA."""
    thread = _crashed_send(pair, "after-final-dot")
    assert _apology_copies(pair) == 0
    (apology,) = [m for m in status(pair, thread)["messages"] if m["kind"] == "apology"]
    mark = pair.stack.log_mark()
    # A slow login (longer than a process's start-up on a busy machine), so all five pass
    # their first look at the row before any of them claims it.
    pair.stack.set_faults(ehlo_delay=[1.5] * 40)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("MAILER_") or k == "MAILER_CORPUS"
    }
    env["MAILER_NOW"] = (T0 + timedelta(seconds=5)).isoformat()
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "mailer.cli.main", "resolve", str(thread), "--resend"],
                cwd=pair.ws,
                env=env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
            )
            for _ in range(5)
        ]
        results = [(p.wait(timeout=60), *p.communicate()) for p in procs]
    finally:
        pair.stack.clear_faults()
    accepted = [
        e
        for e in pair.stack.log_since(mark)
        if e["event"] == "accepted" and e["message_id"] == apology["message_id"]
    ]
    assert len(accepted) == 1, accepted
    assert len(pair.stack.messages_with_id(pair.interviewer, apology["message_id"])) == 1
    assert [rc for rc, _, _ in results].count(0) == 1, results
    for rc, _out, err in results:
        assert "refusing to mark" not in err
        assert "Traceback" not in err
        if rc != 0:
            assert "not sent" in err or "no message in doubt" in err, err
    s = status(pair, thread)
    assert s["state"] == "awaiting_reply"


def test_a_row_a_live_process_is_sending_cannot_be_claimed(tmp_path) -> None:
    """Verify a submitting row held by another live process is refused to every path that
    would send it (resend, the queued->submitting step) or settle it (--sent)."""
    store, mid = one_queued_apology(tmp_path)
    with store.tx() as c:
        c.exec_driver_sql(
            "UPDATE messages SET state = ?, owner = ? WHERE id = ?",
            (SUBMITTING, _live_foreign_owner(), mid),
        )
    with pytest.raises(ClaimError, match="another mailer process"):
        store.claim_resend(mid, T0, ("sending",))
    with pytest.raises(ClaimError, match="another mailer process"):
        store.mark_submitting(mid, T0)
    with pytest.raises(ClaimError, match="another mailer process"):
        store.mark_sent(mid, T0, "confirmed by you", None, settling=True)
    assert store.message(mid).state == SUBMITTING
    # Once that process is gone (an in-doubt row), exactly one claim wins.
    with store.tx() as c:
        c.exec_driver_sql("UPDATE messages SET state = ?, owner = '' WHERE id = ?", (IN_DOUBT, mid))
    store.claim_resend(mid, T0, ("sending",))
    assert store.message(mid).state == SUBMITTING
    store.mark_sent(mid, T0, "250 ok", None)
    with pytest.raises(ClaimError, match="no longer in doubt"):
        store.claim_resend(mid, T0, ("sending", "awaiting_reply"))
    assert store.message(mid).state == SENT


@pytest.mark.integration
def test_the_same_interview_with_the_company_spelt_otherwise_is_a_duplicate(pair: Pair) -> None:
    """Verify a second `send` to the same interviewer for the same time is refused (exit 7,
    naming the first thread's company) when only the company's spelling differs; --again
    still sends on purpose."""
    args = ["--situation", "illness", "--to", pair.interviewer, "--interviewer", "Ana Ruiz"]
    args += ["--role", "Engineer", "--interview", "2026-11-25 09:00", "--yes"]
    first = run_cli(pair.ws, "send", *args, "--company", "Acme")
    assert first.returncode == 0, first.stderr
    for spelling in ("Acme.", "ACME Ltd", "Acme, Inc"):
        again = run_cli(pair.ws, "send", *args, "--company", spelling)
        assert again.returncode == 7, again.stdout + again.stderr
        assert "already holds an apology" in again.stderr and "(at Acme)" in again.stderr
    assert _apology_copies(pair) == 1
    forced = run_cli(pair.ws, "send", *args, "--company", "Acme Ltd", "--again")
    assert forced.returncode == 0, forced.stderr
    assert _apology_copies(pair) == 2


# --- item 2: one interview, whatever zone it was written in --------------------------------


def _set_sender_zone(ws, zone: str) -> None:
    cfg = ws / "config" / "mailer.toml"
    text = cfg.read_text(encoding="utf-8")
    cfg.write_text(
        re.sub(r'timezone = "[^"]*"', f'timezone = "{zone}"', text, count=1), encoding="utf-8"
    )


@pytest.mark.integration
def test_the_same_instant_in_another_zone_is_a_duplicate(pair: Pair) -> None:
    """Verify an apology for 09:00 UTC is refused as a duplicate when the same interview is
    written as 10:00 after [sender] timezone changed to Europe/Berlin."""
    _set_sender_zone(pair.ws, "UTC")
    args = ["--situation", "illness", "--to", pair.interviewer, "--interviewer", "Ana Ruiz"]
    args += ["--company", "Zoned Ltd", "--role", "Engineer", "--yes"]
    first = run_cli(pair.ws, "send", *args, "--interview", "2026-11-25 09:00")
    assert first.returncode == 0, first.stderr
    _set_sender_zone(pair.ws, "Europe/Berlin")
    second = run_cli(pair.ws, "send", *args, "--interview", "2026-11-25 10:00")
    assert second.returncode == 7, second.stdout + second.stderr
    assert "already holds an apology" in second.stderr
    assert _apology_copies(pair) == 1


def test_keys_name_the_instant_in_utc() -> None:
    """Verify the duplicate key and a campaign's derived entry key are the same for one
    instant written with different offsets, and differ for different instants."""
    from zoneinfo import ZoneInfo

    from mailer.model.keys import dedupe_key

    utc = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    berlin = datetime(2026, 12, 1, 10, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    tokyo = datetime(2026, 12, 1, 18, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    for key in (lambda to, when, *a: dedupe_key(to, when, *a), derive_key_co):
        assert key("A@x.test", utc) == key("a@x.test", berlin) == key("a@x.test", tokyo)
        assert key("a@x.test", utc) != key("a@x.test", utc + timedelta(hours=1))
        assert key("a@x.test", utc, "bea") != key("a@x.test", berlin)


def derive_key_co(to: str, when: datetime, account: str = "") -> str:
    from mailer.model.keys import derive_key

    return derive_key(to, "Co", when, account)


def test_the_duplicate_key_leaves_the_company_out() -> None:
    """Verify one recipient at one instant is one interview however the company is spelt
    (each spelling used to make a key of its own, and a second apology went), and that the
    recipient, the instant and the account still tell interviews apart."""
    from mailer.model.keys import dedupe_key

    when = datetime(2026, 12, 10, 10, 0, tzinfo=UTC)
    spellings = ["Acme", "ACME", "Acme.", "Acme Ltd", "Acme, Inc", "Acme Corporation", "Acne"]
    assert {dedupe_key("ana@acme.test", when) for _ in spellings} == {
        dedupe_key("Ana@Acme.test", when)
    }
    assert dedupe_key("ana@acme.test", when) != dedupe_key("bo@acme.test", when)
    assert dedupe_key("ana@acme.test", when) != dedupe_key("ana@acme.test", when, "bea")


def _v2_store(path) -> None:
    """A store as mailer 0.1 left it (schema 2), with its offset-keeping keys."""
    import sqlite3

    from mailer.model.keys import legacy_derive_key

    db = sqlite3.connect(path)
    for step in store_mod.MIGRATIONS[:2]:
        for statement in step:  # type: ignore[union-attr]
            db.execute(statement)
    db.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    rows = [
        ("2026-12-01T09:00:00+00:00", None, None),
        ("2026-12-01T10:00:00+01:00", None, None),  # the same instant: slipped through
        ("2026-12-02T10:00:00+01:00", "spring", "legacy"),
        ("2026-12-03T10:00:00+01:00", "spring", "mine"),  # a key the user gave: kept
    ]
    for n, (when, campaign, entry) in enumerate(rows, 1):
        legacy = "|".join(("a@x.test", "co", when))
        if entry == "legacy":
            entry = legacy_derive_key("a@x.test", "Co", datetime.fromisoformat(when))
        db.execute(
            """INSERT INTO threads (created_at, recipient, recipient_name, company, role,
               situation, interview_at, dedupe_key, facts, subject, root_message_id, state,
               follow_up_wait, max_follow_ups, campaign, entry_key)
               VALUES ('2026-11-01T00:00:00+00:00', 'a@x.test', 'A', 'Co', 'R', 'illness', ?,
               ?, '{}', 's', ?, 'awaiting_reply', '3d', 1, ?, ?)""",
            (when, legacy, f"<{n}@x>", campaign, entry),
        )
    db.commit()
    db.close()


def test_migration_moves_stored_keys_to_utc_and_reports_duplicates(tmp_path) -> None:
    """Verify opening a schema-2 store rewrites every key in UTC (derived entry keys too,
    given ones kept), and reports, without failing, two apologies for one instant."""
    from mailer.model.keys import derive_key

    db = tmp_path / "state.db"
    _v2_store(db)
    store = Store(f"sqlite:///{db}")
    t1, t2, t3, t4 = store.threads()
    # (written by migration 3 with the company, then by revision 0007 without it)
    assert t1.dedupe_key == t2.dedupe_key == "a@x.test|2026-12-01T09:00:00+00:00"
    assert t3.entry_key == derive_key("a@x.test", "Co", datetime(2026, 12, 2, 9, tzinfo=UTC))
    assert t4.entry_key == "mine"
    (notice,) = store.notices
    assert "threads 1, 2" in notice and "same interview" in notice
    assert any(e["kind"] == "duplicate" for e in store.events(1))
    assert any(e["kind"] == "duplicate" for e in store.events(2))
    assert store.store_id
    reopened = Store(f"sqlite:///{db}")
    assert reopened.notices == [] and reopened.store_id == store.store_id


# --- item 3: a store that "forgets" ----------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("damage", ["empty", "foreign", "deleted", "url-moved"])
def test_a_store_that_forgot_is_refused_and_nothing_is_sent_again(pair: Pair, damage: str) -> None:
    """Verify a state store that was truncated to 0 bytes, replaced by another file, deleted,
    or left behind by a state.url edit, is refused with one clear line, and the apology is
    not sent a second time."""
    args = ["--situation", "illness", "--to", pair.interviewer, "--interviewer", "Ana Ruiz"]
    args += ["--company", "Forgetful Ltd", "--role", "Engineer", "--yes"]
    args += ["--interview", "2026-11-25 10:00"]
    first = run_cli(pair.ws, "send", *args)
    assert first.returncode == 0, first.stderr
    db = pair.ws / ".mailer" / "state.db"
    for side in (Path(f"{db}-wal"), Path(f"{db}-shm")):
        side.unlink(missing_ok=True)
    if damage == "empty":
        db.write_bytes(b"")
    elif damage == "foreign":
        db.write_bytes(b"my notes, synced by accident\n")
    elif damage == "deleted":
        db.unlink()
    else:
        cfg = pair.ws / "config" / "mailer.toml"
        cfg.write_text(
            cfg.read_text(encoding="utf-8") + '\n[state]\nurl = "sqlite:///.mailer/other.db"\n',
            encoding="utf-8",
        )
    again = run_cli(pair.ws, "send", *args)
    assert again.returncode != 0
    assert "Traceback" not in again.stderr
    (line,) = again.stderr.strip().splitlines()
    assert line.startswith("mailer: error: ") and ("state" in line)
    status_run = run_cli(pair.ws, "status")
    assert status_run.returncode != 0
    assert _apology_copies(pair) == 1


def test_a_foreign_sqlite_database_is_not_taken_for_a_store(tmp_path) -> None:
    """Verify a SQLite file with someone else's tables is refused, and none of ours are
    added to it."""
    import sqlite3

    from mailer.errors import StateError

    db = tmp_path / "notes.db"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE notes (body TEXT)")
    with pytest.raises(StateError, match="not a mailer state store"):
        Store(f"sqlite:///{db}")
    with sqlite3.connect(db) as c:
        tables = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert tables == ["notes"]


def test_a_new_store_appears_whole(tmp_path) -> None:
    """Verify creating a store leaves no empty file behind and the new file is a complete,
    private store (so a 0-byte file can always be refused)."""
    db = tmp_path / "sub" / "state.db"
    store = Store(f"sqlite:///{db}")
    assert store.store_id and db.stat().st_size > 0
    assert db.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in db.parent.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("text", ["0001-01-01 00:00", "9999-12-31 23:59", "1969-12-31 10:00"])
def test_an_interview_at_the_ends_of_time_is_refused_before_any_key_is_made(text: str) -> None:
    """Verify a date whose move into UTC (the duplicate key) or another zone would overflow
    is a clear input error, for interviews and free times alike."""
    from zoneinfo import ZoneInfo

    from mailer.errors import InputError
    from mailer.model.facts import parse_slot, parse_when

    with pytest.raises(InputError, match="outside the years"):
        parse_when(text, ZoneInfo("America/St_Johns"))
    with pytest.raises(InputError, match="outside the years"):
        parse_slot(f"{text[:10]} 09:00-10:00", ZoneInfo("Pacific/Kiritimati"), "--free")


def _anchored_store(ws, config_name: str = "mailer.toml", url: str = "sqlite:///.mailer/state.db"):
    """Open the store of a workspace as the CLI does (with its anchor), without a server."""
    from mailer.adapters import anchor as anchors

    cfg = ws / "config" / config_name
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.touch()
    url = (
        url.replace("sqlite:///", f"sqlite:///{ws}/") if not url.startswith("sqlite:////") else url
    )
    anchor = anchors.anchor_path(cfg)
    recorded = anchors.check_before_open(anchor, url, f"{cfg}: state.url")
    store = Store(url)
    anchors.check_after_open(anchor, recorded, url, store.store_id, "state.url", store.named_now)
    return store, anchor


def test_a_backup_from_before_store_ids_can_be_restored(tmp_path) -> None:
    """Verify a schema-2 backup put back in place after the upgrade is adopted (it had no id
    to compare), while a different current store in its place is refused."""
    import shutil

    from mailer.errors import StateError

    ws = tmp_path / "ws"
    (ws / ".mailer").mkdir(parents=True)
    backup = tmp_path / "backup.db"
    _v2_store(backup)
    shutil.copy(backup, ws / ".mailer" / "state.db")
    first, _ = _anchored_store(ws)  # the upgrade: the store is migrated and named
    first.close()
    shutil.copy(backup, ws / ".mailer" / "state.db")  # the pre-upgrade backup, restored
    restored, _ = _anchored_store(ws)
    assert len(restored.threads()) == 4
    restored.close()
    (ws / ".mailer" / "state.db").unlink()
    Store(f"sqlite:///{ws}/.mailer/state.db").close()  # someone else's new, empty store
    with pytest.raises(StateError, match="not the state store this workspace has used") as e:
        _anchored_store(ws)
    # Named once, with what happened to it: the same URL twice read as a contradiction.
    assert str(e.value).count(".mailer/state.db") == 1 and "replaced" in str(e.value)


def test_each_config_file_has_its_own_anchor(tmp_path) -> None:
    """Verify a second config in the same workspace with its own state.url is not refused,
    and each keeps its guard."""
    from mailer.errors import StateError

    ws = tmp_path / "ws"
    main, main_anchor = _anchored_store(ws)
    staging, staging_anchor = _anchored_store(ws, "staging.toml", "sqlite:///.mailer/staging.db")
    assert main_anchor != staging_anchor and main.store_id != staging.store_id
    (ws / ".mailer" / "staging.db").unlink()
    with pytest.raises(StateError, match="missing"):
        _anchored_store(ws, "staging.toml", "sqlite:///.mailer/staging.db")


def test_a_workspace_that_cannot_be_written_still_works(tmp_path) -> None:
    """Verify the anchor is best effort: a workspace whose .mailer cannot be created (the
    store lives elsewhere) opens its store instead of failing with an OSError."""
    ws = tmp_path / "ws"
    (ws / "config").mkdir(parents=True)
    (ws / ".mailer").write_text("a file where the folder would go")
    store, anchor = _anchored_store(ws, url=f"sqlite:///{tmp_path / 'elsewhere.db'}")
    assert store.store_id and not anchor.exists()


def test_a_new_store_is_made_where_hard_links_are_not_allowed(tmp_path, monkeypatch) -> None:
    """Verify creating a store on a file system without hard links (FAT, shared folders)
    still puts a whole store in place."""
    import errno

    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    db = tmp_path / "state.db"
    assert Store(f"sqlite:///{db}").store_id
    assert db.stat().st_size > 0
