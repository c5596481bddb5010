"""The command line: parse options, load config, call the library, report. Nothing else."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import click

from mailer.cli.common import (
    Context,
    OneLineGroup,
    _show,
    _show_findings,
    _show_raw,
    composer,
    handle_errors,
    warm_connections,
    warn,
    without_collector,
)
from mailer.cli.completion import complete_situation
from mailer.errors import ConfigError, ExitCode, InputError, MailerError, RefusedError


def safe_url(url: str) -> str:
    """The store's URL without a password. Imported on use: ``--help`` and ``preview`` never
    load the store module (it pulls in most of the package)."""
    from mailer.adapters.store import safe_url as hide_password

    return hide_password(url)


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config",
    metavar="PATH",
    envvar="MAILER_CONFIG",
    help="Config file (default: the nearest config/mailer.toml).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs (never passwords).")
@click.option(
    "--sandbox", is_flag=True, help="Use the local sandbox mail server and its own state."
)
@click.version_option(package_name="interview-mailer")
@click.pass_context
def cli(ctx: click.Context, config: str | None, debug: bool, sandbox: bool) -> None:
    """Apologise for a missed or moved job interview by email, then follow up once."""
    ctx.obj = Context(config=config, debug=debug, sandbox=sandbox)
    if sandbox:
        from mailer.cli.common import advise_for_the_sandbox

        advise_for_the_sandbox(ctx)  # (before logging takes its stream)
    if debug or ctx.invoked_subcommand not in (*OFFLINE_COMMANDS, *LOGS_WHEN_NEEDED):
        configure_logging(debug)
    if ctx.invoked_subcommand in SHORT_COMMANDS:
        without_collector(ctx)


# Commands that never connect, and log nothing of their own: they leave the logging module
# unloaded (a tenth of a preview's start-up), unless --debug asks for it.
OFFLINE_COMMANDS = frozenset({"preview", "lint", "call-script"})
# Commands that set logging up themselves, only where a library they use may log: `status`
# reading a SQLite file logs nothing (the logging module was a fiftieth of a listing).
LOGS_WHEN_NEEDED = frozenset({"status"})
# Commands that read, print and end: they run without the cycle collector (without_collector).
SHORT_COMMANDS = OFFLINE_COMMANDS | {"status"}


def configure_logging(debug: bool) -> None:
    import logging

    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="mailer: %(levelname)s: %(message)s",
    )
    if debug:
        logging.getLogger().setLevel(logging.DEBUG)
    # Protocol traces would print the AUTH line: keep them off even with --debug.
    for noisy in ("yagmail", "imapclient", "sqlalchemy", "asyncio", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


account_option = click.option(
    "--account",
    default="",
    metavar="NAME",
    help="Send from [accounts.NAME] in the config (default: the main account).",
)

REQUIRED_FACTS = ("situation", "to", "interviewer", "company", "role", "interview")


def _all_missing_at_once(fn: Callable[..., Any], needed: list[str]) -> Callable[..., Any]:
    """``fn``, refusing first every fact in ``needed`` that is not given, in one error (click's
    own required options name one at a time: six tries for a bare 'mailer send')."""

    @functools.wraps(fn)
    def checked(*args: Any, **opts: Any) -> Any:
        missing = [f"'--{name}'" for name in needed if not opts.get(name)]
        if missing:
            raise click.UsageError(
                f"Missing option{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
            )
        return fn(*args, **opts)

    return checked


def fact_options(
    required: bool = True, omit: tuple[str, ...] = (), optional: tuple[str, ...] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The facts of one apology; campaign entries use the same names as keys. ``omit``: the
    options that mean nothing to a command (a call has no --cc) are not offered at all;
    ``optional``: facts it can do without (a call needs no address)."""
    options = [
        click.option(
            "--situation",
            "-s",
            shell_complete=complete_situation,
            help="illness, personal, emergency, transport, technical or conflict.",
        ),
        click.option("--to", help="The interviewer's email address."),
        click.option("--interviewer", help="The interviewer's full name, as in the To: header."),
        click.option(
            "--salutation",
            default="",
            help="How to greet them: 'Ms Ruiz' gives 'Dear Ms Ruiz,' (default: the first name "
            "of --interviewer, or the whole of it after a title such as 'Dr').",
        ),
        click.option("--company"),
        click.option("--role", help="The position you interviewed for."),
        click.option(
            "--interview",
            metavar="WHEN",
            help="When the interview was (or is): '2026-11-25 10:00', '25 Nov 10am', "
            "'tomorrow 10:00', 'next Tuesday 14:00'; your zone unless one follows ('10:00 CET').",
        ),
        click.option("--note", default="", help="A personal line, in your own words."),
        click.option(
            "--free",
            multiple=True,
            metavar="SLOT",
            help="A time you are free, e.g. '2026-12-01 09:00-12:00' or 'next Tuesday "
            "9am-11am' (repeatable).",
        ),
        click.option(
            "--interviewer-tz",
            default="",
            help="The interviewer's time zone, e.g. Europe/Berlin (or EST, CET).",
        ),
        click.option(
            "--interviewer-phone", default="", help="The interviewer's phone number, if known."
        ),
        click.option("--cc", multiple=True, help="Also send to this address (repeatable)."),
        click.option(
            "--var",
            multiple=True,
            metavar="KEY=VALUE",
            help="An extra template variable (repeatable).",
        ),
        click.option(
            "--alt-address",
            multiple=True,
            help="Another address the interviewer may reply from (repeatable).",
        ),
        click.option(
            "--alt-domain",
            multiple=True,
            help="A reply from any address at this domain counts (repeatable).",
        ),
    ]

    needed = [name for name in REQUIRED_FACTS if name not in (*omit, *optional)]

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        if required:
            fn = _all_missing_at_once(fn, needed)
        for option in reversed(options):
            probe = option(lambda: None)
            names = [p.name for p in probe.__click_params__]  # type: ignore[attr-defined]
            if not set(names) & set(omit):
                fn = option(fn)
        return fn

    return decorate


