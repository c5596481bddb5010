"""What a delivery error does to the message it interrupted, recorded in one place.

:func:`lifecycle.outcome_of` decides (pure); :func:`record_failure` writes that decision to the
store. Every sender (one-shot apology, follow-up, resend, campaign) goes through it, so the
same error never means "failed" to one of them and "retry" to another. Likewise a 250 whose
recording failed (:func:`settle_unrecorded`, :func:`unrecorded`): every sender says it went.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from mailer.adapters.clock import local_zone
from mailer.errors import DeliveryError, MailerError, StateError
from mailer.model.lifecycle import UNRECORDED, MessageState, Outcome, outcome_of
from mailer.model.throttle import effective_cap, start_of_day

if TYPE_CHECKING:
    from mailer.adapters.config import Settings
    from mailer.adapters.store import MessageRow, Store


def record_failure(
    store: Store,
    row_id: int,
    error: DeliveryError,
    now: datetime,
    *,
    resending: bool = False,
    one_shot: bool = False,
) -> Outcome:
    """Record ``error``'s outcome for message ``row_id`` and return it.

    ``one_shot``: nothing will retry this message (a ``mailer send`` apology), so a message
    that may be retried is failed instead of requeued; the user's next ``send`` must not take
    it for a duplicate. ``resending``: a resend of an in-doubt message that did not complete
    stays in doubt, since the first copy may have arrived.
    """
    outcome = outcome_of(error, resending=resending)
    if outcome is Outcome.IN_DOUBT:
        why = f"resend did not complete: {error}" if resending else str(error)
        store.mark_in_doubt(row_id, now, why)
    elif outcome is Outcome.FAILED or one_shot:
        store.mark_failed(row_id, now, str(error))
    else:
        store.requeue(row_id, now, str(error))
    return outcome


def daily_room(
    settings: Settings, store: Store, now: datetime, campaign_cap: int = 0
) -> int | None:
    """How many more messages the account may send today (None: no cap). The tightest of
    the account's ``daily_cap`` and a campaign's own; the day is the sender's, from midnight."""
    cap = effective_cap(campaign_cap, settings.daily_cap)
    if not cap:
        return None
    since = start_of_day(now, local_zone(settings.sender.timezone))
    # Up to a day ahead of now: a message that went today, stamped after midnight by a clock
    # that was fast, still counts (the cap errs on the side of sending less); one stamped
    # days ahead does not hold every follow-up back until that day.
    return cap - store.sent_since(settings.account, since, now + timedelta(days=1))


def settle_unrecorded(
    store: Store, row_id: int, reply: str, error: Exception, now: datetime
) -> bool:
    """After the server's 250 for ``row_id``, whose ``mark_sent`` failed with ``error``: True
    if the row is ``sent`` after all (a COMMIT whose outcome was unknown did commit).
    Otherwise it is marked in doubt as :data:`UNRECORDED`, if the store lets us (else it
    stays ``submitting`` past its final-dot mark, which shows as in doubt once this process
    is gone), and False: either way it is never sent again."""
    with contextlib.suppress(MailerError):
        if store.message(row_id).state == MessageState.SENT:
            return True
    with contextlib.suppress(MailerError):
        store.mark_in_doubt(
            row_id, now, f"{UNRECORDED} ({reply}), but recording it failed: {error}"
        )
    return False


def was_accepted(m: MessageRow) -> bool:
    """True for a message in doubt only in the state store: the server accepted it."""
    return m.state == MessageState.IN_DOUBT and (m.error or "").startswith(UNRECORDED)


def unrecorded(
    kind: str, thread_id: int, reply: str, error: Exception, where: str = ""
) -> StateError:
    """The error that says a message the server accepted could not be recorded as sent: it
    went, so it must not be sent again (not a bare "state store" error, which reads as "not
    sent")."""
    return StateError(
        f"{where}: "
        * bool(where)
        + f"the {kind.replace('_', '-')} WAS accepted by the server ({reply}), but recording it "
        f"failed: {error}",
        hint=f"do not send it again; run 'mailer resolve {thread_id} --sent' when the state "
        "store is writable",
    )
