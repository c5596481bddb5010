"""The campaign run's plan (mailer.model.runplan.py), pure: no servers, no store, no clock.

Each test feeds the planner facts (earlier attempts, cap room, --limit) and, for each send it
asks for, scripted feedback, and checks the actions it chose.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.model.runplan import (
    Act,
    Action,
    Feedback,
    Item,
    Past,
    RunPlan,
    Why,
    skip_reason,
)

SENT_OK = Feedback(took_room=True)


def past(state: str, **kw: object) -> Past:
    fields: dict[str, object] = {
        "thread_id": 7,
        "thread_state": "awaiting_reply",
        "state": state,
        "shown": state,
    }
    fields.update(kw)
    return Past(**fields)  # type: ignore[arg-type]


def items(*accounts: str, skips: dict[int, Past] | None = None, retry: bool = False) -> list[Item]:
    skips = skips or {}
    return [
        Item(f"e{i}", a, skip_reason([skips[i]] if i in skips else [], retry))
        for i, a in enumerate(accounts)
    ]


def drive(plan: RunPlan, feedback: dict[str, Feedback] | None = None) -> list[Action]:
    """Every action of the plan; each SEND answered with ``feedback[key]`` or a success."""
    feedback = feedback or {}
    out: list[Action] = []
    answer: Feedback | None = None
    while (action := plan.next_action(answer)) is not None:
        out.append(action)
        answer = feedback.get(action.key, SENT_OK) if action.act is Act.SEND else None
    return out


def acts(actions: list[Action]) -> list[tuple[str, Act]]:
    return [(a.key, a.act) for a in actions]


def test_an_entry_sent_already_is_skipped_and_says_which_thread() -> None:
    plan = RunPlan(items("", "", skips={0: past("sent")}), room={})
    actions = drive(plan)
    assert acts(actions) == [("e0", Act.SKIP), ("e1", Act.SEND)]
    assert actions[0].skip is Why.SENT and "already sent (thread 7" in actions[0].why


def test_an_entry_in_doubt_is_skipped_and_flagged_in_doubt() -> None:
    doubt = past("submitting", shown="in_doubt")
    (action,) = drive(RunPlan(items("", skips={0: doubt}), room={}))
    assert action.act is Act.SKIP and action.in_doubt and "mailer resolve 7" in action.why


def test_a_refused_entry_waits_for_retry_failed_and_a_failed_one_is_sent_again() -> None:
    refused = past("failed", refused=True, error="550 no such user")
    assert skip_reason([refused], retry_failed=False).why is Why.REFUSED  # type: ignore[union-attr]
    assert skip_reason([refused], retry_failed=True) is None
    assert skip_reason([past("failed")], retry_failed=False) is None


def test_an_entry_another_live_process_is_sending_is_skipped() -> None:
    assert skip_reason([past("submitting")], False).why is Why.BUSY  # type: ignore[union-attr]
    assert skip_reason([past("queued", owner_alive=True)], False).why is Why.BUSY  # type: ignore[union-attr]
    assert skip_reason([past("queued")], False) is None  # its process is gone


def test_a_send_abandoned_before_the_final_dot_is_sent_again() -> None:
    abandoned = past("submitting", shown="queued", abandoned_before_final_dot=True)
    assert skip_reason([abandoned], False) is None


def test_the_newest_attempt_decides() -> None:
    old_sent, new_failed = past("sent", thread_id=1), past("failed", thread_id=2)
    assert skip_reason([new_failed, old_sent], False).why is Why.SENT  # type: ignore[union-attr]
    assert skip_reason([past("failed", thread_id=1, refused=True), new_failed], False) is None


def test_limit_counts_only_attempts_not_skips() -> None:
    sent = past("sent")
    plan = RunPlan(items("", "", "", "", "", skips={0: sent, 2: sent}), room={}, limit=2)
    actions = drive(plan)
    assert acts(actions) == [
        ("e0", Act.SKIP),
        ("e1", Act.SEND),
        ("e2", Act.SKIP),
        ("e3", Act.SEND),
    ]
    assert plan.stopped == "--limit 2 reached"


def test_limit_counts_a_send_that_failed() -> None:
    failed = Feedback(took_room=False)
    plan = RunPlan(items("", "", ""), room={}, limit=2)
    assert acts(drive(plan, {"e0": failed})) == [("e0", Act.SEND), ("e1", Act.SEND)]
    assert plan.stopped


def test_no_limit_means_no_stop_reason() -> None:
    plan = RunPlan(items("", ""), room={})
    assert len(drive(plan)) == 2 and plan.stopped == ""


def test_the_daily_cap_holds_back_the_rest_of_that_account_only() -> None:
    plan = RunPlan(items("a", "a", "b", "a", "b"), room={"a": 1, "b": None})
    assert acts(drive(plan)) == [
        ("e0", Act.SEND),
        ("e1", Act.HOLD_BACK),
        ("e2", Act.SEND),
        ("e3", Act.HOLD_BACK),
        ("e4", Act.SEND),
    ]


def test_a_send_in_doubt_uses_cap_room_and_a_failed_one_does_not() -> None:
    in_doubt, failed = Feedback(took_room=True), Feedback(took_room=False)
    plan = RunPlan(items("a", "a", "a", "a"), room={"a": 2})
    actions = drive(plan, {"e0": failed, "e1": in_doubt})
    assert acts(actions) == [
        ("e0", Act.SEND),
        ("e1", Act.SEND),
        ("e2", Act.SEND),
        ("e3", Act.HOLD_BACK),
    ]


def test_a_cap_used_up_by_earlier_runs_holds_back_everything() -> None:
    plan = RunPlan(items("a", "a"), room={"a": 0})
    assert [a.act for a in drive(plan)] == [Act.HOLD_BACK, Act.HOLD_BACK]


def test_an_account_that_went_down_fails_its_remaining_entries_without_connecting() -> None:
    down = Feedback(took_room=False, account_down="535 authentication failed")
    plan = RunPlan(items("a", "b", "a", "b", "a"), room={})
    actions = drive(plan, {"e0": down})
    assert acts(actions) == [
        ("e0", Act.SEND),
        ("e1", Act.SEND),
        ("e2", Act.FAIL),
        ("e3", Act.SEND),
        ("e4", Act.FAIL),
    ]
    assert actions[2].why == "535 authentication failed"


def test_a_down_account_does_not_count_against_the_limit() -> None:
    down = Feedback(took_room=False, account_down="TLS certificate refused")
    plan = RunPlan(items("a", "a", "b", "b"), room={}, limit=2)
    assert acts(drive(plan, {"e0": down})) == [
        ("e0", Act.SEND),
        ("e1", Act.FAIL),
        ("e2", Act.SEND),
    ]


def test_a_dry_run_would_send_and_uses_the_cap_room_as_sends_would() -> None:
    plan = RunPlan(items("a", "a", "a"), room={"a": 2}, dry_run=True)
    actions = drive(plan)
    assert [a.act for a in actions] == [Act.WOULD_SEND, Act.WOULD_SEND, Act.HOLD_BACK]


def test_after_a_send_the_plan_refuses_to_go_on_without_its_outcome() -> None:
    plan = RunPlan(items("", ""), room={})
    assert plan.next_action().act is Act.SEND  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="e0"):
        plan.next_action()


def test_the_plan_is_lazy_over_its_entries() -> None:
    """A generator of items is read one entry at a time (a big campaign is not copied)."""
    seen: list[int] = []

    def gen():  # type: ignore[no-untyped-def]
        for i in range(1000):
            seen.append(i)
            yield Item(f"e{i}", "")

    plan = RunPlan(gen(), room={}, limit=1)
    assert drive(plan)[0].key == "e0" and len(seen) == 2  # the second only to see the limit


def test_the_planner_is_in_the_pure_layer() -> None:
    """Verify runplan lives in mailer.model, whose imports tests/test_layers.py checks (no
    store, network or process module, at any depth)."""
    from mailer.model import runplan

    assert runplan.__name__ == "mailer.model.runplan"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("ab"), st.booleans()), max_size=8),
    st.dictionaries(st.sampled_from("ab"), st.one_of(st.none(), st.integers(0, 3))),
    st.one_of(st.none(), st.integers(0, 5)),
    st.lists(st.tuples(st.booleans(), st.sampled_from(["", "login refused"])), max_size=8),
)
def test_next_send_names_the_send_the_plan_gives_next_after_that_feedback(
    entries: list[tuple[str, bool]],
    room: dict[str, int | None],
    limit: int | None,
    answers: list[tuple[bool, str]],
) -> None:
    """Verify, for any entries (some skipped), cap room, limit and feedback, that asking
    next_send before each feedback changes nothing and names exactly the action the plan
    then gives once the skips are passed, if it is a SEND (None otherwise)."""
    sent = past("sent")
    plan_items = items(
        *(a for a, _ in entries), skips={i: sent for i, (_, s) in enumerate(entries) if s}
    )
    plan, twin = (
        RunPlan(plan_items, room=room, limit=limit),
        RunPlan(plan_items, room=room, limit=limit),
    )
    fed = iter(answers)
    feedback: Feedback | None = None
    predicted: Action | str | None = "not asked"
    while True:
        action = plan.next_action(feedback)
        assert action == twin.next_action(feedback)  # asking ahead changed nothing
        while action is not None and action.act is Act.SKIP:
            action = plan.next_action()
            assert action == twin.next_action()
        if predicted != "not asked":
            assert predicted == (action if action is not None and action.act is Act.SEND else None)
        if action is None:
            break
        if action.act is not Act.SEND:
            predicted, feedback = "not asked", None
            continue
        took, down = next(fed, (True, ""))
        feedback = Feedback(took_room=took, account_down=down)
        predicted = plan.next_send(feedback)
        assert plan.next_send(feedback) == predicted  # and asking again gives the same


def test_an_earlier_version_of_an_entry_stops_it_only_if_it_may_have_reached_them() -> None:
    """Verify an apology sent (or in doubt, or being sent) for the entry before its time was
    edited skips it, naming that time; one the server refused or never took does not."""
    was = "Tue 24 Nov 2026 11:30 (Europe/London)"
    for reached in (past("sent"), past("submitting"), past("in_doubt")):
        skip = skip_reason([replace(reached, changed_from=was)], retry_failed=False)
        assert skip is not None and skip.why is Why.CHANGED and was in skip.text
        assert skip.thread_id == 7
    refused = past("failed", refused=True, error="550 no such user", changed_from=was)
    assert skip_reason([refused], retry_failed=False) is None
    never = past("submitting", abandoned_before_final_dot=True, changed_from=was)
    assert skip_reason([never], retry_failed=False) is None
