"""Files the package ships besides code: the docs and the systemd units the README cites.

A wheel carries them as ``mailer/docs`` and ``mailer/contrib`` (see pyproject.toml); a
checkout (or an editable install) has them at the top of the repository.
"""

from __future__ import annotations

from pathlib import Path

FOLDERS = ("docs", "contrib")


def shipped_dir(name: str) -> Path:
    """Where the shipped folder ``name`` (one of FOLDERS) is on this machine."""
    package = Path(__file__).resolve().parents[1]
    installed = package / name
    return installed if installed.is_dir() else package.parent / name
