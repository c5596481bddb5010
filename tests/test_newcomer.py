"""The newcomer's first minutes: the wheel, a fresh install by an ordinary user with an empty
HOME, and the README's try-out lines, run as printed, ending with an apology in the sandbox."""

from __future__ import annotations

import shutil
from email import message_from_bytes
from email.policy import default

import pytest

from .newcomer import DIST_NAME, installed_name, pinned_now, readme_lines, wait_for_apology
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


def test_a_newcomer_installs_the_wheel_and_the_readme_try_out_delivers_an_apology() -> None:
    """Verify that the wheel built from this tree, installed into a fresh venv by a non-root
    user with an empty HOME (the README's pipx line, translated), runs the README's try-out
    lines as printed, and the apology arrives in the sandbox INBOX (read over IMAP)."""
    readme = readme_lines()
    name = installed_name(readme.install)
    user = OrdinaryUser()
    where = user.scratch()
    home = where / "home"
    home.mkdir()
    user.give(home)
    env = user.env(home)
    try:
        wheel = build_wheel(where / "dist")
        # The README's name is what the wheel calls itself, or the translation lies.
        assert wheel.name.startswith(name.replace("-", "_") + "-"), (wheel.name, name)
        assert not any(home.iterdir())
        bin_dir = install_into_fresh_venv(user, where, wheel, env)
        env = {
            **env,
            "PATH": f"{bin_dir}:{env['PATH']}",
            "MAILER_NOW": pinned_now(readme.try_out),
        }
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
        shutil.rmtree(where, ignore_errors=True)
