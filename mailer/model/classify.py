"""Decide what a message related to a sent apology means: a human reply, an auto-reply or a bounce.

Pure: no network, no state, no clock. :func:`classify` never raises; anything it cannot read
comes out as ``human`` (the safe default: a human verdict stops follow-ups, so the costly
mistake of ignoring a person's reply is never made because of a parsing problem).

The rules, strongest first:

1. Structured reports: RFC 3464 delivery-status parts (``Action:``, ``Status:``,
   ``Final-Recipient:``), RFC 3798 disposition notifications, Amazon SES JSON notifications.
2. Challenge-response notices (the apology is held until the sender verifies).
3. Bounces without a usable report: a delivery-system sender (``MAILER-DAEMON``, ``postmaster``:
   :mod:`mailer.model.senders`) or a delivery-failure subject, backed by failure text in the
   notification or by failed addresses that ``flufl.bounce`` finds; this outranks an
   ``Auto-Submitted`` header. A null sender alone does not (vacation replies have one).
4. Auto-replies: RFC 3834 ``Auto-Submitted``, ``X-Autoreply``/``X-Autorespond``,
   ``Precedence: auto_reply``, a null return path, Exchange markers and localised subjects and
   bodies. ``Precedence: bulk``/``list`` alone never makes a message automatic.
5. Out-of-office by its text alone: a short, unquoted, non-reply message that opens with an
   out-of-office phrase and asks nothing (see :func:`_from_away_body`).
6. Everything else is human.

See ``docs/classifier.md`` for the full list.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.message
import html
import json
import logging
import quopri
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.header import decode_header
from email.policy import compat32
from email.utils import parsedate_to_datetime
from typing import Any

from mailer.model.excerpt import excerpt, header_text, parse_address, parse_addresses
from mailer.model.senders import is_delivery_system, is_delivery_system_local

__all__ = [
    "AUTO_REPLY",
    "BOUNCE",
    "HUMAN",
    "Verdict",
    "classify",
    "classify_message",
    "original_message_ids",
    "read_message",
    "reported_recipients",
]

HUMAN = "human"
AUTO_REPLY = "auto-reply"
BOUNCE = "bounce"

# Auto-reply subtypes.
OUT_OF_OFFICE = "out-of-office"
AUTORESPONDER = "autoresponder"
CHALLENGE_RESPONSE = "challenge-response"
DELIVERED = "delivered"

# Bounce subtypes.
HARD = "hard"
SOFT = "soft"
DELAY = "delay"

# Limits that keep the regular expressions fast on hostile input.
_MAX_TEXT = 64_000
_MAX_CUE_TEXT = 8_000
_MAX_PARTS = 200
_MAX_REASON = 200
_MAX_DATE_ATTEMPTS = 12
_MAX_HEADER = 4_000


@dataclass(frozen=True)
class Verdict:
    """What an incoming message means for the apology it relates to."""

    kind: str  # "human" | "auto-reply" | "bounce"
    subtype: str | None  # see the module constants; None for human
    reason: str  # short human-readable reason
    return_date: date | None = None  # out-of-office return date, if stated
    failed_recipients: tuple[str, ...] = ()  # bounce: lower-cased addresses
    status: str | None = None  # bounce: e.g. "5.1.1"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict: dates as ISO strings, tuples as lists."""
        return {
            "kind": self.kind,
            "subtype": self.subtype,
            "reason": self.reason,
            "return_date": self.return_date.isoformat() if self.return_date else None,
            "failed_recipients": list(self.failed_recipients),
            "status": self.status,
        }


def classify(raw: bytes, *, received: date | None = None) -> Verdict:
    """Classify a raw RFC 5322 message. Never raises: unreadable input is ``human``."""
    try:
        msg = read_message(raw)
    except Exception as exc:
        return _unparseable(exc)
    return classify_message(msg, received=received)


