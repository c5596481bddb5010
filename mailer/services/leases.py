"""Which accounts this daemon works on (#17): several ``mailer daemon`` processes, on one
machine or several, share one store, and each account is leased to one of them at a time.

A :class:`LeaseKeeper` renews the leases it holds, then takes the free or expired ones, on
every heartbeat (at least every third of the lease time) and at the start of every pass. A
lease it fails to renew is lost: it expired (the daemon stalled, or the database was out of
reach too long) or another daemon took it. Nothing more is claimed on it, and the store
refuses the claims and final-dot marks of a stale epoch anyway (Store.under_lease), so a
daemon that wakes late cannot send on a lease it no longer holds.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from mailer.adapters import process
from mailer.adapters.config import account_label
from mailer.adapters.lock import LockedError
from mailer.adapters.store import Lease, Store, owner_token, safe_url
from mailer.errors import StateError

if TYPE_CHECKING:
    from mailer.adapters.config import Settings
    from mailer.services.passes import PassReport

log = logging.getLogger("mailer.services.leases")


def daemon_id(kind: str = "") -> str:
    """Who holds a lease: host, boot, PID and the PID's start time (the owner token of
    mailer.adapters.store), and a random part, so that no two daemons ever share one.
    ``kind`` starts the random part: CHECK for a ``mailer check`` run (see is_check)."""
    return f"{owner_token()}:{kind}{secrets.token_hex(3)}"


CHECK = "check"


def is_check(owner: str) -> bool:
    """Whether a lease holder is a ``mailer check`` run rather than a daemon."""
    return owner.rsplit(":", 1)[-1].startswith(CHECK)


def holder(owner: str) -> str:
    """A lease holder in words."""
    return f"'mailer check' run {owner}" if is_check(owner) else f"daemon {owner}"


def dead_here(owner: str) -> bool:
    """Whether ``owner`` (a daemon id) is a daemon of this machine, in this boot, whose
    process is gone. Another machine's (or one that merely shares the host name) is never
    judged so: its lease expires instead. Were it judged wrongly, the fencing would still
    refuse the robbed daemon's claims and final dots."""
    parts = owner.split(":")
    if len(parts) != 5 or parts[0] != socket.gethostname():
        return False
    _, boot, pid, started, _ = parts
    if not process.same_boot(boot, process.boot_mark()) or not pid.isdigit():
        return False
    return not process.is_running(int(pid), started)


class LeaseKeeper:
    """The leases one daemon holds, by account. Thread-safe: the heartbeat thread and the
    passes both call :meth:`beat`."""

    def __init__(
        self,
        store: Store,
        accounts: tuple[str, ...],
        seconds: float,
        owner: str | None = None,
        *,
        exclusive: bool = False,
    ) -> None:
        """``exclusive``: this daemon alone may work on the store (a SQLite store, whose
        file lock it holds), so whatever lease another left behind is a dead daemon's."""
        self.exclusive = exclusive
        self.store = store
        self.accounts = accounts
        self.seconds = seconds
        self.owner = owner or daemon_id()
        self.held: dict[str, Lease] = {}
        self._lock = threading.Lock()

    @property
    def heartbeat_seconds(self) -> float:
        return self.seconds / 3

    def lease(self, account: str) -> Lease | None:
        return self.held.get(account)

    def beat(self, store: Store | None = None) -> tuple[list[str], list[str]]:
        """Renew what is held, then take what is free; (accounts gained, accounts lost).
        The database out of reach is said and survived: its leases are judged again on the
        next beat, when a renewal that comes too late finds them expired. ``store``: another
        connection to the same store (the heartbeat thread's)."""
        store = store or self.store
        gained: list[str] = []
        lost: list[str] = []
        with self._lock:
            try:
                for account, lease in list(self.held.items()):
                    if not store.renew_lease(lease):
                        del self.held[account]
                        lost.append(account)
                        log.warning(
                            "%s: lost its lease (epoch %d): it expired or another daemon took "
                            "it; this %s no longer works on it",
                            account_label(account),
                            lease.epoch,
                            "check" if is_check(self.owner) else "daemon",
                        )
                wanted = [a for a in self.accounts if a not in self.held]
                # A daemon of this machine killed a moment ago holds its leases until they
                # expire: its restart (or a neighbour) takes them at once instead.
                dead = (
                    {
                        r.account: r.owner
                        for r in store.leases()
                        if r.held and (self.exclusive or dead_here(r.owner))
                    }
                    if wanted
                    else {}
                )
                for account in wanted:
                    lease = store.acquire_lease(
                        account, self.owner, self.seconds, dead_owner=dead.get(account)
                    )
                    if lease is not None:
                        self.held[account] = lease
                        gained.append(account)
                        log.info(
                            "%s: lease taken (epoch %d) by %s",
                            account_label(account),
                            lease.epoch,
                            self.owner,
                        )
            except StateError as exc:
                log.warning("cannot renew or take leases now: %s", exc)
        return gained, lost

    def keep_renewed(
        self, stop: threading.Event, gained: Callable[[], None] = lambda: None
    ) -> None:
        """Beat every third of the lease time until ``stop`` is set, however long the work
        beside it takes; ``gained`` is called when an account was taken (a heartbeat thread's
        loop, for the daemon and for ``check``)."""
        while not stop.wait(self.heartbeat_seconds):
            if self.beat()[0]:
                gained()

    def release_all(self) -> None:
        """Give every lease back (a clean shutdown), so others take the accounts at once."""
        with self._lock:
            for account, lease in list(self.held.items()):
                try:
                    self.store.release_lease(lease)
                except StateError as exc:
                    log.warning("%s: lease not released: %s", account_label(account), exc)
                del self.held[account]


