"""The composer writes a text/plain message itself (``plain_bytes``) rather than through an
EmailMessage: the bytes must be the email library's own, byte for byte, for any input."""

from __future__ import annotations

import email
from email.policy import SMTP, default

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
# Headers written without the library when they are plain ASCII words: include every
# printable ASCII character, runs of spaces, and the encoded-word opener.
_ASCII = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=1100)
_ASCII_WORD = _ASCII | st.sampled_from(["=?utf-8?q?x?=", "a  b", " lead", "trail ", '(x) "y": z'])
_MSGID = st.from_regex(r"<[0-9.]{1,40}mailer@[a-z0-9.-]{1,900}>", fullmatch=True)


def _headers(
    subject: str, name: str, cc: list[str], reply: bool, msgid: str = "<1.2.mailer@example.org>"
) -> list[tuple[str, object]]:
    headers: list[tuple[str, object]] = [
        ("From", _address_header("From", name, "you@example.org")),
        ("To", _address_header("To", "Ana Ruiz", "ana@example.com")),
    ]
    if cc:
        headers.append(("Cc", ", ".join(cc)))
    headers += [
        ("Subject", subject),
        ("Date", _header("Date", "Sun, 29 Nov 2026 18:09:31 +0000")),
        ("Message-ID", msgid),
    ]
    if reply:
        ref = "<1.2.3.mailer@example.org>"
        headers += [("In-Reply-To", ref), ("References", " ".join([ref] * 30))]
    headers.append(("MIME-Version", _header("MIME-Version", "1.0")))
    return headers


@settings(max_examples=400)
@given(
    text=_BODY,
    subject=_WORD | _ASCII_WORD,
    name=_WORD,
    msgid=_MSGID,
    cc=st.lists(st.sampled_from(["a@example.com", "Bo Li <bo@example.com>"]), max_size=2),
    reply=st.booleans(),
)
def test_plain_bytes_are_the_email_librarys_bytes_for_any_text_and_headers(
    text: str, subject: str, name: str, msgid: str, cc: list[str], reply: bool
) -> None:
    headers = _headers(subject, name, cc, reply, msgid)
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


def test_a_plain_ascii_subject_too_long_for_one_line_is_folded_as_the_library_folds_it() -> None:
    for words in (160, 165, 170, 200):  # either side of 998 octets on one line
        subject = " ".join(["sorry"] * words)
        headers = _headers(subject, "Sam Sandbox", [], False)
        assert plain_bytes(headers, "Hello.") == library_bytes(headers, "Hello."), words


# Printable words, some not ASCII (dashes, accents, CJK, emoji, the encoders' specials).
_ASCII_TOKEN = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=12)
_OTHER_TOKEN = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Co", "Cn", "Zs", "Zl", "Zp"))
    | st.sampled_from(list('–é漢😀=?_."()\\')),
    min_size=1,
    max_size=8,
)


@settings(max_examples=1000, deadline=None)
@given(st.lists(_ASCII_TOKEN | _OTHER_TOKEN, min_size=1, max_size=120))
def test_a_subject_of_words_some_not_ascii_is_written_as_the_library_writes_it(
    words: list[str],
) -> None:
    """Verify the one-encoded-word writer gives the library's very line for any subject of
    printable words one space apart (up to and past where it leaves the work to the
    library), and that it does write the short ones itself."""
    from mailer.model.composer import _WRITE_POLICY, _folded, _one_encoded_word

    subject = " ".join(words)
    library = _WRITE_POLICY.fold_binary(*SMTP.header_store_parse("Subject", subject))
    assert _folded("Subject", subject) == library
    writes_it = not subject.isascii() and "=?" not in subject and subject.isprintable()
    if writes_it and len(library) < 500:
        assert _one_encoded_word("Subject", subject) == library


# Lines as _encode_text has them (bytes without CR or LF): every Latin-1 character, the
# quoted-printable specials, and lengths either side of the 76-column soft break.
_QP_LINE = st.binary(max_size=240).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")) | (
    st.lists(st.sampled_from([b"=", b" ", b"\t", b"x", b"\xe2\x80\x93", b"\x0b", b"\x85"]), max_size=90)
    .map(b"".join)
)  # fmt: skip


@settings(max_examples=400)
@given(lines=st.lists(_QP_LINE, min_size=1, max_size=14))
def test_quoted_printable_line_by_line_is_the_librarys_encoding_of_the_whole_text(
    lines: list[bytes],
) -> None:
    """Verify the quoted-printable encoding made line by line (each line's remembered) is
    quoprimime.body_encode's of the whole text, lines ended by CRLF (the sniff) or LF,
    on a first call and a second one from memory."""
    from email import quoprimime

    from mailer.model.composer import _quoted_printable

    for end in (b"\r\n", b"\n"):
        whole = quoprimime.body_encode((end.join(lines) + end).decode("latin-1"), 78)
        assert _quoted_printable(lines) == whole
        assert _quoted_printable(lines) == whole


@settings(max_examples=400, deadline=None)
@given(subject=_WORD | _ASCII_WORD, name=_WORD, text=_LINE)
def test_every_encoded_word_is_at_most_75_characters_and_reads_back_the_same(
    subject: str, name: str, text: str
) -> None:
    """Verify a written message has no encoded word over RFC 2047's 75 characters (the
    library wrote one of 200 for "Société Générale on Tuesday 24 November –"; a walkthrough),
    and that an RFC 2047 reader gets back the very subject and display names, as Python's
    own reader of an unstructured header does."""
    import re
    from email.header import decode_header, make_header

    from hypothesis import assume

    from mailer.model.composer import _short_encoded_words

    assume("=?" not in subject + name)  # (refused in every fact and template: see values.py)
    written = plain_bytes(_headers(subject, name, [], False), text)
    raw = _short_encoded_words(written)
    head = raw.split(b"\r\n\r\n", 1)[0]
    words = re.findall(rb"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=", head)
    assert all(len(w) <= 75 for w in words), [w for w in words if len(w) > 75]

    def read(message: bytes) -> dict[bytes, str]:
        """Each header as an RFC 2047 reader reads it."""
        lines = message.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        return {
            n: str(make_header(decode_header(v.decode("ascii"))))
            for n, _, v in (line.partition(b": ") for line in lines)
        }

    assert read(raw) == read(written)
    assert raw.split(b"\r\n\r\n", 1)[1] == written.split(b"\r\n\r\n", 1)[1]
    subject_read = email.message_from_bytes(raw, policy=default)["Subject"]
    assert str(subject_read) == str(email.message_from_bytes(written, policy=default)["Subject"])