def _facts(settings: Any, opts: dict[str, Any], now: Any, require_to: bool = True) -> Any:
    from mailer.adapters.clock import local_zone
    from mailer.model.composer import situations_in
    from mailer.model.facts import make_facts

    return make_facts(
        situation=opts["situation"],
        to=opts["to"],
        interviewer=opts["interviewer"],
        company=opts["company"],
        role=opts["role"],
        interview=opts["interview"],
        tz=local_zone(settings.sender.timezone),
        salutation=opts.get("salutation", ""),
        note=opts["note"],
        free=opts["free"],
        interviewer_tz=opts["interviewer_tz"],
        interviewer_phone=opts["interviewer_phone"],
        cc=opts.get("cc", ()),
        var=opts["var"],
        alt_address=opts.get("alt_address", ()),
        alt_domain=opts.get("alt_domain", ()),
        allow_test_domains=settings.allow_test_domains,
        now=now,
        locale=settings.sender.locale if settings.sender.locale_set else None,
        require_to=require_to,
        situations=situations_in(settings.templates_dir),
    )


def _echo_readings(facts: Any) -> None:
    """How each date was read (beside the message, like the apology check), and warnings
    such as an address typo (on stderr)."""
    if facts.readings:
        click.echo("")
    for line in facts.readings:
        click.echo(line)
    for warning in facts.warnings:
        warn(warning)


@cli.command()
@fact_options(required=False)
@click.option(
    "--follow-up",
    "follow_up",
    type=int,
    metavar="ID",
    help="Show the follow-up that would go out for thread ID.",
)
@account_option
@click.pass_obj
@handle_errors
def preview(obj: Context, follow_up: int | None, account: str, **opts: Any) -> None:
    """Print exactly what would be sent. No network: only [sender] is needed."""
    from mailer.adapters.clock import default_clock
    from mailer.model.apology import prepare

    settings = obj.settings(offline=True).for_account(account)
    now = default_clock()()
    if follow_up is not None:
        from mailer.services.passes import build_follow_up

        store = obj.store(settings)
        thread = store.thread(follow_up)
        if thread is None:
            raise InputError(f"no thread {follow_up} in {safe_url(settings.state_url)}")
        from mailer.model.followup import OPEN_STATES
        from mailer.model.lifecycle import ThreadState

        if thread.state not in OPEN_STATES:
            state = thread.state.replace("_", " ")
            click.echo(f"Thread {follow_up} is {state}: no follow-up will go.")
            return
        if thread.follow_ups_sent >= thread.max_follow_ups:
            # Its follow-ups have gone (or none is set): a preview of one more showed a
            # message that never goes (a walkthrough).
            click.echo(
                f"Thread {follow_up} has had {thread.follow_ups_sent} of its "
                f"{thread.max_follow_ups} follow-up(s): no further follow-up will go; it closes "
                "as no answer when due, unless a reply comes."
                if thread.max_follow_ups
                else f"Thread {follow_up} has no follow-up set: none will go."
            )
            return
        # As it would go: at its due time, not now (the free times it offers are those still
        # ahead then, and an out-of-office may have moved it).
        from datetime import datetime

        due = datetime.fromisoformat(thread.follow_up_due) if thread.follow_up_due else None
        at = max(now, due) if due else now
        if at > now:
            from mailer.adapters.clock import local_zone

            mine = at.astimezone(local_zone(settings.sender.timezone))
            click.echo(f"(as it would go when due, {mine:%a %d %b %H:%M %Z})", err=True)
        if thread.state == ThreadState.HELD:
            # Open, but nothing goes while it is held (a walkthrough: the preview did not say).
            click.echo(
                f"(thread {follow_up} is held: this goes only after 'mailer release "
                f"{follow_up}'; 'mailer status {follow_up}' says why it is held)",
                err=True,
            )
        _show_raw(build_follow_up(settings, store, thread, at))
        return
    missing = [f"--{name}" for name in REQUIRED_FACTS if not opts[name]]
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)} (or give --follow-up ID)")
    prepared = prepare(settings, _facts(settings, opts, now), now, composer(settings))
    _show(prepared)
    _echo_readings(prepared.facts)


@cli.command(short_help="Send the apology now, keep a copy in Sent.")
@fact_options()
@click.option(
    "--yes", "-y", is_flag=True, help="Send without asking (required without a terminal)."
)
@click.option("--dry-run", is_flag=True, help="Show the message and stop before connecting.")
@click.option("--force", is_flag=True, help="Send even if the apology check finds errors.")
@click.option(
    "--again", is_flag=True, help="Send even though this interview already has an apology."
)
@account_option
@click.pass_obj
@handle_errors
def send(
    obj: Context, yes: bool, dry_run: bool, force: bool, again: bool, account: str, **opts: Any
) -> None:
    """Send the apology now, keep a copy in Sent, and record it for the follow-up."""
    from mailer.adapters.clock import default_clock
    from mailer.cli.console import stdin_is_terminal
    from mailer.model import apology
    from mailer.services import sending

    if not dry_run and not yes and not stdin_is_terminal():
        # Said before anything is built, shown or asked for: no answer could ever come.
        raise InputError("refusing to send without --yes: there is no terminal to confirm on")
    clock = default_clock()
    # Only this account's password is needed: the others are not fetched (nor asked for).
    settings = obj.settings(need_secrets=not dry_run and not account).for_account(account)
    if not dry_run:
        from mailer.adapters.passwords import unlock

        warm_connections(settings)  # while the apology is composed and checked
        unlock(settings, [account])
    now = clock()
    facts = _facts(settings, opts, now)
    obj.check_sandbox_recipients([facts.to, *facts.cc])
    store = None
    taken: frozenset[str] = frozenset()
    if not dry_run or _has_store(settings.state_url):
        # A dry run shows what a send would do: refused as a duplicate, or its subject made
        # to differ from an open thread's. It makes no store where there is none yet.
        store = obj.store(settings)
        if not again:  # before showing anything: nothing to confirm
            # (first: it closes an earlier attempt that never reached the server, whose
            # subject the new one must then not step aside from with "(role)")
            sending.refuse_duplicate(store, facts, clock(), settings.account)
        taken = store.open_subjects(facts.to)
    # sending: a free time in the interviewer's night is an error, so --force overrides it.
    prepared = apology.prepare(
        settings, facts, now, composer(settings), sending=True, taken_subjects=taken
    )
    _show(prepared)
    from mailer.model.callscript import urgency
    from mailer.model.lint import has_errors

    advice = urgency(prepared.facts.interview, clock(), prepared.facts.interviewer_phone)
    if advice:
        click.echo(f"\nTiming: {advice}")
    _echo_readings(prepared.facts)
    if has_errors(prepared.findings) and not force:
        raise RefusedError(
            "the apology check found errors (listed above); fix the text or pass --force"
        )
    if dry_run or store is None:
        click.echo("\n(dry run: nothing was sent)")
        return
    if not yes and not click.confirm(f"\nSend this to {prepared.facts.to} now?", default=False):
        click.echo("Not sent.")
        sys.exit(int(ExitCode.FAILURE))
    result = sending.send(settings, prepared, store, clock, again=again)
    click.echo(f"\nSent: thread {result.thread_id}, Message-ID {result.message_id}")
    click.echo(f"Sent copy: {result.sent_copy}")
    if result.follow_up_due:
        from mailer.adapters.clock import local_zone

        # In the user's zone, as status shows it; in the interviewer's too when it differs
        # (the sending window is theirs).
        due = result.follow_up_due
        mine = due.astimezone(local_zone(settings.sender.timezone))
        theirs = f" ({due:%a %H:%M %Z} for them)" if due.utcoffset() != mine.utcoffset() else ""
        click.echo(f"Follow-up due: {mine:%a %Y-%m-%d %H:%M %Z}{theirs} if no reply comes")
        interview = prepared.facts.interview
        if clock() < interview < due:
            # Asked to move an interview that comes before the follow-up would: the email
            # may not be read in time, and a follow-up then is late.
            at = interview.astimezone(mine.tzinfo)
            click.echo(
                f"That is after the interview itself ({at:%a %d %b %H:%M}): if they have not "
                "answered by then, call them."
            )
    for warning in result.warnings:
        warn(warning)
    if prepared.facts.interviewer_phone:
        click.echo(
            f"Now call {prepared.facts.interviewer} on {prepared.facts.interviewer_phone}: "
            "'mailer call-script' (same options) prints what to say."
        )


