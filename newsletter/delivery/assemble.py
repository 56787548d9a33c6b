"""Message assembly: the hot path.

The Jinja2 render and the CSS inlining happen once per (issue, variant).  The
result is compiled here, once, into a :class:`CompiledMessage`: a list of byte
chunks with *slots* between them for the per-recipient values.  Building one
recipient's message is then a dict lookup per slot and one ``b"".join``; no
template engine, HTML parser or MIME library runs per recipient.

Body parts use ``Content-Transfer-Encoding: 8bit`` (base64 would make CJK text
35% larger and push a long issue past Gmail's clip).  8bit requires lines of at
most 998 octets; :func:`compile_message` checks every line with each slot at
its maximum length and raises :class:`LineTooLong` if the renderer let one
through.  When the relay lacks 8BITMIME, :func:`to_base64` re-encodes a built
message (a slow path, used only then).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import html
import re
import secrets
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email import quoprimime
from email.charset import Charset
from email.utils import formatdate
from operator import itemgetter
from typing import Any

from newsletter.core import clock
from newsletter.core.errors import DeliveryError
from newsletter.core.safety.headers import (
    ENCODED_WORD_MAX,
    HeaderInjection,
    address_field,
    ascii_address,
    clean_text,
    encode_words,
    refuse_breaks,
)

__all__ = [
    "CompiledMessage",
    "LineTooLong",
    "Recipient",
    "SLOT_MAX",
    "compile_message",
    "to_base64",
]

#: Maximum length of each slot's value, for the line-length and size budgets.
SLOT_MAX = {"TOKEN": 64, "UNSUB": 64, "NAME": 120}
_SLOT_RE = re.compile(rb"%%(TOKEN|UNSUB|NAME)%%")
_MAX_LINE = 998
_UTF8 = Charset("utf-8")  # formataddr() would build this per call
_HEAD = "head"  # the slot of the per-recipient header fields in CompiledMessage.joiner


class LineTooLong(DeliveryError):
    pass


@dataclass(slots=True)
class Recipient:
    delivery_id: int
    email: str
    name: str
    token: str  # signed delivery token (open/click)
    unsub: str  # signed unsubscribe token


def _encode_header(value: str, field: str = "header") -> str:
    """A header value: refused if it holds CR/LF; non-ASCII as encoded-words ≤ 75 characters."""
    refuse_breaks(field, value)
    if _CC.search(value):
        value = clean_text(value)
    return encode_words(value)


def _split(body: bytes, part: str) -> list[bytes | str]:
    """Split ``body`` into literal chunks and slot names like ``"html:NAME"``."""
    out: list[bytes | str] = []
    pos = 0
    for m in _SLOT_RE.finditer(body):
        if m.start() > pos:
            out.append(body[pos : m.start()])
        out.append(f"{part}:{m.group(1).decode()}")
        pos = m.end()
    if pos < len(body):
        out.append(body[pos:])
    return out


def _check_lines(body: bytes, part: str) -> None:
    for n, line in enumerate(body.split(b"\n"), start=1):
        if len(line) <= _MAX_LINE - 1:
            continue
        extra = sum(
            SLOT_MAX[m.group(1).decode()] - len(m.group(0)) for m in _SLOT_RE.finditer(line)
        )
        if len(line) + max(extra, 0) > _MAX_LINE - 1:
            raise LineTooLong(
                f"{part} part line {n} is {len(line) + max(extra, 0)} octets with slots filled; "
                f"8bit transfer allows {_MAX_LINE}. The renderer must break it."
            )


def _crlf(b: bytes) -> bytes:
    return b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class ChunkJoiner:
    """Joins literal chunks and slot values: one C-level pass, no Python loop per chunk.

    ``items`` mixes literal ``bytes`` and slot names (``str``); :meth:`join`
    takes the values of the slots and returns the concatenation.
    """

    __slots__ = ("_dot_after", "_get", "_line_start_slots", "_static", "_static_dots")

    def __init__(self, items: Sequence[bytes | str]) -> None:
        keys: list[int | str] = []
        self._static: dict[int | str, bytes] = {}
        # For dot_free(): which slots may begin a line (after a line break, at the start or
        # after another slot, whose value may be empty), which slots a literal "." follows,
        # and whether the literal text alone puts a "." at the start of a line.
        line_start: set[str] = set()
        dot_after: set[str] = set()
        static_dots = False
        prev: bytes | str | None = None  # the last non-empty item; None: the start
        for i, c in enumerate(items):
            if isinstance(c, bytes):
                self._static[i] = c
                keys.append(i)
                if b"\n." in c:
                    static_dots = True
                elif c[:1] == b".":
                    if isinstance(prev, str):
                        dot_after.add(prev)  # safe while that value is non-empty, no "\n" last
                    elif prev is None or prev.endswith(b"\n"):
                        static_dots = True
                if c:
                    prev = c
            else:
                keys.append(c)
                if prev is None or isinstance(prev, str) or prev.endswith(b"\n"):
                    line_start.add(c)
                prev = c
        self._static_dots = static_dots
        self._line_start_slots = tuple(sorted(line_start))
        self._dot_after = tuple(sorted(dot_after))
        get: Callable[[Mapping[int | str, bytes]], tuple[bytes, ...]]
        if len(keys) == 1:
            key = keys[0]
            get = lambda d: (d[key],)  # noqa: E731  (itemgetter of one key returns no tuple)
        elif keys:
            get = itemgetter(*keys)
        else:
            get = lambda d: ()  # noqa: E731
        self._get = get

    def join(self, values: Mapping[str, bytes]) -> bytes:
        d = self._static.copy()
        d.update(values)
        return b"".join(self._get(d))

    def dot_free(self, values: Mapping[str, bytes]) -> bool:
        """True only if no line of ``join(values)`` begins with "." (SMTP's DATA then needs
        no dot-stuffing, and the scan of the whole message for one is skipped).
        Looks at the few values, never at the joined bytes."""
        if self._static_dots:
            return False
        for name in self._line_start_slots:
            if values[name][:1] == b".":
                return False
        for name in self._dot_after:
            v = values[name]
            if not v or v.endswith(b"\n"):
                return False
        return b"\n." not in b"".join(values.values())  # one scan of ~1 KB, not one per value


@dataclass(slots=True)
class CompiledMessage:
    """A message compiled once per (issue, variant); :meth:`build` fills one recipient."""

    from_addr: str
    msgid_domain: str
    unsub_base: str  # e.g. https://news.example.org/u/
    unsub_mailto: str  # e.g. unsubscribe@example.org  (token goes after a +)
    chunks: list[bytes | str] = field(default_factory=list)
    size_worst: int = 0
    # --- DKIM (delivery/dkim.py; the plan: dkim_plan.py) ---------------------------
    #: A ``DkimSigner``; when set, build() prepends its DKIM-Signature field(s).
    signer: Any = None
    #: (signer, plan) cached by the signer on first use: canonical fixed headers and
    #: the shared body-hash prefix.  Reset it to None if ``chunks`` change.
    dkim_plan: Any = None
    # --- end DKIM -------------------------------------------------------------------
    #: (chunks, ChunkJoiner) made on first build; reset it to None if ``chunks`` change.
    joiner: Any = None
    #: Fixed per installation (derived from the secret key): with the delivery id it makes
    #: a Message-ID that is unique and the same on every attempt, so a copy re-sent after
    #: a crash carries the first copy's Message-ID and receivers can drop it.
    msgid_salt: str = ""

    def message_id(self, delivery_id: int) -> str:
        """The Message-ID of a delivery: the same on every attempt."""
        if not self.msgid_salt:
            self.msgid_salt = msgid_salt()
        return f"<{delivery_id}.{self.msgid_salt}@{self.msgid_domain}>"

    def build(self, r: Recipient, *, date: str | None = None) -> tuple[str, bytes]:
        """Return (Message-ID, message bytes with CRLF line ends) for one recipient."""
        msgid, message, _ = self.build_wire(r, date=date)
        return msgid, message

    def build_wire(self, r: Recipient, *, date: str | None = None) -> tuple[str, bytes, bool]:
        """:meth:`build`, and whether no line of the message begins with "." (then the
        SMTP client may send it without dot-stuffing, RFC 5321 §4.5.2)."""
        msgid = self.message_id(r.delivery_id)
        name = r.name[: SLOT_MAX["NAME"]]
        local, _, dom = self.unsub_mailto.partition("@")
        to = _to_field(name, r.email)  # refuses CR/LF in the name or the address
        if _CC.search(name):
            name = clean_text(name)  # the body's greeting slots get the same clean name
        date = date or _now_date()
        unsub = f"<{self.unsub_base}{r.unsub}>, <mailto:{local}+{r.unsub}@{dom}>"
        head = (
            f"To: {to}\r\nMessage-ID: {msgid}\r\nDate: {date}\r\nList-Unsubscribe: {unsub}\r\n"
        ).encode()
        token = r.token.encode()
        unsub_b = r.unsub.encode()
        values = {
            "html:TOKEN": token,
            "text:TOKEN": token,
            "html:UNSUB": unsub_b,
            "text:UNSUB": unsub_b,
            "html:NAME": _clip(html.escape(name), SLOT_MAX["NAME"]),
            "text:NAME": _clip(name, SLOT_MAX["NAME"]),
        }
        joiner = self.joiner
        if joiner is None or joiner[0] is not self.chunks:
            joiner = self.joiner = (self.chunks, ChunkJoiner([_HEAD, *self.chunks]))
        # --- DKIM: the signature fields go above the per-recipient headers ---------
        if self.signer is not None:
            rcpt = {"to": to, "message-id": msgid, "date": date, "list-unsubscribe": unsub}
            head = self.signer.sign(self, rcpt, values) + head
        # --- end DKIM ---------------------------------------------------------------
        values[_HEAD] = head
        return msgid, joiner[1].join(values), joiner[1].dot_free(values)


#: Octets that RFC 2047 "Q" encoding writes as one character (quoprimime's header map).
_QP_ONE_CHAR = b"-!*+/ " + string.ascii_letters.encode() + string.digits.encode()


_CC = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: "=?utf-8?b?" + "?=": what an encoded-word adds around its payload.
_WORD_OVERHEAD = 12


def _to_field(name: str, addr: str) -> str:
    """``formataddr((name, addr), charset="utf-8")``, byte for byte, minus its overhead.

    For a non-ASCII name the stdlib picks the shorter of the base64 and the Q
    encoded-word; the same choice is made here from the two lengths.  Unlike
    formataddr it never writes an encoded-word over 75 characters (a longer
    name becomes several words on folded lines) and it refuses CR/LF: a name
    or address with a line break raises :class:`HeaderInjection` (the second
    wall; names are cleaned where they enter).  Other control characters go.
    An ASCII name with a run of spaces is quoted (:func:`ascii_address`), where
    formataddr would let the reader fold the run into one space.
    """
    if "\r" in name or "\n" in name or "\r" in addr or "\n" in addr:
        refuse_breaks("To", name)
        refuse_breaks("To", addr)
    if not name:
        return addr
    if _CC.search(name):
        name = clean_text(name)
        if not name:
            return addr
    if (name.isascii() and "=?" not in name) or not addr.isascii():
        return ascii_address(name, addr, _UTF8)
    # Non-ASCII, or ASCII that a reader would decode as an encoded-word ("=?…?="): encode.
    b = name.encode()
    len_b64 = (len(b) + 2) // 3 * 4
    len_q = len(b) + 2 * len(b.translate(None, _QP_ONE_CHAR))
    if min(len_b64, len_q) + _WORD_OVERHEAD > ENCODED_WORD_MAX:
        return f"{encode_words(name)} <{addr}>"
    if len_b64 < len_q:
        return f"=?utf-8?b?{binascii.b2a_base64(b, newline=False).decode()}?= <{addr}>"
    return f"{quoprimime.header_encode(b, 'utf-8')} <{addr}>"


def _clip(value: str, limit: int) -> bytes:
    """UTF-8 bytes of ``value`` cut to ``limit`` octets at a character (and entity) boundary."""
    b = value.encode()
    if len(b) <= limit:
        return b
    cut = b[:limit].decode("utf-8", "ignore")
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]  # never leave half an HTML entity
    return cut.encode()


_date_cache: tuple[int, str] = (0, "")


def _now_date() -> str:
    global _date_cache
    now = int(clock.timestamp())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


def compile_message(
    *,
    html_body: str,
    text_body: str,
    subject: str,
    from_name: str,
    from_address: str,
    list_id: str,
    list_name: str,
    feedback_id: str,
    unsub_base: str,
    unsub_mailto: str,
    reply_to: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> CompiledMessage:
    """Compile rendered HTML and text into a :class:`CompiledMessage` (once per variant)."""
    boundary = "=_nl_" + secrets.token_hex(12)
    html_b = _crlf(html_body.encode("utf-8"))
    text_b = _crlf(text_body.encode("utf-8"))
    _check_lines(html_b, "html")
    _check_lines(text_b, "text")
    if boundary.encode() in html_b or boundary.encode() in text_b:  # pragma: no cover
        raise DeliveryError("MIME boundary collision")
    for hname, hvalue in (
        ("List-Id", list_id),
        ("Feedback-ID", feedback_id),
        ("List-Unsubscribe", unsub_base),
        ("List-Unsubscribe", unsub_mailto),
    ):
        refuse_breaks(hname, hvalue)
    hdrs = [
        f"From: {address_field(from_name, from_address, 'From')}",
        f"Subject: {_encode_header(subject, 'Subject')}",
        "MIME-Version: 1.0",
        f"List-Id: {_encode_header(list_name, 'List-Id')} <{list_id}>",
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        f"Feedback-ID: {feedback_id}",
        "Precedence: bulk",
    ]
    if reply_to:
        hdrs.append(f"Reply-To: {refuse_breaks('Reply-To', reply_to)}")
    for k, v in (extra_headers or {}).items():
        if not re.fullmatch(r"[!-9;-~]+", k):
            raise HeaderInjection(f"invalid header name {k!r} / 邮件头名称无效")
        hdrs.append(f"{k}: {_encode_header(v, k)}")
    hdrs.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
    head = ("\r\n".join(hdrs) + "\r\n\r\n").encode("utf-8")
    chunks: list[bytes | str] = [
        head,
        f"This is a multipart message in MIME format.\r\n\r\n--{boundary}\r\n".encode(),
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        *_split(text_b, "text"),
        f"\r\n--{boundary}\r\n".encode(),
        b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        *_split(html_b, "html"),
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    merged: list[bytes | str] = []
    for c in chunks:
        if isinstance(c, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] = merged[-1] + c
        elif c != b"":
            merged.append(c)
    worst = sum(len(c) if isinstance(c, bytes) else SLOT_MAX[c.split(":")[1]] for c in merged)
    domain = from_address.rpartition("@")[2]
    return CompiledMessage(
        from_addr=from_address,
        msgid_domain=domain,
        unsub_base=unsub_base,
        unsub_mailto=unsub_mailto,
        chunks=merged,
        size_worst=worst + 600,
    )


def msgid_salt() -> str:
    """The installation's Message-ID salt: 12 hex digits derived from the secret key."""
    from newsletter.core.config import get_settings

    key = get_settings().secret_key.get_secret_value().encode()
    return hmac.new(key, b"newsletter message-id", "sha256").hexdigest()[:12]


def to_base64(message: bytes) -> bytes:
    """Re-encode the 8bit body parts of a built message as base64 (no-8BITMIME relays)."""
    out: list[bytes] = []
    pieces = re.split(rb"((?:\r\n)?--=_nl_[0-9a-f]+(?:--)?\r\n)", message)
    out.append(pieces[0])
    for i in range(1, len(pieces), 2):
        sep, part = pieces[i], pieces[i + 1] if i + 1 < len(pieces) else b""
        out.append(sep)
        if b"Content-Transfer-Encoding: 8bit\r\n\r\n" in part:
            head, _, payload = part.partition(b"\r\n\r\n")
            head = head.replace(
                b"Content-Transfer-Encoding: 8bit", b"Content-Transfer-Encoding: base64"
            )
            enc = base64.encodebytes(payload).replace(b"\n", b"\r\n").rstrip(b"\r\n")
            out.append(head + b"\r\n\r\n" + enc)
        else:
            out.append(part)
    return b"".join(out)