def read_message(raw: bytes | str) -> email.message.Message:
    """``raw`` parsed for the rules: its headers and a bounded prefix of each part (see
    :mod:`mailer.model.excerpt`), so what it costs does not grow with what a sender sends."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    return email.message_from_bytes(excerpt(bytes(raw)).data, policy=compat32)


def classify_message(msg: email.message.Message, *, received: date | None = None) -> Verdict:
    """Classify a parsed message (any policy). Never raises: errors give ``human``."""
    try:
        return _classify(msg, received)
    except Exception as exc:  # any bug or hostile input: the safe default
        return _unparseable(exc)


def original_message_ids(raw: bytes | email.message.Message) -> set[str]:
    """Message-IDs (with angle brackets, as written) that tie ``raw`` to a message we sent.

    Looks in In-Reply-To and References, in attached originals (``message/rfc822``,
    ``text/rfc822-headers``), in ``Original-Message-ID`` report fields and in header blocks
    quoted in plain-text bounces. Never raises.
    """
    ids: set[str] = set()
    try:
        msg = raw if isinstance(raw, email.message.Message) else read_message(raw)
        for name in ("In-Reply-To", "References"):
            for value in _header_values(msg, name):
                ids.update(_MSGID_RE.findall(value))
        for part in _walk(msg):
            ctype = _content_type(part)
            if ctype in ("message/rfc822", "message/global") and part.is_multipart():
                for inner in part.get_payload():
                    if isinstance(inner, email.message.Message):
                        for value in _header_values(inner, "Message-ID"):
                            ids.update(_MSGID_RE.findall(value)[:1])
            elif not part.is_multipart():
                text = _part_text(part)
                if text:
                    ids.update(_MSGID_LINE_RE.findall(text[:_MAX_TEXT]))
            elif ctype in _REPORT_BODY_TYPES:
                ids.update(_MSGID_LINE_RE.findall(_report_text(part)))
    except Exception:
        return ids
    return ids


def reported_recipients(msg: email.message.Message) -> tuple[str, ...]:
    """Every address a delivery report names for a recipient (``Final-Recipient``, and
    ``Original-Recipient`` and ``X-Actual-Recipient``, which a verdict's
    ``failed_recipients`` skips when a final one is given: an alias or a forward shows the
    address we wrote to only there). Lower case; never raises."""
    try:
        found = [
            _address(block.get(name, ""))
            for _, blocks in _reports(msg, into_attached=True)
            for block in blocks
            for name in ("final-recipient", "original-recipient", "x-actual-recipient")
        ]
    except Exception:
        return ()
    return _dedupe(a for a in found if a)


def reply_text(msg: email.message.Message) -> str:
    """What the sender wrote above any quoted text, bounded: where a reply may name the
    company or role it answers about (:func:`mailer.model.matching.named`). Never raises."""
    try:
        texts: list[str] = []
        size = 0
        for part in _notification_parts(msg):
            texts.append(_part_text(part))
            size += len(texts[-1])
            if size > _MAX_TEXT:
                break
        return _unquoted("\n".join(texts)[:_MAX_TEXT])[:_MAX_CUE_TEXT]
    except Exception:  # hostile or broken input: the subject alone must do
        return ""


# --------------------------------------------------------------------------------------------
# Patterns


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE | re.MULTILINE)


_MSGID_RE = re.compile(r"<[^<>\s]+>")
_MSGID_LINE_RE = re.compile(
    r"^[ \t>]*(?:Original-)?Message-ID:[ \t]*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE
)
_REPORT_BODY_TYPES = (
    "message/delivery-status",
    "message/global-delivery-status",
    "message/disposition-notification",
    "message/global-disposition-notification",
    "text/rfc822-headers",
    "message/rfc822-headers",
    "message/global-headers",
)
_ORIGINAL_TYPES = (
    "message/rfc822",
    "message/global",
    "text/rfc822-headers",
    "message/rfc822-headers",
    "message/global-headers",
)

# Subject prefixes of forwarded mail ("Fwd:", German "WG:", French "TR:", ...).
_FORWARD_SUBJECT = _rx(r"^\s*(?:fwd?|wg|tr|rv|enc|i|doorst|pd)\s*:")
_REPLY_PREFIX = _rx(r"^\s*(?:(?:re|aw|antw|sv|vs|odp|r|ref|rif|res|antwort|回复|答复)\s*:\s*)+")

# Delivery-system senders: mailer.model.senders has the one definition.
_NOREPLY_LOCAL = _rx(r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|auto[-_.]?(?:reply|respon))")
_DAEMON_ANYWHERE = _rx(r"\b(?:mailer-daemon|mail-daemon|postmaster|mdaemon)@")
# Mailing-list managers that refuse a post ("list-owner", "list-admin", "list-bounces").
_LIST_MANAGER_LOCAL = _rx(
    r"(?:-(?:admin|owner|bounces?|request|ctl)|^(?:owner|admin)-.+|"
    r"^(?:listserv|majordomo|sympa|mailman|ecartis|lyris|listproc))$"
)
# Subjects that announce a failed or delayed delivery, in several languages.
_BOUNCE_SUBJECT = _rx(
    r"undeliver|undelivered|not delivered|non[- ]?deliver|could not be delivered|"
    r"delivery (?:status )?notification|delivery (?:failure|failed|error|problem|report)|"
    r"delivery has failed|failure notice|failed delivery|returned (?:mail|email|message)|"
    r"mail delivery (?:failed|failure|problem|error|subsystem)|mail (?:system )?error|"
    r"mail could not|message (?:could not|not delivered|delayed|blocked)|delayed mail|"
    r"warning: (?:message|could not)|not yet been delivered|^\s*rejected:|failed mail|"
    r"processing error|error sending your mail|\bndr\b|delivery status|delivery warning|"
    r"^\s*mail failure\b|(?:mail(?:ing)?|message|routing) loop|loop (?:was )?detected|"
    r"looping (?:message|mail)|possible (?:mail )?loop|"
    r"user unknown|unknown user|no such user|address(?:ee)? unknown|"
    r"unzustellbar|nicht zustellbar|zustellung fehlgeschlagen|unzustellbare|"
    r"non remis|non distribuable|échec de (?:la )?(?:remise|distribution)|"
    r"utilisateur non recensé|no se (?:puede|pudo) entregar|no entregado|"
    r"error de entrega|onbestelbaar|niet bezorgd|kan niet worden bezorgd|"
    r"non recapitabile|impossibile recapitare|mancato recapito|não entregue|"
    r"falha na entrega|olevererbar|kunne ikke leveres|nedoručiteln|niedostarczon|"
    r"недоставленное|не доставлено|не может быть доставлено|не удалось доставить|"
    r"сообщение не доставлено|ошибка доставки|"
    r"メールエラー|配信エラー|送信エラー|配信不能|未配信|エラー通知|退信|"
    r"无法投递|投递失败|系统退信|未能送达|傳送失敗"
)

# Failure wording in a delivery notification.
_BOUNCE_BODY = _rx(
    r"could ?n[o']t be (?:delivered|sent)|(?:was|were|has|have) not been delivered|"
    r"was ?n[o']t delivered|not (?:be )?deliverable|undeliverable|undelivered|"
    r"delivery (?:to (?:the )?following recipients? )?(?:has )?failed|delivery failure|"
    r"failed (?:to deliver|permanently|recipient)|(?:unable|impossible) to deliver|"
    r"could not deliver|trouble delivering|permanent (?:error|failure|fatal)|"
    r"fatal errors? occurred|"
    r"user unknown|unknown user|(?:user|recipient|mailbox|address|account) "
    r"(?:does not exist|doesn't exist|not found|unknown|unavailable|disabled|inactive|"
    r"is (?:full|unavailable|disabled|inactive|not active|over quota))|"
    r"no such (?:user|mailbox|recipient|address|domain|person|account)|"
    r"recipient address rejected|address rejected|mailbox (?:is )?full|over ?quota|"
    r"quota exceeded|invalid (?:user|recipient|mailbox|address)|host (?:or domain name )?"
    r"(?:unknown|not found)|not a valid (?:user|recipient|mailbox|address|e-?mail)|"
    r"malformed (?:recipient )?address|incorrectly constructed|no mailbox here|"
    r"unrouteable (?:address|mail domain)|relay(?:ing)? (?:access )?denied|"
    r"(?:you tried to reach|tried to reach) (?:does not|doesn't) exist|"
    r"(?:mail(?:ing)?|message|routing) loop|loop (?:was )?detected|message is looping|"
    r"looping (?:message|mail)|possible (?:mail )?loop|already has my (?:delivered-to|"
    r"x-beenthere)|bounce between two servers|"
    r"too many hops|hop count exceeded|host (?:or domain name )?"
    r"(?:unknown|not found)|domain (?:not found|does not exist)|"
    r"returned (?:mail|to sender)|message (?:was )?(?:rejected|refused|blocked|bounced)|"
    r"(?:was|were|has been) (?:automatically )?rejected|"
    r"this is the mail system at|mail delivery (?:software|system|subsystem)|"
    r"delivery status notification|errors? (?:sending|delivering)|"
    r"the following (?:address(?:es)?|recipients?) (?:had|failed|returned|could)|"
    r"did not reach (?:the following|some or all of the intended|the intended)|"
    r"delivery has failed|"
    r"(?:you are|you're) not (?:a )?(?:member|subscribe)|not (?:a )?member of (?:this|the) "
    r"(?:mailing )?list|only (?:list )?members (?:can|may) post|non-?members? (?:are not|may not)|"
    r"not yet been delivered|has been delayed|delivery (?:is )?delayed|"
    r"n'a pas pu être (?:remis|délivré|distribué)|non remis|adresse (?:invalide|inconnue)|"
    r"utilisateur (?:inconnu|non recensé)|"
    r"konnte nicht (?:zugestellt|ausgeliefert)|unzustellbar|nicht zustellbar|"
    r"no (?:se )?(?:ha )?(?:pudo|podido) (?:ser )?entregar|usuario desconocido|"
    r"non (?:è stato|può essere) (?:recapitat|consegnat)|impossibile recapitare|"
    r"não (?:pôde|foi possível) (?:ser )?entreg|kon niet worden (?:bezorgd|afgeleverd)|"
    r"kunde inte levereras|kunne ikke leveres|nie (?:może być|został[ao]?) dostarczon|"
    r"не (?:может быть|было|удалось|могу) (?:доставлен|доставить)|не доставлено|"
    r"送信できませんでした|配信できませんでした|届きませんでした|宛先不明|配送できません|"
    r"無法投遞|无法投递|投递失败|未能成功送达"
)

# A mailing list's loop alert (machine-made: called a bounce, the closest class).
_LOOP_TEXT = _rx(
    r"(?:mail(?:ing)?|message|routing) loop|loop (?:was )?detected|message is looping|"
    r"looping (?:message|mail)|possible (?:mail )?loop|already has my (?:delivered-to|x-beenthere)"
)
_LIST_HEADERS = ("List-Id", "List-Post", "X-BeenThere", "X-Loop", "X-Mailman-Version")

# SMTP reply and enhanced status codes: only trusted when a delivery system is speaking.
_BOUNCE_CODE = re.compile(
    r"(?<![\d.])[45]\.\d{1,3}\.\d{1,3}(?![\d.])|(?<![\d.-])(?:55[0-4]|45[0-2])(?![\d.-])"
)

# A warning that delivery is still being attempted.
_DELAY_CUE = _rx(
    r"not yet been delivered|has(?: been)? delayed|been delayed|is delayed|"
    r"delivery (?:is )?delayed|"
    r"still (?:being )?(?:re)?tr(?:y|ied|ying)|still awaiting delivery|"
    r"will (?:continue (?:to )?|keep |be )(?:re)?tr(?:y|ied|ying)|"
    r"(?:delivery )?attempts will continue|will (?:be )?retried|message will be retried|"
    r"warning message only|no action is required on your part|"
    r"do not need to resend|delivery delayed|\bdelayed mail\b|"
    r"verzögert|retardé|retrasado|ritardat|vertraagd|задерж"
)
_DELAY_SUBJECT = _rx(
    r"\bdela(?:y|yed)\b|warning:|not yet (?:been )?delivered|still being retried|"
    r"verzögert|retardé|retrasad|ritardat|vertraagd|задерж"
)
_SOFT_CUE = _rx(
    r"mailbox (?:is )?full|over ?quota|quota exceeded|exceeds? (?:the )?(?:storage |disk )?quota|"
    r"insufficient (?:disk |storage )?space|mail ?box space not enough|storage full|"
    r"too (?:large|big)|exceeds? (?:the )?(?:maximum )?(?:message )?size|size limit|"
    r"message size exceeds|expired|timed? ?out|retry time(?:out)? (?:was )?exceeded|"
    r"exceeded maximum delivery attempts|一杯|容量"
)
_SOFT_STATUSES = frozenset({"2.2", "2.3", "3.4", "4.7", "4.6"})

# Out-of-office wording in subjects and bodies.
_OOO_CUE = _rx(
    r"out of (?:the )?office|\booo\b|\bout of office\b|"
    r"(?:on|taking) (?:annual |parental |maternity |paternity |sick |summer )?"
    r"(?:vacation|holiday|holidays|leave)\b|"
    r"(?:away|absent|out) (?:from|of) (?:the |my )?(?:office|desk|e-?mail|mail|work)|"
    r"\b(?:i am|i'm|i’m) (?:currently )?(?:away|out|traveling|travelling|on (?:leave|vacation))|"
    r"\bi will be (?:out|away|travel)|limited (?:access to|ability to check) (?:my )?e-?mail|"
    r"(?:without|no) access to (?:my )?e-?mail|upon my return|"
    r"abwesen|außer haus|nicht im büro|im urlaub|\burlaub\b|bin (?:ab|bis) |"
    r"absent|absence|en congés?|hors du bureau|en vacances|"
    r"fuera de la oficina|ausente|de vacaciones|estaré fuera|"
    r"fuori (?:sede|ufficio)|assente|in ferie|in vacanza|"
    r"afwezig|niet op kantoor|met vakantie|op vakantie|"
    r"fora do escritório|de férias|frånvar|på semester|ikke på kontoret|fravær|lomalla|"
    r"poza biurem|nieobecn|na urlopie|вне офиса|в отпуске|отсутств|"
    r"不在|休暇|休假|不在办公室"
)

# Subjects that only automatic answers use (matched at the start, after any "Re:" prefix).
_AUTO_SUBJECT = _rx(
    r"^(?:\[[^\]]{0,40}\]\s*)?[\[(]?\s*(?:"
    r"auto(?:matic|matische|matique|matisk|matico|mática|mático|matyczna|matická|matikus|"
    r"matik|matski)?[- _]?"
    r"(?:reply|response|respon[sd]er|answer|antwort|réponse|reponse|respuesta|risposta|"
    r"resposta|antwoord|svar|odpowiedź|vastaus|odpověď|válasz|odgovor|yanıt|cevap)|"
    r"autoreply|autorespon|auto:|"
    r"(?:réponse|respuesta|risposta|resposta|odpowiedź|odpověď) automat|"
    r"automaattinen vastaus|otomatik (?:yanıt|cevap)|αυτόματη απάντηση|자동 ?(?:회신|응답)|"
    r"out of (?:the )?office|ooo\b|abwesenheit|fuera de la oficina|fuori sede|fuori ufficio|"
    r"hors du bureau|vacation (?:reply|notice|message|response|auto)|"
    r"автоответ|автоматический ответ|自動応答|自動返信|自動回覆|自動回復|自动回复|自动答复|"
    r"不在通知|不在のお知らせ|स्वचालित उत्तर|رد تلقائي|balasan otomatis|trả lời tự động)"
    r"|\((?:auto(?:matic)?[- ]?(?:reply|response))\)|\[auto(?:matic)?[- ]?(?:reply|response)\]|"
    r"\bis out of (?:the )?office\b|\bout of office\b|\bautomatic reply\b|\bauto[- ]reply\b|"
    r"\bist (?:außer haus|abwesend|nicht im büro)\b"  # Lotus Notes: "Max Muster ist außer Haus"
)

# Auto-reply markers that no apology subject contains: trusted anywhere in a subject.
_AUTO_SUBJECT_DISTINCT = _rx(
    r"^\s*auto:|automatic reply|auto[- ]?repl(?:y|ied)|auto[- ]?respon(?:se|der)|"
    r"automatic response|réponse automatique|automatische antwort|respuesta automática|"
    r"risposta automatica|automatisch antwoord|resposta automática|automatyczna odpowiedź|"
    r"odpowiedź automatyczna|automaattinen vastaus|autosvar|автоответ|автоматический ответ|"
    r"自動応答|自動返信|自動回覆|自動回復|自动回复|自动答复|otomatik (?:yanıt|cevap)|"
    r"자동 ?(?:회신|응답)|स्वचालित उत्तर|رد تلقائي|balasan otomatis|trả lời tự động|"
    r"automatikus válasz|automatická odpověď|automatiskt? svar|autoodpowiedź|răspuns automat|"
    r"automatski odgovor|автоматична відповідь|автоматичен отговор|תשובה אוטומטית|"
    r"ตอบกลับอัตโนมัติ|αυτόματη απάντηση|resposta automàtica|samodejni odgovor|"
    r"\bis out of (?:the )?office\b"
)

# Away words a person might also start a subject with ("Away next week?"): a weak marker.
_AWAY_SUBJECT = _rx(
    r"^(?:\[[^\]]{0,40}\]\s*)?[\[(]?\s*(?:absent|absence|abwesend|ausencia|ausente|afwezig|"
    r"frånvar|fravær|poissa|nieobecn|(?:i am |i'm )?(?:away|on vacation|on holiday|on leave)\b|"
    r"vacation|holiday|urlaub|congés|vacances|vacaciones|ferie|vakantie|不在)"
)

# Subjects of acknowledgements ("Thank you for contacting us", "[Ticket #123]").
_ACK_SUBJECT = _rx(
    r"^(?:\[[^\]]{0,40}\]\s*)?(?:thank(?:s| you) for (?:your (?:e-?mail|message|inquiry|enquiry|"
    r"request|application)|contacting|writing|reaching out)|"
    r"(?:we(?:'ve| have)? )?received(?::| your (?:e-?mail|message|request|inquiry|enquiry))|"
    r"your (?:request|ticket|case|message|e-?mail) (?:\S+ ){0,4}?(?:has been |was )?"
    r"(?:received|created|logged|opened)|(?:request|ticket|case) (?:received|created|opened))|"
    r"\[(?:ticket|case|request|incident)?\s*#\s*\d{3,}\]|"
    r"^\s*(?:ticket|case|request|incident)\s*(?:#|no\.?|id:?)\s*\d{3,}"
)

# Challenge-response systems: the apology is held until the sender proves to be a person.
_CHALLENGE_CUE = _rx(
    r"(?:add|added) (?:yourself|your (?:e-?mail )?address|you) to (?:my|the recipient'?s?|"
    r"(?:an? |the )?)?[\w ]{0,20}?(?:allowed|guest|approved|white|safe|accept(?:ed)?) "
    r"(?:senders? )?list|"
    r"(?:on|to) my (?:\w+ ){0,2}(?:guest|approved[- ]senders?|allowed[- ]senders?|"
    r"safe[- ]senders?|white) ?list|"
    r"(?:guest|allowed|approved|white|safe) ?list so (?:that )?your (?:message|e-?mail)|"
    r"(?:verify|confirm|prove) (?:that )?(?:you are|you're) (?:a )?(?:human|real person|"
    r"not a (?:robot|spammer|computer))|"
    r"sender verification|(?:message|e-?mail) (?:has been|was|is being|will be) "
    r"(?:held|quarantined|waitlisted|queued) (?:pending|until|for (?:verification|confirmation))|"
    r"held pending (?:your )?(?:confirmation|verification|approval)|"
    r"(?:has been|was) waitlisted|protected by (?:\w+ ){0,3}(?:spam|anti-?spam|challenge)|"
    r"this (?:account|mailbox|address) is protected by|challenge[- ]response|"
    r"(?:click|visit) (?:on )?(?:the|this) (?:following )?link (?:below )?to (?:have your|"
    r"be added|deliver your|release your|verify you|confirm you)|"
    r"reply to this (?:message|e-?mail) to (?:confirm|verify|release|deliver)|"
    r"ensure (?:the )?delivery of your (?:e-?mail|message)|"
    r"(?:complete|finish) (?:the|a|this) (?:quick |one-time |simple )?verification|"
    r"protecting (?:myself|me|this (?:mailbox|account)) from (?:receiving )?(?:junk|spam|unsolicited)|"
    r"one[- ]time (?:verification|confirmation) (?:request|process|step)"
)

# Wording by which a message declares itself automatic. Trusted with one weak header marker
# (X-Auto-Response-Suppress, a no-reply sender, Auto-Submitted: auto-generated, ...).
_MACHINE_TEXT = _rx(
    r"this is an? (?:automated|automatic|auto-?generated|computer-generated) "
    r"(?:reply|response|message|notification|acknowledg|e-?mail|notice)|"
    r"this (?:e-?mail|message|reply|response) (?:was|has been|is) (?:sent |generated |created )?"
    r"automatically|"
    r"(?:ticket|case|request|reference|incident) (?:number|no\.?|#|id)\s*(?:is|:|#)?\s*[\w-]*\d|"
    r"(?:a|your) (?:support )?(?:ticket|case|request) (?:\(?#?\d+\)? )?(?:has been|was) "
    r"(?:created|opened|logged|received)|"
    r"automatische antwort|réponse automatique|respuesta automática|risposta automatica|"
    r"automatisch antwoord|resposta automática|автоматический ответ|自動応答|自動返信|自动回复"
)

# First-person away wording. People write it too ("I was on vacation, sorry"), so it is only
# trusted with two weak header markers.
_AWAY_TEXT = _rx(
    r"\bi am (?:currently )?out of (?:the )?office|"
    r"\b(?:i am|i'm|i’m) (?:currently )?(?:away|on (?:annual |parental |maternity |sick )?"
    r"(?:vacation|holiday|holidays|leave))\b|"
    r"\bi will be (?:out of (?:the )?office|away|on (?:vacation|holiday|leave))|"
    r"(?:limited|no|intermittent) access to (?:my )?e-?mail|"
    r"(?:respond|reply|get back to you)[^.\n]{0,40}(?:upon|on|after) my return|"
    r"\b(?:ich bin|bin ich) (?:derzeit |zurzeit |momentan |bis [^.\n]{0,25})?"
    r"(?:nicht im büro|außer haus|abwesend|im urlaub)|"
    r"\bje suis (?:actuellement )?(?:absent|en congés?|en vacances|hors du bureau)|"
    r"\b(?:estoy|me encuentro) (?:fuera de la oficina|de vacaciones|ausente)|"
    r"\bsono (?:attualmente )?(?:assente|fuori (?:sede|ufficio)|in ferie)|"
    r"\bik ben (?:momenteel |tot [^.\n]{0,25})?(?:afwezig|niet op kantoor|met vakantie)"
)

# The opening of an out-of-office text in the twenty most spoken languages (and a few more),
# for the body-only rule: old Exchange servers send no auto-reply header, and their subject
# prefix may be in a language the subject list lacks.
_AWAY_OPENING = _rx(
    r"\b(?:i am|i'm|i’m|i will be|i'll be|we are|is|are)\s+(?:currently\s+|now\s+)?"
    r"(?:out of (?:the )?office|away from (?:the |my )?(?:office|desk)|"
    r"on (?:annual |parental |maternity |paternity |sick |business )?(?:vacation|holidays?|leave)|"
    r"absent from (?:the |my )?(?:office|work))\b|^\s*out of (?:the )?office (?:until|till|from)\b|"
    r"\b(?:ich bin|bin ich)\b[^\n]{0,40}?(?:nicht im büro|außer haus|abwesend|im urlaub)|"
    r"\bje suis\b[^\n]{0,30}?(?:absente?|en congés?|en vacances|hors du bureau)|"
    r"\b(?:estoy|me encuentro|estaré)\b[^\n]{0,30}?(?:fuera de la oficina|de vacaciones|ausente)|"
    r"\b(?:estou|encontro-me|estarei)\b[^\n]{0,30}?(?:fora do escritório|de férias|ausente)|"
    r"\bsono\b[^\n]{0,30}?(?:fuori (?:sede|ufficio)|assente|in ferie)|"
    r"\bik ben\b[^\n]{0,30}?(?:afwezig|niet op kantoor|met vakantie)|"
    r"вне офиса|в отпуске|нет в офисе|отсутствую|"
    r"不在办公室|不在辦公室|正在休假|休假中|"
    r"不在にしております|不在にしています|休暇中|外出しております|"
    r"부재중|휴가 ?중|"
    r"कार्यालय से बाहर|छुट्टी पर|"
    r"خارج المكتب|في إجازة|"
    r"অফিসের বাইরে|ছুটিতে|"
    r"دفتر سے باہر|چھٹی پر|"
    r"di luar kantor|sedang cuti|"
    r"ofis dışında|izindeyim|"
    r"vắng mặt|nghỉ phép|"
    r"poza biurem|na urlopie"
)
# What an out-of-office notice goes on to say: a date, when the writer is back, whom to ask.
_AWAY_DETAIL = _rx(
    r"\d|\b(?:until|till|through|back|return\w*|reachable|available)\b|limited access|"
    r"no access|urgent|contact|dringend|urgente?|urgence|срочн|紧急|緊急|至急|acil|khẩn|"
    r"mendesak|긴급|عاجل|तत्काल|জরুরি|فوری|bis\b|jusqu|hasta|até|fino al|tot\b|до\b|"
    r"kontakt|contacte|contatt|contato|связ|联系|聯絡|連絡|연락|hubungi|iletişim|liên hệ|"
    r"اتصل|संपर्क|যোগাযোগ|رابطہ|返回|戻り|복귀|will (?:respond|reply|answer|get back)|"
    r"as soon as (?:possible|i can)|\basap\b|on my return|when i (?:get )?back|"
    r"thank you for your (?:e-?mail|message|mail)|vielen dank für ihre|merci pour votre|"
    r"gracias por su|obrigad[oa] pel|grazie per|спасибо за"
)
# A person answering us: agreement, our interview, a plan. Never in a notice.
_CONVERSATION = _rx(
    r"\b(?:yes|yeah|yep|sure|ok(?:ay)?|no worries|no problem|sounds good|works for me|"
    r"that works|\w+ works|is fine|suits me|happy to|new (?:date|time|slot)|"
    r"we (?:will|can|could|should) (?:talk|meet|sort|find|arrange|set|speak)|glad to|see you|talk soon|let'?s|reschedul\w*|"
    r"interview\w*|wanted to)\b|\bsí\b|\boui\b|\baber ja\b|\bja[,!]|\bsim\b|\bда\b|"
    r"はい|是的|好的|\bevet\b|\bpasst\b|ça marche|d'accord|me va bien|\bclaro\b|combinado|"
    r"va bene|\bcerto\b|подходит|хорошо|大丈夫|没问题|沒問題|可以的|괜찮|좋습니다|\btamam\b"
)
_QUESTION = re.compile(r"[?？¿؟]")
# What only a person's answer to an apology says, relayed by a system that marks everything
# it sends: a phrase of the answer, or a day or time with a question or a new arrangement
# ("Could we reschedule to Friday at 10?"). Not a question alone, nor "reschedule" alone: a
# ticket system's acknowledgement asks "Questions?" or "Need to reschedule? Use the portal",
# and links pages with "?" in their address (the caller takes addresses out first).
_DAY_OR_TIME = (
    r"(?:\b(?:mon|tues|wednes|thurs|fri|satur|sun)day\b|\btomorrow\b|\bnext week\b|"
    r"\b\d{1,2}(?::\d{2})?\s?(?:am|pm)\b|\bat \d{1,2}(?::\d{2})?\b)"
)
_ANSWER_SIGN = _rx(
    r"\bno (?:problem|worries)\b|\bworks for (?:me|us)\b|\bare you (?:free|available)\b|"
    r"\bpick (?:a|another) (?:new )?(?:time|slot|date)\b|"
    r"\bhappy to (?:move|reschedule|find|meet|talk)\b|"
    rf"{_DAY_OR_TIME}[^.!?\n]{{0,80}}\?|"
    rf"\b(?:reschedul\w*|move it|instead)\b[^.!?\n]{{0,80}}{_DAY_OR_TIME}|"
    rf"{_DAY_OR_TIME}[^.!?\n]{{0,80}}\b(?:reschedul\w*|instead|works?|suits?)\b"
)
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)
_MAX_AWAY_BODY = 1_500

# Read and delivery receipts that are not RFC 3798 / RFC 3464 structured.
_RECEIPT_SUBJECT = _rx(
    r"^\s*(?:read|not read|gelesen|ungelesen|lu|non lu|leído|no leído|letto|gelezen|läst|"
    r"læst|luettu|прочитано|delivered|zugestellt|relayed|return receipt|read receipt|"
    r"lesebestätigung)\s*:|return receipt|read receipt|delivery status notification "
    r"\((?:success|relay|delivered)\)|successful(?:ly)? (?:mail )?deliver"
)
_FAILURE_WORDS = _rx(
    r"could ?n[o']t be delivered|undeliverable|not (?:been )?delivered|fail(?:ed|ure)|"
    r"rejected|unknown|does not exist|no such|delayed|permanent|error"
)
_RECEIPT_BODY = _rx(
    r"(?:was|has been) (?:read|displayed|opened) on|was deleted without being read|"
    r"(?:was|has been) (?:successfully )?delivered to|delivery to .{0,80} (?:was )?successful|"
    r"wurde .{0,80} gelesen|a été lu|fue leído|è stato letto|is gelezen"
)

# Quoted text in a reply: cues are only looked for in what the sender wrote.
_REPLY_SEPARATOR = _rx(
    r"^[ \t]*(?:-{2,}[ \t]*(?:original message|ursprüngliche nachricht|message d'origine|"
    r"mensaje original|messaggio originale|oorspronkelijk bericht|исходное сообщение)"
    r"[ \t]*-{2,}|_{10,}|on .{1,200}wrote:|le .{1,200}a écrit ?:|am .{1,200}schrieb.{0,100}:|"
    r"el .{1,200}escribió:|il .{1,200}ha scritto:|op .{1,200}schreef.{0,100}:|"
    r"em .{1,200}escreveu:|from:[^\n]*\n(?:[^\n]*\n){0,2}[ \t]*(?:sent|date):)"
)

_ENHANCED_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_SMTP_CODE = re.compile(r"(?:^|[\s:(\[#=])([45][0-5]\d)(?:[ -]|$)", re.MULTILINE)
# Each starts only where a run of local-part characters starts, so a search stays linear.
_ADDRESS = re.compile(
    r"(?<![A-Za-z0-9.!#$%&'*+/=?^_`{|}~-])[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+"
    r"@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
)
_ADDR = (
    r"((?<![^<>\s@:;,()\[\]\"'])[^<>\s@:;,()\[\]\"']+"
    r"@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
)
_FAILED_ADDRESS_PATTERNS = (
    # Postfix, qmail and many others start a line with "<user@host>:".
    _rx(rf"^[ \t]*<{_ADDR}>:"),
    _rx(rf"rcpt to:?\s*<?{_ADDR}"),
    _rx(
        r"(?:could not be delivered to|delivery to|delivering (?:your )?(?:mail |message )?to|"
        r"failed recipients?|original-recipient|"
        r"final-recipient|undeliverable address|intended recipient|recipient address|"
        r"(?:following|these) (?:list of )?(?:address(?:es)?|recipients?)[^:\n]{0,60}?:?)"
        rf"[:\s>*]*(?:rfc822;)?\s*[<\"']?{_ADDR}"
    ),
    # "user@host: 550 ..." and Sendmail transcripts "550 <user@host>... User unknown".
    _rx(rf"^[ \t]*<?{_ADDR}>?:?[ \t]+(?:\.\.\.[ \t]*)?[45]\d\d\b"),
    _rx(rf"^[ \t]*[45]\d\d[ -]<{_ADDR}>"),
    # Last resorts: an address in angle brackets, or alone on a line, in the notification.
    _rx(rf"<{_ADDR}>"),
    _rx(rf"^[ \t]*<?{_ADDR}>?[ \t]*$"),
)
# Where a plain-text bounce starts quoting the returned message.
_RETURNED_MESSAGE = _rx(
    r"^[ \t]*[-=*_#]{2,}.{0,40}(?:original|returned|undelivered|message (?:header|text|body)|"
    r"header of|copy of|below th|session transcript|rfc ?822).{0,60}$|"
    r"^[ \t]*(?:the )?(?:original|returned|undelivered) (?:message|mail)(?: headers?)?"
    r"(?: (?:follows?|is attached|below))?:?[ \t]*$|"
    r"^[ \t]*(?:the )?(?:message )?headers? (?:of the (?:original )?message )?follows?\.?:?[ \t]*$"
)


# --------------------------------------------------------------------------------------------
# Reading the message


def _unparseable(exc: BaseException) -> Verdict:
    detail = f"{type(exc).__name__}: {exc}"
    return Verdict(HUMAN, None, f"unparseable: {detail}"[:_MAX_REASON])


def _bytes_to_text(data: bytes, charset: str | None = None) -> str:
    """Decode bytes with the declared charset, then UTF-8, then cp1252; never fails."""
    candidates = (
        [charset] if charset and charset.lower() not in ("unknown-8bit", "x-unknown") else []
    )
    for candidate in (*candidates, "utf-8", "iso-2022-jp", "cp1252"):
        try:
            return data.decode(candidate)
        except (ValueError, LookupError):  # bad bytes, or a charset name that is not one
            continue
    return data.decode("latin-1")


def _fix_surrogates(text: str) -> str:
    """Turn bytes smuggled in as surrogates (8-bit headers under compat32) back into text."""
    if not any("\udc80" <= ch <= "\udcff" for ch in text):
        return text
    return _bytes_to_text(text.encode("utf-8", "surrogateescape"))


def _decode(value: object) -> str:
    """A header value as text: RFC 2047 words and raw 8-bit bytes decoded."""
    if isinstance(value, str) and "=?" not in value:
        return _fix_surrogates(value)
    try:
        chunks = decode_header(value)  # type: ignore[arg-type]
    except Exception:
        return _fix_surrogates(str(value))
    out = []
    for chunk, charset in chunks:
        if isinstance(chunk, bytes):
            out.append(_bytes_to_text(chunk, charset))
        else:
            out.append(_fix_surrogates(chunk))
    return "".join(out)


def _header_values(msg: email.message.Message, name: str) -> list[str]:
    try:
        values = msg.get_all(name) or []
    except Exception:
        return []
    return _header_values_of(values)


def _header_values_of(values: list[Any]) -> list[str]:
    out = []
    for value in values[:50]:
        try:
            # Cut before decoding: decoding costs time in the length of what is decoded.
            out.append(_decode(header_text(value, 4 * _MAX_HEADER))[:_MAX_HEADER])
        except Exception:
            continue
    return out


def _header(msg: email.message.Message, name: str) -> str | None:
    """The first value only: the others are not decoded for nothing."""
    try:
        value = msg.get(name)
        return None if value is None else _header_values_of([value])[0].strip()
    except Exception:
        return None


def _content_type(part: email.message.Message) -> str:
    try:
        return part.get_content_type().lower()
    except Exception:
        return "text/plain"


def _walk(
    msg: email.message.Message, *, into_attached: bool = True
) -> Iterator[email.message.Message]:
    """Walk MIME parts (bounded); ``into_attached`` also enters attached messages."""
    stack = [msg]
    seen = 0
    while stack and seen < _MAX_PARTS:
        part = stack.pop()
        seen += 1
        yield part
        if not into_attached and part is not msg and _content_type(part).startswith("message/"):
            continue
        if _content_type(part) in _REPORT_BODY_TYPES:
            # Its "parts" are the parser's field blocks, read by _report_text: walking them
            # would spend the part budget before the parts after the report.
            continue
        if part.is_multipart():
            payload = part.get_payload()
            if isinstance(payload, list):
                stack.extend(reversed([p for p in payload if isinstance(p, email.message.Message)]))


def _is_attachment(part: email.message.Message) -> bool:
    try:
        disposition = str(part.get("Content-Disposition", "") or "").lower()
        return disposition.startswith("attachment") or bool(part.get_filename())
    except Exception:
        return False


def _notification_parts(msg: email.message.Message) -> Iterator[email.message.Message]:
    """Text parts the sender wrote: not attachments, attached originals or report bodies.

    Of a ``multipart/alternative`` only the plain-text version is read (HTML if it is alone).
    """
    stack = [msg]
    seen = 0
    while stack and seen < _MAX_PARTS:
        part = stack.pop()
        seen += 1
        ctype = _content_type(part)
        if ctype in _ORIGINAL_TYPES or ctype in _REPORT_BODY_TYPES:
            continue
        if part.is_multipart():
            payload = part.get_payload()
            if not isinstance(payload, list):
                continue
            children = [p for p in payload if isinstance(p, email.message.Message)]
            if ctype == "multipart/alternative":
                plain = [c for c in children if _content_type(c) == "text/plain"]
                children = plain[:1] or children[-1:]
            stack.extend(reversed(children))
            continue
        # A "multipart" leaf is a broken one (no usable boundary): read it as text.
        readable = ctype.startswith(("text/", "multipart/"))
        if readable and (part is msg or not _is_attachment(part)):
            yield part


def _part_bytes(part: email.message.Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data
    payload = part.get_payload()
    if isinstance(payload, str):
        return payload.encode("utf-8", "surrogateescape")
    return b""


def _part_text(part: email.message.Message) -> str:
    data = _part_bytes(part)[: _MAX_TEXT * 4]
    if not data:
        return ""
    try:
        charset = part.get_content_charset() or "utf-8"
    except Exception:
        charset = "utf-8"
    text = _bytes_to_text(data, charset)
    if _content_type(part) == "text/html":
        text = _html_to_text(text)
    return text[:_MAX_TEXT]


_HTML_DROP = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_HTML_BREAK = re.compile(r"<\s*(?:br|/p|/div|/tr|/li|p|div|tr|li)\b[^>]*>", re.IGNORECASE)
_HTML_TAG = re.compile(r"<[^>]{0,2000}>")
_HTML_QUOTE = re.compile(r"<blockquote\b.*?</blockquote\s*>", re.IGNORECASE | re.DOTALL)


def _html_to_text(text: str) -> str:
    text = _HTML_DROP.sub(" ", text)
    text = _HTML_QUOTE.sub("\n> quoted\n", text)
    text = _HTML_BREAK.sub("\n", text)
    text = _HTML_TAG.sub(" ", text)
    text = html.unescape(text).replace("\xa0", " ")
    return re.sub(r"[ \t]+", " ", text)


def _report_text(part: email.message.Message) -> str:
    """The text of a report body part, whether the parser split it into blocks or not."""
    if not part.is_multipart():
        return _part_text(part)
    blocks = [b for b in part.get_payload() if isinstance(b, email.message.Message)]
    encoding = str(part.get("Content-Transfer-Encoding", "") or "").strip().lower()
    if encoding in ("base64", "quoted-printable"):
        # The parser split the still-encoded text into "blocks": join it back and decode.
        encoded = "\n".join(_block_text(b) for b in blocks)
        data = encoded.encode("ascii", "ignore")
        try:
            if encoding == "base64":
                decoded = base64.b64decode(re.sub(rb"[^A-Za-z0-9+/=]", b"", data) + b"==")
            else:
                decoded = quopri.decodestring(data)
        except (ValueError, binascii.Error):
            decoded = data
        return _bytes_to_text(decoded)[:_MAX_TEXT]
    return "\n\n".join(_block_text(b) for b in blocks)[:_MAX_TEXT]


def _block_text(block: email.message.Message) -> str:
    lines = [f"{k}: {_fix_surrogates(str(v))}" for k, v in block.items()]
    payload = block.get_payload()
    if isinstance(payload, str) and payload.strip():
        lines.append(payload)
    return "\n".join(lines)


def _field_blocks(text: str) -> list[dict[str, str]]:
    """Parse ``Name: value`` blocks separated by blank lines (RFC 3464 / RFC 3798 bodies)."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
            current, last = {}, None
            continue
        if line[:1] in (" ", "\t") and last:
            current[last] = f"{current[last]} {line.strip()}"
            continue
        match = re.match(r"([A-Za-z][A-Za-z0-9-]{0,60})[ \t]*:[ \t]*(.*)", line)
        if match:
            last = match.group(1).lower()
            if last not in current:
                current[last] = match.group(2).strip()
            else:
                last = None
        else:
            last = None
    if current:
        blocks.append(current)
    return blocks


