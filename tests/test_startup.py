"""Start-up (issue #14): `--help` and `preview` load only what they use, and the apology
check compiles its regexes on first use."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

# Heavy or networked libraries no command that only prints should pay for.
HEAVY = ("sqlalchemy", "imapclient", "yagmail", "apscheduler", "rich", "babel", "email_validator")

RUN_AND_LIST_MODULES = """
import json, sys
from mailer.cli.main import cli
try:
    cli(sys.argv[1:], prog_name="mailer", standalone_mode=False)
finally:
    sys.stdout.flush()
    sys.stderr.write("\\nMODULES " + json.dumps(sorted(sys.modules)) + "\\n")
"""


def modules_after(cwd: Path, *args: str) -> tuple[str, set[str]]:
    r = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST_MODULES, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    listed = r.stderr.rsplit("MODULES ", 1)[1]
    return r.stdout, set(json.loads(listed))


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in names)


@pytest.mark.wire  # a fresh interpreter: what importing loads
def test_help_imports_only_click_and_the_command_table(tmp_path: Path) -> None:
    """Verify `mailer --help` loads no library beyond click and no mailer module beyond the
    command line's own (no store, config, model or services)."""
    out, modules = modules_after(tmp_path, "--help")
    assert "preview" in out
    assert loaded(modules, (*HEAVY, "jinja2", "dotenv")) == []
    ours = sorted(m for m in modules if m.startswith("mailer."))
    assert [
        m
        for m in ours
        if not m.startswith("mailer.cli.") and m not in ("mailer", "mailer.cli", "mailer.errors")
    ] == []


@pytest.mark.wire  # a fresh interpreter: what importing loads
def test_preview_loads_no_store_network_or_locale_library(tmp_path: Path) -> None:
    """Verify `mailer preview` with an ISO date and the default locale loads neither the
    store nor any networked, display or locale library, nor .env's reader or logging (it
    never connects), nor importlib.resources or platformdirs (the templates and the cache
    are found without them), and still checks the apology."""
    (tmp_path / "config").mkdir()
    (tmp_path / ".env").write_text("MAILER_SMTP_PASSWORD=not-needed-to-preview\n")
    (tmp_path / "config" / "mailer.toml").write_text(
        '[sender]\nname = "Sam Candidate"\naddress = "sam@candidate.example.org"\n'
    )
    out, modules = modules_after(
        tmp_path,
        "preview",
        *("--situation", "illness", "--to", "ana.ruiz@acme.example.com"),
        *("--interviewer", "Ana Ruiz", "--company", "Acme", "--role", "Data Engineer"),
        *("--interview", "2026-11-24 10:00", "--note", "I had a fever that week."),
    )
    assert "To: Ana Ruiz <ana.ruiz@acme.example.com>" in out and "Apology check:" in out
    assert loaded(modules, (*HEAVY, "dotenv", "logging", "platformdirs")) == []
    assert "mailer.adapters.store" not in modules and "mailer.sandbox.stack" not in modules
    # The packaged templates are found on disk, not through importlib.resources.
    assert "importlib.resources" not in modules


