"""The hot-path shortcuts of assembly and DKIM agree with the general code they replace."""

from __future__ import annotations

import email
import unicodedata
from email.header import decode_header, make_header
from email.utils import formataddr, parseaddr

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsletter.core.safety.headers import HeaderInjection, clean_text
from newsletter.delivery.assemble import (
    ChunkJoiner,
    CompiledMessage,
    Recipient,
    _to_field,
    compile_message,
)
from newsletter.delivery.dkim_canon import all_clean, is_clean

NAMES = [
    "读者0", "读者12", "李雷", "", "  Zhang \t San  ", "陳 大文", "é", "Ω", "中" * 120, "Zhang San",
    'a"b', "李\u3000雷", "Zoë", "José María", "René 李",
    "a b é c d e",  # the Q encoded-word is the shorter one here
]  # fmt: skip


def _fits_one_word(name: str) -> bool:
    """formataddr's single encoded-word is ≤ 75 characters (and the name has no controls)."""
    if any(unicodedata.category(c) == "Cc" for c in name) or "\u2028" in name or "\u2029" in name:
        return False
    if name.isascii():
        # "=?" looks like an encoded-word: encoded, unlike formataddr; a run of spaces
        # is quoted, where formataddr leaves it to be folded by the reader; spaces at the
        # ends are dropped
        return "=?" not in name and "  " not in name and name == name.strip(" ")
    enc = formataddr((name, "r@example.org"), charset="utf-8")
    return len(enc.rsplit(" <", 1)[0]) <= 75


def _parsed(field: str) -> tuple[str, str]:
    """(display name, address) as RFC 2047 decodes them (whitespace between adjacent
    encoded-words is ignored; the stdlib's newer header parser keeps it, so it is not used)."""
    msg = email.message_from_bytes(b"To: " + field.encode() + b"\r\n\r\n")
    name, addr = parseaddr(msg["To"])
    return str(make_header(decode_header(name))), addr


def test_to_field_is_formataddr() -> None:
    for name in NAMES:
        want = (
            formataddr((name, "reader@example.com"), charset="utf-8")
            if name
            else "reader@example.com"
        )
        if _fits_one_word(name):
            assert _to_field(name, "reader@example.com") == want
        else:  # "中" * 120: several words of at most 75 characters on folded lines
            got = _to_field(name, "reader@example.com")
            assert all(len(w) <= 75 for w in got.replace("\r\n ", " ").split(" ") if "=?" in w)
            assert _parsed(got) == (clean_text(name), "reader@example.com")


@given(st.text(max_size=40))
def test_to_field_is_formataddr_for_any_name(name: str) -> None:
    """formataddr byte for byte where formataddr is right; where it is not (controls, a word
    over 75 characters, CR/LF) the cleaned name, folded, or a refusal."""
    if "\r" in name or "\n" in name:
        with pytest.raises(HeaderInjection):
            _to_field(name, "r@example.org")
        return
    got = _to_field(name, "r@example.org")
    if _fits_one_word(name):
        want = formataddr((name, "r@example.org"), charset="utf-8") if name else "r@example.org"
        assert got == want
    else:
        assert "\n" not in got.replace("\r\n ", "")
        assert all(len(w) <= 75 for w in got.replace("\r\n ", " ").split(" ") if "=?" in w)
        want = clean_text(name)
        assert _parsed(got) == ((want, "r@example.org") if want else ("", "r@example.org"))


def test_spaces_a_reader_would_fold_are_quoted() -> None:
    """Unquoted, ``0  0 <a@b>`` is read as "0 0" (RFC 5322 §3.2.2); quoted, as typed."""
    for name in ["0  0", "Wang  Xiao Ming", 'a  "b"\\c', "x   y"]:
        got = _to_field(name, "r@example.org")
        assert got.startswith('"'), got
        assert _parsed(got) == (name, "r@example.org")
    assert _to_field("Zhang San", "r@example.org") == "Zhang San <r@example.org>"


