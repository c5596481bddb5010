"""What the store says of a campaign's entries: their earlier apologies, what a run would try
now, and the warnings a check gives. Reads only: ``campaign check`` needs it without the SMTP
and IMAP clients a run imports."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from mailer.adapters.spill import Selection
from mailer.adapters.store import QUEUED, MessageRow, ThreadRow, owner_alive
from mailer.model.lifecycle import MessageState
from mailer.model.runplan import Item, Past, Skip, Why, skip_reason
from mailer.model.when import zone_name

if TYPE_CHECKING:
    from mailer.adapters.store import Store, StoreReader
    from mailer.services.campaign import Campaign, Entry

    Reads = Store | StoreReader


Record = tuple[ThreadRow, MessageRow]  # a thread and its apology
Where = tuple[str, str, str]  # an address and a company (see _same_apology), an account


def entry_state(campaign: Campaign, store: Reads) -> dict[str, list[Record]]:
    """The threads recorded for each entry key of this campaign, oldest first (one query)."""
    out: dict[str, list[Record]] = {}
    for thread, root in store.campaign_apologies(campaign.name):
        out.setdefault(thread.entry_key or "", []).append((thread, root))
    return out


Keys = list[tuple[int, str, str, "str | None", str]]  # Store.apology_keys, read once


def past_attempts(
    campaign: Campaign, store: Reads, keys: Keys | None = None
) -> dict[str, tuple[Past, ...]]:
    """Each entry key's earlier apologies as the planner's facts (the owner probes happen
    here, so the planner stays pure). The rows' bytes are not kept.

    An entry with none of its own may still be an interview another apology holds (its
    company corrected after a run gives it a new key; a ``mailer send`` for the same
    interview): that apology counts as the entry's, as the store's duplicate guard would
    count it when the entry is sent, so a check or a dry run does not call it "to send".
    ``keys``: the store's :meth:`~mailer.adapters.store.Store.apology_keys`, if read already."""
    state = entry_state(campaign, store)
    past = {key: tuple(past_of(t, root) for t, root in records) for key, records in state.items()}
    holders: dict[str, int] = {}
    for thread_id, _, _, _, key in store.apology_keys() if keys is None else keys:
        holders[key] = thread_id  # (oldest first: the newest is kept)
    held: dict[str, int] = {}
    present: set[str] = set()  # the keys with threads of this campaign still in the file
    may_be_edited = False  # a new entry with a made key: perhaps an earlier one edited
    for e in campaign.entries:
        if e.key in past:
            present.add(e.key)
        else:
            thread_id = holders.get(e.interview_key)
            if thread_id is not None:
                held[e.key] = thread_id
            elif e.derived_key:
                may_be_edited = True
    if may_be_edited and (gone := _gone(state, present)):
        # (A second pass, only then: a list of the entries would hold them all in memory.)
        for e in campaign.entries:
            if e.key not in past and e.key not in held and e.derived_key:
                _earlier_version(e, gone, past)
    if held:
        records = {t.id: (t, root) for t, root in store.apologies_by_id(held.values())}
        for key, thread_id in held.items():
            if thread_id in records:
                past[key] = (past_of(*records[thread_id]),)
    return past


def _gone(state: dict[str, list[Record]], present: set[str]) -> dict[Where, Record]:
    """This campaign's apologies for entries no longer in the file, by address, company and
    account; of several, one that may have reached them outranks one that cannot have."""
    gone: dict[Where, Record] = {}
    for key, records in state.items():
        if key not in present:
            for thread, root in records:  # (oldest first: the newest is kept)
                where = (*_same_apology(thread.recipient, thread.company), thread.account)
                kept = gone.get(where)
                if kept is None or not _reached(past_of(*kept)) or _reached(past_of(thread, root)):
                    gone[where] = (thread, root)
    return gone


