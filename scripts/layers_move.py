"""One-off: move mailer's flat modules into layer packages and rewrite every import (#13 item 8).

Run from the repository root. Idempotent: a module already moved is left alone, and the
rewrite only touches ``mailer.<old name>`` references, so running it again after a merge
brings newly merged files up to date.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

LAYERS = {
    "model": "Pure: facts, composing, the apology lint, classifying, matching, timing, the "
    "lifecycle and the plans. No I/O: it imports no adapter, and none of SQLAlchemy, smtplib, "
    "imapclient, os or subprocess (tests/test_layers.py).",
    "adapters": "I/O behind small interfaces: SMTP, IMAP, the store (SQL only), processes and "
    "locks, the clock, secrets, configuration files. Each has a fake in mailer.testing.",
    "services": "What the commands do, by composing the model and the adapters: send an "
    "apology, a watch pass, the daemon, a campaign run.",
    "cli": "The command line: click commands, thin over the services.",
    "sandbox": "The built-in local mail servers (Dovecot, an SMTP server, an OAuth2 server) "
    "for trying mailer without an account, and for the test suite.",
}

MOVES = {
    # model
    "addresses": "model.addresses",
    "callscript": "model.callscript",
    "classify": "model.classify",
    "composer": "model.composer",
    "excerpt": "model.excerpt",
    "facts": "model.facts",
    "followup": "model.followup",
    "lifecycle": "model.lifecycle",
    "lint": "model.lint",
    "matching": "model.matching",
    "plan": "model.plan",
    "decision": "model.decision",
    "runplan": "model.runplan",
    "redact": "model.redact",
    "schedule": "model.schedule",
    "senders": "model.senders",
    "settings": "model.settings",
    "templating": "model.templating",
    "throttle": "model.throttle",
    "values": "model.values",
    "when": "model.when",
    "zones": "model.zones",
    # adapters
    "clock": "adapters.clock",
    "config": "adapters.config",
    "connection": "adapters.connection",
    "crashpoint": "adapters.crashpoint",
    "lock": "adapters.lock",
    "mailbox": "adapters.mailbox",
    "oauth": "adapters.oauth",
    "passwords": "adapters.passwords",
    "process": "adapters.process",
    "sender": "adapters.sender",
    "shipped": "adapters.shipped",
    "store": "adapters.store",
    "tokens": "adapters.tokens",
    "userdirs": "adapters.userdirs",
    "workspace": "adapters.workspace",
    "anchor": "adapters.anchor",
    # services
    "apology": "services.apology",
    "campaign": "services.campaign",
    "check": "services.passes",
    "passes": "services.incoming",
    "daemon": "services.daemon",
    "delivery": "services.delivery",
    "runner": "services.runner",
    "threadview": "services.threadview",
    "watcher": "services.watcher",
    "decisions": "services.decisions",
    # cli
    "cli": "cli.main",
    "auth_cli": "cli.auth",
    "campaign_cli": "cli.campaign",
    "cli_common": "cli.common",
    "completion": "cli.completion",
    "console": "cli.console",
    "helptext": "cli.helptext",
    "oauth_cli": "cli.oauth",
    # the sandbox servers
    "sandbox": "sandbox.stack",
    "sandbox_oauth": "sandbox.oauth",
    "sandbox_smtp": "sandbox.smtp",
}
STAY = {"errors", "testing", "__init__", "__main__"}

ROOT = Path.cwd()
TEXT_GLOBS = [
    "mailer/**/*.py",
    "tests/**/*.py",
    "bench/**/*.py",
    "scripts/*.py",
    "scripts/*.sh",
    "docs/*.md",
    "README.md",
    "bench/README.md",
    "contrib/**/*",
    ".ci/run",
]


def move_files() -> None:
    for layer, doc in LAYERS.items():
        pkg = ROOT / "mailer" / layer
        pkg.mkdir(exist_ok=True)
        init = pkg / "__init__.py"
        if not init.exists():
            init.write_text(f'"""{doc}"""\n')
            subprocess.run(["git", "add", str(init)], check=True)
    for old, new in MOVES.items():
        src = ROOT / "mailer" / f"{old}.py"
        dst = ROOT / "mailer" / (new.replace(".", "/") + ".py")
        if src.exists() and old not in LAYERS:
            subprocess.run(["git", "mv", str(src), str(dst)], check=True)
        elif src.exists():
            # A flat module named like its package (sandbox.py): move it in first.
            tmp = ROOT / "mailer" / f"_{old}_flat.py"
            subprocess.run(["git", "mv", str(src), str(tmp)], check=True)
            subprocess.run(["git", "mv", str(tmp), str(dst)], check=True)
    flat = [p.stem for p in (ROOT / "mailer").glob("*.py") if p.stem not in STAY]
    if flat:
        sys.exit(f"not placed in a layer: {', '.join(sorted(flat))}")


def new_name(old: str) -> str | None:
    if old in STAY:
        return old
    return MOVES.get(old)


_REL = re.compile(
    r"^(?P<indent>[ \t]*)from (?P<dots>\.+)(?P<mod>\w+)(?P<rest>(?:\.\w+)*) import ", re.M
)
_REL_PKG = re.compile(r"^(?P<indent>[ \t]*)from (?P<dots>\.+) import (?P<names>[^\n(]+)$", re.M)
_ABS_PKG = re.compile(r"^(?P<indent>[ \t]*)from mailer import (?P<names>[^\n(]+)$", re.M)
_DOTTED = re.compile(r"(?<![\w.\-/])mailer\.(?P<mod>[a-z_]\w*)\b")


def _split_names(indent: str, names: str, package_is_tests: bool = False) -> str:
    lines = []
    for part in names.split(","):
        part = part.strip()
        if not part:
            continue
        name, _, alias = part.partition(" as ")
        name = name.strip()
        target = new_name(name)
        if target is None or target == name:
            lines.append(f"{indent}from mailer import {part}")
            continue
        pkg, _, leaf = target.rpartition(".")
        as_part = f" as {alias.strip()}" if alias else (f" as {name}" if leaf != name else "")
        lines.append(f"{indent}from mailer.{pkg} import {leaf}{as_part}")
    return "\n".join(lines)


def rewrite(text: str, depth: int, package: Path | None = None) -> str:
    """``depth``: how far below mailer/ the file sits (1 for mailer/x.py, 2 for
    mailer/testing/x.py, 0 outside the package). Only a relative import that reaches the
    top of the package names an old flat module."""
    if depth:

        def rel(m: re.Match[str]) -> str:
            target = new_name(m["mod"])
            if target is None:
                return m[0]
            if len(m["dots"]) != depth:
                # A flat module just moved into a package still says ".store": it is the
                # old top level unless a real sibling of that name lives in the package.
                sibling = package is not None and (package / f"{m['mod']}.py").exists()
                if len(m["dots"]) != 1 or (sibling and target != f"{package.name}.{m['mod']}"):
                    return m[0]
            return f"{m['indent']}from mailer.{target}{m['rest']} import "

        def rel_pkg(m: re.Match[str]) -> str:
            if len(m["dots"]) != depth:
                return m[0]
            return _split_names(m["indent"], m["names"])

        text = _REL.sub(rel, text)
        text = _REL_PKG.sub(rel_pkg, text)
    text = _ABS_PKG.sub(lambda m: _split_names(m["indent"], m["names"]), text)

    def dotted(m: re.Match[str]) -> str:
        mod = m["mod"]
        if mod in STAY or (mod in LAYERS and mod not in MOVES):
            return m[0]
        target = MOVES.get(mod)
        if target is None:
            return m[0]
        # Already rewritten: mailer.model.facts is left alone (model/adapters/... are not in
        # MOVES, except sandbox, whose package prefix must not be rewritten twice).
        end = m.end()
        rest = m.string[end : end + 40]
        if mod in ("sandbox", "cli"):
            return m[0]  # package names now: an old mailer.cli / mailer.sandbox is converted
        if mod in ("sandbox", "cli") and rest.startswith(" import "):
            return m[0]  # from mailer.sandbox import stack: the package itself
        if mod == "sandbox" and re.match(r"\.(stack|smtp|oauth)\b", rest):
            return m[0]
        if mod == "cli" and re.match(
            r"\.(main|auth|campaign|common|completion|console|helptext|oauth)\b", rest
        ):
            return m[0]
        return f"mailer.{target}"

    return _DOTTED.sub(dotted, text)


# One name per concept: "check" is only the `mailer check` command (and `campaign check`).
RENAMES = {
    "run_check_all": "run_pass_all",
    "run_check": "run_pass",
    "CheckReport": "PassReport",
    "check_apology": "lint_apology",
    "check_duplicate": "refuse_duplicate",
}
_RENAME = re.compile(r"\b(" + "|".join(RENAMES) + r")\b")


def rewrite_all() -> None:
    seen: set[Path] = set()
    for pattern in TEXT_GLOBS:
        for path in ROOT.glob(pattern):
            if path in seen or not path.is_file() or ".venv" in path.parts:
                continue
            seen.add(path)
            if path.name == "layers_move.py":
                continue
            try:
                text = path.read_text()
            except UnicodeDecodeError:
                continue
            inside = path.relative_to(ROOT).parts
            new = rewrite(
                text,
                depth=len(inside) - 1 if inside[0] == "mailer" else 0,
                package=path.parent if inside[0] == "mailer" and len(inside) > 2 else None,
            )
            if path.suffix == ".py":
                new = _RENAME.sub(lambda m: RENAMES[m[1]], new)
            if new != text:
                path.write_text(new)


# Names that left their module in the move (module, new module, names).
NAME_MOVES = [
    ("mailer.model.facts", "mailer.adapters.clock", {"local_zone", "system_zone"}),
    ("mailer.model.followup", "mailer.model.settings", {"Window", "parse_window"}),
    (
        "mailer.adapters.config",
        "mailer.model.settings",
        {"SenderSettings", "FollowUpSettings", "WatchSettings"},
    ),
    ("mailer.services.campaign", "mailer.model.keys", {"derive_key", "legacy_derive_key"}),
    ("mailer.adapters.store", "mailer.model.keys", {"dedupe_key"}),
    (
        "mailer.services.apology",
        "mailer.model.apology",
        {"Prepared", "prepare", "thread_settings", "with_policy"},
    ),
]
NAME_MOVES.append(
    (
        "mailer.model.schedule",
        "mailer.model.settings",
        {"Wait", "validate_wait", "parse_wait", "MIN_WAIT", "MAX_WAIT", "MAX_BUSINESS_DAYS"},
    )
)
# The user's decisions left the pass for their own module.
NAME_MOVES.append(
    (
        "mailer.services.passes",
        "mailer.services.decisions",
        {"cancel", "mark_replied", "release", "resolve"},
    )
)
SENDING = {
    "send",
    "record",
    "submit",
    "save_sent_copy",
    "file_unfiled_copies",
    "refuse_duplicate",
    "recipient_zone",
    "due_after",
    "SKIPPED_COPY",
    "SendResult",
}


def replay_name_moves() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    from move_names import rewrite_imports

    for src, dst, names in NAME_MOVES:
        rewrite_imports(src, dst, names)
    for path in [*ROOT.glob("mailer/**/*.py"), *ROOT.glob("tests/**/*.py"), *ROOT.glob("bench/**/*.py")]:
        s = o = path.read_text()
        pattern = r"^([ \t]*)from mailer\.services import apology\s*$"
        if re.search(pattern, s, re.M):
            s = re.sub(
                pattern,
                lambda m: f"{m[1]}from mailer.services import sending\n{m[1]}from mailer.model import apology",
                s,
                flags=re.M,
            )
            s = re.sub(
                r"\bapology\.(\w+)\b",
                lambda m: f"sending.{m[1]}" if m[1] in SENDING else m[0],
                s,
            )
        s = s.replace("mailer.services.apology", "mailer.services.sending")
        if s != o:
            path.write_text(s)


if __name__ == "__main__":
    if "--rewrite-only" not in sys.argv:
        move_files()
    rewrite_all()
    replay_name_moves()