def _has_store(url: str) -> bool:
    """Whether the state store exists (a database server's always does)."""
    from mailer.adapters.anchor import sqlite_path

    path = sqlite_path(url)
    return path is None or path.exists()


@cli.command(short_help="List the situations there are templates for.")
@click.pass_obj
@handle_errors
def situations(obj: Context) -> None:
    """List the situations there are templates for: the built-in ones, and each
    templates/NAME.txt.j2 of the workspace."""
    from mailer.model.composer import situations_in

    found = situations_in(obj.workspace_hint() / "templates")
    for name, meaning in found.items():
        click.echo(f"{name:<10} {meaning}")
    for file, better in found.misnamed.values():
        warn(
            f"templates/{file} is not a situation: a situation's file name is lower-case "
            f"letters, digits, '-' and '_'; rename it {better}.txt.j2"
        )


@cli.command()
@click.argument("thread_id", required=False, type=int)
@click.option(
    "--json", "as_json", is_flag=True, help="Machine-readable output (README: JSON output)."
)
@click.option(
    "--explain", is_flag=True, help="With ID: the decision log (which message caused what)."
)
@click.option(
    "--daemons", is_flag=True, help="Which daemon holds which account's lease, since when."
)
@click.pass_obj
@handle_errors
def status(
    obj: Context, thread_id: int | None, as_json: bool, explain: bool, daemons: bool
) -> None:
    """List threads, or show one thread with its messages. Times are in your zone."""
    from mailer.adapters.clock import local_zone
    from mailer.services import threadview as view

    # It never connects to a mail server: their settings may be unfinished, or broken.
    settings = obj.settings(offline=True)
    if daemons or not settings.state_url.startswith("sqlite"):
        configure_logging(obj.debug)  # PostgreSQL's driver, the lease module: they may log
    store = obj.store(settings, to_read=True)
    tz = local_zone(settings.sender.timezone)
    if daemons:
        from mailer.cli.leases import show_leases

        show_leases(store.leases(), tz, as_json)
        return
    alive = view.owners_alive()
    if thread_id is None:
        import gc

        # A listing makes a dozen objects a thread, none in a cycle: the collector would only
        # walk them again and again (a sixth of the time at 10k threads). (Run from the
        # command line it is off already, see cli; not when called in-process.)
        collecting = gc.isenabled()
        gc.disable()
        try:
            _status_list(store, tz, alive, as_json)
        finally:
            if collecting:
                gc.enable()
        return
    whole = store.thread_whole(thread_id, events=explain)
    if whole is None:
        raise InputError(f"no thread {thread_id} in {safe_url(settings.state_url)}")
    t, msgs, events = whole
    if as_json:
        shape = view.thread_dict(t, msgs, tz, alive)
        shape["messages"] = [view.message_dict(m, tz) for m in msgs]
        if explain:
            shape["events"] = [view.event_dict(e, tz) for e in events]
        click.echo(json.dumps({"version": view.JSON_VERSION, "thread": shape}, indent=2))
        return
    click.echo(f"Thread {t.id}: {t.recipient_name} <{t.recipient}>, {t.role} at {t.company}")
    click.echo(
        f"  situation: {t.situation}; interview: {view.shown(t.interview_at, tz, weekday=True)}"
    )
    click.echo(f"  subject:   {t.subject}")
    click.echo(f"  state:     {view.describe(t, msgs, tz, alive)}")
    click.echo(f"  follow-ups: {t.follow_ups_sent} of {t.max_follow_ups} sent")
    for m in msgs:
        click.echo(
            f"  - {m.kind} {m.message_id}: {view.message_words(m, alive)}"
            + (f" at {view.shown(m.sent_at, tz)}" if m.sent_at else "")
            + (f" ({m.error})" if m.error else "")
        )
        if m.sent_copy:
            click.echo(f"    Sent copy: {m.sent_copy}")
    if explain:
        click.echo("  decisions:")
        for e in events:
            click.echo(f"    {view.shown(e['at'], tz)}  {e['kind']:<10} {e['detail']}")