def _unquoted(text: str) -> str:
    """What the sender wrote: drop ``>`` lines and everything after a reply separator."""
    match = _REPLY_SEPARATOR.search(text)
    if match:
        text = text[: match.start()]
    lines = [line for line in text.splitlines() if not line.lstrip().startswith(">")]
    return "\n".join(lines)


def _address(value: str) -> str | None:
    """A lower-cased address from a report field such as ``rfc822; <User@Host>``."""
    value = value[:1000].strip()
    if ";" in value:
        value = value.split(";", 1)[1]
    value = value.strip().strip("<>").strip().strip("\"'").strip("<>").strip()
    match = _ADDRESS.search(value)
    if not match:
        return None
    return match.group(0).strip(".").lower()[:254]


def _normalise_status(value: str) -> str | None:
    match = _ENHANCED_STATUS.search(value or "")
    if match:
        return ".".join(match.groups())
    return None


@dataclass
class _Facts:
    """Everything the rules look at, read once from the message."""

    subject: str
    subject_core: str  # subject without Re:/Fwd: prefixes
    forwarded: bool
    from_addr: str
    from_name: str
    from_raw: str
    return_path: str | None  # None: absent; "": null (<>)
    text: str  # notification text: written by the sender, not attachments
    cue_text: str  # unquoted, bounded, for wording cues
    flat_cue: str  # cue_text with whitespace runs collapsed: phrases broken across lines
    reports: list[tuple[str, list[dict[str, str]]]]  # (content type, field blocks)
    has_original: bool
    base: date | None
    daemon_sender: bool  # MAILER-DAEMON, postmaster, "Mail Delivery System", ...
    null_sender: bool  # Return-Path: <> or From: <>

    @property
    def reply(self) -> bool:
        return bool(_REPLY_PREFIX.match(self.subject))

    @property
    def list_manager(self) -> bool:
        return bool(_LIST_MANAGER_LOCAL.search(self.from_addr.split("@", 1)[0]))


