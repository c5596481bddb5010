"""The composer writes a text/plain message itself (``plain_bytes``) rather than through an
EmailMessage: the bytes must be the email library's own, byte for byte, for any input."""

from __future__ import annotations

import email
from email.policy import default

from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.model.composer import _address_header, _header, library_bytes, plain_bytes

# Printable text of every kind a template or a fact can carry: ASCII, accents, dashes, CJK,
# emoji, and the characters the encoders treat specially (=, ?, _, dots, spaces, tabs).
_CHARS = st.characters(
    blacklist_categories=("Cs", "Cc"), blacklist_characters="\u2028\u2029\x85"
) | st.sampled_from(list("=?_. \t-–é漢😀"))
_LINE = st.text(_CHARS, max_size=200)
_BODY = st.lists(_LINE, max_size=30).map("\n".join) | st.text(_CHARS | st.just("\n"), max_size=600)
_WORD = st.text(_CHARS, min_size=1, max_size=120).map(lambda s: " ".join(s.split()) or "x")


def _headers(subject: str, name: str, cc: list[str], reply: bool) -> list[tuple[str, object]]:
    headers: list[tuple[str, object]] = [
        ("From", _address_header("From", name, "you@example.org")),
        ("To", _address_header("To", "Ana Ruiz", "ana@example.com")),
    ]
    if cc:
        headers.append(("Cc", ", ".join(cc)))
    headers += [
        ("Subject", subject),
        ("Date", _header("Date", "Sun, 29 Nov 2026 18:09:31 +0000")),
        ("Message-ID", "<179597577117.9861.7738320182443888971.mailer@example.org>"),
    ]
    if reply:
        ref = "<1.2.3.mailer@example.org>"
        headers += [("In-Reply-To", ref), ("References", " ".join([ref] * 30))]
    headers.append(("MIME-Version", _header("MIME-Version", "1.0")))
    return headers


@settings(max_examples=400)
@given(
    text=_BODY,
    subject=_WORD,
    name=_WORD,
    cc=st.lists(st.sampled_from(["a@example.com", "Bo Li <bo@example.com>"]), max_size=2),
    reply=st.booleans(),
)
def test_plain_bytes_are_the_email_librarys_bytes_for_any_text_and_headers(
    text: str, subject: str, name: str, cc: list[str], reply: bool
) -> None:
    headers = _headers(subject, name, cc, reply)
    assert plain_bytes(headers, text) == library_bytes(headers, text)


def test_each_transfer_encoding_the_library_picks_is_written_the_same() -> None:
    cases = {
        "7bit": "Short ASCII lines.\nAnother.",
        "8bit": "Pas de problème, à bientôt.",
        "quoted-printable": "A long line " * 20 + "\nwith an accent é",
        "base64": "漢字" * 60,
        "quoted-printable, many lines": "\n".join(["é" + "x" * 90] * 15),
    }
    seen = set()
    for label, text in cases.items():
        headers = _headers("Subject – dash", "Sam Sandbox", [], False)
        raw = plain_bytes(headers, text)
        assert raw == library_bytes(headers, text), label
        msg = email.message_from_bytes(raw, policy=default)
        assert msg.get_content().replace("\r\n", "\n").rstrip("\n") == text, label
        seen.add(msg["Content-Transfer-Encoding"])
    assert seen == {"7bit", "8bit", "quoted-printable", "base64"}