def _status_list(store: Any, tz: Any, alive: Any, as_json: bool) -> None:
    # Damaged rows are left out or marked, and named in store.damaged.
    if as_json:
        from mailer.services import threadview as view

        listed = store.thread_list()  # one query
        threads = [view.thread_dict(t, msgs, tz, alive) for t, msgs in listed if msgs is not None]
        click.echo(json.dumps({"version": view.JSON_VERSION, "threads": threads}, indent=2))
        _damaged(store)
        return
    listed = store.thread_summaries()  # only what the table shows
    if not listed and not store.damaged:
        click.echo("No threads yet. Send an apology with 'mailer send'.")
        return
    _status_table(listed, tz, alive)
    _damaged(store)


def _status_table(listed: list[tuple[Any, Any]], tz: Any, alive: Any) -> None:
    """One row per thread; a damaged one says so, and the warning below names it."""
    from mailer.cli.console import STATE_STYLES, print_rows
    from mailer.services import threadview as view

    columns = [
        ("ID", {"justify": "right", "no_wrap": True}),
        ("RECIPIENT", {}),
        ("COMPANY", {}),
        ("SITUATION", {}),
        ("SENT", {"no_wrap": True}),
        ("STATE", {}),
    ]
    rows: list[tuple[list[str], str | None]] = []
    for t, msgs in listed:
        if msgs is None:
            state, style = "damaged: see the warning below", "bold red"
        else:
            state, word = view.described(t, msgs, tz, alive)
            style = STATE_STYLES.get(word)
        sent = view.shown(t.sent_at, tz) if t.sent_at else "-"
        rows.append(([str(t.id), t.recipient, t.company, t.situation, sent, state], style))
    print_rows(columns, rows)


def _damaged(store: Any) -> None:
    """Name the rows that could not be read, after all the others were shown; exit 1."""
    for line in store.damaged:
        warn(f"{safe_url(store.url)}: {line}")
    if store.damaged:
        sys.exit(int(ExitCode.FAILURE))


def loudness_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """-q/--quiet and -v/--verbose, for the commands cron and systemd run."""
    fn = click.option(
        "-v", "--verbose", is_flag=True, help="Say more: debug lines, and what waits for when."
    )(fn)
    return click.option(
        "-q", "--quiet", is_flag=True, help="Only warnings and errors (for cron: no news, no mail)."
    )(fn)


def _log_level(obj: Context, quiet: bool, verbose: bool) -> int:
    import logging

    if quiet and verbose:
        raise click.UsageError("-q/--quiet and -v/--verbose do not go together")
    if verbose or obj.debug:
        return logging.DEBUG
    return logging.WARNING if quiet else logging.INFO


@cli.command(short_help="One pass of the daemon's work, then exit.")
@loudness_options
@click.pass_obj
@handle_errors
def check(obj: Context, quiet: bool, verbose: bool) -> None:
    """One pass of the daemon's work: scan replies, settle in-doubt sends, send due follow-ups."""
    import logging
    import signal
    import threading

    from mailer.adapters.clock import default_clock
    from mailer.adapters.lock import store_lock
    from mailer.cli.helptext import TERMINATED
    from mailer.services.daemon import log_report
    from mailer.services.passes import check_all

    level = _log_level(obj, quiet, verbose)
    settings = obj.settings(need_secrets=True)
    _unlock_all(settings)
    store = obj.store(settings)
    logging.getLogger("mailer").setLevel(level)
    clock = default_clock()
    # SIGTERM (systemd stopping the unit, a timeout) ends the pass after the step it is on,
    # not inside an SMTP transaction, and lets the pass give back its leases at once rather
    # than hold the accounts until they expire.
    stop = threading.Event()
    # Given back when check returns: a caller running it in its own process keeps its own.
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with store_lock(settings.state_url, settings.workspace, "mailer check"):
            report = check_all(settings, store, clock, stop)
    finally:
        signal.signal(signal.SIGTERM, previous)
    log_report(report)
    if verbose:
        _whats_next(settings, store)
    if not quiet:
        click.echo(
            f"checked: {len(report.seen)} new related message(s), {len(report.sent)} "
            f"follow-up(s) sent, {len(report.closed)} closed, {len(report.problems)} problem(s), "
            f"{len(report.in_doubt)} in doubt"
            + (f", {len(report.held)} held for you (see above)" if report.held else "")
        )
    if report.stopped:
        leases = "" if settings.state_url.startswith("sqlite") else ", its leases given back"
        # "Recorded" holds only for a pass with no problem: one may be a record that failed.
        done = (
            f"{len(report.problems)} problem(s) above"
            if report.problems
            else "what it did is recorded"
        )
        click.echo(
            f"mailer: check stopped by SIGTERM after the step it was on ({done}{leases}); "
            "run 'mailer check' again for the rest",
            err=True,
        )
    # Problems decide the exit code: a unit that counts 143 as success must not hide them.
    if report.problems:
        sys.exit(int(ExitCode.NETWORK))
    if report.stopped:
        sys.exit(TERMINATED)
    if report.in_doubt or report.held:  # nothing failed, but something waits for the user
        sys.exit(int(ExitCode.WAITING))


def _whats_next(settings: Any, store: Any) -> None:
    """For -v: each thread still waiting for a reply, and when its follow-up is due."""
    from mailer.adapters.clock import local_zone
    from mailer.model.lifecycle import ThreadState
    from mailer.services import threadview as view

    tz = local_zone(settings.sender.timezone)
    # A thread whose last message is in doubt sends nothing more until it is settled: its
    # due time is not what happens next (the warning above says what to run).
    doubt = {m.thread_id: m.kind for m in store.unsettled_messages()}
    for t in store.threads():
        if t.state == ThreadState.AWAITING:
            if t.id in doubt:
                what = f"its {doubt[t.id].replace('_', '-')} is in doubt (see above)"
            else:
                due = view.shown(t.follow_up_due, tz) if t.follow_up_due else "not scheduled"
                what = f"follow-up due {due}"
            click.echo(f"thread {t.id}: awaiting reply from {t.recipient}; {what}")


