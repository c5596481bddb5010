"""Which thread an unthreaded human reply answers when its address was sent several (pure;
issue #13 item 7): the one it names, else every open one is held for the user."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from mailer.model.classify import read_message, reply_text
from mailer.model.followup import AWAITING, FOLLOWED_UP, HELD, REPLIED, hold_for_reply
from mailer.model.matching import IndexedThread, ThreadIndex, choose_for_reply, named
from mailer.services.daemon import once_a_day

T0 = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
LATER = T0 + timedelta(hours=2)
ANA = "ana@acme.example"


def _thread(
    tid: int, company: str, role: str, state: str = AWAITING, to: str = ANA, hours: int = 0
) -> IndexedThread:
    return IndexedThread(tid, to, (), (), T0 + timedelta(hours=hours), state, company, role)


ACME = _thread(1, "Acme Ltd.", "Data Engineer")
BOREALIS = _thread(2, "Borealis", "Product Manager", hours=1)
INDEX = ThreadIndex(our_ids={}, threads=(ACME, BOREALIS))


def test_a_company_is_named_by_whole_words_in_any_case_with_or_without_its_legal_form() -> None:
    """Verify "acme" names "Acme Ltd.", but "Acmeist" or "Borealisation" name nothing."""
    assert named([ACME, BOREALIS], "Re: your note", "Happy to talk, ACME is flexible.") == [ACME]
    assert named([ACME, BOREALIS], "Acme Ltd follow-up", "") == [ACME]
    assert named([ACME, BOREALIS], "Acmeist news", "Borealisation") == []


def test_a_company_name_of_several_words_must_appear_whole() -> None:
    """Verify "Blue Ocean Labs" is named by its words in order, not by one of them."""
    blue = _thread(3, "Blue Ocean Labs", "Analyst")
    assert named([blue], "", "the blue ocean labs team") == [blue]
    assert named([blue], "", "the ocean is blue") == []


def test_a_role_names_a_thread_when_no_company_is_named() -> None:
    """Verify the role phrase names the thread when the company is not mentioned."""
    assert named([ACME, BOREALIS], "The product manager role", "") == [BOREALIS]


def test_a_role_narrows_two_threads_to_the_same_company() -> None:
    """Verify of two threads to one company, the role named picks one; no role keeps both."""
    other = _thread(3, "Acme Ltd.", "Product Manager")
    assert named([ACME, other], "Acme: data engineer interview", "") == [ACME]
    assert named([ACME, other], "Acme", "") == [ACME, other]


def test_a_reply_naming_one_thread_answers_it_and_holds_nothing() -> None:
    """Verify a reply naming Acme goes to Acme's thread even though Borealis's is newer."""
    choice = choose_for_reply(ANA, LATER, "Re: Acme", "See you Friday.", INDEX)
    assert choice is not None and choice.thread_id == 1 and choice.hold == ()


def test_a_reply_naming_no_thread_holds_every_open_one() -> None:
    """Verify a reply that names neither company nor role holds both open threads."""
    choice = choose_for_reply(ANA, LATER, "Quick question", "Can we talk on Monday?", INDEX)
    assert choice is not None and choice.hold == (1, 2)
    assert choice.thread_id == 2  # recorded against the newest


def test_a_reply_naming_two_threads_holds_only_those() -> None:
    """Verify naming two companies of three holds those two, and leaves the third open."""
    third = _thread(3, "Corvid", "Designer", hours=2)
    index = ThreadIndex(our_ids={}, threads=(ACME, BOREALIS, third))
    choice = choose_for_reply(ANA, LATER + timedelta(hours=2), "Acme and Borealis", "", index)
    assert choice is not None and choice.hold == (1, 2)


def test_a_reply_naming_none_with_one_open_thread_answers_the_open_one() -> None:
    """Verify that when only one thread to the address is open, an unnamed reply answers it,
    not the newest (already replied) one, whose follow-up was stopped anyway."""
    replied = _thread(2, "Borealis", "Product Manager", state=REPLIED, hours=1)
    index = ThreadIndex(our_ids={}, threads=(ACME, replied))
    choice = choose_for_reply(ANA, LATER, "Thanks", "Talk soon.", index)
    assert choice is not None and choice.thread_id == 1 and choice.hold == ()


def test_only_threads_sent_to_that_address_before_the_reply_are_considered() -> None:
    """Verify another address's thread, and one sent after the reply came, are left out."""
    elsewhere = _thread(3, "Corvid", "Designer", to="bo@corvid.example")
    later = _thread(4, "Dune", "Designer", hours=5)
    index = ThreadIndex(our_ids={}, threads=(ACME, elsewhere, later))
    choice = choose_for_reply(ANA, LATER, "Hello", "", index)
    assert choice is not None and choice.thread_id == 1 and choice.hold == ()
    assert choose_for_reply("nobody@else.example", LATER, "Hi", "", index) is None


def test_quoted_text_does_not_name_a_thread() -> None:
    """Verify a reply's text for naming stops where it quotes our apology."""
    msg = read_message(
        b"From: ana@acme.example\r\nSubject: Hello\r\nContent-Type: text/plain\r\n\r\n"
        b"Sure, Monday works.\r\n\r\nOn Tue, 24 Nov 2026, Sam wrote:\r\n"
        b"> I am sorry I missed our interview at Borealis.\r\n"
    )
    text = reply_text(msg)
    assert "Monday works" in text and "Borealis" not in text
    assert named([ACME, BOREALIS], "Hello", text) == []


def test_holding_keeps_the_state_to_return_to_and_stops_queued_follow_ups() -> None:
    """Verify a hold remembers awaiting/followed-up, keeps an already held thread held, and
    leaves a closed thread alone."""
    kw = {"sender": ANA, "subject": "Hi", "received": LATER, "threads": (1, 2)}
    d = hold_for_reply(AWAITING, **kw)
    assert d.state == HELD and d.detail["held_from"] == AWAITING and d.stop_follow_ups
    assert hold_for_reply(FOLLOWED_UP, **kw).detail["held_from"] == FOLLOWED_UP
    again = hold_for_reply(HELD, **kw)
    assert again.state is None and "held_from" not in again.detail
    assert hold_for_reply(REPLIED, **kw).event == "ignored"


def test_the_daemon_names_a_held_thread_once_a_day() -> None:
    """Verify a reminder line is given once per day, again the next day, and again after it
    went away and came back."""
    said: dict[str, date] = {}
    day = date(2026, 11, 25)
    assert once_a_day(["thread 1 held"], said, day) == ["thread 1 held"]
    assert once_a_day(["thread 1 held"], said, day) == []
    assert once_a_day(["thread 1 held"], said, day + timedelta(days=1)) == ["thread 1 held"]
    assert once_a_day([], said, day + timedelta(days=1)) == []
    assert once_a_day(["thread 1 held"], said, day + timedelta(days=1)) == ["thread 1 held"]


def test_the_pass_log_warns_of_each_held_thread(caplog) -> None:
    """Verify the daemon's pass log gives each held thread's line (with its command) as a
    warning, so it reaches the journal at the default level."""
    import logging

    from mailer.services.daemon import log_report
    from mailer.services.passes import PassReport

    line = "thread 1 (Acme) is held: ...; otherwise 'mailer release 1' to let its follow-up go"
    with caplog.at_level(logging.INFO, logger="mailer"):
        log_report(PassReport(held=[line]))
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [(logging.WARNING, line)]
