"""Text that ends up in a mail header: sanitised where it enters, refused where it leaves.

Two walls against header injection (and SMTP smuggling through a bare LF):

1. :func:`clean_text` runs where a name or any other header-bound value
   enters the system (CSV/XLSX import, the public subscribe form, the API,
   the console, settings): line breaks, tabs and U+2028/U+2029 become a
   space, every other control character (Unicode category Cc) goes, runs of
   spaces collapse.  Other characters (RTL marks, emoji, CJK) stay.
2. :func:`refuse_breaks` runs in the message builder on every header value:
   a CR or LF that got through anyway (old rows, a new code path) raises
   :class:`HeaderInjection` instead of producing a second header or ending
   the header block early.

:func:`encode_words` writes non-ASCII text as RFC 2047 encoded-words of at
most 75 characters each, folded onto continuation lines (CRLF + space).
"""

from __future__ import annotations

import binascii
import re
import unicodedata
from email.charset import Charset
from email.utils import formataddr

from newsletter.core.errors import DeliveryError

__all__ = [
    "ENCODED_WORD_MAX",
    "HeaderInjection",
    "address_field",
    "clean_text",
    "encode_words",
    "refuse_breaks",
]

ENCODED_WORD_MAX = 75
#: UTF-8 octets per base64 encoded-word: "=?utf-8?b?" + 60 + "?=" = 72 characters.
_WORD_OCTETS = 45
_BREAKS = re.compile(r"[\r\n\t\v\f\x1c-\x1e\x85\u2028\u2029]+")
_PRINTABLE_ASCII = re.compile(r"^[\x20-\x7e]*$")


class HeaderInjection(DeliveryError):
    """A header value carries CR or LF: refused, never written."""


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) == "Cc"


_SUSPECT = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # exactly Unicode category Cc


def clean_text(value: object, max_len: int | None = None) -> str:
    """``value`` as safe header text: one line, no control characters, trimmed.

    Line breaks (CR, LF, VT, FF, NEL, U+2028/2029) and tabs become one space;
    every other Cc character is removed.  Fast when there is nothing to clean.
    """
    if value is None:
        return ""
    s = str(value)
    if _SUSPECT.search(s) is not None:
        s = _CONTROLS.sub("", _BREAKS.sub(" ", s))
    s = s.strip()
    if max_len is not None and len(s) > max_len:
        s = s[:max_len].rstrip()
    return s


def refuse_breaks(field: str, value: str) -> str:
    """``value`` unchanged, or :class:`HeaderInjection` if it holds CR or LF."""
    if "\r" in value or "\n" in value:
        raise HeaderInjection(
            f"{field} header value contains a line break (CR/LF); refused / 邮件头 {field} 含换行符，已拒绝"
        )
    return value


def encode_words(text: str) -> str:
    """Printable ASCII as is; anything else as base64 encoded-words ≤ 75 characters,
    folded with CRLF + space between words (RFC 2047 §2, RFC 5322 §2.2.3)."""
    if _PRINTABLE_ASCII.match(text) and "=?" not in text:
        return text  # ("=?" would be decoded by a reader as the start of an encoded-word)
    words: list[str] = []
    buf = bytearray()
    for ch in text:
        b = ch.encode("utf-8", "surrogatepass")
        if buf and len(buf) + len(b) > _WORD_OCTETS:
            words.append(_word(bytes(buf)))
            buf.clear()
        buf += b
    if buf:
        words.append(_word(bytes(buf)))
    return "\r\n ".join(words)


def _word(b: bytes) -> str:
    return f"=?utf-8?b?{binascii.b2a_base64(b, newline=False).decode()}?="


def address_field(name: str, addr: str, field: str = "address") -> str:
    """``Name <addr>`` for a From/To/Reply-To header; refuses CR/LF in either part."""
    refuse_breaks(field, name)
    refuse_breaks(field, addr)
    if any(_is_control(c) for c in name):
        name = clean_text(name)
    if not name:
        return addr
    if _PRINTABLE_ASCII.match(name) and "=?" not in name:
        return ascii_address(name, addr)
    return f"{encode_words(name)} <{addr}>"


def ascii_address(name: str, addr: str, charset: Charset | str = "utf-8") -> str:
    """``formataddr((name, addr))``, except that a name with a run of spaces inside is
    quoted, so it arrives as it was typed, and spaces at its ends are dropped.

    Unquoted, the display name is a phrase of words, and any run of spaces between
    them means one space (RFC 5322 §3.2.2): ``0  0 <a@b>`` reads as "0 0".
    """
    name = name.strip(" ")
    if not name:
        return addr  # nothing a reader could see (formataddr would write the spaces)
    if "  " in name and name.isascii() and addr.isascii():
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <{addr}>'
    return formataddr((name, addr), charset=charset)
