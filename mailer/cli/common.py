"""What every command shares: the context object, the error handler, showing a message."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import click

from mailer.errors import ExitCode, MailerError


@dataclass
class Context:
    config: str | None
    debug: bool
    sandbox: bool
    # The stores this command opened: closed before the process ends (_after_short_command).
    opened: list[Any] = field(default_factory=list)

    def workspace_hint(self) -> Path:
        """Where the sandbox and its state go: the workspace of --config, else the nearest
        workspace, else the fixed per-user data directory (never the current folder, which
        would start a new sandbox with an empty history in each folder)."""
        from mailer.adapters.config import CONFIG_RELPATH, workspace_of
        from mailer.adapters.userdirs import user_data_dir

        if self.config:
            return workspace_of(Path(self.config).expanduser().resolve())
        for d in (Path.cwd(), *Path.cwd().parents):
            if (d / CONFIG_RELPATH).is_file():
                return d
        return user_data_dir()

    def settings(self, need_secrets: bool = False, offline: bool = False) -> Any:
        """The settings a command needs. ``offline``: it never connects, so only [sender]
        must be complete (see :func:`mailer.adapters.config.load_settings`)."""
        from mailer.adapters.config import find_config, load_settings

        if self.sandbox:
            from mailer.sandbox.stack import not_running, running_sandbox, sandbox_dir

            ws = self.workspace_hint()
            sdir = sandbox_dir(ws)
            # Reading sandbox history works while it is stopped; talking to it does not.
            if running_sandbox(ws) is None and (
                need_secrets or not (sdir / "config" / "mailer.toml").exists()
            ):
                raise not_running(ws)
            return load_settings(
                sdir / "config" / "mailer.toml",
                env_file=sdir / ".env",
                need_secrets=need_secrets,
                workspace=ws,
                offline=offline,
                environment=False,  # the sandbox's passwords, never the user's real ones
            )
        return load_settings(
            find_config(Path.cwd(), self.config), need_secrets=need_secrets, offline=offline
        )

    def need_running_sandbox(self) -> None:
        """In sandbox mode, the sandbox must run for a command that talks to it (its
        settings alone are read while it is stopped): one line saying so, not a wait for a
        connection refused on the ports it had."""
        if not self.sandbox:
            return
        from mailer.sandbox.stack import not_running, running_sandbox

        ws = self.workspace_hint()
        if running_sandbox(ws) is None:
            raise not_running(ws)

    def check_sandbox_recipients(self, addresses: Iterable[str]) -> None:
        """In sandbox mode, refuse an address that has no sandbox mailbox before anything is
        sent (the sandbox's SMTP server would refuse it too, but only after the attempt was
        recorded). A stopped sandbox is refused later, when its settings are loaded."""
        if not self.sandbox:
            return
        from mailer.sandbox.stack import check_recipients, running_sandbox

        info = running_sandbox(self.workspace_hint())
        if info is not None:
            check_recipients(info, addresses)

    def store(self, settings: Any, *, to_read: bool = False) -> Any:
        """The workspace's state store; never a new, empty one where its history should be
        (see :mod:`mailer.adapters.anchor`). What opening it found (a migration's report) is
        shown. ``to_read``: a reader that needs no SQLAlchemy when nothing needs doing to the
        store (``status``; see :func:`mailer.adapters.store.open_to_read`)."""
        from mailer.adapters import anchor as anchors
        from mailer.adapters.store import Store, open_to_read

        anchor = anchors.anchor_path(settings.path)
        where = f"{settings.path}: state.url"
        recorded = anchors.check_before_open(anchor, settings.state_url, where)
        connect = getattr(settings, "state_connect", None) or None  # PostgreSQL's password, TLS
        store = (
            open_to_read(settings.state_url, connect)
            if to_read
            else Store(settings.state_url, connect=connect)
        )
        self.opened.append(store)  # closed at the end even if a check below refuses it
        anchors.check_after_open(
            anchor, recorded, settings.state_url, store.store_id, where, store.named_now
        )
        for notice in store.notices:
            warn(notice)
        return store


def _report(exc: MailerError) -> None:
    from mailer.adapters.config import printable

    problems = getattr(exc, "problems", None)  # ConfigError, or facts with several problems
    lines = problems if problems and len(problems) > 1 else [str(exc)]
    for i, line in enumerate(lines):
        hint = f" ({exc.hint})" if exc.hint and i == len(lines) - 1 else ""
        # One line each, whatever a file or a server put in the message.
        click.echo(f"mailer: {_label('error', 'red')}: {printable(f'{line}{hint}')}", err=True)


class _OneLineUsage(click.ClickException):
    """A usage error said as every other error is: one line, exit code 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        from mailer.adapters.config import printable

        click.echo(f"mailer: {_label('error', 'red')}: {printable(self.message)}", err=True)


def _one_line(exc: click.UsageError) -> click.ClickException:
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):  # a bare group: its help, as is
        return exc
    said = exc.format_message().rstrip(".")
    where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
    return _OneLineUsage(f"{said}{where}")