@cli.command(short_help="Watch for replies; send due follow-ups.")
@loudness_options
@click.pass_obj
@handle_errors
def daemon(obj: Context, quiet: bool, verbose: bool) -> None:
    """Watch for replies and send due follow-ups until stopped (SIGTERM or Ctrl-C)."""
    import logging
    import signal
    import threading

    from mailer.adapters.clock import default_clock
    from mailer.adapters.lock import store_lock
    from mailer.services.daemon import run_daemon

    level = _log_level(obj, quiet, verbose)
    settings = obj.settings(need_secrets=True)
    from mailer.adapters.passwords import uses_prompt

    prompts = uses_prompt(settings)
    if prompts:
        raise ConfigError(
            f'{prompts[0]}: "prompt" is for one-shot commands; the daemon runs unattended '
            'and cannot ask (use "keyring" or "command")'
        )
    _unlock_all(settings)
    store = obj.store(settings)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s mailer: %(levelname)s: %(message)s"))
    logging.getLogger("mailer").setLevel(level)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if settings.state_url.startswith("sqlite"):
        with store_lock(settings.state_url, settings.workspace, "mailer daemon"):
            run_daemon(settings, store, default_clock(), stop)
    else:
        # A shared database: several daemons, here or on other machines, each on the
        # accounts whose lease it holds (#17). No file lock, which would allow one per host.
        run_daemon(settings, store, default_clock(), stop)


def _unlock_all(settings: Any) -> None:
    """Every account's passwords, fetched before the first pass (commands run, once)."""
    from mailer.adapters.passwords import unlock

    unlock(settings)


@cli.command()
@click.argument("thread_id", type=int)
@click.pass_obj
@handle_errors
def cancel(obj: Context, thread_id: int) -> None:
    """Stop all future follow-ups for a thread."""
    from mailer.adapters.clock import default_clock
    from mailer.services.decisions import cancel as cancel_thread

    settings = obj.settings()
    if cancel_thread(obj.store(settings), thread_id, default_clock()()):
        click.echo(f"Thread {thread_id}: cancelled; no follow-up will be sent.")
    else:
        click.echo(f"Thread {thread_id}: already cancelled; no follow-up will be sent.")


@cli.command("mark-replied", short_help="Record a reply mailer cannot see (a call, say).")
@click.argument("thread_id", type=int)
@click.option("--note", default="", help="How they answered, e.g. 'phoned on Monday'.")
@click.pass_obj
@handle_errors
def mark_replied(obj: Context, thread_id: int, note: str) -> None:
    """Record an answer mailer cannot see (a call, another address); stops follow-ups."""
    from mailer.adapters.clock import default_clock
    from mailer.services.decisions import mark_replied as mark

    settings = obj.settings()
    if mark(obj.store(settings), thread_id, default_clock()(), note):
        click.echo(f"Thread {thread_id}: marked replied; no follow-up will be sent.")
    else:
        click.echo(f"Thread {thread_id}: replied already; no follow-up will be sent.")


@cli.command(short_help="Let a held thread's follow-up go.")
@click.argument("thread_id", type=int)
@click.pass_obj
@handle_errors
def release(obj: Context, thread_id: int) -> None:
    """Let a held thread's follow-up go (the reply that held it was not for this one)."""
    from mailer.adapters.clock import default_clock
    from mailer.services.decisions import after_release
    from mailer.services.decisions import release as release_thread

    settings = obj.settings()
    store = obj.store(settings)
    done = (
        "released" if release_thread(store, thread_id, default_clock()(), settings) else "not held"
    )
    thread = store.thread(thread_id)
    assert thread is not None  # (release said so, or refused)
    click.echo(f"Thread {thread_id}: {done}; {after_release(thread)}.")


@cli.command(short_help="Settle a message in doubt (--sent, --resend or --not-sent).")
@click.argument("thread_id", type=int)
@click.option("--sent", is_flag=True, help="It did arrive: record it as sent.")
@click.option("--resend", is_flag=True, help="It did not arrive: send it again now.")
@click.option(
    "--not-sent",
    "not_sent",
    is_flag=True,
    help="A follow-up of a closed thread (replied, cancelled, ...) did not arrive, or you "
    "cannot find out: record it as not sent. Nothing is sent.",
)
@click.pass_obj
@handle_errors
def resolve(obj: Context, thread_id: int, sent: bool, resend: bool, not_sent: bool) -> None:
    """Settle a message in doubt (cut off after it may have reached the server)."""
    from mailer.adapters.clock import default_clock
    from mailer.services.decisions import resolve as settle

    # Two answers are no answer: the last of them must not win (one resends a message that
    # may have arrived, the other records one that may not have).
    given = [
        flag
        for flag, on in (("--sent", sent), ("--resend", resend), ("--not-sent", not_sent))
        if on
    ]
    if len(given) > 1:
        named = f"{', '.join(given[:-1])} and {given[-1]}"
        raise click.UsageError(f"{named} do not go together: say which happened")
    if not given:
        raise click.UsageError("say --sent, --resend or --not-sent")
    settings = obj.settings(need_secrets=resend)
    result = settle(
        settings,
        obj.store(settings),
        thread_id,
        sent=sent,
        not_sent=not_sent,
        clock=default_clock(),
    )
    click.echo(f"Thread {thread_id}: {result}")


@cli.command(short_help="Tell replies, auto-replies and bounces apart.")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON document: {version, results: [...]}."
)
@click.option("--jsonl", "as_jsonl", is_flag=True, help="JSON Lines: one object per file.")
@handle_errors
def classify(files: tuple[Path, ...], as_json: bool, as_jsonl: bool) -> None:
    """Say whether each .eml file is a human reply, an auto-reply or a bounce. No network."""
    from mailer.model.classify import classify as verdict_of

    if as_json and as_jsonl:
        raise click.UsageError("--json and --jsonl do not go together")
    unreadable = 0
    results = []
    for path in files:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            click.echo(f"mailer: error: {path}: cannot read: {exc.strerror}", err=True)
            unreadable += 1
            continue
        v = verdict_of(raw)
        if as_json or as_jsonl:
            results.append({"file": str(path), **v.to_dict()})
            if as_jsonl:  # each line as soon as it is known: a long run can be piped on
                click.echo(json.dumps(results.pop()))
            continue
        label = v.kind + (f"/{v.subtype}" if v.subtype else "")
        extra = ""
        if v.return_date:
            extra += f" (back {v.return_date.isoformat()})"
        if v.failed_recipients:
            extra += (
                f" (failed: {', '.join(v.failed_recipients)}{f' {v.status}' if v.status else ''})"
            )
        click.echo(f"{path}\t{label}\t{v.reason}{extra}")
    if as_json:
        from mailer.services.threadview import JSON_VERSION

        click.echo(json.dumps({"version": JSON_VERSION, "results": results}, indent=2))
    if unreadable:
        sys.exit(int(ExitCode.USAGE))


