"""The newcomer's first minutes: the wheel, a fresh install by an ordinary user with an empty
HOME, the README's try-out lines, run as printed, ending with an apology in the sandbox, and
its own-account lines (init, cd, edit, doctor), run as printed against the sandbox's servers."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import pytest

from .newcomer import (
    DIST_NAME,
    installed_name,
    pinned_now,
    readme_lines,
    stack_file,
    wait_for_apology,
)
from .users import OrdinaryUser, build_wheel, install_into_fresh_venv

pytestmark = [pytest.mark.integration, pytest.mark.process]


def test_readme_names_the_distribution_for_pipx_and_uv() -> None:
    """Verify the README installs the decided name with both pipx and uv."""
    assert installed_name(readme_lines().install) == DIST_NAME


def test_readme_try_out_pins_a_clock_a_day_before_its_interview() -> None:
    """Verify the try-out's ISO interview date gets a clock the day before (it never rots)."""
    lines = ['mailer --sandbox send --interview "2026-11-30 10:00" --yes']
    assert pinned_now(lines) == "2026-11-29T09:00:00+00:00"
    assert pinned_now(["mailer --sandbox send --interview 'tomorrow 10:00'"]).startswith("2026-")


@dataclass
class Installed:
    """The README's install line, translated: this tree's wheel in a fresh venv of the user's."""

    user: OrdinaryUser
    where: Path
    bin_dir: Path

    def home(self) -> tuple[Path, dict[str, str]]:
        """A new empty HOME, the user's, and a clean environment with `mailer` on PATH (as
        pipx or uv leaves it)."""
        home = self.user.scratch() / "home"
        home.mkdir()
        self.user.give(home)
        env = self.user.env(home)
        assert not any(home.iterdir())
        return home, {**env, "PATH": f"{self.bin_dir}:{env['PATH']}"}


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    name = installed_name(readme_lines().install)
    user = OrdinaryUser()
    where = user.scratch()
    try:
        wheel = build_wheel(where / "dist")
        # The README's name is what the wheel calls itself, or the translation lies.
        assert wheel.name.startswith(name.replace("-", "_") + "-"), (wheel.name, name)
        yield Installed(user, where, install_into_fresh_venv(user, where, wheel, user.env(where)))
    finally:
        shutil.rmtree(where, ignore_errors=True)


def test_a_newcomer_installs_the_wheel_and_the_readme_try_out_delivers_an_apology(
    installed: Installed,
) -> None:
    """Verify that the wheel built from this tree, installed into a fresh venv by a non-root
    user with an empty HOME (the README's pipx line, translated), runs the README's try-out
    lines as printed, and the apology arrives in the sandbox INBOX (read over IMAP)."""
    readme = readme_lines()
    user, bin_dir = installed.user, installed.bin_dir
    home, env = installed.home()
    env = {**env, "MAILER_NOW": pinned_now(readme.try_out)}
    try:
        which = user.run(["bash", "-c", "command -v mailer"], cwd=home, env=env)
        assert which.stdout.strip() == str(bin_dir / "mailer")
        for line in readme.try_out:
            r = user.run(["bash", "-c", line], cwd=home, env=env)
            assert r.returncode == 0, f"README line failed: {line}\n{r.stdout}\n{r.stderr}"
        arrived = wait_for_apology(home, "interviewer@sandbox.test")
        assert len(arrived) == 1
        msg = message_from_bytes(arrived[0], policy=default)
        assert msg["From"].addresses[0].addr_spec == "you@sandbox.test"
        assert "interview" in msg["Subject"]
        # The full name is in To:; the greeting is the README's --salutation.
        assert msg["To"].addresses[0].display_name == "Ana Ruiz"
        assert msg.get_body(("plain",)).get_content().startswith("Dear Ms Ruiz,")
    finally:
        user.run(["bash", "-c", "mailer sandbox stop"], cwd=home, env=env)
        shutil.rmtree(home.parent, ignore_errors=True)


