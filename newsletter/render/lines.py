"""Keep every line of rendered output within SMTP's 998-octet limit.

8bit transfer encoding (the right one for CJK text, see email-delivery.md)
allows at most 998 octets per line.  :func:`fold_html` inserts line breaks
only where they are invisible:

* inside a tag — a space between attributes (or inside a ``style`` value)
  becomes a newline, or a newline goes just before the closing ``>``;
* in text, an ASCII space may become a newline (not inside ``<pre>``);
* a text run with no tag and no space for ~990 bytes gets an empty
  ``<span\\n></span>`` — the newline lives inside the tag, so no whitespace is
  ever added between two CJK characters.

A tag is broken *before* a following text run when the run would not fit on
the current line, so long CJK runs start on a fresh line.  Widths are measured
in UTF-8 bytes with every slot (``%%TOKEN%%`` …) counted at its maximum
substituted length, so the limit still holds after per-recipient substitution.
"""

from __future__ import annotations

import re

from newsletter.render.context import slot_extra_bytes

__all__ = ["LIMIT", "fold_html", "fold_text_line", "max_line_octets"]

LIMIT = 998
_TARGET = 980  # leave room for a short tag name and for slack
_SPAN_OPEN = "<span"
_SPAN_REST = "></span>"

_TOKEN_RE = re.compile(r"<!--.*?-->|<[^>]*>|[^<]+|<", re.S)
_TAGNAME_RE = re.compile(r"</?([a-zA-Z][a-zA-Z0-9]*)")
_RAW = frozenset({"style", "script", "title", "textarea"})
_SLOT_RE = re.compile(r"%%[A-Z]+%%")
_ENTITY_TAIL_RE = re.compile(r"&[#a-zA-Z0-9]*$")


def _w(s: str) -> int:
    """Worst-case encoded width of ``s`` in bytes."""
    return len(s.encode()) + slot_extra_bytes(s)


def max_line_octets(s: str) -> int:
    """Longest line of ``s`` in worst-case octets (slots at maximum length)."""
    return max((_w(line) for line in s.split("\n")), default=0)


class _Out:
    __slots__ = ("col", "parts")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.col = 0

    def put(self, s: str, width: int | None = None) -> None:
        self.parts.append(s)
        nl = s.rfind("\n")
        if nl < 0:
            self.col += _w(s) if width is None else width
        else:
            self.col = _w(s[nl + 1 :])

    def newline(self) -> None:
        self.parts.append("\n")
        self.col = 0


def _tag_segments(tag: str) -> tuple[list[str], list[str]]:
    """Split a tag at its safe break points.

    Returns ``segments`` and ``seps`` (``len(seps) == len(segments) - 1``);
    a sep is the whitespace that may become a newline, or ``""`` for a pure
    insertion point (just before the final ``>``).
    """
    segs: list[str] = []
    seps: list[str] = []
    start = 0
    quote = ""
    in_style = False
    i = 0
    n = len(tag)
    while i < n:
        c = tag[i]
        if quote:
            if c == quote:
                quote = ""
                in_style = False
            elif in_style and c == " " and tag[i - 1] == ";":
                segs.append(tag[start:i])
                seps.append(c)
                start = i + 1
        elif c in "\"'":
            quote = c
            in_style = tag[max(0, i - 7) : i].lower().replace(" ", "").endswith("style=")
        elif c in " \t\n":
            segs.append(tag[start:i])
            seps.append(c)
            start = i + 1
        i += 1
    last = tag[start:]
    if last.endswith(">") and len(last) > 1 and tag.startswith("<") and not tag.startswith("<!"):
        close = 2 if last.endswith("/>") else 1
        segs.append(last[:-close])
        seps.append("")
        segs.append(last[-close:])
    else:
        segs.append(last)
    return segs, seps


def _put_tag(out: _Out, tag: str, need_after: int) -> None:
    w = _w(tag)
    if "\n" not in tag and out.col + w + need_after <= _TARGET:
        out.put(tag, w)
        return
    if tag.startswith("<!"):
        out.put(tag)
        return
    segs, seps = _tag_segments(tag)
    out.put(segs[0])
    last = len(segs) - 1
    for k in range(1, len(segs)):
        sep, seg = seps[k - 1], segs[k]
        extra = need_after if k == last else 0
        if sep == "\n" or (out.col + len(sep) + _w(seg) + extra > _TARGET and out.col > 0):
            out.newline()
        elif sep:
            out.put(sep, 1)
        out.put(seg)