@cli.command(short_help="Check an apology's text against the advice.")
@click.argument(
    "name", metavar="[FILE]", required=False, type=click.Path(dir_okay=False, allow_dash=True)
)
@fact_options(required=False)
@click.option(
    "--kind", type=click.Choice(["apology", "follow_up"]), default="apology", help="What FILE is."
)
@click.pass_obj
@handle_errors
def lint(obj: Context, name: str | None, kind: str, **opts: Any) -> None:
    """Check an apology for the advice: FILE (a text, optionally starting 'Subject:'; '-'
    reads standard input), or the message the facts would produce. Exits 6 if it finds
    errors."""
    from mailer.model.lint import has_errors, lint_apology

    # (The name as typed: "./-" is a file called "-", which Path would make "-" again.)
    stdin = name == "-"
    file = Path(name) if name is not None else None
    if file is not None:
        from mailer.model.lint import split_subject
        from mailer.model.values import NAME_MAX, NOTE_MAX, check_body, check_header

        # The same limits as the facts of a message (the check is linear, but need not read
        # a megabyte that cannot be an apology).
        check_header(opts["company"] or "", "--company", NAME_MAX)
        check_header(opts["role"] or "", "--role", NAME_MAX)
        check_body(opts["note"] or "", "--note", NOTE_MAX)
        # "-": the text from standard input (a draft pasted from another program).
        where = "standard input" if stdin else str(file)
        try:
            if stdin:
                data = sys.stdin.buffer.read(1_000_001)
                too_big = "over 1,000,000" if len(data) > 1_000_000 else ""
            else:
                size = file.stat().st_size
                too_big = f"{size:,}" if size > 1_000_000 else ""
                data = b"" if too_big else file.read_bytes()
            if too_big:
                raise InputError(
                    f"{where}: is {too_big} bytes; at most 1,000,000 are read (an apology is "
                    "far shorter)"
                )
            subject, text = split_subject(data.decode("utf-8-sig"))
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{where}: cannot read: {exc}") from None
        findings = lint_apology(
            subject,
            text,
            company=opts["company"] or "",
            role=opts["role"] or "",
            note=opts["note"] or None,
            kind=kind,
        )
    else:
        from mailer.adapters.clock import default_clock
        from mailer.model.apology import prepare

        missing = [f"--{name}" for name in REQUIRED_FACTS if not opts[name]]
        if missing:
            raise click.UsageError(f"give FILE, or the facts: missing {', '.join(missing)}")
        settings, now = obj.settings(offline=True), default_clock()()
        facts = _facts(settings, opts, now)
        findings = list(prepare(settings, facts, now, composer(settings)).findings)
    _show_findings(findings)
    _note_copied_templates(obj)
    if has_errors(findings):
        sys.exit(int(ExitCode.REFUSED))


def _note_copied_templates(obj: Context) -> None:
    """An older 'mailer init' copied every template: say which copies are unchanged, since
    they hold back the wording fixes of later versions."""
    from mailer.model.composer import same_as_builtin

    for path in same_as_builtin(obj.workspace_hint() / "templates"):
        click.echo(
            f"mailer: note: {path} is the same as the built-in one; delete it to get future "
            "wording fixes",
            err=True,
        )


@cli.command("call-script", short_help="Print what to say on the phone, and a voicemail.")
@fact_options(omit=("cc",), optional=("to",))
@click.pass_obj
@handle_errors
def call_script_command(obj: Context, **opts: Any) -> None:
    """Print what to say on the phone (call first, then email), and a voicemail version."""
    from mailer.adapters.clock import default_clock
    from mailer.model.callscript import call_script

    settings, now = obj.settings(offline=True), default_clock()()
    facts = _facts(settings, opts, now, require_to=False)
    click.echo(call_script(facts, settings.sender, now), nl=False)
    _echo_readings(facts)


@cli.command()
@click.option("--account", default=None, metavar="NAME", help="Check only [accounts.NAME].")
@click.pass_obj
@handle_errors
def doctor(obj: Context, account: str | None) -> None:
    """Log in to SMTP and IMAP and find the Sent folder. Sends nothing."""
    from mailer.adapters import passwords
    from mailer.adapters.mailbox import Mailbox
    from mailer.adapters.sender import SmtpSession
    from mailer.cli.oauth import sign_in

    settings = obj.settings(need_secrets=account is None)
    _note_copied_templates(obj)
    names = settings.account_names if account is None else (settings.for_account(account).account,)
    click.echo(f"OK    config {settings.path}")
    failures = 0

    def check(label: str, fn: Callable[[], str]) -> None:
        nonlocal failures
        try:
            click.echo(f"OK    {label}: {fn()}")
        except MailerError as exc:
            failures += 1
            click.echo(f"FAIL  {label}: {exc}" + (f" ({exc.hint})" if exc.hint else ""))

    def smtp(account: Any) -> str:
        with SmtpSession(account.smtp, retries=0):
            return (
                f"logged in to {account.smtp.host}:{account.smtp.port} as {account.smtp.username}"
            )

    def imap(account: Any) -> str:
        with Mailbox(account.imap) as box:
            folder = box.sent_folder()
        return f"logged in to {account.imap.host}:{account.imap.port}; Sent folder is {folder!r}"

    def state() -> str:
        obj.store(settings).close()
        return "state store opens"

    with passwords.failures_remembered():  # one password, failing, is asked for once
        for name in names:
            chosen = settings.for_account(name)
            label = f" (account {name})" if name else ""
            check(f"sign-in{label}", lambda a=chosen: sign_in(a))
            check(f"SMTP{label}", lambda a=chosen: smtp(a))
            check(f"IMAP{label}", lambda a=chosen: imap(a))
    check("state", state)
    if failures:
        sys.exit(int(ExitCode.NETWORK))


