"""Planning a campaign run: for each entry, in file order, send it, skip it (and why), hold it
back for the daily cap, or fail it because its account went down earlier in the run.

Pure: no store, no clock, no network, no process probing. The runner reads the facts first
(each entry's earlier attempts as :class:`Past`, each account's daily-cap room) and performs
the actions. What can only be learnt while sending (a send used up cap room, an account went
down) comes back as :class:`Feedback` through :meth:`RunPlan.next_action`.

Why an object fed one outcome at a time rather than a list re-planned after each outcome:
re-planning the rest after every send is quadratic in the number of entries, and the plan's
whole state is two small maps (room and down accounts) plus a position and a count, so each
step stays a pure function of (state, feedback), testable with scripted feedback.
"""

from __future__ import annotations

import collections
import copy
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mailer.model.lifecycle import UNRECORDED, MessageState, describe


class Act(enum.StrEnum):
    SEND = "send"
    WOULD_SEND = "would send"  # a dry run's send
    SKIP = "skip"
    HOLD_BACK = "hold back"  # the account's daily cap is used up
    FAIL = "fail"  # the account went down earlier in this run: failed without connecting


class Why(enum.StrEnum):
    """Why an entry is skipped: data, not the text shown."""

    SENT = "sent"
    IN_DOUBT = "in_doubt"
    BUSY = "busy"  # another live process is sending it
    REFUSED = "refused"  # the server refused it earlier, and --retry-failed was not given
    CHANGED = "changed"  # an earlier version of the entry (another time) was sent


@dataclass(frozen=True)
class Past:
    """One earlier apology of an entry, as read from the store (the runner reads it)."""

    thread_id: int
    thread_state: str
    state: str  # the message's stored state
    shown: str  # as the user must see it (a dead sender's submitting message: in doubt)
    abandoned_before_final_dot: bool = False  # the server cannot have taken it
    owner_alive: bool = False  # a queued message: the process that queued it still runs
    refused: bool = False
    error: str = ""
    # Set when this is the apology of an earlier version of the entry: the same address,
    # company and account, sent for another interview time (this one), from an entry no
    # longer in the file. (Its key was derived from the time: editing the time made a new
    # key, and the interviewer would get a second apology for one interview.)
    changed_from: str = ""


@dataclass(frozen=True)
class Skip:
    why: Why
    text: str
    thread_id: int | None = None  # the earlier attempt's thread

    @property
    def in_doubt(self) -> bool:
        return self.why is Why.IN_DOUBT


def skip_reason(past: Iterable[Past], retry_failed: bool) -> Skip | None:
    """Why an entry must not be sent again now, or None if it may be sent. The newest
    attempt that settles the question decides."""
    for p in reversed(list(past)):
        t = p.thread_id
        if p.changed_from:
            if p.state == MessageState.FAILED or p.abandoned_before_final_dot:
                return None  # that version never reached them
            return Skip(
                Why.CHANGED,
                f"this campaign's apology to the same address and company for another time "
                f"(thread {t}, {p.changed_from}) belongs to an entry no longer in the file. "
                "If you changed this entry's interview time, the interviewer has that "
                "apology and is not sent a second; if this is another interview, give the "
                "entry a key of its own (key = ...)",
                t,
            )
        if p.state == MessageState.SENT:
            return Skip(Why.SENT, f"already sent (thread {t}, {describe(p.thread_state)})", t)
        if p.shown == MessageState.IN_DOUBT and p.error.startswith(UNRECORDED):
            return Skip(
                Why.IN_DOUBT,
                f"{UNRECORDED} but not recorded (thread {t}): never sent again; record it "
                f"with 'mailer resolve {t} --sent'",
                t,
            )
        if p.shown == MessageState.IN_DOUBT:
            return Skip(
                Why.IN_DOUBT, f"in doubt (thread {t}): settle it with 'mailer resolve {t}'", t
            )
        if p.abandoned_before_final_dot:
            return None  # the server took nothing: sent again (the old row is closed then)
        if p.state == MessageState.SUBMITTING or (p.state == MessageState.QUEUED and p.owner_alive):
            return Skip(Why.BUSY, f"being sent right now by another process (thread {t})", t)
        if p.state == MessageState.FAILED and p.refused and not retry_failed:
            return Skip(
                Why.REFUSED,
                f"refused earlier (thread {t}: {p.error}); fix the entry, or pass --retry-failed",
                t,
            )
        if p.state == MessageState.FAILED:
            return None
    return None