def refusal(settings: Settings, store: Store) -> LockedError | None:
    """Why ``check`` may not work on this store now: an account a live daemon's lease holds,
    named with the daemon and since when. None if no account of ``settings`` is held."""
    held = [r for r in store.leases() if r.held and r.account in settings.account_names]
    if not held:
        return None
    first = held[0]
    more = f" (and {len(held) - 1} more account(s))" if len(held) > 1 else ""
    if is_check(first.owner):
        return LockedError(
            f"{account_label(first.account)} is leased to {holder(first.owner)} since "
            f"{first.acquired_at:%Y-%m-%d %H:%M:%S} UTC{more}; it is doing this work now",
            hint="wait for it to finish, then run 'mailer check' again if you still need to",
        )
    return LockedError(
        f"{account_label(first.account)} is leased to {holder(first.owner)} since "
        f"{first.acquired_at:%Y-%m-%d %H:%M:%S} UTC{more}; only its daemon works on it",
        hint="that daemon already does this work; stop it first if you must",
    )


def check_under_leases(
    settings: Settings,
    store: Store,
    one_pass: Callable[[Settings], PassReport],
    stop: threading.Event | None = None,
) -> PassReport:
    """``mailer check`` on a shared store: one pass for every account, done as a daemon does
    it. It takes every account's lease first, or none (LockedError naming who holds one);
    keeps them renewed while it runs; works under them (so its claims and final dots are
    fenced like a daemon's); and gives them back at the end, also when ``stop`` (SIGTERM)
    ends the pass early. A daemon that starts meanwhile finds the accounts held and leaves
    them to this pass."""
    from mailer.services.passes import PassReport, every_account

    keeper = LeaseKeeper(
        store, settings.account_names, settings.lease_seconds, owner=daemon_id(CHECK)
    )
    keeper.beat()
    if len(keeper.held) < len(settings.account_names):
        keeper.release_all()
        # Nobody holds them now: the database was out of reach, or the holder let go
        # between the two reads.
        raise refusal(settings, store) or StateError(
            f"{safe_url(store.url)}: could not take the accounts' leases for this check",
            hint="run 'mailer check' again",
        )
    done = threading.Event()

    # A long pass must not outlive its leases.
    heart = threading.Thread(target=keeper.keep_renewed, args=(done,), name="leases", daemon=True)
    heart.start()

    def leased(account: Settings) -> PassReport:
        lease = keeper.lease(account.account)
        if lease is None:  # lost since: its claims would be refused anyway
            report = PassReport()
            report.problems.append(
                f"{account_label(account.account)}: lost its lease during this check; "
                "another daemon works on it now"
            )
            return report
        with store.under_lease(lease):
            return one_pass(account)

    try:
        return every_account(settings, store, leased, stop)
    finally:
        done.set()
        heart.join(timeout=10)
        keeper.release_all()
