"""One apology, prepared: composed from its template and the sender's facts, serialised, and
checked (the lint and the free times), before anything is sent. Pure; sending it is
mailer.services.sending."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mailer.model.composer import Composed, Composer, Draft, build_message, compose_apology
from mailer.model.facts import OFFICE_HOURS, Facts, check_free_times, odd_hours
from mailer.model.lint import ERROR, WARNING, Finding, lint_apology
from mailer.model.settings import parse_window

if TYPE_CHECKING:
    # Types only: the pure layer reads settings and rows, it never loads or queries them.
    from collections.abc import Container

    from mailer.adapters.config import Settings
    from mailer.adapters.store import ThreadRow


@dataclass(frozen=True)
class Prepared:
    facts: Facts
    draft: Draft
    composed: Composed
    findings: tuple[Finding, ...] = ()


def prepare(
    settings: Settings,
    facts: Facts,
    now: datetime,
    composer: Composer | None = None,
    *,
    sending: bool = False,
    unattended: bool = False,
    taken_subjects: Container[str] = frozenset(),
) -> Prepared:
    """Compose and serialise the apology. Raises before any connection is opened.

    ``sending``: a free time at night or on a weekend for the interviewer is then an error
    (``--force`` overrides), not a warning; so is an interview far from today (a mistyped
    year). Both are errors for ``unattended`` too (a campaign entry: its run shows no
    warnings). ``taken_subjects``: see compose_apology."""
    composer = composer or Composer(settings.templates_dir)
    time_warnings = check_free_times(facts.free, now)
    draft = compose_apology(composer, facts, settings.sender, now, taken_subjects)
    composed = build_message(draft, facts, settings.sender, now, html_part=settings.html)
    findings = [
        Finding(
            rule="weekend-time",
            severity=WARNING,
            message=w,
            fix="offer weekday times unless they suggested a weekend",
        )
        for w in time_warnings
    ]
    findings += [
        Finding(
            rule="odd-hours",
            severity=ERROR if sending or unattended else WARNING,
            message=w,
            fix=f"offer times between {OFFICE_HOURS[0]:%H:%M} and {OFFICE_HOURS[1]:%H:%M} on "
            "a weekday in their zone; if they asked for this one, send it with --force",
        )
        for w in odd_hours(facts.free, facts.interviewer_tz)
    ]
    findings += [
        Finding(
            rule="free-at-interview",
            severity=ERROR,
            message=f"You offer {slot.start:%a %d %b %H:%M}-{slot.end:%H:%M} as a free time, "
            "but the interview you ask to move is then.",
            fix="offer other times (the free times are the ones you can make)",
        )
        for slot in facts.free
        if slot.start <= facts.interview < slot.end
    ]
    findings += [
        Finding(
            rule="far-date",
            severity=ERROR if sending or unattended else WARNING,
            message=far,
            fix="check the interview's date and year (e.g. --interview '2026-11-25 10:00'); "
            "if it is right, send it with --force",
        )
        for far in [far_date(facts.interview, now)]
        if far
    ]
    locale = settings.sender.locale
    if (
        settings.sender.locale_set
        and not locale.lower().startswith("en")
        and composer.builtin(draft.template)
    ):
        # The dates are written in the locale's language inside English sentences ("on
        # Donnerstag, 10. Dezember at 10:00"; a walkthrough).
        findings.append(
            Finding(
                rule="locale-language",
                severity=ERROR,
                message=f"[sender] locale {locale} writes the dates in another language than "
                "the built-in template's English",
                fix="set [sender] locale to en_GB (day first) or en_US (month first), or write "
                "your own templates in that language (templates/ in your workspace)",
            )
        )
    findings += lint_apology(
        draft.subject,
        draft.text,
        company=facts.company,
        role=facts.role,
        note=facts.note,
        past=facts.interview <= now,
    )
    findings.sort(key=lambda f: f.severity != ERROR)
    return Prepared(facts=facts, draft=draft, composed=composed, findings=tuple(findings))


# An interview further from today than this is more likely a wrong year or a typo than one
# to apologise for: sent only on purpose (--force).
# (180 ahead: a year typed one too high for an interview missed days ago is about 360.)
FAR_PAST_DAYS = 90
FAR_AHEAD_DAYS = 180


def far_date(interview: datetime, now: datetime) -> str | None:
    """What is odd about an interview this far from ``now``; None if nothing is."""
    days = (interview - now).days
    day = f"{interview:%a} {interview.day} {interview:%b %Y}"
    if -days > FAR_PAST_DAYS:
        return f"The interview ({day}) was {-days} days ago; is the date right?"
    if days > FAR_AHEAD_DAYS:
        return f"The interview ({day}) is {days} days away; is the year right?"
    return None


def thread_settings(settings: Settings, thread: ThreadRow) -> Settings:
    """The settings a thread's next message goes out with: its account's, and for a campaign
    thread the policy of its entry (wait, count, window, sender details), which may differ
    from the config's."""
    settings = settings.for_account(thread.account)
    if thread.campaign is None:
        return settings
    policy = thread.detail.get("policy", {})
    return with_policy(
        settings,
        {**policy, "wait": thread.follow_up_wait, "max_follow_ups": thread.max_follow_ups},
    )


def with_policy(settings: Settings, policy: dict[str, Any]) -> Settings:
    """``settings`` with a campaign entry's policy over them: ``wait``, ``max_follow_ups``,
    ``window`` and ``window_days`` for the follow-ups, ``sender`` fields (name, phone,
    signature) for every message. The same dict is kept with the thread."""
    fu = settings.follow_up
    window = fu.window
    if "window" in policy:
        window = parse_window(policy["window"], policy.get("window_days", "mon-fri"))
    return replace(
        settings,
        sender=replace(settings.sender, **policy.get("sender", {})),
        follow_up=replace(
            fu,
            wait=policy.get("wait", fu.wait),
            max_follow_ups=policy.get("max_follow_ups", fu.max_follow_ups),
            window=window,
        ),
    )
