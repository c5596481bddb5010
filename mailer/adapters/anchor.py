"""The workspace's anchor: which state store holds its history.

The store is how mailer knows what it already sent. A store that quietly goes missing, or a
``state.url`` that now points at another, empty file, would make the next ``send`` repeat an
apology that was delivered long ago. So the workspace remembers the store it uses (its URL and
the id written into it when it was created) in ``.mailer/store.json``, and refuses to go on
with a different or missing store until the user says so.

The anchor sits beside the config's workspace (:func:`mailer.adapters.config.workspace_of`); for the
user-level config that is the fixed per-user data directory, never the current folder, so the
store and its anchor are the same wherever ``mailer`` runs.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from mailer.errors import StateError

ANCHOR = Path(".mailer") / "store.json"
FORGET_HINT = "to start a new, empty history on purpose, delete {anchor}"


def anchor_path(config_path: Path) -> Path:
    """One anchor per config file: a second config in the same workspace (``--config
    config/staging.toml``) may keep its own store."""
    from mailer.adapters.config import workspace_of

    name = ANCHOR.name if config_path.name == "mailer.toml" else f"store-{config_path.stem}.json"
    return workspace_of(config_path) / ANCHOR.parent / name


def read(anchor: Path) -> dict[str, str] | None:
    try:
        data: Any = json.loads(anchor.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as exc:
        raise StateError(
            f"{anchor}: cannot read which state store this workspace uses: {exc}",
            hint=FORGET_HINT.format(anchor=anchor) + " (only if you know its store is gone)",
        ) from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("url", "id")):
        raise StateError(
            f"{anchor}: not a store anchor (expected url and id)",
            hint=FORGET_HINT.format(anchor=anchor),
        )
    return {"url": data["url"], "id": data["id"]}


def write(anchor: Path, url: str, store_id: str) -> None:
    """Best effort: a workspace that cannot be written (a read-only mount with the store
    elsewhere) goes on without the extra guard rather than not at all."""
    tmp = anchor.with_name(f".{anchor.name}.{os.getpid()}")
    try:
        anchor.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp.write_text(json.dumps({"url": url, "id": store_id}) + "\n", encoding="utf-8")
        os.replace(tmp, anchor)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def sqlite_path(url: str) -> Path | None:
    return Path(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else None


def check_before_open(anchor: Path, url: str, where: str) -> dict[str, str] | None:
    """Refuse to open (and so create) a store where this workspace's history should be and
    is not. Returns the anchor, if there is one. ``where`` names the config key."""
    from mailer.adapters.store import safe_url

    recorded = read(anchor)
    path = sqlite_path(url)
    if recorded is None or path is None or path.exists():
        return recorded
    hint = FORGET_HINT.format(anchor=anchor)
    if recorded["url"] == url:
        raise StateError(
            f"{path}: the state store is missing, and this workspace's history was in it: "
            "without it mailer would not know what it already sent",
            hint=f"restore it from a backup; {hint}",
        )
    raise StateError(
        f"{where}: now points to {safe_url(url)}, which does not exist, but this workspace's "
        f"history is in {safe_url(recorded['url'])}",
        hint=f"set it back, or move that file there; {hint}",
    )


def check_after_open(
    anchor: Path,
    recorded: dict[str, str] | None,
    url: str,
    store_id: str,
    where: str,
    named_now: bool = False,
) -> None:
    """The store that opened must be the one the workspace has used (a moved file keeps its
    id, and the anchor follows it). A workspace without an anchor adopts this store, and so
    does one whose store was only named just now (``named_now``: a store from before ids,
    such as a backup restored after the upgrade)."""
    from mailer.adapters.store import safe_url

    if recorded is None or named_now:
        write(anchor, url, store_id)
        return
    if recorded["id"] == store_id:
        if recorded["url"] != url:
            write(anchor, url, store_id)
        return
    if recorded["url"] == url:  # the same place, another file: naming it twice said nothing
        raise StateError(
            f"{where}: {safe_url(url)} is not the state store this workspace has used: the file "
            "there was replaced, or made anew; it holds another history, or none",
            hint="put the right file back (a backup?); " + FORGET_HINT.format(anchor=anchor),
        )
    raise StateError(
        f"{where}: {safe_url(url)} is not the state store this workspace has used "
        f"({safe_url(recorded['url'])}); it holds another history, or none",
        hint="put the right store back, or set the key back; " + FORGET_HINT.format(anchor=anchor),
    )