_REPORT_TYPES = (
    "message/delivery-status",
    "message/global-delivery-status",
    "message/disposition-notification",
    "message/global-disposition-notification",
)


def _reports(
    msg: email.message.Message, *, into_attached: bool
) -> list[tuple[str, list[dict[str, str]]]]:
    """(content type, field blocks) of every RFC 3464 / RFC 3798 report part."""
    return [
        (_content_type(part), _field_blocks(_report_text(part)))
        for part in _walk(msg, into_attached=into_attached)
        if _content_type(part) in _REPORT_TYPES
    ]


def _facts(msg: email.message.Message, received: date | None) -> _Facts:
    subject = re.sub(r"\s+", " ", _header(msg, "Subject") or "").strip()
    forwarded = bool(_FORWARD_SUBJECT.match(subject))
    core = _REPLY_PREFIX.sub("", subject)

    raw_from = _header(msg, "From") or ""
    name, addr = parse_address(raw_from)
    if not addr and "@" in raw_from:
        found = _ADDRESS.search(raw_from)
        addr = found.group(0) if found else ""
    if not addr and not name:
        name = raw_from.strip().strip("<>")
    return_path: str | None = None
    rp_values = _header_values(msg, "Return-Path")
    if rp_values:
        rp = rp_values[0].strip()
        inner = rp.strip().strip("<>").strip()
        return_path = inner.lower()

    texts: list[str] = []
    size = 0
    for part in _notification_parts(msg):
        texts.append(_part_text(part))
        size += len(texts[-1])
        if size > _MAX_TEXT:
            break
    text = "\n".join(texts)[:_MAX_TEXT]

    from_addr = (addr or "").strip().lower()
    from_name = (name or "").strip()
    daemon = is_delivery_system(from_addr, from_name, raw_from, return_path)
    null_sender = return_path == "" or raw_from.strip() in ("<>", '""', '"" <>')

    has_original = any(_content_type(p) in _ORIGINAL_TYPES for p in _walk(msg))
    # A report attached by a person ("Fwd: Undelivered Mail") is not a report to us; one that
    # a delivery system wrapped in a message/rfc822 part is.
    reports = _reports(msg, into_attached=False)
    if not reports and (daemon or null_sender):
        reports = _reports(msg, into_attached=True)

    base = received.date() if isinstance(received, datetime) else received
    if base is None:
        date_header = _header(msg, "Date")
        if date_header:
            try:
                base = parsedate_to_datetime(date_header).date()
            except Exception:
                base = None

    cue_text = _unquoted(text)[:_MAX_CUE_TEXT]
    return _Facts(
        subject=subject,
        subject_core=core,
        forwarded=forwarded,
        from_addr=from_addr,
        from_raw=raw_from,
        from_name=from_name,
        return_path=return_path,
        text=text,
        cue_text=cue_text,
        flat_cue=" ".join(cue_text.split()),
        reports=reports,
        has_original=has_original,
        base=base,
        daemon_sender=daemon,
        null_sender=null_sender,
    )


