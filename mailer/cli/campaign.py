"""``mailer campaign check|preview|run|status|cancel``: options in, library calls, a report out."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from mailer.cli.common import (
    Context,
    _show,
    handle_errors,
    warm_connections,
    warn,
    without_collector,
)
from mailer.errors import ConfigError, ExitCode, InputError

NOT_SENT = "not_sent"  # an entry with no thread yet (threadview.THREAD_STATES otherwise)


def _find(settings: Any, file: str) -> Path:
    """FILE as given, else a campaign of that name under ``config/campaigns/``."""
    from mailer.services.campaign import CAMPAIGNS_DIR

    path = Path(file).expanduser()
    if path.is_file():
        return path.resolve()
    for candidate in (
        settings.workspace / CAMPAIGNS_DIR / file,
        settings.workspace / CAMPAIGNS_DIR / f"{file}.toml",
    ):
        if candidate.is_file():
            return candidate.resolve()
    raise InputError(
        f"{file}: campaign file not found (nor in {settings.workspace / CAMPAIGNS_DIR})"
    )


def _load(
    obj: Context,
    file: str,
    *,
    force: bool = False,
    skip_invalid: bool = False,
    lenient: bool = False,
    open_subjects: Any = None,
    offline: bool = False,
    running: bool = False,
) -> Any:
    """Settings and the campaign. ``lenient`` (status, cancel) ignores every problem: what
    was sent is in the store, and an entry that became invalid (its free times passed) must
    still be shown and cancellable. ``offline``: for a command that never connects to a mail
    server, whose settings need not be finished (see load_settings). ``running``: for
    ``campaign run``, whose refusal says that nothing was sent."""
    from mailer.adapters.clock import default_clock
    from mailer.services.campaign import load_campaign

    settings = obj.settings(offline=offline)
    campaign = load_campaign(
        _find(settings, file), settings, default_clock()(), force=force, open_subjects=open_subjects
    )
    if lenient:
        return settings, campaign
    if campaign.problems and (not skip_invalid or campaign.file_level):
        where = (
            f"{campaign.invalid} of {campaign.total} entries have problems"
            if campaign.invalid and not campaign.file_level
            else "the campaign file has problems"
        )
        raise ConfigError(
            campaign.problems,
            hint=where
            + ("; nothing was sent" if running else "")
            + (
                " (--skip-invalid sends the valid entries)"
                if running and campaign.invalid and not campaign.file_level
                else ""
            ),
        )
    return settings, campaign


@click.group(short_help="Many apologies from one file.")
@click.pass_context
def campaign(ctx: click.Context) -> None:
    """Many apologies from one file: config/campaigns/NAME.toml (see 'mailer init')."""
    if ctx.invoked_subcommand in ("check", "preview", "run"):  # they end with the process
        without_collector(ctx, collect=True)  # (each entry's rendering makes cycles)


@campaign.command("check")
@click.argument("file")
@click.option("--force", is_flag=True, help="Let apology-check errors through.")
@click.pass_obj
@handle_errors
def check_command(obj: Context, file: str, force: bool) -> None:
    """Validate the whole file (every entry, every problem). Sends nothing."""
    from mailer.model.lint import WARNING
    from mailer.services.history import changed_entries, outside_warnings, past_attempts, pending

    # Offline: a coach checks the file before the mail servers are set up. Every entry is
    # checked, and then what 'run' would still refuse in the config is named (exit 3).
    settings, c = _load(obj, file, force=force, offline=True)
    store = obj.store(settings, to_read=True)  # a check writes nothing
    keys = store.apology_keys()  # (read once for both)
    past = past_attempts(c, store, keys)
    todo = pending(c, store, past=past)
    for line in outside_warnings(c, store, keys):
        warn(line)
    changed = list(changed_entries(past))
    for key, skip in changed:
        warn(_changed_line(key, skip.text))
    warnings, names = 0, set()
    for e in c.entries:  # (one pass: past the first entries, each is read back from a file)
        warnings += sum(1 for f in e.findings if f.severity == WARNING)
        names.add(e.account or "main")
    accounts = sorted(names)
    click.echo(
        f"{c.path}: campaign {c.name!r}: {len(c.entries)} "
        f"entr{'y' if len(c.entries) == 1 else 'ies'} valid; {len(todo)} to send, "
        f"{len(c.entries) - len(todo) - len(changed)} already done"
        # (not done: a changed entry is not sent until the user says which it is)
        + (f", {len(changed)} wait(s) for you (above)" if changed else "")
        + f"; account(s): {', '.join(accounts)}"
    )
    if warnings:
        click.echo(f"{warnings} apology-check warning(s): 'mailer campaign preview' shows them")
    # In sandbox mode, what 'run' refuses before sending: an address with no sandbox mailbox.
    obj.check_sandbox_recipients(a for e in c.entries for a in (e.facts.to, *e.facts.cc))
    if settings.unfinished:
        raise ConfigError(
            list(settings.unfinished),
            hint="the entries are checked; 'mailer campaign run' needs these settings",
        )


@campaign.command("preview")
@click.argument("file")
@click.option("--entry", "key", metavar="KEY", help="Only this entry.")
@click.option("--force", is_flag=True, help="Show entries with apology-check errors too.")
@click.pass_obj
@handle_errors
def preview_command(obj: Context, file: str, key: str | None, force: bool) -> None:
    """Print what each entry would send. No network."""
    # The valid entries are shown even when others have problems: 'run --skip-invalid'
    # sends them, so they must be seen first (a problem of the file itself still stops it).
    _, c = _load(obj, file, force=force, offline=True, skip_invalid=True)
    if key is None:
        for line in c.problems:
            click.echo(f"mailer: error: {line}", err=True)
    entries = [c.entry(key)] if key else c.entries
    for i, e in enumerate(entries):
        if i:
            click.echo("\n" + "=" * 72)
        account = f", account {e.account}" if e.account else ""
        click.echo(f"# entry {e.key} ({e.where}{account})")
        _show(e.prepared)
    if c.invalid:
        have = "has" if c.invalid == 1 else "have"
        click.echo(
            f"mailer: {c.invalid} of the {c.total} entries in the file {have} problems"
            + (
                f"; 'mailer campaign check {file}' lists them"
                if key
                else " (above); the valid ones are shown"
            ),
            err=True,
        )
        if key is None:
            sys.exit(int(ExitCode.CONFIG))


@campaign.command("run")
@click.argument("file")
@click.option("--dry-run", is_flag=True, help="Say what would be sent; connect to nothing.")
@click.option("--limit", type=click.IntRange(min=1), help="Send at most N apologies this run.")
@click.option(
    "--yes", "-y", is_flag=True, help="Send without asking (required without a terminal)."
)
@click.option(
    "--skip-invalid", is_flag=True, help="Send the valid entries even if others have problems."
)
@click.option("--force", is_flag=True, help="Send even if the apology check finds errors.")
@click.option("--retry-failed", is_flag=True, help="Try entries the server refused before again.")
@click.pass_obj
@handle_errors
def run_command(
    obj: Context,
    file: str,
    dry_run: bool,
    limit: int | None,
    yes: bool,
    skip_invalid: bool,
    force: bool,
    retry_failed: bool,
) -> None:
    """Send the apologies not yet sent. Run it again to resume: nothing is sent twice."""
    from mailer.adapters.clock import default_clock
    from mailer.model.runplan import Why
    from mailer.services.history import (
        outside_warnings,
        past_attempts,
        pending,
        waiting_for_user,
    )
    from mailer.services.runner import (
        FAILED_NOW,
        HELD_BACK,
        IN_DOUBT_NOW,
        SENT_NOW,
        SKIPPED,
        WOULD_SEND,
        catch_up_copies,
        run_campaign,
    )

    # The store first: a new entry's subject must differ from an open thread's to the same
    # address (entries whose own thread is open are skipped, so never re-subjected).
    main = obj.settings()
    if not dry_run:
        obj.need_running_sandbox()
        warm_connections(main)  # while the entries are checked
    store = obj.store(main)
    settings, c = _load(
        obj,
        file,
        force=force,
        skip_invalid=skip_invalid,
        open_subjects=once_each(store.open_subjects),
        running=True,
    )
    obj.check_sandbox_recipients(a for e in c.entries for a in (e.facts.to, *e.facts.cc))
    for line in c.problems:
        click.echo(f"mailer: skipped (invalid): {line}", err=True)
    if not dry_run:
        _need_passwords(settings, c)
    keys = store.apology_keys()  # (read once for the warnings and the past attempts)
    for line in outside_warnings(c, store, keys):
        warn(line)
    if not dry_run:
        # Copies an interrupted run left: filed first, even when nothing is left to send.
        caught_up, copy_problems = catch_up_copies(c, store)
        if caught_up:
            click.echo(f"Filed {caught_up} Sent cop(ies) an interrupted run had left.")
        for line in copy_problems:
            warn(line)
    past = past_attempts(c, store, keys)  # (read once: the rerun's message needs it too)
    todo = pending(c, store, retry_failed, past)
    if limit is not None:
        todo = todo[:limit]
    if not todo:
        # Done, or waiting for the user: an entry in doubt is never sent again on its own,
        # so a rerun must still name it (as every run's end does), not call it done.
        waiting = waiting_for_user(c, past, retry_failed)
        doubts = [(key, skip) for key, skip in waiting if skip.in_doubt]
        changed = [(key, skip) for key, skip in waiting if skip.why is Why.CHANGED]
        refused = len(waiting) - len(doubts) - len(changed)
        click.echo(
            f"campaign {c.name!r}: nothing to send; every valid entry is done"
            + (f" or waits for you ({len(waiting)})" if waiting else "")
            + f" ('mailer campaign status {file}' shows each)."
        )
        for key, skip in doubts:
            click.echo(_doubt_line(key, skip.thread_id, skip.text, store))
        for key, skip in changed:
            click.echo(_changed_line(key, skip.text))
        if refused:
            click.echo(
                f"{refused} refused by the server earlier: fix them, or run again with "
                "--retry-failed."
            )
        if doubts:
            sys.exit(int(ExitCode.FAILURE))
        if changed:
            sys.exit(int(ExitCode.WAITING))  # (not done: the user must say which it is)
        return
    for line in _timing(todo, default_clock()()):
        click.echo(line)
    if not dry_run and not yes:
        from mailer.cli.console import stdin_is_terminal

        if not stdin_is_terminal():
            raise InputError("refusing to send without --yes: there is no terminal to confirm on")
        who = ", ".join(sorted({e.settings.sender.address for e in todo}))
        if not click.confirm(
            f"Send {len(todo)} apolog{'y' if len(todo) == 1 else 'ies'} from {who} now?",
            default=False,
        ):
            click.echo("Nothing sent.")
            sys.exit(int(ExitCode.FAILURE))

    stop = threading.Event()

    def on_sigint(*_: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        click.echo(
            "\nmailer: stopping after the message in progress, once the server has answered "
            "it (Ctrl-C again to stop now)",
            err=True,
        )

    import signal

    previous = signal.signal(signal.SIGINT, on_sigint)
    display = _Progress(len(todo), len(c.entries))
    try:
        report = run_campaign(
            c,
            store,
            default_clock(),
            limit=limit,
            dry_run=dry_run,
            retry_failed=retry_failed,
            progress=display.update,
            stop=stop,
        )
    except KeyboardInterrupt:
        # Stopped in the middle of a message: the user must learn where that leaves it
        # (a whole message the server never answered may have been delivered).
        display.done()
        click.echo(
            f"mailer: stopped now; 'mailer campaign status {file}' shows each entry. A message "
            "sent whole but not answered is in doubt, and is never sent again on its own.",
            err=True,
        )
        sys.exit(130)
    finally:
        signal.signal(signal.SIGINT, previous)
        display.done()
    _summary_table(report, verbose=dry_run)
    counts = {
        r: report.count(r)
        for r in (SENT_NOW, WOULD_SEND, SKIPPED, FAILED_NOW, IN_DOUBT_NOW, HELD_BACK)
    }
    click.echo(
        "\n"
        + ", ".join(f"{n} {r}" for r, n in counts.items() if n or r in (SENT_NOW, FAILED_NOW))
        + f" (campaign {c.name!r}, {display.elapsed():.1f} s)"
    )
    if dry_run:
        click.echo("(dry run: nothing was sent)")
    if report.stopped:
        click.echo(f"Stopped early: {report.stopped}. Run the same command again to go on.")
    if report.held_back:
        click.echo(
            f"{report.held_back} held back by the daily cap: run 'mailer campaign run {file}' "
            "again tomorrow to send them (the daemon sends only follow-ups)."
        )
    # In doubt now, or still in doubt from an earlier run: never resent, always listed.
    doubts = [o for o in report.outcomes if o.in_doubt]
    for o in doubts:
        click.echo(_doubt_line(o.key, o.thread_id, o.detail, store))
    changed = [o for o in report.outcomes if o.changed]
    for o in changed:
        click.echo(_changed_line(o.key, o.detail))
    if report.sent_copy_problems:
        warn(
            f"{len(report.sent_copy_problems)} Sent cop(ies) not saved: "
            f"{report.sent_copy_problems[0]}"
        )
    if counts[FAILED_NOW] or counts[IN_DOUBT_NOW]:
        sys.exit(int(ExitCode.NETWORK))
    if doubts:
        sys.exit(int(ExitCode.FAILURE))
    if changed:
        sys.exit(int(ExitCode.WAITING))  # (not done: the user must say which it is)
    if report.stopped == "interrupted":
        sys.exit(130)  # (Ctrl-C: the run is not over, whatever a script around it assumes)


def _timing(entries: Iterable[Any], now: datetime) -> list[str]:
    """The advice 'send' gives on timing, for the entries about to go, a line for each
    kind: interviews within a day (an email alone may not be read in time) and interviews
    more than a day ago (a late apology)."""
    soon, late = [], []
    for e in entries:
        interview = e.facts.interview
        if now < interview < now + timedelta(hours=24):
            soon.append(e.key)
        elif interview < now - timedelta(hours=24):
            late.append(e.key)
    call = "call them as well ('mailer call-script' prints what to say)"

    def named(keys: list[str]) -> str:
        return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")

    out = []
    if soon:
        out.append(
            f"Timing: {len(soon)} interview(s) within a day ({named(soon)}): an email alone "
            f"may not be read in time; {call}."
        )
    if late:
        out.append(
            f"Timing: {len(late)} interview(s) more than a day ago ({named(late)}): those "
            f"apologies are late; sent today they still help, and so does a call."
        )
    return out


def _changed_line(key: str, why: str) -> str:
    """An entry an earlier version of which went (Why.CHANGED), and why it is not sent."""
    return f"entry {key}: not sent: {why}"


def _doubt_line(key: str, thread_id: int | None, detail: str, store: Any) -> str:
    """An entry in doubt, and what to run (for its thread as it is now: a campaign cancelled
    since is not sent again, and is not told to --resend)."""
    from mailer.model.lifecycle import UNRECORDED, settle_advice

    if UNRECORDED in detail:  # it went: only its record is missing
        return (
            f"In doubt: entry {key} (thread {thread_id}) WAS {UNRECORDED}; do not send "
            f"it again: 'mailer resolve {thread_id} --sent' records it"
        )
    thread = store.thread(thread_id, lenient=True) if thread_id is not None else None
    return f"In doubt: entry {key} (thread {thread_id}) may have been delivered; " + settle_advice(
        thread_id if thread_id is not None else "ID",
        kind="apology",
        state=thread.state if thread is not None else "",
    )


def once_each(lookup: Callable[[str], frozenset[str]]) -> Callable[[str], frozenset[str]]:
    """``lookup`` asked once per address while the campaign loads (the store does not change
    meanwhile): a campaign writing to a few addresses many times asks a few times."""
    seen: dict[str, frozenset[str]] = {}

    def cached(address: str) -> frozenset[str]:
        key = address.lower()
        if key not in seen:
            seen[key] = lookup(address)
        return seen[key]

    return cached


def shown_detail(outcome: Any) -> str:
    """An outcome's detail as shown: the account's trouble says so (from the field; the
    detail itself is only the error)."""
    return f"account: {outcome.detail}" if outcome.account_down else outcome.detail


def _need_passwords(settings: Any, c: Any) -> None:
    """The passwords of the accounts the campaign sends from, all before the first send."""
    from mailer.adapters.passwords import unlock

    unlock(settings, sorted({e.account for e in c.entries}))


class _Progress:
    """A rich progress bar on a terminal (counts per outcome, time left in words); one plain
    line per entry otherwise (logs, CI, pipes)."""

    def __init__(self, todo: int, total: int) -> None:
        self.todo = todo
        self.total = total
        self.started = time.monotonic()
        self.bar: Any = None
        if sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            from mailer.cli.console import console

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[counts]}"),
                TextColumn("{task.fields[left]}"),
                console=console(err=True),
                transient=False,
            )
            self.task = self.bar.add_task("sending", total=todo, counts="", left="")
            self.bar.start()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def update(self, outcome: Any, report: Any) -> None:
        from mailer.cli.console import natural_duration
        from mailer.services.runner import FAILED_NOW, IN_DOUBT_NOW, SENT_NOW, SKIPPED, WOULD_SEND

        if self.bar is None:
            click.echo(f"{outcome.result:<10} {outcome.key}  {shown_detail(outcome)}", err=True)
            return
        sent = report.count(SENT_NOW) + report.count(WOULD_SEND)
        worked = sent + report.count(FAILED_NOW) + report.count(IN_DOUBT_NOW)
        left = max(self.todo - worked, 0)
        eta = ""
        if worked and left:
            eta = f"about {natural_duration(self.elapsed() / worked * left)} left"
        counts = (
            f"sent {sent} · skipped {report.count(SKIPPED)} · failed "
            f"{report.count(FAILED_NOW)} · in doubt {report.count(IN_DOUBT_NOW)}"
        )
        self.bar.update(self.task, completed=worked, counts=counts, left=eta)

    def done(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _summary_table(report: Any, verbose: bool) -> None:
    from mailer.cli.console import OUTCOME_STYLES, print_rows
    from mailer.services.runner import SKIPPED

    outcomes = [o for o in report.outcomes if verbose or o.result != SKIPPED]
    if not outcomes:
        return
    columns = [
        ("ENTRY", {}),  # wrapped, never cut: '--entry KEY' needs it whole
        ("RESULT", {"no_wrap": True}),
        ("THREAD", {"justify": "right", "no_wrap": True}),
        ("DETAIL", {}),
    ]
    rows = [
        (
            [o.key, o.result, str(o.thread_id) if o.thread_id else "-", shown_detail(o)],
            OUTCOME_STYLES.get(o.result),
        )
        for o in outcomes
    ]
    click.echo("")
    print_rows(columns, rows, styled_column=1)


@campaign.command("status", short_help="Each entry's state, as status shows threads.")
@click.argument("file")
@click.option(
    "--json", "as_json", is_flag=True, help="Machine-readable output (README: JSON output)."
)
@click.pass_obj
@handle_errors
def status_command(obj: Context, file: str, as_json: bool) -> None:
    """Each entry's state, as 'mailer status' shows threads, with counts."""
    from collections import Counter

    from mailer.adapters.clock import local_zone
    from mailer.model.runplan import skip_reason
    from mailer.services import threadview as view
    from mailer.services.history import past_attempts

    settings, c = _load(obj, file, lenient=True, offline=True)
    store = obj.store(settings)
    tz = local_zone(settings.sender.timezone)
    threads: dict[str, Any] = {}
    for t in store.campaign_threads(c.name):
        threads[t.entry_key or ""] = t  # the latest thread of each entry
    # An entry with no thread of its own may still be covered by another apology (the same
    # interview sent under another company's name, or before its time was edited): a run
    # skips it, so it must not read as waiting to be sent.
    past = past_attempts(c, store)
    # (one query, not one a thread; each entry's latest thread's)
    messages = store.campaign_messages(c.name, {t.id for t in threads.values()})
    rows = []
    # Each valid entry's place in the campaign: read back when its row is made (past the
    # first entries, a dict of the entries themselves would hold every one in memory again).
    valid = {e.key: i for i, e in enumerate(c.entries)}
    # Every entry with a thread (even one the file no longer validates), then the rest.
    for key in [*threads, *(k for k in valid if k not in threads)]:
        t = threads.get(key)
        e = c.entries[valid[key]] if key in valid else None
        msgs = messages.get(t.id, []) if t else []
        covered = skip_reason(past.get(key, ()), False) if t is None else None
        rows.append(
            {
                "key": key,
                "where": e.where if e else None,
                "valid": e is not None,
                "to": e.facts.to if e else t.recipient,
                "state": view.state_word(t, msgs) if t else NOT_SENT,
                "thread": view.thread_dict(t, msgs, tz) if t else None,
                # (a run skips it, and why: "already sent (thread 9, replied)")
                "not_sent_because": covered.text if covered else None,
                "shown": view.describe(t, msgs, tz)
                if t
                else (f"not sent: {covered.text}" if covered else "not sent yet"),
            }
        )
    counts = Counter(r["state"] for r in rows)
    if as_json:
        entries = [{k: v for k, v in r.items() if k != "shown"} for r in rows]
        click.echo(
            json.dumps(
                {
                    "version": view.JSON_VERSION,
                    "campaign": c.name,
                    "entries": entries,
                    "counts": dict(counts.most_common()),
                },
                indent=2,
            )
        )
        return
    from mailer.cli.console import STATE_STYLES, print_rows

    lines: list[tuple[list[str], str | None]] = []
    for r in rows:
        where = "" if r["valid"] else " (no longer a valid entry of the file: removed or changed)"
        thread = str(r["thread"]["id"]) if r["thread"] else "-"
        lines.append(([r["key"], thread, r["shown"] + where], STATE_STYLES.get(r["state"])))
    print_rows(
        [
            ("ENTRY", {}),  # wrapped, never cut: 'campaign cancel --entry KEY' needs it whole
            ("THREAD", {"justify": "right", "no_wrap": True}),
            ("STATE", {}),
        ],
        lines,
    )
    click.echo(", ".join(f"{n} {s.replace('_', ' ')}" for s, n in counts.most_common()))
    if c.problems:
        click.echo("(the file has problems now: 'mailer campaign check' lists them)")


@campaign.command("cancel")
@click.argument("file")
@click.option("--entry", "key", metavar="KEY", help="Only this entry.")
@click.pass_obj
@handle_errors
def cancel_command(obj: Context, file: str, key: str | None) -> None:
    """Stop the campaign's pending follow-ups (all, or one entry's)."""
    from mailer.adapters.clock import default_clock
    from mailer.services.runner import cancel_campaign

    settings, c = _load(obj, file, lenient=True, offline=True)
    store = obj.store(settings)
    if key is not None and key not in {t.entry_key for t in store.campaign_threads(c.name)}:
        # A typo in KEY is an error, not "nothing to cancel".
        raise InputError(f"campaign {c.name!r} has sent nothing for an entry {key!r}")
    cancelled = cancel_campaign(c.name, store, default_clock()(), key)
    if not cancelled:
        click.echo(f"campaign {c.name!r}: no follow-up was pending; nothing to cancel.")
        return
    click.echo(
        f"campaign {c.name!r}: cancelled the follow-ups of {len(cancelled)} thread(s): "
        + ", ".join(str(t) for t in cancelled)
    )