class OneLineGroup(click.Group):
    """The top-level group: click's own usage errors (a missing or unknown option, a value
    not among the choices) in one line, as every other error is, instead of click's usage,
    hint and message on four lines. Everything else is click's standalone mode, unchanged."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            raise _one_line(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)  # (its subcommands' arguments are parsed in here)
        except click.UsageError as exc:
            raise _one_line(exc) from None


def warn(line: str) -> None:
    """``mailer: warning: LINE`` on stderr, the label in yellow on a terminal."""
    click.echo(f"mailer: {_label('warning', 'yellow')}: {line}", err=True)


def _label(word: str, colour: str) -> str:
    from mailer.cli.console import paint

    return paint(word, colour, sys.stderr)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Every command: MailerError -> one line and its exit code; tracebacks only with --debug."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        debug = bool(ctx.find_root().obj and ctx.find_root().obj.debug)
        try:
            return fn(*args, **kwargs)
        except MailerError as exc:
            if debug:
                # The traceback is for the user; the exit code is for their scripts, and
                # must not change with --debug.
                import traceback

                traceback.print_exc(file=sys.stderr)
            _report(exc)
            sys.exit(int(exc.exit_code))
        except KeyboardInterrupt:
            click.echo("mailer: interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            # The reader went away (`mailer status | head`): stop quietly, as Unix tools do.
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except OSError as exc:
            if debug:
                raise
            if not exc.filename:
                _internal(exc)
            # A folder the user cannot write (a read-only HOME, a data directory owned by root)
            # is theirs to fix: name the path, not our code.
            click.echo(f"mailer: cannot use {exc.filename}: {exc.strerror or exc}", err=True)
            sys.exit(int(ExitCode.FAILURE))
        except Exception as exc:
            if debug:
                raise
            _internal(exc)

    return wrapper


def _internal(exc: BaseException) -> NoReturn:
    click.echo(
        f"mailer: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
        err=True,
    )
    sys.exit(int(ExitCode.FAILURE))


def warm_connections(settings: Any) -> None:
    """Start building the TLS contexts the account's SMTP connection (and the IMAP one of
    its Sent copy) will need, while the command composes or checks first (see
    connection.warm_tls_contexts). Imported here: ssl is not for every command."""
    from mailer.adapters.connection import warm_tls_contexts

    imap = [settings.imap.ca_file] if settings.imap.save_sent else []
    warm_tls_contexts(settings.smtp.ca_file, *imap)


def composer(settings: Any) -> Any:
    """The composer the commands use: compiled templates kept for the next run."""
    from mailer.adapters.templatecache import template_cache
    from mailer.model.composer import Composer

    return Composer(settings.templates_dir, compiled_cache=template_cache)


def _show(prepared: Any) -> None:
    _show_raw(prepared.composed)
    _show_findings(prepared.findings)


def _show_findings(findings: Any) -> None:
    from mailer.model.lint import format_finding, summary

    click.echo(f"\nApology check: {summary(findings)}")
    for f in findings:
        click.echo(format_finding(f))


def _show_raw(composed: Any) -> None:
    from email import message_from_bytes
    from email.policy import default

    msg = message_from_bytes(composed.raw, policy=default)
    for name in ("From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To"):
        if msg[name]:
            click.echo(f"{name}: {msg[name]}")
    click.echo("")
    click.echo(composed.text, nl=False)


def without_collector(ctx: click.Context, collect: bool = False) -> None:
    """Run the command ``ctx`` invokes without the cycle collector, for a command that reads,
    prints and ends, making few reference cycles: the collector would only walk the modules
    just loaded again and again (a twentieth of a preview). When the command is done it is
    on again, for a caller in the same process; in mailer's own process, which ends next,
    everything is frozen instead (see :func:`_after_short_command`). Every other command,
    the daemon first, keeps the collector throughout.

    ``collect``: the collector stays on while the command runs, and only the freezing at
    its end is done. For campaigns: rendering each entry makes reference cycles, and
    without the collector their memory would grow with the number of entries."""
    import gc

    if gc.isenabled():
        if not collect:
            gc.disable()
        obj = ctx.find_object(Context)
        ctx.call_on_close(lambda: _after_short_command(obj.opened if obj else []))


# Set by mailer.cli.main.main, the command line's own process: it ends once the command has.
PROCESS_ENDS_AFTER_COMMAND = False


def _after_short_command(stores: list[Any]) -> None:
    import gc

    # The interpreter's last collection, as it exits, walks every object the modules loaded
    # (a tenth of a preview, 40-90 ms after a 300-entry campaign run): frozen, they are left
    # to the exit. Such a command leaves nothing behind that needs finalising (it wrote
    # nothing but its output, flushed as ever, and its stores, closed here so SQLite folds
    # the write-ahead log back into the file as it always did), unless it went through
    # SQLAlchemy (PostgreSQL, a store it migrated): its pool sits in reference cycles, and
    # that collection is what closes the connections politely.
    if PROCESS_ENDS_AFTER_COMMAND and "sqlalchemy" not in sys.modules:
        for store in stores:
            store.close()
        gc.freeze()
    else:
        gc.enable()


# The commands whose advice names a thread, an entry or the state: in --sandbox mode they
# must name the sandbox's ("mailer release 3" is the user's own thread 3, not the sandbox's).
_ADVISED = (
    r"\bmailer (?=(?:mark-replied|release|resolve|cancel|status|check|campaign|preview|send|"
    r"call-script|daemon|doctor)\b)"
)


class SandboxAdvice:
    """A text stream (stdout, stderr) that writes every "mailer COMMAND" the output advises
    as "mailer --sandbox COMMAND": the advice is written in many places, and each would
    otherwise send a user who follows it word for word to their real account's threads,
    whose IDs overlap the sandbox's."""

    def __init__(self, inner: Any) -> None:
        import re

        self._inner = inner
        self._advised = re.compile(_ADVISED)

    def write(self, text: str) -> int:
        self._inner.write(self._advised.sub("mailer --sandbox ", text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def advise_for_the_sandbox(ctx: click.Context) -> None:
    """Route this command's output through :class:`SandboxAdvice` until it ends."""
    kept = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = SandboxAdvice(sys.stdout), SandboxAdvice(sys.stderr)

    def restore() -> None:
        sys.stdout, sys.stderr = kept

    ctx.call_on_close(restore)