@cli.command(short_help="Create a workspace: config, templates/, .env.")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--user",
    "user_level",
    is_flag=True,
    help="Write the user-level config instead, used from any folder outside a workspace.",
)
@handle_errors
def init(directory: Path | None, user_level: bool) -> None:
    """Create a workspace: config/mailer.toml, an empty templates/ for your own wording, and
    .env. Never overwrites."""
    from mailer.adapters.workspace import init_user, init_workspace

    if user_level and directory is not None:
        raise click.UsageError("give DIRECTORY or --user, not both")
    directory = directory or Path(".")
    try:
        created = init_user() if user_level else init_workspace(directory)
    except OSError as exc:
        where = "the user-level config" if user_level else f"{directory}: the workspace"
        raise InputError(f"cannot create {where}: {exc}") from None
    for outcome, path in created:
        click.echo(f"{outcome:<8} {path}")
    config, campaign, env = (path for _, path in created)
    click.echo(
        "\nNext steps:\n"
        f"  1. Edit {config}: your name and address (enough for 'mailer preview'), then "
        "your servers.\n"
        f"  2. Put your password in {env} (MAILER_SMTP_PASSWORD).\n"
        "  3. Run 'mailer doctor' to check the connection.\n"
        "  4. Try 'mailer preview --situation illness ...', then 'mailer send'.\n"
        "  Your own wording: 'mailer templates copy illness', then edit the copy.\n"
        f"  Many at once: edit {campaign}, then 'mailer campaign check example'.\n"
        "  To try everything first without an account: 'mailer sandbox start'."
    )


@cli.command(short_help="Show where the docs, units and data are.")
@handle_errors
def paths() -> None:
    """Show where this installation keeps its docs, systemd units and default templates, and
    where the user-level config and its data go (mailer init --user).

    \b
    Example:
      mailer paths
    """
    from mailer.adapters.shipped import FOLDERS, shipped_dir
    from mailer.model.composer import default_templates_dir

    for name in FOLDERS:
        click.echo(f"{name:<12} {shipped_dir(name)}")
    click.echo(f"{'templates':<12} {default_templates_dir()}")
    from mailer.adapters.userdirs import user_config_path, user_data_dir

    click.echo(f"{'user config':<12} {user_config_path()}")
    click.echo(f"{'user data':<12} {user_data_dir()}")


@cli.group(short_help="Your own wording for the templates.")
def templates() -> None:
    """Your own wording: a workspace templates/ file overrides the built-in one of its name."""


@templates.command("copy", short_help="Start an override from a built-in template.")
@click.argument("situation")
@click.pass_obj
@handle_errors
def templates_copy(obj: Context, situation: str) -> None:
    """Start an override: copy the built-in template for SITUATION (or follow_up) into
    templates/, to edit. Never overwrites."""
    from mailer.adapters.workspace import copy_template

    dest = copy_template(obj.workspace_hint() / "templates", situation)
    click.echo(f"created  {dest}")
    click.echo("Edit it; delete it to go back to the built-in wording (and its future fixes).")


@cli.group(short_help="A private mail server to try mailer on.")
def sandbox() -> None:
    """A private mail server on 127.0.0.1 to try mailer without an account."""


@sandbox.command("start")
@click.pass_obj
@handle_errors
def sandbox_start(obj: Context) -> None:
    """Start the sandbox (Dovecot + SMTP) for this workspace."""
    from mailer.sandbox.stack import sandbox_dir, start_sandbox

    ws = obj.workspace_hint()
    _no_daemon_on_sandbox(ws, "start")
    earlier = _sandbox_threads(sandbox_dir(ws) / "state.db")
    info = start_sandbox(ws)
    if earlier:
        # A sandbox that stopped on its own (a crash) left its history: each start is fresh.
        click.echo(
            f"The earlier sandbox's mail and its {earlier} thread(s) were removed: "
            "a sandbox starts empty."
        )
    click.echo(
        f"Sandbox running: SMTP {info.host}:{info.smtp_port} (STARTTLS), "
        f"IMAP {info.host}:{info.imaps_port} (TLS)"
    )
    click.echo(f"CA certificate: {sandbox_dir(ws) / 'ca.pem'}")
    for user, password in info.users.items():
        click.echo(f"  mailbox {user}  password {password}  (sandbox only)")
    click.echo(
        "Use it with 'mailer --sandbox send ...'; read mail with 'mailer sandbox inbox USER'."
    )


def _no_daemon_on_sandbox(workspace: Path, command: str) -> None:
    """Refuse ``sandbox start|stop`` under a daemon (or a check) working on the sandbox: it
    would go on retrying the gone servers for ever, its store would be deleted under it (a
    start begins a fresh one), and its lock file with it, letting a second daemon start on
    the same store."""
    from mailer.adapters.lock import LockedError, lock_path, store_lock
    from mailer.sandbox.stack import sandbox_dir

    url = f"sqlite:///{sandbox_dir(workspace) / 'state.db'}"
    if lock_path(url, workspace).exists():
        try:
            store_lock(url, workspace, f"mailer sandbox {command}").acquire().release()
        except LockedError as exc:
            raise LockedError(
                f"{exc}; stop it first (Ctrl-C where it runs), then 'mailer sandbox {command}'",
            ) from None


def _sandbox_threads(path: Path) -> int:
    """How many threads the sandbox's store at ``path`` holds (0: none, or unreadable)."""
    import sqlite3

    if not path.exists():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return int(db.execute("SELECT count(*) FROM threads").fetchone()[0])
    except sqlite3.Error:
        return 0


@sandbox.command("stop")
@click.pass_obj
@handle_errors
def sandbox_stop(obj: Context) -> None:
    """Stop the sandbox and delete its mail."""
    from mailer.adapters.userdirs import user_data_dir
    from mailer.sandbox.stack import running_sandbox, stop_sandbox

    workspace = obj.workspace_hint()
    _no_daemon_on_sandbox(workspace, "stop")
    stopped = stop_sandbox(workspace)
    click.echo(
        {
            "stopped": "Sandbox stopped.",
            "not running": "No sandbox is running; nothing to stop.",
            "left behind": "No sandbox was running; removed what a stopped one left behind.",
        }[stopped]
    )
    other = user_data_dir()
    if workspace.resolve() != other.resolve() and running_sandbox(other) is not None:
        # Each workspace has its own; the one the README's first lines start is another.
        click.echo(
            "The sandbox started outside any workspace is still running: run "
            "'mailer sandbox stop' from outside this workspace to stop it too."
        )