# --------------------------------------------------------------------------------------------
# Rules


def _classify(msg: email.message.Message, received: date | None) -> Verdict:
    facts = _facts(msg, received)

    verdict = _from_ses_notification(facts)
    if verdict:
        return verdict

    challenge = _challenge_reason(facts)

    verdict = _from_delivery_status(msg, facts, challenge)
    if verdict:
        return verdict

    verdict = _from_disposition(facts)
    if verdict:
        return verdict

    if challenge and not facts.daemon_sender:
        return Verdict(AUTO_REPLY, CHALLENGE_RESPONSE, challenge)

    verdict = _from_receipt(facts)
    if verdict:
        return verdict

    verdict = _from_bounce_text(msg, facts)
    if verdict:
        return verdict

    verdict = _from_auto_reply(msg, facts)
    if verdict:
        return verdict

    verdict = _from_away_body(facts)
    if verdict:
        return verdict

    return Verdict(HUMAN, None, "no automatic or delivery-report markers")


def _challenge_reason(facts: _Facts) -> str | None:
    if facts.forwarded:
        return None
    match = _CHALLENGE_CUE.search(facts.flat_cue)
    if not match:
        return None
    if not re.search(r"https?://|www\.|reply to this|click", facts.cue_text, re.IGNORECASE):
        return None
    return f"challenge-response: '{_snippet(match.group(0))}'"


