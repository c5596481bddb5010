"""Two runs of one campaign at once: the second run sends an entry while the first run's
pipelined envelope for it is on the wire. The first run's record of it (made while the
server reads that envelope) is refused as a duplicate, its connection dropped before any
body, and nothing is delivered twice."""

from __future__ import annotations

from pathlib import Path

from mailer.adapters.config import load_settings
from mailer.adapters.store import Store
from mailer.services.campaign import load_campaign
from mailer.services.runner import SENT_NOW, SKIPPED, run_campaign
from mailer.testing.smtp import FakeSmtp

from .test_throttle import START, FakeClock, workspace


def test_an_entry_a_concurrent_run_sends_during_the_envelope_is_skipped_not_sent_twice(
    tmp_path: Path,
) -> None:
    ws = workspace(tmp_path, "", entries=3)
    settings = load_settings(ws / "config" / "mailer.toml")
    clock = FakeClock(START)
    campaign = load_campaign(ws / "config" / "campaigns" / "c.toml", settings, clock())
    server = FakeSmtp(users={settings.smtp.username: "pw"})
    inner: list[list[str]] = []

    def moment(what: str) -> None:
        # The first MAIL FROM the server reads: the outer run's envelope for entry 0,
        # written before the outer run records the entry.
        if what == "mail" and not inner:
            other = Store(settings.state_url)
            inner.append([])
            try:
                report = run_campaign(
                    campaign, other, clock, smtp=server, sleep=clock.sleep, rng=lambda: 0.5, limit=1
                )
            finally:
                other.close()
            inner[0] = [o.result for o in report.outcomes]

    server.moment = moment
    store = Store(settings.state_url)
    try:
        report = run_campaign(
            campaign, store, clock, smtp=server, sleep=clock.sleep, rng=lambda: 0.5
        )
    finally:
        store.close()
    assert inner == [[SENT_NOW]]
    assert [o.result for o in report.outcomes] == [SKIPPED, SENT_NOW, SENT_NOW]
    delivered = sorted(r for m in server.accepted for r in m.recipients)
    assert delivered == ["ana0@sandbox.test", "ana1@sandbox.test", "ana2@sandbox.test"]
