"""What to say on the phone instead of (or before) the email. Pure: the clock is passed in.

``call_script`` returns a numbered script to read aloud, followed by a voicemail version of
under 30 seconds. Times come from :func:`mailer.model.composer.variables`, so they read exactly as in
the email, in the interviewer's zone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mailer.errors import InputError
from mailer.model.composer import SENTENCE_ENDS, variables
from mailer.model.facts import SITUATIONS, Facts
from mailer.model.settings import SenderSettings

# One sentence per situation and tense, close to the templates' wording, for speaking.
REASONS: dict[str, dict[str, str]] = {
    "illness": {
        "past": "I was taken ill that morning and wasn't well enough to attend, or to let you "
        "know in time.",
        "future": "I'm unwell at the moment, and I don't expect to have recovered in time to "
        "give our conversation my full attention.",
    },
    "personal": {
        "past": "An unforeseen personal matter needed my immediate attention, and I didn't "
        "manage to let you know beforehand.",
        "future": "An unforeseen personal matter has come up that needs my attention at that time.",
    },
    "emergency": {
        "past": "I had to deal with an emergency at the time of our interview, and I couldn't "
        "get in touch with you until now.",
        "future": "An emergency has come up that I must deal with at that time.",
    },
    "transport": {
        "past": "I was held up by a serious transport disruption on my way and couldn't arrive "
        "in time. I should have allowed more time for the journey, and called you as soon as "
        "I knew I'd be late.",
        "future": "A transport disruption on my route that day means I can't be sure of "
        "arriving on time.",
    },
    "technical": {
        "past": "My internet connection failed shortly before the call, and I couldn't join "
        "the video interview or reach you in time.",
        "future": "I'm having trouble with my internet connection and can't be sure of a "
        "stable video call at that time.",
    },
    "conflict": {
        "future": "An unavoidable commitment has come up that clashes with that time.",
    },
}
# The same reasons in a few words, for the voicemail.
SHORT_REASONS: dict[str, dict[str, str]] = {
    "illness": {"past": "I was taken ill", "future": "I'm unwell at the moment"},
    "personal": {
        "past": "an unforeseen personal matter came up",
        "future": "an unforeseen personal matter has come up",
    },
    "emergency": {"past": "I had to deal with an emergency", "future": "an emergency has come up"},
    "transport": {
        "past": "I was held up by a transport disruption",
        "future": "a transport disruption may stop me arriving on time",
    },
    "technical": {
        "past": "my internet connection failed",
        "future": "my internet connection is unreliable",
    },
    "conflict": {"future": "an unavoidable commitment clashes with it"},
}


def call_script(facts: Facts, sender: SenderSettings, now: datetime) -> str:
    """The numbered call script, then the voicemail version, as one text to print."""
    v = _checked_variables(facts, sender, now)
    past: bool = v["past"]
    tense = "past" if past else "future"
    interviewer, company, role = v["interviewer"], v["company"], v["role"]

    lines = [f"CALL SCRIPT — {interviewer}, {company} ({role})"]
    phone = f", call {v['interviewer_phone']}" if v["interviewer_phone"] else ""
    status = "missed" if past else "still ahead"
    lines.append(f"Interview: {v['interview_when']} ({status}){phone}")
    lines.append("")
    had = "had" if past else "have"
    steps: list[tuple[str, str]] = [
        (
            "Greeting",
            f"Hello, is that {v['salutation']}? This is {v['sender_name']}. I {had} an interview "
            f"with you for the {role} position at {company} on {v['interview_when']}.",
        ),
        (
            (
                "Apology",
                "I'm calling to apologise for missing it; I'm very sorry for the "
                "inconvenience, and for the time you lost waiting for me.",
            )
            if past
            else (
                "Request to move",
                "I'm calling to ask whether we could move it; I'm sorry for the inconvenience "
                "this causes, and I'm letting you know as early as I can.",
            )
        ),
        ("Reason", _reason(facts.situation, tense, v["interview_time"])),
        # ("Acme Ltd." and "Yahoo!" end the sentence themselves: no second mark)
        (
            "Interest",
            f"I remain very interested in the {role} role at "
            + (company if company.endswith(SENTENCE_ENDS) else f"{company}."),
        ),
        ("Reschedule", _reschedule(past, v["free_times"], facts.situation)),
        ("Thanks", "Thank you for your understanding and for your time."),
        (
            "Close",
            "If they offer a time, repeat it back (day, time, in person or video), then say: "
            '"I\'ll confirm that by email to you straight after this call."',
        ),
    ]
    for n, (label, text) in enumerate(steps, start=1):
        lines.append(f"{n}. {label}: {text}")
        if label == "Reason" and v["note"]:
            lines.append(f"   Also mention: {v['note']}")
    lines += ["", "VOICEMAIL (under 30 seconds):", _voicemail(v, facts.situation)]
    return "\n".join(lines) + "\n"


def _reason(situation: str, tense: str, interview_time: str) -> str:
    """The spoken reason; as in the email, an illness before an afternoon interview did not
    come "that morning"."""
    reason = REASONS[situation][tense]
    if interview_time >= "12:00":
        reason = reason.replace("that morning", "earlier that day")
    return reason


def voicemail(facts: Facts, sender: SenderSettings, now: datetime) -> str:
    """Just the voicemail message: name, reason, apology, interest, callback, email follows."""
    return _voicemail(_checked_variables(facts, sender, now), facts.situation) + "\n"


def _checked_variables(facts: Facts, sender: SenderSettings, now: datetime) -> dict[str, Any]:
    if facts.situation not in SITUATIONS or facts.situation not in REASONS:
        raise InputError(
            f"--situation: no call script for {facts.situation!r}; there is one for each "
            f"built-in situation ({', '.join(SITUATIONS)})"
        )
    v = variables(facts, sender, now)
    if v["past"] and "past" not in REASONS[facts.situation]:
        raise InputError(
            f"--situation {facts.situation} asks to move an interview that is still ahead, but "
            f"{facts.interview:%Y-%m-%d %H:%M} has passed; pick the situation that explains why "
            "you missed it (illness, personal, emergency, transport, technical)"
        )
    return v


# Where the trouble is getting there (or the video link), joining another way may be enough.
OTHER_WAY = {"transport": "by phone or video call", "technical": "by phone"}


def _reschedule(past: bool, free_times: list[str], situation: str = "") -> str:
    if past:
        ask = "Would it be possible to reschedule at a time that suits you?"
    elif way := OTHER_WAY.get(situation):
        ask = (
            f"Would it be possible to hold our interview {way} instead, or to move it to "
            "another time that suits you?"
        )
    else:
        ask = "Would it be possible to move our interview to another time that suits you?"
    if not free_times:
        return ask + " I'm glad to fit around your calendar; when would suit you?"
    times = "\n".join(f"     - {t}" for t in free_times)
    return f"{ask} I'm free at any of these times:\n{times}"


def _voicemail(v: dict[str, Any], situation: str) -> str:
    past = bool(v["past"])
    reason = SHORT_REASONS[situation]["past" if past else "future"]
    about = (
        f"Hello {v['salutation']}, this is {v['sender_name']}, about my interview for the "
        f"{v['role']} role at {v['company']} on {v['interview_date']}."
    )
    sorry = (
        f"I'm very sorry I missed it: {reason}."
        if past
        else f"I'm sorry, but I need to ask to move it: {reason}."
    )
    interest = (
        f"I remain very interested in the role at {v['company']} and would be glad to find "
        "another time."
    )
    callback = (
        f"Please call me back on {v['sender_phone']}; I'm also sending you an email now."
        if v["sender_phone"]
        else f"I'm also sending you an email now, from {v['sender_email']}, so you can reply "
        "whenever suits you."
    )
    return " ".join((about, sorry, interest, callback, "Thank you."))


def urgency(interview: datetime, now: datetime, interviewer_phone: str = "") -> str | None:
    """Advice on timing: a late apology, or a request to move that is almost too late."""
    call = f" Call {interviewer_phone} as well" if interviewer_phone else " Call them as well"
    call += " ('mailer call-script' prints what to say)."
    if interview <= now:
        hours = (now - interview).total_seconds() / 3600
        if hours > 24:
            days = int(hours // 24)
            return (
                f"The interview was {days} day{'s' if days != 1 else ''} ago, so this apology "
                f"is late; sent today, it still helps.{call}"
            )
        return None
    hours_left = (interview - now).total_seconds() / 3600
    if hours_left < 24:
        n = round(hours_left)
        when = "less than an hour" if n < 1 else f"{n} hour{'s' if n != 1 else ''}"
        return f"The interview is in {when}: an email alone may not be read in time.{call}"
    return None