@given(st.lists(st.one_of(st.binary(max_size=8), st.sampled_from(["a", "b", "c"])), max_size=6))
def test_chunk_joiner_joins_like_a_loop(items: list[bytes | str]) -> None:
    values = {"a": b"AA", "b": b"", "c": "读".encode()}
    want = b"".join(values[c] if isinstance(c, str) else c for c in items)
    assert ChunkJoiner(items).join(values) == want


@given(
    st.lists(
        st.lists(st.sampled_from([b" ", b"\t", b"\r", b"\n", b"a", b"\x00", b"b"]), max_size=6),
        max_size=5,
    )
)
def test_all_clean_is_all_is_clean(parts: list[list[bytes]]) -> None:
    values = [b"".join(p) for p in parts]
    assert all_clean(values) == all(is_clean(v) for v in values) or (
        # A NUL inside a value may only make the shortcut say "dirty" (the exact slow path).
        not all_clean(values) and any(b"\x00" in v for v in values)
    )


_PIECES = [b".", b"\r\n", b"a", b"", b"\n", b"\r\n.", b".\r\n"]


@given(
    st.lists(
        st.one_of(
            st.lists(st.sampled_from(_PIECES), max_size=4).map(b"".join),
            st.sampled_from(["x", "y"]),
        ),
        max_size=8,
    ),
    st.lists(st.sampled_from(_PIECES), max_size=3).map(b"".join),
    st.lists(st.sampled_from(_PIECES), max_size=3).map(b"".join),
)
def test_dot_free_is_never_wrong(items: list[bytes | str], x: bytes, y: bytes) -> None:
    """When the joiner says no line begins with ".", none does (SMTP then skips
    dot-stuffing); and with no "." anywhere it does say so (the fast path is used)."""
    joiner = ChunkJoiner(items)
    values = {"x": x, "y": y}
    out = joiner.join(values)
    if joiner.dot_free(values):
        assert not out.startswith(b".") and b"\n." not in out
    if b"." not in out + x + y:
        assert joiner.dot_free(values)


def _small_compiled() -> CompiledMessage:
    return compile_message(
        html_body='<p>%%NAME%%，您好</p><p><a href="https://news.example.org/c/%%TOKEN%%">读</a></p>'
        '<p><a href="https://news.example.org/u/%%UNSUB%%">退订</a></p>',
        text_body="%%NAME%%您好：\n\n正文 https://news.example.org/c/%%TOKEN%%\n"
        "退订 https://news.example.org/u/%%UNSUB%%\n",
        subject="周报",
        from_name="周报",
        from_address="news@example.org",
        list_id="weekly.example.org",
        list_name="周报",
        feedback_id="i1:weekly:newsletter:example.org",
        unsub_base="https://news.example.org/u/",
        unsub_mailto="unsubscribe@example.org",
    )


@pytest.mark.parametrize(
    ("name", "free"), [("读者", True), (".hidden", False), ("", True), ("..", False), ("a.b", True)]
)
def test_a_name_that_begins_a_line_with_a_dot_is_stuffed(smtp_sink, name: str, free: bool) -> None:  # type: ignore[no-untyped-def]
    """The text part's greeting begins a line with the name: a name that begins with "."
    turns the fast path off, and the relay receives exactly the message that was built."""
    from newsletter.delivery.smtp import SmtpConnection

    port, sink = smtp_sink
    c = _small_compiled()
    r = Recipient(7, "r@example.com", name, "d7.TTTT", "u7-1.UUUU")
    _mid, message, dot_free = c.build_wire(r, date="Sat, 28 Nov 2026 08:00:00 +0000")
    assert c.build(r, date="Sat, 28 Nov 2026 08:00:00 +0000")[1] == message
    assert dot_free is free
    assert (b"\n." in message) is not free
    conn = SmtpConnection("127.0.0.1", port)
    try:
        assert (
            conn.send("b@example.org", "r@example.com", message, dot_free=dot_free).state == "sent"
        )
    finally:
        conn.close()
    assert sink.messages[0][2].replace(b"\r\n", b"\n").rstrip(b"\n") == (
        message.replace(b"\r\n", b"\n").rstrip(b"\n")
    )