def _snippet(text: str, limit: int = 60) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _from_ses_notification(facts: _Facts) -> Verdict | None:
    """Amazon SES notifications (JSON, possibly wrapped in an SNS envelope)."""
    body = facts.text.strip()
    if "notificationType" not in body and "eventType" not in body:
        body = _SES_FOLD.sub("", body)  # the key itself may be folded
        if "notificationType" not in body and "eventType" not in body:
            return None
    data = _json_in(body)
    if data is None:
        data = _json_in(_SES_FOLD.sub("", body))
    if isinstance(data, dict) and isinstance(data.get("Message"), str):
        data = _json_in(data["Message"]) or _json_in(_SES_FOLD.sub("", data["Message"]))
    if not isinstance(data, dict):
        return None
    kind = str(data.get("notificationType") or data.get("eventType") or "").lower()
    if kind == "delivery":
        return Verdict(AUTO_REPLY, DELIVERED, "Amazon SES notification: Delivery")
    if kind != "bounce" or not isinstance(data.get("bounce"), dict):
        return None
    bounce = data["bounce"]
    recipients: list[str] = []
    status = None
    for item in bounce.get("bouncedRecipients") or []:
        if isinstance(item, dict):
            addr = _address(str(item.get("emailAddress", "")))
            if addr:
                recipients.append(addr)
            status = status or _normalise_status(str(item.get("status", "")))
            status = status or _normalise_status(str(item.get("diagnosticCode", "")))
    bounce_type = str(bounce.get("bounceType", "")).lower()
    subtype = HARD if bounce_type == "permanent" else SOFT
    reason = f"Amazon SES notification: Bounce ({bounce.get('bounceType', '?')})"
    return Verdict(BOUNCE, subtype, reason, None, tuple(dict.fromkeys(recipients)), status)


# A transport that folds lines longer than about 1,000 characters ends each piece with "!"
# (sendmail does): JSON never has "!" right before a line break of its own.
_SES_FOLD = re.compile(r"!\r?\n")


def _json_in(text: str) -> Any:
    """The JSON value that starts at the first "{" of ``text``; trailing text (an SNS
    unsubscribe footer) is ignored. None if there is none."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        return json.JSONDecoder().raw_decode(text[start:])[0]
    except ValueError:
        return None


def _from_delivery_status(
    msg: email.message.Message, facts: _Facts, challenge: str | None
) -> Verdict | None:
    """RFC 3464: per-recipient Action, Status and Final-Recipient fields."""
    blocks = [
        block
        for ctype, blocks in facts.reports
        if "delivery-status" in ctype
        for block in blocks
        if "action" in block or "final-recipient" in block or "status" in block
    ]
    if not blocks:
        blocks = _embedded_dsn_blocks(facts)
        if not blocks:
            return None
    failed: list[dict[str, str]] = []
    delayed: list[dict[str, str]] = []
    succeeded: list[dict[str, str]] = []
    for block in blocks:
        action = block.get("action", "").strip().lower()
        status = _normalise_status(block.get("status", "")) or ""
        if action.startswith(("fail", "error", "bounce", "reject")):
            failed.append(block)
        elif action.startswith(("delay", "defer")):
            delayed.append(block)
        elif action.startswith(("deliver", "relay", "expand")):
            succeeded.append(block)
        elif not action and status.startswith("5"):
            failed.append(block)
        elif not action and status.startswith("4"):
            (delayed if "will-retry-until" in block else failed).append(block)
        elif not action and status.startswith("2"):
            succeeded.append(block)

    if failed and challenge and not facts.daemon_sender:
        statuses = {_normalise_status(b.get("status", "")) or "" for b in failed}
        if not any(s.startswith("5") for s in statuses):
            return Verdict(AUTO_REPLY, CHALLENGE_RESPONSE, challenge)

    if failed:
        return _dsn_bounce(msg, facts, failed, "failed")
    if delayed:
        return _dsn_bounce(msg, facts, delayed, "delayed")
    if succeeded:
        action = succeeded[0].get("action", "").split()[0].lower() if succeeded else "delivered"
        status = _normalise_status(succeeded[0].get("status", ""))
        reason = f"RFC 3464 Action: {action}" + (f", Status: {status}" if status else "")
        return Verdict(AUTO_REPLY, DELIVERED, reason)
    return None


def _embedded_dsn_blocks(facts: _Facts) -> list[dict[str, str]]:
    """DSN fields pasted into a plain-text bounce (only trusted from a delivery system)."""
    if not (facts.daemon_sender or facts.null_sender or _BOUNCE_SUBJECT.search(facts.subject)):
        return []
    if not re.search(r"^\s*action:\s*\w", facts.text, re.IGNORECASE | re.MULTILINE):
        return []
    stripped = "\n".join(line.strip() for line in facts.text.splitlines())
    return [
        block
        for block in _field_blocks(stripped)
        if "action" in block and ("final-recipient" in block or "status" in block)
    ]


def _dsn_bounce(
    msg: email.message.Message, facts: _Facts, blocks: list[dict[str, str]], action: str
) -> Verdict:
    recipients: list[str] = []
    for block in blocks:
        for field in ("final-recipient", "original-recipient", "x-actual-recipient"):
            addr = _address(block.get(field, ""))
            if addr:
                recipients.append(addr)
                break
    if not recipients:
        recipients = _failed_addresses(msg, facts)
    statuses = [_normalise_status(b.get("status", "")) for b in blocks]
    diagnostics = [b.get("diagnostic-code", "") for b in blocks]
    status = next((s for s in statuses if s), None)
    if status in (None, "5.0.0", "4.0.0"):
        better = next((_normalise_status(d) for d in diagnostics if _normalise_status(d)), None)
        if better and better[0] == (status or better)[0]:
            status = better
    if status is None:
        status = _status_from_text(" ".join(diagnostics)) or _status_from_text(facts.cue_text)
    diagnostic = next((d for d in diagnostics if d), "")
    if action == "delayed":
        subtype = DELAY
    else:
        subtype = _hard_or_soft(status, " ".join(diagnostics) + "\n" + facts.cue_text)
    reason = f"RFC 3464 Action: {action}" + (f", Status: {status}" if status else "")
    if diagnostic:
        reason += f" ({_snippet(diagnostic)})"
    return Verdict(BOUNCE, subtype, reason[:_MAX_REASON], None, _dedupe(recipients), status)


def _hard_or_soft(status: str | None, text: str) -> str:
    if status and status.startswith("4"):
        return SOFT
    if status and status.partition(".")[2] in _SOFT_STATUSES:
        return SOFT
    if _SOFT_CUE.search(text[:_MAX_CUE_TEXT]):
        return SOFT
    return HARD


def _from_disposition(facts: _Facts) -> Verdict | None:
    """RFC 3798 message disposition notifications (read receipts, Sieve rejects)."""
    blocks = [
        block
        for ctype, blocks in facts.reports
        if "disposition-notification" in ctype
        for block in blocks
        if "disposition" in block
    ]
    if not blocks:
        return None
    block = blocks[0]
    disposition = block.get("disposition", "").lower()
    mode, _, kind = disposition.partition(";")
    kind = kind.strip().split("/")[0].split()[0] if kind.strip() else ""
    if kind == "deleted" and mode.strip().startswith("automatic-action"):
        # RFC 5429: a Sieve "reject" is sent as an automatic MDN with disposition "deleted".
        recipient = _address(
            block.get("final-recipient", "") or block.get("original-recipient", "")
        )
        status = _status_from_text(facts.cue_text) or "5.7.1"
        subtype = _hard_or_soft(status, facts.cue_text)
        reason = "RFC 3798 Disposition: automatic-action; deleted (rejected by the recipient)"
        return Verdict(BOUNCE, subtype, reason, None, (recipient,) if recipient else (), status)
    reason = f"RFC 3798 Disposition: {_snippet(disposition or 'unknown', 80)}"
    return Verdict(AUTO_REPLY, DELIVERED, reason)


def _from_bounce_text(msg: email.message.Message, facts: _Facts) -> Verdict | None:
    """Bounces without a usable RFC 3464 report."""
    if facts.forwarded and not (facts.daemon_sender or facts.null_sender):
        return None
    sender = facts.daemon_sender
    subject_cue = _BOUNCE_SUBJECT.search(facts.subject)
    authority = bool(sender or subject_cue)  # a delivery system is speaking
    failed_header = [
        a
        for value in _header_values(msg, "X-Failed-Recipients")
        for a in (_address(v) for v in value.split(","))
        if a
    ]
    # A no-reply notifier that returns the message (some carriers' bounces) needs wording too.
    returning = facts.has_original and bool(_NOREPLY_LOCAL.match(facts.from_addr))
    # A list's loop alert may come from the list's own address: list headers, and loop
    # wording (which a person's "keep me in the loop" is not), make it the list software's.
    loop_alert = bool(_LOOP_TEXT.search(facts.subject) or _LOOP_TEXT.search(facts.flat_cue))
    listish = loop_alert and any(_header_values(msg, name) for name in _LIST_HEADERS)
    if (
        not (authority or facts.null_sender or failed_header or facts.list_manager or returning)
        and not listish
    ):
        return None
    if not authority and not failed_header and _AUTO_SUBJECT.search(facts.subject_core):
        return None  # a null-sender auto-reply, not a failure report
    body_cue = _BOUNCE_BODY.search(facts.flat_cue)
    if not (authority or failed_header or loop_alert) and _strong_auto_markers(msg, facts):
        # A vacation reply has a null return path too (RFC 3834): unless a delivery system
        # speaks, its auto-reply header outranks failure-like words in it.
        return None
    code_cue = _BOUNCE_CODE.search(facts.cue_text)
    delay_cue = _DELAY_SUBJECT.search(facts.subject_core) or _DELAY_CUE.search(facts.cue_text)

    flufl_temp, flufl_perm = _flufl_failures(msg) if authority else ((), ())
    evidence: str | None = None
    if failed_header:
        evidence = "X-Failed-Recipients header"
    elif authority and (flufl_perm or flufl_temp):
        evidence = "flufl.bounce found failed recipients"
    elif body_cue:
        evidence = f"failure text '{_snippet(body_cue.group(0), 40)}'"
    elif authority and (code_cue or delay_cue):
        evidence = f"text '{_snippet((code_cue or delay_cue).group(0), 40)}'"  # type: ignore[union-attr]
    elif sender and subject_cue:
        evidence = "delivery-system sender and subject"
    elif sender and facts.has_original:
        evidence = "delivery-system sender returning the message"
    if evidence is None:
        return None

    if sender:
        who = "delivery-system sender"
    elif returning:
        who = "no-reply sender returning the message"
    elif subject_cue:
        who = "bounce subject"
    elif facts.null_sender:
        who = "null return path"
    elif failed_header:
        who = "Exim failure header"
    elif listish and not facts.list_manager:
        who = "mailing-list loop alert"
    else:
        who = "mailing-list manager"
    status = _status_from_text(facts.cue_text) or _status_from_text(facts.text)
    if (delay_cue and not flufl_perm) or (flufl_temp and not flufl_perm):
        subtype = DELAY
        if status and status.startswith("5"):
            status = None
    else:
        subtype = _hard_or_soft(status, facts.cue_text)
    recipients = failed_header + list(flufl_perm + flufl_temp)
    if not recipients:
        recipients = _failed_addresses(msg, facts)
    reason = f"{who}; {evidence}" + (f"; status {status}" if status else "")
    return Verdict(BOUNCE, subtype, reason[:_MAX_REASON], None, _dedupe(recipients), status)


class _TracebackOnlyForDebug(logging.Filter):
    """``all_failures`` logs a crashing detector's traceback at ERROR before it re-raises.
    We fall back to our own parsing then, so the traceback is noise: shown with --debug
    (the logger enabled for DEBUG) only, as every traceback is."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.exc_info or logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