def _earlier_version(
    e: Entry, gone: dict[Where, Record], past: dict[str, tuple[Past, ...]]
) -> None:
    """If ``e`` (new, its key made from its time) has the address, company and account of an
    apology in ``gone``, that entry with its interview time edited (a wrong time corrected
    after the run), or another interview there whose entry was removed: that apology counts
    as its own (see Past.changed_from)."""
    f = e.facts
    record = gone.get((*_same_apology(f.to, f.company), e.account))
    if record is None:
        return
    thread, root = record
    try:  # (in the entry's zone, as the user wrote it)
        was = datetime.fromisoformat(thread.interview_at).astimezone(f.interview.tzinfo)
        shown = f"{was:%a %d %b %Y %H:%M} ({zone_name(was)})"  # ("UTC", not "Etc/UTC")
    except (TypeError, ValueError, OverflowError):
        shown = thread.interview_at
    past[e.key] = (replace(past_of(thread, root), changed_from=shown),)


def _reached(p: Past) -> bool:
    """Whether an apology may have reached the interviewer (not refused, not dropped before
    its final dot)."""
    return p.state != MessageState.FAILED and not p.abandoned_before_final_dot


def past_of(thread: ThreadRow, root: MessageRow) -> Past:
    return Past(
        thread_id=thread.id,
        thread_state=thread.state,
        state=root.state,
        shown=root.state_now,
        abandoned_before_final_dot=root.abandoned_before_final_dot,
        owner_alive=root.state == QUEUED and owner_alive(root.owner),
        refused=bool(thread.detail.get("refused")),
        error=root.error or "",
    )


def plan_items(
    campaign: Campaign, past: dict[str, tuple[Past, ...]], retry_failed: bool
) -> Iterator[Item]:
    for e in campaign.entries:
        yield Item(e.key, e.account, skip_reason(past.get(e.key, ()), retry_failed))


def pending(
    campaign: Campaign,
    store: Reads,
    retry_failed: bool = False,
    past: dict[str, tuple[Past, ...]] | None = None,
) -> Sequence[Entry]:
    """The valid entries a run would try now (each read from the campaign when used: a list
    of them would hold every entry in memory at once). ``past``: past_attempts, if read."""
    past = past_attempts(campaign, store) if past is None else past
    return Selection(
        campaign.entries,
        (
            i
            for i, e in enumerate(campaign.entries)
            if skip_reason(past.get(e.key, ()), retry_failed) is None
        ),
    )


def waiting_for_user(
    campaign: Campaign, past: dict[str, tuple[Past, ...]], retry_failed: bool = False
) -> list[tuple[str, Skip]]:
    """The valid entries no run sends until the user acts, with why: those in doubt, and
    those the server refused (unless ``retry_failed``), in file order. ``past``: as
    past_attempts reads it."""
    out = []
    for e in campaign.entries:
        skip = skip_reason(past.get(e.key, ()), retry_failed)
        if skip is not None and skip.why in (Why.IN_DOUBT, Why.REFUSED, Why.CHANGED):
            out.append((e.key, skip))
    return out


def changed_entries(past: dict[str, tuple[Past, ...]]) -> list[tuple[str, Skip]]:
    """The entries no run sends because an earlier version of them went (Why.CHANGED), in
    file order: read from ``past`` alone (past_attempts added them in that order), with no
    pass over the entries."""
    out = []
    for key, attempts in past.items():
        if any(p.changed_from for p in attempts) and (skip := skip_reason(attempts, False)):
            out.append((key, skip))
    return out


def outside_warnings(campaign: Campaign, store: Reads, keys: Keys | None = None) -> list[str]:
    """Entries whose address and company already have an apology outside this campaign, and
    entries whose address looks like a typo of a big provider's domain. ``keys``: as for
    :func:`past_attempts`."""
    # One read of the store, indexed here: a query per entry was n scans of the threads.
    others: dict[tuple[str, str], list[int]] = {}
    for thread_id, recipient, company, name, _ in store.apology_keys() if keys is None else keys:
        if name != campaign.name:
            others.setdefault(_same_apology(recipient, company), []).append(thread_id)
    warnings = []
    for e in campaign.entries:
        f = e.facts
        warnings += [f"{e.where}: entry {e.key}: {w}" for w in f.warnings]
        ids = others.get(_same_apology(f.to, f.company))
        if ids:
            warnings.append(
                f"{e.where}: entry {e.key}: {f.to} at {f.company} already has an apology "
                f"outside this campaign (thread {', '.join(map(str, ids))})"
            )
    return warnings


def _same_apology(recipient: str, company: str) -> tuple[str, str]:
    return recipient.lower(), " ".join(company.lower().split())
