"""Where loading a campaign goes (issue #14): one process, the bench's 300-entry campaign
(``run_all.campaign_toml``), ``load_campaign`` timed in phases with wrappers around the
pure steps; the first entry (first-use costs: regex compiles, the templates, locale data)
apart from the others.

    PYTHONPATH=$PWD .venv/bin/python bench/load_phases.py [--entries 300] [--cold]

The config is a sandbox one (nothing connects). Imports are timed as the CLI's ``campaign
check`` needs them: ``mailer.services.campaign`` and what loading pulls in lazily. The
user's cache directory (compiled templates) is used
as a later run finds it; ``--cold`` points XDG_CACHE_HOME at an empty folder, as a first
run ever finds it.
"""

from __future__ import annotations

import argparse
import time

T0 = time.perf_counter()
import_started = T0

import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections import defaultdict  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

from mailer.services import campaign as campaign_mod  # noqa: E402

IMPORT_S = time.perf_counter() - T0

from mailer.adapters.config import load_settings  # noqa: E402
from mailer.model import apology  # noqa: E402

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
SENDER = "you@sandbox.test"


def config(ws: Path) -> Path:
    ca = ws / "ca.pem"
    # Never loaded (nothing connects), but config looks for the PEM header.
    ca.write_text("-----BEGIN CERTIFICATE-----\nnot read\n-----END CERTIFICATE-----\n")
    cfg = ws / "config" / "mailer.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text(
        f'[sender]\nname = "Sam Sandbox"\naddress = "{SENDER}"\nphone = "+1 555 0100"\n'
        'signature = "Sam Sandbox"\n\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = 1\nsecurity = "starttls"\nusername = "{SENDER}"\n'
        f'ca_file = "{ca}"\n\n'
        f'[imap]\nhost = "127.0.0.1"\nport = 2\nsecurity = "ssl"\nusername = "{SENDER}"\n'
        f'ca_file = "{ca}"\n\n[addresses]\nallow_test_domains = true\n\n'
        f'[state]\nurl = "sqlite:///{ws / "state.db"}"\n'
    )
    (ws / ".env").write_text("MAILER_SMTP_PASSWORD=bench-pw\n")
    return cfg


class Timers:
    def __init__(self) -> None:
        self.calls: dict[str, list[float]] = defaultdict(list)
        self.depth = 0

    def wrap(self, owner: object, name: str, label: str) -> None:
        original = getattr(owner, name)
        calls = self.calls

        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                calls[label].append(time.perf_counter() - t)

        setattr(owner, name, timed)


def campaign_toml(n: int) -> str:
    """The bench's own campaign (``run_all.campaign_toml``), made in another process: importing
    run_all here would import what loading a campaign imports lazily, before it is timed."""
    here = Path(__file__).resolve().parent
    code = f"import sys; sys.path.insert(0, {str(here)!r}); import run_all; "
    code += f"sys.stdout.write(run_all.campaign_toml({n}))"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=300)
    ap.add_argument("--cold", action="store_true", help="an empty cache directory")
    args = ap.parse_args()
    if args.cold:
        os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="mailer-phases-cache-")
    ws = Path(tempfile.mkdtemp(prefix="mailer-phases-"))
    cfg = config(ws)
    t = time.perf_counter()
    settings = load_settings(cfg, need_secrets=False)
    settings_s = time.perf_counter() - t
    camp = ws / "camp.toml"
    camp.write_text(campaign_toml(args.entries))

    tm = Timers()
    tm.wrap(campaign_mod, "make_facts", "facts (make_facts: parse, validate addresses)")
    tm.wrap(apology, "check_free_times", "free times")
    tm.wrap(apology, "compose_apology", "render (compose_apology: Jinja2)")
    tm.wrap(apology, "build_message", "build the email message")
    tm.wrap(apology, "lint_apology", "lint (lint_apology)")
    tm.wrap(apology, "odd_hours", "odd hours")
    tm.wrap(campaign_mod, "prepare", "prepare (all of the above but facts)")
    tm.wrap(campaign_mod, "_entry", "one entry (_entry)")
    t = time.perf_counter()
    c = campaign_mod.load_campaign(camp, settings, NOW)
    total = time.perf_counter() - t
    assert not c.problems and len(c.entries) == args.entries, c.problems[:3]

    print(f"imports (mailer.services.campaign): {IMPORT_S * 1000:.1f} ms")
    print(f"load_settings: {settings_s * 1000:.1f} ms")
    print(f"load_campaign, {args.entries} entries: {total * 1000:.1f} ms")
    print("| phase | first entry ms | later entries ms/entry | total ms |")
    print("|---|---:|---:|---:|")
    for label, ts in tm.calls.items():
        rest = ts[1:]
        per = sum(rest) / len(rest) if rest else 0.0
        print(f"| {label} | {ts[0] * 1000:.2f} | {per * 1000:.3f} | {sum(ts) * 1000:.1f} |")


if __name__ == "__main__":
    main()