_FLUFL_LOG = logging.getLogger("flufl.bounce")
if not any(isinstance(f, _TracebackOnlyForDebug) for f in _FLUFL_LOG.filters):
    _FLUFL_LOG.addFilter(_TracebackOnlyForDebug())


def _flufl_failures(msg: email.message.Message) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Failed addresses from GNU Mailman's bounce detectors (temporary, permanent).

    Only the public ``all_failures`` is used: ``scan_message`` alone would lose the delay
    warnings. Any exception in it (a detector that crashes on a malformed message) gives
    nothing, and the caller falls back to our own parsing of the notification.
    """
    try:
        from flufl.bounce import all_failures

        temporary, permanent = all_failures(msg)
    except Exception:
        return (), ()

    def clean(found: Iterable[bytes]) -> tuple[str, ...]:
        out = []
        for item in found:
            text = item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
            addr = _address(text)
            if addr:
                out.append(addr)
        return tuple(sorted(set(out)))

    return clean(temporary), clean(permanent)


def _failed_addresses(msg: email.message.Message, facts: _Facts) -> list[str]:
    """Failed recipients named in the notification text, when no report field gives them."""
    head = facts.text[:_MAX_TEXT]
    cut = _RETURNED_MESSAGE.search(head)
    if cut:
        head = head[: cut.start()]
    ours = {facts.from_addr}
    for name in ("To", "Delivered-To", "X-Original-To", "Cc"):
        for _, addr in parse_addresses(_header_values(msg, name)):
            ours.add(addr.lower())
    # Message-IDs look like addresses: never report one as a failed recipient.
    ids = _MSGID_LINE_RE.findall(facts.text)
    for name in ("Message-ID", "In-Reply-To", "References"):
        ids += _MSGID_RE.findall(" ".join(_header_values(msg, name)))
    ours.update(i.strip("<>").lower() for i in ids)
    patterns = _FAILED_ADDRESS_PATTERNS
    if facts.list_manager and not facts.daemon_sender:
        patterns = patterns[:-2]  # a list's refusal names its own addresses
    for pattern in patterns:
        found = []
        for match in pattern.finditer(head):
            addr = _address(match.group(1))
            if addr and addr not in ours and not is_delivery_system_local(addr.split("@")[0]):
                found.append(addr)
        if found:
            return found
    return []


def _status_from_text(text: str) -> str | None:
    codes = [".".join(m.groups()) for m in _ENHANCED_STATUS.finditer(text[:_MAX_TEXT])]
    for prefix in ("5", "4"):
        for code in codes:
            if code.startswith(prefix):
                return code
    match = _SMTP_CODE.search(text[:_MAX_TEXT])
    if match:
        return f"{match.group(1)[0]}.0.0"
    return None


def _strong_auto_markers(msg: email.message.Message, facts: _Facts) -> list[str]:
    """Strong auto-reply header markers other than the null return path."""
    strong, _ = _header_cues(msg, facts)
    return [m for m in strong if m != "null return path"]


def _from_receipt(facts: _Facts) -> Verdict | None:
    """Read and delivery receipts that are not structured reports."""
    if facts.forwarded:
        return None
    subject_cue = _RECEIPT_SUBJECT.search(facts.subject)
    if not subject_cue or _FAILURE_WORDS.search(facts.cue_text):
        return None
    body_cue = _RECEIPT_BODY.search(facts.cue_text)
    if body_cue or facts.daemon_sender or facts.null_sender:
        return Verdict(
            AUTO_REPLY, DELIVERED, f"receipt: subject '{_snippet(subject_cue.group(0), 40)}'"
        )
    return None


def _header_cues(msg: email.message.Message, facts: _Facts) -> tuple[list[str], list[str]]:
    """(strong, weak) automatic-sender markers from headers.

    Strong markers are enough alone; weak ones (which people's clients and ticket systems
    also set) need wording that only automatic answers use.
    """
    strong: list[str] = []
    weak: list[str] = []
    for value in _header_values(msg, "Auto-Submitted"):
        token = value.strip().lower().split("(")[0].split(";")[0].strip()
        if not token or token == "no":
            continue
        # RFC 3834: "auto-replied" answers a message; "auto-generated" is also used by
        # notification systems that relay what a person wrote (issue trackers, ATS).
        marker = f"Auto-Submitted: {_snippet(value, 40)}"  # keeps "(vacation)" comments
        (weak if token == "auto-generated" else strong).append(marker)
    for name in (
        "X-Autoreply",
        "X-Autorespond",
        "X-Autoresponder",
        "X-Auto-Reply",
        "X-AutoReply-From",
        "X-Mail-Autoreply",
        "X-Autoreply-Type",
        "X-Vacation",
    ):
        for value in _header_values(msg, name):
            if value.strip().lower() not in ("", "no", "false", "0", "off"):
                strong.append(f"{name} header")
                break
    for value in _header_values(msg, "X-Apple-Action"):
        if "vacation" in value.lower():
            strong.append("X-Apple-Action: VACATION")
    for value in _header_values(msg, "Precedence"):
        if value.strip().lower().replace("-", "_") == "auto_reply":
            strong.append("Precedence: auto_reply")
    if facts.return_path == "":
        strong.append("null return path")  # RFC 3834 section 3.3: auto-replies use MAIL FROM:<>
    for value in _header_values(msg, "X-Auto-Response-Suppress"):
        if value.strip().lower() not in ("", "none"):
            weak.append("X-Auto-Response-Suppress")
            break
    for name in (
        "X-MS-Exchange-Inbox-Rules-Loop",
        "X-MS-Exchange-Generated-Message-Source",
        "X-Autogenerated",
        "X-Auto-Generated",
    ):
        if _header_values(msg, name):
            weak.append(name)
    if _NOREPLY_LOCAL.match(facts.from_addr):
        weak.append("no-reply sender")
    for pattern in (_ACK_SUBJECT, _AWAY_SUBJECT):
        found = pattern.search(facts.subject)
        if found:
            weak.append(f"subject '{_snippet(found.group(0).strip(' [('), 40)}'")
    return strong, weak


def _from_auto_reply(msg: email.message.Message, facts: _Facts) -> Verdict | None:
    """Out-of-office, autoresponder and ticket acknowledgements."""
    if facts.forwarded:
        return None
    strong, weak = _header_cues(msg, facts)
    if facts.reply:
        # "Re: <our subject>": our own words (say "Absence at Monday's interview") must not
        # count, so only markers no apology subject contains.
        subject_cue = _AUTO_SUBJECT_DISTINCT.search(facts.subject_core)
    else:
        subject_cue = _AUTO_SUBJECT.search(facts.subject) or _AUTO_SUBJECT_DISTINCT.search(
            facts.subject
        )
    reasons: list[str] = list(strong)
    if subject_cue:
        marker = re.sub(r"^\s*\[[^\]]{0,40}\]\s*", "", subject_cue.group(0)).strip(" [(")
        reasons.append(f"subject '{_snippet(marker, 40)}'")
    if not reasons and weak:
        text_cue = _MACHINE_TEXT.search(facts.cue_text)
        # Notification relays (ATS, trackers) send a person's words from no-reply addresses,
        # so that marker does not count towards the two that away wording needs.
        if not text_cue and len([w for w in weak if w != "no-reply sender"]) >= 2:
            text_cue = _AWAY_TEXT.search(facts.cue_text)
        if text_cue:
            reasons = [*weak, f"text '{_snippet(text_cue.group(0), 40)}'"]
        if reasons and facts.reply and _ANSWER_SIGN.search(_URL.sub(" ", facts.flat_cue)):
            # A reply to us with an answer in it, relayed by a system that marks all it sends
            # (an ATS's "automated message sent on behalf of Ana: no problem, pick a new
            # time"): weak markers do not outweigh the answer. Taking it for automatic would
            # send a follow-up to someone who has answered.
            return None
    if not reasons:
        return None
    own_subject = "" if facts.reply else facts.subject  # "Re: <ours>" repeats our words
    vacation = any("vacation" in r.lower() for r in strong)  # "(vacation)", X-Apple-Action
    if vacation or _OOO_CUE.search(own_subject) or _OOO_CUE.search(facts.cue_text):
        return_date = _return_date(facts)
        reason = "out-of-office: " + ", ".join(reasons)
        return Verdict(AUTO_REPLY, OUT_OF_OFFICE, reason[:_MAX_REASON], return_date)
    reason = "autoresponder: " + ", ".join(reasons)
    return Verdict(AUTO_REPLY, AUTORESPONDER, reason[:_MAX_REASON])


def _from_away_body(facts: _Facts) -> Verdict | None:
    """An out-of-office known by its body alone (no header, no known subject).

    People write the same words ("I'm out of the office this week, but yes, Tuesday works"),
    so every condition must hold: a fresh subject (not "Re:"), a short text with nothing
    quoted, the phrase at its top, a date or a return or a contact after it, no question and
    no sign of an answer to us.
    """
    if facts.forwarded or facts.reply or facts.reports:
        return None
    text = facts.text.strip()
    if not text or len(text) > _MAX_AWAY_BODY or _REPLY_SEPARATOR.search(text):
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 20 or any(line.startswith(">") for line in lines):
        return None
    head = "\n".join(lines[:3])[:300]
    found = _AWAY_OPENING.search(head)
    if not found or found.start() > 200:
        return None
    flat = " ".join(text.split())
    if _QUESTION.search(flat) or _CONVERSATION.search(flat):
        return None
    # A notice says more (a date, a return, whom to ask), before the phrase too ("6月16日まで
    # 不在…"), unless it is the phrase alone with at most a short signature.
    alone = (
        found.start() == 0
        and not head[found.end() :].split("\n", 1)[0].strip(" .!。")
        and len(lines) <= 4
        and all(len(x) <= 40 for x in lines[1:])
    )
    if not _AWAY_DETAIL.search(flat) and not alone:
        return None
    reason = f"out-of-office: text '{_snippet(found.group(0), 40)}' alone (short, unquoted)"
    return Verdict(AUTO_REPLY, OUT_OF_OFFICE, reason, _return_date(facts))


def _dedupe(addresses: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(a.lower() for a in addresses if a))


# --------------------------------------------------------------------------------------------
# Return dates

# Phrases after which an out-of-office reply names the day its writer is back, with the
# language dateparser should read the date in and how many days to add ("through Friday"
# means back the day after).
_RETURN_TRIGGERS: tuple[tuple[re.Pattern[str], str, int], ...] = (
    (
        _rx(
            r"\b(?:returning|return|be back|back|will be in|reachable again|available again|"
            r"in the office)(?: (?:to|in|at) (?:the |my )?(?:office|work|desk))?"
            r"(?: (?:on|from|by|after))?(?: the)?\b"
        ),
        "en",
        0,
    ),
    (_rx(r"\b(?:until|till|til)\b(?: (?:on|the))?"), "en", 0),
    (_rx(r"\b(?:through|thru)\b"), "en", 1),
    (_rx(r"\b(?:zurück|wieder (?:im büro|da|erreichbar|im hause?))(?: (?:am|ab))?"), "de", 0),
    (_rx(r"\b(?:ab dem|ab)\b"), "de", 0),
    (_rx(r"\bbis einschließlich\b"), "de", 1),
    (_rx(r"\b(?:bis zum|bis)\b"), "de", 0),
    (
        _rx(r"\b(?:de retour|retour|je reviens|je serai de retour)(?: (?:le|au bureau le))?"),
        "fr",
        0,
    ),
    (_rx(r"\bjusqu'(?:au|à|a)\b|\bà partir du\b"), "fr", 0),
    (_rx(r"\b(?:regres(?:o|aré|are)|de vuelta|volveré|estaré de vuelta)(?: el)?"), "es", 0),
    (_rx(r"\bhasta(?: el)?\b"), "es", 0),
    (_rx(r"\b(?:rientro|di ritorno|tornerò|sarò di nuovo)(?: (?:il|in ufficio il))?"), "it", 0),
    (_rx(r"\bfino al?\b"), "it", 0),
    (_rx(r"\b(?:terug op|weer aanwezig op|weer op kantoor op|vanaf)\b"), "nl", 0),
    (_rx(r"\b(?:tot en met|t/m)\b"), "nl", 1),
    (_rx(r"\btot\b"), "nl", 0),
    (_rx(r"\b(?:retorno|de volta|regresso|volto)(?: (?:em|no dia|a|dia))?"), "pt", 0),
    (_rx(r"\baté(?: (?:o dia|dia))?\b"), "pt", 0),
    (_rx(r"\b(?:tillbaka|åter)(?: (?:den|på))?\b"), "sv", 0),
    (_rx(r"\b(?:till och med|t\.o\.m\.)"), "sv", 1),
    (_rx(r"(?:вернусь|буду в офисе|выйду)"), "ru", 0),
    (_rx(r"(?:^|\s)до(?=\s)"), "ru", 0),
    (_rx(r"\b(?:wracam|powrót|będę dostępn\w*)\b"), "pl", 0),
)
# A numeric date at the start of what dateparser found, which may run on into a word after
# it ("3/12 and"): read whole, then month first, it was three months off. Only a joining
# word may follow: "1-2 weeks", "9-10 am" and "10-12 June" are not such dates. With dots it is
# day first ("7.6.", "7.6.2025"), as where dots are written; "10.30" is a time.
_SLASHED_DATE = re.compile(r"^\s*(\d{1,2})[/-](\d{1,2})(?:[/-](\d{2,4}))?(?![\d./-])")
_DOTTED_DATE = re.compile(r"^\s*(\d{1,2})\.(\d{1,2})(?:\.(\d{2,4})?(?![\d./-])|\s*$)")
_AFTER_DATE = re.compile(
    r"[\s,.;:]*(?:(?:and|with|or|but|then|und|et|y|e)\b[\s,.;:]*)?", re.IGNORECASE
)


def _numeric_date(text: str) -> tuple[re.Match[str], bool] | None:
    """A numeric date that is all of ``text`` but a joining word, and whether it is read
    day first only."""
    for pattern, day_first in ((_SLASHED_DATE, False), (_DOTTED_DATE, True)):
        found = pattern.match(text)
        if found and _AFTER_DATE.fullmatch(text[found.end() :]):
            return found, day_first
    return None


def _return_date(facts: _Facts) -> date | None:
    """The return date an out-of-office reply states, read with dateparser."""
    attempts = 0
    try:
        texts = [facts.cue_text[:4000]]
        if not facts.reply or _AUTO_SUBJECT_DISTINCT.search(facts.subject):
            texts.insert(0, facts.subject)  # "AUTO: ... (returning 05/01/2010)"
        for pattern, language, extra_days in _RETURN_TRIGGERS:
            for text in texts:
                for match in pattern.finditer(text):
                    window = text[match.end() : match.end() + 60]
                    window = re.split(r"[\n;!?]|(?<!\d)\.\s", window, maxsplit=1)[0]
                    if not re.search(r"\d|[^\W\d_]{3,}", window):
                        continue
                    attempts += 1
                    if attempts > _MAX_DATE_ATTEMPTS:  # dateparser is slow: bound the work
                        return None
                    found = _parse_date(window, language, facts.base)
                    if found:
                        return found + timedelta(days=extra_days)
    except Exception:
        return None
    return None


def _dateparser_settings(base: date | None) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "PREFER_DATES_FROM": "future",
        "RETURN_AS_TIMEZONE_AWARE": False,
    }
    if base is not None:
        settings["RELATIVE_BASE"] = datetime(base.year, base.month, base.day)
    else:
        # Without a reference day only fully written dates are pure; relative ones are not.
        settings["RELATIVE_BASE"] = datetime(2000, 1, 1)
        settings["REQUIRE_PARTS"] = ["day", "month", "year"]
    return settings


def _parse_date(window: str, language: str, base: date | None) -> date | None:
    if not window.strip() or not re.search(r"\w", window):
        return None
    import dateparser  # slow to import: only when a return date is wanted
    from dateparser.search import search_dates

    settings = _dateparser_settings(base)
    try:
        results = search_dates(window, languages=[language], settings=settings) or []
    except Exception:
        return None
    words = window.split()
    if not results and words and (numeric := _numeric_date(words[0])):
        results = [(numeric[0].group(0), None)]  # "7.6.", which dateparser does not find
    for found_text, found in results:
        offset = window.find(found_text)
        if offset > 25:  # a date far from the trigger belongs to something else
            break
        if not re.search(r"\d|[^\W\d_]{3,}", found_text):
            continue
        if re.fullmatch(r"\s*\d{1,4}\s*", found_text):
            continue  # a bare number is not a date
        numeric = _numeric_date(found_text)
        if numeric:
            day = _best_numeric(numeric[0], base, day_first=numeric[1])
        elif _names_a_day(dateparser, found_text, language, settings):
            day = found.date()
        else:
            continue  # "in June": a month is not a return day
        if day is None:
            continue
        if base is None:
            if str(day.year) not in found_text and f"{day.year % 100:02d}" not in found_text:
                continue
            return day
        if base - timedelta(days=7) <= day <= base + timedelta(days=400):
            return day
    return None


def _names_a_day(dateparser: Any, text: str, language: str, settings: dict[str, Any]) -> bool:
    """Whether ``text`` fixes a day: read with the first and the last day of the month
    preferred, a text that names only a month gives two different dates."""
    first = dateparser.parse(
        text, languages=[language], settings={**settings, "PREFER_DAY_OF_MONTH": "first"}
    )
    last = dateparser.parse(
        text, languages=[language], settings={**settings, "PREFER_DAY_OF_MONTH": "last"}
    )
    return first is not None and first == last


def _best_numeric(match: re.Match[str], base: date | None, day_first: bool = False) -> date | None:
    """``05/01/2010`` is 5 January or 1 May: take the reading nearest after the base day
    (``day_first``: the first reading only)."""
    first, second, year_text = match.group(1), match.group(2), match.group(3)
    candidates: list[date] = []
    orders = ((first, second),) if day_first else ((first, second), (second, first))
    for day_text, month_text in orders:
        day_n, month_n = int(day_text), int(month_text)
        if year_text:
            year = int(year_text) + (2000 if len(year_text) == 2 else 0)
            years = [year]
        elif base is not None:
            years = [base.year, base.year + 1]
        else:
            return None
        for year in years:
            try:
                candidates.append(date(year, month_n, day_n))
            except ValueError:
                continue
    if not candidates:
        return None
    if base is None:
        return candidates[0] if len(set(candidates)) == 1 else None
    future = [c for c in candidates if c >= base - timedelta(days=1)]
    return min(future) if future else None
