"""What a delivery error does to the message it interrupted, recorded in one place.

:func:`lifecycle.outcome_of` decides (pure); :func:`record_failure` writes that decision to the
store. Every sender (one-shot apology, follow-up, resend, campaign) goes through it, so the
same error never means "failed" to one of them and "retry" to another.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from mailer.errors import DeliveryError
from mailer.model.lifecycle import Outcome, outcome_of

if TYPE_CHECKING:
    from mailer.adapters.store import Store


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
