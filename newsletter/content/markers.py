"""Heading markers read from the document itself, not from a list of known styles.

A *marker* is the prefix a line starts with before its words: a glyph or emoji
(``◆``, ``▶``, ``🔹``), a keycap (``1️⃣``), or an ordinal of some kind (``一、``,
``(1)``, ``【3】``, ``第二部分``, ``B.``, ``01``, ``③``).  Every marker has a *shape*:
the marker with its number replaced by the number's kind, so ``一、`` and ``三、``
share the shape ``〈cn〉、`` and ``(2)`` has ``(〈arabic〉)``.

A shape becomes a heading *family* of this document when its lines look like
headings and behave like them:

* they are short and do not end like a sentence;
* they come back: at least twice, or once numbered 1 with a sibling family below it;
* their numbers count (1, 2, 3 …, restarting at 1 under an outer heading), or the
  glyph is the same each time;
* most of them are followed by something else (a body), not by the next line of
  the same shape, which is what a bulleted or numbered list in the text does.

Families are ranked by where they first appear outside a contents list: the
first is the outermost.  Matching is done on the normalised line (see
:func:`newsletter.content.patterns.normalise`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from newsletter.content.patterns import numeral_value

__all__ = ["DocFamily", "Marker", "discover", "heading_length", "read_marker"]

_CN = "一二三四五六七八九十百零〇两"
_STEMS = "甲乙丙丁戊己庚辛壬癸"  # the heavenly stems, an ordinal series of their own
_PAREN_CN = "㈠㈡㈢㈣㈤㈥㈦㈧㈨㈩"  # one character each: (一) … (十)
_PAREN_ARABIC = "⑴⑵⑶⑷⑸⑹⑺⑻⑼⑽⑾⑿⒀⒁⒂⒃⒄⒅⒆⒇"  # (1) … (20)
_DOT_ARABIC = "⒈⒉⒊⒋⒌⒍⒎⒏⒐⒑⒒⒓⒔⒕⒖⒗⒘⒙⒚⒛"  # 1. … 20.
#: Self-delimited numbers: the character is the marker, and which shape it joins.
_SELF = {
    "circled": "〈circled〉、",
    "pcn": "(〈cn〉)",
    "parab": "(〈arabic〉)",
    "dotarab": "〈arabic〉、",
}
_FORMAL = "壹贰叁参肆伍陆柒捌玖拾"
_CIRCLED = "①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳"
_ROMAN = {
    "I": 1,
    "II": 2,
    "III": 3,
    "IV": 4,
    "V": 5,
    "VI": 6,
    "VII": 7,
    "VIII": 8,
    "IX": 9,
    "X": 10,
}
_ROMAN_CHARS = "ⅠⅡⅢⅣⅤⅥⅦⅧⅨⅩ"

_OPEN = "(【〔[<{〈「"
_CLOSE = ")】〕]>}〉」"
_DELIM = "、.:)】〕]>-|/"

# (kind, regex of the number); the order matters where forms overlap
_NUMBERS: tuple[tuple[str, str], ...] = (
    ("keycap", r"\d\ufe0f?\u20e3"),
    ("circled", f"[{_CIRCLED}]"),
    ("pcn", f"[{_PAREN_CN}]"),
    ("parab", f"[{_PAREN_ARABIC}]"),
    ("dotarab", f"[{_DOT_ARABIC}]"),
    ("roman", f"[{_ROMAN_CHARS}]"),
    ("zero", r"0\d"),
    ("decimal", r"\d{1,2}\.\d{1,2}(?=[ 、)])"),  # 1.1 2.3: numbered under a numbered parent
    ("letnum", r"[A-Z]\d{1,2}(?![\dA-Za-z])"),
    ("arabic", r"\d{1,3}"),
    ("stem", f"[{_STEMS}]"),
    ("cn", f"[{_CN}]{{1,4}}"),
    ("formal", f"[{_FORMAL}]{{1,3}}"),
    ("ROMAN", r"(?:VIII|VII|III|II|IV|IX|VI|V|X|I)(?![A-Za-z])"),
    ("rlower", r"(?:viii|vii|iii|ii|iv|ix|vi|v|x|i)(?![A-Za-z])"),
    ("upper", r"[A-Z](?![A-Za-z])"),
    ("lower", r"[a-z](?![A-Za-z])"),
)
_NUMBER_RE = re.compile("|".join(f"(?P<{k}>{p})" for k, p in _NUMBERS))
# 第 N unit: the unit is whatever one or two characters follow the number (部分, 章, 篇 …)
_ORDINAL_RE = re.compile(
    rf"第\s*(?P<num>\d{{1,3}}|[{_CN}]{{1,3}})\s*(?P<unit>部分|[\u4e00-\u9fff])"
)

# 专题一：, 议题2、: a word of one to three characters, a number, a colon or comma
_CJK_WORD_NUMBER_RE = re.compile(
    rf"(?P<word>(?:(?![{_CN}{_FORMAL}第])[\u4e00-\u9fff]){{1,3}}?)"
    rf"(?P<num>[{_CN}]{{1,3}}|\d{{1,2}})\s*[:：、]\s*(?=\S)"
)
_WORD_NUMBER_RE = re.compile(
    r"(?P<word>[A-Za-z]{2,10})\s*(?P<num>\d{1,2})(?:\s*[.:、|]\s*|\s+)(?=\S)"
)


_TRANSLATION = re.compile(r"\s*(?:/|\||｜)\s*[A-Za-z][^\u4e00-\u9fff]*$")


#: a closing bracket that cites the document (its number, with a date or an issuer)
_CITED = re.compile(
    r"[（(][^（）()]{0,40}[〔\[［(（]\s*\d{4}\s*[〕\]］)）][^（）()]{0,40}[)）]\s*$"
)


def heading_length(title: str) -> int:
    """How long a heading reads: a translation after it (``… / Implementing Rules``)
    does not count, and Latin letters count half (a word of English takes the room of
    two or three characters of Chinese)."""
    text = _TRANSLATION.sub("", title) or title
    text = _CITED.sub("", text) or text  # …的通知（国发〔2026〕8号，2026年3月1日）: its fields
    latin = sum(1 for ch in text if ch.isascii() and ch.isalpha())
    return len(text) - latin // 2


@dataclass(frozen=True, slots=True)
class Marker:
    shape: str  # e.g. "〈cn〉、", "glyph ◆", "第〈cn〉部分"
    number: int  # the value, or 0 for a glyph (counts by position)
    title_start: int  # where the words start in the normalised line
    title_end: int | None = None  # where they end, when the line goes on with text


def _glyph(ch: str) -> bool:
    """A symbol that can lead a heading: not a letter, digit, bracket, quote or CJK punctuation."""
    if ch in "\ufe0f\u200d\u20e3":
        return True
    cat = unicodedata.category(ch)
    if cat in ("So", "Sm", "Sk"):
        return ch not in "<>=+^|~"
    return cat == "Po" and ch in "■□▪▫●○◆◇◎★☆※#§¶•·∙⁃‣"


def read_marker(norm: str) -> Marker | None:
    """The marker that ``norm`` starts with, or ``None`` when it starts with words."""
    s = norm
    if not s:
        return None
    enclosed = _enclosed(s) or _labelled(s)
    if enclosed is not None:
        return enclosed
    m = _ORDINAL_RE.match(s)
    if m is not None:
        value = numeral_value(m.group("num"))
        kind = "arabic" if m.group("num").isdigit() else "cn"
        rest = m.end()
        while rest < len(s) and s[rest] in " 、.:":
            rest += 1
        if value is not None and rest < len(s):
            return Marker(f"第〈{kind}〉{m.group('unit')}", value, rest)
    m = _CJK_WORD_NUMBER_RE.match(s)
    if m is not None and (value := numeral_value(m.group("num"))):
        kind = "arabic" if m.group("num").isdigit() else "cn"
        return Marker(f"{m.group('word')}〈{kind}〉", value, m.end())
    m = _WORD_NUMBER_RE.match(s)
    if m is not None:  # Part 1, Chapter 2: a word and a number
        return Marker(f"{m.group('word').lower()}〈arabic〉", int(m.group("num")), m.end())
    # glyphs (possibly an emoji sequence); a keycap is a number, handled below
    k = 0
    while k < len(s) and k < 4 and _glyph(s[k]) and not s[k].isdigit():
        k += 1
    if k and (k == len(s) or not s[k:].startswith(("\ufe0f\u20e3", "\u20e3"))):
        glyphs = "".join(ch for ch in s[:k] if ch not in "\ufe0f\u200d")
        rest = k
        while rest < len(s) and s[rest] == " ":
            rest += 1
        if glyphs and rest < len(s) and not _glyph(s[rest]):
            return Marker(f"glyph {glyphs}", 0, rest)
        return None
    opener = s[0] if s[0] in _OPEN else ""
    pos = len(opener)
    while pos < len(s) and s[pos] == " ":
        pos += 1
    n = _NUMBER_RE.match(s, pos)
    if n is None or n.lastgroup is None:
        return None
    kind = n.lastgroup
    token = n.group(0)
    end = n.end()
    spaced = s[end : end + 1] == " "
    while end < len(s) and s[end] == " ":
        end += 1
    if opener:
        want = _CLOSE[_OPEN.index(opener)]
        if end >= len(s) or s[end] != want:
            return None
        end += 1
    delim = ""
    if end < len(s) and s[end] in _DELIM and not (s[end] == "." and s[end + 1 : end + 2].isdigit()):
        delim = s[end]
        end += 1
    while end < len(s) and s[end] == " ":
        end += 1
    if end >= len(s):
        return None
    if not (
        opener
        or delim
        or kind in ("keycap", "roman", *_SELF)
        or (spaced and kind in ("zero", "decimal", "letnum"))
    ):
        return None  # "2021年", "5G", "A股": a number or letter that is part of the words
    if kind in ("upper", "lower", "ROMAN", "rlower", "stem", "letnum") and not (
        opener or (delim and delim in ".、)|") or (spaced and kind == "letnum")
    ):
        return None
    if kind == "arabic" and delim in "-/:" and not opener:
        return None  # dates, ratios and times
    value = _value(kind, token)
    if value is None:
        return None
    # authors mix 1、 with 1. and (1) with 1) or 【1】 within one level: one shape each
    if kind in _SELF and not opener:
        shape = _SELF[kind]
    elif kind in ("decimal", "letnum"):
        shape = f"〈{kind}〉"
    elif opener or delim == ")":
        shape = f"(〈{kind}〉)"
    else:
        shape = f"〈{kind}〉" + ("、" if delim in "、.:" else delim)
    return Marker(shape, value, end)


def _enclosed(s: str) -> Marker | None:
    """A whole line in one pair of brackets, words inside (``【宏观】``, ``[产业]``): a
    heading whose marker is the brackets.  Numbers inside are ordinals, not this."""
    if len(s) < 4 or s[0] not in _OPEN or s[-1] != _CLOSE[_OPEN.index(s[0])]:
        return None
    inside = s[1:-1].strip()
    if not 2 <= len(inside) <= 16 or any(ch in _OPEN or ch in _CLOSE for ch in inside):
        return None
    if not re.search(r"[^\W\d_]", inside) or _NUMBER_RE.fullmatch(inside):
        return None
    return Marker(f"enclosed {s[0]}{s[-1]}", 0, 1)


_TITLED = re.compile(r"^【(?P<title>[^【】]{2,60})】\s*(?P<rest>\S.*)$")
_LABELLED = re.compile(r"^【(?P<label>[^【】\d\s]{1,4})】\s*(?=[^\s【])")


def _labelled(s: str) -> Marker | None:
    """A short 【label】 before the words (``【案例】某公司诉…``): the bracket pair is the
    marker, whatever the label says.  (A field such as ``【文号】…`` is told apart by the
    importer, which knows the field names.)  When the words after it are a paragraph
    (``【某部门发布某通知】通知要求……。``), the brackets hold the title instead."""
    titled = _TITLED.match(s)
    if titled is not None:
        rest = titled.group("rest")
        if len(rest) > 40 or rest.rstrip().endswith(("。", "！", "？", ".", "!", "?")):
            return Marker("titled 【】", 0, 1, titled.end("title"))
    m = _LABELLED.match(s)
    return Marker("labelled 【】", 0, m.end()) if m is not None else None


def _value(kind: str, token: str) -> int | None:
    if kind == "keycap":
        return int(token[0])
    for chars, k in ((_PAREN_CN, "pcn"), (_PAREN_ARABIC, "parab"), (_DOT_ARABIC, "dotarab")):
        if kind == k:
            return chars.index(token) + 1
    if kind == "stem":
        return _STEMS.index(token) + 1
    if kind == "decimal":  # the last part counts: 1.1 1.2 … 2.1
        return int(token.rsplit(".", 1)[1])
    if kind == "letnum":  # A1 A2 … B1: the number counts under its letter
        return int(token[1:])
    if kind == "rlower":
        return _ROMAN.get(token.upper())
    if kind == "roman":
        return _ROMAN_CHARS.index(token) + 1
    if kind == "ROMAN":
        return _ROMAN.get(token)
    if kind in ("upper", "lower"):
        return ord(token.lower()) - ord("a") + 1
    return numeral_value(token)


@dataclass(frozen=True, slots=True)
class DocFamily:
    """A heading family found in this document (duck-compatible with ``patterns.Family``)."""

    name: str  # the shape
    rank: int  # order of first appearance: 0 is the outermost

    def match(self, norm: str) -> tuple[int, int] | None:
        marker = read_marker(norm)
        if marker is None or marker.shape != self.name:
            return None
        return marker.number, marker.title_start


def _counts(numbers: Sequence[int]) -> bool:
    """Numbers that count up by one, restarting at 1 (glyphs are all 0 and count)."""
    if all(n == 0 for n in numbers):
        return True
    good = sum(1 for prev, n in zip((0, *numbers), numbers, strict=False) if n in (prev + 1, 1))
    return good >= 0.6 * len(numbers)


def discover(
    norms: Sequence[str], *, heading_max: int, sentence_end: re.Pattern[str]
) -> list[DocFamily]:
    """The heading families of a document, outermost first.

    ``norms`` are the normalised content lines in order (blank lines and chrome
    left out).  Ranks follow first appearance; the importer ranks them again
    once it knows which lines are a contents list.
    """
    seen: dict[str, list[tuple[int, Marker]]] = {}
    for i, norm in enumerate(norms):
        marker = read_marker(norm)
        if marker is None:
            continue
        title = norm[marker.title_start : marker.title_end].strip()
        if not title or heading_length(title) > heading_max or sentence_end.search(title):
            continue
        seen.setdefault(marker.shape, []).append((i, marker))
    shapes: list[tuple[int, str]] = []
    for shape, hits in seen.items():
        numbers = [m.number for _, m in hits]
        if not _counts(numbers):
            continue
        if shape.startswith("enclosed"):  # a label that comes back (【点评】) is no heading
            titles = {norms[i] for i, _ in hits}
            if len(hits) < 2 or len(titles) < 0.8 * len(hits):
                continue
        idx = [i for i, _ in hits]
        at = set(idx)
        followed = sum(1 for i in idx if i + 1 not in at)
        if len(hits) >= 2 and followed < max(2, 0.3 * len(hits)):
            continue  # a list in the text: its entries follow one another
        if len(hits) == 1 and numbers[0] != 1:
            continue
        shapes.append((idx[0], shape))
    shapes.sort()
    return [DocFamily(shape, rank) for rank, (_, shape) in enumerate(shapes)]