def _cut_point(piece: str, room: int) -> int:
    """Largest char index ``i`` with width(piece[:i]) <= room, not inside an entity/slot."""
    if room <= 0:
        return 0
    if "%%" not in piece:
        enc = piece.encode()
        if len(enc) <= room:
            return len(piece)
        b = room
        while b > 0 and (enc[b] & 0xC0) == 0x80:
            b -= 1
        return _no_entity(piece, len(enc[:b].decode()))
    slots = {m.start(): m.end() for m in _SLOT_RE.finditer(piece)}
    acc = 0
    i = 0
    n = len(piece)
    while i < n:
        j = slots.get(i, i + 1)
        cw = _w(piece[i:j])
        if acc + cw > room:
            break
        acc += cw
        i = j
    return _no_entity(piece, i)


def _no_entity(piece: str, i: int) -> int:
    m = _ENTITY_TAIL_RE.search(piece, max(0, i - 12), i)
    if m and m.end() == i:
        return m.start()
    return i


def _put_text(out: _Out, text: str, pre: bool, raw: bool) -> None:
    lines = text.split("\n")
    for li, piece in enumerate(lines):
        if li:
            out.newline()
        while out.col + _w(piece) > _TARGET:
            room = _TARGET - out.col
            cut = _cut_point(piece, room - len(_SPAN_OPEN))
            if not pre:
                sp = piece.rfind(" ", 0, _cut_point(piece, room) + 1)
                if sp > 0 and (sp >= cut // 2 or raw):
                    out.put(piece[:sp])
                    out.newline()
                    piece = piece[sp + 1 :]
                    continue
            if raw:
                break  # no tag may be inserted here: leave the line as it is
            if cut <= 0 and out.col == 0:
                cut = max(1, _cut_point(piece, _TARGET // 2))
            out.put(piece[:cut])
            out.put(_SPAN_OPEN)
            out.newline()
            out.put(_SPAN_REST)
            piece = piece[cut:]
        out.put(piece)


def fold_html(html: str) -> str:
    """``html`` with no line longer than 998 octets (worst case), same rendering."""
    if max_line_octets(html) <= _TARGET:
        return html
    out = _Out()
    tokens = _TOKEN_RE.findall(html)
    raw_tag = ""
    pre_depth = 0
    ntok = len(tokens)
    for idx, tok in enumerate(tokens):
        if tok.startswith("<") and len(tok) > 1:
            m = _TAGNAME_RE.match(tok)
            name = m.group(1).lower() if m else ""
            closing = tok.startswith("</")
            need_after = 0
            if not closing and idx + 1 < ntok and not tokens[idx + 1].startswith("<"):
                nxt = _w(tokens[idx + 1].split("\n", 1)[0])
                if nxt <= _TARGET - 40:
                    need_after = nxt
            _put_tag(out, tok, need_after)
            if name in _RAW:
                raw_tag = "" if closing else name
            elif name == "pre":
                pre_depth = max(0, pre_depth + (-1 if closing else 1))
        else:
            _put_text(out, tok, pre_depth > 0, bool(raw_tag))
    return "".join(out.parts)


_BREAK_AFTER = frozenset("。！？；，、：）》」』】”’.!?;,:)")


def fold_text_line(line: str, limit: int = LIMIT) -> list[str]:
    """Split one text/plain line so that no piece exceeds ``limit`` octets.

    Cuts after the last punctuation mark that fits (so a Chinese sentence is
    not broken mid-word), else at a space, else where the limit falls.
    """
    pieces: list[str] = []
    while _w(line) > limit:
        cut = max(1, _cut_point(line, limit - 2))
        mark = max((i for i in range(cut - 1, cut // 2, -1) if line[i] in _BREAK_AFTER), default=-1)
        sp = line.rfind(" ", 0, cut + 1)
        if mark > 0:
            pieces.append(line[: mark + 1])
            line = line[mark + 1 :]
        elif sp > cut // 2:
            pieces.append(line[:sp])
            line = line[sp + 1 :]
        else:
            pieces.append(line[:cut])
            line = line[cut:]
    pieces.append(line)
    return pieces
