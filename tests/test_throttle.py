"""The throttle and the daily cap, with an injected clock and sleep instead of real waiting.

The SMTP session here is a fake (pure pacing logic); the state store is the real SQLite one,
because the daily cap is counted from it across runs.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo

import pytest

from mailer.adapters.config import load_settings
from mailer.adapters.store import Store
from mailer.errors import DeliveryError
from mailer.model.throttle import Pacer, effective_cap, start_of_day, too_many
from mailer.services.campaign import load_campaign
from mailer.services.history import outside_warnings
from mailer.services.runner import (
    FAILED_NOW,
    HELD_BACK,
    SENT_NOW,
    SKIPPED,
    run_campaign,
)


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


class FakeSession:
    """Accepts every message; ``refuse`` scripts replies for the next submits."""

    refuse: ClassVar[list[DeliveryError]] = []
    submitted: ClassVar[list[tuple[str, tuple[str, ...]]]] = []
    connections = 0

    def __init__(self, settings: object, retries: int = 0) -> None:
        FakeSession.connections += 1

    def submit(
        self,
        sender,
        recipients,
        data,
        before_mail=None,
        before_final_dot=None,
        in_envelope=None,
        next_envelope=None,
    ) -> str:  # type: ignore[no-untyped-def]
        if before_mail is not None:
            before_mail()
        if in_envelope is not None:
            in_envelope()
        if FakeSession.refuse:  # refused at MAIL or RCPT: DATA never began
            raise FakeSession.refuse.pop(0)
        if before_final_dot is not None:  # as SmtpSession: the mark, then the final dot
            before_final_dot()
        FakeSession.submitted.append((sender, tuple(recipients)))
        return "250 OK"

    def close(self) -> None:
        pass


@pytest.fixture(autouse=True)
def fresh_fake() -> None:
    FakeSession.refuse = []
    FakeSession.submitted = []
    FakeSession.connections = 0


def workspace(tmp_path: Path, throttle: str, entries: int = 5, smtp_extra: str = "") -> Path:
    (tmp_path / "config" / "campaigns").mkdir(parents=True)
    (tmp_path / "config" / "mailer.toml").write_text(
        textwrap.dedent(f"""\
            [sender]
            name = "Sam Candidate"
            address = "sam@sandbox.test"
            timezone = "Europe/London"
            [smtp]
            host = "127.0.0.1"
            port = 2525
            security = "plain"
            {smtp_extra}
            [imap]
            host = "127.0.0.1"
            port = 1993
            save_sent = false
            [addresses]
            allow_test_domains = true
            """),
        encoding="utf-8",
    )
    (tmp_path / ".env").write_text("MAILER_SMTP_PASSWORD=pw\n", encoding="utf-8")
    body = '[defaults]\nsituation = "illness"\nrole = "Analyst"\ninterviewer = "Ana"\n' + throttle
    for n in range(entries):
        body += (
            f'\n[[entries]]\nto = "ana{n}@sandbox.test"\ncompany = "Co {n}"\n'
            f'interview = "2026-11-2{n % 5} 10:00"\n'
        )
    (tmp_path / "config" / "campaigns" / "c.toml").write_text(body, encoding="utf-8")
    return tmp_path


def run(ws: Path, clock: FakeClock, **kwargs: object):  # type: ignore[no-untyped-def]
    settings = load_settings(ws / "config" / "mailer.toml")
    campaign = load_campaign(ws / "config" / "campaigns" / "c.toml", settings, clock())
    assert campaign.problems == []
    store = Store(settings.state_url)
    try:
        return run_campaign(
            campaign,
            store,
            clock,
            smtp=FakeSession,
            sleep=clock.sleep,
            rng=lambda: 0.5,
            **kwargs,  # type: ignore[arg-type]
        )
    finally:
        store.close()


START = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def test_rate_spaces_messages_evenly_with_jitter_on_top(tmp_path: Path) -> None:
    ws = workspace(tmp_path, '[throttle]\nrate = 6\njitter = "4s"\n', entries=4)
    clock = FakeClock(START)
    report = run(ws, clock)
    assert report.count(SENT_NOW) == 4
    # 60/6 = 10 s apart, plus half of the 4 s jitter (rng = 0.5); none before the first.
    assert clock.slept == [12.0, 12.0, 12.0]


def test_no_throttle_means_no_waiting(tmp_path: Path) -> None:
    ws = workspace(tmp_path, "", entries=3)
    clock = FakeClock(START)
    assert run(ws, clock).count(SENT_NOW) == 3
    assert clock.slept == []
    assert FakeSession.connections == 1


def test_daily_cap_holds_back_the_rest_until_the_next_day(tmp_path: Path) -> None:
    ws = workspace(tmp_path, "[throttle]\ndaily_cap = 2\n", entries=5)
    clock = FakeClock(START)
    first = run(ws, clock)
    assert [o.result for o in first.outcomes] == [
        SENT_NOW,
        SENT_NOW,
        HELD_BACK,
        HELD_BACK,
        HELD_BACK,
    ]

    clock.now += timedelta(hours=5)  # same day in London: the cap counts across runs
    second = run(ws, clock)
    assert second.count(SENT_NOW) == 0 and second.held_back == 3

    clock.now = datetime(2026, 11, 26, 0, 30, tzinfo=UTC)  # after midnight in London
    third = run(ws, clock)
    assert [o.result for o in third.outcomes] == [SKIPPED, SKIPPED, SENT_NOW, SENT_NOW, HELD_BACK]
    assert len(FakeSession.submitted) == 4


def test_the_accounts_own_cap_wins_when_it_is_lower(tmp_path: Path) -> None:
    ws = workspace(tmp_path, "[throttle]\ndaily_cap = 10\n", entries=4, smtp_extra="daily_cap = 1")
    report = run(ws, FakeClock(START))
    assert report.count(SENT_NOW) == 1 and report.held_back == 3


def test_too_many_answer_slows_down_instead_of_failing(tmp_path: Path) -> None:
    ws = workspace(tmp_path, "[throttle]\nrate = 60\n", entries=3)
    FakeSession.refuse = [
        DeliveryError("421 4.7.0 too many messages", kind="temporary", temporary=True, code=421)
    ]
    clock = FakeClock(START)
    report = run(ws, clock)
    assert report.count(SENT_NOW) == 3
    # 30 s pause after the 421, then the interval doubled from 1 s to 2 s.
    assert clock.slept[0] == 30.0 and clock.slept[1:] == [2.0, 2.0]


def test_a_server_that_keeps_saying_too_many_stops_that_account_for_the_run(tmp_path: Path) -> None:
    ws = workspace(tmp_path, "", entries=3)
    FakeSession.refuse = [
        DeliveryError("454 4.7.0 too many", kind="temporary", temporary=True, code=454)
    ] * 20
    clock = FakeClock(START)
    report = run(ws, clock)
    assert [o.result for o in report.outcomes] == [FAILED_NOW] * 3
    assert FakeSession.submitted == []
    assert sum(clock.slept) < 3600  # gave up within the hour, never hung


def test_limit_sends_only_that_many(tmp_path: Path) -> None:
    ws = workspace(tmp_path, "", entries=5)
    report = run(ws, FakeClock(START), limit=2)
    assert report.count(SENT_NOW) == 2 and "--limit 2" in report.stopped


def test_caps_and_rate_words() -> None:
    assert effective_cap(0, 0) == 0
    assert effective_cap(50, 0) == 50
    assert effective_cap(50, 20) == 20
    assert too_many(421, "service busy") and too_many(451, "4.7.1 rate limit exceeded")
    assert not too_many(451, "local error") and not too_many(550, "too many recipients")
    midnight = start_of_day(datetime(2026, 7, 1, 0, 30, tzinfo=UTC), ZoneInfo("Europe/London"))
    assert (midnight.day, midnight.hour) == (1, 0)  # 00:30 UTC is 01:30 BST on 1 July


def test_pacer_waits_only_the_remainder_of_the_interval() -> None:
    clock = FakeClock(START)
    pacer = Pacer(per_minute=2, jitter=0, clock=clock, sleep=clock.sleep)
    assert pacer.wait() == 0
    clock.now += timedelta(seconds=25)  # the send itself took 25 s
    assert pacer.wait() == 5.0


def test_a_login_refusal_fails_the_accounts_other_entries_without_connecting_again(
    tmp_path: Path,
) -> None:
    ws = workspace(tmp_path, "", entries=3)
    FakeSession.refuse = [
        DeliveryError("535 5.7.8 authentication failed", kind="login", temporary=False, code=535)
    ]
    report = run(ws, FakeClock(START))
    assert [(o.result, o.account_down) for o in report.outcomes] == [(FAILED_NOW, True)] * 3
    assert FakeSession.connections == 1 and FakeSession.submitted == []
    # The reason is the data; "account: " is only how it is shown.
    assert report.outcomes[1].detail == report.outcomes[0].detail
    assert not report.outcomes[0].detail.startswith("account: ")
    # Recorded through delivery.record_failure: given up for this run, so failed, not left
    # queued; the next run sends it.
    settings = load_settings(ws / "config" / "mailer.toml")
    store = Store(settings.state_url)
    try:
        [(_, root)] = store.campaign_apologies("c")
        assert root.state == "failed" and "535" in (root.error or "")
    finally:
        store.close()
    assert run(ws, FakeClock(START)).count(SENT_NOW) == 3


def test_a_temporary_failure_is_requeued_while_retried_then_sent(tmp_path: Path) -> None:
    ws = workspace(tmp_path, "", entries=2)
    FakeSession.refuse = [
        DeliveryError("451 4.3.0 try again", kind="temporary", temporary=True, code=451)
    ]
    clock = FakeClock(START)
    report = run(ws, clock)
    assert report.count(SENT_NOW) == 2 and clock.slept == [1.0]


def test_the_reports_counts_match_its_outcomes(tmp_path: Path) -> None:
    ws = workspace(tmp_path, "[throttle]\ndaily_cap = 2\n", entries=5)
    seen: list[int] = []
    report = run(ws, FakeClock(START), progress=lambda o, r: seen.append(r.count(HELD_BACK)))
    assert seen == [0, 0, 1, 2, 3]
    assert report.counts == Counter(o.result for o in report.outcomes)


def test_an_address_and_company_with_an_apology_outside_the_campaign_is_warned_once_each(
    tmp_path: Path,
) -> None:
    ws = workspace(tmp_path, "", entries=2)
    run(ws, FakeClock(START))
    campaigns = ws / "config" / "campaigns"
    text = (campaigns / "c.toml").read_text(encoding="utf-8")
    # The same people and companies, written differently, in another campaign; and a new one.
    other = text.replace("ana0@", "ANA0@").replace('"Co 1"', '"co  1"')
    other += (
        '\n[[entries]]\nto = "bo@sandbox.test"\ncompany = "Co 9"\ninterview = "2026-11-20 10:00"\n'
    )
    (campaigns / "other.toml").write_text(other, encoding="utf-8")
    settings = load_settings(ws / "config" / "mailer.toml")
    store = Store(settings.state_url)
    try:
        mine = load_campaign(campaigns / "c.toml", settings, START)
        theirs = load_campaign(campaigns / "other.toml", settings, START)
        assert theirs.problems == []
        assert outside_warnings(mine, store) == []  # its own threads are not "outside"
        warned = outside_warnings(theirs, store)
        assert len(warned) == 2, warned
        assert all("already has an apology outside this campaign (thread " in w for w in warned)
        assert not any("bo@sandbox.test" in w for w in warned)
    finally:
        store.close()


def durable_transactions(tmp_path: Path, entries: int) -> int:
    """Transactions on the store's synced engine during a run of ``entries`` sends."""
    ws = workspace(tmp_path / str(entries), "", entries=entries)
    clock = FakeClock(START)
    settings = load_settings(ws / "config" / "mailer.toml")
    campaign = load_campaign(ws / "config" / "campaigns" / "c.toml", settings, clock())
    store = Store(settings.state_url)
    durable: list[bool] = []

    def counting(real):  # type: ignore[no-untyped-def]
        def counted(durable_: bool = True):  # type: ignore[no-untyped-def]
            durable.append(durable_)
            return real(durable_)

        return counted

    # On SQLite the per-message writes go through _write, the rest through tx: neither calls
    # the other there, so each transaction is counted once.
    store.tx = counting(store.tx)  # type: ignore[method-assign]
    store._write = counting(store._write)  # type: ignore[method-assign]
    try:
        report = run_campaign(campaign, store, clock, smtp=FakeSession, sleep=clock.sleep)
    finally:
        store.close()
    assert report.count(SENT_NOW) == entries
    return sum(durable)


def test_each_message_costs_one_durable_commit_the_final_dot_mark(tmp_path: Path) -> None:
    # The run's own reads (what was sent, the cap) are the same for 2 entries as for 5; every
    # further durable transaction is a message's. Claim and "sent" are not synced.
    assert durable_transactions(tmp_path, 5) - durable_transactions(tmp_path, 2) == 3
