"""Where a user-level config and its state live, outside any workspace.

``mailer init --user`` writes ``mailer.toml`` into the per-user config directory
(``click.get_app_dir``: ``~/.config/mailer`` on Linux). Everything else that config uses (its
``.env``, template overrides, campaign files, and ``.mailer/`` with the state store, tokens
and the sandbox) lives in one fixed per-user data directory (platformdirs:
``~/.local/share/mailer`` on Linux). Both are fixed, never relative to the current folder: a
store that changed with the folder would forget what was sent. ``XDG_CONFIG_HOME`` and
``XDG_DATA_HOME`` move them (tests use that to stay out of the real home).
"""

from __future__ import annotations

from pathlib import Path

APP = "mailer"


def user_config_path() -> Path:
    import click

    return Path(click.get_app_dir(APP)) / "mailer.toml"


def user_data_dir() -> Path:
    """The user-level config's "workspace": its .env, templates/ and .mailer/ state."""
    from platformdirs import user_data_path

    return user_data_path(APP, appauthor=False)


def user_cache_dir() -> Path:
    """Where what mailer can always make again is kept between runs (compiled templates):
    ``$XDG_CACHE_HOME/mailer`` or ``~/.cache/mailer`` on Linux, platformdirs'
    choice elsewhere (its import costs more than the caches save, so not on Linux)."""
    import os
    import sys

    if sys.platform.startswith("linux"):
        base = os.environ.get("XDG_CACHE_HOME", "")
        return (Path(base) if os.path.isabs(base) else Path.home() / ".cache") / APP
    from platformdirs import user_cache_path

    return user_cache_path(APP, appauthor=False)


def is_user_config(path: Path) -> bool:
    try:
        return path.resolve() == user_config_path().resolve()
    except (OSError, RuntimeError):
        return False