@dataclass(frozen=True)
class Item:
    """What the planner knows of an entry."""

    key: str
    account: str
    skip: Skip | None = None  # skip_reason of its past attempts


@dataclass(frozen=True)
class Action:
    act: Act
    index: int  # the entry's position in the run's entries
    key: str
    account: str
    why: str = ""  # the text shown for a skip, a hold-back or a failure
    skip: Why | None = None
    thread_id: int | None = None  # a skip's: the earlier attempt's thread

    @property
    def in_doubt(self) -> bool:
        return self.skip is Why.IN_DOUBT


@dataclass(frozen=True)
class Feedback:
    """What the last SEND did: ``took_room`` if the message left (or may have: in doubt);
    ``account_down`` the reason, if no other entry of that account can go this run."""

    took_room: bool
    account_down: str = ""


class RunPlan:
    """The next action of a run, one at a time. ``room``: what each account's daily cap still
    allows (None: no cap; an account missing from it has no cap)."""

    def __init__(
        self,
        items: Iterable[Item],
        *,
        room: Mapping[str, int | None],
        limit: int | None = None,
        dry_run: bool = False,
    ) -> None:
        self._items = iter(enumerate(items))
        # Items read from ``_items`` and not decided yet (next_send reads ahead).
        self._seen: collections.deque[tuple[int, Item]] = collections.deque()
        self.room = dict(room)
        self.limit = limit
        self.dry_run = dry_run
        self.down: dict[str, str] = {}
        self.attempted = 0
        self.stopped = ""  # why the plan ended before the last entry, if it did
        self._waiting: Action | None = None  # the SEND whose feedback is due

    def next_action(self, feedback: Feedback | None = None) -> Action | None:
        """The next action, after ``feedback`` on the previous SEND (required then). None
        when the run is over; :attr:`stopped` says why if entries were left."""
        if self._waiting is not None:
            if feedback is None:
                raise ValueError(f"feedback on sending {self._waiting.key!r} is missing")
            self._learn(self._waiting.account, feedback)
            self._waiting = None
        if self.stopped:
            return None
        while (item := self._look(0)) is not None:
            self._seen.popleft()
            action = self._decide(*item)
            if action is None:
                return None
            if action.act is Act.SEND:
                self._waiting = action
            return action
        return None

    def next_send(self, assuming: Feedback) -> Action | None:
        """The SEND that :meth:`next_action` would give next, past any skips, if the SEND
        awaiting feedback ended as ``assuming``; None if the next entry not skipped would not
        be sent (held back, failed, the limit reached, or the end). Changes nothing: the
        runner asks it to write that entry's envelope behind the final dot of the one going
        now (see SmtpSession.submit's ``next_envelope``)."""
        ahead = copy.copy(self)
        ahead.room, ahead.down = dict(self.room), dict(self.down)
        if ahead._waiting is not None:
            ahead._learn(ahead._waiting.account, assuming)
        if ahead.stopped:
            return None
        at = 0
        while (item := self._look(at)) is not None:
            action = ahead._decide(*item)
            at += 1
            if action is None or action.act is not Act.SKIP:
                return action if action is not None and action.act is Act.SEND else None
        return None

    def _look(self, at: int) -> tuple[int, Item] | None:
        """The item ``at`` places past the next one to decide (None past the last), read
        from the entries only as far as needed: they are read lazily."""
        while len(self._seen) <= at:
            item = next(self._items, None)
            if item is None:
                return None
            self._seen.append(item)
        return self._seen[at]

    def _learn(self, account: str, feedback: Feedback) -> None:
        if feedback.took_room:
            self._use_room(account)
        if feedback.account_down:
            self.down[account] = feedback.account_down

    def _use_room(self, account: str) -> None:
        left = self.room.get(account)
        if left is not None:
            self.room[account] = left - 1

    def _decide(self, index: int, item: Item) -> Action | None:
        def action(act: Act, why: str = "") -> Action:
            return Action(act, index, item.key, item.account, why)

        if item.skip is not None:
            skip = item.skip
            return Action(
                Act.SKIP, index, item.key, item.account, skip.text, skip.why, skip.thread_id
            )
        if self.limit is not None and self.attempted >= self.limit:
            self.stopped = f"--limit {self.limit} reached"
            return None
        if item.account in self.down:
            return action(Act.FAIL, self.down[item.account])
        left = self.room.get(item.account)
        if left is not None and left <= 0:
            return action(Act.HOLD_BACK, "the daily cap is reached")
        self.attempted += 1
        if self.dry_run:
            self._use_room(item.account)
            return action(Act.WOULD_SEND)
        return action(Act.SEND)