@pytest.mark.wire  # a fresh interpreter: what importing loads
def test_importing_the_apology_check_compiles_no_regex() -> None:
    """Verify the check's ninety-odd regexes wait for the first message checked."""
    code = (
        "import re, mailer.model.lint as lint\n"
        "print(sum(isinstance(v, re.Pattern) for v in vars(lint).values()))\n"
        "lint.lint_apology('Sorry', 'I was ill.', company='Acme', role='Data Engineer')\n"
        "print(sum(isinstance(v, re.Pattern) for v in vars(lint).values()))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after = (int(n) for n in r.stdout.split())
    assert before == 0 and after > 5


def test_a_lazily_built_name_reads_like_a_module_attribute() -> None:
    """Verify `lint._REASON` (and every lazily built name) is there from outside, built once."""
    from mailer.model import lint

    assert isinstance(lint._REASON, re.Pattern) and lint._REASON is lint._REASON
    for name in lint._LAZY:
        assert getattr(lint, name) is not None


def test_short_commands_run_without_the_cycle_collector_and_give_it_back(
    offline_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify `preview` runs with the cycle collector off, and that it is on again once the
    command is done (a caller in the same process keeps it); `campaign check` keeps it on
    (each entry's rendering makes cycles: memory must not grow with the entries);
    `situations`, not a short command, leaves it on."""
    import gc
    from datetime import datetime

    from mailer.adapters.workspace import example_campaign
    from mailer.model import apology, composer
    from mailer.services import campaign

    from .conftest import INTERVIEWER, NOW, run_in_process

    during: list[bool] = []
    prepare, situations_in = apology.prepare, composer.situations_in
    load_campaign = campaign.load_campaign

    def watched_prepare(*args: object, **kwargs: object) -> object:
        during.append(gc.isenabled())
        return prepare(*args, **kwargs)  # type: ignore[arg-type]

    def watched_situations(*args: object, **kwargs: object) -> object:
        during.append(gc.isenabled())
        return situations_in(*args, **kwargs)  # type: ignore[arg-type]

    def watched_load(*args: object, **kwargs: object) -> object:
        during.append(gc.isenabled())
        return load_campaign(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(apology, "prepare", watched_prepare)
    monkeypatch.setattr(campaign, "load_campaign", watched_load)
    assert gc.isenabled()
    r = run_in_process(
        offline_workspace,
        "preview",
        *("--situation", "illness", "--to", INTERVIEWER, "--interviewer", "Ana Ruiz"),
        *("--company", "Acme", "--role", "Data Engineer", "--interview", "2026-11-24 10:00"),
    )
    assert r.returncode == 0, r.stderr
    assert during == [False] and gc.isenabled()
    text = example_campaign(datetime.fromisoformat(NOW).date())
    text = text.replace("ana.ruiz@example.com", INTERVIEWER)
    (offline_workspace / "camp.toml").write_text(
        text.replace("b.li@example.com", "recruiter@sandbox.test"), encoding="utf-8"
    )
    r = run_in_process(offline_workspace, "campaign", "check", "camp.toml")
    assert r.returncode == 0, r.stderr
    assert during == [False, True] and gc.isenabled()
    monkeypatch.setattr(composer, "situations_in", watched_situations)
    assert run_in_process(offline_workspace, "situations").returncode == 0
    assert during == [False, True, True] and gc.isenabled()


FREEZE_AT_EXIT = """
import atexit, gc, os, sys
if os.environ.get("LOAD_SQLALCHEMY"):
    import sqlalchemy
atexit.register(
    lambda: print("FROZEN", gc.get_freeze_count() > 0, gc.isenabled(), file=sys.stderr)
)
from mailer.cli.main import main
main()
"""


PREVIEW = [
    *("preview", "--situation", "illness", "--to", "ana.ruiz@acme.example.com"),
    *("--interviewer", "Ana Ruiz", "--company", "Acme", "--role", "Data Engineer"),
    *("--interview", "2026-11-24 10:00"),
]


@pytest.mark.wire  # mailer's own process, to its exit
@pytest.mark.parametrize(
    ("args", "sqlalchemy", "frozen"),
    [
        (PREVIEW, "", "FROZEN True False"),
        (PREVIEW, "1", "FROZEN False True"),
        (["situations"], "", "FROZEN False True"),
    ],
)
def test_a_short_command_leaves_its_objects_to_the_exit(
    tmp_path: Path, args: list[str], sqlalchemy: str, frozen: str
) -> None:
    """Verify mailer's own process, after a short command such as `preview`, freezes what it
    loaded instead of collecting it again as the interpreter exits, and prints as ever; not
    once SQLAlchemy is loaded (its pool's connections are closed by that collection); after
    another command, such as `situations`, the collector is as it always is."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "mailer.toml").write_text(
        '[sender]\nname = "Sam Candidate"\naddress = "sam@candidate.example.org"\n'
    )
    r = subprocess.run(
        [sys.executable, "-c", FREEZE_AT_EXIT, *args],
        cwd=tmp_path,
        env={**os.environ, "LOAD_SQLALCHEMY": sqlalchemy},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()
    assert r.stderr.strip().splitlines()[-1] == frozen


@pytest.mark.wire  # a process of its own: this one may have loaded both already
def test_yagmail_is_imported_without_keyring_and_keyring_still_imports_after() -> None:
    """Verify the sender imports yagmail without the keyring it never uses here (20-40 ms of
    every send), and that our own keyring code still gets the real module afterwards."""
    code = (
        "import sys\n"
        "from mailer.adapters.sender import _yagmail\n"
        "assert _yagmail() is sys.modules['yagmail']\n"
        "import yagmail.password\n"
        "print('keyring' in sys.modules, yagmail.password.keyring)\n"
        "import keyring\n"
        "print(callable(keyring.get_keyring))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "None", "True"]


@pytest.mark.integration
def test_a_send_leaves_keyring_unloaded_when_no_password_comes_from_it(workspace: Path) -> None:
    """Verify a whole `mailer send` (password from .env) delivers without loading keyring."""
    from .conftest import send_args

    out, modules = modules_after(workspace, *send_args())
    assert "Sent: thread" in out
    assert "yagmail" in modules
    assert "keyring" not in modules
