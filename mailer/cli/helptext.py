"""What ``--help`` shows below the options: an example for every command, and the exit codes
in ``mailer --help``. Kept apart from the commands so the examples read as one page."""

from __future__ import annotations

import click

from mailer.errors import ExitCode

# What each code means to a script (the names are ExitCode's).
EXIT_MEANINGS = {
    ExitCode.OK: "success",
    ExitCode.FAILURE: "failure (something to look at: in doubt, damaged rows, not running)",
    ExitCode.USAGE: "bad input on the command line (an address, a date, an option)",
    ExitCode.CONFIG: "a problem in the config file or a campaign file",
    ExitCode.TEMPLATE: "a template could not be rendered",
    ExitCode.NETWORK: "SMTP/IMAP trouble: refused, unreachable, sign-in",
    ExitCode.REFUSED: "the apology check found errors (--force sends anyway)",
    ExitCode.DUPLICATE: "this interview already has an apology (--again sends anyway)",
    ExitCode.LOCKED: "another mailer (the daemon) holds the state store",
    ExitCode.WAITING: "check, campaign run: nothing failed, but something waits for you (a message in doubt, a held thread, an entry whose interview time changed)",
}
INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT
TERMINATED = 143  # SIGTERM ended 'check' early, as shells report SIGTERM

_FACTS = (
    "--situation illness --to ana@acme.example --interviewer 'Ana Ruiz' \\\n"
    "      --company Acme --role 'Data Engineer' --interview '2026-11-25 10:00'"
)

# Command path (as typed after ``mailer``) -> example lines.
EXAMPLES: dict[str, list[str]] = {
    "": [
        "mailer init && mailer sandbox start",
        f"mailer --sandbox send {_FACTS.replace('ana@acme.example', 'interviewer@sandbox.test')}",
    ],
    "preview": [f"mailer preview {_FACTS}", "mailer preview --follow-up 3"],
    "send": [f"mailer send {_FACTS} \\\n      --note 'I had a fever.'"],
    "situations": ["mailer situations"],
    "status": [
        "mailer status",
        "mailer status 3 --explain",
        "mailer status --json | jq '.threads[].state'",
    ],
    "check": ["mailer check -q        # from cron: prints only problems"],
    "daemon": ["mailer daemon -v"],
    "cancel": ["mailer cancel 3"],
    "mark-replied": ["mailer mark-replied 3 --note 'phoned on Monday'"],
    "release": ["mailer release 3"],
    "resolve": [
        "mailer resolve 3 --sent",
        "mailer resolve 3 --resend",
        "mailer resolve 3 --not-sent",
    ],
    "classify": ["mailer classify reply.eml", "mailer classify --jsonl *.eml | jq .kind"],
    "lint": [
        "mailer lint draft.txt --company Acme --role 'Data Engineer'",
        f"mailer lint {_FACTS}",
    ],
    "call-script": [f"mailer call-script {_FACTS}"],
    "doctor": ["mailer doctor", "mailer doctor --account work"],
    "init": ["mailer init ~/job-search", "mailer init --user     # one config for any folder"],
    "templates": ["mailer templates copy illness"],
    "templates copy": ["mailer templates copy illness", "mailer templates copy follow_up"],
    "completion": [
        "mailer completion bash > ~/.local/share/bash-completion/completions/mailer",
        "mailer completion zsh > ~/.zfunc/_mailer",
        "mailer completion fish > ~/.config/fish/completions/mailer.fish",
    ],
    "sandbox": ["mailer sandbox start", "mailer sandbox inbox"],
    "sandbox start": ["mailer sandbox start"],
    "sandbox stop": ["mailer sandbox stop"],
    "sandbox status": ["mailer sandbox status"],
    "sandbox inbox": ["mailer sandbox inbox interviewer@sandbox.test --full"],
    "sandbox reply": ["mailer sandbox reply 1", "mailer sandbox reply 1 --out-of-office"],
    "campaign": ["mailer campaign check week49", "mailer campaign run week49"],
    "campaign check": ["mailer campaign check week49"],
    "campaign preview": ["mailer campaign preview week49 --entry acme-ana"],
    "campaign run": [
        "mailer campaign run week49 --dry-run",
        "mailer campaign run week49 --limit 5",
    ],
    "campaign status": ["mailer campaign status week49", "mailer campaign status week49 --json"],
    "campaign cancel": ["mailer campaign cancel week49 --entry acme-ana"],
    "auth": ["mailer auth status"],
    "auth set-password": ["mailer auth set-password --account work --server smtp"],
    "auth login": ["mailer auth login --account work"],
    "auth status": ["mailer auth status"],
    "auth logout": ["mailer auth logout --account work"],
    "store": ["mailer store migrate"],
    "store migrate": ["mailer store migrate"],
    "store copy": ["mailer store copy --to postgresql://mailer@db.example.com:5432/mailer"],
}


def _block(title: str, lines: list[str]) -> str:
    # "\b" keeps click from re-wrapping the block; each example line keeps its breaks.
    body = "\n".join(f"  {line}" for text in lines for line in text.split("\n"))
    return f"\b\n{title}:\n{body}"


def exit_codes() -> str:
    rows = [f"{int(code):>3}  {meaning}" for code, meaning in EXIT_MEANINGS.items()]
    rows.append(f"{INTERRUPTED:>3}  interrupted (Ctrl-C)")
    rows.append(f"{TERMINATED:>3}  check: stopped by SIGTERM after the step it was on, no problem")
    return _block("Exit codes", rows)


def add_help(group: click.Group, path: str = "") -> None:
    """Give every command under ``group`` its examples (and the root the exit codes)."""
    examples = EXAMPLES.get(path)
    parts = [_block("Examples" if len(examples) > 1 else "Example", examples)] if examples else []
    if not path:
        parts.append(exit_codes())
    if parts:
        group.epilog = "\n\n".join(parts)
    for name, command in group.commands.items():
        sub = f"{path} {name}".strip()
        if isinstance(command, click.Group):
            add_help(command, sub)
        elif "Example" in (command.help or ""):
            continue  # its docstring shows one already
        elif sub in EXAMPLES:
            lines = EXAMPLES[sub]
            command.epilog = _block("Examples" if len(lines) > 1 else "Example", lines)
