"""The sandbox's config across restarts (pure): what the user added is kept, what a start
owns is written anew."""

from __future__ import annotations

import tomllib
from pathlib import Path
from types import SimpleNamespace

from mailer.sandbox.stack import sandbox_config_toml, with_users_settings


def _written(smtp: int, imap: int) -> str:
    info = SimpleNamespace(host="127.0.0.1", smtp_port=smtp, imaps_port=imap)
    return sandbox_config_toml(info, Path("/tmp/sbx/ca.pem"), "you@sandbox.test")  # type: ignore[arg-type]


def test_a_restart_keeps_the_users_tables_and_sender_lines_and_writes_its_own_anew() -> None:
    """Verify the README's [follow_up] and a [sender] locale or phone the user added survive
    a restart, while the ports (and the sender's address) are the new start's."""
    before = _written(1001, 1002).replace(
        'phone = "+1 555 0100"', 'phone = "+44 20 7946 0000"\nlocale = "en_GB"'
    )
    before += '\n[follow_up]\nwait = "15s"\nwindow = "always"\n'
    before = before.replace('address = "you@sandbox.test"', 'address = "me@elsewhere.test"')
    after = tomllib.loads(with_users_settings(_written(2001, 2002), before))
    assert after["follow_up"] == {"wait": "15s", "window": "always"}
    assert after["sender"]["locale"] == "en_GB" and after["sender"]["phone"] == "+44 20 7946 0000"
    assert after["sender"]["address"] == "you@sandbox.test"
    assert (after["smtp"]["port"], after["imap"]["port"]) == (2001, 2002)
    again = with_users_settings(
        _written(3001, 3002), with_users_settings(_written(2001, 2002), before)
    )
    assert again == with_users_settings(_written(3001, 3002), before)  # (nothing piles up)


def test_a_config_the_user_broke_gives_way_to_the_one_the_start_writes() -> None:
    """Verify a merge that would not read as TOML is not written: the start's own config."""
    broken = _written(1001, 1002) + "\n[follow_up]\nwait = \n"
    assert with_users_settings(_written(2001, 2002), broken) == _written(2001, 2002)
    assert with_users_settings(_written(2001, 2002), "") == _written(2001, 2002)


def test_a_multi_line_sender_value_is_kept_whole() -> None:
    """Verify a [sender] signature written as a multi-line string survives a restart whole,
    and with it the rest of what the user added (its lost lines made the config unreadable,
    and every kept setting was dropped; review of session 16)."""
    before = _written(1001, 1002).replace(
        'signature = "Sam Sandbox"', 'signature = """Sam Sandbox\nData Engineer\n"""'
    )
    before += '\n[follow_up]\nwait = "15s"\n'
    after = tomllib.loads(with_users_settings(_written(2001, 2002), before))
    assert after["sender"]["signature"] == "Sam Sandbox\nData Engineer\n"
    assert after["follow_up"] == {"wait": "15s"}


def test_advice_in_sandbox_mode_names_the_sandbox() -> None:
    """Verify what --sandbox output advises ("mailer release 3") is written as the sandbox's
    command ("mailer --sandbox release 3"): followed word for word, the advice acted on the
    user's real thread 3 (walkthrough of session 16). Other commands and text are left."""
    import io

    from mailer.cli.common import SandboxAdvice

    out = io.StringIO()
    stream = SandboxAdvice(out)
    stream.write("held: mailer mark-replied 3 or 'mailer release 3'; mailer campaign status x\n")
    stream.write("mailer sandbox inbox a@sandbox.test; mailer --sandbox send; mailer init\n")
    assert out.getvalue() == (
        "held: mailer --sandbox mark-replied 3 or 'mailer --sandbox release 3'; "
        "mailer --sandbox campaign status x\n"
        "mailer sandbox inbox a@sandbox.test; mailer --sandbox send; mailer init\n"
    )
    assert stream.getvalue() == out.getvalue()  # (the rest is the stream's own)