@sandbox.command("status")
@click.pass_obj
@handle_errors
def sandbox_status(obj: Context) -> None:
    """Say whether the sandbox is running, and where."""
    from mailer.sandbox.stack import running_sandbox

    info = running_sandbox(obj.workspace_hint())
    if info is None:
        click.echo("Sandbox: not running ('mailer sandbox start' starts it)")
        sys.exit(int(ExitCode.FAILURE))
    click.echo(
        f"Sandbox: running; SMTP {info.host}:{info.smtp_port}, IMAP {info.host}:{info.imaps_port}"
    )


@sandbox.command("inbox", short_help="Show what arrived in a sandbox mailbox.")
@click.argument("user", default="interviewer@sandbox.test")
@click.option("--full", is_flag=True, help="Print each message whole.")
@click.pass_obj
@handle_errors
def sandbox_inbox(obj: Context, user: str, full: bool) -> None:
    """Show what arrived in a sandbox mailbox (over IMAP, like any mail client)."""
    from mailer.sandbox.stack import not_running, read_inbox, running_sandbox

    info = running_sandbox(obj.workspace_hint())
    if info is None:
        raise not_running(obj.workspace_hint())
    messages = read_inbox(info, user)
    if not messages:
        click.echo(f"(no messages for {user})")
    for raw in messages:
        if full:
            click.echo(raw.decode("utf-8", "replace"))
            click.echo("-" * 72)
        else:
            from email import message_from_bytes
            from email.policy import default

            msg = message_from_bytes(raw, policy=default)
            click.echo(f"{msg['Date']}  {msg['From']}  {msg['Subject']}")


@sandbox.command("reply")
@click.argument("thread_id", type=int)
@click.option(
    "--text",
    default="Thank you for letting me know. Could you do Thursday at 10:00?",
    help="What the interviewer writes.",
)
@click.option(
    "--out-of-office", is_flag=True, help="Answer with an automatic out-of-office instead."
)
@click.pass_obj
@handle_errors
def sandbox_reply(obj: Context, thread_id: int, text: str, out_of_office: bool) -> None:
    """Play the interviewer: answer a sandbox thread, in the same thread."""
    from mailer.sandbox.stack import not_running, read_inbox, running_sandbox, send_as

    obj.sandbox = True
    info = running_sandbox(obj.workspace_hint())
    if info is None:
        raise not_running(obj.workspace_hint())
    settings = obj.settings()
    thread = obj.store(settings).thread(thread_id)
    if thread is None:
        raise InputError(f"no thread {thread_id} in the sandbox")
    # The interviewer answers only what reached them: a send cut off before the server took
    # it leaves nothing to answer, and a reply then would tell mailer it was delivered.
    if thread.root_message_id.lower() not in {
        _message_id(raw).lower() for raw in read_inbox(info, thread.recipient)
    }:
        raise InputError(
            f"{thread.recipient} has not received thread {thread_id}'s apology "
            f"({thread.root_message_id}): there is nothing to answer",
            hint=f"'mailer --sandbox status {thread_id}' shows what became of it",
        )
    headers = {"In-Reply-To": thread.root_message_id, "References": thread.root_message_id}
    subject = f"Re: {thread.subject}"
    if out_of_office:
        headers["Auto-Submitted"] = "auto-replied"
        subject = f"Out of Office: {thread.subject}"
        text = "I am out of the office with limited access to email and will reply on my return."
    send_as(info, thread.recipient, settings.sender.address, subject, text, headers)
    what = "sent an out-of-office reply to" if out_of_office else "answered"
    click.echo(f"{thread.recipient} {what} thread {thread_id}.")


def _message_id(raw: bytes) -> str:
    """A message's Message-ID, as the email package reads its (unfolded) header."""
    from email.parser import BytesHeaderParser
    from email.policy import compat32

    return " ".join(str(BytesHeaderParser(policy=compat32).parsebytes(raw)["Message-ID"]).split())


def _remember(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value:
            setattr(ctx.find_root().obj, name, value)
            if name == "debug":
                configure_logging(True)

    return callback


def _accept_global_options_everywhere(group: click.Group) -> None:
    """`mailer send --debug` works as well as `mailer --debug send`."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            _accept_global_options_everywhere(command)
            continue
        # `init` writes your own workspace; the sandbox writes its own config when it starts.
        sandbox_option = (
            []
            if command.name == "init"
            else [
                click.Option(
                    ["--sandbox"],
                    is_flag=True,
                    expose_value=False,
                    callback=_remember("sandbox"),
                    help="Use the local sandbox.",
                )
            ]
        )
        command.params += [
            click.Option(
                ["--config"],
                metavar="PATH",
                expose_value=False,
                callback=_remember("config"),
                help="Config file (as for mailer).",
            ),
            click.Option(
                ["--debug"],
                is_flag=True,
                expose_value=False,
                callback=_remember("debug"),
                help="Show tracebacks (never passwords).",
            ),
            *sandbox_option,
        ]


def _add_campaigns() -> None:
    from mailer.cli.auth import auth
    from mailer.cli.campaign import campaign

    cli.add_command(campaign)
    cli.add_command(auth)


_add_campaigns()


def _add_auth() -> None:
    from mailer.cli.auth import auth
    from mailer.cli.store import store

    cli.add_command(auth)
    cli.add_command(store)


_add_auth()


def _add_completion_and_help() -> None:
    from mailer.cli.completion import completion
    from mailer.cli.helptext import add_help

    cli.add_command(completion)
    add_help(cli)


_add_completion_and_help()
_accept_global_options_everywhere(cli)


def main() -> None:
    from mailer.cli import common

    common.PROCESS_ENDS_AFTER_COMMAND = True
    cli(prog_name="mailer")


if __name__ == "__main__":
    main()