def _editor_for(stack: dict[str, Any], script: Path) -> str:
    """A stand-in for the user's $EDITOR: it writes what the README's comments ask for (name,
    address and servers into config/mailer.toml, the password into .env), with the sandbox's
    servers standing in for the user's provider. Refuses any other file."""
    config = f"""[sender]
name = "Sam Candidate"
address = "you@sandbox.test"

[smtp]
host = "{stack["host"]}"
port = {stack["smtp_port"]}
security = "starttls"
username = "you@sandbox.test"
ca_file = "{stack["ca_file"]}"

[imap]
host = "{stack["host"]}"
port = {stack["imaps_port"]}
security = "ssl"
username = "you@sandbox.test"
ca_file = "{stack["ca_file"]}"

[addresses]
allow_test_domains = true
"""
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        f"  config/mailer.toml) cat > \"$1\" <<'TOML'\n{config}TOML\n  ;;\n"
        f"  .env) echo 'MAILER_SMTP_PASSWORD={stack['users']['you@sandbox.test']}' > \"$1\" ;;\n"
        '  *) echo "editor stand-in: unexpected file $1" >&2; exit 1 ;;\n'
        "esac\n",
        encoding="utf-8",
    )
    script.chmod(0o755)
    return str(script)


def _own_account_session(
    installed: Installed, stack: dict[str, Any], editor: str, *, from_checkout: bool
) -> None:
    """Run the README's own-account lines as one shell session in a new HOME, and check what
    `mailer doctor` said. From a checkout, `mailer` is only in its `.venv` (not on PATH), and
    the session starts with the README's activation line, in the checkout."""
    readme = readme_lines()
    user = installed.user
    home, env = installed.home()
    lines = readme.own
    cwd = home
    try:
        if from_checkout:
            cwd = home / "checkout"
            cwd.mkdir()
            (cwd / ".venv").symlink_to(installed.bin_dir.parent)
            user.give(cwd)
            env = user.env(home)
            lines = readme.checkout + lines
        script = "set -e\n" + "\n".join(lines) + "\n"
        r = user.run(["bash", "-c", script], cwd=cwd, env={**env, "EDITOR": editor})
        assert r.returncode == 0, f"README lines failed:\n{script}\n{r.stdout}\n{r.stderr}"
        ws = home / "interviews"
        assert (ws / ".env").stat().st_mode & 0o777 == 0o600
        # doctor found the workspace from the folder it ran in, and logged in with .env's password.
        assert f"OK    config {ws / 'config' / 'mailer.toml'}\n" in r.stdout, r.stdout
        assert f"OK    SMTP: logged in to 127.0.0.1:{stack['smtp_port']}" in r.stdout, r.stdout
        assert f"OK    IMAP: logged in to 127.0.0.1:{stack['imaps_port']}" in r.stdout, r.stdout
        assert "FAIL" not in r.stdout, r.stdout
    finally:
        shutil.rmtree(home.parent, ignore_errors=True)


def test_the_readme_own_account_lines_run_as_printed_and_doctor_logs_in_from_the_workspace(
    installed: Installed,
) -> None:
    """Verify the README's own-account lines, run as printed as one shell session (init a
    workspace under ~, cd into it, edit its config and .env, `mailer doctor`): doctor finds
    the config and .env from the current folder and logs in to SMTP and IMAP, both with
    `mailer` on PATH (pipx, uv) and from a checkout after the README's activation line. The
    sandbox's servers stand in for the provider's; doctor sends nothing."""
    user = installed.user
    home, env = installed.home()
    try:
        # Not a README line: the provider the user's account would be at.
        user.run(["bash", "-c", "mailer sandbox start"], cwd=home, env=env, check=True)
        stack = json.loads(stack_file(home).read_text(encoding="utf-8"))
        editor = _editor_for(stack, home.parent / "editor")
        _own_account_session(installed, stack, editor, from_checkout=False)
        _own_account_session(installed, stack, editor, from_checkout=True)
        assert wait_for_apology(home, "interviewer@sandbox.test", timeout=0) == []
    finally:
        user.run(["bash", "-c", "mailer sandbox stop"], cwd=home, env=env)
        shutil.rmtree(home.parent, ignore_errors=True)
