"""Schema changes through Alembic, on SQLite and PostgreSQL alike (#17).

Imported only when a store needs one: opening a store that is up to date compares its
``alembic_version`` with :data:`mailer.adapters.store.ALEMBIC_HEAD` and never loads Alembic
(about 100 ms that ``mailer status`` does not pay). No alembic.ini and no env.py: the
revisions run on the connection and inside the transaction the store already holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent / "migrations"


def _script() -> Any:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(HERE), version_locations=[str(HERE / "versions")])


def head() -> str:
    """The newest revision shipped."""
    return str(_script().get_current_head())


def known(revision: str) -> bool:
    """Whether ``revision`` is one of ours (a newer mailer's is not)."""
    from alembic.util import CommandError

    try:
        return _script().get_revision(revision) is not None
    except CommandError:
        return False


def _run(connection: Any, fn: Any) -> None:
    from alembic.config import Config
    from alembic.runtime.environment import EnvironmentContext

    from mailer.adapters import schema

    script = _script()
    with EnvironmentContext(
        Config(), script, fn=lambda rev, context: fn(script, rev), destination_rev="head"
    ) as env:
        env.configure(connection=connection, target_metadata=schema.metadata)
        # The store's transaction is already open: Alembic works inside it, and it all
        # commits (or none of it does) when the store's transaction ends.
        with env.begin_transaction():
            env.run_migrations()


def upgrade(connection: Any) -> list[str]:
    """Run every revision after the store's own, up to the head; the revisions run."""
    ran: list[str] = []

    def steps(script: Any, rev: Any) -> Any:
        found = script._upgrade_revs("head", rev)
        ran.extend(str(s.revision.revision) for s in found)
        return found

    _run(connection, steps)
    return ran


BASELINE = "0005_baseline"


def stamp(connection: Any) -> None:
    """Record the baseline revision without running it: for a store the hand-rolled steps
    have just brought to the baseline's schema (the later revisions are run by upgrade)."""
    _run(connection, lambda script, rev: script._stamp_revs(BASELINE, rev))
